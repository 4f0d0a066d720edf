"""``archsim sweep`` as a library call: grid → pool → results.parquet, manifest, Pareto plot, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from archsim.config.loader import MachineFile, WorkloadFile
from archsim.dse.executor import run_local
from archsim.dse.pareto import pareto_front
from archsim.dse.space import expand_grid
from archsim.dse.store import write_manifest, write_results
from archsim.mappers import get_mapper
from archsim.pipeline import run_point
from archsim.report.plots import pareto_plot
from archsim.report.sweep_report import build_sweep_report, write_report

# A design is Pareto-optimal when no other is at least as good in latency, energy and area and
# better in one; the plot also draws the two-objective latency-energy front.
PARETO_OBJECTIVES = ("latency_s", "energy_j", "area_mm2")
PLOT_OBJECTIVES = ("latency_s", "energy_j")


@dataclass(frozen=True)
class SweepFiles:
    results: Path
    manifest: Path
    pareto_png: Path
    report_md: Path
    report_html: Path


@dataclass(frozen=True)
class SweepOutcome:
    table: pd.DataFrame
    params: list[str]
    files: SweepFiles
    wall_time_s: float


def run_sweep(
    machine_file: MachineFile,
    workload_file: WorkloadFile,
    out_dir: Path,
    *,
    jobs: int = 1,
    mapper_name: str | None = None,
    progress: bool = True,
    command: str = "",
) -> SweepOutcome:
    """Run every design point of the two files' sweep blocks and write the result files."""
    started = time.perf_counter()
    get_mapper(
        mapper_name or machine_file.config.mapper
    )  # an unknown name fails before any point runs
    points = expand_grid(machine_file, workload_file)
    params = list(points[0].params) if points else []
    rows = run_local(points, jobs=jobs, mapper_name=mapper_name, progress=progress)
    table = pd.DataFrame(rows)
    table["pareto"] = pareto_front(table, PARETO_OBJECTIVES)
    table["pareto_latency_energy"] = pareto_front(table, PLOT_OBJECTIVES)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = write_results(table, out_dir)

    best = best_point = None
    feasible = table[table["feasible"]]
    if len(feasible):
        best_point = int(feasible.loc[feasible["edp_j_s"].idxmin(), "point"])
        chosen = points[best_point]
        best = run_point(chosen.machine, chosen.workload, mapper_name).result
    pareto_path = pareto_plot(
        table,
        table["pareto"],
        table["pareto_latency_energy"],
        out_dir / "pareto.png",
        f"{machine_file.config.name} × {workload_file.config.name}",
    )
    wall_time_s = time.perf_counter() - started
    doc = build_sweep_report(
        table,
        params,
        best,
        best_point,
        command=command,
        machine_name=machine_file.config.name,
        workload_name=workload_file.config.name,
        wall_time_s=wall_time_s,
        pareto_png=pareto_path.name,
    )
    md_path, html_path = write_report(doc, out_dir)
    manifest_path = write_manifest(
        out_dir,
        {
            "command": command,
            "machine": {
                "path": machine_file.path,
                "name": machine_file.config.name,
                "sha256": machine_file.sha256,
            },
            "workload": {
                "path": workload_file.path,
                "name": workload_file.config.name,
                "sha256": workload_file.sha256,
            },
            "mapper": mapper_name or machine_file.config.mapper,
            "seed": None,
            "pareto_objectives": list(PARETO_OBJECTIVES),
            "points": len(table),
            "feasible_points": int(table["feasible"].sum()),
            "swept_parameters": params,
            "jobs": jobs,
            "wall_time_s": round(wall_time_s, 3),
            "files": ["results.parquet", "pareto.png", "report.md", "report.html"],
        },
    )
    files = SweepFiles(results_path, manifest_path, pareto_path, md_path, html_path)
    return SweepOutcome(table, params, files, wall_time_s)
