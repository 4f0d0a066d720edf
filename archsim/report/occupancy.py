"""A memory-planned schedule step by step: what each op loads, evicts and reloads, the off-chip
bytes it causes, and a picture of scratchpad occupancy over time.

Off-chip bytes are attributed to steps so that they add up to the plan's own traffic
(:func:`archsim.mappers.memory_plan.plan_traffic`): a weight's or input's first load and a graph
output's store (at its producer's step) are compulsory; every later load, and the spill store
of an intermediate evicted while still needed (at the step it is evicted, once), are not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window

import matplotlib.pyplot as plt
import numpy as np

from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem
from archsim.mappers.schedule import Schedule

# tensors drawn with their own colour and legend entry; the rest are stacked as one band
LEGEND_TENSORS = 12


@dataclass(frozen=True)
class StepRecord:
    """One step of a planned schedule.

    Attributes
    ----------
    step:
        Position in the op order.
    op, device:
        The op run at this step and its device.
    loaded:
        Tensors loaded from off-chip memory for the first time.
    reloaded:
        Tensors loaded again after an eviction.
    evicted:
        Tensors whose residency ends after this step although a later op still needs them.
    compulsory_bytes:
        First loads and output stores attributed to this step.
    non_compulsory_bytes:
        Reloads and spill stores attributed to this step.
    """

    step: int
    op: str
    device: str
    loaded: tuple[str, ...]
    reloaded: tuple[str, ...]
    evicted: tuple[str, ...]
    compulsory_bytes: float
    non_compulsory_bytes: float


def plan_steps(schedule: Schedule, problem: MemoryProblem) -> tuple[StepRecord, ...]:
    """Per-step records of ``schedule`` (which must carry a memory plan for ``problem``)."""
    plan = schedule.memory_plan
    if plan is None:
        raise ValueError(f"schedule of mapper '{schedule.mapper}' has no memory plan")
    loaded: dict[int, list[str]] = defaultdict(list)
    reloaded: dict[int, list[str]] = defaultdict(list)
    evicted: dict[int, list[str]] = defaultdict(list)
    compulsory: dict[int, float] = defaultdict(float)
    extra: dict[int, float] = defaultdict(float)
    seen_load: set[str] = set()
    for a in sorted(plan.allocations, key=lambda a: (a.start_step, a.tensor)):
        tensor = problem.tensors[a.tensor]
        if not a.loaded:
            continue
        if tensor.role != "intermediate" and a.tensor not in seen_load:
            loaded[a.start_step].append(a.tensor)
            compulsory[a.start_step] += tensor.size_bytes
        else:
            reloaded[a.start_step].append(a.tensor)
            extra[a.start_step] += tensor.size_bytes
        seen_load.add(a.tensor)
    reloaded_names = {name for names in reloaded.values() for name in names}
    spilled: set[str] = set()
    for a in sorted(plan.evictions(), key=lambda a: a.end_step):
        evicted[a.end_step].append(a.tensor)
        tensor = problem.tensors[a.tensor]
        # an intermediate goes off chip once, when first evicted, if it is ever read back
        if (
            tensor.role == "intermediate"
            and not tensor.is_output
            and a.tensor in reloaded_names
            and a.tensor not in spilled
        ):
            spilled.add(a.tensor)
            extra[a.end_step] += tensor.size_bytes
    step_of = {op: i for i, op in enumerate(plan.order)}
    for tensor in problem.tensors.values():
        if tensor.is_output:
            compulsory[step_of[tensor.producer]] += tensor.size_bytes
    devices = {entry.op.name: entry.device for entry in schedule.entries}
    return tuple(
        StepRecord(
            step=i,
            op=op,
            device=devices[op],
            loaded=tuple(loaded[i]),
            reloaded=tuple(reloaded[i]),
            evicted=tuple(evicted[i]),
            compulsory_bytes=compulsory[i],
            non_compulsory_bytes=extra[i],
        )
        for i, op in enumerate(plan.order)
    )


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "-"


def schedule_text(schedule: Schedule, steps: tuple[StepRecord, ...]) -> str:
    """The per-step table, totals and solver statistics, as printed by ``archsim map``."""
    plan = schedule.memory_plan
    assert plan is not None
    lines = [
        f"{'step':>4}  {'op':<20} {'device':<8} {'compulsory KiB':>14} {'other KiB':>10}  "
        "loaded | reloaded | evicted"
    ]
    for s in steps:
        lines.append(
            f"{s.step:>4}  {s.op:<20} {s.device:<8} {s.compulsory_bytes / 1024:>14.1f} "
            f"{s.non_compulsory_bytes / 1024:>10.1f}  {_names(s.loaded)} | "
            f"{_names(s.reloaded)} | {_names(s.evicted)}"
        )
    traffic, stats = plan.traffic, plan.stats
    lines.append(
        f"total: compulsory {traffic.compulsory_bytes:.0f} B, non-compulsory "
        f"{traffic.non_compulsory_bytes:.0f} B (reload {traffic.reload_bytes:.0f} B, spill "
        f"{traffic.spill_bytes:.0f} B), scratchpad {plan.capacity_bytes} B, peak "
        f"{max(plan.occupancy_bytes(), default=0)} B"
    )
    lines.append(
        f"solver: {schedule.mapper} ({stats.method}, {stats.solver}), status {stats.status}, "
        f"{stats.solve_time_s:.3f} s, gap {stats.gap_rel:.3g}, {stats.variables} variables, "
        f"{stats.constraints} constraints, {stats.subproblems} subproblem(s)"
    )
    return "\n".join(lines)


def occupancy_by_tensor(plan: MemoryPlan) -> dict[str, np.ndarray]:
    """Bytes each tensor occupies at each step (zero where it is not resident)."""
    steps = len(plan.order)
    rows: dict[str, np.ndarray] = {}
    for a in plan.allocations:
        row = rows.setdefault(a.tensor, np.zeros(steps))
        row[a.start_step : a.end_step + 1] = a.size_bytes
    return rows


def occupancy_plot(plan: MemoryPlan, path: Path, title: str) -> Path:
    """Stacked scratchpad occupancy per tensor over the steps, with the capacity as a line.

    The ``LEGEND_TENSORS`` tensors with the most byte-steps get their own band and legend entry;
    the others share one grey band.
    """
    rows = occupancy_by_tensor(plan)
    ranked = sorted(rows, key=lambda name: -rows[name].sum())
    named = ranked[:LEGEND_TENSORS]
    bands = [rows[name] / 2**10 for name in named]
    labels = list(named)
    rest = ranked[LEGEND_TENSORS:]
    if rest:
        bands.append(sum(rows[name] for name in rest) / 2**10)
        labels.append(f"{len(rest)} other tensors")
    steps = np.arange(len(plan.order))
    fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=120)
    if bands:
        colours = [plt.cm.tab20(i % 20) for i in range(len(named))]
        if rest:
            colours.append((0.7, 0.7, 0.7, 1.0))
        ax.stackplot(steps, *bands, labels=labels, colors=colours, step="mid", alpha=0.9)
    ax.axhline(plan.capacity_bytes / 2**10, color="crimson", lw=1.4, label="capacity")
    ax.set_xlabel("step (op in schedule order)")
    ax.set_ylabel("scratchpad occupancy (KiB)")
    ax.set_title(title)
    ax.set_xlim(-0.5, max(len(steps) - 0.5, 0.5))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
