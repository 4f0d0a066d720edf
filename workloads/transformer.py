"""Lowering of a decoder-only transformer, prefill or one decode step (``generator: transformer``).

Per block, in topological order::

    rmsnorm -> Q, K, V projections -> RoPE on Q and K -> KV-cache writes -> attention
    -> O projection -> residual add -> rmsnorm -> FFN (dense SwiGLU or MoE) -> residual add

then the final rmsnorm and the LM head. Q, K and V are three GEMMs, not one fused QKV GEMM, so
that grouped-query attention shows its narrower K and V projections; the FLOPs and bytes of the
weights are the same either way.

Sizes: prefill processes ``seq_len`` tokens per sequence with causal attention over them
(q_len = kv_len = seq_len); a decode step processes one token per sequence that attends to the
``seq_len`` cached positions and itself (q_len = 1, kv_len = seq_len + 1). Every linear layer
has M = batch x tokens processed.

The LM head runs on one token per sequence in both phases: in decode that is the new token, and
in prefill it is the last prompt token, the only position whose logits inference samples from
(vLLM and TensorRT-LLM gather the last hidden state before the LM head). The final norm runs on
all tokens, as the model's forward pass does.

Tensor names chain so that graph edges follow data (see ``archsim.workloads.layers`` for the
convention on partial reads). The KV cache of block i is the buffer ``layers.i.k_cache`` /
``layers.i.v_cache``: the write op touches the new positions, attention reads all ``kv_len``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archsim.config.workload import TransformerSpec
from archsim.errors import ArchsimError
from archsim.ir.ops import Attention, Elementwise, Embedding, Norm, Op
from archsim.ir.tensor import DENSE, DType, Sparsity, Tensor
from archsim.workloads.layers import linear, moe_ffn, swiglu_ffn
from archsim.workloads.models.presets import ModelArchitecture, get_model
from archsim.workloads.registry import register_lowering
from archsim.workloads.routing import expert_token_counts
from archsim.workloads.sparsity import to_ir_sparsity


@dataclass(frozen=True)
class _Pass:
    """The sizes of one forward pass."""

    batch: int
    q_len: int
    kv_len: int
    causal: bool
    dtype: DType
    weight_sparsity: Sparsity

    @property
    def tokens(self) -> int:
        """Rows of every linear layer (M)."""
        return self.batch * self.q_len


def transformer_work_items(spec: TransformerSpec) -> tuple[float, str]:
    """Tokens one run processes: every prompt token in prefill, one per sequence in decode."""
    tokens = spec.batch * spec.seq_len if spec.phase == "prefill" else spec.batch
    return float(tokens), "tokens"


@register_lowering("transformer", work_items=transformer_work_items)
def lower_transformer(spec: TransformerSpec) -> Sequence[Op]:
    """Ops of one forward pass of ``spec.model``: embedding, blocks, final norm and LM head.

    Raises
    ------
    ArchsimError
        For an unknown model preset, ``layers`` beyond the model's depth, or routing counts and
        sparsity the model's shapes cannot take.
    """
    model = get_model(spec.model)
    layers = spec.layers if spec.layers is not None else model.layers
    if layers > model.layers:
        raise ArchsimError(
            f"workload.layers: {layers} exceeds the {model.layers} layers of {model.name}"
        )
    decode = spec.phase == "decode"
    step = _Pass(
        batch=spec.batch,
        q_len=1 if decode else spec.seq_len,
        kv_len=spec.seq_len + 1 if decode else spec.seq_len,
        causal=not decode,
        dtype=spec.dtype,
        weight_sparsity=to_ir_sparsity(spec.weight_sparsity),
    )
    expert_tokens = (
        expert_token_counts(
            spec.routing, tokens=step.tokens, experts=model.experts, top_k=model.top_k
        )
        if model.is_moe
        else ()
    )
    embed = Embedding(
        "embed",
        table=Tensor("embed.w", (model.vocab, model.d_model), step.dtype, is_weight=True),
        out=Tensor("embed.out", (step.tokens, model.d_model), step.dtype),
    )
    ops: list[Op] = [embed]
    hidden = embed.out.name
    for index in range(layers):
        block_ops, hidden = _block(model, step, index, hidden, expert_tokens)
        ops.extend(block_ops)
    if spec.include_lm_head:
        ops.extend(_head(model, step, hidden))
    return ops


def _norm(name: str, x: str, rows: int, d_model: int, dtype: DType) -> Norm:
    return Norm(
        name,
        "rmsnorm",
        x=Tensor(x, (rows, d_model), dtype),
        weight=Tensor(f"{name}.w", (d_model,), dtype, is_weight=True),
        out=Tensor(f"{name}.out", (rows, d_model), dtype),
    )


def _add(name: str, a: str, b: str, rows: int, d_model: int, dtype: DType) -> Elementwise:
    return Elementwise(
        name,
        "add",
        (Tensor(a, (rows, d_model), dtype), Tensor(b, (rows, d_model), dtype)),
        Tensor(f"{name}.out", (rows, d_model), dtype),
    )


def _block(
    model: ModelArchitecture,
    step: _Pass,
    index: int,
    hidden: str,
    expert_tokens: tuple[int, ...],
) -> tuple[list[Op], str]:
    """Ops of block ``index`` reading the residual stream ``hidden``; returns its output name."""
    p = f"layers.{index}"
    d, dt, rows, ws = model.d_model, step.dtype, step.tokens, step.weight_sparsity
    q_dim, kv_dim = model.heads * model.head_dim, model.kv_heads * model.head_dim
    q_heads_shape = (step.batch, model.heads, step.q_len, model.head_dim)
    kv_new_shape = (step.batch, model.kv_heads, step.q_len, model.head_dim)
    kv_cache_shape = (step.batch, model.kv_heads, step.kv_len, model.head_dim)

    attn_norm = _norm(f"{p}.attn_norm", hidden, rows, d, dt)
    x = attn_norm.out.name
    wq = linear(f"{p}.wq", x, rows, d, q_dim, dt, ws)
    wk = linear(f"{p}.wk", x, rows, d, kv_dim, dt, ws)
    wv = linear(f"{p}.wv", x, rows, d, kv_dim, dt, ws)
    rope_q = Elementwise(f"{p}.rope_q", "rope", (wq.out,), Tensor(f"{p}.q", q_heads_shape, dt))
    rope_k = Elementwise(f"{p}.rope_k", "rope", (wk.out,), Tensor(f"{p}.k", kv_new_shape, dt))
    k_write = Elementwise(
        f"{p}.k_cache_write", "copy", (rope_k.out,), Tensor(f"{p}.k_cache", kv_new_shape, dt)
    )
    v_write = Elementwise(
        f"{p}.v_cache_write", "copy", (wv.out,), Tensor(f"{p}.v_cache", kv_new_shape, dt)
    )
    attn = Attention(
        f"{p}.attn",
        q=rope_q.out,
        k=Tensor(k_write.out.name, kv_cache_shape, dt),
        v=Tensor(v_write.out.name, kv_cache_shape, dt),
        out=Tensor(f"{p}.attn_out", q_heads_shape, dt),
        batch=step.batch,
        heads_q=model.heads,
        heads_kv=model.kv_heads,
        q_len=step.q_len,
        kv_len=step.kv_len,
        head_dim=model.head_dim,
        causal=step.causal,
    )
    wo = linear(f"{p}.wo", attn.out.name, rows, q_dim, d, dt, ws)
    attn_residual = _add(f"{p}.attn_residual", hidden, wo.out.name, rows, d, dt)
    ffn_norm = _norm(f"{p}.ffn_norm", attn_residual.out.name, rows, d, dt)
    ops: list[Op] = [
        attn_norm, wq, wk, wv, rope_q, rope_k, k_write, v_write, attn, wo, attn_residual, ffn_norm
    ]  # fmt: skip
    if model.is_moe_layer(index):
        ffn = moe_ffn(
            f"{p}.moe",
            ffn_norm.out.name,
            tokens=rows,
            d_model=d,
            expert_d_ff=model.expert_d_ff,
            expert_tokens=expert_tokens,
            top_k=model.top_k,
            dtype=dt,
            weight_sparsity=ws,
            shared_experts=model.shared_experts,
        )
    else:
        ffn = swiglu_ffn(f"{p}.mlp", ffn_norm.out.name, rows, d, model.d_ff, dt, ws)
    ops.extend(ffn.ops)
    ffn_residual = _add(f"{p}.ffn_residual", attn_residual.out.name, ffn.out, rows, d, dt)
    ops.append(ffn_residual)
    return ops, ffn_residual.out.name


def _head(model: ModelArchitecture, step: _Pass, hidden: str) -> list[Op]:
    """Final norm over all tokens, LM head over one token per sequence (see the module notes)."""
    final_norm = _norm("final_norm", hidden, step.tokens, model.d_model, step.dtype)
    # pruning methods (SparseGPT, Wanda) leave the LM head dense, as they do the embeddings
    lm_head = linear(
        "lm_head",
        final_norm.out.name,
        step.batch,
        model.d_model,
        model.vocab,
        step.dtype,
        DENSE,
        weight="embed.w" if model.tie_embeddings else "lm_head.w",
        out="logits",
    )
    return [final_norm, lm_head]
