"""Training-step lowering with bidirectional N:M weight pruning (BDWP)."""

from __future__ import annotations

import pytest

from archsim.config.loader import workload_from_text
from archsim.errors import ArchsimError
from archsim.ir.ops import Gemm
from archsim.ir.tensor import NM
from archsim.workloads import lower

TEXT = """
schema_version: 1
name: t
workload:
  generator: training
  weight_sparsity: {{kind: nm, n: 2, m: 8}}
  bidirectional: {bdwp}
  layers:
    - {{m: 64, k: 128, n: 256}}
    - {{m: 64, k: 256, n: {n2}}}
"""


def _graph(bdwp: bool = True, n2: int = 64):
    text = TEXT.format(bdwp=str(bdwp).lower(), n2=n2)
    return lower(workload_from_text(text).config)


def test_bdwp_makes_forward_and_input_gradient_sparse():
    gemms = {op.name: op for op in _graph().ops() if isinstance(op, Gemm)}
    assert set(gemms) == {f"layers.{i}.{p}" for i in (0, 1) for p in ("fwd", "dx", "dw")}
    assert gemms["layers.0.fwd"].b.sparsity == NM(2, 8)
    assert gemms["layers.0.dx"].b.sparsity == NM(2, 8)
    assert gemms["layers.0.dw"].b.sparsity.density == 1.0
    # dX = dY @ W^T reduces over the forward outputs; dW = X^T @ dY over the rows
    assert (gemms["layers.0.dx"].m, gemms["layers.0.dx"].n, gemms["layers.0.dx"].k) == (
        64,
        128,
        256,
    )
    assert (gemms["layers.0.dw"].m, gemms["layers.0.dw"].n, gemms["layers.0.dw"].k) == (
        128,
        256,
        64,
    )


def test_forward_only_pruning_keeps_backward_dense():
    ops = _graph(bdwp=False).ops()
    dx = next(op for op in ops if op.name == "layers.0.dx")
    assert dx.b.sparsity.density == 1.0
    assert not any(op.name.endswith("prune_bwd") for op in ops)
    assert sum(op.name.endswith("prune_bwd") for op in _graph().ops()) == 2


def test_backward_runs_in_reverse_layer_order():
    names = [op.name for op in _graph().ops() if isinstance(op, Gemm)]
    assert names.index("layers.1.dx") < names.index("layers.0.dx")
    assert names.index("layers.1.fwd") < names.index("layers.1.dx")


def test_bdwp_needs_output_dimension_divisible_by_m():
    with pytest.raises(ArchsimError, match=r"layers\.1\.n"):
        _graph(n2=60)
