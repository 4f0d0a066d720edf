"""Tiling and dataflow search: the Numba kernel against its plain-Python reference, pruning
against brute force, the NPU's own cost of the search's pick against the NPU's default choice,
and what the dataflows trade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from archsim.config import load_machine, load_workload
from archsim.config.machine import MachineConfig
from archsim.errors import ArchsimError
from archsim.hw import Machine
from archsim.ir.ops import Elementwise, gemm
from archsim.ir.tensor import DType, Tensor
from archsim.kernels import tiling_eval as kernel
from archsim.mappers.tiling_search import (
    Candidates,
    GemmShape,
    TilingTarget,
    enumerate_candidates,
    footprint_bytes,
    model_params,
    search_shape,
    search_tiling,
)
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"

# the search's pick, costed by the NPU model, may lose at most this share against the NPU's own
# choice: the search's model omits the NPU's fixed DRAM latency but is otherwise the same
# pipeline, and it searches a superset of the NPU's tile sizes
NPU_TOLERANCE = 0.01


def _target(rows=16, cols=8, arrays=2, macs=1, capacity=48_000.0, setup=20.0, engines=1):
    return TilingTarget(
        device="test",
        rows=rows,
        cols=cols,
        arrays=arrays,
        macs_per_pe=macs,
        fill_drain_cycles=float(rows + cols),
        capacity_bytes=capacity,
        dram_bytes_per_cycle=32.0,
        sp_bytes_per_cycle=256.0,
        setup_cycles=setup,
        dma_engines=engines,
        device_dataflows=("ws",),
    )


def _shape(m, n, k, batch=1, a=2.0, b=2.0, out=2.0):
    return GemmShape("g", m, n, k, batch, a, b, out)


def _npu(dataflow="ws", scratchpad=None) -> object:
    data = yaml.safe_load((ROOT / "hwconfigs" / "tpu_like.yaml").read_text())
    device = data["devices"][0]
    device["systolic_array"]["dataflow"] = dataflow
    if scratchpad is not None:
        device["scratchpad"]["size"] = scratchpad
    data.pop("sweep", None)
    return Machine.from_config(MachineConfig.model_validate(data)).devices["npu"]


def test_kernel_matches_reference_on_random_candidates():
    rng = np.random.default_rng(6)
    for _ in range(12):
        target = _target(
            rows=int(rng.choice([4, 8, 16])),
            cols=int(rng.choice([4, 8])),
            arrays=int(rng.integers(1, 4)),
            macs=int(rng.integers(1, 3)),
            setup=float(rng.uniform(0, 50)),
            engines=int(rng.integers(1, 3)),
        )
        shape = _shape(
            *(int(v) for v in rng.integers(3, 90, size=3)),
            batch=int(rng.integers(1, 3)),
            a=float(rng.choice([1.0, 2.0])),
        )
        params = model_params(shape, target)
        count = 25
        cand = Candidates(
            tile_m=rng.integers(1, 100, count).astype(np.float64),
            tile_n=rng.integers(1, 100, count).astype(np.float64),
            tile_k=rng.integers(1, 100, count).astype(np.float64),
            loop_order=rng.integers(0, 2, count),
            dataflow=rng.integers(0, 3, count),
            buffers=rng.integers(1, 3, count),
        )
        cycles, bound, dram, replayed = kernel.evaluate_tilings(
            cand.tile_m,
            cand.tile_n,
            cand.tile_k,
            cand.loop_order,
            cand.dataflow,
            cand.buffers,
            params,
            False,
        )
        assert replayed == count
        for i in range(count):
            expected = kernel.candidate_cost_reference(
                int(cand.tile_m[i]),
                int(cand.tile_n[i]),
                int(cand.tile_k[i]),
                kernel.LOOP_ORDERS[cand.loop_order[i]],
                kernel.DATAFLOWS[cand.dataflow[i]],
                int(cand.buffers[i]),
                params,
            )
            assert (cycles[i], bound[i], dram[i]) == pytest.approx(expected, rel=1e-9)
            assert bound[i] <= cycles[i] * (1 + 1e-12)  # the bound prunes soundly


@pytest.mark.parametrize(
    ("m", "n", "k", "batch", "capacity"),
    [(70, 50, 90, 1, 48_000.0), (33, 40, 64, 2, 20_000.0), (8, 60, 120, 1, 9_000.0)],
)
def test_pruned_search_matches_brute_force(m, n, k, batch, capacity):
    target = _target(capacity=capacity)
    shape = _shape(m, n, k, batch)
    found = search_shape(shape, target, max_sizes_per_dim=10_000)
    # brute force: every aligned candidate that fits, each costed by the plain-Python reference
    space = enumerate_candidates(shape, target, max_sizes_per_dim=10_000)
    fits = footprint_bytes(space, shape) <= capacity
    assert 0 < fits.sum() < len(space)  # the capacity binds in these cases
    params = model_params(shape, target)
    best = dict.fromkeys(kernel.DATAFLOWS, np.inf)
    for i in np.flatnonzero(fits):
        flow = kernel.DATAFLOWS[space.dataflow[i]]
        cycles, _, _ = kernel.candidate_cost_reference(
            int(space.tile_m[i]),
            int(space.tile_n[i]),
            int(space.tile_k[i]),
            kernel.LOOP_ORDERS[space.loop_order[i]],
            flow,
            int(space.buffers[i]),
            params,
        )
        best[flow] = min(best[flow], cycles)
    for result in found.by_dataflow:
        assert result.cycles == pytest.approx(best[result.dataflow], rel=1e-9)
    assert found.candidates_replayed < found.candidates_feasible  # the bound pruned something
    assert found.predicted_cycles == pytest.approx(best["ws"], rel=1e-9)


def _shapes_to_check():
    ops = [
        gemm("square", 2048, 2048, 2048, DType.BF16),
        gemm("decode", 8, 4096, 4096, DType.BF16),
        gemm("ragged", 300, 700, 900, DType.INT8),
        gemm("deep", 128, 128, 65536, DType.BF16),
    ]
    graph = lower(load_workload(ROOT / "workloads" / "resnet50.yaml").config)
    convs = [op for op in graph if op.kind == "conv2d"]
    return ops + convs[::12]


@pytest.mark.parametrize(
    ("dataflow", "scratchpad"), [("ws", None), ("os", "2 MiB")], ids=["ws-32MiB", "os-2MiB"]
)
def test_search_is_never_worse_than_the_npu_default(dataflow, scratchpad):
    npu = _npu(dataflow, scratchpad)
    for op in _shapes_to_check():
        result = search_tiling(op, npu)
        assert result.dataflow == dataflow
        default = npu.cost(op).latency_s
        searched = npu.cost(op, result.mapping).latency_s
        assert searched <= default * (1 + NPU_TOLERANCE), (op.name, result.mapping)
        assert result.candidates_evaluated == result.candidates_feasible > 0
        assert result.candidates_per_s > 0


def test_input_stationary_is_reported_from_the_kernel_only():
    npu = _npu("ws")
    result = search_tiling(gemm("gemv", 8, 8192, 8192, DType.BF16), npu)
    flows = {b.dataflow: b for b in result.by_dataflow}
    # the NPU runs WS only: IS and OS appear in by_dataflow, never as the returned mapping
    assert set(flows) == {"ws", "os", "is"} and result.dataflow == "ws"
    assert [f for f, b in flows.items() if b.runs_on_device] == ["ws"]
    assert result.mapping == flows["ws"].mapping


@pytest.mark.parametrize(
    ("m", "n", "faster", "slower"), [(16, 4096, "is", "ws"), (4096, 16, "ws", "is")]
)
def test_the_dataflow_that_streams_the_long_dimension_wins(m, n, faster, slower):
    # a 64 x 8 array: a block takes in its stationary operand one row per cycle, so it streams
    # for at least 64 cycles. WS streams the m rows, IS the n columns; with the other one
    # short (16), its dataflow idles three quarters of each block. DRAM is made fast so that
    # the arrays, not the bandwidth, decide.
    target = TilingTarget(
        **{
            **_target(rows=64, cols=8, arrays=1, capacity=1e9).__dict__,
            "dram_bytes_per_cycle": 1e6,
            "sp_bytes_per_cycle": 1e6,
        }
    )
    flows = {b.dataflow: b for b in search_shape(_shape(m, n, 1024), target).by_dataflow}
    assert flows[faster].cycles < 0.5 * flows[slower].cycles


def test_fpga_search_fits_on_chip_memory():
    fpga = Machine.from_config(load_machine(DATA / "machines" / "tiny_fpga.yaml").config)
    device = fpga.devices["fpga"]
    op = gemm("proj", 512, 4096, 4096, DType.INT8, b_is_weight=True)
    result = search_tiling(op, device)
    t = result.mapping
    footprint = t.buffers * (t.tile_m * t.tile_k + t.tile_k * t.tile_n + 4 * t.tile_m * t.tile_n)
    assert footprint <= device.config.onchip.size_bytes
    assert result.dataflow == "ws" and result.predicted_cycles > 0


def test_bad_requests_name_what_is_allowed():
    npu = _npu("ws")
    x = Tensor("x", (64,), DType.BF16)
    with pytest.raises(ArchsimError, match="gemm and conv2d"):
        search_tiling(Elementwise("act", "silu", (x,), x), npu)
    with pytest.raises(ArchsimError, match="available: ws, os, is"):
        search_tiling(gemm("g", 64, 64, 64, DType.BF16), npu, dataflows=("ws", "xs"))
    with pytest.raises(ArchsimError, match="runs dataflow ws"):
        search_tiling(gemm("g", 64, 64, 64, DType.BF16), npu, dataflows=("is",))
