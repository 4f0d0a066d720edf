"""Sparse DSP chains, placement, mixed precision and compilation cost of the FPGA model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from archsim.config import load_machine
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
