"""The sweep report: best designs, the Pareto picture, and why the best design performs as it does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from archsim.report import breakdown
from archsim.report.document import (
    Code,
    Document,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from archsim.sim.result import Result

SUMMARY_COLUMNS = [
    "latency_s",
    "throughput_per_s",
    "energy_j",
    "area_mm2",
    "edp_j_s",
    "dominant_bound",
    "top_op_kind",
]


def _designs_table(df: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    table = df[["point", *params, *SUMMARY_COLUMNS, "pareto"]].copy()
    table["pareto"] = table["pareto"].map({True: "yes", False: ""})
    return table


def sensitivity(df: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """For each swept parameter, the median latency and energy at each of its values."""
    feasible = df[df["feasible"]]
    rows = []
    for param in params:
        for value, group in feasible.groupby(param, sort=True):
            rows.append(
                {
                    "parameter": param,
                    "value": value,
                    "points": len(group),
                    "median_latency_s": group["latency_s"].median(),
                    "median_energy_j": group["energy_j"].median(),
                    "median_area_mm2": group["area_mm2"].median(),
                }
            )
    return pd.DataFrame(rows)


def build_sweep_report(
    df: pd.DataFrame,
    params: Sequence[str],
    best: Result | None,
    best_point: int | None,
    *,
    command: str,
    machine_name: str,
    workload_name: str,
    wall_time_s: float,
    pareto_png: str,
) -> Document:
    doc = Document(f"archsim sweep: {machine_name} × {workload_name}")
    doc.add(Paragraph("Regenerate with:"))
    doc.add(Code(command))
    feasible = df[df["feasible"]]
    doc.add(
        Paragraph(
            f"{len(df)} design points, {len(feasible)} feasible, {int(df['pareto'].sum())} on the "
            f"latency-energy Pareto front; swept: {', '.join(params) or 'nothing (one point)'}; "
            f"wall time {wall_time_s:.1f} s."
        )
    )
    if feasible.empty:
        doc.add(Heading("No feasible design"))
        reasons = df["reason"].value_counts().head(5).reset_index()
        reasons.columns = ["reason", "points"]
        doc.add(Table(reasons))
        return doc
    picks = {
        "lowest latency": feasible["latency_s"].idxmin(),
        "lowest energy": feasible["energy_j"].idxmin(),
        "smallest area": feasible["area_mm2"].idxmin(),
        "lowest EDP": feasible["edp_j_s"].idxmin(),
    }
    doc.add(Heading("Best designs"))
    named = df.loc[list(picks.values()), ["point", *params, *SUMMARY_COLUMNS]].copy()
    named.insert(0, "best for", list(picks))
    doc.add(Table(named))
    doc.add(Heading("Pareto-optimal designs (latency, energy, area), by EDP"))
    front = df[df["pareto"]].sort_values("edp_j_s")
    doc.add(Table(_designs_table(front.head(15), params)))
    doc.add(Image(pareto_png, "latency vs energy, Pareto front highlighted, colour = area"))
    if best is not None:
        doc.add(Heading(f"Why design {best_point} (lowest EDP) performs as it does"))
        doc.add(Paragraph(breakdown.explain(best)))
        doc.add(Heading("Time by op kind", level=3))
        doc.add(Table(breakdown.by_kind(best)))
        doc.add(Heading("Costliest op shapes", level=3))
        doc.add(Table(breakdown.top_ops(best)))
    if params:
        doc.add(Heading("Sensitivity: median over the other parameters"))
        doc.add(Table(sensitivity(df, params)))
    infeasible = df[~df["feasible"]]
    if len(infeasible):
        doc.add(Heading("Infeasible designs"))
        reasons = infeasible["reason"].value_counts().head(10).reset_index()
        reasons.columns = ["reason", "points"]
        doc.add(Table(reasons))
    return doc


def write_report(doc: Document, out_dir: Path) -> tuple[Path, Path]:
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(doc), encoding="utf-8")
    html_path.write_text(to_html(doc), encoding="utf-8")
    return md_path, html_path
