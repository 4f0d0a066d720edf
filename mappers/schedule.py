"""What a mapper produces: which device runs each op, in what order, under which mapping."""

from __future__ import annotations

from dataclasses import dataclass, field

from archsim.ir.ops import Op
from archsim.mappers.memory_plan import MemoryPlan


@dataclass(frozen=True)
class ScheduledOp:
    """One op placed on a device; ``mapping`` is the device-specific tiling, or None for the
    device model's own choice."""

    op: Op
    device: str
    mapping: object | None = None


@dataclass(frozen=True)
class Schedule:
    """Ops in execution order with their placement, plus the mapper's statistics."""

    graph_name: str
    entries: tuple[ScheduledOp, ...]
    mapper: str
    stats: dict[str, float] = field(default_factory=dict)
    memory_plan: MemoryPlan | None = None
    """Scratchpad plan of memory-planning mappers (cosma, lru, belady): per-tensor address
    ranges over the steps of ``entries``, evictions and reloads, off-chip traffic split into
    compulsory and non-compulsory, and the solver's statistics; None for other mappers."""

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Infeasible:
    """A design that cannot run the workload, with the reason a user can act on."""

    reason: str
