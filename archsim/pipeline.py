"""One design point end to end: lower the workload, build the machine, map, simulate."""

from __future__ import annotations

from dataclasses import dataclass

from archsim.config.machine import MachineConfig
from archsim.config.workload import WorkloadConfig
from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers import Infeasible, get_mapper
from archsim.sim import Result, simulate
from archsim.sim.summary import OpFacts, Summary, summarize
from archsim.workloads import lower, work_items


@dataclass(frozen=True)
class PointOutcome:
    """A simulated point, or the reason it could not run. ``work_items`` and ``work_unit`` turn
    latency into throughput (tokens for transformer workloads)."""

    result: Result | None
    infeasible_reason: str | None
    work_items: float
    work_unit: str
    summary: Summary | None = None
    """Totals without per-op records, when the caller asked for no records."""

    @property
    def feasible(self) -> bool:
        return self.result is not None or self.summary is not None


def run_point(
    machine_config: MachineConfig,
    workload_config: WorkloadConfig,
    mapper_name: str | None = None,
    graph: OpGraph | None = None,
    *,
    records: bool = True,
    facts: OpFacts | None = None,
) -> PointOutcome:
    """Simulate ``workload_config`` on ``machine_config``; pass ``graph`` to reuse a lowering.

    With ``records=False`` the outcome carries only the totals (``summary``, equal to those of
    the full result) and ``facts`` may carry per-op facts of ``graph`` from earlier points.
    """
    graph = graph if graph is not None else lower(workload_config)
    items, unit = work_items(workload_config)
    machine = Machine.from_config(machine_config)
    mapper = get_mapper(mapper_name or workload_config.mapper or machine_config.mapper)
    schedule = mapper.map(graph, machine)
    if isinstance(schedule, Infeasible):
        return PointOutcome(None, schedule.reason, items, unit)
    if not records:
        return PointOutcome(None, None, items, unit, summarize(schedule, machine, facts))
    return PointOutcome(simulate(schedule, machine), None, items, unit)
