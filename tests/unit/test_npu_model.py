"""Behaviour of the NPU model: each effect of its fidelity ladder, pinned by a test that could fail."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
from shipped_devices import NPU_BASE

from archsim.config import load_machine
from archsim.config.machine import NpuConfig
from archsim.energy.pricing import action_energy_j
from archsim.errors import InfeasibleError
from archsim.hw.base import Bound, DeviceModel
from archsim.hw.npu import NpuDevice
from archsim.hw.tiling import GemmTiling
from archsim.ir.ops import Collective, Elementwise, attention, gemm
from archsim.ir.tensor import NM, DType, Tensor

REPO = Path(__file__).resolve().parents[2]

BASE = NPU_BASE


def npu(**changes: Any) -> NpuDevice:
    """The base NPU with dotted-path changes, e.g. ``npu(**{"systolic_array.count": 8})``."""
    raw = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = raw
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return NpuDevice(NpuConfig.model_validate(raw))


def test_satisfies_the_device_protocol() -> None:
    device = npu()
    assert isinstance(device, DeviceModel)
    assert device.kind == "npu"
    assert {"roofline", "tiling", "fill_drain", "double_buffering"} <= set(device.fidelity)


def test_double_buffering_hides_dma_when_compute_bound() -> None:
    op = gemm("g", 2048, 2048, 2048)
    tiling = GemmTiling(512, 512, 512, buffers=2)
    double = npu().cost(op, tiling)
    single = npu().cost(op, GemmTiling(512, 512, 512, buffers=1))
    # the same tiles with DMA made almost free: the compute-only time
    no_dma = npu(**{"dram.bandwidth": "1000 TB/s", "dma.setup": "0 ns"}).cost(op, tiling)
    assert double.bound is Bound.COMPUTE
    assert double.latency_s <= 1.05 * no_dma.latency_s
    assert single.latency_s >= 1.15 * no_dma.latency_s
    assert single.latency_s > double.latency_s


def test_fill_drain_makes_small_m_gemms_less_efficient() -> None:
    fast_dram = npu(**{"dram.bandwidth": "1000 TB/s"})  # isolate the arrays
    small = fast_dram.cost(gemm("small", 32, 2048, 2048))
    large = fast_dram.cost(gemm("large", 4096, 2048, 2048))
    assert large.utilization > 0.8
    assert small.utilization < 0.5 * large.utilization
    # per MAC, the small GEMM takes longer
    assert small.latency_s / 32 > large.latency_s / 4096


def test_more_arrays_speed_up_a_compute_bound_gemm() -> None:
    op = gemm("g", 4096, 4096, 4096)
    two = npu(**{"systolic_array.count": 2}).cost(op)
    eight = npu(**{"systolic_array.count": 8}).cost(op)
    assert two.bound is Bound.COMPUTE
    assert two.latency_s / eight.latency_s > 3.0


@pytest.mark.parametrize("bandwidth_tb_s", [0.25, 0.5, 1.0])
def test_gemv_time_tracks_weight_bytes_over_dram_bandwidth(bandwidth_tb_s: float) -> None:
    op = gemm("gemv", 1, 8192, 8192)
    device = npu(**{"systolic_array.count": 8, "dram.bandwidth": f"{bandwidth_tb_s} TB/s"})
    cost = device.cost(op)
    stream_s = op.b.stored_bytes / (bandwidth_tb_s * 1e12)
    assert cost.bound is Bound.MEMORY
    assert stream_s <= cost.latency_s <= 1.15 * stream_s
    # the weights cross DRAM once
    assert cost.bytes_by_level["dram"] == pytest.approx(op.bytes(), rel=0.01)


def test_gemv_time_halves_when_bandwidth_doubles() -> None:
    op = gemm("gemv", 1, 8192, 8192)
    slow = npu(**{"systolic_array.count": 8, "dram.bandwidth": "0.5 TB/s"}).cost(op)
    fast = npu(**{"systolic_array.count": 8, "dram.bandwidth": "1 TB/s"}).cost(op)
    assert 1.8 < slow.latency_s / fast.latency_s < 2.05


def test_elementwise_is_memory_bound() -> None:
    shape = (4096, 4096)
    ins = (Tensor("x", shape, DType.BF16), Tensor("y", shape, DType.BF16))
    op = Elementwise("add", function="add", ins=ins, out=Tensor("z", shape, DType.BF16))
    cost = npu().cost(op)
    stream_s = op.bytes() / 1e12
    assert cost.bound is Bound.MEMORY
    assert stream_s <= cost.latency_s <= 1.1 * stream_s + 1e-6
    assert cost.actions["vector_op"] == op.flops()


def test_area_grows_with_rows_cols_and_scratchpad() -> None:
    base = npu().area_mm2()
    per_pe = 0.001
    assert npu(**{"systolic_array.rows": 256}).area_mm2() - base == pytest.approx(
        per_pe * 4 * 128 * 128
    )
    assert npu(**{"systolic_array.cols": 256}).area_mm2() > base
    assert npu(**{"systolic_array.count": 8}).area_mm2() > base
    assert npu(**{"scratchpad.size": "32 MiB"}).area_mm2() - base == pytest.approx(0.5 * 16)
    assert npu(**{"dram.bandwidth": "2 TB/s"}).area_mm2() - base == pytest.approx(40.0)


def test_tiling_that_overflows_the_scratchpad_is_infeasible() -> None:
    op = gemm("g", 4096, 4096, 4096)
    # 2 x (4096x4096 a + 4096x4096 b in bf16 + 4096x4096 fp32 out) = 256 MiB > 16 MiB
    with pytest.raises(InfeasibleError, match="scratchpad"):
        npu().cost(op, GemmTiling(4096, 4096, 4096))


def test_given_tiling_is_used_and_reported() -> None:
    cost = npu().cost(gemm("g", 1024, 1024, 1024), GemmTiling(256, 512, 1024))
    assert "256x512x1024" in cost.notes
    assert "ws" in cost.notes


def test_single_buffering_fits_where_double_does_not() -> None:
    op = gemm("g", 2048, 2048, 2048)
    # one copy of 1024x1024 a, b (bf16) and out (fp32) is 8 MiB; two copies are 16 MiB + change
    small = npu(**{"scratchpad.size": "12 MiB"})
    with pytest.raises(InfeasibleError):
        small.cost(op, GemmTiling(1024, 1024, 1024, buffers=2))
    assert small.cost(op, GemmTiling(1024, 1024, 1024, buffers=1)).latency_s > 0


def test_chosen_tiling_fits_and_beats_a_poor_one() -> None:
    op = gemm("g", 2048, 4096, 4096)
    device = npu()
    chosen = device.cost(op)
    poor = device.cost(op, GemmTiling(128, 128, 128))
    assert chosen.latency_s <= poor.latency_s
    assert chosen.bytes_by_level["dram"] < poor.bytes_by_level["dram"]


def test_sparse_weights_move_fewer_bytes_but_do_the_dense_math() -> None:
    dense = gemm("d", 1, 8192, 8192)
    sparse = gemm("s", 1, 8192, 8192, b_sparsity=NM(2, 4))
    device = npu(**{"systolic_array.count": 8})
    d, s = device.cost(dense), device.cost(sparse)
    assert s.actions["read.dram"] < 0.7 * d.actions["read.dram"]
    assert s.actions["mac.bf16"] == d.actions["mac.bf16"]
    assert s.latency_s < d.latency_s


def test_int8_runs_at_its_packed_rate() -> None:
    op16 = gemm("g", 4096, 4096, 4096, DType.BF16)
    op8 = gemm("g", 4096, 4096, 4096, DType.INT8)
    device = npu(**{"dram.bandwidth": "100 TB/s"})
    assert device.cost(op16).latency_s / device.cost(op8).latency_s > 1.6


def test_causal_prefill_attention_does_about_half_the_work() -> None:
    kwargs = dict(batch=1, heads_q=32, heads_kv=32, q_len=2048, kv_len=2048, head_dim=128)
    full = npu().cost(attention("a", causal=False, **kwargs))
    causal = npu().cost(attention("a", causal=True, **kwargs))
    assert causal.actions["mac.bf16"] == pytest.approx(full.actions["mac.bf16"] / 2, rel=0.01)
    assert 0.4 < causal.latency_s / full.latency_s < 0.65


def test_gqa_decode_reads_less_kv_than_mha() -> None:
    kwargs = dict(batch=4, heads_q=32, q_len=1, kv_len=4096, head_dim=128, causal=False)
    # eight arrays absorb K/V at 2 KB/cycle, faster than DRAM delivers them (1 KB/cycle)
    device = npu(**{"systolic_array.count": 8})
    mha = device.cost(attention("a", heads_kv=32, **kwargs))
    gqa = device.cost(attention("a", heads_kv=8, **kwargs))
    assert gqa.actions["read.dram"] < 0.4 * mha.actions["read.dram"]
    assert gqa.latency_s < mha.latency_s
    assert mha.bound is Bound.MEMORY


def test_collectives_are_not_supported() -> None:
    buf = Tensor("b", (1024,), DType.BF16)
    op = Collective("ar", function="allreduce", buffer=buf, out=buf, participants=4)
    assert not npu().supports(op)


def test_every_counted_action_has_a_price() -> None:
    device = npu()
    ops = [
        gemm("g", 64, 1024, 1024),
        gemm("g8", 64, 1024, 1024, DType.INT8),
        attention(
            "a", batch=1, heads_q=8, heads_kv=2, q_len=1, kv_len=512, head_dim=64, causal=False
        ),
    ]
    prices = device.energy_per_action_j()
    for op in ops:
        assert action_energy_j(device.cost(op).actions, prices) > 0


def test_shipped_tpu_like_machine() -> None:
    loaded = load_machine(REPO / "hwconfigs" / "tpu_like.yaml").config
    (config,) = loaded.devices
    device = NpuDevice(config)
    # TPU v4: 275 TFLOP/s bf16 peak
    assert device.peak_flops_per_s(DType.BF16) == pytest.approx(275e12, rel=0.01)
    # Llama-2-7B bf16 weights (6.74e9 parameters) plus a 4k-token KV cache fit in DRAM
    weights = 6.74e9 * 2
    kv_cache = 2 * 32 * 4096 * 4096 * 2  # K and V, 32 layers, 4096 positions, d_model 4096
    assert device.memory_capacity_bytes() > weights + kv_cache
    sweep = loaded.sweep or {}
    assert math.prod(len(v) for v in sweep.values()) >= 50


def test_gemv_on_few_arrays_is_limited_by_loading_weights() -> None:
    # two WS arrays take in 2 x 128 bf16 weights (512 B) per cycle, half what DRAM delivers
    op = gemm("gemv", 1, 8192, 8192)
    cost = npu(**{"systolic_array.count": 2}).cost(op)
    assert cost.bound is Bound.COMPUTE
    assert cost.latency_s >= op.b.stored_bytes / (512 * 1e9)


@pytest.mark.parametrize(("n", "k"), [(4096, 4096), (11008, 4096), (4096, 11008)])
def test_taller_gemms_never_finish_sooner(n: int, k: int) -> None:
    device = npu()
    latencies = [device.cost(gemm("g", m, n, k)).latency_s for m in (1, 4, 16, 64, 256, 1024)]
    assert latencies == sorted(latencies)


@pytest.mark.parametrize(
    ("batch", "heads_kv", "kv_len"), [(64, 8, 4096), (256, 8, 512), (8, 2, 32768)]
)
def test_decode_attention_streams_kv_at_dram_bandwidth(
    batch: int, heads_kv: int, kv_len: int
) -> None:
    # K/V streaming past stationary queries: 4 arrays x 128 bf16 per cycle is 1 KB/cycle, as fast
    # as DRAM, so a large KV cache must take about its bytes over the DRAM bandwidth (1 TB/s),
    # not the K/V-stationary mapping's one weight row per cycle plus per-GEMM fill and drain
    op = attention(
        "a",
        batch=batch,
        heads_q=4 * heads_kv,
        heads_kv=heads_kv,
        q_len=1,
        kv_len=kv_len,
        head_dim=128,
        causal=False,
    )
    cost = npu().cost(op)
    kv_bytes = op.k.stored_bytes + op.v.stored_bytes
    bandwidth_s = kv_bytes / 1e12
    assert bandwidth_s <= cost.latency_s <= 1.15 * bandwidth_s
    assert cost.bound is Bound.MEMORY
    assert "kv-streaming" in cost.notes


def test_prefill_attention_keeps_kv_stationary() -> None:
    # with thousands of query rows each K block is reused, so loading it as the stationary operand wins
    op = attention(
        "a", batch=1, heads_q=32, heads_kv=32, q_len=2048, kv_len=2048, head_dim=128, causal=False
    )
    assert "kv-stationary" in npu().cost(op).notes
