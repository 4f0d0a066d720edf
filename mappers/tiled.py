"""Searched tilings for GEMMs and convolutions: the ``tiled`` mapper, and the step that gives the
scratchpad-planning mappers (``cosma``, ``lru``, ``belady``) the same tilings.

Placement is the greedy mapper's. Each GEMM or convolution placed on a device with a tiling
target (NPU) gets the tiling, loop order and buffering that
:func:`~archsim.mappers.tiling_search.search_tiling` finds over its wider space (every
array-aligned tile size, not only powers of two). The device model then costs it: the searched
tiling is kept only where the device's own cost of it beats the device's own choice (search
proposes, the model decides), so a mapper with searched tilings is never slower per op. Equal
ops (they hash structurally) are searched once.
"""

from __future__ import annotations

import dataclasses

from archsim.errors import ArchsimError
from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.ir.ops import Conv2d, Gemm, Op
from archsim.mappers.base import register_mapper
from archsim.mappers.greedy import GreedyMapper
from archsim.mappers.schedule import Infeasible, Schedule, ScheduledOp
from archsim.mappers.tiling_search import search_tiling


def with_searched_tilings(schedule: Schedule, machine: Machine) -> Schedule:
    """``schedule`` with each GEMM/convolution's searched tiling where the device costs it lower.

    Adds ``tilings_searched`` and ``tilings_kept`` (distinct ops) to the schedule's stats.
    """
    chosen: dict[tuple[str, Op], object | None] = {}
    searched = kept = 0
    entries: list[ScheduledOp] = []
    for entry in schedule.entries:
        key = (entry.device, entry.op)
        if key not in chosen:
            chosen[key] = None
            if isinstance(entry.op, Gemm | Conv2d) and entry.mapping is None:
                device = machine.devices[entry.device]
                try:
                    found = search_tiling(entry.op, device).mapping
                    own = device.cost(entry.op, None).latency_s
                    theirs = device.cost(entry.op, found).latency_s
                except ArchsimError:
                    # no tiling target for this device family, or no searched tiling fits
                    found, own, theirs = None, 0.0, 0.0
                if found is not None:
                    searched += 1
                    if theirs < own:
                        chosen[key] = found
                        kept += 1
        mapping = chosen[key]
        entries.append(entry if mapping is None else dataclasses.replace(entry, mapping=mapping))
    stats = {**schedule.stats, "tilings_searched": float(searched), "tilings_kept": float(kept)}
    return dataclasses.replace(schedule, entries=tuple(entries), stats=stats)


@register_mapper("tiled")
class TiledMapper:
    """Greedy placement, then the searched tiling of every GEMM and convolution."""

    name = "tiled"

    def map(self, graph: OpGraph, machine: Machine) -> Schedule | Infeasible:
        placed = GreedyMapper().map(graph, machine)
        if isinstance(placed, Infeasible):
            return placed
        return dataclasses.replace(with_searched_tilings(placed, machine), mapper=self.name)
