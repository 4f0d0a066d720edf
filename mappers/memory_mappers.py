"""Mappers that plan the scratchpad: ``cosma`` (MILP, divide and conquer on big graphs), ``lru``
and ``belady`` (the graph order with that eviction rule).

Placement is the greedy mapper's; the memory plan needs every op on one device with a
software-managed scratchpad (NPU scratchpad, FPGA on-chip RAM). The schedule's entries follow the
plan's op order and carry the plan in ``Schedule.memory_plan``; its traffic and solver statistics
are also in ``Schedule.stats``. GEMMs and convolutions get their searched tilings
(:func:`~archsim.mappers.tiled.with_searched_tilings`), as under the ``tiled`` mapper.
"""

from __future__ import annotations

from collections.abc import Callable

from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers.base import register_mapper
from archsim.mappers.cosma import cosma_plan
from archsim.mappers.greedy import GreedyMapper
from archsim.mappers.heuristics import plan_with_eviction
from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem, scratchpad_capacity_bytes
from archsim.mappers.schedule import Infeasible, Schedule, ScheduledOp
from archsim.mappers.tiled import with_searched_tilings

Planner = Callable[[MemoryProblem], MemoryPlan | str]


class MemoryPlanningMapper:
    """Greedy placement, then ``planner`` orders the ops and plans the device's scratchpad."""

    def __init__(self, name: str, planner: Planner):
        self.name = name
        self._planner = planner

    def map(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible:
        placed = GreedyMapper().map(graph, machine)
        if isinstance(placed, Infeasible):
            return placed
        devices = sorted({entry.device for entry in placed.entries})
        if len(devices) != 1:
            return Infeasible(
                f"{self.name}: plans one scratchpad, but ops were placed on {', '.join(devices)}"
            )
        capacity = scratchpad_capacity_bytes(machine.devices[devices[0]])
        if capacity is None:
            return Infeasible(f"{self.name}: device '{devices[0]}' has no scratchpad to plan")
        problem = MemoryProblem.from_graph(graph, capacity)
        plan = self._planner(problem)
        if isinstance(plan, str):
            return Infeasible(f"{devices[0]}: {plan}")
        by_name = {entry.op.name: entry for entry in placed.entries}
        traffic, stats = plan.traffic, plan.stats
        schedule = Schedule(
            graph_name=graph.name,
            entries=tuple(ScheduledOp(by_name[n].op, by_name[n].device) for n in plan.order),
            mapper=self.name,
            stats={
                "compulsory_bytes": traffic.compulsory_bytes,
                "non_compulsory_bytes": traffic.non_compulsory_bytes,
                "reload_bytes": traffic.reload_bytes,
                "spill_bytes": traffic.spill_bytes,
                "solve_time_s": stats.solve_time_s,
                "gap_rel": stats.gap_rel,
                "milp_variables": float(stats.variables),
                "milp_constraints": float(stats.constraints),
                "subproblems": float(stats.subproblems),
            },
            memory_plan=plan,
        )
        return with_searched_tilings(schedule, machine)


@register_mapper("cosma")
def _cosma() -> MemoryPlanningMapper:
    return MemoryPlanningMapper("cosma", cosma_plan)


@register_mapper("lru")
def _lru() -> MemoryPlanningMapper:
    return MemoryPlanningMapper("lru", lambda p: plan_with_eviction(p, p.ops, "lru"))


@register_mapper("belady")
def _belady() -> MemoryPlanningMapper:
    return MemoryPlanningMapper("belady", lambda p: plan_with_eviction(p, p.ops, "belady"))
