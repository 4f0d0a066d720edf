"""Predicted-vs-measured scatter plot of a validation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (CI and clusters have no display)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from archsim.validate.metrics import WITHIN_PCT


def scatter_plot(rows: pd.DataFrame, path: Path, title: str) -> Path:
    """Log-log predicted against measured time per row, coloured by family.

    Parameters
    ----------
    rows:
        Compared rows with ``family``, ``measured_us`` and ``predicted_us`` (microseconds); rows
        where either time is missing are left out.
    path:
        PNG file to write.
    title:
        First line of the plot title.
    """
    shown = rows.dropna(subset=["measured_us", "predicted_us"])
    shown = shown[(shown["measured_us"] > 0) & (shown["predicted_us"] > 0)]
    fig, ax = plt.subplots(figsize=(7.0, 6.0), dpi=120)
    if len(shown):
        lo = float(min(shown["measured_us"].min(), shown["predicted_us"].min())) / 1.5
        hi = float(max(shown["measured_us"].max(), shown["predicted_us"].max())) * 1.5
        line = np.logspace(np.log10(lo), np.log10(hi), 100)
        band = WITHIN_PCT / 100
        ax.fill_between(
            line,
            line * (1 - band),
            line * (1 + band),
            color="0.85",
            label=f"±{WITHIN_PCT:g} %",
            zorder=1,
        )
        ax.plot(line, line, "k-", lw=1, label="predicted = measured", zorder=2)
        cmap = plt.get_cmap("tab10")
        for n, (family, group) in enumerate(shown.groupby("family", sort=True)):
            ax.scatter(
                group["measured_us"],
                group["predicted_us"],
                s=18,
                alpha=0.75,
                color=cmap(n % 10),
                edgecolors="none",
                label=f"{family} ({len(group)})",
                zorder=3,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("measured (µs)")
    ax.set_ylabel("predicted (µs)")
    ax.set_title(f"{title}\n{len(shown)} rows", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
