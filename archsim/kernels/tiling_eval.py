"""Analytical cost of GEMM tilings on a scratchpad accelerator, for many candidates at once.

One candidate is a tile shape ``tile_m x tile_n x tile_k``, a loop order over the output tiles, a
dataflow of the compute arrays and a buffer count. The model shared by the Numba kernel and its
plain-Python reference (tests compare the two on random candidates):

* Tiles run in loop order (``n_outer``: ``n`` tiles outer, then ``m``, then ``k``; ``m_outer``:
  ``m``, then ``n``, then ``k``), the whole nest repeated for each of ``batch`` independent
  GEMMs. Each dimension has full tiles and one last tile that may be ragged.
* DRAM loads: every tile loads its ``a`` and ``b`` tiles, except that with an unsplit reduction
  (one ``k`` tile) the operand of the outer loop stays resident while the inner loop runs
  (``n_outer`` keeps ``b``, ``m_outer`` keeps ``a``). The output tile is stored after its last
  ``k`` tile. Each load pays ``ceil(transfers / dma_engines)`` DMA setups, each store one.
* Compute of one tile on ``arrays`` arrays of ``rows x cols`` PEs, each PE doing ``macs_per_pe``
  MACs per cycle along ``k``. The tile is cut into array-sized blocks; a block streams its
  moving operand for ``max(stream, rows)`` cycles (the next block's stationary operand loads
  behind the stream):

  - ``ws`` (weights stationary): blocks ``ceil(tk / (rows*macs)) * ceil(tn / cols)``, stream
    ``tm`` activation rows;
  - ``os`` (outputs stationary): blocks ``ceil(tm / rows) * ceil(tn / cols)``, stream
    ``ceil(tk / macs)`` reduction steps;
  - ``is`` (inputs stationary): blocks ``ceil(tk / (rows*macs)) * ceil(tm / cols)``, stream
    ``tn`` weight columns.

  Blocks are dealt to the arrays in full rounds; the blocks of a last, partial round are shared
  by all arrays (copies split the stream). Each tile pays ``fill_drain_cycles`` once (the
  skewed pipeline fills and drains once per tile, blocks follow back to back). The scratchpad
  port must keep up: compute is at least the tile's operand and fp32 accumulator bytes over the
  scratchpad bytes per cycle (the moving operand is re-read once per block of the other
  dimension).
* Overlap, in two steps. A closed form bounds every candidate: with one buffer nothing overlaps
  (loads + compute + stores); with two the total is at least the longest of first load + all
  compute + last store, all loads + last compute + last store, and first load + first compute +
  all stores; and never less than all DRAM bytes at the DRAM rate. Each of these is a chain of
  dependent phases of the pipeline, so the form is a lower bound of the replay. The replay then
  runs the candidate's tiles through the recurrence of ``archsim.kernels.tile_pipeline`` (a
  tile's load also waits for its buffer, which a non-uniform tile sequence makes visible):
  cycles = max(replay, DRAM bytes / rate).

Search visits candidates in ascending bound and replays one only while its bound beats the best
replayed cycles of its dataflow (branch and bound); the bound being a true one, the optimum of
the replay model is never pruned.

Parameters travel as one float64 vector indexed by the ``P_*`` constants; candidates as parallel
arrays. Dataflow codes are ``DATAFLOWS.index(name)``; loop-order codes ``LOOP_ORDERS.index``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from archsim.kernels.arith import cdiv
from archsim.kernels.tile_pipeline import simulate_tile_pipeline_reference

DATAFLOWS = ("ws", "os", "is")
LOOP_ORDERS = ("n_outer", "m_outer")

# indices into the parameter vector
P_M = 0
P_N = 1
P_K = 2
P_BATCH = 3
P_A_BYTES = 4  # stored bytes per element of a, b, out; accumulator bytes per output element
P_B_BYTES = 5
P_OUT_BYTES = 6
P_ACC_BYTES = 7
P_ROWS = 8
P_COLS = 9
P_ARRAYS = 10
P_MACS_PER_PE = 11
P_FILL_DRAIN_CYCLES = 12
P_DRAM_BYTES_PER_CYCLE = 13
P_SP_BYTES_PER_CYCLE = 14
P_SETUP_CYCLES = 15
P_DMA_ENGINES = 16
N_PARAMS = 17


@numba.njit(cache=True)
def _tile_compute(tm: float, tn: float, tk: float, flow: int, p: np.ndarray) -> float:
    """Compute cycles of one ``tm x tn x tk`` tile (see the module docstring)."""
    rows, cols, arrays, macs = p[P_ROWS], p[P_COLS], p[P_ARRAYS], p[P_MACS_PER_PE]
    if flow == 0:
        blocks = cdiv(tk, rows * macs) * cdiv(tn, cols)
        stream = tm
    elif flow == 1:
        blocks = cdiv(tm, rows) * cdiv(tn, cols)
        stream = cdiv(tk, macs)
    else:
        blocks = cdiv(tk, rows * macs) * cdiv(tm, cols)
        stream = tn
    full_rounds = math.floor(blocks / arrays)
    leftover = blocks - full_rounds * arrays
    array_cycles = full_rounds * max(stream, rows) + p[P_FILL_DRAIN_CYCLES]
    if leftover > 0:
        copies = math.floor(arrays / leftover)
        array_cycles += max(math.ceil(stream / copies), rows)
    a_tile = tm * tk * p[P_A_BYTES]
    b_tile = tk * tn * p[P_B_BYTES]
    if flow == 0:
        operands = a_tile * cdiv(tn, cols) + b_tile
    elif flow == 1:
        operands = a_tile * cdiv(tn, cols) + b_tile * cdiv(tm, rows)
    else:
        operands = a_tile + b_tile * cdiv(tm, cols)
    port = (operands + tm * tn * p[P_ACC_BYTES]) / p[P_SP_BYTES_PER_CYCLE]
    return max(array_cycles, port)


@numba.njit(cache=True)
def _dram_read_bytes(n_m: float, n_n: float, n_k: float, order: int, p: np.ndarray) -> float:
    a_total = p[P_BATCH] * p[P_M] * p[P_K] * p[P_A_BYTES]
    b_total = p[P_BATCH] * p[P_K] * p[P_N] * p[P_B_BYTES]
    if n_k == 1 and order == 0:
        return a_total * n_n + b_total
    if n_k == 1:
        return a_total + b_total * n_m
    return a_total * n_n + b_total * n_m


@numba.njit(cache=True)
def _candidate(
    tm: float, tn: float, tk: float, order: int, flow: int, buffers: int, p: np.ndarray
) -> tuple[float, float]:
    """(cycles, DRAM bytes) of one candidate; tiles are clipped to the GEMM's extents."""
    m, n, k, batch = p[P_M], p[P_N], p[P_K], p[P_BATCH]
    tm, tn, tk = min(tm, m), min(tn, n), min(tk, k)
    n_m, n_n, n_k = cdiv(m, tm), cdiv(n, tn), cdiv(k, tk)
    last_m, last_n, last_k = m - (n_m - 1) * tm, n - (n_n - 1) * tn, k - (n_k - 1) * tk
    compute = 0.0
    for im in range(2):
        size_m = tm if im == 0 else last_m
        count_m = n_m - 1 if im == 0 else 1.0
        for jn in range(2):
            size_n = tn if jn == 0 else last_n
            count_n = n_n - 1 if jn == 0 else 1.0
            for lk in range(2):
                size_k = tk if lk == 0 else last_k
                count_k = n_k - 1 if lk == 0 else 1.0
                count = count_m * count_n * count_k
                if count > 0:
                    compute += count * _tile_compute(size_m, size_n, size_k, flow, p)
    compute *= batch
    bpc, setup, engines = p[P_DRAM_BYTES_PER_CYCLE], p[P_SETUP_CYCLES], p[P_DMA_ENGINES]
    setup_two = math.ceil(2.0 / engines) * setup
    setup_one = math.ceil(1.0 / engines) * setup
    tiles = n_m * n_n * n_k
    if n_k == 1 and order == 0:
        setups = n_n * setup_two + (n_m - 1) * n_n * setup_one
    elif n_k == 1:
        setups = n_m * setup_two + n_m * (n_n - 1) * setup_one
    else:
        setups = tiles * setup_two
    read_bytes = _dram_read_bytes(n_m, n_n, n_k, order, p)
    write_bytes = batch * m * n * p[P_OUT_BYTES]
    loads = read_bytes / bpc + batch * setups
    stores = write_bytes / bpc + batch * n_m * n_n * setup
    first_load = (tm * tk * p[P_A_BYTES] + tk * tn * p[P_B_BYTES]) / bpc + setup_two
    first_compute = _tile_compute(tm, tn, tk, flow, p)
    last_compute = _tile_compute(last_m, last_n, last_k, flow, p)
    last_store = last_m * last_n * p[P_OUT_BYTES] / bpc + setup
    dram = (read_bytes + write_bytes) / bpc
    if buffers == 1:
        cycles = max(loads + compute + stores, dram)
    else:
        cycles = max(
            first_load + compute + last_store,
            loads + last_compute + last_store,
            first_load + first_compute + stores,
            dram,
        )
    return cycles, read_bytes + write_bytes


@numba.njit(cache=True)
def _replay(
    tm: float, tn: float, tk: float, order: int, flow: int, buffers: int, p: np.ndarray
) -> float:
    """Cycles of the candidate's tiles through the DMA-load -> compute -> store pipeline.

    The recurrence is that of ``archsim.kernels.tile_pipeline`` (a tile's load waits for the
    load channel and for its buffer, released when the tile ``buffers`` earlier is stored),
    run over the tiles as the loop nest produces them, with per-tile costs from the model.
    """
    m, n, k, batch = p[P_M], p[P_N], p[P_K], int(p[P_BATCH])
    tm, tn, tk = min(tm, m), min(tn, n), min(tk, k)
    n_m, n_n, n_k = int(cdiv(m, tm)), int(cdiv(n, tn)), int(cdiv(k, tk))
    last = (m - (n_m - 1) * tm, n - (n_n - 1) * tn, k - (n_k - 1) * tk)
    # compute cycles of the eight (full or last) tile shapes, index 4*is_last_m + 2*n + k
    shapes = np.empty(8)
    for c in range(8):
        shapes[c] = _tile_compute(
            last[0] if c & 4 else tm, last[1] if c & 2 else tn, last[2] if c & 1 else tk, flow, p
        )
    bpc, setup, engines = p[P_DRAM_BYTES_PER_CYCLE], p[P_SETUP_CYCLES], p[P_DMA_ENGINES]
    nbuf = max(buffers, 1)
    buffer_free = np.zeros(nbuf)
    load_end = compute_end = store_end = 0.0
    slot = 0
    outer = n_n if order == 0 else n_m
    inner = n_m if order == 0 else n_n
    for _ in range(batch):
        for o in range(outer):
            for q in range(inner):
                i = q if order == 0 else o
                j = o if order == 0 else q
                em = last[0] if i == n_m - 1 else tm
                en = last[1] if j == n_n - 1 else tn
                for z in range(n_k):
                    ek = last[2] if z == n_k - 1 else tk
                    # the outer loop's operand stays resident over the inner loop (unsplit k)
                    load_a = not (n_k == 1 and order == 1 and j > 0)
                    load_b = not (n_k == 1 and order == 0 and i > 0)
                    moved = 0.0
                    transfers = 0
                    if load_a:
                        moved += em * ek * p[P_A_BYTES]
                        transfers += 1
                    if load_b:
                        moved += ek * en * p[P_B_BYTES]
                        transfers += 1
                    load = moved / bpc + math.ceil(transfers / engines) * setup
                    code = 4 * (i == n_m - 1) + 2 * (j == n_n - 1) + (z == n_k - 1)
                    store = em * en * p[P_OUT_BYTES] / bpc + setup if z == n_k - 1 else 0.0
                    load_start = max(load_end, buffer_free[slot])
                    load_end = load_start + load
                    compute_end = max(load_end, compute_end) + shapes[code]
                    store_end = max(compute_end, store_end) + store
                    buffer_free[slot] = store_end
                    slot = (slot + 1) % nbuf
    return store_end


@numba.njit(cache=True)
def evaluate_tilings(
    tile_m: np.ndarray,
    tile_n: np.ndarray,
    tile_k: np.ndarray,
    loop_order: np.ndarray,
    dataflow: np.ndarray,
    buffers: np.ndarray,
    params: np.ndarray,
    prune: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Bound every candidate in closed form, then replay the promising ones tile by tile.

    Parameters
    ----------
    tile_m, tile_n, tile_k:
        Tile extents in elements (float64).
    loop_order, dataflow, buffers:
        Codes per candidate (int64): ``LOOP_ORDERS`` index, ``DATAFLOWS`` index, 1 or 2.
    params:
        The problem and hardware vector (``P_*`` indices).
    prune:
        Branch and bound per dataflow: candidates are visited in ascending bound; one whose
        bound is no better than the best replayed cycles of its dataflow is not replayed, and
        the visit stops once that holds for every dataflow. False replays every candidate.

    Returns
    -------
    cycles:
        Replayed cycles (``max(pipeline, DRAM bytes / rate)``); ``inf`` where pruned.
    bound:
        Closed-form cycles, a lower bound of ``cycles``.
    dram_bytes:
        DRAM bytes read and written.
    replayed:
        Candidates replayed.
    """
    count = tile_m.shape[0]
    bound = np.empty(count)
    dram = np.empty(count)
    for i in range(count):
        bound[i], dram[i] = _candidate(
            tile_m[i], tile_n[i], tile_k[i], loop_order[i], dataflow[i], buffers[i], params
        )
    cycles = np.full(count, np.inf)
    best = np.full(len(DATAFLOWS), np.inf)
    present = np.zeros(len(DATAFLOWS), dtype=np.bool_)
    for i in range(count):
        present[dataflow[i]] = True
    visit = np.argsort(bound, kind="mergesort") if prune else np.arange(count)
    replayed = 0
    for i in visit:
        flow = dataflow[i]
        if prune:
            done = True
            for f in range(len(DATAFLOWS)):
                if present[f] and bound[i] < best[f]:
                    done = False
            if done:
                break  # bounds only grow from here on
            if bound[i] >= best[flow]:
                continue
        pipeline = _replay(tile_m[i], tile_n[i], tile_k[i], loop_order[i], flow, buffers[i], params)
        cycles[i] = max(pipeline, dram[i] / params[P_DRAM_BYTES_PER_CYCLE])
        replayed += 1
        if cycles[i] < best[flow]:
            best[flow] = cycles[i]
    return cycles, bound, dram, replayed


def candidate_cost_reference(
    tile_m: int,
    tile_n: int,
    tile_k: int,
    loop_order: str,
    dataflow: str,
    buffers: int,
    params: np.ndarray,
) -> tuple[float, float, float]:
    """Plain-Python statement of one candidate's (cycles, bound, DRAM bytes), tile by tile.

    Walks every tile in loop order and tracks which operand tile is resident, listing each
    tile's load, compute and store; the bound applies the overlap rule to those lists (the
    kernel uses closed forms), the cycles come from the plain-Python pipeline reference.
    """
    p = [float(v) for v in params]
    m, n, k, batch = (int(p[P_M]), int(p[P_N]), int(p[P_K]), int(p[P_BATCH]))
    tm, tn, tk = min(tile_m, m), min(tile_n, n), min(tile_k, k)
    rows, cols, arrays, macs = p[P_ROWS], p[P_COLS], int(p[P_ARRAYS]), p[P_MACS_PER_PE]
    bpc, setup, engines = p[P_DRAM_BYTES_PER_CYCLE], p[P_SETUP_CYCLES], p[P_DMA_ENGINES]

    def extents(total: int, tile: int) -> list[int]:
        return [min(tile, total - start) for start in range(0, total, tile)]

    def compute(em: int, en: int, ek: int) -> float:
        if dataflow == "ws":
            blocks = math.ceil(ek / (rows * macs)) * math.ceil(en / cols)
            stream: float = em
            operand_reads = em * ek * p[P_A_BYTES] * math.ceil(en / cols) + ek * en * p[P_B_BYTES]
        elif dataflow == "os":
            blocks = math.ceil(em / rows) * math.ceil(en / cols)
            stream = math.ceil(ek / macs)
            operand_reads = em * ek * p[P_A_BYTES] * math.ceil(en / cols) + ek * en * p[
                P_B_BYTES
            ] * math.ceil(em / rows)
        else:
            blocks = math.ceil(ek / (rows * macs)) * math.ceil(em / cols)
            stream = en
            operand_reads = em * ek * p[P_A_BYTES] + ek * en * p[P_B_BYTES] * math.ceil(em / cols)
        # deal blocks to arrays round by round
        remaining, busy = blocks, p[P_FILL_DRAIN_CYCLES]
        while remaining >= arrays:
            busy += max(stream, rows)
            remaining -= arrays
        if remaining:
            copies = arrays // remaining
            busy += max(math.ceil(stream / copies), rows)
        port = (operand_reads + em * en * p[P_ACC_BYTES]) / p[P_SP_BYTES_PER_CYCLE]
        return max(busy, port)

    ms, ns, ks = extents(m, tm), extents(n, tn), extents(k, tk)
    if loop_order == "n_outer":
        nest = [(i, j, q) for j in range(len(ns)) for i in range(len(ms)) for q in range(len(ks))]
    else:
        nest = [(i, j, q) for i in range(len(ms)) for j in range(len(ns)) for q in range(len(ks))]
    loads: list[float] = []
    computes: list[float] = []
    stores: list[float] = []
    read_bytes = write_bytes = 0.0
    for _ in range(batch):
        resident_a: tuple[int, int] | None = None
        resident_b: tuple[int, int] | None = None
        for i, j, q in nest:
            load_a = (i, q) != resident_a
            load_b = (q, j) != resident_b
            moved = 0.0
            if load_a:
                moved += ms[i] * ks[q] * p[P_A_BYTES]
            if load_b:
                moved += ks[q] * ns[j] * p[P_B_BYTES]
            transfers = int(load_a) + int(load_b)
            read_bytes += moved
            loads.append(moved / bpc + (math.ceil(transfers / engines) * setup if transfers else 0))
            # only the outer loop's operand stays resident, and only with an unsplit reduction
            single_k = len(ks) == 1
            resident_b = (q, j) if single_k and loop_order == "n_outer" else None
            resident_a = (i, q) if single_k and loop_order == "m_outer" else None
            computes.append(compute(ms[i], ns[j], ks[q]))
            if q == len(ks) - 1:
                out = ms[i] * ns[j] * p[P_OUT_BYTES]
                write_bytes += out
                stores.append(out / bpc + setup)
            else:
                stores.append(0.0)
    dram = (read_bytes + write_bytes) / bpc
    if buffers == 1:
        bound = max(sum(loads) + sum(computes) + sum(stores), dram)
    else:
        last_store = next(s for s in reversed(stores) if s > 0)
        bound = max(
            loads[0] + sum(computes) + last_store,
            sum(loads) + computes[-1] + last_store,
            loads[0] + computes[0] + sum(stores),
            dram,
        )
    pipeline, _ = simulate_tile_pipeline_reference(loads, computes, stores, buffers)
    return max(pipeline, dram), bound, read_bytes + write_bytes
