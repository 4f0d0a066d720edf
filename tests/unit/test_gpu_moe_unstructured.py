"""GPU model: MoE experts with unstructured-sparse weights in a grouped GEMM.

Flash-LLM has no grouped kernel, so unstructured experts run either the grouped dense GEMM over
weights stored with their zeros, or Flash-LLM launched once per expert, whichever is faster, as
a single GEMM with an unstructured weight picks between Flash-LLM and the dense kernel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from shipped_devices import shipped_gpu

from archsim.hw.gpu import GpuDevice, GpuMapping
from archsim.ir.ops import GroupedGemm, gemm, grouped_gemm
from archsim.ir.tensor import NM, DType, Sparsity, Unstructured

ROOT = Path(__file__).resolve().parents[2]
# a Mixtral-8x7B expert's gate projection: d_model 4096 -> d_ff 14336
D_MODEL, D_FF = 4096, 14336


_device = shipped_gpu


@pytest.fixture(scope="module", params=["h100", "a100"])
def gpu(request: pytest.FixtureRequest) -> GpuDevice:
    return _device(request.param)


def _experts(
    group_rows: tuple[int, ...], sparsity: Sparsity | None = None, dtype: DType = DType.BF16
) -> GroupedGemm:
    op = grouped_gemm("moe.w1", group_rows, D_FF, D_MODEL, dtype)
    if sparsity is None:
        return op
    return dataclasses.replace(op, w=dataclasses.replace(op.w, sparsity=sparsity))


def test_few_tokens_per_expert_run_flash_llm_below_the_dense_grouped_gemm(gpu: GpuDevice) -> None:
    rows = (2, 0, 3, 0, 2, 0, 1, 0)
    sparse = _experts(rows, Unstructured(0.2))
    cost = gpu.cost(sparse)
    dense = gpu.cost(_experts(rows))
    assert "flash-llm" in cost.notes
    assert "4 launches" in cost.notes
    assert cost.latency_s < dense.latency_s
    # only the touched experts' Tiled-CSL weights (values plus 16-bit positions) move, plus
    # the tokens in and out
    touched_weights = sparse.w.stored_bytes * 4 / 8
    compulsory = touched_weights + sparse.x.stored_bytes + sparse.out.stored_bytes
    assert cost.bytes_by_level["hbm"] == pytest.approx(compulsory, rel=0.01)
    assert cost.actions["read.hbm"] + cost.actions["write.hbm"] == pytest.approx(
        cost.bytes_by_level["hbm"]
    )


def test_per_expert_loop_costs_each_expert_as_its_own_flash_llm_gemm(gpu: GpuDevice) -> None:
    rows = (2, 1, 2, 2, 0, 1, 2, 2)
    cost = gpu.cost(_experts(rows, Unstructured(0.2)))
    per_expert = [
        gpu.cost(gemm("e", r, D_FF, D_MODEL, DType.BF16, b_sparsity=Unstructured(0.2)))
        for r in rows
        if r > 0
    ]
    assert all("flash-llm" in c.notes for c in per_expert)
    # one launch per expert: the loop costs what the naive per-expert loop's GEMMs add up to
    assert cost.latency_s == pytest.approx(sum(c.latency_s for c in per_expert))
    assert cost.actions["sm_active_s"] == pytest.approx(
        sum(c.actions["sm_active_s"] for c in per_expert)
    )


def test_every_expert_pays_its_own_launch(gpu: GpuDevice) -> None:
    op = _experts((2,) * 8, Unstructured(0.2))
    assert "flash-llm" in gpu.cost(op).notes
    # a profiler's kernel durations leave out the host launch of each of the 8 kernels
    saved = gpu.cost(op).latency_s - gpu.cost(op, GpuMapping(kernel_only=True)).latency_s
    assert saved == pytest.approx(8 * gpu.config.kernel_launch_s)
    single = gemm("e", 2, D_FF, D_MODEL, DType.BF16, b_sparsity=Unstructured(0.2))
    single_saved = gpu.cost(single).latency_s - gpu.cost(single, GpuMapping(queued=True)).latency_s
    queued_saved = gpu.cost(op).latency_s - gpu.cost(op, GpuMapping(queued=True)).latency_s
    assert queued_saved == pytest.approx(8 * single_saved)


@pytest.mark.parametrize("tokens", [256, 1024])
def test_many_tokens_per_expert_keep_the_dense_grouped_gemm(gpu: GpuDevice, tokens: int) -> None:
    rows = (tokens,) * 8
    cost = gpu.cost(_experts(rows, Unstructured(0.2)))
    dense = gpu.cost(_experts(rows))
    assert "flash-llm" not in cost.notes
    assert "dense grouped GEMM" in cost.notes
    assert cost.latency_s == dense.latency_s
    # the zero-filled weights move in full: no free decompression
    assert cost.bytes_by_level == dense.bytes_by_level


def test_one_busy_expert_rules_out_the_per_expert_loop(gpu: GpuDevice) -> None:
    rows = (2, 2, 2, 200, 2, 2, 2, 2)
    cost = gpu.cost(_experts(rows, Unstructured(0.2)))
    assert "flash-llm" not in cost.notes
    assert cost.latency_s == gpu.cost(_experts(rows)).latency_s


@pytest.mark.parametrize("tokens", [1, 8, 512])
def test_density_one_costs_as_dense(gpu: GpuDevice, tokens: int) -> None:
    rows = (tokens,) * 8
    cost = gpu.cost(_experts(rows, Unstructured(1.0)))
    dense = gpu.cost(_experts(rows))
    assert "flash-llm" not in cost.notes
    assert cost.latency_s == dense.latency_s
    assert cost.actions == dense.actions


def test_other_dtypes_and_two_four_experts_do_not_run_flash_llm(gpu: GpuDevice) -> None:
    rows = (2,) * 8
    if DType.FP8 in gpu.config.tensor_flops_per_s:
        fp8 = gpu.cost(_experts(rows, Unstructured(0.2), DType.FP8))
        assert "dense grouped GEMM" in fp8.notes
        assert fp8.latency_s == gpu.cost(_experts(rows, dtype=DType.FP8)).latency_s
    two_four = gpu.cost(_experts(rows, NM(2, 4)))
    assert "flash-llm" not in two_four.notes
    assert "dense grouped GEMM" not in two_four.notes
    assert "flash-llm" in gpu.cost(_experts(rows, Unstructured(0.2), DType.FP16)).notes
