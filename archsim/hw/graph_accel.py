"""SpGEMM dataflows on a PIUMA-like graph accelerator: row-wise with hashing (SMASH), inner, outer.

Pure functions of a :class:`GraphAccelConfig` and the real patterns of ``A`` and ``B``. Every
dataflow is priced the same way: DRAM bytes at the die's bandwidth against the instructions of
the busiest thread at its issue rate (a pipeline issues one of its threads per cycle); the slower
of the two is the time. Threads take rows (or, for the outer product, reduction indices)
round-robin, so power-law matrices load some threads more than others.

* **row-wise, hashing scratchpad** (SMASH): row ``i`` of ``C`` is merged in a hash table in the
  thread's share of the core scratchpad by atomic adds; ``B``'s rows stream from DRAM once per
  kept ``A[i, k]``; collisions cost extra probes and a full table spills products to DRAM.
* **inner product**: every output ``C[i, j]`` with a non-empty row ``i`` and column ``j`` is the
  merge-intersection of row ``i`` of ``A`` (kept in the scratchpad) with column ``j`` of ``B``
  (streamed from DRAM): ``B`` is fetched again for every row.
* **outer product**: column ``k`` of ``A`` times row ``k`` of ``B`` writes its partial products to
  DRAM; a second phase reads them back and sorts each output row to merge them.

Not captured: the network between dies, caches, and DRAM bank conflicts (8-byte accesses are
assumed to reach the full bandwidth, the point of PIUMA's narrow memory channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archsim.config.graph_accel import GraphAccelConfig
from archsim.kernels.sparse_spgemm import rowwise_hash_spgemm, thread_loads

# A CSR entry: 4-byte column index and 4-byte fp32 value (one 8-byte DRAM access).
ENTRY_BYTES = 8.0
# A partial product of the outer product: row, column and value.
PARTIAL_BYTES = 12.0
# A hash-table slot: 4-byte key and 4-byte value.
SLOT_BYTES = 8
# Instructions of one partial product: load B's entry, multiply, hash the column, atomic add.
INSTR_PER_PRODUCT = 4.0
# One instruction per extra probe of a collision (compare-and-swap on the next slot).
INSTR_PER_PROBE = 1.0
# Loop and pointer instructions per kept A entry (read A[i, k], fetch B's row bounds).
INSTR_PER_A_ENTRY = 3.0
# Instructions per merge step: compare two indices, advance, branch.
INSTR_PER_MERGE_STEP = 3.0
# Instructions per output written (read the slot, store index and value).
INSTR_PER_OUTPUT = 2.0


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
    """Hash slots of one thread: its share of the core scratchpad."""
    per_thread = accel.scratchpad_per_core_bytes / (
        accel.pipelines_per_core * accel.threads_per_pipeline
    )
    return max(1, int(per_thread // SLOT_BYTES))


def rowwise_stats(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], slots: int
) -> RowwiseStats:
    """Run the hashing kernel on the real patterns of ``A`` and ``B``."""
    return RowwiseStats(rowwise_hash_spgemm(a[0], a[1], b[0], b[1], slots), slots)


def _timed(
    accel: GraphAccelConfig, dataflow: str, dram_bytes: float, per_thread: np.ndarray
) -> SpgemmCost:
    thread_ips = accel.clock_hz / accel.threads_per_pipeline
    memory_s = dram_bytes / accel.dram_bw_bytes_per_s
    busiest = float(per_thread.max())
    compute_s = busiest / thread_ips
    mean = float(per_thread.mean())
    return SpgemmCost(
        dataflow=dataflow,
        latency_s=max(memory_s, compute_s),
        dram_bytes=dram_bytes,
        busiest_thread_instructions=busiest,
        imbalance=busiest / mean if mean > 0 else 1.0,
        bound="memory" if memory_s >= compute_s else "compute",
    )


def rowwise_hash_cost(
    accel: GraphAccelConfig, a: tuple[np.ndarray, np.ndarray], stats: RowwiseStats
) -> SpgemmCost:
    """SMASH: row-wise products merged by atomics in a scratchpad hash table."""
    a_row_nnz = np.diff(a[0]).astype(np.float64)
    per_row = stats.per_row.astype(np.float64)
    instructions = (
        INSTR_PER_A_ENTRY * a_row_nnz
        + INSTR_PER_PRODUCT * per_row[:, 0]
        + INSTR_PER_PROBE * per_row[:, 2]
        + INSTR_PER_OUTPUT * per_row[:, 1]
    )
    # A once, B's row bounds and row per kept A entry, C once, spilled products read and written
    dram = ENTRY_BYTES * (
        a_row_nnz.sum() * 2.0 + stats.products + stats.output_nnz + 2.0 * per_row[:, 3].sum()
    )
    return _timed(accel, "row-wise-hash", dram, thread_loads(instructions, threads(accel)))


def inner_product_cost(
    accel: GraphAccelConfig, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> SpgemmCost:
    """Inner product: each non-empty row of A intersected with every non-empty column of B."""
    n_cols = int(b[1].max()) + 1 if b[1].size else 0
    b_col_nnz = np.bincount(b[1], minlength=n_cols).astype(np.float64)
    cols = float((b_col_nnz > 0).sum())
    b_nnz = float(b_col_nnz.sum())
    a_row_nnz = np.diff(a[0]).astype(np.float64)
    active = a_row_nnz > 0
    # per active row: B streamed whole (every column), a merge over both lists per column
    instructions = np.where(active, INSTR_PER_MERGE_STEP * (cols * a_row_nnz + b_nnz), 0.0)
    dram = ENTRY_BYTES * (a_row_nnz.sum() + active.sum() * b_nnz)
    return _timed(accel, "inner", dram, thread_loads(instructions, threads(accel)))


def outer_product_cost(
    accel: GraphAccelConfig,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    stats: RowwiseStats,
) -> SpgemmCost:
    """Outer product: partial-product matrices written to DRAM, then sorted and merged by row."""
    k_len = len(b[0]) - 1
    a_col_nnz = np.bincount(a[1], minlength=k_len).astype(np.float64)
    b_row_nnz = np.diff(b[0]).astype(np.float64)
    products_per_k = a_col_nnz * b_row_nnz
    multiply = thread_loads(INSTR_PER_PRODUCT * products_per_k, threads(accel))
    # merge: each output row sorts its partial products (p log2 p steps), then writes its outputs
    per_row = stats.per_row.astype(np.float64)
    p = per_row[:, 0]
    sort_steps = p * np.log2(np.maximum(p, 2.0))
    merge = thread_loads(
        INSTR_PER_MERGE_STEP * sort_steps + INSTR_PER_OUTPUT * per_row[:, 1], threads(accel)
    )
    dram = ENTRY_BYTES * (a_col_nnz.sum() + b_row_nnz.sum() + stats.output_nnz)
    dram += 2.0 * PARTIAL_BYTES * stats.products  # partials written, then read back
    # two phases with a barrier between them: each is bound by its own busiest thread
    phase_1 = _timed(
        accel,
        "outer",
        ENTRY_BYTES * (a_col_nnz.sum() + b_row_nnz.sum()) + PARTIAL_BYTES * stats.products,
        multiply,
    )
    phase_2 = _timed(
        accel, "outer", PARTIAL_BYTES * stats.products + ENTRY_BYTES * stats.output_nnz, merge
    )
    both = multiply + merge
    return SpgemmCost(
        dataflow="outer",
        latency_s=phase_1.latency_s + phase_2.latency_s,
        dram_bytes=dram,
        busiest_thread_instructions=phase_1.busiest_thread_instructions
        + phase_2.busiest_thread_instructions,
        imbalance=float(both.max() / both.mean()) if both.mean() > 0 else 1.0,
        bound=phase_1.bound if phase_1.latency_s >= phase_2.latency_s else phase_2.bound,
    )


def expected_load_factor(stats: RowwiseStats) -> float:
    """Mean share of a thread's table that a row fills (distinct outputs over slots)."""
    rows = stats.per_row.shape[0]
    return stats.output_nnz / max(rows, 1) / stats.table_slots if rows else math.nan
