"""Where the time of one design point goes: per op kind and per bound, and a sentence saying why."""

from __future__ import annotations

import pandas as pd

from archsim.sim.result import Result


def by_kind(result: Result) -> pd.DataFrame:
    """One row per op kind: count, time, share of the run, the bound that dominates its time."""
    ops = result.to_dataframe()
    total = result.totals.latency_s
    rows = []
    for kind, group in ops.groupby("kind", sort=False):
        bound_time = group.groupby("bound")["latency_s"].sum()
        rows.append(
            {
                "kind": kind,
                "ops": len(group),
                "time_s": group["latency_s"].sum(),
                "share": group["latency_s"].sum() / total,
                "energy_j": group["energy_j"].sum(),
                "mainly": bound_time.idxmax(),
                "mean_utilization": (group["utilization"] * group["latency_s"]).sum()
                / group["latency_s"].sum(),
            }
        )
    return pd.DataFrame(rows).sort_values("time_s", ascending=False, ignore_index=True)


def top_ops(result: Result, count: int = 10) -> pd.DataFrame:
    """The distinct op shapes that take the most time (identical layers merged)."""
    ops = result.to_dataframe()
    ops["shape"] = ops["op"].str.replace(r"\d+", "#", regex=True)
    grouped = ops.groupby(["shape", "kind", "device", "bound", "notes"], sort=False).agg(
        count=("op", "size"),
        time_s=("latency_s", "sum"),
        utilization=("utilization", "mean"),
        op_per_byte=("op_per_byte", "first"),
    )
    grouped = grouped.reset_index().sort_values("time_s", ascending=False).head(count)
    grouped["share"] = grouped["time_s"] / result.totals.latency_s
    return grouped[
        [
            "shape",
            "kind",
            "device",
            "count",
            "time_s",
            "share",
            "bound",
            "utilization",
            "op_per_byte",
            "notes",
        ]
    ].reset_index(drop=True)


def explain(result: Result) -> str:
    """A sentence naming what bounds the run and which ops take its time."""
    totals = result.totals
    shares = {b: t / totals.latency_s for b, t in totals.time_by_bound_s.items()}
    dominant = max(shares, key=shares.__getitem__)
    kinds = by_kind(result)
    lead = kinds.iloc[0]
    return (
        f"{shares[dominant]:.0%} of the time is in {dominant}-bound ops "
        f"({', '.join(f'{b} {s:.0%}' for b, s in sorted(shares.items(), key=lambda kv: -kv[1]))}); "
        f"{lead['kind']} ops take {lead['share']:.0%} of the time, mostly {lead['mainly']}-bound "
        f"at {lead['mean_utilization']:.0%} mean compute utilization."
    )
