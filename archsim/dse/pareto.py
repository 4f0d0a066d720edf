"""Pareto sets over any number of objectives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n_points x n_objectives, minimised).

    A row is dominated when another is no worse in every objective and better in one. Duplicate
    rows are all kept.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        no_worse = np.all(values <= values[i], axis=1)
        better = np.any(values < values[i], axis=1)
        if np.any(no_worse & better):
            keep[i] = False
    return keep


def pareto_front(
    df: pd.DataFrame, objectives: Sequence[str], maximize: Sequence[str] = ()
) -> pd.Series:
    """Mask over ``df`` rows on the front of ``objectives`` (those in ``maximize`` are maximised).

    Rows with ``feasible == False`` (when the column exists) are never on the front.
    """
    feasible = df["feasible"].to_numpy(bool) if "feasible" in df else np.ones(len(df), dtype=bool)
    mask = np.zeros(len(df), dtype=bool)
    if feasible.any():
        values = df.loc[feasible, list(objectives)].to_numpy(float).copy()
        for j, name in enumerate(objectives):
            if name in maximize:
                values[:, j] = -values[:, j]
        mask[np.flatnonzero(feasible)] = pareto_mask(values)
    return pd.Series(mask, index=df.index, name="pareto")


def hypervolume(front: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``front`` (n x d, minimised) and bounded by ``reference`` (d,).

    Exact, by slicing along the first objective (HSO, While et al., IEEE TEC 2006): between two
    consecutive first-objective values the dominated region is the (d-1)-dimensional hypervolume
    of the points seen so far. Points not strictly better than the reference in every objective
    add nothing. Cost grows as n^(d-1); fronts of sweeps (tens to hundreds of points, 2-4
    objectives) take milliseconds.
    """
    points = np.asarray(front, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if points.ndim != 2 or points.shape[1] != ref.shape[0]:
        raise ValueError(f"front of shape {points.shape} does not match reference {ref.shape}")
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_mask(points)]
    return _hso(points, ref)


def _hso(points: np.ndarray, ref: np.ndarray) -> float:
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    order = np.argsort(points[:, 0], kind="stable")
    points = points[order]
    volume = 0.0
    for i in range(len(points)):
        upper = points[i + 1, 0] if i + 1 < len(points) else ref[0]
        width = upper - points[i, 0]
        if width <= 0:
            continue
        rest = points[: i + 1, 1:]
        volume += width * _hso(rest[pareto_mask(rest)], ref[1:])
    return volume


def normalized_objectives(
    df: pd.DataFrame, objectives: Sequence[str], maximize: Sequence[str] = ()
) -> np.ndarray:
    """Objective values of ``df`` turned into minimisation on a common scale.

    Maximised objectives are negated; each column is then scaled to [0, 1] over the rows given, so
    that hypervolumes and knees do not depend on units.
    """
    values = df[list(objectives)].to_numpy(float).copy()
    for j, name in enumerate(objectives):
        if name in maximize:
            values[:, j] = -values[:, j]
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (values - low) / span


def knee_index(values: np.ndarray) -> int:
    """Row of a 2-D front (minimised, normalised) farthest below the line joining its two ends.

    The knee is where improving one objective starts to cost much more of the other; with fewer
    than three points the one nearest the ideal (0, 0) is returned.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return int(np.argmin(np.hypot(values[:, 0], values[:, 1])))
    order = np.argsort(values[:, 0], kind="stable")
    first, last = values[order[0]], values[order[-1]]
    direction = last - first
    norm = np.hypot(*direction)
    if norm == 0:
        return int(order[0])
    # signed distance from the chord; the knee bulges towards the ideal point
    distance = (
        direction[1] * (values[:, 0] - first[0]) - direction[0] * (values[:, 1] - first[1])
    ) / norm
    return int(np.argmax(distance))
