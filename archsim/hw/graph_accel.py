"""SpGEMM dataflows on a PIUMA-like graph accelerator: row-wise with hashing (SMASH), inner, outer.

Pure functions of a :class:`GraphAccelConfig` and the real patterns of ``A`` and ``B``. Every
dataflow is priced the same way: DRAM bytes at the die's bandwidth against the instructions of
its work items on the die's threads (a pipeline issues one of its threads per cycle). Threads
take work items dynamically, the next item going to the first thread that frees (PIUMA's remote
atomics on a shared work counter; SMASH's window distribution phase, Shivdikar 2021, Sec.
5.1.1), so power-law matrices cost load imbalance only where one item is large.

* **row-wise, hashing scratchpad** (SMASH V1, Shivdikar 2021, Sec. 5.1): consecutive rows of
  ``C`` form windows sized to a core's scratchpad hash table; a core's threads merge the window's
  partial products into that table by atomic adds, then write it back. ``B``'s rows stream from
  DRAM once per kept ``A[i, k]``; collisions cost extra probes. Windows go to cores dynamically;
  inside a core the window's products are shared by its threads.
* **inner product**: each non-empty row ``i`` of ``A`` is expanded into the thread's scratchpad
  as a dense lookup, and all of ``B`` (by columns) streams from DRAM past it: one lookup per
  entry of ``B``, one output check per column. ``B`` is fetched again for every row: the
  redundant fetches the thesis names as the inner product's cost.
* **outer product**: column ``k`` of ``A`` times row ``k`` of ``B`` writes its partial products
  to DRAM; a second phase reads them back and merges each output row. A row's partial products
  arrive as one sorted run per kept ``A[i, k]`` (row ``k`` of ``B``, sorted in CSR), as in
  OuterSPACE's per-row lists of partial-product chunks (Pal et al., HPCA 2018), so
  one thread merges the row's runs through a tournament tree: ``ceil(log2 runs)`` comparisons
  per partial product (Knuth, TAOCP Vol. 3, Sec. 5.4.1), not a comparison sort of the row.

Not captured: the network between dies, caches, and DRAM bank conflicts (8-byte accesses are
assumed to reach the full bandwidth, the point of PIUMA's narrow memory channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archsim.config.graph_accel import GraphAccelConfig
from archsim.errors import ArchsimError
from archsim.kernels.sparse_spgemm import (
    product_windows,
    row_products,
    row_runs,
    rowwise_hash_spgemm,
)
from archsim.kernels.sparse_tiles import schedule_blocks

# A CSR entry: 4-byte column index and 4-byte fp32 value (one 8-byte DRAM access).
ENTRY_BYTES = 8.0
# A partial product of the outer product: row, column and value.
PARTIAL_BYTES = 12.0
# A hash-table slot: 4-byte key and 4-byte value.
SLOT_BYTES = 8
# Windows fill a core's table to at most half its slots (by partial products, an upper bound on
# the distinct keys): linear probing then needs about 2.5 probes per new key and 1.5 per hit
# (Knuth, TAOCP Vol. 3, Sec. 6.4, Algorithm L analysis at load factor 1/2).
WINDOW_LOAD_FACTOR = 0.5
# Instructions of one partial product: load B's entry, multiply, hash the key, atomic add.
INSTR_PER_PRODUCT = 4.0
# One instruction per extra probe of a collision (compare-and-swap on the next slot).
INSTR_PER_PROBE = 1.0
# Loop and pointer instructions per kept A entry (read A[i, k], fetch B's row bounds).
INSTR_PER_A_ENTRY = 3.0
# Instructions per merge or lookup step: load an index, compare (or look it up), advance, branch.
INSTR_PER_MERGE_STEP = 3.0
# Instructions per output written (read the slot, store index and value).
INSTR_PER_OUTPUT = 2.0
# A used slot of the hash table is set back to empty after the write-back, so that the next
# window finds a clear table (one store; SMASH V1's write-back phase, Shivdikar 2021, Sec. 5.1.3).
INSTR_PER_SLOT_RESET = 1.0
# The write-back must find the used slots. Listed: a new key appends its slot to a list (one
# store) that the write-back reads back (one load). Scanned: every slot of the table is loaded
# and tested for empty (load, branch).
INSTR_PER_LISTED_SLOT = 2.0
INSTR_PER_SCANNED_SLOT = 2.0
WRITEBACKS = ("listed", "scanned")
# Merge of an outer-product row: a tournament tree over its sorted runs, or a comparison sort of
# all its partial products that ignores the runs.
OUTER_MERGES = ("tournament", "sort")


@dataclass(frozen=True)
class SpgemmCost:
    """Predicted time of one SpGEMM dataflow.

    Attributes
    ----------
    dataflow:
        ``row-wise-hash``, ``inner`` or ``outer``.
    latency_s:
        Time of the kernel in seconds.
    dram_bytes:
        Bytes read from and written to DRAM.
    busiest_thread_instructions:
        Instructions of the most loaded thread.
    imbalance:
        Busiest thread over the mean thread.
    bound:
        ``memory`` or ``compute``.
    """

    dataflow: str
    latency_s: float
    dram_bytes: float
    busiest_thread_instructions: float
    imbalance: float
    bound: str


@dataclass(frozen=True)
class RowwiseStats:
    """Per-row counts of :func:`rowwise_hash_spgemm` with the table size they were taken at."""

    per_row: np.ndarray
    table_slots: int
    windows: np.ndarray

    @property
    def products(self) -> float:
        return float(self.per_row[:, 0].sum())

    @property
    def output_nnz(self) -> float:
        return float(self.per_row[:, 1].sum())

    @property
    def collisions_per_product(self) -> float:
        return float(self.per_row[:, 2].sum()) / max(self.products, 1.0)

    @property
    def overflow_share(self) -> float:
        return float(self.per_row[:, 3].sum()) / max(self.products, 1.0)


def threads(accel: GraphAccelConfig) -> int:
    return accel.cores * accel.pipelines_per_core * accel.threads_per_pipeline


def table_slots(accel: GraphAccelConfig) -> int:
    """Hash slots of one core's table: its whole scratchpad, shared by its threads."""
    return max(1, int(accel.scratchpad_per_core_bytes // SLOT_BYTES))


def rowwise_stats(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], slots: int
) -> RowwiseStats:
    """Run the hashing kernel on the real patterns of ``A`` and ``B``, one window per table."""
    windows = product_windows(row_products(a, b), WINDOW_LOAD_FACTOR * slots)
    return RowwiseStats(rowwise_hash_spgemm(a[0], a[1], b[0], b[1], slots, windows), slots, windows)


def _dynamic_s(
    item_instructions: np.ndarray, workers: int, worker_ips: float
) -> tuple[float, float]:
    """Makespan of work items taken in order by the first free worker, and its imbalance."""
    busy = schedule_blocks(np.ascontiguousarray(item_instructions, dtype=np.float64), workers)
    mean = float(busy.mean())
    return float(busy.max()) / worker_ips, float(busy.max()) / mean if mean > 0 else 1.0


def _timed(
    accel: GraphAccelConfig,
    dataflow: str,
    dram_bytes: float,
    items: np.ndarray,
    workers: int,
    worker_ips: float,
) -> SpgemmCost:
    memory_s = dram_bytes / accel.dram_bw_bytes_per_s
    compute_s, imbalance = _dynamic_s(items, workers, worker_ips)
    return SpgemmCost(
        dataflow=dataflow,
        latency_s=max(memory_s, compute_s),
        dram_bytes=dram_bytes,
        busiest_thread_instructions=compute_s * worker_ips,
        imbalance=imbalance,
        bound="memory" if memory_s >= compute_s else "compute",
    )


def _thread_ips(accel: GraphAccelConfig) -> float:
    # a pipeline issues one instruction per cycle, shared round-robin by its threads
    return accel.clock_hz / accel.threads_per_pipeline


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ArchsimError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def rowwise_hash_cost(
    accel: GraphAccelConfig,
    a: tuple[np.ndarray, np.ndarray],
    stats: RowwiseStats,
    writeback: str = "listed",
) -> SpgemmCost:
    """SMASH: windows of rows merged by atomics in a core's scratchpad hash table.

    ``writeback`` says how the write-back phase finds the used slots: ``listed`` (each new key
    records its slot) or ``scanned`` (every slot of the table is tested).
    """
    _check_choice("writeback", writeback, WRITEBACKS)
    a_row_nnz = np.diff(a[0]).astype(np.float64)
    per_row = stats.per_row.astype(np.float64)
    per_output = INSTR_PER_OUTPUT + INSTR_PER_SLOT_RESET
    if writeback == "listed":
        per_output += INSTR_PER_LISTED_SLOT
    instructions = (
        INSTR_PER_A_ENTRY * a_row_nnz
        + INSTR_PER_PRODUCT * per_row[:, 0]
        + INSTR_PER_PROBE * per_row[:, 2]
        + per_output * per_row[:, 1]
    )
    per_window = np.bincount(stats.windows, weights=instructions)
    if writeback == "scanned":
        per_window = per_window + INSTR_PER_SCANNED_SLOT * stats.table_slots
    # A once, B's row bounds and row per kept A entry, C once, spilled products read and written
    dram = ENTRY_BYTES * (
        a_row_nnz.sum() * 2.0 + stats.products + stats.output_nnz + 2.0 * per_row[:, 3].sum()
    )
    # a window runs on all threads of one core: the core issues one instruction per pipeline
    core_ips = accel.pipelines_per_core * accel.clock_hz
    return _timed(accel, "row-wise-hash", dram, per_window, accel.cores, core_ips)


def inner_product_cost(
    accel: GraphAccelConfig, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> SpgemmCost:
    """Inner product: each non-empty row of A looked up by every entry of B, B refetched per row."""
    n_cols = int(b[1].max()) + 1 if b[1].size else 0
    b_col_nnz = np.bincount(b[1], minlength=n_cols).astype(np.float64)
    cols = float((b_col_nnz > 0).sum())
    b_nnz = float(b_col_nnz.sum())
    a_row_nnz = np.diff(a[0]).astype(np.float64)
    active = a_row_nnz > 0
    # per active row: expand it into the lookup, one step per entry of B and per column of B
    instructions = np.where(
        active, INSTR_PER_MERGE_STEP * (b_nnz + cols) + INSTR_PER_A_ENTRY * a_row_nnz, 0.0
    )
    dram = ENTRY_BYTES * (a_row_nnz.sum() + active.sum() * b_nnz)
    return _timed(accel, "inner", dram, instructions[active], threads(accel), _thread_ips(accel))


def outer_product_cost(
    accel: GraphAccelConfig,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    stats: RowwiseStats,
    merge_kind: str = "tournament",
    split_rows: bool = False,
) -> SpgemmCost:
    """Outer product: partial-product matrices written to DRAM, then merged row by row.

    ``merge_kind``: ``tournament`` (a tree over the row's sorted runs) or ``sort`` (a comparison
    sort of the row's partial products). ``split_rows`` spreads the merge phase evenly over all
    threads, as a merge that cuts heavy rows by column ranges would; by default one thread merges
    a whole row.
    """
    _check_choice("merge_kind", merge_kind, OUTER_MERGES)
    k_len = len(b[0]) - 1
    a_col_nnz = np.bincount(a[1], minlength=k_len).astype(np.float64)
    b_row_nnz = np.diff(b[0]).astype(np.float64)
    # a work item is one kept A[i, k] times row k of B (column k's entries go to many threads,
    # as OuterSPACE's multiply phase spreads them over its processing elements)
    multiply = INSTR_PER_A_ENTRY + INSTR_PER_PRODUCT * b_row_nnz[a[1]]
    # merge: each output row's sorted runs go through a tournament tree of ceil(log2 runs)
    # levels, one comparison per level per partial product (a single run needs none); the
    # winner is then folded into the output, added to it if its column repeats (one more step)
    per_row = stats.per_row.astype(np.float64)
    if merge_kind == "tournament":
        tree_levels = np.ceil(np.log2(np.maximum(row_runs(a, b).astype(np.float64), 1.0)))
    else:
        tree_levels = np.log2(np.maximum(per_row[:, 0], 2.0))
    merge = (
        INSTR_PER_MERGE_STEP * per_row[:, 0] * (tree_levels + 1.0)
        + INSTR_PER_OUTPUT * per_row[:, 1]
    )
    dram = ENTRY_BYTES * (a_col_nnz.sum() + b_row_nnz.sum() + stats.output_nnz)
    dram += 2.0 * PARTIAL_BYTES * stats.products  # partials written, then read back
    # two phases with a barrier between them: each is bound by its own busiest thread
    workers, ips = threads(accel), _thread_ips(accel)
    merge_items = merge[merge > 0]
    if split_rows:
        merge_items = np.full(workers, merge_items.sum() / workers)
    phase_1 = _timed(
        accel,
        "outer",
        ENTRY_BYTES * (a_col_nnz.sum() + b_row_nnz.sum()) + PARTIAL_BYTES * stats.products,
        multiply,
        workers,
        ips,
    )
    phase_2 = _timed(
        accel,
        "outer",
        PARTIAL_BYTES * stats.products + ENTRY_BYTES * stats.output_nnz,
        merge_items,
        workers,
        ips,
    )
    return SpgemmCost(
        dataflow="outer",
        latency_s=phase_1.latency_s + phase_2.latency_s,
        dram_bytes=dram,
        busiest_thread_instructions=phase_1.busiest_thread_instructions
        + phase_2.busiest_thread_instructions,
        imbalance=max(phase_1.imbalance, phase_2.imbalance),
        bound=phase_1.bound if phase_1.latency_s >= phase_2.latency_s else phase_2.bound,
    )


def expected_load_factor(stats: RowwiseStats) -> float:
    """Mean share of a core's table that a window fills (distinct outputs over slots)."""
    windows = int(stats.windows.max()) + 1 if stats.windows.size else 0
    return stats.output_nnz / windows / stats.table_slots if windows else math.nan
