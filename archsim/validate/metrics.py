"""Error metrics of predicted against measured times. Pure functions over pandas.

APE (absolute percentage error) is ``|predicted - measured| / measured * 100``, in percent;
``within_10pct`` is the share (0..1) of rows with APE <= 10 %.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WITHIN_PCT = 10.0


def absolute_percentage_error(measured: pd.Series, predicted: pd.Series) -> pd.Series:
    """Per-row APE in percent; NaN where either time is missing or the measured time is not > 0.

    Parameters
    ----------
    measured, predicted:
        Times in any one unit (both the same).
    """
    measured = pd.to_numeric(measured, errors="coerce").astype(float)
    predicted = pd.to_numeric(predicted, errors="coerce").astype(float)
    valid = measured > 0
    ape = (predicted - measured).abs() / measured.where(valid) * 100.0
    return ape.rename("ape_pct")


def summarize(ape: pd.Series) -> dict[str, float | int | None]:
    """n, median and 90th-percentile APE (percent) and the share within 10 % of a set of rows.

    Rows whose APE is NaN are not counted. With no rows the statistics are None.
    """
    values = pd.to_numeric(ape, errors="coerce").dropna().to_numpy(dtype=float)
    if values.size == 0:
        return {"n": 0, "median_ape": None, "p90_ape": None, "within_10pct": None}
    return {
        "n": int(values.size),
        "median_ape": float(np.median(values)),
        "p90_ape": float(np.percentile(values, 90)),
        "within_10pct": float(np.mean(values <= WITHIN_PCT)),
    }


def family_metrics(
    frame: pd.DataFrame, family: str = "family", ape: str = "ape_pct"
) -> pd.DataFrame:
    """One row per family (sorted by name) with the columns of :func:`summarize`."""
    records = [
        {"family": name, **summarize(group[ape])}
        for name, group in frame.groupby(family, sort=True)
    ]
    columns = ["family", "n", "median_ape", "p90_ape", "within_10pct"]
    return pd.DataFrame.from_records(records, columns=columns)


def overall_metrics(frame: pd.DataFrame, ape: str = "ape_pct") -> dict[str, float | int | None]:
    """:func:`summarize` over every row of ``frame``."""
    return summarize(frame[ape]) if len(frame) else summarize(pd.Series(dtype=float))


def worst_rows(frame: pd.DataFrame, count: int = 10, ape: str = "ape_pct") -> pd.DataFrame:
    """The ``count`` rows with the largest APE, largest first (rows without APE excluded)."""
    ranked = frame[frame[ape].notna()]
    return ranked.sort_values(ape, ascending=False, kind="stable").head(count)


def is_missing(value: object) -> bool:
    """True for None, NaN and infinities (what JSON cannot carry)."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))
