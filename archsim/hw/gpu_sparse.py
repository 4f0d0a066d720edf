"""Unstructured-sparse GEMM kernels on a GPU: Flash-LLM, a Sputnik-like and a SparTA-like SpMM.

Pure cost functions of a :class:`GpuConfig` and the per-tile non-zeros of the sparse weight (from a
real mask through :func:`archsim.kernels.sparse_tiles.tile_nnz`, or drawn from a density model).
The weight is archsim's ``Gemm.b``: ``K x N`` (reduction x output features); the activations are
``M x K`` with ``M`` the tokens of the batch (skinny: 8 to 32 in decode).

* **Flash-LLM** (Xia et al., VLDB 2024), "load as sparse, compute as dense": each thread block owns
  ``tile_n`` output features and walks K in ``tile_k`` steps. A step loads the tile's Tiled-CSL
  words from HBM, zero-fills a dense tile in shared memory, scatters the non-zeros into it and runs
  dense tensor-core MMAs on it. Double buffering overlaps the next step's load with this step's
  on-chip work, but a block keeps one load in flight, so every step pays the HBM latency plus its
  bytes at the block's share of bandwidth (Little's law); shared memory and tensor cores are shared
  by the blocks resident on the SM. Blocks run on SM slots in launch order, so uneven tiles leave
  some SMs busy after others finish (the imbalance the kernel returns). Split-K is searched and
  reduced by a second kernel, as Flash-LLM's own reduction kernel does.
* **Sputnik-like** (Gale et al., SC 2020): CSR with 16-bit column indices, 1-D tiling on CUDA
  cores; every kept weight gathers its activation row from L2 and does ``M`` fp32 FMAs.
* **SparTA-like** (Zheng et al., OSDI 2022): the weight is split into a 2:4 part (up to two kept
  weights per group of four along K) run on sparse tensor cores, plus the remainder on the
  Sputnik-like kernel; two kernels, one after the other.
* **dense**: archsim's own GPU model (``build_device(gpu).cost(op)``), as cuBLAS runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archsim.config.machine import GpuConfig
from archsim.hw.base import build_device
from archsim.ir.ops import gemm
from archsim.ir.tensor import NM, DType
from archsim.kernels.sparse_tiles import (
    TILED_CSL_BYTES_PER_NNZ,
    TILED_CSL_BYTES_PER_TILE,
    schedule_blocks,
)

# Shared memory serves 32 banks of 4 bytes per clock on every SM from Volta to Hopper (CUDA C++
# Programming Guide, "Shared Memory" of compute capabilities 7.x, 8.x, 9.0).
SHARED_MEMORY_BYTES_PER_CLOCK_PER_SM = 128.0
# Sputnik stores fp16 values with 16-bit column indices, plus a 32-bit offset per row (Gale et al.,
# SC 2020, Sec. 6 "mixed precision").
SPUTNIK_BYTES_PER_NNZ = 4.0
# Tensor-core MMA for fp16 on Ampere is m16n8k16: the token dimension is padded to a multiple of 8.
MMA_TOKEN_MULTIPLE = 8
# Split-K factors searched for the Flash-LLM kernel (its API takes an integer Split_K).
SPLIT_K_FACTORS = (1, 2, 3, 4, 5, 6, 7, 8)
FP32_BYTES = 4.0
FP16_BYTES = 2.0


@dataclass(frozen=True)
class FlashLlmTiling:
    """Thread-block tiling of the Flash-LLM kernel (its TilingConfig for 4 warps per block).

    Attributes
    ----------
    tile_n:
        Output features per block: 16-row MMAs x 4 per warp x 4 warps = 256.
    tile_k:
        Reduction elements per step: 4 MMAs of k = 16 = 64.
    stages:
        Shared-memory buffers per operand (double buffering).
    """

    tile_n: int = 256
    tile_k: int = 64
    stages: int = 2


@dataclass(frozen=True)
class SpmmCost:
    """Predicted time of one SpMM kernel (or kernel pair) and what bounds it.

    Attributes
    ----------
    kernel:
        ``flash-llm``, ``sputnik``, ``sparta`` or ``dense``.
    latency_s:
        Kernel time including launch, in seconds.
    hbm_bytes:
        Bytes read from and written to HBM.
    metadata_bytes:
        Bytes of sparse-format metadata among ``hbm_bytes`` (indices, offsets).
    imbalance:
        Busiest SM slot over the mean slot (1.0 = perfectly even; Flash-LLM only).
    bound:
        What limits the mainloop: ``memory``, ``latency``, ``shared_memory``, ``tensor``,
        ``cuda_cores`` or ``l2``.
    notes:
        The configuration chosen (split-K, blocks per SM ...).
    """

    kernel: str
    latency_s: float
    hbm_bytes: float
    metadata_bytes: float = 0.0
    imbalance: float = 1.0
    bound: str = "memory"
    notes: str = ""


def flash_llm_spmm(
    gpu: GpuConfig,
    tokens: int,
    counts: np.ndarray,
    k: int,
    n: int,
    tiling: FlashLlmTiling = FlashLlmTiling(),
    dtype: DType = DType.FP16,
) -> SpmmCost:
    """Flash-LLM SpMM time: the best split-K of the load-as-sparse, compute-as-dense kernel.

    Parameters
    ----------
    gpu:
        The GPU (SMs, tensor peak, HBM/L2 bandwidth and latency, shared memory, launch time).
    tokens:
        Rows of the activations (batch tokens, the skinny dimension).
    counts:
        Kept weights per tile, shape ``(ceil(k / tile_k), ceil(n / tile_n))``
        (:func:`archsim.kernels.sparse_tiles.tile_nnz` of the weight mask).
    k, n:
        Reduction length and output features of the weight.
    tiling:
        The kernel's block tile.
    dtype:
        Element type of weights and activations (2-byte types).
    """
    expected = (-(-k // tiling.tile_k), -(-n // tiling.tile_n))
    if counts.shape != expected:
        raise ValueError(
            f"tile counts have shape {counts.shape}, the {k}x{n} grid needs {expected}"
        )
    best: SpmmCost | None = None
    for split in SPLIT_K_FACTORS:
        if split > counts.shape[0]:
            break
        cost = _flash_llm_split(gpu, tokens, counts, k, n, tiling, dtype, split)
        if best is None or cost.latency_s < best.latency_s:
            best = cost
    assert best is not None
    return best


def _flash_llm_split(
    gpu: GpuConfig,
    tokens: int,
    counts: np.ndarray,
    k: int,
    n: int,
    tiling: FlashLlmTiling,
    dtype: DType,
    split: int,
) -> SpmmCost:
    eff = gpu.efficiency
    sms = gpu.sm_count
    k_tiles, n_tiles = counts.shape
    tokens_padded = -(-tokens // MMA_TOKEN_MULTIPLE) * MMA_TOKEN_MULTIPLE
    dense_tile_bytes = tiling.tile_k * tiling.tile_n * FP16_BYTES
    act_tile_bytes = tiling.tile_k * tokens_padded * FP16_BYTES
    block_smem = tiling.stages * (dense_tile_bytes + act_tile_bytes)
    per_sm = max(1, int(gpu.shared_memory_per_sm_bytes // block_smem))
    blocks = n_tiles * split
    resident = min(per_sm, -(-blocks // sms))
    slots = sms * resident

    # one resident block's share of HBM and of its SM's L2 port
    hbm_bw = gpu.hbm.bw_bytes_per_s * eff.hbm
    l2_bw = gpu.l2.bw_bytes_per_s * eff.l2
    concurrent = min(blocks, slots)
    hbm_share = min(hbm_bw / concurrent, l2_bw / sms / resident)
    l2_share = l2_bw / concurrent

    # per step: the load (latency + bytes, one load in flight per block) against the on-chip work
    # of the resident blocks that share the SM's shared memory and tensor cores
    sparse_bytes = TILED_CSL_BYTES_PER_NNZ * counts + TILED_CSL_BYTES_PER_TILE
    load_s = gpu.hbm.latency_s + sparse_bytes / hbm_share + act_tile_bytes / l2_share
    smem_bw = SHARED_MEMORY_BYTES_PER_CLOCK_PER_SM * gpu.clock_hz
    # zero-fill and MMA read of the dense tile, scatter of the non-zeros, activations in and out
    smem_s = (2.0 * dense_tile_bytes + FP16_BYTES * counts + 2.0 * act_tile_bytes) / smem_bw
    tensor_sm_flops = gpu.tensor_flops_per_s[dtype] * eff.tensor / sms
    tensor_s = 2.0 * tiling.tile_k * tiling.tile_n * tokens_padded / tensor_sm_flops
    onchip_s = resident * np.maximum(smem_s, tensor_s)
    step_s = np.maximum(load_s, onchip_s)

    # blocks in launch order: output strip fastest, then split-K slice
    edges = np.linspace(0, k_tiles, split + 1).round().astype(int)
    block_s = np.concatenate(
        [step_s[edges[s] : edges[s + 1]].sum(axis=0) for s in range(split)]
    ).astype(np.float64)
    busy = schedule_blocks(block_s, slots)
    mainloop_s = float(busy.max())
    imbalance = float(busy.max() / busy.mean()) if busy.mean() > 0 else 1.0

    out_bytes = tokens * n * FP16_BYTES
    fixed_s = gpu.kernel_launch_s
    reduction_s = 0.0
    if split > 1:
        # fp32 partials written and read back through L2 by Flash-LLM's reduction kernel
        reduction_s = gpu.kernel_launch_s + 2.0 * split * tokens * n * FP32_BYTES / l2_bw
    latency_s = fixed_s + mainloop_s + out_bytes / hbm_bw + reduction_s

    nnz = float(counts.sum())
    metadata = (TILED_CSL_BYTES_PER_NNZ - FP16_BYTES) * nnz + TILED_CSL_BYTES_PER_TILE * counts.size
    hbm_bytes = TILED_CSL_BYTES_PER_NNZ * nnz + TILED_CSL_BYTES_PER_TILE * counts.size + out_bytes
    hbm_bytes += k * tokens * FP16_BYTES
    shares = {
        "latency": float(gpu.hbm.latency_s * k_tiles * n_tiles),
        "memory": float((sparse_bytes / hbm_share).sum()),
        "shared_memory": float((resident * smem_s).sum()),
        "tensor": float(resident * tensor_s * counts.size),
    }
    return SpmmCost(
        kernel="flash-llm",
        latency_s=latency_s,
        hbm_bytes=hbm_bytes,
        metadata_bytes=metadata,
        imbalance=imbalance,
        bound=max(shares, key=shares.__getitem__),
        notes=f"split-k {split}, {resident} block(s)/SM, {blocks} blocks",
    )


def sputnik_spmm(gpu: GpuConfig, tokens: int, nnz: float, k: int, n: int) -> SpmmCost:
    """Sputnik-like CUDA-core SpMM of ``nnz`` kept weights against ``tokens`` activation rows.

    Each kept weight reads its value and 16-bit index from HBM once, gathers its activation row
    (``tokens`` fp16 values) through L2 and does ``tokens`` fp32 FMAs on the CUDA cores. The three
    streams overlap; the slowest bounds the kernel.
    """
    eff = gpu.efficiency
    hbm_bw = gpu.hbm.bw_bytes_per_s * eff.hbm
    l2_bw = gpu.l2.bw_bytes_per_s * eff.l2
    out_bytes = tokens * n * FP16_BYTES
    hbm_bytes = SPUTNIK_BYTES_PER_NNZ * nnz + FP32_BYTES * n + k * tokens * FP16_BYTES + out_bytes
    parts = {
        "memory": hbm_bytes / hbm_bw,
        "l2": nnz * tokens * FP16_BYTES / l2_bw,
        "cuda_cores": 2.0 * nnz * tokens / (gpu.vector_flops_per_s * eff.vector),
    }
    bound = max(parts, key=parts.__getitem__)
    return SpmmCost(
        kernel="sputnik",
        latency_s=gpu.kernel_launch_s + gpu.hbm.latency_s + parts[bound],
        hbm_bytes=hbm_bytes,
        metadata_bytes=(SPUTNIK_BYTES_PER_NNZ - FP16_BYTES) * nnz + FP32_BYTES * n,
        bound=bound,
    )


def two_four_split(group_counts: np.ndarray) -> tuple[float, float]:
    """Kept weights ``(in the 2:4 part, left over)`` given kept weights per group of four."""
    counts = np.asarray(group_counts, dtype=np.float64)
    structured = np.minimum(counts, 2.0).sum()
    return float(structured), float(counts.sum() - structured)


def expected_two_four_remainder(density: float) -> float:
    """Expected left-over kept weights per weight element of an i.i.d. mask (binomial groups)."""
    excess = sum(
        (c - 2) * math.comb(4, c) * density**c * (1.0 - density) ** (4 - c) for c in (3, 4)
    )
    return excess / 4.0


def group_counts(mask: np.ndarray) -> np.ndarray:
    """Kept weights of every group of four consecutive reduction elements of a ``K x N`` mask."""
    k_len, n_cols = mask.shape
    if k_len % 4:
        raise ValueError(f"2:4 groups need K ({k_len}) to be a multiple of 4")
    return mask.reshape(k_len // 4, 4, n_cols).sum(axis=1)


def sparta_spmm(gpu: GpuConfig, tokens: int, k: int, n: int, remainder_nnz: float) -> SpmmCost:
    """SparTA-like SpMM: the 2:4 part on sparse tensor cores, the remainder on CUDA cores.

    The 2:4 kernel is archsim's GPU model of a 2:4 GEMM (cuSPARSELt); ``remainder_nnz`` kept
    weights that do not fit two per group of four run on :func:`sputnik_spmm` afterwards.
    """
    device = build_device(gpu)
    op = gemm("sparta.2of4", tokens, n, k, DType.FP16, b_sparsity=NM(2, 4))
    structured = device.cost(op)
    hbm = structured.bytes_by_level.get("hbm", 0.0)
    latency_s = structured.latency_s
    notes = f"2:4 part {structured.latency_s * 1e6:.1f} us"
    if remainder_nnz > 0:
        rest = sputnik_spmm(gpu, tokens, remainder_nnz, k, n)
        latency_s += rest.latency_s
        hbm += rest.hbm_bytes
        notes += f", remainder {rest.latency_s * 1e6:.1f} us"
    return SpmmCost(
        kernel="sparta",
        latency_s=latency_s,
        hbm_bytes=hbm,
        metadata_bytes=op.b.metadata_bytes,
        bound=str(structured.bound),
        notes=notes,
    )


def dense_gemm(gpu: GpuConfig, tokens: int, k: int, n: int) -> SpmmCost:
    """The dense cuBLAS-like GEMM from archsim's GPU model."""
    cost = build_device(gpu).cost(gemm("dense", tokens, n, k, DType.FP16))
    return SpmmCost(
        kernel="dense",
        latency_s=cost.latency_s,
        hbm_bytes=cost.bytes_by_level.get("hbm", 0.0),
        bound=str(cost.bound),
        notes=cost.notes,
    )
