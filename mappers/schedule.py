"""What a mapper produces: which device runs each op, in what order, under which mapping."""

from __future__ import annotations

from dataclasses import dataclass, field

from archsim.ir.ops import Op


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

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class Infeasible:
    """A design that cannot run the workload, with the reason a user can act on."""

    reason: str
