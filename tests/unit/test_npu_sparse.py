"""The NPU's opt-in sparse systolic array (N:M multiplexers in front of a WS array's PEs)."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from shipped_devices import NPU_BASE

from archsim.config.machine import NpuConfig
from archsim.hw.base import Bound
from archsim.hw.npu import NpuDevice, sparse_array_work
from archsim.ir.ops import attention, gemm
from archsim.ir.tensor import NM, Block, Unstructured
from archsim.kernels.sparse_chain import nm_mask, skewed_mask

BASE = NPU_BASE
SPARSE_24 = {"n_max": 2, "m": 4}


def npu(sparse_array: dict[str, int] | None = None, **array: Any) -> NpuDevice:
    raw = copy.deepcopy(BASE)
    raw["systolic_array"].update(array)
    if sparse_array is not None:
        raw["sparse_array"] = sparse_array
    return NpuDevice(NpuConfig.model_validate(raw))


def big_gemm(**sparsity: Any):
    return gemm("g", 4096, 4096, 4096, **sparsity)


def test_24_weights_on_a_24_array_halve_compute_bound_cycles_and_no_more() -> None:
    device = npu(SPARSE_24)
    dense = device.cost(big_gemm())
    sparse = device.cost(big_gemm(b_sparsity=NM(2, 4)))
    assert dense.bound is Bound.COMPUTE and sparse.bound is Bound.COMPUTE
    ratio = sparse.cycles / dense.cycles
    # half the stationary blocks; fill/drain and edge effects keep it a little above one half
    assert 0.49 < ratio < 0.6
    assert "imbalance 1.00x" in sparse.notes
    # the same 2:4 weights on an array without the option do dense math
    assert npu().cost(big_gemm(b_sparsity=NM(2, 4))).cycles > 0.95 * dense.cycles


def test_without_the_option_weight_sparsity_saves_no_compute() -> None:
    device = npu()
    assert device.config.sparse_array is None
    dense = device.cost(big_gemm())
    for sparsity in (NM(2, 4), NM(1, 4), Unstructured(0.05), Block(256, 128, 0.25)):
        cost = device.cost(big_gemm(b_sparsity=sparsity))
        assert cost.cycles == pytest.approx(dense.cycles, rel=0.01)
        assert "sparse" not in cost.notes


def test_dense_weights_and_attention_are_untouched_by_the_option() -> None:
    plain, sparse = npu(), npu(SPARSE_24)
    ops = (
        big_gemm(),
        gemm("act", 512, 1024, 2048, a_sparsity=NM(2, 4)),
        attention(
            "attn", batch=2, heads_q=8, heads_kv=8, head_dim=128, q_len=256, kv_len=256, causal=True
        ),
    )
    for op in ops:
        assert sparse.cost(op) == plain.cost(op)


def test_14_weights_on_a_24_array_gain_nothing_beyond_24() -> None:
    device = npu(SPARSE_24)
    two = device.cost(big_gemm(b_sparsity=NM(2, 4))).cycles
    one = device.cost(big_gemm(b_sparsity=NM(1, 4))).cycles
    assert one == pytest.approx(two, rel=0.02)
    # an array whose groups are one PE wide does turn 1:4 into a quarter of the blocks
    narrow = npu({"n_max": 1, "m": 4}).cost(big_gemm(b_sparsity=NM(1, 4))).cycles
    assert narrow < 0.6 * one


def test_patterns_the_muxes_cannot_serve_fall_back_to_dense_math() -> None:
    device = npu(SPARSE_24)
    dense = device.cost(big_gemm())
    # 4 of 8 puts 3 or 4 kept weights in some window of 4 of every block's columns
    cost = device.cost(big_gemm(b_sparsity=NM(4, 8)))
    assert cost.cycles == pytest.approx(dense.cycles, rel=0.01)
    assert "no gain, dense math" in cost.notes
    # very sparse unstructured weights leave nearly every window within n_max and do gain,
    # less than 2:4 because a few windows of some column in most blocks take a second pass
    nm = device.cost(big_gemm(b_sparsity=NM(2, 4))).cycles
    unstructured = device.cost(big_gemm(b_sparsity=Unstructured(0.02))).cycles
    assert nm < unstructured < 0.8 * dense.cycles


def _brute_force_work(mask: np.ndarray, lanes: int, cols: int, n_max: int, m: int) -> float:
    """Blocks loaded per dense block, pass by pass and column group by column group."""
    k_len, n_cols = mask.shape
    pass_rows = lanes // n_max * m
    groups = math.ceil(n_cols / cols)
    blocks = 0
    for start in range(0, k_len, pass_rows):
        for g in range(groups):
            slowest = 0
            for j in range(g * cols, min((g + 1) * cols, n_cols)):
                windows = [
                    int(mask[w : min(w + m, start + pass_rows, k_len), j].sum())
                    for w in range(start, min(start + pass_rows, k_len), m)
                ]
                slowest = max(slowest, max(math.ceil(c / n_max) for c in windows))
            blocks += slowest
    return blocks / groups * lanes / k_len


@pytest.mark.parametrize("density", [0.1, 0.3])
def test_work_matches_a_pass_by_pass_statement(density: float) -> None:
    mask = skewed_mask(96, 20, density, 1.0, seed=3)
    work = sparse_array_work(mask, lanes=8, cols=6, n_max=2, m=4)
    assert work.work_fraction == pytest.approx(_brute_force_work(mask, 8, 6, 2, 4))
    assert work.kept_fraction == pytest.approx(mask.mean())


def test_imbalance_grows_with_the_skew_of_unstructured_masks() -> None:
    imbalance = [
        sparse_array_work(skewed_mask(1024, 512, 0.1, skew, seed=7), 128, 128, 2, 4).imbalance
        for skew in (0.0, 0.5, 1.0, 2.0)
    ]
    assert all(b > a for a, b in itertools.pairwise(imbalance))
    assert imbalance[0] >= 1.0
    exact = sparse_array_work(nm_mask(1024, 256, 2, 4, seed=1), 128, 128, 2, 4)
    assert exact.imbalance == pytest.approx(1.0)
    assert exact.work_fraction == pytest.approx(0.5)


def test_metadata_bytes_move_with_the_weights() -> None:
    k, n = 4096, 4096
    op = gemm("gemv", 1, n, k, b_sparsity=NM(2, 8))
    four = npu(SPARSE_24).cost(op)
    eight = npu({"n_max": 2, "m": 8}).cost(op)
    kept = k * n / 4
    # a window of 8 needs 3 select bits per kept weight, a window of 4 two
    extra_bytes = kept * (3 - 2) / 8
    # the two arrays tile K differently, so the activation vector's re-reads differ a little
    assert eight.bytes_by_level["dram"] - four.bytes_by_level["dram"] == pytest.approx(
        extra_bytes, rel=0.1
    )
    values_bytes = kept * 2  # bf16
    assert four.bytes_by_level["dram"] >= values_bytes + kept * 2 / 8
    assert f"metadata {kept * 3 / 8 / 2**20:.2f} MiB" in eight.notes


def test_sparse_costs_stay_above_the_roofline() -> None:
    device = npu(SPARSE_24)
    for op in (
        big_gemm(b_sparsity=NM(2, 4)),
        gemm("gemv", 1, 4096, 4096, b_sparsity=NM(2, 4)),
        big_gemm(b_sparsity=Unstructured(0.02)),
    ):
        assert device.cost(op).latency_s >= device.roofline(op).latency_s * (1 - 1e-9)


@pytest.mark.parametrize(
    ("sparse_array", "array", "message"),
    [
        ({"n_max": 4, "m": 4}, {}, "n_max < m"),
        ({"n_max": 5, "m": 4}, {}, "n_max < m"),
        ({"n_max": 0, "m": 4}, {}, "n_max"),
        (SPARSE_24, {"dataflow": "os"}, "dataflow 'ws'"),
        ({"n_max": 3, "m": 4}, {}, "must divide systolic_array.rows"),
        ({"n_max": 2, "m": 4, "mux": 4}, {}, "mux"),
    ],
)
def test_impossible_sparse_arrays_are_refused(
    sparse_array: dict[str, int], array: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        npu(sparse_array, **array)
