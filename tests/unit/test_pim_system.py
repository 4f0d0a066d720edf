"""DRAM timing, bank-level and logic-die PIM, the SimPy system level, NeuPIMs and Duplex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archsim.config import load_machine
from archsim.hw import build_device
from archsim.hw.machine import Machine
from archsim.hw.memory import HBM2, HBM2E, HBM3, random_pattern, serve_stream, streaming_pattern
from archsim.hw.memory.timing import timing_params
from archsim.ir import gemm
from archsim.ir.graph import OpGraph
from archsim.kernels import dram_timing as k
from archsim.mappers import get_mapper
from archsim.reproduce.neupims import GPT3_7B
from archsim.sim.system import Request, SystemPlan, serve_requests, simulate_decode_step

ROOT = Path(__file__).parents[2]


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(ROOT / "hwconfigs" / f"{name}.yaml").config)


@pytest.mark.parametrize("std", [HBM2, HBM2E, HBM3], ids=lambda s: s.name)
def test_kernel_matches_reference(std):
    for banks, rows in (streaming_pattern(std, 3000), random_pattern(std, 2000, seed=3, rows=8)):
        params = timing_params(std)
        assert k.simulate_dram_stream(banks, rows, params) == pytest.approx(
            k.simulate_dram_stream_reference(banks, rows, params)
        )


# datasheet peaks per stack: HBM2 256 GB/s (JESD235A, 2 Gb/s x 1024 pins), HBM2E 409.6 GB/s
# (JESD235C, 3.2 Gb/s), HBM3 819.2 GB/s (JESD238, 6.4 Gb/s)
@pytest.mark.parametrize(
    "std, stack_gb_s", [(HBM2, 256.0), (HBM2E, 409.6), (HBM3, 819.2)], ids=["hbm2", "hbm2e", "hbm3"]
)
def test_streaming_reaches_datasheet_peak_less_refresh(std, stack_gb_s):
    assert std.stack_peak_bw_bytes_per_s / 1e9 == pytest.approx(stack_gb_s)
    stats = serve_stream(std, *streaming_pattern(std, 100_000))
    efficiency = stats.achieved_bw_bytes_per_s / std.channel_peak_bw_bytes_per_s
    refresh_share = std.t_rfc_s / std.t_refi_s
    # streaming loses refresh time and a little row switching, nothing more
    assert 1 - refresh_share - 0.04 < efficiency < 1 - refresh_share + 0.01
    random = serve_stream(std, *random_pattern(std, 20_000))
    assert random.achieved_bw_bytes_per_s < 0.4 * stats.achieved_bw_bytes_per_s


def test_refresh_costs_appear():
    banks, rows = streaming_pattern(HBM2, 50_000)
    params = timing_params(HBM2)
    with_refresh = k.simulate_dram_stream(banks, rows, params)
    params[k.T_REFI] = 1e12
    without = k.simulate_dram_stream(banks, rows, params)
    assert with_refresh[3] > 10 and without[3] == 0
    assert with_refresh[0] / without[0] - 1 == pytest.approx(HBM2.t_rfc_s / HBM2.t_refi_s, rel=0.35)


def _crossover(npu, pim) -> int:
    """Smallest M at which the NPU runs an M x 4096 x 4096 GEMM faster than PIM."""
    for m in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        op = gemm("g", m, 4096, 4096)
        if npu.cost(op).latency_s < pim.cost(op).latency_s:
            return m
    return 512


def test_pim_wins_below_op_per_byte_crossover_and_it_moves_with_bandwidth_ratio(tmp_path):
    config = load_machine(ROOT / "hwconfigs" / "neupims.yaml").config
    npu = build_device(config.devices[0])
    pim = build_device(config.devices[1])
    gemv = gemm("gemv", 1, 4096, 4096)
    assert pim.cost(gemv).latency_s < npu.cost(gemv).latency_s
    wide = gemm("gemm", 512, 4096, 4096)
    assert pim.cost(wide).latency_s > npu.cost(wide).latency_s
    base = _crossover(npu, pim)
    # a 4x faster NPU memory narrows the bandwidth ratio: PIM's lead ends at a lower Op/B
    text = (ROOT / "hwconfigs" / "neupims.yaml").read_text()
    faster_file = tmp_path / "faster.yaml"
    faster_file.write_text(text.replace('bandwidth: "1024 GB/s"', 'bandwidth: "4096 GB/s"', 1))
    faster = load_machine(faster_file).config
    assert _crossover(build_device(faster.devices[0]), pim) < base


def test_dual_row_buffers_remove_blocked_serialization():
    contexts = list(np.random.default_rng(1).integers(64, 512, 128))
    plan = SystemPlan("npu", "pim", sub_batches=2)
    blocked = simulate_decode_step(
        _machine("neupims_naive"), GPT3_7B, contexts, plan, tensor_parallel=4
    )
    dual = simulate_decode_step(_machine("neupims"), GPT3_7B, contexts, plan, tensor_parallel=4)
    # blocked: NPU and PIM take turns, the step is the sum of their busy times
    assert blocked.latency_s == pytest.approx(sum(blocked.busy_s.values()), rel=1e-6)
    # dual row buffers: PIM runs beside the NPU and hides behind it
    assert dual.latency_s < blocked.latency_s - 0.5 * dual.busy_s["pim"]
    assert dual.latency_s == pytest.approx(max(dual.busy_s.values()), rel=0.02)


def test_sub_batch_interleaving_overlaps_gemm_and_gemv():
    contexts = list(np.random.default_rng(2).integers(64, 512, 256))
    machine = _machine("neupims")
    one = simulate_decode_step(
        machine, GPT3_7B, contexts, SystemPlan("npu", "pim"), tensor_parallel=4
    )
    two = simulate_decode_step(
        machine, GPT3_7B, contexts, SystemPlan("npu", "pim", 2), tensor_parallel=4
    )
    # one batch: the phases alternate, nothing overlaps (the softmax round trip between the
    # two GEMVs adds to that: tests/unit/test_pim_channels.py)
    assert one.latency_s >= sum(one.busy_s.values()) * (1 - 1e-9)
    # two sub-batches: PIM attention of one hides behind NPU GEMMs of the other
    assert two.latency_s < 0.97 * sum(two.busy_s.values())
    assert two.latency_s >= max(two.busy_s.values()) * (1 - 1e-9)


def test_continuous_batching_gives_throughput_and_token_latency():
    stream = [
        Request(arrival_s=i * 1e-3, prompt_len=32 + 16 * i, output_len=4 + i % 3) for i in range(12)
    ]
    result = serve_requests(
        _machine("neupims"),
        GPT3_7B,
        stream,
        SystemPlan("npu", "pim", 2),
        max_batch=8,
        tensor_parallel=4,
    )
    assert result.tokens == sum(r.output_len for r in stream)
    assert result.tokens_per_s > 0 and result.mean_token_latency_s > 0
    assert result.makespan_s >= stream[-1].arrival_s


def test_heterogeneous_mapper_places_gemv_on_pim_and_gemm_on_npu():
    machine = _machine("neupims")
    graph = OpGraph(
        "mix", [gemm("gemv", 1, 4096, 4096), gemm("gemm", 1024, 4096, 4096, a_name="x2")]
    )
    schedule = get_mapper("heterogeneous").map(graph, machine)
    assert [e.device for e in schedule.entries] == ["pim", "npu"]


def test_pim_counts_commands_and_activations():
    pim = build_device(load_machine(ROOT / "hwconfigs" / "neupims.yaml").config.devices[1])
    cost = pim.cost(gemm("gemv", 1, 4096, 4096))
    assert cost.actions["pim.command"] > 0 and cost.actions["dram.activate"] > 0
    assert cost.actions["dram.activate"] * HBM2.row_bytes == pytest.approx(
        4096 * 4096 * 2, rel=0.01
    )
