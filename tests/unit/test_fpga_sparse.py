"""Sparse DSP chains, placement, mixed precision and compilation cost of the FPGA model."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from archsim.config import load_machine
from archsim.config.loader import ConfigError, machine_from_text
from archsim.config.machine import DspChainConfig
from archsim.hw import build_device
from archsim.hw.fpga import FpgaDevice, chain_schedule
from archsim.hw.fpga_compile import bucket_tops, compilation_cost, padding_overhead
from archsim.ir import DType, gemm
from archsim.ir.tensor import NM, Block
from archsim.kernels.sparse_chain import (
    block_mask,
    chain_metadata_bits,
    dsp_chain_work,
    dsp_chain_work_reference,
    nm_mask,
    skewed_mask,
)
from archsim.reproduce.flightllm import _pass_ops

ROOT = Path(__file__).parents[2]


def _u280() -> FpgaDevice:
    device = build_device(
        load_machine(ROOT / "hwconfigs" / "u280_flightllm.yaml").config.devices[0]
    )
    assert isinstance(device, FpgaDevice)
    return device


@pytest.mark.parametrize(
    "mask, window, segment",
    [
        (nm_mask(64, 24, 2, 4, seed=1), 4, 2),
        (nm_mask(64, 24, 2, 8, seed=2), 8, 2),
        (skewed_mask(64, 24, 0.3, 1.2, seed=3), 8, 2),
        (block_mask(64, 24, 8, 4, 0.4, seed=4), 1, 1),
        ((np.random.default_rng(5).random((50, 7)) < 0.5).astype(np.uint8), 4, 3),
    ],
)
def test_chain_kernel_matches_reference(mask, window, segment):
    fast = dsp_chain_work(mask, 5, 16, window, segment)
    slow = dsp_chain_work_reference(mask, 5, 16, window, segment)
    np.testing.assert_allclose(fast[0], slow[0])
    np.testing.assert_allclose(fast[1], slow[1])


@pytest.mark.parametrize("n, m, utilization", [(2, 4, 1.0), (2, 8, 1.0), (3, 8, 15 / 16)])
def test_nm_chain_utilization_and_speedup(n, m, utilization):
    k, cols, lanes = 320, 32, 16  # K a multiple of M x segments: no partial last pass
    mask = nm_mask(k, cols, n, m, seed=7)
    cycles, kept = dsp_chain_work(mask, 4, lanes, m, n)
    assert kept.sum() / (cycles.sum() * lanes) == pytest.approx(utilization)
    dense_cycles, _ = dsp_chain_work(np.ones((k, cols), np.uint8), 4, lanes, 1, 1)
    # an N:M chain covers M reduction elements per N slices: (lanes // n) * m per cycle
    assert dense_cycles.sum() / cycles.sum() == pytest.approx((lanes // n) * m / lanes)
    # the density formula of the device model is the kernel's mean per-column cycles
    chain = DspChainConfig(length=lanes, mux_inputs=16)
    assert chain_schedule(k, NM(n, m), chain).cycles_per_column == pytest.approx(
        cycles.sum() / cols
    )


def test_nm_beyond_mux_reach_runs_decompressed():
    chain = DspChainConfig(length=16, mux_inputs=4)
    schedule = chain_schedule(512, NM(2, 8), chain)
    assert schedule.mode == "decompressed"
    assert schedule.cycles_per_column == 512 / 16


def test_imbalance_grows_with_mask_skew():
    imbalance = []
    for skew in (0.0, 0.8, 1.6):
        mask = skewed_mask(256, 64, 0.25, skew, seed=11)
        cycles, _ = dsp_chain_work(mask, 16, 16, 8, 2)
        imbalance.append(cycles.max() / cycles.mean())
    assert imbalance[0] < 1.2  # only sampling noise without skew
    assert imbalance[0] < imbalance[1] < imbalance[2]


def test_block_sparsity_skips_passes():
    mask = block_mask(512, 64, 16, 1, 0.25, seed=3)
    cycles, kept = dsp_chain_work(mask, 8, 16, 1, 1)
    dense, _ = dsp_chain_work(np.ones_like(mask), 8, 16, 1, 1)
    assert cycles.sum() == pytest.approx(dense.sum() * kept.sum() / mask.size, rel=1e-9)
    expected = chain_schedule(512, Block(16, 1, 0.25), DspChainConfig(length=16))
    assert cycles.sum() / 64 == pytest.approx(expected.cycles_per_column, rel=0.15)


def test_metadata_traffic_of_nm_weights():
    assert chain_metadata_bits(1000, 8) == 3000
    assert chain_metadata_bits(1000, 1) == 0
    device = _u280()
    dense = gemm("d", 1, 4096, 4096, DType.INT8)
    sparse = gemm("s", 1, 4096, 4096, DType.INT8, b_sparsity=NM(2, 8))
    dense_bytes = device.cost(dense).bytes_by_level["dram"]
    sparse_bytes = device.cost(sparse).bytes_by_level["dram"]
    weights = 4096 * 4096
    # kept int8 values plus 3 select bits per kept value
    assert sparse_bytes - (dense_bytes - weights) == pytest.approx(weights / 4 * (1 + 3 / 8))


def test_sparse_chain_speeds_up_compute_bound_gemm():
    device = _u280()
    dense = device.cost(gemm("d", 2048, 4096, 4096, DType.INT8))
    sparse = device.cost(gemm("s", 2048, 4096, 4096, DType.INT8, b_sparsity=NM(2, 8)))
    assert dense.bound.value == "compute"
    assert dense.latency_s / sparse.latency_s == pytest.approx(4.0, rel=0.05)


def test_always_on_chip_decode_removes_activation_traffic():
    on = _u280()
    off = FpgaDevice(on.config.model_copy(update={"activations_on_chip": False}))
    op = gemm("gemv", 1, 4096, 4096, DType.FP16)
    assert off.cost(op).bytes_by_level["dram"] > on.cost(op).bytes_by_level["dram"]
    assert off.cost(op).latency_s > on.cost(op).latency_s
    assert on.cost(op).bytes_by_level["dram"] == pytest.approx(op.weight_bytes())


def test_low_bit_weights_stream_fewer_bytes():
    device = _u280()
    base = gemm("w8", 1, 4096, 4096, DType.FP16)
    w8 = dataclasses.replace(base, b=dataclasses.replace(base.b, dtype=DType.INT8))
    w4 = dataclasses.replace(base, b=dataclasses.replace(base.b, dtype=DType.INT4))
    c8, c4 = device.cost(w8), device.cost(w4)
    assert c4.bytes_by_level["dram"] == pytest.approx(c8.bytes_by_level["dram"] / 2)
    assert c4.latency_s < c8.latency_s
    assert "mac.int4" in c4.actions and "mac.int8" in c8.actions


def test_length_adaptive_compilation_reduces_instruction_storage():
    device = _u280()
    max_len = 4096

    def build(phase, length):
        return _pass_ops(phase, length, DType.INT8)

    per_length = compilation_cost(device, build, range(1, max_len + 1, 1))
    adaptive = compilation_cost(device, build, bucket_tops(max_len, 256))
    assert adaptive.streams == 2 * 16
    assert per_length.storage_bytes / adaptive.storage_bytes > 100
    assert 0 < padding_overhead(max_len, 256) < 0.15


def test_sparse_chain_needs_two_slices():
    with pytest.raises(ValidationError, match="length >= 2"):
        DspChainConfig(length=1, mux_inputs=4)


U280_TEXT = (ROOT / "hwconfigs" / "u280_flightllm.yaml").read_text()


def _u280_with(old: str, new: str) -> FpgaDevice:
    assert old in U280_TEXT
    device = build_device(machine_from_text(U280_TEXT.replace(old, new)).config.devices[0])
    assert isinstance(device, FpgaDevice)
    return device


def test_decode_linear_issues_loads_per_channel_and_one_mv_per_output_group():
    device = _u280()
    rule = device.config.instruction.matrix
    k = 4096
    # K chunks: two chunks of one channel's share of a group must fit its weight buffer
    share_bytes = k * rule.mv_outputs_per_group / rule.weight_load_channels
    chunks = math.ceil(share_bytes / (rule.mv_weight_buffer_bytes / 2))
    for groups in (1, 2, 8, 22):
        n = groups * rule.mv_outputs_per_group
        mix = device.instruction_mix(gemm("gemv", 1, n, k, DType.INT8))
        assert mix.computes == groups * chunks
        assert mix.loads == 1 + rule.weight_load_channels * mix.computes
        assert mix.stores == 1
    one = device.instructions(gemm("a", 1, rule.mv_outputs_per_group, k, DType.INT8))
    two = device.instructions(gemm("b", 1, 2 * rule.mv_outputs_per_group, k, DType.INT8))
    assert two - one == chunks * (rule.weight_load_channels + 1)


def test_larger_weight_buffer_needs_fewer_k_chunks():
    small = _u280()
    large = _u280_with('mv_weight_buffer: "262144 B"', 'mv_weight_buffer: "1048576 B"')
    op = gemm("down", 1, 4096, 11008, DType.INT8)
    assert large.instruction_mix(op).computes < small.instruction_mix(op).computes


def test_prefill_linear_instructions_grow_with_rows_and_store_per_block():
    device = _u280()
    rule = device.config.instruction.matrix
    counts = []
    for rows in (128, 256, 1024):
        mix = device.instruction_mix(gemm("wq", rows, 4096, 4096, DType.INT8))
        assert mix.stores == (rows // rule.block) * (4096 // rule.block)
        counts.append(mix.total)
    assert counts == sorted(counts) and counts[-1] > 4 * counts[0]


def test_instruction_storage_prices_each_kind_at_its_size():
    device = _u280()
    rule = device.config.instruction.matrix
    op = gemm("gemv", 1, 4096, 4096, DType.INT8)
    mix = device.instruction_mix(op)
    mean_size = device.instruction_bytes(op) / mix.total
    assert rule.store_size_bytes < mean_size < rule.load_size_bytes


def test_length_adaptive_storage_falls_by_the_ratio_the_buckets_imply():
    device = _u280()
    max_len, bucket = 1024, 64

    def build(phase, length):
        return _pass_ops(phase, length, DType.INT8)

    tops = bucket_tops(max_len, bucket)
    per_length = compilation_cost(device, build, range(1, max_len + 1))
    adaptive = compilation_cost(device, build, tops)
    ratio = per_length.storage_bytes / adaptive.storage_bytes
    # storage grows about linearly with the length (plus a length-free decode part), so the
    # saving lies between sum(lengths) / sum(tops) and the stream-count ratio
    linear = sum(range(1, max_len + 1)) / sum(tops)
    streams = max_len / len(tops)
    assert 0.95 * min(linear, streams) < ratio < 1.05 * max(linear, streams)


def test_per_op_count_without_matrix_rule_is_issued_serially():
    device = _u280()
    spec = device.config.instruction.model_copy(update={"matrix": None, "per_op": 4})
    serial = FpgaDevice(device.config.model_copy(update={"instruction": spec}))
    op = gemm("gemv", 1, 4096, 4096, DType.INT8)
    assert serial.instructions(op) == 4
    bare = FpgaDevice(device.config.model_copy(update={"instruction": None}))
    gap = serial.cost(op).latency_s - bare.cost(op).latency_s
    assert gap == pytest.approx(4 * spec.issue_s)


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("        block: 16", "        block: 16\n        loads_per_op: 3", ["loads_per_op"]),
        ("mv_outputs_per_group: 512", "mv_outputs_per_group: 500", ["multiple", "block"]),
        ('store_size: "12 B"', 'store_size: "12 ns"', ["store_size"]),
        ("weight_load_channels: 8", "weight_load_channels: 0", ["weight_load_channels"]),
        ("      matrix:\n", "      matrx:\n", ["matrx"]),
    ],
    ids=["unknown-field", "group-not-whole-blocks", "size-as-time", "zero-channels", "typo"],
)
def test_bad_instruction_fields_give_clear_errors(old, new, fragments):
    assert old in U280_TEXT
    with pytest.raises(ConfigError) as info:
        machine_from_text(U280_TEXT.replace(old, new, 1), "u280.yaml")
    message = str(info.value)
    assert "instruction" in message and "u280.yaml" in message
    for fragment in fragments:
        assert fragment in message
