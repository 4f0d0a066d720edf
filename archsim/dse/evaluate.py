"""Turn design points into result rows (one row per point, infeasible points included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archsim.dse.space import DesignPoint
from archsim.errors import ArchsimError, InfeasibleError
from archsim.ir.graph import OpGraph
from archsim.pipeline import PointOutcome, run_point
from archsim.sim.summary import OpFacts
from archsim.workloads import lower

# Result columns after the swept parameters, in order (see README "Results table").
METRIC_COLUMNS = (
    "feasible",
    "reason",
    "latency_s",
    "throughput_per_s",
    "throughput_unit",
    "energy_j",
    "area_mm2",
    "edp_j_s",
    "power_w",
    "dominant_bound",
    "compute_time_share",
    "memory_time_share",
    "launch_time_share",
    "top_op_kind",
    "top_op_kind_share",
    "throughput_per_s_per_w",
)


def outcome_row(outcome: PointOutcome) -> dict[str, Any]:
    """The metric columns of one outcome (NaN metrics and a reason when infeasible)."""
    nan = float("nan")
    row: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, nan)
    row.update(
        feasible=False,
        reason="",
        throughput_unit=f"{outcome.work_unit}/s",
        dominant_bound="",
        top_op_kind="",
    )
    if outcome.summary is not None:
        totals, by_kind = outcome.summary.totals, outcome.summary.time_by_kind_s
    elif outcome.result is not None:
        totals, by_kind = outcome.result.totals, outcome.result.time_by_kind_s()
    else:
        row["reason"] = outcome.infeasible_reason or "infeasible"
        return row
    by_bound = totals.time_by_bound_s
    top_kind = max(by_kind, key=by_kind.__getitem__)
    row.update(
        feasible=True,
        latency_s=totals.latency_s,
        throughput_per_s=outcome.work_items / totals.latency_s,
        energy_j=totals.energy_j,
        area_mm2=totals.area_mm2,
        edp_j_s=totals.edp_j_s,
        power_w=totals.average_power_w,
        dominant_bound=totals.dominant_bound,
        compute_time_share=by_bound.get("compute", 0.0) / totals.latency_s,
        memory_time_share=by_bound.get("memory", 0.0) / totals.latency_s,
        launch_time_share=by_bound.get("launch", 0.0) / totals.latency_s,
        top_op_kind=top_kind,
        top_op_kind_share=by_kind[top_kind] / totals.latency_s,
        throughput_per_s_per_w=outcome.work_items / totals.latency_s / totals.average_power_w,
    )
    return row


def evaluate_points(points: Sequence[DesignPoint], mapper_name: str | None) -> list[dict[str, Any]]:
    """Rows for ``points``; each distinct workload is lowered once.

    Points are simulated without per-op records (their totals equal those of the full result),
    and the per-op facts of each lowering are shared by all points of that workload.
    """
    graphs: dict[str, tuple[OpGraph, OpFacts]] = {}
    rows = []
    for point in points:
        key = point.workload.model_dump_json()
        if key not in graphs:
            graphs[key] = (lower(point.workload), OpFacts())
        graph, facts = graphs[key]
        try:
            outcome = run_point(
                point.machine, point.workload, mapper_name, graph, records=False, facts=facts
            )
            row = outcome_row(outcome)
        except InfeasibleError as exc:
            # a design the models refuse (e.g. a tiling that cannot fit) is a result, not a crash
            row = outcome_row(PointOutcome(None, str(exc), 1.0, "runs"))
        except (ArchsimError, ArithmeticError, ValueError) as exc:
            # a point the models cannot evaluate (a value far outside what they were built for)
            # must not sink the other thousands of a sweep: it is a row saying why
            reason = f"model error: {type(exc).__name__}: {exc}"
            row = outcome_row(PointOutcome(None, reason, 1.0, "runs"))
        rows.append({"point": point.index, **point.params, **row})
    return rows
