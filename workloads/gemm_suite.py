"""Lowering of a list of independent GEMMs (``generator: gemm_suite``)."""

from __future__ import annotations

from collections.abc import Sequence

from archsim.config.workload import GemmSuiteSpec
from archsim.ir.ops import Op, gemm
from archsim.workloads.registry import register_lowering
from archsim.workloads.sparsity import check_reduction_fits, to_ir_sparsity


def gemm_suite_work_items(spec: GemmSuiteSpec) -> tuple[float, str]:
    """One run is the whole suite."""
    return 1.0, "suite"


@register_lowering("gemm_suite", work_items=gemm_suite_work_items)
def lower_gemm_suite(spec: GemmSuiteSpec) -> Sequence[Op]:
    """One GEMM per shape, named ``gemm{i}`` in file order, each with its own weight.

    The GEMMs share no tensors, so the graph has no edges: a mapper may run them in any order.
    ``batch`` GEMMs share one ``k x n`` weight across the batch.
    """
    weight_sparsity = to_ir_sparsity(spec.weight_sparsity)
    activation_sparsity = to_ir_sparsity(spec.activation_sparsity)
    ops: list[Op] = []
    for index, shape in enumerate(spec.shapes):
        check_reduction_fits(weight_sparsity, shape.k, "workload.weight_sparsity")
        check_reduction_fits(activation_sparsity, shape.k, "workload.activation_sparsity")
        ops.append(
            gemm(
                f"gemm{index}",
                shape.m,
                shape.n,
                shape.k,
                spec.dtype,
                batch=shape.batch,
                a_sparsity=activation_sparsity,
                b_sparsity=weight_sparsity,
            )
        )
    return ops
