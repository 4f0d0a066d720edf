"""Every registered device model passes the same checks (one parametrized suite, no per-family copies).

A new device family gets these checks by adding its kind and a machine file to ``MACHINE_FOR_KIND``;
the first test fails until it does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from archsim.config import load_machine
from archsim.hw import Bound, build_device, registered_kinds
from archsim.ir import DType, attention, gemm
from archsim.ir.ops import Elementwise, MoeCombine, MoeDispatch, MoeRouter, Norm, Softmax
from archsim.ir.tensor import NM, Tensor

ROOT = Path(__file__).parents[2]
MACHINE_FOR_KIND = {
    "gpu": ROOT / "hwconfigs" / "h100.yaml",
    "npu": ROOT / "hwconfigs" / "tpu_like.yaml",
    "pim": ROOT / "tests" / "data" / "machines" / "tiny_pim.yaml",
    "logic_pim": ROOT / "hwconfigs" / "duplex.yaml",
    "fpga": ROOT / "tests" / "data" / "machines" / "tiny_fpga.yaml",
}


def _device(kind: str):
    config = load_machine(MACHINE_FOR_KIND[kind]).config
    return build_device(next(d for d in config.devices if d.kind == kind))


def _sample_ops():
    bf16 = DType.BF16
    x = Tensor("x", (64, 4096), bf16)
    routing = Tensor("routing", (64, 2), DType.INT8)
    return [
        gemm("gemv", 1, 4096, 4096),
        gemm("skinny", 16, 11008, 4096),
        gemm("square", 2048, 2048, 2048),
        gemm("batched", 1, 2048, 128, batch=256, b_is_weight=False),
        gemm("sparse24", 512, 4096, 4096, b_sparsity=NM(2, 4)),
        gemm("int8", 1024, 4096, 4096, dtype=DType.INT8),
        attention(
            "prefill",
            batch=1,
            heads_q=32,
            heads_kv=8,
            q_len=2048,
            kv_len=2048,
            head_dim=128,
            causal=True,
        ),
        attention(
            "decode",
            batch=8,
            heads_q=32,
            heads_kv=8,
            q_len=1,
            kv_len=4096,
            head_dim=128,
            causal=False,
        ),
        Elementwise(
            "add", "add", (x, Tensor("y", (64, 4096), bf16)), Tensor("z", (64, 4096), bf16)
        ),
        Norm(
            "norm",
            "rmsnorm",
            x,
            Tensor("g", (4096,), bf16, is_weight=True),
            Tensor("n", (64, 4096), bf16),
        ),
        Softmax("softmax", Tensor("s", (32, 2048), bf16), Tensor("p", (32, 2048), bf16)),
        MoeRouter(
            "router",
            x,
            Tensor("wr", (4096, 8), bf16, is_weight=True),
            routing,
            tokens=64,
            experts=8,
            top_k=2,
            expert_tokens=(16,) * 8,
        ),
        MoeDispatch("dispatch", x, routing, Tensor("xd", (128, 4096), bf16)),
        MoeCombine(
            "combine",
            Tensor("eo", (128, 4096), bf16),
            routing,
            Tensor("co", (64, 4096), bf16),
            top_k=2,
        ),
    ]


OPS = _sample_ops()
KINDS = sorted(MACHINE_FOR_KIND)


def test_every_registered_kind_is_covered():
    assert set(registered_kinds()) <= set(MACHINE_FOR_KIND)


@pytest.fixture(scope="module", params=KINDS)
def device(request):
    return _device(request.param)


def test_device_describes_itself(device):
    assert device.kind in KINDS and device.name
    assert device.fidelity and "roofline" in device.fidelity
    assert device.area_mm2() > 0
    assert device.static_power_w() >= 0
    assert device.memory_capacity_bytes() > 0
    assert device.peak_bw_bytes_per_s() > 0
    assert device.clock_hz > 0


def test_device_runs_the_basic_dense_ops(device):
    assert device.supports(OPS[0]) and device.supports(OPS[2])


@pytest.mark.parametrize("op", OPS, ids=[op.name for op in OPS])
def test_cost_is_sane_and_above_roofline(device, op):
    if not device.supports(op):
        pytest.skip(f"{device.kind} does not run {op.kind}")
    cost = device.cost(op)
    assert math.isfinite(cost.latency_s) and cost.latency_s > 0
    assert cost.cycles == pytest.approx(cost.latency_s * device.clock_hz, rel=1e-6)
    assert isinstance(cost.bound, Bound)
    assert 0.0 <= cost.utilization <= 1.0 + 1e-9
    assert all(v >= 0 for v in cost.bytes_by_level.values())
    bound = device.roofline(op)
    assert cost.latency_s >= bound.latency_s * (1 - 1e-9), (cost, bound)
    prices = device.energy_per_action_j()
    assert set(cost.actions) <= set(prices), set(cost.actions) - set(prices)
    assert all(count >= 0 for count in cost.actions.values())
    assert device.cost(op) == cost  # deterministic


@pytest.mark.parametrize("op", OPS[:3], ids=[op.name for op in OPS[:3]])
def test_more_work_never_takes_less_time(device, op):
    bigger = gemm("bigger", op.m * 4, op.n, op.k)
    assert device.cost(bigger).latency_s >= device.cost(op).latency_s


def test_gemm_counts_its_macs(device):
    op = OPS[2]
    cost = device.cost(op)
    assert cost.actions.get("mac.bf16", 0) == pytest.approx(op.flops() / 2, rel=0.01)


def test_peak_is_zero_for_unsupported_dtype_or_positive(device):
    for dtype in DType:
        assert device.peak_flops_per_s(dtype) >= 0
    assert device.peak_flops_per_s(DType.BF16) > 0
