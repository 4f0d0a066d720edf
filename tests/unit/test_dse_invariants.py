"""Invariants over many random design points of the NPU and GPU models.

More DRAM bandwidth or more compute never makes a design slower; latency and energy are positive
and finite; FLOPs survive lowering and simulation; the same inputs give identical results.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from archsim.config import load_workload, validate_as
from archsim.config.machine import MachineConfig
from archsim.config.overrides import set_path
from archsim.dse.evaluate import evaluate_points
from archsim.dse.space import DesignPoint
from archsim.pipeline import run_point
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]
DATA = Path(__file__).parents[1] / "data"
GEMMS = load_workload(DATA / "workloads" / "tiny_gemms.yaml").config
DECODE = load_workload(ROOT / "workloads" / "llama2_7b_decode.yaml").config
# points per family: each costs three simulations (base, more bandwidth, more compute)
POINTS = 500


def _base(name: str) -> dict:
    raw = yaml.safe_load((ROOT / "hwconfigs" / f"{name}.yaml").read_text())
    raw.pop("sweep", None)
    raw.pop("search", None)
    return raw


NPU_BASE = _base("tpu_like")
GPU_BASE = _base("h100")
GPU_NAME = GPU_BASE["devices"][0]["name"]


def _npu(rng: np.random.Generator) -> tuple[dict, str, list[str]]:
    raw = NPU_BASE
    raw = set_path(raw, "devices.npu.systolic_array.count", int(rng.choice([1, 2, 4, 8, 16])))
    raw = set_path(raw, "devices.npu.systolic_array.rows", int(rng.choice([16, 32, 64, 128, 256])))
    raw = set_path(raw, "devices.npu.systolic_array.cols", int(rng.choice([16, 64, 128, 256])))
    raw = set_path(raw, "devices.npu.systolic_array.dataflow", str(rng.choice(["ws", "os"])))
    raw = set_path(raw, "devices.npu.scratchpad.size", f"{int(rng.choice([2, 4, 16, 64]))} MiB")
    raw = set_path(raw, "devices.npu.dram.bandwidth", f"{rng.uniform(0.1, 4):.3f} TB/s")
    raw = set_path(raw, "devices.npu.clock", f"{int(rng.integers(300, 2000))} MHz")
    return raw, "devices.npu.dram.bandwidth", ["devices.npu.systolic_array.count"]


def _gpu(rng: np.random.Generator) -> tuple[dict, str, list[str]]:
    raw = GPU_BASE
    raw = set_path(raw, f"devices.{GPU_NAME}.sm_count", int(rng.integers(8, 200)))
    raw = set_path(raw, f"devices.{GPU_NAME}.hbm.bandwidth", f"{rng.uniform(0.5, 6):.3f} TB/s")
    # the tensor and vector peaks are per device: more compute is higher peaks (more SMs at the
    # same device peak would only re-cut the same throughput into more, smaller waves)
    dtypes = GPU_BASE["devices"][0]["tensor_throughput"]
    compute = [f"devices.{GPU_NAME}.tensor_throughput.{d}" for d in dtypes]
    return (
        raw,
        f"devices.{GPU_NAME}.hbm.bandwidth",
        [
            *compute,
            f"devices.{GPU_NAME}.vector_throughput",
        ],
    )


def _scaled(raw: dict, paths: list[str], factor: float) -> dict:
    for path in paths:
        node = raw
        for part in path.split("."):
            node = _named(node, part)
        if isinstance(node, str):
            number, unit = node.split(" ", 1)
            raw = set_path(raw, path, f"{float(number) * factor:.6g} {unit}")
        else:
            raw = set_path(raw, path, int(node * factor))
    return raw


def _named(node, part):
    if isinstance(node, list):
        return next(item for item in node if item.get("name") == part)
    return node[part]


def _latency(raw: dict) -> tuple[float, float]:
    outcome = run_point(validate_as(MachineConfig, raw, "<random>"), GEMMS)
    assert outcome.result is not None, outcome.infeasible_reason
    return outcome.result.totals.latency_s, outcome.result.totals.energy_j


@pytest.mark.parametrize("family", [_npu, _gpu], ids=["npu", "gpu"])
def test_more_bandwidth_or_compute_is_never_slower(family):
    rng = np.random.default_rng(2024)
    for _ in range(POINTS):
        raw, bandwidth, compute = family(rng)
        latency, energy = _latency(raw)
        assert 0 < latency < math.inf and 0 < energy < math.inf
        faster_memory, _ = _latency(_scaled(raw, [bandwidth], 2.0))
        more_compute, _ = _latency(_scaled(raw, compute, 2.0))
        assert faster_memory <= latency * (1 + 1e-12), raw
        assert more_compute <= latency * (1 + 1e-12), raw


@pytest.mark.parametrize("workload", [GEMMS, DECODE], ids=["gemms", "llama2_7b_decode"])
def test_flops_are_conserved_through_lowering_and_simulation(workload):
    graph = lower(workload)
    graph_flops = sum(op.flops() for op in graph)
    for raw in (NPU_BASE, GPU_BASE):
        result = run_point(validate_as(MachineConfig, raw, "<base>"), workload, graph=graph).result
        assert result is not None
        assert math.isclose(result.totals.flops, graph_flops, rel_tol=1e-12)
    if workload is GEMMS:
        expected = sum(2.0 * s.m * s.n * s.k * s.batch for s in workload.workload.shapes)
        assert math.isclose(graph_flops, expected, rel_tol=1e-12)


def test_the_same_points_give_identical_rows():
    rng = np.random.default_rng(11)
    points = [
        DesignPoint(i, {}, validate_as(MachineConfig, _npu(rng)[0], "<random>"), GEMMS)
        for i in range(20)
    ]
    first = evaluate_points(points, None)
    again = evaluate_points(list(reversed(points)), None)
    assert sorted(again, key=lambda r: r["point"]) == first
