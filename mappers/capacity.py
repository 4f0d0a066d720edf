"""Does what a device must hold (weights, KV cache) fit its memory?"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.ir.ops import Attention
from archsim.mappers.schedule import Infeasible, ScheduledOp


def resident_bytes_by_device(entries: Iterable[ScheduledOp]) -> dict[str, float]:
    """Bytes that stay in device memory for the whole run: each weight once (idle experts' weights
    on the device that runs their router), plus the KV cache read by attention ops (activations in
    flight are small beside them and are ignored)."""
    seen: set[tuple[str, str]] = set()
    totals: dict[str, float] = defaultdict(float)
    for entry in entries:
        resident = [t for t in entry.op.inputs() if t.is_weight]
        resident += list(entry.op.resident_weights())
        if isinstance(entry.op, Attention):
            resident += [entry.op.k, entry.op.v]
        for tensor in resident:
            key = (entry.device, tensor.name)
            if key not in seen:
                seen.add(key)
                totals[entry.device] += tensor.stored_bytes
    return dict(totals)


def check_capacity(entries: Iterable[ScheduledOp], machine: Machine) -> Infeasible | None:
    for device, needed in resident_bytes_by_device(entries).items():
        infeasible = _check_device(machine, device, needed)
        if infeasible is not None:
            return infeasible
    return None


def check_graph_capacity(graph: OpGraph, machine: Machine, device: str) -> Infeasible | None:
    """:func:`check_capacity` for a schedule that puts every op of ``graph`` on ``device``.

    The resident bytes depend on the graph only, which keeps them across the design points of a
    sweep (:meth:`OpGraph.resident_tensors`).
    """
    tensors, needed = graph.resident_tensors()
    return _check_device(machine, device, needed) if tensors else None


def _check_device(machine: Machine, device: str, needed: float) -> Infeasible | None:
    capacity = machine.devices[device].memory_capacity_bytes()
    if needed > capacity:
        return Infeasible(
            f"{device}: memory {capacity / 2**30:.1f} GiB < {needed / 2**30:.1f} GiB needed "
            "by weights and KV cache"
        )
    return None
