"""Building blocks shared by the lowerings: SwiGLU feed-forward layers and MoE layers.

Naming convention: a tensor name denotes one buffer, and graph edges follow names. An op's
``Tensor`` has the shape of the part of that buffer it touches, so an expert's GEMM reads its own
rows of the dispatched buffer under the buffer's name, and the edge dispatch -> expert exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.ir.ops import Elementwise, Gemm, MoeCombine, MoeDispatch, MoeRouter, Op, gemm
from archsim.ir.tensor import DENSE, DType, Sparsity, Tensor
from archsim.workloads.sparsity import check_reduction_fits


@dataclass(frozen=True)
class Built:
    """Ops of a block in topological order and the name of the tensor they end in."""

    ops: tuple[Op, ...]
    out: str


def linear(
    name: str,
    x: str,
    rows: int,
    in_features: int,
    out_features: int,
    dtype: DType,
    weight_sparsity: Sparsity = DENSE,
    *,
    weight: str | None = None,
    out: str | None = None,
    sparsity_field: str = "workload.weight_sparsity",
) -> Gemm:
    """``out = x @ W`` with ``W`` of ``in_features x out_features`` named ``weight`` (or ``name``).

    The weight is named after the layer (e.g. ``layers.3.wq``) so each counts once as a
    parameter however many ops read it.
    """
    check_reduction_fits(weight_sparsity, in_features, sparsity_field)
    return gemm(
        name,
        rows,
        out_features,
        in_features,
        dtype,
        b_sparsity=weight_sparsity,
        a_name=x,
        b_name=weight or name,
        out_name=out or f"{name}.out",
    )


def swiglu_ffn(
    prefix: str,
    x: str,
    rows: int,
    d_model: int,
    d_ff: int,
    dtype: DType,
    weight_sparsity: Sparsity = DENSE,
) -> Built:
    """``down(silu(gate(x)) * up(x))``: gate and up GEMMs, the fused ``silu_mul``, the down GEMM."""
    gate = linear(f"{prefix}.w_gate", x, rows, d_model, d_ff, dtype, weight_sparsity)
    up = linear(f"{prefix}.w_up", x, rows, d_model, d_ff, dtype, weight_sparsity)
    act = Elementwise(
        f"{prefix}.silu_mul",
        "silu_mul",
        (gate.out, up.out),
        Tensor(f"{prefix}.act", (rows, d_ff), dtype),
    )
    down = linear(f"{prefix}.w_down", act.out.name, rows, d_ff, d_model, dtype, weight_sparsity)
    return Built(ops=(gate, up, act, down), out=down.out.name)


def moe_ffn(
    prefix: str,
    x: str,
    *,
    tokens: int,
    d_model: int,
    expert_d_ff: int,
    expert_tokens: tuple[int, ...],
    top_k: int,
    dtype: DType,
    weight_sparsity: Sparsity = DENSE,
    shared_experts: int = 0,
) -> Built:
    """Router, dispatch, one SwiGLU per expert that receives tokens, combine, shared experts.

    An expert with no tokens launches nothing, so it has no GEMM; its weights still have to be in
    memory, so the router lists them as resident (they count toward parameters and capacity).
    Shared experts run on every token; they are lowered as one SwiGLU of
    ``shared_experts * expert_d_ff``, which is how DeepSeekMoE's reference implementation fuses
    them (same FLOPs and parameters as separate experts).

    Parameters
    ----------
    expert_tokens:
        Tokens each routed expert receives (from ``archsim.workloads.routing``).
    """
    experts = len(expert_tokens)
    routed = tokens * top_k
    # the routing table: per (token, choice) a 16-bit expert id and a 16-bit gate weight
    routing = Tensor(f"{prefix}.routing", (tokens, top_k), DType.FP32)
    router = MoeRouter(
        f"{prefix}.router",
        x=Tensor(x, (tokens, d_model), dtype),
        # the router stays dense: pruning methods leave it alone, it is tiny and accuracy-critical
        w_router=Tensor(f"{prefix}.router.w", (d_model, experts), dtype, is_weight=True),
        out=routing,
        tokens=tokens,
        experts=experts,
        top_k=top_k,
        expert_tokens=expert_tokens,
        idle_expert_weights=tuple(
            tensor
            for expert, count in enumerate(expert_tokens)
            if count == 0
            for op in swiglu_ffn(
                f"{prefix}.experts.{expert}", x, 1, d_model, expert_d_ff, dtype, weight_sparsity
            ).ops
            for tensor in op.inputs()
            if tensor.is_weight
        ),
    )
    dispatched = f"{prefix}.dispatched"
    dispatch = MoeDispatch(
        f"{prefix}.dispatch",
        x=Tensor(x, (tokens, d_model), dtype),
        routing=routing,
        out=Tensor(dispatched, (routed, d_model), dtype),
    )
    ops: list[Op] = [router, dispatch]
    parts: list[Tensor] = []
    for expert, count in enumerate(expert_tokens):
        if count == 0:
            continue
        block = swiglu_ffn(
            f"{prefix}.experts.{expert}",
            dispatched,
            count,
            d_model,
            expert_d_ff,
            dtype,
            weight_sparsity,
        )
        ops.extend(block.ops)
        parts.append(block.ops[-1].outputs()[0])
    combine = MoeCombine(
        f"{prefix}.combine",
        expert_out=Tensor(f"{prefix}.expert_out", (routed, d_model), dtype),
        routing=routing,
        out=Tensor(f"{prefix}.combined", (tokens, d_model), dtype),
        top_k=top_k,
        parts=tuple(parts),
    )
    ops.append(combine)
    if not shared_experts:
        return Built(ops=tuple(ops), out=combine.out.name)
    shared = swiglu_ffn(
        f"{prefix}.shared",
        x,
        tokens,
        d_model,
        shared_experts * expert_d_ff,
        dtype,
        weight_sparsity,
    )
    ops.extend(shared.ops)
    total = Elementwise(
        f"{prefix}.shared_add",
        "add",
        (combine.out, Tensor(shared.out, (tokens, d_model), dtype)),
        Tensor(f"{prefix}.out", (tokens, d_model), dtype),
    )
    ops.append(total)
    return Built(ops=tuple(ops), out=total.out.name)
