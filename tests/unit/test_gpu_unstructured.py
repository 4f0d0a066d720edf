"""GPU model: GEMMs with an unstructured-sparse operand pick Flash-LLM or the dense kernel.

Flash-LLM's engine (:mod:`archsim.hw.gpu_sparse`) is what the Flash-LLM reproduction checks
against the paper; :class:`GpuDevice` must give the same kernel for a weight known only by its
density, and fall back to the dense GEMM where that is faster.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shipped_devices import shipped_gpu

from archsim.hw.base import Bound
from archsim.hw.gpu import GpuDevice, GpuMapping
from archsim.hw.gpu_sparse import flash_llm_spmm, flash_llm_spmm_for_density, flash_llm_tiling
from archsim.ir.ops import gemm
from archsim.ir.tensor import DType, Unstructured
from archsim.kernels.sparse_tiles import tile_nnz_from_density
from archsim.reproduce.flash_llm import SEED

ROOT = Path(__file__).resolve().parents[2]
# an OPT-66B FFN weight of the Flash-LLM benchmark: 28672 output features, K = 7168
K, N = 7168, 28672


_device = shipped_gpu


@pytest.fixture(scope="module", params=["h100", "a100"])
def gpu(request: pytest.FixtureRequest) -> GpuDevice:
    return _device(request.param)


def _sparse(tokens: int, density: float, dtype: DType = DType.FP16):
    return gemm("w", tokens, N, K, dtype, b_sparsity=Unstructured(density))


def test_skinny_80_percent_sparse_runs_flash_llm_faster_than_dense(gpu: GpuDevice) -> None:
    tokens = 16
    cost = gpu.cost(_sparse(tokens, 0.2))
    dense = gpu.cost(gemm("w", tokens, N, K, DType.FP16))
    assert "flash-llm" in cost.notes
    assert cost.latency_s < 0.8 * dense.latency_s
    # the reproduction engine on its own mask draw (another seed): same kernel, same time
    tiling = flash_llm_tiling(tokens)
    counts = tile_nnz_from_density(K, N, tiling.tile_k, tiling.tile_n, 0.2, SEED)
    engine = flash_llm_spmm(gpu.config, tokens, counts, K, N, tiling)
    assert cost.latency_s == pytest.approx(engine.latency_s, rel=0.03)


def test_flash_llm_moves_compressed_weight_and_metadata(gpu: GpuDevice) -> None:
    op = _sparse(16, 0.2)
    cost = gpu.cost(op)
    dense = gpu.cost(gemm("w", 16, N, K, DType.FP16))
    # Tiled-CSL: 4 bytes per kept weight, as the tensor's own stored bytes count them (values
    # plus 16-bit positions), plus activations and output
    compulsory = op.b.stored_bytes + op.a.stored_bytes + op.out.stored_bytes
    assert cost.bytes_by_level["hbm"] == pytest.approx(compulsory, rel=0.01)
    assert cost.actions["read.hbm"] + cost.actions["write.hbm"] == pytest.approx(
        cost.bytes_by_level["hbm"]
    )
    assert cost.bytes_by_level["hbm"] < 0.5 * dense.bytes_by_level["hbm"]
    assert "metadata" in cost.notes


def test_sparse_activation_operand_is_the_transposed_problem(gpu: GpuDevice) -> None:
    weight_sparse = gpu.cost(_sparse(16, 0.2))
    # out^T = w^T x^T: a sparse 28672 x 7168 left operand times 16 dense columns
    left_sparse = gpu.cost(gemm("t", N, 16, K, DType.FP16, a_sparsity=Unstructured(0.2)))
    assert "flash-llm" in left_sparse.notes
    assert left_sparse.latency_s == pytest.approx(weight_sparse.latency_s)


@pytest.mark.parametrize("tokens", [256, 4096])
def test_wide_gemm_keeps_the_dense_kernel(gpu: GpuDevice, tokens: int) -> None:
    cost = gpu.cost(_sparse(tokens, 0.2))
    dense = gpu.cost(gemm("w", tokens, N, K, DType.FP16))
    assert "flash-llm" not in cost.notes
    assert "dense GEMM" in cost.notes
    assert cost.latency_s == dense.latency_s
    assert cost.bytes_by_level == dense.bytes_by_level
    if tokens == 4096:
        assert cost.bound is Bound.COMPUTE


@pytest.mark.parametrize("tokens", [1, 16, 4096])
def test_density_one_costs_as_dense(gpu: GpuDevice, tokens: int) -> None:
    cost = gpu.cost(_sparse(tokens, 1.0))
    dense = gpu.cost(gemm("w", tokens, N, K, DType.FP16))
    assert "flash-llm" not in cost.notes
    assert cost.latency_s == dense.latency_s
    assert cost.actions == dense.actions


def test_flash_llm_gain_shrinks_as_tokens_grow(gpu: GpuDevice) -> None:
    def ratio(tokens: int) -> float:
        dense = gpu.cost(gemm("w", tokens, N, K, DType.FP16))
        return gpu.cost(_sparse(tokens, 0.2)).latency_s / dense.latency_s

    # decode-sized batches are memory bound, where skipping 80% of the weight pays; more tokens
    # move the dense GEMM towards its compute bound, which Flash-LLM's dense MMAs share
    assert ratio(8) < ratio(64) <= 1.0


def test_imposed_dense_tiling_and_other_dtypes_keep_the_dense_kernel(gpu: GpuDevice) -> None:
    tile = gpu.config.tile_shapes[0]
    imposed = gpu.cost(_sparse(16, 0.2), GpuMapping(tile=(tile.m, tile.n)))
    assert "flash-llm" not in imposed.notes
    if DType.FP8 in gpu.config.tensor_flops_per_s:
        assert "flash-llm" not in gpu.cost(_sparse(16, 0.2, DType.FP8)).notes
    assert "flash-llm" in gpu.cost(_sparse(16, 0.2, DType.BF16)).notes


def test_queued_launch_shortens_flash_llm_like_the_dense_kernel(gpu: GpuDevice) -> None:
    op = _sparse(16, 0.2)
    saved = gpu.cost(op).latency_s - gpu.cost(op, GpuMapping(queued=True)).latency_s
    dense = gemm("w", 16, N, K, DType.FP16)
    dense_saved = gpu.cost(dense).latency_s - gpu.cost(dense, GpuMapping(queued=True)).latency_s
    assert saved == pytest.approx(dense_saved)


def test_shared_weight_batch_counts_as_tokens(gpu: GpuDevice) -> None:
    batched = gemm("b", 8, N, K, DType.FP16, batch=2, b_sparsity=Unstructured(0.2))
    assert "flash-llm" in gpu.cost(batched).notes
    assert gpu.cost(batched).latency_s == pytest.approx(gpu.cost(_sparse(16, 0.2)).latency_s)


def test_density_model_rejects_tokens_beyond_one_tile(gpu: GpuDevice) -> None:
    with pytest.raises(ValueError, match="1 to 128 tokens"):
        flash_llm_spmm_for_density(gpu.config, 129, K, N, 0.2)
