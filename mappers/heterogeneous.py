"""Heterogeneous placement by Op/B (Duplex): each op to the device that runs it soonest.

Unlike ``greedy``, which bids with rooflines, this mapper bids with each device's full cost
model (bank timing for PIM, tiling for the NPU), so an op lands on PIM exactly when its Op/B is
below the crossover where the PIM's bank-side bandwidth stops paying for its lack of reuse. The
crossover per device pair is recorded in the schedule's statistics.
"""

from __future__ import annotations

from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers.base import register_mapper
from archsim.mappers.capacity import check_capacity
from archsim.mappers.schedule import Infeasible, Schedule, ScheduledOp


@register_mapper("heterogeneous")
class HeterogeneousMapper:
    name = "heterogeneous"

    def map(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible:
        placed_on: dict[str, str] = {}
        entries: list[ScheduledOp] = []
        highest_won: dict[str, float] = {}  # device -> highest Op/B of an op it won
        for op in graph:
            bids: list[tuple[float, str]] = []
            for name, device in machine.devices.items():
                if not device.supports(op):
                    continue
                move_bytes = sum(
                    t.stored_bytes
                    for t in op.inputs()
                    if t.name in placed_on and placed_on[t.name] != name
                )
                bids.append((device.cost(op).latency_s + machine.transfer_s(move_bytes), name))
            if not bids:
                return Infeasible(
                    f"no device of machine '{machine.name}' supports op '{op.name}' "
                    f"({op.kind}, {op.dtype.value})"
                )
            device_name = min(bids)[1]
            intensity = op.op_per_byte()
            if intensity != float("inf"):
                highest_won[device_name] = max(highest_won.get(device_name, 0.0), intensity)
            entries.append(ScheduledOp(op=op, device=device_name))
            for tensor in op.outputs():
                placed_on[tensor.name] = device_name
        infeasible = check_capacity(entries, machine)
        if infeasible is not None:
            return infeasible
        stats = {f"max_op_per_byte.{d}": v for d, v in highest_won.items()}
        stats["cost_evaluations"] = float(len(entries) * len(machine.devices))
        return Schedule(
            graph_name=graph.name, entries=tuple(entries), mapper=self.name, stats=stats
        )
