"""Unstructured-sparse GEMM kernels on a GPU: Flash-LLM, Sputnik and SparTA.

Pure cost functions of a :class:`GpuConfig` and the per-tile non-zeros of the sparse weight (from a
real mask through :func:`archsim.kernels.sparse_tiles.tile_nnz`, or drawn from a density model).
The weight is archsim's ``Gemm.b``: ``K x N`` (reduction x output features); the activations are
``M x K`` with ``M`` the tokens of the batch (skinny: 8 to 64 in decode).

* **Flash-LLM** (Xia et al., VLDB 2024, Sec. 4; its ``csrc/SpMM_Kernel.cuh``), "load as sparse,
  compute as dense": each thread block owns ``tile_n`` output features and walks K in 64-deep
  steps. A step issues the next tile's Tiled-CSL words from HBM into registers and its activation
  tile into shared memory (``cp.async``), runs the tensor-core MMAs of the current tile meanwhile,
  then waits for the words and scatters them into the zero-filled dense tile. One block keeps one
  tile in flight, so its own step is a chain: load latency (or its MMAs, whichever is longer),
  then the scatter. Blocks resident on an SM overlap one another's chains, and the device's HBM
  bandwidth is shared by all resident blocks (Little's law: a block's step is never shorter than
  its bytes at its share of bandwidth, and never shorter than its latency chain; the two do not
  add). Shared memory (zero-fill, MMA operand reads, scatter) and tensor cores are shared by the
  blocks of an SM. Blocks run on SM slots in launch order, so uneven tiles leave some SMs busy
  after others finish (the imbalance the kernel returns). Split-K partials are reduced by a second
  kernel, as Flash-LLM's ``SplitK_Reduction`` does.
* **Sputnik** (Gale et al., SC 2020; its fp16 ``CudaSpmm`` in ``sputnik/spmm/cuda_spmm.cu.cc``):
  CSR with 16-bit column indices, one-dimensional tiling: a 32-thread block handles 4 weight rows,
  8 threads per row, and for every kept weight each thread loads a 2/4/8-element strip of the
  activation row it indexes (``__ldg``, through L1, from L2 on a miss), converts it to fp32 and
  does FMAs on the CUDA cores. Its time is the largest of: instruction issue (per-kept-weight
  instruction counts against the SM's issue, load/store and fp32 pipes), the activation strips
  missed in L1 at L2 bandwidth, and HBM traffic. The rows resident on an SM walk their sorted
  column indices at nearly the same pace, so they sweep the activation rows together and often
  find the strips that the rows ahead of them fetched still in L1 (:func:`sputnik_l1_hit_rate`,
  an LRU simulation of that sweep, the blocks' drift apart fitted to H100 measurements).
* **SparTA** as the Flash-LLM artifact runs it (``kernel_benchmark/sparTA.h``): the first two kept
  weights of each group of four along K go to cuSPARSELt's 2:4 GEMM (archsim's GPU model of a 2:4
  GEMM), the rest to Sputnik; two kernels, one after the other.
* **dense**: archsim's own GPU model (``build_device(gpu).cost(op)``), as cuBLAS runs it.
"""

from __future__ import annotations

import functools
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
    closed_network_cycle,
    schedule_blocks,
    tile_nnz_from_density,
)
from archsim.kernels.sweep_cache import iid_csr_rows, sweep_hits

# Shared memory serves 32 banks of 4 bytes per clock on every SM from Volta to Hopper (CUDA C++
# Programming Guide, "Shared Memory" of compute capabilities 7.x, 8.x, 9.0).
SHARED_MEMORY_BYTES_PER_CLOCK_PER_SM = 128.0
# Flash-LLM's Tiled-CSL reorders each tile's words so that one warp's 32 scattered 16-bit stores
# hit 32 different banks (Xia et al., VLDB 2024, Sec. 4.3.2; InitSparseMatrixA_API's bank
# balancing): one shared-memory wavefront per 32 kept weights.
SCATTER_NNZ_PER_WAVEFRONT = 32.0
# Sputnik stores fp16 values with 16-bit column indices, plus a 32-bit offset per row (Gale et al.,
# SC 2020, Sec. 6 "mixed precision").
SPUTNIK_BYTES_PER_NNZ = 4.0
# Sputnik's fp16 kernels (cuda_spmm.cu.cc, CudaSpmmBiasRelu for half2): 4 weight rows per block of
# 8 x 4 = 32 threads, 8 threads per row.
SPUTNIK_ROWS_PER_BLOCK = 4
SPUTNIK_THREADS_PER_ROW = 8
# Resident thread blocks per SM on compute capability 8.0 (CUDA C++ Programming Guide, Table
# "Technical Specifications per Compute Capability"): one-warp Sputnik blocks are capped by it.
MAX_BLOCKS_PER_SM = 32
# Instructions per kept weight per Sputnik thread, from its dense-tile loop (dense_tile.h) and
# tile MAC: one load of the activation strip, half a shared load of the 16-bit index pair and
# half of the fp16 value pair; one integer multiply scaling the index and a 64-bit address add
# (two integer adds); and on the fp32 pipe one conversion of the weight plus, per activation
# element, one fp16-to-fp32 conversion and one FMA.
SPUTNIK_LSU_INSTR_PER_NNZ = 2.0
SPUTNIK_INT_INSTR_PER_NNZ = 2.0
SPUTNIK_FP32_INSTR_PER_NNZ = 2.0  # index multiply and weight conversion
SPUTNIK_FP32_INSTR_PER_ELEMENT = 2.0  # conversion and FMA per activation element
# Per SM and clock on compute capability 8.0: 4 schedulers issue one warp instruction each; the
# MIO queue hands one instruction per clock to the load/store pipe (NVIDIA developer forum, "How
# does the LSU execute load/store instructions in the Ampere architecture", G. Smith); 64 fp32
# lanes, two warp instructions per clock (CUDA C++ Programming Guide, arithmetic throughput).
WARP_ISSUE_PER_CLOCK_PER_SM = 4.0
LSU_ISSUE_PER_CLOCK_PER_SM = 1.0
FP32_WARP_INSTR_PER_CLOCK_PER_SM = 2.0
WARP_SIZE = 32
# Shared memory the CUDA runtime reserves per resident block on 8.x (CUDA C++ Programming Guide,
# "Shared Memory" of compute capability 8.x: 1 KB per block).
RESERVED_SHARED_BYTES_PER_BLOCK = 1024
# Shared-memory carve-outs an 8.0 SM offers, in KB (CUDA C++ Programming Guide, compute
# capability 8.x: 0, 8, 16, 32, 64, 100, 132 or 164 KB of the 192 KB unified array).
SHARED_CARVEOUTS_KB = (0, 8, 16, 32, 64, 100, 132, 164)
# Split-K factors searched for the Flash-LLM kernel when none is given (its API takes an integer).
SPLIT_K_FACTORS = (1, 2, 3, 4, 5, 6, 7, 8)
FP32_BYTES = 4.0
FP16_BYTES = 2.0


@dataclass(frozen=True)
class FlashLlmTiling:
    """Thread-block tiling of the Flash-LLM kernel (one ``TilingConfig`` of ``SpMM_API.cu``).

    Attributes
    ----------
    tile_n:
        Output features (weight rows) per block: 16-row MMAs x 4 per warp x row warps
        (256 with 4 row warps, 128 with 2).
    tile_k:
        Reduction elements per step: 4 MMAs of k = 16 = 64.
    tile_tokens:
        Activation columns per block (TILE_N of the kernel): 16 x column tensors x column warps
        (its MMAs are m16n16k16, so at least 16 even where only 8 columns are loaded).
    loaded_tokens:
        Activation columns actually loaded (8 in the kernel's N=8 variant, else ``tile_tokens``).
    stages:
        Shared-memory buffers per operand (the kernel double-buffers).
    row_warps, col_warps:
        BLOCK_ROW_WARPS and BLOCK_COL_WARPS: each warp multiplies its ``tile_n / row_warps``
        weight rows by its ``tile_tokens / col_warps`` activation columns, so the MMAs read the
        weight tile ``col_warps`` times and the activation tile ``row_warps`` times.
    """

    tile_n: int = 256
    tile_k: int = 64
    tile_tokens: int = 16
    loaded_tokens: int = 16
    stages: int = 2
    row_warps: int = 4
    col_warps: int = 1

    @property
    def shared_bytes(self) -> int:
        """Dynamic shared memory of one block: SpMM_API.cu's SHMEM_SZ."""
        buffers = (self.tile_n + self.tile_tokens) * self.tile_k * int(FP16_BYTES) * self.stages
        c_tile = (self.tile_n + 4) * self.tile_tokens * int(FP32_BYTES)
        return max(buffers, c_tile)


def flash_llm_tiling(tokens: int) -> FlashLlmTiling:
    """The ``TilingConfig`` Flash-LLM's ``SpMM_SplitK_API`` picks for ``tokens`` columns.

    N=8: <4,1,1,N8>, 16: <4,1,1>, 32: <4,1,2> (4 row warps: 256 rows); 64: <2,2,2>; 128 and any
    multiple of 128: <2,2,4> (2 row warps: 128 rows). Other token counts are rejected, as the API
    rejects them.
    """
    if tokens == 8:
        return FlashLlmTiling(tile_n=256, tile_tokens=16, loaded_tokens=8)
    if tokens == 16:
        return FlashLlmTiling(tile_n=256, tile_tokens=16, loaded_tokens=16)
    if tokens == 32:
        return FlashLlmTiling(tile_n=256, tile_tokens=32, loaded_tokens=32)
    if tokens == 64:
        return FlashLlmTiling(
            tile_n=128, tile_tokens=64, loaded_tokens=64, row_warps=2, col_warps=2
        )
    if tokens % 128 == 0:
        return FlashLlmTiling(
            tile_n=128, tile_tokens=128, loaded_tokens=128, row_warps=2, col_warps=2
        )
    raise ValueError(f"Flash-LLM supports 8, 16, 32, 64 or a multiple of 128 tokens, got {tokens}")


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
        ``issue``, ``lsu``, ``fp32`` or ``l2``.
    notes:
        The configuration chosen (split-K, blocks per SM ...).
    l1_hit_rate:
        Share of the activation reads that hit in L1 (Sputnik only).
    split_k, blocks:
        Split-K factor and thread blocks of the mainloop (Flash-LLM only).
    hbm_write_bytes:
        Bytes among ``hbm_bytes`` written (the output; Flash-LLM only).
    l2_read_bytes, partial_bytes:
        Bytes read through L2 and split-K partial bytes written to it (Flash-LLM only).
    """

    kernel: str
    latency_s: float
    hbm_bytes: float
    metadata_bytes: float = 0.0
    imbalance: float = 1.0
    bound: str = "memory"
    notes: str = ""
    l1_hit_rate: float | None = None
    split_k: int = 1
    blocks: int = 0
    hbm_write_bytes: float = 0.0
    l2_read_bytes: float = 0.0
    partial_bytes: float = 0.0


def flash_llm_spmm(
    gpu: GpuConfig,
    tokens: int,
    counts: np.ndarray,
    k: int,
    n: int,
    tiling: FlashLlmTiling | None = None,
    dtype: DType = DType.FP16,
    split_k: int | None = None,
) -> SpmmCost:
    """Flash-LLM SpMM time at a given split-K (or the best of ``SPLIT_K_FACTORS``).

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
        The kernel's block tile; ``None``: the one Flash-LLM's API picks for ``tokens``.
    dtype:
        Element type of weights and activations (2-byte types).
    split_k:
        Slices of K run by separate blocks and reduced afterwards; ``None``: searched.
    """
    tiling = flash_llm_tiling(tokens) if tiling is None else tiling
    expected = (-(-k // tiling.tile_k), -(-n // tiling.tile_n))
    if counts.shape != expected:
        raise ValueError(
            f"tile counts have shape {counts.shape}, the {k}x{n} grid needs {expected}"
        )
    if split_k is not None:
        if not 1 <= split_k <= counts.shape[0]:
            raise ValueError(f"split_k must be in 1..{counts.shape[0]} for K={k}, got {split_k}")
        return _flash_llm_split(gpu, tokens, counts, k, n, tiling, dtype, split_k)
    best: SpmmCost | None = None
    for split in SPLIT_K_FACTORS:
        if split > counts.shape[0]:
            break
        cost = _flash_llm_split(gpu, tokens, counts, k, n, tiling, dtype, split)
        if best is None or cost.latency_s < best.latency_s:
            best = cost
    assert best is not None
    return best


# Token counts Flash-LLM's SpMM_SplitK_API accepts up to one 128-column TilingConfig
# (flash_llm_tiling); a GEMM with fewer tokens runs at the next one, its activations zero-padded.
# Wider GEMMs tile the tokens over several block columns, which the model above does not capture.
FLASH_LLM_TOKEN_SIZES = (8, 16, 32, 64, 128)
# Per-tile counts of a weight given only by its density are drawn with this seed (fixed, so a
# cost is a pure function of the GEMM).
DENSITY_MODEL_SEED = 0


def flash_llm_padded_tokens(tokens: int) -> int | None:
    """The token count the Flash-LLM kernel runs ``tokens`` at; ``None`` beyond one 128 tile."""
    return next((size for size in FLASH_LLM_TOKEN_SIZES if size >= tokens), None)


@functools.lru_cache(maxsize=256)
def _density_tile_counts(k: int, n: int, tile_k: int, tile_n: int, density: float) -> np.ndarray:
    counts = tile_nnz_from_density(k, n, tile_k, tile_n, density, DENSITY_MODEL_SEED)
    counts.setflags(write=False)
    return counts


def flash_llm_spmm_for_density(
    gpu: GpuConfig, tokens: int, k: int, n: int, density: float, dtype: DType = DType.FP16
) -> SpmmCost:
    """Flash-LLM SpMM of a ``k x n`` weight known only by its unstructured ``density``.

    The per-tile kept weights are drawn as an i.i.d. mask of that density would hold them
    (:func:`archsim.kernels.sparse_tiles.tile_nnz_from_density`, seed ``DENSITY_MODEL_SEED``), so
    the uneven tiles' imbalance is kept; split-K is searched as :func:`flash_llm_spmm` does.
    ``tokens`` is padded to the next size in ``FLASH_LLM_TOKEN_SIZES``.

    Raises
    ------
    ValueError
        ``tokens`` beyond 128, where the kernel needs several token tiles per weight strip.
    """
    padded = flash_llm_padded_tokens(tokens)
    if padded is None or tokens < 1:
        raise ValueError(
            f"the Flash-LLM model covers 1 to {FLASH_LLM_TOKEN_SIZES[-1]} tokens, got {tokens}"
        )
    tiling = flash_llm_tiling(padded)
    counts = _density_tile_counts(k, n, tiling.tile_k, tiling.tile_n, float(density))
    return flash_llm_spmm(gpu, padded, counts, k, n, tiling, dtype)


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
    dense_tile_bytes = tiling.tile_k * tiling.tile_n * FP16_BYTES
    act_tile_bytes = tiling.tile_k * tiling.loaded_tokens * FP16_BYTES
    per_sm = max(1, int(gpu.shared_memory_per_sm_bytes // tiling.shared_bytes))
    blocks = n_tiles * split
    resident = min(per_sm, -(-blocks // sms))
    slots = sms * resident
    concurrent = min(blocks, slots)

    hbm_bw = gpu.hbm.bw_bytes_per_s * eff.hbm
    l2_bw = gpu.l2.bw_bytes_per_s * eff.l2
    # the most one SM pulls through its L2 port, and one block's share of HBM when all run
    port_bw = l2_bw / sms
    hbm_share = hbm_bw / concurrent

    sparse_bytes = TILED_CSL_BYTES_PER_NNZ * counts + TILED_CSL_BYTES_PER_TILE
    smem_bw = SHARED_MEMORY_BYTES_PER_CLOCK_PER_SM * gpu.clock_hz
    # the MMAs read the dense weight tile once per column warp and the activation tile once per
    # row warp; the weight tile is zero-filled once; the scatter is one wavefront per 32
    mma_read_s = (tiling.col_warps * dense_tile_bytes + tiling.row_warps * act_tile_bytes) / smem_bw
    fill_s = (dense_tile_bytes + act_tile_bytes) / smem_bw
    scatter_s = counts / SCATTER_NNZ_PER_WAVEFRONT / gpu.clock_hz
    tensor_sm_flops = gpu.tensor_flops_per_s[dtype] * eff.tensor / sms
    tensor_s = 2.0 * tiling.tile_k * tiling.tile_n * tiling.tile_tokens / tensor_sm_flops

    # Little's law with contention: blocks are customers of a closed queueing network. Per step
    # a block waits the unloaded latency plus its own transfer through its SM's port (a delay,
    # overlapping its MMAs on the tile before), queues for HBM (its bytes at the device's
    # bandwidth) and for its SM's shared memory and tensor cores (zero-fill, MMA operand reads,
    # scatter). Exact MVA at the resident population gives the step; with one tile load in
    # flight per block, latency and bandwidth neither add nor simply overlap.
    think_s = np.maximum(gpu.hbm.latency_s + sparse_bytes / port_bw, tensor_s)
    sm_s = np.maximum(mma_read_s + fill_s + scatter_s, tensor_s)
    step_s = _network_steps(counts, think_s, sparse_bytes / hbm_bw, sm_s, sms, concurrent)

    # blocks in launch order: output strip fastest, then split-K slice (SpMM_Kernel's blockIdx.y)
    edges = np.linspace(0, k_tiles, split + 1).round().astype(int)
    block_s = np.concatenate(
        [step_s[edges[s] : edges[s + 1]].sum(axis=0) for s in range(split)]
    ).astype(np.float64)
    busy = schedule_blocks(block_s, slots)
    mainloop_s = float(busy.max())
    imbalance = float(busy.max() / busy.mean()) if busy.mean() > 0 else 1.0

    out_bytes = tokens * n * FP16_BYTES
    act_bytes = k * tokens * FP16_BYTES
    fixed_s = gpu.kernel_launch_s + gpu.hbm.latency_s
    reduction_s = 0.0
    if split > 1:
        # fp16 partials (SpMM_API.cu's half Reduction_Workspace) written by the mainloop and
        # read back by SplitK_Reduction through L2, which writes the output
        reduction_s = gpu.kernel_launch_s + 2.0 * split * tokens * n * FP16_BYTES / l2_bw
    latency_s = fixed_s + mainloop_s + out_bytes / hbm_bw + reduction_s

    nnz = float(counts.sum())
    metadata = (TILED_CSL_BYTES_PER_NNZ - FP16_BYTES) * nnz + TILED_CSL_BYTES_PER_TILE * counts.size
    hbm_bytes = TILED_CSL_BYTES_PER_NNZ * nnz + TILED_CSL_BYTES_PER_TILE * counts.size
    hbm_bytes += out_bytes + act_bytes
    # what the step would be if one resource alone limited it, summed over the tiles
    # read through L2: the sparse tiles once, every block strip's activation slice, and the
    # split-K partials (written once, read back once)
    partial_bytes = split * tokens * n * FP16_BYTES if split > 1 else 0.0
    l2_read_bytes = hbm_bytes - out_bytes + (n_tiles - 1) * act_bytes + partial_bytes
    limits = {
        "latency": float(think_s.sum()),
        "shared_memory": float((resident * (mma_read_s + fill_s + scatter_s)).sum()),
        "tensor": float(resident * tensor_s * counts.size),
        "memory": float((sparse_bytes / hbm_share).sum()),
    }
    return SpmmCost(
        kernel="flash-llm",
        latency_s=latency_s,
        hbm_bytes=hbm_bytes,
        metadata_bytes=metadata,
        imbalance=imbalance,
        bound=max(limits, key=limits.__getitem__),
        notes=f"split-k {split}, {resident} block(s)/SM, {blocks} blocks",
        split_k=split,
        blocks=blocks,
        hbm_write_bytes=out_bytes,
        l2_read_bytes=l2_read_bytes,
        partial_bytes=partial_bytes,
    )


def _network_steps(
    counts: np.ndarray,
    think_s: np.ndarray,
    hbm_s: np.ndarray,
    sm_s: np.ndarray,
    sms: int,
    population: int,
) -> np.ndarray:
    """:func:`closed_network_cycle` per tile, solved once per distinct tile count.

    Every demand of a tile is a function of its kept weights alone, and counts repeat across
    tiles, so one analysis per distinct count serves all the tiles holding it.
    """
    _, first, inverse = np.unique(counts.ravel(), return_index=True, return_inverse=True)
    cycles = closed_network_cycle(
        np.ascontiguousarray(think_s.ravel()[first]),
        np.ascontiguousarray(hbm_s.ravel()[first]),
        np.ascontiguousarray(sm_s.ravel()[first]),
        sms,
        population,
    )
    return cycles[inverse.ravel()].reshape(think_s.shape)


def sputnik_strip_elements(tokens: int) -> int:
    """Activation elements one Sputnik thread loads per kept weight (its dense vector width).

    cuda_spmm.cu.cc (half2): half2 dense loads for N <= 16, half4 for N <= 32, half8 for N a
    multiple of 64 above 32, else half4.
    """
    if tokens <= 16:
        return 2
    if tokens <= 32:
        return 4
    if tokens % 64 == 0:
        return 8
    return 4


def sputnik_l1_bytes(
    l1_shared_bytes_per_sm: float, blocks_per_sm: int, shared_per_block: float
) -> float:
    """L1 capacity left to a kernel: the unified array less the smallest carve-out that fits."""
    need_kb = blocks_per_sm * (shared_per_block + RESERVED_SHARED_BYTES_PER_BLOCK) / 1024.0
    carveout_kb = next((c for c in SHARED_CARVEOUTS_KB if c >= need_kb), SHARED_CARVEOUTS_KB[-1])
    return max(l1_shared_bytes_per_sm - carveout_kb * 1024.0, 0.0)


# L1 lines are 128 bytes of four 32-byte sectors (CUDA C++ Best Practices Guide, "Coalesced
# Access to Global Memory"); a miss allocates a line.
L1_LINE_BYTES = 128
# Sputnik's fp16 sparse tile: 32 half2 value pairs and 32 short2 index pairs per row, 64 kept
# weights (SpmmConfig kBlockItemsK = 32), read with __ldg (load_store.h): two 128-byte lines of
# each row's values and indices per 64 kept weights, never read again.
SPUTNIK_TILE_NNZ = 64
SPUTNIK_TILE_LINES = 2
# Masks of the i.i.d. rows whose sweep is simulated, and the issue draws (fixed, so a cost is a
# pure function).
SWEEP_SEED = 0
# Resident blocks do not issue at one rate: the warp schedulers favour some warps, and the
# favoured ones pull ahead linearly. Issue rates spread evenly from 1 down to 1 - this over an
# SM's resident blocks make the simulated L1 hit rates match the measured ones of a Sputnik-like
# kernel on an H100 (tests/data/h100/sputnik_like_sweep.csv, ncu L1 sector hit rates of 10
# shapes, K 7168-49152, 32 and 64 tokens; rms error 0.08 against 0.28 in lockstep); taken over
# to the A100 (no A100 measurement).
SPUTNIK_ISSUE_RATE_SPREAD = 0.2


@functools.lru_cache(maxsize=4096)
def sputnik_l1_hit_rate(
    k: int,
    density: float,
    blocks_per_sm: int,
    rows_per_block: int,
    rows: int,
    columns_per_line: int,
    capacity_lines: int,
    stream_lines: int = SPUTNIK_TILE_LINES,
) -> float:
    """Share of Sputnik's activation reads that hit in one SM's L1, for i.i.d. masks.

    Sputnik's CSR rows keep their column indices sorted (the Flash-LLM artifact's
    sputnik_utils.h builds them by scanning columns in order) and each kept weight reads the
    activation row it indexes with ``__ldg`` (load_store.h), so the rows resident on an SM sweep
    the ``k`` activation rows together and often find a strip that a row ahead fetched still in
    L1. :func:`archsim.kernels.sweep_cache.sweep_hits` plays this out for ``rows`` i.i.d. rows of
    ``density``, ``blocks_per_sm`` resident blocks of ``rows_per_block`` rows each (issue rates
    spread by ``SPUTNIK_ISSUE_RATE_SPREAD`` over the blocks; later waves start as rows end), an
    LRU L1 of ``capacity_lines`` lines, ``columns_per_line`` activation rows per line and each
    row's sparse tile (``stream_lines`` lines per 64 kept weights) streaming through the same L1.
    """
    columns, lengths = iid_csr_rows(rows, k, density, SWEEP_SEED)
    block = np.arange(blocks_per_sm * rows_per_block) // rows_per_block
    rates = 1.0 - SPUTNIK_ISSUE_RATE_SPREAD * block / max(1, blocks_per_sm - 1)
    hits, reads = sweep_hits(
        columns,
        lengths,
        blocks_per_sm * rows_per_block,
        columns_per_line,
        capacity_lines,
        SPUTNIK_TILE_NNZ,
        stream_lines,
        rates,
        SWEEP_SEED,
    )
    return hits / reads if reads else 0.0


def sputnik_spmm(
    gpu: GpuConfig,
    tokens: int,
    nnz: float,
    k: int,
    n: int,
    l1_shared_bytes_per_sm: float,
) -> SpmmCost:
    """Sputnik fp16 SpMM of ``nnz`` kept weights (``n`` weight rows) against ``tokens`` columns.

    Parameters
    ----------
    gpu:
        The GPU.
    tokens:
        Activation columns.
    nnz:
        Kept weights.
    k, n:
        Reduction length and output features (weight rows) of the weight.
    l1_shared_bytes_per_sm:
        The SM's unified L1/shared-memory array (A100: 192 KB, whitepaper "A100 SM").

    Notes
    -----
    Each kept weight costs the per-thread instructions of the SPUTNIK_* constants on each of the 8
    threads of its row, one warp instruction serving 4 rows; issue, the load/store pipe and the
    fp32 pipe each bound it. The activation strip of each kept weight hits in L1 with the
    probability of :func:`sputnik_l1_hit_rate`; a missed line is refilled from L2.
    """
    eff = gpu.efficiency
    hbm_bw = gpu.hbm.bw_bytes_per_s * eff.hbm
    l2_bw = gpu.l2.bw_bytes_per_s * eff.l2
    elements = sputnik_strip_elements(tokens)
    row_width = SPUTNIK_THREADS_PER_ROW * elements
    strips = -(-tokens // row_width)
    rows_per_warp = WARP_SIZE // SPUTNIK_THREADS_PER_ROW
    warp_instr = {
        "lsu": SPUTNIK_LSU_INSTR_PER_NNZ / rows_per_warp,
        "int": SPUTNIK_INT_INSTR_PER_NNZ / rows_per_warp,
        "fp32": (SPUTNIK_FP32_INSTR_PER_NNZ + SPUTNIK_FP32_INSTR_PER_ELEMENT * elements)
        / rows_per_warp,
    }
    cycles_per_nnz = {
        "issue": sum(warp_instr.values()) / WARP_ISSUE_PER_CLOCK_PER_SM,
        "lsu": warp_instr["lsu"] / LSU_ISSUE_PER_CLOCK_PER_SM,
        "fp32": warp_instr["fp32"] / FP32_WARP_INSTR_PER_CLOCK_PER_SM,
    }
    blocks = -(-n // SPUTNIK_ROWS_PER_BLOCK) * strips
    blocks_per_sm = min(MAX_BLOCKS_PER_SM, -(-blocks // gpu.sm_count))
    busy_sms = min(gpu.sm_count, blocks)
    work = nnz * strips / (busy_sms * gpu.clock_hz)
    parts = {name: c * work for name, c in cycles_per_nnz.items()}

    # activation strips through L1: 64 kept weights x 4 rows of fp16 values and 16-bit indices
    # staged in shared memory per block (SpmmConfig kBlockItemsK = 32 half2 pairs)
    shared_per_block = 64.0 * SPUTNIK_ROWS_PER_BLOCK * 2.0 * FP16_BYTES
    l1 = sputnik_l1_bytes(l1_shared_bytes_per_sm, blocks_per_sm, shared_per_block)
    # one SM's rows of one column strip: per resident block, and all it runs over the kernel
    rows_per_block = max(1, SPUTNIK_ROWS_PER_BLOCK // strips)
    sm_rows = -(-blocks // busy_sms) * rows_per_block
    density = min(1.0, nnz / (float(k) * n))
    # the activations are K x tokens row-major: a line holds the strips of this many rows
    columns_per_line = max(1, L1_LINE_BYTES // int(tokens * FP16_BYTES))
    capacity_lines = int(l1 // L1_LINE_BYTES)
    hit = (
        sputnik_l1_hit_rate(
            k, density, blocks_per_sm, rows_per_block, sm_rows, columns_per_line, capacity_lines
        )
        if capacity_lines > 0
        else 0.0
    )
    # a missed line is refilled sector by sector as the sweep reads the rows it holds
    line_fill_bytes = min(L1_LINE_BYTES, columns_per_line * min(tokens, row_width) * FP16_BYTES)
    parts["l2"] = nnz * strips * line_fill_bytes * (1.0 - hit) / l2_bw

    out_bytes = tokens * n * FP16_BYTES
    hbm_bytes = SPUTNIK_BYTES_PER_NNZ * nnz + FP32_BYTES * n + k * tokens * FP16_BYTES + out_bytes
    parts["memory"] = hbm_bytes / hbm_bw
    bound = max(parts, key=parts.__getitem__)
    return SpmmCost(
        kernel="sputnik",
        latency_s=gpu.kernel_launch_s + gpu.hbm.latency_s + parts[bound],
        hbm_bytes=hbm_bytes,
        metadata_bytes=(SPUTNIK_BYTES_PER_NNZ - FP16_BYTES) * nnz + FP32_BYTES * n,
        bound=bound,
        notes=f"{blocks} blocks, L1 hit {hit:.2f}",
        l1_hit_rate=hit,
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


def sparta_spmm(
    gpu: GpuConfig,
    tokens: int,
    k: int,
    n: int,
    remainder_nnz: float,
    l1_shared_bytes_per_sm: float,
) -> SpmmCost:
    """SparTA SpMM: the 2:4 part on sparse tensor cores, the remainder on Sputnik.

    The 2:4 kernel is archsim's GPU model of a 2:4 GEMM (cuSPARSELt, searched); the
    ``remainder_nnz`` kept weights beyond two per group of four run on :func:`sputnik_spmm`
    in the same stream (the Flash-LLM artifact's ``sparTA.h`` times the pair together).
    """
    device = build_device(gpu)
    op = gemm("sparta.2of4", tokens, n, k, DType.FP16, b_sparsity=NM(2, 4))
    structured = device.cost(op)
    hbm = structured.bytes_by_level.get("hbm", 0.0)
    latency_s = structured.latency_s
    notes = f"2:4 part {structured.latency_s * 1e6:.1f} us"
    if remainder_nnz > 0:
        rest = sputnik_spmm(gpu, tokens, remainder_nnz, k, n, l1_shared_bytes_per_sm)
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
