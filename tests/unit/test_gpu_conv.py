"""GPU convolutions: implicit GEMM on the tensor cores, direct kernels for depthwise groups, and
pooling as a streaming kernel; every op of the shipped CNN workloads runs on the GPU machines."""

from __future__ import annotations

from pathlib import Path

import pytest
from shipped_devices import CNN_MODELS, shipped_gpu

from archsim.config import load_workload
from archsim.hw.base import Bound
from archsim.hw.gpu import GpuDevice
from archsim.ir.ops import Conv2d, Op
from archsim.ir.tensor import DType
from archsim.workloads import lower
from archsim.workloads.cnn import CnnBuilder

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "workloads"
CNN_WORKLOADS = CNN_MODELS


_gpu = shipped_gpu


@pytest.fixture(scope="module")
def h100() -> GpuDevice:
    return _gpu("h100")


def _graph(name: str) -> list[Op]:
    return list(lower(load_workload(WORKLOADS / f"{name}.yaml").config))


def _conv(
    dtype: DType = DType.FP16,
    *,
    batch: int = 32,
    channels: int = 256,
    size: int = 56,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
) -> Conv2d:
    builder = CnnBuilder(batch=batch, dtype=dtype)
    x = builder.input("x", channels, size, size)
    builder.conv("c", x, channels, kernel, stride=stride, groups=groups)
    (op,) = builder.ops
    assert isinstance(op, Conv2d)
    return op


@pytest.mark.parametrize("workload", CNN_WORKLOADS)
def test_every_cnn_op_runs_on_h100(h100, workload):
    for op in _graph(workload):
        assert h100.supports(op), f"{workload}: {op.name} ({op.kind}, {op.dtype.value})"
        cost = h100.cost(op)
        assert cost.latency_s > 0
        if op.kind == "conv2d":
            assert "implicit GEMM" in cost.notes or "direct conv" in cost.notes


def test_large_3x3_conv_costs_about_its_gemm(h100):
    # deep enough (K = 4608) that even the explicit im2col GEMM is compute-bound
    conv = _conv(channels=512, size=28)
    equivalent = conv.as_gemm()
    conv_cost, gemm_cost = h100.cost(conv), h100.cost(equivalent)
    assert "implicit GEMM" in conv_cost.notes
    assert conv_cost.bound is Bound.COMPUTE and gemm_cost.bound is Bound.COMPUTE
    assert conv_cost.latency_s == pytest.approx(gemm_cost.latency_s, rel=0.10)
    # the patches are formed on chip: HBM reads the input once, not the 9x larger im2col matrix
    assert conv_cost.actions["read.hbm"] < gemm_cost.actions["read.hbm"]
    assert conv_cost.actions["read.hbm"] <= conv.bytes_read()
    assert conv_cost.actions[f"mac.{DType.FP16.value}"] == pytest.approx(conv.flops() / 2)


def test_strided_1x1_conv_reads_only_the_pixels_it_samples(h100):
    conv = _conv(kernel=1, stride=2)
    cost = h100.cost(conv)
    assert cost.actions["read.hbm"] < conv.x.stored_bytes
    assert cost.actions["read.hbm"] >= conv.as_gemm().a.stored_bytes


def test_depthwise_conv_is_a_memory_bound_direct_kernel(h100):
    conv = _conv(groups=256)
    cost = h100.cost(conv)
    assert "direct conv" in cost.notes
    assert cost.bound is Bound.MEMORY
    # one pass over input, weights and output at (below) HBM bandwidth
    assert cost.latency_s >= conv.bytes() / h100.peak_bw_bytes_per_s()
    # the grouped implicit GEMM would pad each 1-filter group to a whole tile
    assert cost.latency_s < h100.cost(conv.as_gemm()).latency_s


def test_int8_conv_runs_at_the_int8_tensor_rate(h100):
    int8, fp16 = _conv(DType.INT8), _conv(DType.FP16)
    int8_cost, fp16_cost = h100.cost(int8), h100.cost(fp16)
    assert int8_cost.bound is Bound.COMPUTE
    assert f"mac.{DType.INT8.value}" in int8_cost.actions
    fixed_s = h100.config.kernel_launch_s + h100.config.hbm.latency_s
    achieved = int8.flops() / (int8_cost.latency_s - fixed_s)
    # faster than the fp16 tensor peak allows, slower than the int8 peak
    assert h100.peak_flops_per_s(DType.FP16) < achieved <= h100.peak_flops_per_s(DType.INT8)
    assert int8_cost.latency_s < fp16_cost.latency_s


@pytest.mark.parametrize("machine", ["h100", "a100"])
def test_resnet50_int8_batch1_latency_is_sane(machine):
    gpu = _gpu(machine)
    ops = _graph("resnet50")
    assert all(op.dtype is DType.INT8 for op in ops if op.kind == "conv2d")
    total_s = sum(gpu.cost(op).latency_s for op in ops)
    flops = sum(op.flops() for op in ops)
    # every kernel pays at least its launch, and no kernel beats the int8 peak
    floor_s = flops / gpu.peak_flops_per_s(DType.INT8) + len(ops) * gpu.config.kernel_launch_s
    # batch 1 is launch-bound: at most twice the floor plus one pass over the compulsory bytes
    compulsory_s = sum(op.bytes() for op in ops) / gpu.peak_bw_bytes_per_s()
    assert floor_s < total_s < 2.0 * floor_s + compulsory_s
