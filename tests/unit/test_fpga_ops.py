"""Every op kind of the shipped transformer workloads on the FPGA overlay, and their costs."""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import load_machine
from archsim.config.loader import load_workload
from archsim.hw import build_device
from archsim.hw.fpga import FpgaDevice
from archsim.ir import DType, gemm
from archsim.ir.ops import Embedding
from archsim.ir.tensor import Tensor
from archsim.pipeline import run_point
from archsim.reproduce.flightllm import decode_ops, run_ops
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]
MACHINES = ("u280_flightllm", "vhk158_flightllm")


def _machine(name: str):
    return load_machine(ROOT / "hwconfigs" / f"{name}.yaml").config


def _device(name: str) -> FpgaDevice:
    device = build_device(_machine(name).devices[0])
    assert isinstance(device, FpgaDevice)
    return device


def _workload(name: str, **changes: object):
    config = load_workload(ROOT / "workloads" / f"{name}.yaml").config
    if changes:
        config = config.model_copy(update={"workload": config.workload.model_copy(update=changes)})
    return config


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("workload", ["llama2_7b_decode", "mixtral_8x7b_decode"])
def test_every_lowered_op_is_supported_and_costed(machine: str, workload: str) -> None:
    device = _device(machine)
    ops = list(lower(_workload(workload, layers=1)).ops())
    kinds = {op.kind for op in ops}
    assert {"embedding", "norm", "elementwise", "attention", "gemm"} <= kinds
    if workload.startswith("mixtral"):
        assert {"moe_router", "moe_dispatch", "moe_combine"} <= kinds
    for op in ops:
        assert device.supports(op), f"{machine} refuses {op.name} ({op.kind}, {op.dtype})"
        cost = device.cost(op)
        assert cost.latency_s > 0
        assert cost.latency_s >= device.roofline(op).latency_s * (1 - 1e-9)


def test_bf16_runs_on_the_fp16_datapath_and_unconfigured_formats_are_refused() -> None:
    device = _device("u280_flightllm")
    bf16 = gemm("x", 8, 4096, 4096, DType.BF16)
    fp16 = gemm("x", 8, 4096, 4096, DType.FP16)
    assert device.peak_flops_per_s(DType.BF16) == device.peak_flops_per_s(DType.FP16) > 0
    assert device.cost(bf16).latency_s == pytest.approx(device.cost(fp16).latency_s)
    assert "mac.fp16" in device.cost(bf16).actions
    assert not device.supports(gemm("x", 8, 4096, 4096, DType.FP8))


def _embedding(rows: int, vocab: int, d_model: int = 4096) -> Embedding:
    table = Tensor("embed.table", (vocab, d_model), DType.FP16, is_weight=True)
    return Embedding("embed", table, Tensor("embed.out", (rows, d_model), DType.FP16))


def test_embedding_moves_the_gathered_rows_not_the_table() -> None:
    device = _device("u280_flightllm")
    bw = device.config.dram.bw_bytes_per_s * device.config.dram_efficiency
    small, large = _embedding(64, 32000), _embedding(64, 128256)
    for op in (small, large):
        cost = device.cost(op)
        assert cost.bytes_by_level["dram"] == pytest.approx(op.bytes_read())
        assert cost.latency_s >= op.bytes_read() / bw
    # a larger vocabulary holds more rows but gathers the same ones
    assert device.cost(large).latency_s == pytest.approx(device.cost(small).latency_s)
    # gathering 4x the rows moves 4x the bytes; the fixed HBM latency stays
    few, many = device.cost(_embedding(64, 32000)), device.cost(_embedding(256, 32000))
    assert many.bytes_by_level["dram"] == pytest.approx(4 * few.bytes_by_level["dram"])
    assert many.latency_s > few.latency_s
    latency_s = device.config.dram.latency_s
    assert many.latency_s - latency_s == pytest.approx(4 * (few.latency_s - latency_s), rel=0.01)


@pytest.mark.parametrize(
    ("machine", "workload", "layers"),
    [
        ("u280_flightllm", "llama2_7b_decode", 2),
        ("u280_flightllm", "mixtral_8x7b_decode", 1),
        ("vhk158_flightllm", "llama2_7b_decode", None),
    ],
)
def test_simulated_step_is_bounded_by_bytes_and_flops(
    machine: str, workload: str, layers: int | None
) -> None:
    config = _workload(workload, layers=layers) if layers else _workload(workload)
    outcome = run_point(_machine(machine), config)
    assert outcome.result is not None, outcome.infeasible_reason
    totals = outcome.result.totals
    assert totals.latency_s > 0 and totals.energy_j > 0 and totals.flops > 0
    device = _device(machine)
    ops = list(lower(config).ops())
    bw = device.peak_bw_bytes_per_s()
    # no step beats its DRAM traffic at peak bandwidth or its MACs at the peak rate; per-op
    # overheads (sustained rather than peak bandwidth, HBM latency, chain fill, ops bound the
    # other way) may add up to half again
    dram_s = sum(device.cost(op).bytes_by_level["dram"] for op in ops) / bw
    compute_s = sum(op.flops() for op in ops) / device.peak_flops_per_s(DType.BF16)
    bound_s = max(dram_s, compute_s)
    assert bound_s <= totals.latency_s <= 1.5 * bound_s


def test_simulate_and_the_flightllm_reproduction_agree_on_one_setup() -> None:
    # the reproduction sums the same device costs op by op; on its setup (fp16, batch 1, 512
    # cached tokens) the simulated step must be the same
    config = _workload("llama2_7b_decode", batch=1, seq_len=512, dtype=DType.FP16, layers=2)
    outcome = run_point(_machine("u280_flightllm"), config)
    assert outcome.result is not None
    step_s, _ = run_ops(_device("u280_flightllm"), decode_ops(512, layers=2))
    assert outcome.result.totals.latency_s == pytest.approx(step_s, rel=1e-6)


def test_low_bit_weights_shorten_a_memory_bound_step() -> None:
    device = _device("u280_flightllm")
    fp16_s, _ = run_ops(device, decode_ops(512, layers=2))
    int8_s, _ = run_ops(device, decode_ops(512, DType.INT8, layers=2))
    assert int8_s < 0.7 * fp16_s
