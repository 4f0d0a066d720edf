"""Plots: the latency-energy Pareto picture of a sweep and the roofline of one design point."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (CI and clusters have no display)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def pareto_plot(
    df: pd.DataFrame,
    front: pd.Series,
    plane_front: pd.Series,
    path: Path,
    title: str,
    knee: object | None = None,
) -> Path:
    """Latency vs energy of every feasible point, coloured by area, Pareto-optimal points ringed.

    Parameters
    ----------
    df:
        Sweep results with ``latency_s``, ``energy_j``, ``area_mm2`` and ``feasible``.
    front:
        Rows Pareto-optimal in all objectives (latency, energy, area): ringed.
    plane_front:
        Rows Pareto-optimal in latency and energy alone: joined by a line.
    knee:
        Row label of the knee of the latency-energy front: marked and labelled with its point.
    """
    feasible = df[df["feasible"]]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    if len(feasible):
        scatter = ax.scatter(
            feasible["latency_s"] * 1e3,
            feasible["energy_j"] * 1e3,
            c=feasible["area_mm2"],
            cmap="viridis",
            s=28,
            alpha=0.85,
            edgecolors="none",
        )
        fig.colorbar(scatter, ax=ax, label="area (mm²)")
        on_plane = df[plane_front].sort_values("latency_s")
        ax.plot(
            on_plane["latency_s"] * 1e3,
            on_plane["energy_j"] * 1e3,
            "-",
            color="crimson",
            lw=1.2,
            zorder=3,
            label=f"latency-energy front ({len(on_plane)})",
        )
        on_front = df[front]
        ax.scatter(
            on_front["latency_s"] * 1e3,
            on_front["energy_j"] * 1e3,
            s=70,
            facecolors="none",
            edgecolors="crimson",
            linewidths=1.5,
            zorder=4,
            label=f"Pareto-optimal in latency, energy, area ({len(on_front)})",
        )
        if knee is not None:
            kx, ky = df.loc[knee, "latency_s"] * 1e3, df.loc[knee, "energy_j"] * 1e3
            ax.scatter([kx], [ky], marker="*", s=220, c="gold", edgecolors="black", zorder=5)
            ax.annotate(
                f"knee: point {int(df.loc[knee, 'point'])}\n{kx:.3g} ms, {ky:.3g} mJ",
                (kx, ky),
                xytext=(12, 12),
                textcoords="offset points",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "lw": 0.8},
            )
        ax.legend(loc="upper left", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
    infeasible = int((~df["feasible"]).sum())
    suffix = f"; {infeasible} infeasible not shown" if infeasible else ""
    ax.set_title(f"{title}\n{len(feasible)} feasible designs{suffix}", fontsize=10)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("energy (mJ)")
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def parallel_coordinates_plot(
    df: pd.DataFrame,
    params: list[str],
    objectives: list[str],
    front: pd.Series,
    path: Path,
    title: str,
) -> Path:
    """One polyline per feasible design across its swept parameters and objectives.

    Each axis is scaled to its own range (numeric values by value, others by their order of
    appearance); Pareto-optimal designs are drawn in colour over the others in grey, so the
    parameter values that the front shares stand out even with many parameters.
    """
    feasible = df[df["feasible"]]
    columns = [*params, *objectives]
    fig, ax = plt.subplots(figsize=(max(7.5, 1.3 * len(columns)), 5.0), dpi=120)
    if len(feasible) and columns:
        scaled = np.zeros((len(feasible), len(columns)))
        for j, column in enumerate(columns):
            raw = feasible[column]
            numeric = pd.to_numeric(raw, errors="coerce")
            if numeric.notna().all():
                values = numeric.to_numpy(float)
            else:
                codes = {v: i for i, v in enumerate(dict.fromkeys(raw.astype(str)))}
                values = raw.astype(str).map(codes).to_numpy(float)
            low, high = np.nanmin(values), np.nanmax(values)
            scaled[:, j] = (values - low) / (high - low) if high > low else 0.5
        on_front = front[feasible.index].to_numpy(bool)
        x = np.arange(len(columns))
        for row in scaled[~on_front]:
            ax.plot(x, row, color="0.75", lw=0.6, alpha=0.5)
        colors = plt.get_cmap("plasma")(np.linspace(0.05, 0.85, max(on_front.sum(), 1)))
        for row, color in zip(scaled[on_front], colors, strict=False):
            ax.plot(x, row, color=color, lw=1.4, alpha=0.9)
        ax.set_xticks(x)
        ax.set_xticklabels([c.split(".")[-1] if c in params else c for c in columns], rotation=30)
        ax.set_ylabel("scaled to each axis' range")
    ax.set_title(
        f"{title}\n{int(front.sum())} Pareto-optimal (colour) of {len(feasible)}", fontsize=10
    )
    ax.grid(True, axis="x", alpha=0.4)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def roofline_plot(
    ops: pd.DataFrame,
    path: Path,
    title: str,
    peak_flops_per_s: float | None = None,
    peak_bw_bytes_per_s: float | None = None,
) -> Path:
    """Each op at (Op/B, achieved FLOP/s), sized by its time, coloured by bound; roofs if known."""
    ops = ops[ops["flops"] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    colors = {"compute": "tab:blue", "memory": "tab:orange", "launch": "tab:gray"}
    achieved = ops["flops"] / ops["latency_s"]
    sizes = 20 + 300 * ops["latency_s"] / max(ops["latency_s"].max(), 1e-30)
    for bound, color in colors.items():
        sel = ops["bound"] == bound
        if sel.any():
            ax.scatter(
                ops.loc[sel, "op_per_byte"],
                achieved[sel],
                s=sizes[sel],
                c=color,
                alpha=0.6,
                label=bound,
                edgecolors="none",
            )
    if peak_flops_per_s and peak_bw_bytes_per_s and len(ops):
        lo = min(ops["op_per_byte"].min(), 0.1)
        hi = max(ops["op_per_byte"].max(), 10 * peak_flops_per_s / peak_bw_bytes_per_s)
        x = np.logspace(np.log10(lo), np.log10(hi), 200)
        ax.plot(
            x, np.minimum(peak_flops_per_s, x * peak_bw_bytes_per_s), "k-", lw=1, label="roofline"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
