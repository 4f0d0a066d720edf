"""``archsim sweep`` as a library call: search → executor → point log → results.parquet, manifest,
Pareto plot, parallel coordinates, report."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from archsim.config.loader import MachineFile, WorkloadFile
from archsim.config.search import SearchConfig
from archsim.dse.executor import ExecutorName, dask_client, run_dask, run_local
from archsim.dse.pareto import hypervolume, knee_index, normalized_objectives, pareto_front
from archsim.dse.search import constraint_violation, run_search
from archsim.dse.space import DesignPoint, DesignSpace
from archsim.dse.store import (
    LOG_NAME,
    LogContents,
    PointLog,
    point_key,
    read_log,
    write_manifest,
    write_results,
)
from archsim.errors import ArchsimError
from archsim.mappers import get_mapper
from archsim.pipeline import run_point
from archsim.report.plots import parallel_coordinates_plot, pareto_plot
from archsim.report.sweep_report import build_sweep_report, write_report

# A design is Pareto-optimal when no other is at least as good in latency, energy and area and
# better in one (or in the objectives of the machine file's ``search:`` block); the plot also
# draws the two-objective latency-energy front.
PARETO_OBJECTIVES = ("latency_s", "energy_j", "area_mm2")
# Reference point of the hypervolume, in objectives normalised to [0, 1] over the eligible designs
HYPERVOLUME_REFERENCE = 1.1

logger = logging.getLogger(__name__)
PLOT_OBJECTIVES = ("latency_s", "energy_j")


@dataclass(frozen=True)
class SweepFiles:
    results: Path
    manifest: Path
    pareto_png: Path
    parallel_png: Path
    log: Path
    report_md: Path
    report_html: Path


@dataclass(frozen=True)
class SweepOutcome:
    table: pd.DataFrame
    params: list[str]
    files: SweepFiles
    wall_time_s: float
    reused_points: int = 0
    corrupted_records: int = 0


@dataclass
class _Progress:
    reused: int = 0
    evaluated: int = 0


@contextlib.contextmanager
def _runner(executor: ExecutorName, jobs: int, scheduler: str | None, progress: bool) -> Iterator:
    """A function ``(points, mapper_name, on_rows) -> rows`` on the chosen executor."""
    if executor == "dask" or scheduler is not None:
        with dask_client(scheduler, workers=jobs) as client:
            yield lambda points, mapper, on_rows: run_dask(
                points, client, mapper_name=mapper, progress=progress, on_rows=on_rows
            )
    elif executor == "local":
        yield lambda points, mapper, on_rows: run_local(
            points, jobs=jobs, mapper_name=mapper, progress=progress, on_rows=on_rows
        )
    else:
        raise ArchsimError(f"unknown executor '{executor}' (available: local, dask)")


def run_sweep(
    machine_file: MachineFile,
    workload_file: WorkloadFile,
    out_dir: Path,
    *,
    jobs: int = 1,
    mapper_name: str | None = None,
    progress: bool = True,
    command: str = "",
    executor: ExecutorName = "local",
    scheduler: str | None = None,
    resume: bool = False,
) -> SweepOutcome:
    """Explore the two files' design space and write the result files.

    Every finished point is appended to ``out_dir/points.jsonl`` as it arrives. With ``resume``
    the points already there (keyed by machine, workload, mapper and archsim version) are read
    back instead of recomputed; records torn by a crash are detected and their points recomputed.
    Without it an existing log is kept as ``points.jsonl.bak`` and a new one started.
    """
    started = time.perf_counter()
    mapper = mapper_name or machine_file.config.mapper
    get_mapper(mapper)  # an unknown name fails before any point runs
    search = machine_file.config.search or SearchConfig()
    space = DesignSpace(machine_file, workload_file)
    space.validate_axes()  # a refused swept value fails before any point runs
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_NAME
    if resume:
        previous = read_log(log_path)
        if previous.corrupted:
            logger.warning(
                "%s: %d damaged record(s) ignored; their points are recomputed",
                log_path,
                previous.corrupted,
            )
    else:
        if log_path.exists():
            os.replace(log_path, log_path.with_name(LOG_NAME + ".bak"))
        previous = LogContents({}, 0)
    counts = _Progress()

    with PointLog(log_path) as log, _runner(executor, jobs, scheduler, progress) as run:

        def evaluate(points: list[DesignPoint]) -> list[dict[str, Any]]:
            keys = {
                p.index: point_key(
                    p.machine.model_dump_json(), p.workload.model_dump_json(), mapper
                )
                for p in points
            }
            rows: dict[int, dict[str, Any]] = {}
            todo = []
            for p in points:
                stored = previous.rows.get(keys[p.index])
                if stored is None:
                    todo.append(p)
                else:
                    rows[p.index] = {**stored, "point": p.index, **p.params}
            counts.reused += len(points) - len(todo)
            counts.evaluated += len(todo)

            def persist(chunk, chunk_rows) -> None:
                log.append([(keys[row["point"]], row) for row in chunk_rows])

            for row in run(todo, mapper_name, persist) if todo else []:
                rows[row["point"]] = row
            return [rows[p.index] for p in points]

        combos, rows = run_search(space, search, evaluate)

    params = space.params
    table = pd.DataFrame(rows)
    objectives, maximize = search.objective_columns()
    violation = constraint_violation(rows, search.constraints)
    table["meets_constraints"] = violation == 0
    eligible = table.assign(feasible=table["feasible"] & table["meets_constraints"])
    table["pareto"] = pareto_front(eligible, objectives, maximize)
    table["pareto_latency_energy"] = pareto_front(eligible, PLOT_OBJECTIVES)
    volume = _hypervolume(table, objectives, maximize)
    knee = _knee(table)
    results_path = write_results(table, out_dir)

    best = best_point = None
    feasible = table[table["feasible"]]
    if len(feasible):
        best_point = int(feasible.loc[feasible["edp_j_s"].idxmin(), "point"])
        chosen = space.point(best_point, combos[best_point])
        best = run_point(chosen.machine, chosen.workload, mapper_name).result
    title = f"{machine_file.config.name} × {workload_file.config.name}"
    pareto_path = pareto_plot(
        table,
        table["pareto"],
        table["pareto_latency_energy"],
        out_dir / "pareto.png",
        title,
        knee=knee,
    )
    parallel_path = parallel_coordinates_plot(
        table, params, objectives, table["pareto"], out_dir / "parallel.png", title
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
            "mapper": mapper,
            "seed": search.seed if search.strategy != "grid" else None,
            "search": search.model_dump(mode="json"),
            "space_size": space.size,
            "pareto_objectives": objectives,
            "hypervolume": volume,
            "hypervolume_reference": "objectives scaled to [0, 1] over eligible designs; "
            f"reference {HYPERVOLUME_REFERENCE} in each",
            "knee_point": None if knee is None else int(table.loc[knee, "point"]),
            "points": len(table),
            "feasible_points": int(table["feasible"].sum()),
            "points_meeting_constraints": int(table["meets_constraints"].sum()),
            "reused_points": counts.reused,
            "evaluated_points": counts.evaluated,
            "corrupted_records": previous.corrupted,
            "swept_parameters": params,
            "executor": "dask" if scheduler is not None else executor,
            "jobs": jobs,
            "wall_time_s": round(wall_time_s, 3),
            "files": [
                "results.parquet",
                LOG_NAME,
                "pareto.png",
                "parallel.png",
                "report.md",
                "report.html",
            ],
        },
    )
    files = SweepFiles(
        results_path, manifest_path, pareto_path, parallel_path, log_path, md_path, html_path
    )
    return SweepOutcome(table, params, files, wall_time_s, counts.reused, previous.corrupted)


def _hypervolume(table: pd.DataFrame, objectives: list[str], maximize: list[str]) -> float | None:
    """Hypervolume of the Pareto set in normalised objectives (None without eligible designs)."""
    eligible = table[table["feasible"] & table["meets_constraints"]]
    if eligible.empty:
        return None
    values = normalized_objectives(eligible, objectives, maximize)
    front = values[eligible["pareto"].to_numpy(bool)]
    reference = [HYPERVOLUME_REFERENCE] * len(objectives)
    return float(hypervolume(front, reference))


def _knee(table: pd.DataFrame) -> Any:
    """Row label of the knee of the latency-energy front, or None without one."""
    front = table[table["pareto_latency_energy"]]
    if front.empty:
        return None
    values = normalized_objectives(front, PLOT_OBJECTIVES)
    return front.index[knee_index(values)]
