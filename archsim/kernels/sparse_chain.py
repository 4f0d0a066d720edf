"""Work of a sparse weight matrix on cascaded DSP chains, from its real mask.

Semantics shared by the Numba kernel and its plain-Python reference (tests compare the two):

* The weight is ``K x N`` (reduction x output columns); ``mask[k, j]`` is true where the weight is
  kept. Output column ``j`` runs on chain ``j % chains``; a chain runs its columns one after
  another.
* A chain has ``lanes`` DSP slices split into ``lanes // segment`` segments of ``segment`` slices.
  Each segment owns a *window* of ``window`` consecutive reduction elements; the input multiplexer
  of each slice picks one of the window's activations, so a segment multiplies up to ``segment``
  kept weights of its window per cycle (a dense chain is ``window = segment = 1``; N:M is
  ``window = M, segment = N``).
* One *pass* of a chain covers ``lanes // segment`` consecutive windows of one column. The
  cascade adds the segments' products in lockstep, so a pass takes as many cycles as its fullest
  window needs: ``max ceil(kept / segment)`` over its windows. A pass whose windows are all empty
  is skipped (block sparsity skips whole passes).
* Metadata is the multiplexer select of each kept weight: ``ceil(log2(window))`` bits.

Outputs are per-chain cycles and kept weights, from which utilization (kept MACs over slice-cycles)
and load imbalance (slowest chain over the mean) follow.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def dsp_chain_work(
    mask: np.ndarray, chains: int, lanes: int, window: int, segment: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain cycles and kept weights of a ``K x N`` mask on sparse DSP chains.

    Parameters
    ----------
    mask:
        ``uint8``/``bool`` array of shape ``(K, N)``; non-zero where the weight is kept.
    chains:
        DSP chains working in parallel on different output columns.
    lanes:
        DSP slices per chain.
    window:
        Reduction elements one segment's multiplexers can select from (M of N:M).
    segment:
        DSP slices per segment (N of N:M); ``lanes`` should be a multiple of it.

    Returns
    -------
    cycles:
        float64 array of length ``chains``: cycles each chain is busy.
    kept:
        float64 array of length ``chains``: kept weights (useful MACs per activation row).
    """
    k_len, n_cols = mask.shape
    segments = max(lanes // segment, 1)
    cycles = np.zeros(chains)
    kept = np.zeros(chains)
    windows = (k_len + window - 1) // window
    for j in range(n_cols):
        chain = j % chains
        w = 0
        while w < windows:
            worst = 0
            for s in range(segments):
                if w + s >= windows:
                    break
                start = (w + s) * window
                stop = min(start + window, k_len)
                count = 0
                for k in range(start, stop):
                    if mask[k, j]:
                        count += 1
                kept[chain] += count
                need = (count + segment - 1) // segment
                if need > worst:
                    worst = need
            cycles[chain] += worst
            w += segments
    return cycles, kept


def dsp_chain_work_reference(
    mask: np.ndarray, chains: int, lanes: int, window: int, segment: int
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python statement of :func:`dsp_chain_work`, column by column and pass by pass."""
    k_len, n_cols = mask.shape
    segments = max(lanes // segment, 1)
    cycles = [0.0] * chains
    kept = [0.0] * chains
    for j in range(n_cols):
        column = [bool(mask[k, j]) for k in range(k_len)]
        counts = [sum(column[i : i + window]) for i in range(0, k_len, window)]
        passes = [counts[i : i + segments] for i in range(0, len(counts), segments)]
        cycles[j % chains] += sum(max(math.ceil(c / segment) for c in p) for p in passes)
        kept[j % chains] += sum(counts)
    return np.array(cycles), np.array(kept)


def chain_metadata_bits(kept_weights: float, window: int) -> float:
    """Multiplexer-select bits that travel with ``kept_weights`` weights (0 for a dense chain)."""
    return kept_weights * (math.ceil(math.log2(window)) if window > 1 else 0)


def nm_mask(k_len: int, n_cols: int, n: int, m: int, seed: int) -> np.ndarray:
    """A random N:M mask along the reduction dimension: ``n`` kept in every ``m`` rows."""
    rng = np.random.default_rng(seed)
    if k_len % m:
        raise ValueError(f"N:M mask needs K ({k_len}) to be a multiple of M ({m})")
    scores = rng.random((k_len // m, m, n_cols))
    order = np.argsort(scores, axis=1)
    mask = np.zeros((k_len // m, m, n_cols), dtype=np.uint8)
    np.put_along_axis(mask, order[:, :n, :], 1, axis=1)
    return mask.reshape(k_len, n_cols)


def skewed_mask(k_len: int, n_cols: int, density: float, skew: float, seed: int) -> np.ndarray:
    """An unstructured mask whose column densities follow a power law of exponent ``skew``.

    ``skew = 0`` gives every column the same expected density; larger values concentrate the
    kept weights in few columns (and so on few chains), as magnitude pruning of layers with
    outlier channels does. The overall density is ``density`` in expectation.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_cols + 1) ** skew
    rng.shuffle(weights)
    column_density = np.clip(density * weights * n_cols / weights.sum(), 0.0, 1.0)
    return (rng.random((k_len, n_cols)) < column_density[None, :]).astype(np.uint8)


def block_mask(
    k_len: int, n_cols: int, height: int, width: int, density: float, seed: int
) -> np.ndarray:
    """A mask of ``height x width`` blocks kept with probability ``density``."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((math.ceil(k_len / height), math.ceil(n_cols / width))) < density
    full = np.kron(blocks, np.ones((height, width), dtype=bool))
    return full[:k_len, :n_cols].astype(np.uint8)
