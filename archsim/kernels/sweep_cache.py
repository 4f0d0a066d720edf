"""An SM's L1 under a CSR SpMM whose resident rows sweep the dense operand together.

Semantics shared by the Numba kernel and its plain-Python reference (tests compare them):

* One SM runs ``slots`` resident sparse rows at once (its thread blocks' rows). Each step, every
  slot in turn issues its next kept weight with its own probability ``slot_rates[slot]`` (all 1:
  strict lockstep; a spread of rates: rows that the warp schedulers favour pull ahead). The draws
  come from a 64-bit linear congruential generator (Knuth's MMIX constants) seeded with
  ``seed``, one draw per slot and step, so the kernel and the reference see the same draws. When
  a slot's row ends, the slot starts the SM's next unstarted row at its own rate, so later waves
  start as the rows before them end.
* Each row's kept weights are its column indices in issue order (a CSR row keeps them sorted;
  any order is simulated as given). A kept weight at column
  ``c`` reads the dense operand's row ``c``; ``columns_per_line`` consecutive dense rows share one
  cache line (a dense row wider than a line counts as one line: pass 1).
* Every ``stream_every`` kept weights of a row (its first included), the row's sparse tile
  (values, indices) is read through the same cache: ``stream_lines`` new lines that are never
  read again.
* The cache is fully associative with LRU replacement and ``capacity_lines`` lines.

:func:`sweep_hits` returns ``(dense-row hits, dense-row reads)``.
"""

from __future__ import annotations

from collections import OrderedDict

import numba
import numpy as np

# Knuth's MMIX linear congruential generator: state = a * state + c mod 2**64; a draw is the top
# 53 bits over 2**53.
LCG_MULTIPLIER = 6364136223846793005
LCG_INCREMENT = 1442695040888963407
MASK_64 = (1 << 64) - 1


@numba.njit(cache=True)
def sweep_hits(
    columns: np.ndarray,
    lengths: np.ndarray,
    slots: int,
    columns_per_line: int,
    capacity_lines: int,
    stream_every: int,
    stream_lines: int,
    slot_rates: np.ndarray,
    seed: int = 0,
) -> tuple[int, int]:
    """Dense-row hits and reads of one SM's rows sweeping together through an LRU cache.

    Parameters
    ----------
    columns:
        int64 array ``(rows, max_length)``: each row's column indices in issue order, padded.
    lengths:
        int64 array ``(rows,)``: kept weights of each row (the valid prefix of ``columns``).
    slots:
        Rows resident at once.
    columns_per_line:
        Consecutive dense rows per cache line (>= 1).
    capacity_lines:
        Cache lines (>= 1).
    stream_every, stream_lines:
        Each row reads ``stream_lines`` never-reused lines every ``stream_every`` kept weights.
    slot_rates:
        float64 array ``(slots,)``: each slot's chance of issuing in a step (0 < p <= 1).
    seed:
        Seed of the draws.
    """
    state = np.uint64(seed)
    multiplier = np.uint64(LCG_MULTIPLIER)
    increment = np.uint64(LCG_INCREMENT)
    shift = np.uint64(11)
    rows = lengths.shape[0]
    max_column = 0
    for r in range(rows):
        for p in range(lengths[r]):
            if columns[r, p] < 0:
                raise ValueError("column indices must be >= 0")
            if columns[r, p] > max_column:
                max_column = columns[r, p]
    dense_lines = max_column // columns_per_line + 1
    total = 0
    for r in range(rows):
        total += lengths[r]
    stream_total = 0
    if stream_every > 0:
        for r in range(rows):
            stream_total += (lengths[r] + stream_every - 1) // stream_every * stream_lines
    ids = dense_lines + stream_total + 1
    prev = np.full(ids, -1, dtype=np.int64)
    nxt = np.full(ids, -1, dtype=np.int64)
    cached = np.zeros(ids, dtype=np.bool_)
    head = -1
    tail = -1
    size = 0
    next_stream = dense_lines
    hits = 0
    reads = 0
    row_of_slot = np.full(slots, -1, dtype=np.int64)
    pos_of_slot = np.zeros(slots, dtype=np.int64)
    next_row = 0
    for s in range(min(slots, rows)):
        row_of_slot[s] = next_row
        next_row += 1
    active = min(slots, rows)
    while active > 0:
        for s in range(slots):
            r = row_of_slot[s]
            if r < 0:
                continue
            state = state * multiplier + increment
            if float(state >> shift) / 9007199254740992.0 >= slot_rates[s]:
                continue
            if pos_of_slot[s] >= lengths[r]:
                if next_row < rows:
                    r = next_row
                    next_row += 1
                    row_of_slot[s] = r
                    pos_of_slot[s] = 0
                else:
                    row_of_slot[s] = -1
                    active -= 1
                    continue
                if lengths[r] == 0:
                    continue
            p = pos_of_slot[s]
            n_access = 1
            if stream_every > 0 and p % stream_every == 0:
                n_access += stream_lines
            for a in range(n_access):
                if a < n_access - 1:
                    line = next_stream
                    next_stream += 1
                else:
                    line = columns[r, p] // columns_per_line
                    reads += 1
                if cached[line]:
                    if a == n_access - 1:
                        hits += 1
                    if line != head:
                        # unlink, then push to the front
                        pl = prev[line]
                        nl = nxt[line]
                        if pl >= 0:
                            nxt[pl] = nl
                        if nl >= 0:
                            prev[nl] = pl
                        if tail == line:
                            tail = pl
                        prev[line] = -1
                        nxt[line] = head
                        prev[head] = line
                        head = line
                else:
                    cached[line] = True
                    prev[line] = -1
                    nxt[line] = head
                    if head >= 0:
                        prev[head] = line
                    head = line
                    if tail < 0:
                        tail = line
                    size += 1
                    if size > capacity_lines:
                        old = tail
                        tail = prev[old]
                        nxt[tail] = -1
                        prev[old] = -1
                        cached[old] = False
                        size -= 1
            pos_of_slot[s] = p + 1
    return hits, reads


def sweep_hits_reference(
    columns: np.ndarray,
    lengths: np.ndarray,
    slots: int,
    columns_per_line: int,
    capacity_lines: int,
    stream_every: int,
    stream_lines: int,
    slot_rates: np.ndarray,
    seed: int = 0,
) -> tuple[int, int]:
    """Plain-Python :func:`sweep_hits` (an ordered dict as the LRU list)."""
    rows = len(lengths)
    state = seed
    cache: OrderedDict[tuple[str, int], None] = OrderedDict()
    hits = reads = 0
    stream_id = 0

    def touch(key: tuple[str, int]) -> bool:
        if key in cache:
            cache.move_to_end(key)
            return True
        cache[key] = None
        if len(cache) > capacity_lines:
            cache.popitem(last=False)
        return False

    queue = list(range(rows))
    resident: list[list[int]] = [[queue.pop(0), 0] for _ in range(min(slots, rows))]
    resident += [[-1, 0] for _ in range(slots - len(resident))]
    while any(r >= 0 for r, _ in resident):
        for index, slot in enumerate(resident):
            row, pos = slot
            if row < 0:
                continue
            state = (state * LCG_MULTIPLIER + LCG_INCREMENT) & MASK_64
            if (state >> 11) / 2.0**53 >= slot_rates[index]:
                continue
            if pos >= lengths[row]:
                if not queue:
                    slot[0] = -1
                    continue
                row, pos = queue.pop(0), 0
                slot[0], slot[1] = row, 0
                if lengths[row] == 0:
                    continue
            if stream_every > 0 and pos % stream_every == 0:
                for _ in range(stream_lines):
                    touch(("stream", stream_id))
                    stream_id += 1
            reads += 1
            hits += touch(("dense", int(columns[row, pos]) // columns_per_line))
            slot[1] = pos + 1
    return hits, reads


def iid_csr_rows(
    rows: int, columns: int, density: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted column indices of ``rows`` rows that keep each of ``columns`` with ``density``.

    Returns ``(columns, lengths)`` as :func:`sweep_hits` takes them (padded with ``-1``).
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    rng = np.random.default_rng(seed)
    # gaps between kept columns are geometric; draw enough for the longest row, then cut at K
    draws = int(columns * density + 8.0 * np.sqrt(columns * density) + 16)
    draws = min(draws, columns)
    positions = np.cumsum(rng.geometric(density, size=(rows, draws)), axis=1) - 1
    lengths = (positions < columns).sum(axis=1).astype(np.int64)
    return np.where(positions < columns, positions, -1).astype(np.int64), lengths
