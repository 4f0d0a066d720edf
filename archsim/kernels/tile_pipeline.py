"""Tiles through a DMA-load -> compute -> DMA-store pipeline with a fixed number of buffers.

Semantics shared by the Numba kernel and its plain-Python reference (tests compare the two):

* Tile ``i`` occupies one of ``buffers`` scratchpad buffers from the start of its load to the end
  of its store, so its load cannot start before tile ``i - buffers`` has been stored.
* Loads run one at a time in tile order on the load channel; so do stores on the store channel
  (DRAM reads and writes are separate DMA queues).
* Compute runs one tile at a time, in order, once the tile's load is done.
* A tile's store starts when its compute is done and the previous store is done.

With one buffer nothing overlaps and the total is the sum of all phases; with two (double
buffering) the load of tile ``i + 1`` and the store of tile ``i - 1`` hide behind compute of tile
``i``. All times are in cycles.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def simulate_tile_pipeline(
    load_cycles: np.ndarray,
    compute_cycles: np.ndarray,
    store_cycles: np.ndarray,
    buffers: int,
) -> tuple[float, float]:
    """Total cycles of the tile sequence and cycles the compute unit spent waiting.

    Parameters
    ----------
    load_cycles, compute_cycles, store_cycles:
        Per-tile cycles of each phase, float64 arrays of equal length (a phase may be 0).
    buffers:
        Scratchpad buffers the tiles rotate through (1: no overlap, 2: double buffering).

    Returns
    -------
    total_cycles:
        Cycles from the first load's start to the last store's end.
    compute_stall_cycles:
        Cycles before the last compute ends during which the compute unit was idle, waiting for
        a load (or for a buffer to be released).
    """
    return simulate_repeated_tile_pipeline(load_cycles, compute_cycles, store_cycles, buffers, 1)


@numba.njit(cache=True)
def simulate_repeated_tile_pipeline(
    load_cycles: np.ndarray,
    compute_cycles: np.ndarray,
    store_cycles: np.ndarray,
    buffers: int,
    repeats: int,
) -> tuple[float, float]:
    """:func:`simulate_tile_pipeline` of the tile sequence run ``repeats`` times back to back.

    The same as the single call on the sequence tiled ``repeats`` times (batched GEMMs repeat
    one tile sequence per batch element), without building the tiled arrays.
    """
    n = load_cycles.shape[0]
    if n == 0 or repeats < 1:
        return 0.0, 0.0
    nbuf = max(buffers, 1)
    # store_end[i % nbuf] is when the buffer last used by tile i - nbuf is released
    buffer_free = np.zeros(nbuf)
    load_end = 0.0
    compute_end = 0.0
    store_end = 0.0
    stall = 0.0
    slot = 0
    for _ in range(repeats):
        for i in range(n):
            load_start = max(load_end, buffer_free[slot])
            load_end = load_start + load_cycles[i]
            compute_start = max(load_end, compute_end)
            stall += compute_start - compute_end
            compute_end = compute_start + compute_cycles[i]
            store_start = max(compute_end, store_end)
            store_end = store_start + store_cycles[i]
            buffer_free[slot] = store_end
            slot = slot + 1 if slot + 1 < nbuf else 0
    return store_end, stall


def simulate_tile_pipeline_reference(
    load_cycles: list[float] | np.ndarray,
    compute_cycles: list[float] | np.ndarray,
    store_cycles: list[float] | np.ndarray,
    buffers: int,
) -> tuple[float, float]:
    """Plain-Python statement of the same pipeline, written from the phase start times.

    Each phase start is the latest of its dependencies, spelled out one by one; the kernel keeps
    only running values. Same parameters and returns as :func:`simulate_tile_pipeline`.
    """
    n = len(load_cycles)
    nbuf = max(buffers, 1)
    load_start: list[float] = []
    load_finish: list[float] = []
    compute_start: list[float] = []
    compute_finish: list[float] = []
    store_finish: list[float] = []
    for i in range(n):
        ready = [0.0]
        if i >= 1:
            ready.append(load_finish[i - 1])  # one load channel
        if i >= nbuf:
            ready.append(store_finish[i - nbuf])  # buffer reuse
        load_start.append(max(ready))
        load_finish.append(load_start[i] + float(load_cycles[i]))
        compute_start.append(max([load_finish[i]] + ([compute_finish[i - 1]] if i else [])))
        compute_finish.append(compute_start[i] + float(compute_cycles[i]))
        store_begin = max([compute_finish[i]] + ([store_finish[i - 1]] if i else []))
        store_finish.append(store_begin + float(store_cycles[i]))
    if n == 0:
        return 0.0, 0.0
    busy = sum(float(c) for c in compute_cycles)
    # idle time of the compute unit between time 0 and its last finish
    return store_finish[-1], compute_finish[-1] - busy
