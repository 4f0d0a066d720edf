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

import math

# Query and key/value tile of one block: 128 x 128 is what the Hopper kernels (cuDNN sm90 flash
# fprop, FlashAttention-3) use for head_dim 128; Ampere-style kernels use a narrower key tile but
# twice the iterations of half the work, which the backend's efficiency absorbs.
ATTENTION_Q_TILE = 128
ATTENTION_KV_TILE = 128
# Flash-decoding keeps at least this many KV positions per split.
MIN_KV_PER_SPLIT = 256


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
    block_fill_iterations: float,
) -> float:
    """Mainloop time of a FlashAttention-style prefill over all SMs, in seconds.

    Blocks are list-scheduled on ``sm_count`` SMs, so the time is the larger of the average load
    per SM and the longest single block (which dominates when there is about one wave).

    Parameters
    ----------
    batch_heads:
        ``batch * heads_q``: independent (batch, query head) pairs.
    sm_flops_per_s:
        Tensor-core throughput one SM sustains in the attention mainloop (FLOP/s).
    block_fill_iterations:
        Fixed work per block (Q load, pipeline fill, epilogue) in key/value tile iterations.
    """
    per_head = prefill_block_iterations(q_len, kv_len, causal)
    iteration_s = 4.0 * ATTENTION_Q_TILE * ATTENTION_KV_TILE * head_dim / sm_flops_per_s
    total = batch_heads * (sum(per_head) + block_fill_iterations * len(per_head))
    longest = max(per_head) + block_fill_iterations
    return max(total / sm_count, longest) * iteration_s


def decode_splits(batch: int, heads_kv: int, kv_len: int, sm_count: int) -> int:
    """KV splits of flash-decoding: enough blocks to cover the SMs, each split >= 256 positions."""
    groups = batch * heads_kv
    max_splits = max(1, kv_len // MIN_KV_PER_SPLIT)
    return min(max_splits, max(1, -(-sm_count // groups)))


__all__ = [
    "ATTENTION_KV_TILE",
    "ATTENTION_Q_TILE",
    "MIN_KV_PER_SPLIT",
    "decode_splits",
    "prefill_block_iterations",
    "prefill_compute_s",
]
