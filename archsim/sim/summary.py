"""Totals of a schedule without per-op records, for design-space sweeps.

:func:`summarize` adds up exactly what :func:`archsim.sim.simulate` adds up, in the same order,
so its totals equal ``simulate(...).totals`` bit for bit (a test holds it to that); it skips
building a frozen record per op, and the per-op facts that do not depend on the machine (kind,
FLOPs, input bytes, which earlier op it equals) are read once per graph through an
:class:`OpFacts` cache that a sweep worker keeps across the points of one workload. Equal ops
(names aside) are costed once per device: a model's repeated layers cost no more than one.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsim.energy.pricing import action_energy_j
from archsim.hw.machine import Machine
from archsim.ir.ops import Op
from archsim.mappers.schedule import Schedule
from archsim.sim.result import Totals, run_totals


@dataclass(frozen=True)
class _Facts:
    op: Op  # held so that the id() keying the cache stays this op's
    kind: str
    flops: float
    inputs: tuple[tuple[str, float], ...]
    outputs: tuple[str, ...]
    twin: Op  # the first op seen that equals this one (possibly itself)


class OpFacts:
    """Machine-independent facts of ops, computed once per op object and reused across points."""

    def __init__(self) -> None:
        self._facts: dict[int, _Facts] = {}
        self._twins: dict[Op, Op] = {}

    def __call__(self, op: Op) -> _Facts:
        facts = self._facts.get(id(op))
        if facts is None:
            facts = _Facts(
                op=op,
                kind=op.kind,
                flops=op.flops(),
                inputs=tuple((t.name, t.stored_bytes) for t in op.inputs()),
                outputs=tuple(t.name for t in op.outputs()),
                twin=self._twins.setdefault(op, op),
            )
            self._facts[id(op)] = facts
        return facts


@dataclass(frozen=True)
class Summary:
    """Totals of one simulated design point and its time per op kind (in first-seen order)."""

    totals: Totals
    time_by_kind_s: dict[str, float]


def summarize(schedule: Schedule, machine: Machine, facts: OpFacts | None = None) -> Summary:
    """Totals of ``schedule`` on ``machine``, equal to those of ``simulate(schedule, machine)``.

    Parameters
    ----------
    facts:
        Cache of per-op facts to reuse across calls on the same graph; a new one if None.
    """
    facts = facts if facts is not None else OpFacts()
    # (latency, energy, bound) per device, distinct op and mapping
    costs: dict[tuple[str, int, int], tuple[float, float, str]] = {}
    prices = {name: device.energy_per_action_j() for name, device in machine.devices.items()}
    # with one device nothing ever moves between devices
    single = len(machine.devices) == 1
    placed_on: dict[str, str] = {}
    clock_s = 0.0
    transfer_s = 0.0
    transfer_energy_j = 0.0
    dynamic_energy_j = 0.0
    time_by_bound: dict[str, float] = {}
    time_by_kind: dict[str, float] = {}
    flops: list[float] = []
    known = facts._facts  # read directly: the lookup runs once per op of every point
    for entry in schedule.entries:
        op, device_name = entry.op, entry.device
        fact = known.get(id(op)) or facts(op)
        if not single:
            moved = sum(
                b for name, b in fact.inputs if placed_on.get(name, device_name) != device_name
            )
            if moved:
                step_s = machine.transfer_s(moved)
                transfer_s += step_s
                clock_s += step_s
                if machine.interconnect is not None:
                    transfer_energy_j += moved * machine.interconnect.energy_per_byte_j
            for name in fact.outputs:
                placed_on[name] = device_name
        # device models are pure functions of the op's structure, so an equal op's cost serves
        key = (device_name, id(fact.twin), id(entry.mapping))
        cached = costs.get(key)
        if cached is None:
            cost = machine.devices[device_name].cost(fact.twin, entry.mapping)
            energy = action_energy_j(cost.actions, prices[device_name])
            cached = costs[key] = (cost.latency_s, energy, cost.bound.value)
        latency_s, energy_j, bound = cached
        clock_s += latency_s
        dynamic_energy_j += energy_j
        time_by_bound[bound] = time_by_bound.get(bound, 0.0) + latency_s
        time_by_kind[fact.kind] = time_by_kind.get(fact.kind, 0.0) + latency_s
        flops.append(fact.flops)
    totals = run_totals(
        latency_s=clock_s,
        dynamic_energy_j=dynamic_energy_j,
        transfer_energy_j=transfer_energy_j,
        transfer_s=transfer_s,
        flops=sum(flops),
        time_by_bound_s=time_by_bound,
        static_power_w=machine.static_power_w(),
        area_mm2=machine.area_mm2(),
    )
    return Summary(totals=totals, time_by_kind_s=time_by_kind)
