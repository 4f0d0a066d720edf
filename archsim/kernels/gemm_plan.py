"""An NPU GEMM's tiling search and tile-pipeline replays in one call.

The model of :class:`archsim.hw.npu.NpuDevice` for one GEMM (``batch`` independent
``m x n x k`` products on ``arrays`` systolic arrays of ``rows x cols`` PEs, a DMA-fed
scratchpad and double buffering), shared by the Numba kernels and their plain-Python references
(tests compare the two on random GEMMs and machines):

* **Candidates** are every ``(tile_m, tile_n, tile_k)`` of the given per-dimension lists, in
  ``m``-major, ``k``-minor order, whose double-buffered footprint (``a``, ``b`` and the fp32
  output tile) fits the scratchpad.
* **Estimate**: the longer of two bounds on the pipeline, the first load then all compute, or
  all DMA then the last compute; plus the last store. Compute sums full and ragged edge tiles
  exactly; DMA setups and edge reuse are approximate.
* **Replay**: the ``replayed`` best by estimate (stable order) run tile by tile through
  :func:`archsim.kernels.tile_pipeline.simulate_tile_pipeline`; the fewest cycles wins, the
  earlier candidate on a tie. The loop order over output tiles is the one moving fewer DRAM
  bytes (``n_outer`` on a tie) unless given.
* **Per tile**: with an unsplit reduction (one ``k`` tile) the outer loop's operand stays
  resident; each load pays ``ceil(transfers / dma_engines)`` setups, each store one. Compute
  cuts the tile into array blocks (WS: ``ceil(tk / (rows*macs)) * ceil(tn / cols)`` blocks of
  ``max(tm, rows)`` cycles; OS: ``ceil(tm / rows) * ceil(tn / cols)`` blocks of
  ``max(ceil(tk / macs), rows)``), dealt to the arrays in full rounds, the last partial round
  shared by all arrays, plus ``rows + cols`` fill and drain per tile; never faster than the
  scratchpad port moves the operands and the fp32 output tile.

An operand or result already on chip (attention's scores and probabilities) moves no DRAM bytes
(``P_A_FROM_DRAM``, ``P_OUT_TO_DRAM``). Parameters travel as one float64 vector indexed by the
``P_*`` constants; a run comes back as one float64 vector indexed by the ``R_*`` constants.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from archsim.kernels.arith import cdiv
from archsim.kernels.tile_pipeline import (
    simulate_repeated_tile_pipeline,
    simulate_tile_pipeline_reference,
)

DATAFLOWS = ("ws", "os")
LOOP_ORDERS = ("n_outer", "m_outer")
AUTO_LOOP_ORDER = -1
"""Loop-order code asking the model to pick the order that moves fewer DRAM bytes."""

# indices into the parameter vector
P_M = 0
P_N = 1
P_K = 2
P_BATCH = 3
P_A_BYTES = 4  # average stored bytes per element of a, b and out
P_B_BYTES = 5
P_OUT_BYTES = 6
P_A_FROM_DRAM = 7  # 1.0 or 0.0
P_OUT_TO_DRAM = 8
P_ACC_BYTES = 9  # accumulator bytes per output element held on chip
P_ROWS = 10
P_COLS = 11
P_ARRAYS = 12
P_MACS_PER_PE = 13
P_DATAFLOW = 14  # DATAFLOWS index
P_DRAM_BYTES_PER_CYCLE = 15
P_SP_BYTES_PER_CYCLE = 16
P_SETUP_CYCLES = 17
P_DMA_ENGINES = 18
P_CAPACITY_BYTES = 19
P_REPLAYED = 20  # candidates replayed after ranking by the estimate
N_PARAMS = 21

# indices into a run vector
R_TILE_M = 0  # 0 when no candidate fits the scratchpad
R_TILE_N = 1
R_TILE_K = 2
R_BUFFERS = 3
R_LOOP_ORDER = 4  # LOOP_ORDERS index
R_TILES = 5
R_CYCLES = 6
R_STALL_CYCLES = 7
R_COMPUTE_CYCLES = 8
R_LOAD_CYCLES = 9
R_STORE_CYCLES = 10
R_DRAM_READ_BYTES = 11
R_DRAM_WRITE_BYTES = 12
R_SP_READ_BYTES = 13
R_SP_WRITE_BYTES = 14
N_RESULTS = 15


@numba.njit(cache=True)
def _operand_reads(tm: float, tn: float, tk: float, p: np.ndarray) -> float:
    """Scratchpad bytes the arrays read for one tile's operands."""
    a_tile = tm * tk * p[P_A_BYTES]
    b_tile = tk * tn * p[P_B_BYTES]
    # the activation tile streams once per column block in both dataflows; WS loads each weight
    # into an array once per tile, OS streams it once per row block
    a_reads = a_tile * cdiv(tn, p[P_COLS])
    b_reads = b_tile if p[P_DATAFLOW] == 0 else b_tile * cdiv(tm, p[P_ROWS])
    return a_reads + b_reads


@numba.njit(cache=True)
def _tile_compute(tm: float, tn: float, tk: float, p: np.ndarray) -> float:
    """Compute cycles of one ``tm x tn x tk`` tile (see the module docstring)."""
    rows, cols, arrays, macs = p[P_ROWS], p[P_COLS], p[P_ARRAYS], p[P_MACS_PER_PE]
    if p[P_DATAFLOW] == 0:
        blocks = cdiv(tk, rows * macs) * cdiv(tn, cols)
        stream = tm
    else:
        blocks = cdiv(tm, rows) * cdiv(tn, cols)
        stream = cdiv(tk, macs)
    per_block = max(stream, rows)
    full_rounds = math.floor(blocks / arrays)
    leftover = blocks - full_rounds * arrays
    last_round = 0.0
    if leftover > 0:
        copies = math.floor(arrays / max(leftover, 1.0))
        last_round = max(math.ceil(stream / copies), rows)
    array_cycles = full_rounds * per_block + last_round + (rows + cols)
    traffic = _operand_reads(tm, tn, tk, p) + tm * tn * p[P_ACC_BYTES]
    return max(array_cycles, traffic / p[P_SP_BYTES_PER_CYCLE])


@numba.njit(cache=True)
def _dram_reads(n_m: float, n_n: float, n_k: float, p: np.ndarray) -> tuple[float, float]:
    """DRAM bytes read under each loop order (``n_outer``, ``m_outer``)."""
    a_total = p[P_BATCH] * p[P_M] * p[P_K] * p[P_A_BYTES] if p[P_A_FROM_DRAM] else 0.0
    b_total = p[P_BATCH] * p[P_K] * p[P_N] * p[P_B_BYTES]
    single_k = n_k == 1
    n_outer = a_total * n_n + b_total * (1.0 if single_k else n_m)
    m_outer = a_total * (1.0 if single_k else n_n) + b_total * n_m
    return n_outer, m_outer


@numba.njit(cache=True)
def _setups(transfers: float, p: np.ndarray) -> float:
    """DMA setup cycles for ``transfers`` descriptors; the engines start them in parallel."""
    return math.ceil(transfers / p[P_DMA_ENGINES]) * p[P_SETUP_CYCLES]


@numba.njit(cache=True)
def _estimate(tm: float, tn: float, tk: float, p: np.ndarray) -> float:
    """The analytic estimate of one double-buffered candidate (see the module docstring)."""
    m, n, k, batch = p[P_M], p[P_N], p[P_K], p[P_BATCH]
    bpc = p[P_DRAM_BYTES_PER_CYCLE]
    n_m, n_n, n_k = cdiv(m, tm), cdiv(n, tn), cdiv(k, tk)
    tiles = n_m * n_n * n_k * batch
    last_m, last_n, last_k = m - (n_m - 1) * tm, n - (n_n - 1) * tn, k - (n_k - 1) * tk
    compute_total = 0.0
    for im in range(2):
        size_m, count_m = (tm, n_m - 1) if im == 0 else (last_m, 1.0)
        for jn in range(2):
            size_n, count_n = (tn, n_n - 1) if jn == 0 else (last_n, 1.0)
            for lk in range(2):
                size_k, count_k = (tk, n_k - 1) if lk == 0 else (last_k, 1.0)
                per_tile = _tile_compute(size_m, size_n, size_k, p)
                compute_total += count_m * count_n * count_k * per_tile
    compute_total *= batch
    last_compute = _tile_compute(last_m, last_n, last_k, p)
    n_outer, m_outer = _dram_reads(n_m, n_n, n_k, p)
    out_bytes = batch * m * n * p[P_OUT_BYTES] if p[P_OUT_TO_DRAM] else 0.0
    dram = min(n_outer, m_outer) + out_bytes
    dma = dram / bpc + tiles * _setups(2.0, p)
    a_first = tm * tk * p[P_A_BYTES] if p[P_A_FROM_DRAM] else 0.0
    first_load = (a_first + tk * tn * p[P_B_BYTES]) / bpc
    last_store = (last_m * last_n * p[P_OUT_BYTES] if p[P_OUT_TO_DRAM] else 0.0) / bpc
    return max(first_load + compute_total, dma + last_compute) + last_store


@numba.njit(cache=True)
def run_tiling(
    tile_m: float, tile_n: float, tile_k: float, buffers: int, loop_order: int, p: np.ndarray
) -> np.ndarray:
    """Replay every tile of the GEMM in ``p`` under one tiling through the tile pipeline.

    Parameters
    ----------
    tile_m, tile_n, tile_k:
        Tile extents in elements, clipped here to the GEMM's own.
    buffers:
        Scratchpad buffers per tile (1 or 2).
    loop_order:
        ``LOOP_ORDERS`` index, or ``AUTO_LOOP_ORDER``.
    p:
        The problem and machine vector (``P_*`` indices).

    Returns
    -------
    numpy.ndarray
        The run vector (``R_*`` indices); cycles at the device clock, bytes in bytes.
    """
    m, n, k, batch = p[P_M], p[P_N], p[P_K], int(p[P_BATCH])
    bpc, setup = p[P_DRAM_BYTES_PER_CYCLE], p[P_SETUP_CYCLES]
    tm, tn, tk = min(tile_m, m), min(tile_n, n), min(tile_k, k)
    n_m, n_n, n_k = int(cdiv(m, tm)), int(cdiv(n, tn)), int(cdiv(k, tk))
    last = (m - (n_m - 1) * tm, n - (n_n - 1) * tn, k - (n_k - 1) * tk)
    order = loop_order
    if order == AUTO_LOOP_ORDER:
        n_outer, m_outer = _dram_reads(n_m, n_n, n_k, p)
        order = 0 if n_outer <= m_outer else 1
    per_batch = n_m * n_n * n_k
    load = np.empty(per_batch)
    compute = np.empty(per_batch)
    store = np.empty(per_batch)
    a_from_dram = p[P_A_FROM_DRAM] != 0
    out_to_dram = p[P_OUT_TO_DRAM] != 0
    single_k = n_k == 1
    outer = n_n if order == 0 else n_m
    inner = n_m if order == 0 else n_n
    dram_read = dram_write = operand_reads = acc_write = acc_read = 0.0
    t = 0
    for o in range(outer):
        for q in range(inner):
            i = q if order == 0 else o
            j = o if order == 0 else q
            em = last[0] if i == n_m - 1 else tm
            en = last[1] if j == n_n - 1 else tn
            for z in range(n_k):
                ek = last[2] if z == n_k - 1 else tk
                # the outer loop's operand tile stays resident while the inner loop runs
                load_a = a_from_dram and not (single_k and order == 1 and j > 0)
                load_b = not (single_k and order == 0 and i > 0)
                a_bytes = em * ek * p[P_A_BYTES] if load_a else 0.0
                b_bytes = ek * en * p[P_B_BYTES] if load_b else 0.0
                out_bytes = em * en * p[P_OUT_BYTES] if z == n_k - 1 and out_to_dram else 0.0
                transfers = (1.0 if load_a else 0.0) + (1.0 if load_b else 0.0)
                load[t] = (a_bytes + b_bytes) / bpc + (
                    _setups(transfers, p) if transfers > 0 else 0.0
                )
                store[t] = out_bytes / bpc + setup if out_bytes > 0 else 0.0
                compute[t] = _tile_compute(em, en, ek, p)
                dram_read += a_bytes + b_bytes
                dram_write += out_bytes
                operand_reads += _operand_reads(em, en, ek, p)
                # the arrays write the fp32 output tile of every k tile and read it back on the
                # next one
                acc_bytes = em * en * p[P_ACC_BYTES]
                acc_write += acc_bytes
                if z > 0:
                    acc_read += acc_bytes
                t += 1
    # every batch element repeats the same tile sequence
    total, stall = simulate_repeated_tile_pipeline(load, compute, store, buffers, batch)
    compute_sum = load_sum = store_sum = 0.0
    for _ in range(batch):
        for i in range(per_batch):
            compute_sum += compute[i]
            load_sum += load[i]
            store_sum += store[i]
    dram_read *= batch
    dram_write *= batch
    out = np.empty(N_RESULTS)
    out[R_TILE_M], out[R_TILE_N], out[R_TILE_K] = tm, tn, tk
    out[R_BUFFERS] = buffers
    out[R_LOOP_ORDER] = order
    out[R_TILES] = per_batch * batch
    out[R_CYCLES] = total
    out[R_STALL_CYCLES] = stall
    out[R_COMPUTE_CYCLES] = compute_sum
    out[R_LOAD_CYCLES] = load_sum
    out[R_STORE_CYCLES] = store_sum
    out[R_DRAM_READ_BYTES] = dram_read
    out[R_DRAM_WRITE_BYTES] = dram_write
    # DMA writes what it loads into the scratchpad and reads what it stores
    out[R_SP_READ_BYTES] = operand_reads * batch + acc_read * batch + dram_write
    out[R_SP_WRITE_BYTES] = dram_read + acc_write * batch
    return out


@numba.njit(cache=True)
def plan_gemm(
    tile_ms: np.ndarray, tile_ns: np.ndarray, tile_ks: np.ndarray, p: np.ndarray
) -> np.ndarray:
    """Search the double-buffered tilings of the GEMM in ``p`` and replay the best few.

    Parameters
    ----------
    tile_ms, tile_ns, tile_ks:
        Candidate tile extents along each dimension (float64, each at most the GEMM's extent).
    p:
        The problem and machine vector (``P_*`` indices).

    Returns
    -------
    numpy.ndarray
        The run vector of the winning tiling (``R_*`` indices); ``R_TILE_M`` is 0 when no
        candidate fits the scratchpad.
    """
    count = tile_ms.shape[0] * tile_ns.shape[0] * tile_ks.shape[0]
    tm = np.empty(count)
    tn = np.empty(count)
    tk = np.empty(count)
    estimate = np.empty(count)
    fitting = 0
    for a in range(tile_ms.shape[0]):
        for b in range(tile_ns.shape[0]):
            for c in range(tile_ks.shape[0]):
                x, y, z = tile_ms[a], tile_ns[b], tile_ks[c]
                footprint = 2.0 * (
                    x * z * p[P_A_BYTES] + z * y * p[P_B_BYTES] + x * y * p[P_ACC_BYTES]
                )
                if footprint <= p[P_CAPACITY_BYTES]:
                    tm[fitting], tn[fitting], tk[fitting] = x, y, z
                    estimate[fitting] = _estimate(x, y, z, p)
                    fitting += 1
    best = np.zeros(N_RESULTS)
    if fitting == 0:
        return best
    ranked = np.argsort(estimate[:fitting], kind="mergesort")
    best[R_CYCLES] = np.inf
    for r in range(min(int(p[P_REPLAYED]), fitting)):
        i = ranked[r]
        run = run_tiling(tm[i], tn[i], tk[i], 2, AUTO_LOOP_ORDER, p)
        if run[R_CYCLES] < best[R_CYCLES]:
            best = run
    return best


def run_tiling_reference(
    tile_m: float, tile_n: float, tile_k: float, buffers: int, loop_order: int, p: np.ndarray
) -> np.ndarray:
    """Plain-Python statement of :func:`run_tiling`, vectorized over the tiles with numpy.

    Lays the tiles out on an ``(m, n, k)`` grid, transposes it into loop order and runs the
    plain-Python pipeline over the per-tile arrays. Same parameters and returns.
    """
    m, n, k, batch = int(p[P_M]), int(p[P_N]), int(p[P_K]), int(p[P_BATCH])
    bpc, setup = p[P_DRAM_BYTES_PER_CYCLE], p[P_SETUP_CYCLES]
    tm, tn, tk = min(int(tile_m), m), min(int(tile_n), n), min(int(tile_k), k)
    ms, ns, ks = (_extents_reference(*e) for e in ((m, tm), (n, tn), (k, tk)))
    n_m, n_n, n_k = len(ms), len(ns), len(ks)
    order = loop_order
    if order == AUTO_LOOP_ORDER:
        n_outer, m_outer = _dram_reads_reference(p, np.array(n_m), np.array(n_n), np.array(n_k))
        order = 0 if float(n_outer) <= float(m_outer) else 1
    grid_m = ms[:, None, None] * np.ones((1, n_n, n_k))
    grid_n = ns[None, :, None] * np.ones((n_m, 1, n_k))
    grid_k = ks[None, None, :] * np.ones((n_m, n_n, 1))
    k_index = np.broadcast_to(np.arange(n_k)[None, None, :], grid_m.shape)
    m_index = np.broadcast_to(np.arange(n_m)[:, None, None], grid_m.shape)
    n_index = np.broadcast_to(np.arange(n_n)[None, :, None], grid_m.shape)
    axes = (1, 0, 2) if order == 0 else (0, 1, 2)
    em, en, ek, k_index, m_index, n_index = (
        np.transpose(x, axes).ravel() for x in (grid_m, grid_n, grid_k, k_index, m_index, n_index)
    )
    single_k = n_k == 1
    load_a = np.full(em.shape, bool(p[P_A_FROM_DRAM]))
    load_b = np.ones(em.shape, dtype=bool)
    if single_k and order == 0:
        load_b = m_index == 0
    elif single_k and order == 1:
        load_a = load_a & (n_index == 0)
    a_bytes = np.where(load_a, em * ek * p[P_A_BYTES], 0.0)
    b_bytes = np.where(load_b, ek * en * p[P_B_BYTES], 0.0)
    out_bytes = np.where(
        (k_index == n_k - 1) & bool(p[P_OUT_TO_DRAM]), em * en * p[P_OUT_BYTES], 0.0
    )
    transfers = load_a.astype(np.float64) + load_b
    setups = np.ceil(transfers / p[P_DMA_ENGINES]) * setup
    load = (a_bytes + b_bytes) / bpc + np.where(transfers > 0, setups, 0.0)
    store = np.where(out_bytes > 0, out_bytes / bpc + setup, 0.0)
    compute = np.array(
        [_tile_compute_reference(a, b, c, p) for a, b, c in zip(em, en, ek, strict=True)]
    )
    load, compute, store = (np.tile(x, batch) for x in (load, compute, store))
    total, stall = simulate_tile_pipeline_reference(load, compute, store, buffers)
    dram_read = float(a_bytes.sum() + b_bytes.sum()) * batch
    dram_write = float(out_bytes.sum()) * batch
    operand_reads = sum(
        _operand_reads_reference(a, b, c, p) for a, b, c in zip(em, en, ek, strict=True)
    )
    acc_bytes = em * en * p[P_ACC_BYTES]
    out = np.empty(N_RESULTS)
    out[R_TILE_M], out[R_TILE_N], out[R_TILE_K] = tm, tn, tk
    out[R_BUFFERS] = buffers
    out[R_LOOP_ORDER] = order
    out[R_TILES] = len(load)
    out[R_CYCLES] = total
    out[R_STALL_CYCLES] = stall
    out[R_COMPUTE_CYCLES] = compute.sum()
    out[R_LOAD_CYCLES] = load.sum()
    out[R_STORE_CYCLES] = store.sum()
    out[R_DRAM_READ_BYTES] = dram_read
    out[R_DRAM_WRITE_BYTES] = dram_write
    out[R_SP_READ_BYTES] = (
        operand_reads * batch + float(acc_bytes[k_index > 0].sum()) * batch + dram_write
    )
    out[R_SP_WRITE_BYTES] = dram_read + float(acc_bytes.sum()) * batch
    return out


def plan_gemm_reference(
    tile_ms: np.ndarray, tile_ns: np.ndarray, tile_ks: np.ndarray, p: np.ndarray
) -> np.ndarray:
    """Plain-Python statement of :func:`plan_gemm`: estimates vectorized over the candidates
    with numpy, then :func:`run_tiling_reference` on the best few. Same parameters and returns.
    """
    grid = np.meshgrid(tile_ms, tile_ns, tile_ks, indexing="ij")
    tm, tn, tk = (g.ravel().astype(np.float64) for g in grid)
    footprint = 2.0 * (tm * tk * p[P_A_BYTES] + tk * tn * p[P_B_BYTES] + tm * tn * p[P_ACC_BYTES])
    fits = footprint <= p[P_CAPACITY_BYTES]
    if not fits.any():
        return np.zeros(N_RESULTS)
    tm, tn, tk = tm[fits], tn[fits], tk[fits]
    m, n, k, batch = p[P_M], p[P_N], p[P_K], p[P_BATCH]
    bpc = p[P_DRAM_BYTES_PER_CYCLE]
    n_m, n_n, n_k = np.ceil(m / tm), np.ceil(n / tn), np.ceil(k / tk)
    tiles = n_m * n_n * n_k * batch
    last_m, last_n, last_k = m - (n_m - 1) * tm, n - (n_n - 1) * tn, k - (n_k - 1) * tk
    compute_total = np.zeros_like(tm)
    for size_m, count_m in ((tm, n_m - 1), (last_m, 1.0)):
        for size_n, count_n in ((tn, n_n - 1), (last_n, 1.0)):
            for size_k, count_k in ((tk, n_k - 1), (last_k, 1.0)):
                per_tile = np.array(
                    [
                        _tile_compute_reference(a, b, c, p)
                        for a, b, c in np.broadcast(size_m, size_n, size_k)
                    ]
                )
                compute_total += count_m * count_n * count_k * per_tile
    compute_total *= batch
    last_compute = np.array(
        [
            _tile_compute_reference(a, b, c, p)
            for a, b, c in zip(last_m, last_n, last_k, strict=True)
        ]
    )
    n_outer, m_outer = _dram_reads_reference(p, n_m, n_n, n_k)
    out_bytes = batch * m * n * p[P_OUT_BYTES] if p[P_OUT_TO_DRAM] else 0.0
    dram = np.minimum(n_outer, m_outer) + out_bytes
    dma = dram / bpc + tiles * (math.ceil(2.0 / p[P_DMA_ENGINES]) * p[P_SETUP_CYCLES])
    a_first = tm * tk * p[P_A_BYTES] if p[P_A_FROM_DRAM] else 0.0
    first_load = (a_first + tk * tn * p[P_B_BYTES]) / bpc
    last_store = (last_m * last_n * p[P_OUT_BYTES] if p[P_OUT_TO_DRAM] else 0.0) / bpc
    estimate = np.maximum(first_load + compute_total, dma + last_compute) + last_store
    runs = [
        run_tiling_reference(tm[i], tn[i], tk[i], 2, AUTO_LOOP_ORDER, p)
        for i in np.argsort(estimate, kind="stable")[: int(p[P_REPLAYED])]
    ]
    return min(runs, key=lambda r: r[R_CYCLES])


def _extents_reference(total: int, tile: int) -> np.ndarray:
    count = math.ceil(total / tile)
    sizes = np.full(count, float(tile))
    sizes[-1] = total - (count - 1) * tile
    return sizes


def _dram_reads_reference(
    p: np.ndarray, n_m: np.ndarray, n_n: np.ndarray, n_k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a_total = p[P_BATCH] * p[P_M] * p[P_K] * p[P_A_BYTES] if p[P_A_FROM_DRAM] else 0.0
    b_total = p[P_BATCH] * p[P_K] * p[P_N] * p[P_B_BYTES]
    single_k = n_k == 1
    n_outer = a_total * n_n + b_total * np.where(single_k, 1.0, n_m)
    m_outer = a_total * np.where(single_k, 1.0, n_n) + b_total * n_m
    return n_outer, m_outer


def _operand_reads_reference(tm: float, tn: float, tk: float, p: np.ndarray) -> float:
    a_reads = tm * tk * p[P_A_BYTES] * math.ceil(tn / p[P_COLS])
    ws = DATAFLOWS[int(p[P_DATAFLOW])] == "ws"
    b_reads = tk * tn * p[P_B_BYTES] * (1 if ws else math.ceil(tm / p[P_ROWS]))
    return float(a_reads + b_reads)


def _tile_compute_reference(tm: float, tn: float, tk: float, p: np.ndarray) -> float:
    """One tile's compute cycles, dealing the array blocks out round by round."""
    rows, cols, arrays, macs = p[P_ROWS], p[P_COLS], int(p[P_ARRAYS]), p[P_MACS_PER_PE]
    if DATAFLOWS[int(p[P_DATAFLOW])] == "ws":
        blocks = math.ceil(tk / (rows * macs)) * math.ceil(tn / cols)
        stream = float(tm)
    else:
        blocks = math.ceil(tm / rows) * math.ceil(tn / cols)
        stream = float(math.ceil(tk / macs))
    busy = rows + cols  # fill and drain, once per tile
    while blocks >= arrays:
        busy += max(stream, rows)
        blocks -= arrays
    if blocks:
        # the last partial round's blocks are shared by all arrays, copies splitting the stream
        busy += max(math.ceil(stream / (arrays // blocks)), rows)
    port = (_operand_reads_reference(tm, tn, tk, p) + tm * tn * p[P_ACC_BYTES]) / p[
        P_SP_BYTES_PER_CYCLE
    ]
    return float(max(busy, port))
