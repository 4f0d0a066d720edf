"""``simulate(schedule, machine)``: cost every scheduled op on its device, in order.

Ops run one after another (no device overlap yet); an input produced on another device is moved
over the interconnect first. Equal ops (identical layers) are costed once: ops hash structurally.

A schedule with a scratchpad plan (the ``cosma``, ``lru`` and ``belady`` mappers) also pays the
plan's non-compulsory traffic: the reloads before an op and the spills that made room for it are
added to that op's off-chip bytes, energy and latency, moved at the device's off-chip bandwidth
before the op starts (the DMA is not overlapped with compute; the device cost already prices the
op's own operands once).
"""

from __future__ import annotations

import dataclasses

from archsim.energy.pricing import action_energy_j
from archsim.hw.base import OpCost
from archsim.hw.machine import Machine
from archsim.mappers.schedule import Schedule
from archsim.sim.result import OpRecord, Result, run_totals

# Memory level the scratchpad plan's reloads and spills cross: the off-chip DRAM of the devices
# that have a software-managed scratchpad (NPU, FPGA).
OFFCHIP_LEVEL = "dram"


def _replacement_bytes(schedule: Schedule) -> list[tuple[float, float]]:
    """(reload, spill) bytes charged to each entry of ``schedule``; zeros without a plan."""
    plan = schedule.memory_plan
    if plan is None or not plan.reload_bytes_by_step:
        return [(0.0, 0.0)] * len(schedule.entries)
    return list(zip(plan.reload_bytes_by_step, plan.spill_bytes_by_step, strict=True))


def _with_replacement(
    cost: OpCost,
    energy_j: float,
    reload_b: float,
    spill_b: float,
    bw_bytes_per_s: float,
    prices: dict[str, float],
    clock_hz: float,
) -> tuple[OpCost, float]:
    """``cost`` plus a reload of ``reload_b`` and a spill of ``spill_b`` bytes off-chip."""
    moved = reload_b + spill_b
    extra_s = moved / bw_bytes_per_s
    levels = dict(cost.bytes_by_level)
    levels[OFFCHIP_LEVEL] = levels.get(OFFCHIP_LEVEL, 0.0) + moved
    actions = dict(cost.actions)
    extra_actions = {f"read.{OFFCHIP_LEVEL}": reload_b, f"write.{OFFCHIP_LEVEL}": spill_b}
    for action, count in extra_actions.items():
        actions[action] = actions.get(action, 0.0) + count
    note = f"scratchpad plan: reload {reload_b:.0f} B, spill {spill_b:.0f} B"
    charged = dataclasses.replace(
        cost,
        latency_s=cost.latency_s + extra_s,
        cycles=cost.cycles + extra_s * clock_hz,
        bytes_by_level=levels,
        actions=actions,
        notes=f"{cost.notes}; {note}" if cost.notes else note,
    )
    return charged, energy_j + action_energy_j(extra_actions, prices)


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
    replacement = _replacement_bytes(schedule)
    for entry, (reload_b, spill_b) in zip(schedule.entries, replacement, strict=True):
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
        if reload_b or spill_b:
            device = machine.devices[device_name]
            cost, energy_j = _with_replacement(
                cost,
                energy_j,
                reload_b,
                spill_b,
                device.peak_bw_bytes_per_s(),
                prices[device_name],
                device.clock_hz,
            )
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
