"""Fused attention on a GPU: FlashAttention-style prefill and split-KV (flash-decoding) decode.

Pure helpers used by :class:`archsim.hw.gpu.GpuDevice`. Prefill follows FlashAttention (Dao et al.,
2022; FlashAttention-3, Shah et al., 2024): one thread block per (batch, query head, query tile)
streams K/V tiles through shared memory, so the work of a block is its count of key/value tile
iterations. With a causal mask, tiles above the diagonal are skipped: the query tile ``j`` visits
only ``j + 1`` key tiles, so blocks differ in length and the longest one bounds a short grid.
Decode follows flash-decoding (Dao et al., 2023): the KV sequence is split so that every SM streams
a part of the cache, each (batch, KV head) block serves its whole group of query heads (GQA), and
a second, small kernel combines the partial outputs.
"""

from __future__ import annotations

import heapq
import math

# Query and key/value tile of one block: 128 x 128 is what the Hopper kernels (cuDNN sm90 flash
# fprop, FlashAttention-3) use for head_dim 128; Ampere-style kernels use a narrower key tile but
# twice the iterations of half the work, which the backend's efficiency absorbs.
ATTENTION_Q_TILE = 128
ATTENTION_KV_TILE = 128
# Flash-decoding keeps at least this many KV positions per split.
MIN_KV_PER_SPLIT = 256
# Grids longer than this many waves are priced with the balanced bound (the tail is small).
_EXACT_SCHEDULE_WAVES = 16
# Special-function unit results (exp2, rcp, ...) per clock per SM: 16 on compute capability 5.x to
# 9.0 (CUDA C++ Programming Guide, "Arithmetic Instructions" throughput table). FlashAttention-3
# (Shah et al., 2024, section 3) gives the H100 consequence: 3.9 TFLOP/s of exponentials against
# 989 TFLOP/s of matmul, so the softmax exponentials take a large share of a block's time.
SFU_OPS_PER_CYCLE_PER_SM = 16


def prefill_block_iterations(
    q_len: int, kv_len: int, causal: bool, q_tile: int = ATTENTION_Q_TILE
) -> list[int]:
    """Key/value tile iterations of each query tile of one (batch, head).

    Parameters
    ----------
    q_len, kv_len:
        Query and key/value sequence lengths (tokens).
    causal:
        Causal mask aligned to the end of the KV sequence: query ``i`` sees keys up to
        ``kv_len - q_len + i``; tiles entirely above the diagonal are skipped.
    q_tile:
        Query rows per block.

    Returns
    -------
    list of int
        One entry per query tile, in order.
    """
    offset = kv_len - q_len
    iterations = []
    for j in range(math.ceil(q_len / q_tile)):
        visible = min(kv_len, offset + (j + 1) * q_tile) if causal else kv_len
        iterations.append(max(1, math.ceil(visible / ATTENTION_KV_TILE)))
    return iterations


def prefill_compute_s(
    *,
    batch_heads: int,
    q_len: int,
    kv_len: int,
    head_dim: int,
    causal: bool,
    sm_count: int,
    sm_flops_per_s: float,
    sm_exp_per_s: float,
    block_fill_iterations: float,
) -> float:
    """Mainloop time of a FlashAttention-style prefill over all SMs, in seconds.

    One key/value iteration of a block costs its two tensor-core products (``4 * q_tile *
    kv_tile * head_dim`` FLOP) plus one exponential per score on the special-function units,
    which the measured kernels do not hide behind the products. The exponential part does not
    shrink with ``head_dim``, so head_dim 64 runs at a lower share of the tensor-core peak.

    Blocks are handed to SMs in launch order, each to the first SM that becomes free (the
    hardware block scheduler), so a short grid of unequal causal blocks ends on its slowest SM.

    Parameters
    ----------
    batch_heads:
        ``batch * heads_q``: independent (batch, query head) pairs.
    sm_flops_per_s:
        Tensor-core throughput one SM sustains in the attention mainloop (FLOP/s).
    sm_exp_per_s:
        Exponentials one SM computes per second (special-function units).
    block_fill_iterations:
        Fixed work per block (Q load, pipeline fill, epilogue) in key/value tile iterations.
    """
    per_head = prefill_block_iterations(q_len, kv_len, causal)
    tile_scores = ATTENTION_Q_TILE * ATTENTION_KV_TILE
    iteration_s = 4.0 * tile_scores * head_dim / sm_flops_per_s + tile_scores / sm_exp_per_s
    loads = [n + block_fill_iterations for n in per_head]
    return block_makespan(loads, batch_heads, sm_count) * iteration_s


def block_makespan(loads: list[float], repeats: int, sm_count: int) -> float:
    """Finish time of ``repeats`` copies of the block sequence ``loads`` on ``sm_count`` SMs.

    Blocks start in order, each on the SM that frees first (greedy list scheduling). Past
    ``_EXACT_SCHEDULE_WAVES`` waves the tail is a small share of the total, and the balanced
    bound ``max(total / sm_count, longest)`` is used instead of the exact schedule.

    Parameters
    ----------
    loads:
        Work of each block of one sequence, in any time unit.
    repeats:
        How many times the sequence is launched back to back (batch x heads).
    sm_count:
        SMs running one block each at a time.

    Returns
    -------
    float
        Time until the last block ends, in the unit of ``loads``.
    """
    blocks = len(loads) * repeats
    if blocks > _EXACT_SCHEDULE_WAVES * sm_count:
        return max(sum(loads) * repeats / sm_count, max(loads))
    free_at = [0.0] * min(sm_count, blocks)
    heapq.heapify(free_at)
    for _ in range(repeats):
        for load in loads:
            heapq.heapreplace(free_at, free_at[0] + load)
    return max(free_at)


def decode_splits(batch: int, heads_kv: int, kv_len: int, sm_count: int) -> int:
    """KV splits of flash-decoding: enough blocks to cover the SMs, each split >= 256 positions."""
    groups = batch * heads_kv
    max_splits = max(1, kv_len // MIN_KV_PER_SPLIT)
    return min(max_splits, max(1, -(-sm_count // groups)))


__all__ = [
    "ATTENTION_KV_TILE",
    "ATTENTION_Q_TILE",
    "MIN_KV_PER_SPLIT",
    "SFU_OPS_PER_CYCLE_PER_SM",
    "block_makespan",
    "decode_splits",
    "prefill_block_iterations",
    "prefill_compute_s",
]
