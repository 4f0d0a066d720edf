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
