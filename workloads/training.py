"""Lowering of a training step (``generator: training``): forward and backward GEMMs per layer.

For a layer with input ``X`` (m x k) and weight ``W`` (k x n), one step is::

    forward:          Y  = X  @ W_f         (W_f: W pruned N:M along k, the forward reduction)
    input gradient:   dX = dY @ W_b^T       (W_b: W pruned N:M along n, the backward reduction)
    weight gradient:  dW = X^T @ dY         (dense: both operands are activations)
    update:           W  = W - lr * dW      (elementwise over the dense weight)

With bidirectional weight pruning (BDWP, SAT §3) both ``W_f`` and ``W_b`` are generated from the
dense weight each step (two pruning passes over ``W``) and both weight GEMMs are N:M sparse; the
weight-gradient GEMM stays dense. Without it, only the forward GEMM is sparse. Layers run forward
in order, then backward in reverse order.
"""

from __future__ import annotations

from collections.abc import Sequence

from archsim.config.workload import TrainingSpec
from archsim.ir.ops import Elementwise, Gemm, Op, gemm
from archsim.ir.tensor import DENSE, NM, Sparsity, Tensor
from archsim.workloads.registry import register_lowering
from archsim.workloads.sparsity import check_reduction_fits, to_ir_sparsity


def training_work_items(spec: TrainingSpec) -> tuple[float, str]:
    """One training step."""
    return 1.0, "step"


@register_lowering("training", work_items=training_work_items)
def lower_training(spec: TrainingSpec) -> Sequence[Op]:
    """Ops of one training step of ``spec.layers``.

    Raises
    ------
    ArchsimError
        When N:M sparsity does not divide a layer's forward (k) or, with BDWP, backward (n)
        reduction length.
    """
    sparsity = to_ir_sparsity(spec.weight_sparsity)
    forward: list[Op] = []
    backward: list[Op] = []
    for i, layer in enumerate(spec.layers):
        field = f"workload.layers.{i}"
        check_reduction_fits(sparsity, layer.k, f"{field}.k ({spec.weight_sparsity.kind})")
        backward_sparsity: Sparsity = sparsity if spec.bidirectional else DENSE
        if spec.bidirectional:
            check_reduction_fits(sparsity, layer.n, f"{field}.n (bidirectional pruning)")
        forward.extend(_forward(spec, i, layer.m, layer.n, layer.k, sparsity))
        backward[:0] = _backward(spec, i, layer.m, layer.n, layer.k, backward_sparsity)
    return forward + backward


def _prune(name: str, weight: str, k: int, n: int, spec: TrainingSpec, sparsity: Sparsity) -> Op:
    # reads the dense weight, writes the compressed N:M copy (values + selects)
    dense = Tensor(weight, (k, n), spec.dtype, is_weight=True)
    return Elementwise(name, "copy", (dense,), Tensor(f"{name}.out", (k, n), spec.dtype, sparsity))


def _forward(spec: TrainingSpec, i: int, m: int, n: int, k: int, sparsity: Sparsity) -> list[Op]:
    ops: list[Op] = []
    weight = f"layers.{i}.w"
    if isinstance(sparsity, NM):
        ops.append(_prune(f"layers.{i}.prune_fwd", weight, k, n, spec, sparsity))
    x = "input" if i == 0 else f"layers.{i - 1}.fwd.out"
    ops.append(
        gemm(
            f"layers.{i}.fwd",
            m,
            n,
            k,
            spec.dtype,
            b_sparsity=sparsity,
            a_name=x,
            b_name=f"{weight}.fwd",
            out_dtype=spec.dtype,
        )
    )
    return ops


def _backward(spec: TrainingSpec, i: int, m: int, n: int, k: int, sparsity: Sparsity) -> list[Op]:
    ops: list[Op] = []
    weight = f"layers.{i}.w"
    if isinstance(sparsity, NM):
        # W^T is n x k; its reduction (n) is the forward output dimension
        ops.append(_prune(f"layers.{i}.prune_bwd", weight, n, k, spec, sparsity))
    dy = "loss.grad" if i == len(spec.layers) - 1 else f"layers.{i + 1}.dx.out"
    dx: Gemm = gemm(
        f"layers.{i}.dx",
        m,
        k,
        n,
        spec.dtype,
        b_sparsity=sparsity,
        a_name=dy,
        b_name=f"{weight}.bwd",
        out_dtype=spec.dtype,
    )
    x = "input" if i == 0 else f"layers.{i - 1}.fwd.out"
    dw = gemm(
        f"layers.{i}.dw",
        k,
        n,
        m,
        spec.dtype,
        b_is_weight=False,
        a_name=x,
        b_name=dy,
        out_dtype=spec.dtype,
    )
    ops.extend([dx, dw])
    if spec.weight_update:
        w = Tensor(weight, (k, n), spec.dtype, is_weight=True)
        ops.append(
            Elementwise(
                f"layers.{i}.update",
                "scale_add",
                (w, dw.out),
                Tensor(f"{weight}.next", (k, n), spec.dtype),
            )
        )
    return ops
