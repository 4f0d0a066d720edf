"""Work of an unstructured-sparse weight on a GPU thread-block tile grid, from its real mask.

Semantics shared by the Numba kernels and their plain-Python references (tests compare them):

* The weight is ``K x N`` (reduction x output features, archsim's ``Gemm.b``); ``mask[k, j]`` is
  non-zero where the weight is kept. The grid cuts it into tiles of ``tile_k x tile_n``; edge
  tiles are partial. :func:`tile_nnz` counts the kept weights of every tile.
* A thread block owns one column strip of tiles (``tile_n`` output features) and, under split-K,
  one contiguous share of its K tiles; it walks its tiles one K step at a time.
* Blocks are dispatched in launch order to ``slots`` resident block slots (SMs times blocks per
  SM); each block goes to the slot that frees first, as the GPU's block scheduler does.
  :func:`schedule_blocks` returns every slot's busy time: the slowest slot is the kernel's
  mainloop time, and slowest over mean is the load imbalance that uneven tiles cause.
* Tiled-CSL (Flash-LLM, Xia et al., VLDB 2024, Sec. 4.3.1) stores each kept weight as one 32-bit
  word, a 16-bit value and its 16-bit position inside the tile, plus one 32-bit start offset per
  tile: :func:`tiled_csl_bytes`.
"""

from __future__ import annotations

import heapq

import numba
import numpy as np

# Tiled-CSL: fp16 value and 16-bit in-tile position packed in one 32-bit word per non-zero, and a
# 32-bit offset per tile (Xia et al., VLDB 2024, Sec. 4.3.1).
TILED_CSL_BYTES_PER_NNZ = 4
TILED_CSL_BYTES_PER_TILE = 4


@numba.njit(cache=True)
def tile_nnz(mask: np.ndarray, tile_k: int, tile_n: int) -> np.ndarray:
    """Kept weights of every ``tile_k x tile_n`` tile of a ``K x N`` mask.

    Parameters
    ----------
    mask:
        ``uint8``/``bool`` array of shape ``(K, N)``; non-zero where the weight is kept.
    tile_k, tile_n:
        Tile extent along the reduction and along the output features, in elements.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(ceil(K / tile_k), ceil(N / tile_n))``.
    """
    k_len, n_cols = mask.shape
    k_tiles = (k_len + tile_k - 1) // tile_k
    n_tiles = (n_cols + tile_n - 1) // tile_n
    counts = np.zeros((k_tiles, n_tiles), dtype=np.int64)
    for k in range(k_len):
        row = k // tile_k
        for j in range(n_cols):
            if mask[k, j]:
                counts[row, j // tile_n] += 1
    return counts


def tile_nnz_reference(mask: np.ndarray, tile_k: int, tile_n: int) -> np.ndarray:
    """Plain-Python statement of :func:`tile_nnz`: count each tile's slice."""
    k_len, n_cols = mask.shape
    return np.array(
        [
            [
                int(sum(bool(v) for v in mask[k0 : k0 + tile_k, j0 : j0 + tile_n].ravel()))
                for j0 in range(0, n_cols, tile_n)
            ]
            for k0 in range(0, k_len, tile_k)
        ],
        dtype=np.int64,
    ).reshape(-(-k_len // tile_k), -(-n_cols // tile_n))


@numba.njit(cache=True)
def schedule_blocks(block_s: np.ndarray, slots: int) -> np.ndarray:
    """Busy time of each of ``slots`` block slots when blocks run in launch order.

    Parameters
    ----------
    block_s:
        float64 array: time each thread block takes once resident, in launch order (s).
    slots:
        Resident block slots on the device (SMs x blocks per SM).

    Returns
    -------
    numpy.ndarray
        float64 array of length ``slots``: when each slot finishes its last block (s).
    """
    busy = np.zeros(slots)
    for b in range(block_s.shape[0]):
        # the slot that frees first takes the next block (ties: the lowest index)
        first = 0
        for s in range(1, slots):
            if busy[s] < busy[first]:
                first = s
        busy[first] += block_s[b]
    return busy


def schedule_blocks_reference(block_s: np.ndarray, slots: int) -> np.ndarray:
    """Plain-Python statement of :func:`schedule_blocks` with a heap of (free time, slot)."""
    heap = [(0.0, s) for s in range(slots)]
    busy = [0.0] * slots
    for duration in block_s:
        free_at, slot = heapq.heappop(heap)
        busy[slot] = free_at + float(duration)
        heapq.heappush(heap, (busy[slot], slot))
    return np.array(busy)


@numba.njit(cache=True)
def closed_network_cycle(
    think_s: np.ndarray,
    hbm_demand_s: np.ndarray,
    sm_demand_s: np.ndarray,
    sm_count: int,
    population: int,
) -> np.ndarray:
    """Cycle time of ``population`` thread blocks in a closed queueing network (exact MVA).

    Each block loops: a delay of ``think_s`` (unloaded latency, own transfer), a visit to the
    device's HBM queue (service ``hbm_demand_s``), and a visit to one of ``sm_count`` identical SM
    queues (shared memory and tensor cores, service ``sm_demand_s``, each SM taking ``1 /
    sm_count`` of the visits). Exact mean value analysis (Reiser and Lavenberg, J. ACM 1980;
    Lazowska et al., "Quantitative System Performance", 1984, Ch. 6) gives the cycle time at the
    full population; one analysis per element of the input arrays.

    Returns
    -------
    numpy.ndarray
        float64 array: mean time of one loop of one block (s), per element.
    """
    out = np.empty(think_s.shape[0])
    for e in range(think_s.shape[0]):
        q_hbm = 0.0
        q_sm = 0.0
        d_sm = sm_demand_s[e] / sm_count
        cycle = think_s[e] + hbm_demand_s[e] + sm_demand_s[e]
        for n in range(1, population + 1):
            r_hbm = hbm_demand_s[e] * (1.0 + q_hbm)
            r_sm = d_sm * (1.0 + q_sm)
            cycle = think_s[e] + r_hbm + sm_count * r_sm
            throughput = n / cycle
            q_hbm = throughput * r_hbm
            q_sm = throughput * r_sm
        out[e] = cycle
    return out


def closed_network_cycle_reference(
    think_s: np.ndarray,
    hbm_demand_s: np.ndarray,
    sm_demand_s: np.ndarray,
    sm_count: int,
    population: int,
) -> np.ndarray:
    """Plain-Python statement of :func:`closed_network_cycle`: the MVA recursion per element."""
    cycles = []
    for z, d_hbm, d_sm_total in zip(think_s, hbm_demand_s, sm_demand_s, strict=True):
        stations = [d_hbm] + [d_sm_total / sm_count] * sm_count
        queues = [0.0] * len(stations)
        cycle = z + d_hbm + d_sm_total
        for n in range(1, population + 1):
            residence = [d * (1.0 + q) for d, q in zip(stations, queues, strict=True)]
            cycle = z + sum(residence)
            queues = [n / cycle * r for r in residence]
        cycles.append(cycle)
    return np.array(cycles)


def tiled_csl_bytes(counts: np.ndarray) -> tuple[float, float]:
    """Bytes of a Tiled-CSL weight: ``(values_bytes, metadata_bytes)``.

    Values are 2 bytes (fp16) per kept weight; metadata is the 16-bit in-tile position per kept
    weight plus one 32-bit offset per tile.
    """
    nnz = float(counts.sum())
    values = 2.0 * nnz
    metadata = (TILED_CSL_BYTES_PER_NNZ - 2.0) * nnz + TILED_CSL_BYTES_PER_TILE * counts.size
    return values, metadata


def random_mask(k_len: int, n_cols: int, density: float, seed: int) -> np.ndarray:
    """An unstructured mask keeping each weight independently with probability ``density``."""
    rng = np.random.default_rng(seed)
    return (rng.random((k_len, n_cols)) < density).astype(np.uint8)


def tile_nnz_from_density(
    k_len: int, n_cols: int, tile_k: int, tile_n: int, density: float, seed: int
) -> np.ndarray:
    """Per-tile kept weights of an i.i.d. random mask, drawn per tile without building the mask.

    Each tile's count of an unstructured mask of independent kept weights is binomial in the
    tile's element count, so this gives the same distribution as ``tile_nnz(random_mask(...))``
    for weights too large to hold as a mask (a 28672 x 7168 weight is 205 M elements).
    """
    rng = np.random.default_rng(seed)
    rows = np.minimum(tile_k, k_len - np.arange(0, k_len, tile_k))
    cols = np.minimum(tile_n, n_cols - np.arange(0, n_cols, tile_n))
    return rng.binomial(np.outer(rows, cols), density).astype(np.int64)
