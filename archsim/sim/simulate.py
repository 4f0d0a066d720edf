"""``simulate(schedule, machine)``: cost every scheduled op on its device, in order.

Ops run one after another (no device overlap yet); an input produced on another device is moved
over the interconnect first. Equal ops (identical layers) are costed once: ops hash structurally.
"""

from __future__ import annotations

from archsim.energy.pricing import action_energy_j
from archsim.hw.base import OpCost
from archsim.hw.machine import Machine
from archsim.mappers.schedule import Schedule
from archsim.sim.result import OpRecord, Result, run_totals


def simulate(schedule: Schedule, machine: Machine) -> Result:
    """Simulate ``schedule`` on ``machine``.

    Returns
    -------
    Result
        Frozen per-op records (start time, cycles, latency in s, energy in J, bytes per memory
        level, utilization, bound) and totals including static energy over the whole runtime.
    """
    costs: dict[tuple[str, object, object], tuple[OpCost, float]] = {}
    prices = {name: device.energy_per_action_j() for name, device in machine.devices.items()}
    placed_on: dict[str, str] = {}
    records: list[OpRecord] = []
    clock_s = 0.0
    transfer_s = 0.0
    transfer_energy_j = 0.0
    time_by_bound: dict[str, float] = {}
    dynamic_energy_j = 0.0
    for entry in schedule.entries:
        op, device_name = entry.op, entry.device
        moved = sum(
            t.stored_bytes for t in op.inputs() if placed_on.get(t.name, device_name) != device_name
        )
        if moved:
            step_s = machine.transfer_s(moved)
            transfer_s += step_s
            clock_s += step_s
            if machine.interconnect is not None:
                transfer_energy_j += moved * machine.interconnect.energy_per_byte_j
        key = (device_name, op, entry.mapping)
        if key not in costs:
            cost = machine.devices[device_name].cost(op, entry.mapping)
            costs[key] = (cost, action_energy_j(cost.actions, prices[device_name]))
        cost, energy_j = costs[key]
        records.append(
            OpRecord(
                op=op.name,
                kind=op.kind,
                device=device_name,
                dtype=op.dtype.value,
                start_s=clock_s,
                cycles=cost.cycles,
                latency_s=cost.latency_s,
                energy_j=energy_j,
                flops=op.flops(),
                bytes=op.bytes(),
                op_per_byte=op.op_per_byte(),
                utilization=cost.utilization,
                bound=cost.bound.value,
                notes=cost.notes,
                bytes_by_level=cost.bytes_by_level,
                actions=cost.actions,
            )
        )
        clock_s += cost.latency_s
        dynamic_energy_j += energy_j
        time_by_bound[cost.bound.value] = time_by_bound.get(cost.bound.value, 0.0) + cost.latency_s
        for tensor in op.outputs():
            placed_on[tensor.name] = device_name
    totals = run_totals(
        latency_s=clock_s,
        dynamic_energy_j=dynamic_energy_j,
        transfer_energy_j=transfer_energy_j,
        transfer_s=transfer_s,
        flops=sum(r.flops for r in records),
        time_by_bound_s=time_by_bound,
        static_power_w=machine.static_power_w(),
        area_mm2=machine.area_mm2(),
    )
    return Result(
        machine=machine.name,
        workload=schedule.graph_name,
        mapper=schedule.mapper,
        records=tuple(records),
        totals=totals,
    )
