"""Row-wise SpGEMM with a hashing scratchpad, from the real sparsity pattern of ``C = A @ B``.

Semantics shared by the Numba kernel and its plain-Python reference (tests compare the two):

* ``A`` and ``B`` are CSR patterns (``indptr``, ``indices``); values do not change the work.
* Rows of ``C`` are grouped into *windows* of consecutive rows (``windows[i]`` is row ``i``'s
  window, non-decreasing). A window is merged in one hash table of ``table_slots`` slots, the
  scratchpad of the core that runs it, shared by the core's threads through atomic adds
  (SMASH's window distribution and hashing phases, Shivdikar 2021, Sec. 5.1). For every kept
  ``A[i, k]`` row ``k`` of ``B`` is streamed; each product ``A[i, k] * B[k, j]`` is one *partial
  product*, keyed ``(i, j)`` and added at slot ``(key * HASH_MULTIPLIER) % table_slots``,
  probing linearly on collision. A product whose key is already in the table adds to it; a new
  key claims the first free slot. Once the table is full, products of new keys overflow to DRAM.
  The table is cleared when the next window starts (after its write-back phase).
* Per row the kernel counts partial products, distinct output columns (``nnz`` of the row of
  ``C``), extra probes beyond the first (collisions), and overflowed products.
"""

from __future__ import annotations

import numba
import numpy as np

# Knuth's multiplicative hash constant (2^32 / golden ratio): spreads neighbouring keys.
HASH_MULTIPLIER = 2654435761


@numba.njit(cache=True)
def rowwise_hash_spgemm(
    a_indptr: np.ndarray,
    a_indices: np.ndarray,
    b_indptr: np.ndarray,
    b_indices: np.ndarray,
    table_slots: int,
    windows: np.ndarray,
) -> np.ndarray:
    """Per-row counts of row-wise SpGEMM with a linear-probing scratchpad hash table per window.

    Parameters
    ----------
    a_indptr, a_indices:
        CSR pattern of ``A`` (int64).
    b_indptr, b_indices:
        CSR pattern of ``B`` (int64).
    table_slots:
        Slots of one core's hash table in its scratchpad.
    windows:
        int64 window id of every row of ``A`` (non-decreasing).

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(rows, 4)``: partial products, distinct output columns, extra
        probes (collisions), products overflowed to DRAM.
    """
    rows = a_indptr.shape[0] - 1
    n_cols = b_indptr.shape[0] - 1
    for q in range(b_indices.shape[0]):
        if b_indices[q] + 1 > n_cols:
            n_cols = b_indices[q] + 1
    out = np.zeros((rows, 4), dtype=np.int64)
    keys = np.full(table_slots, -1, dtype=np.int64)
    used = 0
    for i in range(rows):
        if i > 0 and windows[i] != windows[i - 1] and used > 0:
            keys[:] = -1
            used = 0
        for p in range(a_indptr[i], a_indptr[i + 1]):
            k = a_indices[p]
            for q in range(b_indptr[k], b_indptr[k + 1]):
                key = i * n_cols + b_indices[q]
                out[i, 0] += 1
                slot = (key * HASH_MULTIPLIER) % table_slots
                probes = 0
                placed = False
                while probes < table_slots:
                    if keys[slot] == key:
                        placed = True
                        break
                    if keys[slot] == -1:
                        keys[slot] = key
                        used += 1
                        out[i, 1] += 1
                        placed = True
                        break
                    slot = (slot + 1) % table_slots
                    probes += 1
                out[i, 2] += probes
                if not placed:
                    # a full table: the product merges in DRAM instead
                    out[i, 3] += 1
    return out


def rowwise_hash_spgemm_reference(
    a_indptr: np.ndarray,
    a_indices: np.ndarray,
    b_indptr: np.ndarray,
    b_indices: np.ndarray,
    table_slots: int,
    windows: np.ndarray,
) -> np.ndarray:
    """Plain-Python statement of :func:`rowwise_hash_spgemm`, one product at a time."""
    rows = len(a_indptr) - 1
    n_cols = max(len(b_indptr) - 1, int(max(b_indices, default=-1)) + 1)
    out = []
    table: list[int | None] = [None] * table_slots
    for i in range(rows):
        if i > 0 and windows[i] != windows[i - 1]:
            table = [None] * table_slots
        products = distinct = extra = overflow = 0
        for k in a_indices[a_indptr[i] : a_indptr[i + 1]]:
            for j in b_indices[b_indptr[k] : b_indptr[k + 1]]:
                key = i * n_cols + int(j)
                products += 1
                slot = (key * HASH_MULTIPLIER) % table_slots
                for probe in range(table_slots):
                    at = (slot + probe) % table_slots
                    if table[at] == key or table[at] is None:
                        distinct += table[at] is None
                        table[at] = key
                        extra += probe
                        break
                else:
                    extra += table_slots
                    overflow += 1
        out.append((products, distinct, extra, overflow))
    return np.array(out, dtype=np.int64).reshape(rows, 4)


def row_products(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Partial products of every row of ``C = A @ B``: the B-row lengths its A entries select."""
    b_row_nnz = np.diff(b[0])
    per_entry = b_row_nnz[a[1]]
    rows = len(a[0]) - 1
    return np.add.reduceat(np.append(per_entry, 0), a[0][:-1]) * (np.diff(a[0]) > 0)[:rows]


def row_runs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sorted runs of partial products in every row of ``C = A @ B`` under the outer product.

    Each kept ``A[i, k]`` whose row ``k`` of ``B`` is non-empty contributes row ``k`` of ``B``,
    scaled, to row ``i`` of ``C``: one run, already sorted by column because CSR keeps a row's
    column indices sorted.
    """
    b_row_nonempty = (np.diff(b[0]) > 0).astype(np.int64)
    per_entry = b_row_nonempty[a[1]]
    rows = len(a[0]) - 1
    return np.add.reduceat(np.append(per_entry, 0), a[0][:-1]) * (np.diff(a[0]) > 0)[:rows]


def product_windows(products: np.ndarray, capacity: float) -> np.ndarray:
    """Window id per row: consecutive rows while their partial products stay within ``capacity``.

    Partial products bound a window's distinct outputs, so a window never overflows a table of
    ``capacity`` slots; a row with more products than ``capacity`` gets a window of its own.
    """
    windows = np.zeros(products.shape[0], dtype=np.int64)
    window, filled = 0, 0.0
    for i, p in enumerate(products):
        if filled > 0 and filled + p > capacity:
            window += 1
            filled = 0.0
        windows[i] = window
        filled += float(p)
    return windows


def power_law_csr(
    n: int, mean_degree: float, exponent: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded Chung-Lu power-law pattern: ``n x n`` CSR with expected degree ``mean_degree``.

    Vertex ``v`` gets weight ``(v + 1) ** (-1 / (exponent - 1))`` (degrees follow a power law of
    ``exponent``); each of ``n * mean_degree`` edges picks its row and column independently in
    proportion to the weights (Chung and Lu, 2002), duplicates removed. Rows and columns are
    shuffled with the same permutation so heavy rows are not all first.

    Returns
    -------
    tuple of numpy.ndarray
        ``(indptr, indices)``, int64, column indices sorted within each row.
    """
    if exponent <= 1.0:
        raise ValueError(f"power-law exponent must exceed 1, got {exponent}")
    rng = np.random.default_rng(seed)
    weights = (np.arange(n) + 1.0) ** (-1.0 / (exponent - 1.0))
    probs = weights / weights.sum()
    edges = round(n * mean_degree)
    perm = rng.permutation(n)
    rows = perm[rng.choice(n, size=edges, p=probs)]
    cols = perm[rng.choice(n, size=edges, p=probs)]
    keys = np.unique(rows.astype(np.int64) * n + cols)
    rows, cols = keys // n, keys % n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), cols.astype(np.int64)
