"""Greedy placement: each op, in graph order, goes to the device that finishes it soonest.

The device's own cost model chooses the op's tiling (mapping None). Moving an input produced on
another device adds the interconnect transfer to that device's bid, so ops stay together unless a
device is faster by more than the move costs. On a single-device machine there is nothing to
choose: every op goes to the device, whose support is asked once per distinct op.
"""

from __future__ import annotations

from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers.base import register_mapper
from archsim.mappers.capacity import check_capacity, check_graph_capacity
from archsim.mappers.schedule import Infeasible, Schedule, ScheduledOp


@register_mapper("greedy")
class GreedyMapper:
    name = "greedy"

    def map(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible:
        if len(machine.devices) == 1:
            return self._map_single(graph, machine)
        placed_on: dict[str, str] = {}  # tensor name -> device holding it
        entries: list[ScheduledOp] = []
        evaluations = 0
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
                if len(machine.devices) == 1:
                    bid = 0.0  # nothing to choose between
                else:
                    bid = device.roofline(op).latency_s + machine.transfer_s(move_bytes)
                    evaluations += 1
                bids.append((bid, name))
            if not bids:
                return Infeasible(
                    f"no device of machine '{machine.name}' supports op '{op.name}' "
                    f"({op.kind}, {op.dtype.value})"
                )
            device_name = min(bids)[1]
            entries.append(ScheduledOp(op=op, device=device_name))
            for tensor in op.outputs():
                placed_on[tensor.name] = device_name
        infeasible = check_capacity(entries, machine)
        if infeasible is not None:
            return infeasible
        return Schedule(
            graph_name=graph.name,
            entries=tuple(entries),
            mapper=self.name,
            stats={"roofline_evaluations": float(evaluations)},
        )

    def _map_single(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible:
        """Every op on the machine's one device, in graph order."""
        device_name, device = next(iter(machine.devices.items()))
        # equal ops get equal answers, so the first op of each group stands for the rest
        for op in graph.distinct_ops():
            if not device.supports(op):
                return Infeasible(
                    f"no device of machine '{machine.name}' supports op '{op.name}' "
                    f"({op.kind}, {op.dtype.value})"
                )
        infeasible = check_graph_capacity(graph, machine, device_name)
        if infeasible is not None:
            return infeasible
        return Schedule(
            graph_name=graph.name,
            entries=tuple(ScheduledOp(op=op, device=device_name) for op in graph),
            mapper=self.name,
            stats={"roofline_evaluations": 0.0},
        )
