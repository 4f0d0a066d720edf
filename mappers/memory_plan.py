"""Scratchpad memory plans: which tensors live where in the scratchpad at each step of a schedule.

The problem (COSMA's, Li et al. 2023): ops run one per time step in some topological order; an op
can only run when all its input and output tensors sit in the scratchpad at once. Tensors that do
not fit beside the others are evicted and later reloaded from off-chip memory. The scratchpad is a
linear address space: each resident tensor occupies one contiguous address range, and ranges of
tensors resident at the same step never overlap.

Off-chip traffic splits into

* compulsory: each weight and graph input is loaded once, each graph output stored once; no
  schedule avoids it;
* non-compulsory: every reload after the first load, plus the spill store of an intermediate
  tensor that was evicted while still needed (stored once; a value never changes once produced).

A plan is a list of :class:`Allocation` intervals; the traffic is computed from those intervals by
one function (:func:`plan_traffic`) for every mapper, so the ILP and the heuristics are compared on
the same terms, and :func:`validate_plan` checks dependencies, capacity and overlaps.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from archsim.errors import ArchsimError
from archsim.ir.graph import OpGraph

TensorRole = Literal["weight", "input", "intermediate"]

# Scratchpad allocations start on this boundary, as DMA descriptors need aligned addresses.
ALIGN_BYTES = 64


def align_up(size_bytes: float) -> int:
    """``size_bytes`` rounded up to the allocation alignment."""
    return int(-(-round(size_bytes) // ALIGN_BYTES) * ALIGN_BYTES)


@dataclass(frozen=True)
class PlanTensor:
    """A tensor as the memory planner sees it.

    Attributes
    ----------
    name:
        Tensor name from the graph.
    size_bytes:
        Scratchpad bytes it occupies (stored size rounded up to the alignment).
    role:
        ``weight`` and ``input`` come from off-chip memory; an ``intermediate`` is produced by an op.
    producer:
        The op writing it (intermediates only).
    consumers:
        Ops reading it.
    is_output:
        True when it must end in off-chip memory (a graph output, or a tensor nobody reads).
    """

    name: str
    size_bytes: int
    role: TensorRole
    producer: str | None
    consumers: tuple[str, ...]
    is_output: bool


@dataclass(frozen=True)
class MemoryProblem:
    """Ops with the tensors each touches, their dependencies, and the scratchpad capacity.

    Attributes
    ----------
    name:
        Graph name.
    ops:
        Op names in the graph's (topological) order.
    op_tensors:
        Tensors each op needs resident while it runs (inputs and outputs).
    predecessors:
        Ops each op depends on.
    tensors:
        Every tensor by name.
    capacity_bytes:
        Scratchpad size in bytes.
    """

    name: str
    ops: tuple[str, ...]
    op_tensors: dict[str, tuple[str, ...]]
    predecessors: dict[str, tuple[str, ...]]
    tensors: dict[str, PlanTensor]
    capacity_bytes: int

    @classmethod
    def from_graph(cls, graph: OpGraph, capacity_bytes: float) -> MemoryProblem:
        """Build the problem of ``graph`` on a scratchpad of ``capacity_bytes`` bytes."""
        producer: dict[str, str] = {}
        consumers: dict[str, list[str]] = defaultdict(list)
        sizes: dict[str, int] = {}
        weights: set[str] = set()
        op_tensors: dict[str, tuple[str, ...]] = {}
        for op in graph:
            names: list[str] = []
            for tensor in op.inputs():
                consumers[tensor.name].append(op.name)
                if tensor.is_weight:
                    weights.add(tensor.name)
                sizes[tensor.name] = align_up(tensor.stored_bytes)
                names.append(tensor.name)
            for tensor in op.outputs():
                producer[tensor.name] = op.name
                sizes[tensor.name] = align_up(tensor.stored_bytes)
                names.append(tensor.name)
            op_tensors[op.name] = tuple(dict.fromkeys(names))
        tensors: dict[str, PlanTensor] = {}
        for name, size in sizes.items():
            role: TensorRole = (
                "intermediate" if name in producer else "weight" if name in weights else "input"
            )
            tensors[name] = PlanTensor(
                name=name,
                size_bytes=size,
                role=role,
                producer=producer.get(name),
                consumers=tuple(dict.fromkeys(consumers.get(name, []))),
                is_output=name in producer and not consumers.get(name),
            )
        return cls(
            name=graph.name,
            ops=tuple(op.name for op in graph),
            op_tensors=op_tensors,
            predecessors={op.name: tuple(graph.predecessors(op.name)) for op in graph},
            tensors=tensors,
            capacity_bytes=int(capacity_bytes),
        )

    @classmethod
    def at_minimum_required(cls, graph: OpGraph) -> MemoryProblem:
        """The problem of ``graph`` on a scratchpad of exactly its M_R bytes (COSMA's tightest
        budget)."""
        return cls.from_graph(graph, cls.from_graph(graph, 2**62).minimum_required_bytes())

    def working_set_bytes(self, op: str) -> int:
        """Bytes ``op`` needs resident while it runs."""
        return sum(self.tensors[t].size_bytes for t in self.op_tensors[op])

    def minimum_required_bytes(self) -> int:
        """COSMA's M_R: the largest working set (inputs, weights and outputs) of a single op, the
        smallest scratchpad on which every op runs untiled."""
        return max(self.working_set_bytes(op) for op in self.ops)

    def oversized_op(self) -> str | None:
        """An op whose tensors alone exceed the scratchpad (no plan exists), or None."""
        for op in self.ops:
            if self.working_set_bytes(op) > self.capacity_bytes:
                return op
        return None

    def infeasible_reason(self) -> str | None:
        op = self.oversized_op()
        if op is None:
            return None
        return (
            f"scratchpad {self.capacity_bytes / 2**20:.2f} MiB < "
            f"{self.working_set_bytes(op) / 2**20:.2f} MiB needed by op '{op}' (its inputs and "
            "outputs resident at once)"
        )


@dataclass(frozen=True)
class Allocation:
    """A tensor resident at ``offset_bytes`` from step ``start_step`` to ``end_step`` inclusive.

    ``loaded`` is True when the interval begins with a load from off-chip memory, False when the
    tensor is produced into it by the op running at ``start_step``.
    """

    tensor: str
    start_step: int
    end_step: int
    offset_bytes: int
    size_bytes: int
    loaded: bool


@dataclass(frozen=True)
class Traffic:
    """Off-chip bytes of a plan, split as COSMA does.

    Attributes
    ----------
    compulsory_bytes:
        First load of every weight and input, store of every output.
    reload_bytes:
        Loads after a tensor's first one (intermediates: every load).
    spill_bytes:
        Stores of intermediates evicted while still needed (once per tensor).
    """

    compulsory_bytes: float
    reload_bytes: float
    spill_bytes: float

    @property
    def non_compulsory_bytes(self) -> float:
        return self.reload_bytes + self.spill_bytes

    @property
    def total_bytes(self) -> float:
        return self.compulsory_bytes + self.non_compulsory_bytes


@dataclass(frozen=True)
class SolverStats:
    """How a plan was found.

    Attributes
    ----------
    method:
        ``ilp``, ``lru``, ``belady``, ``order_search`` or ``divide_conquer``.
    solver:
        The MILP solver used (``highs``, ``cbc``) or ``none`` for heuristics.
    status:
        ``optimal`` (solved to optimality, or a plan meeting the lower bound), ``time_limit``
        (best found within the node or time limit), ``warm_start`` (the solver found nothing
        better than its warm start) or ``heuristic``.
    solve_time_s:
        Wall time of the search, in seconds.
    gap_rel:
        Relative optimality gap proven by the solver (0 when optimal; NaN when unknown).
    variables, constraints:
        Size of the MILP (0 for heuristics), summed over sub-problems.
    subproblems:
        MILPs solved (divide and conquer solves one per window).
    order_evaluations:
        Op orders planned by the schedule search (:func:`archsim.mappers.heuristics.search_order`).
    lower_bound_bytes:
        Non-compulsory bytes no plan can avoid (:func:`lower_bound_bytes`; NaN if not computed).
        A plan that meets it is optimal whatever the solver's own status.
    """

    method: str
    solver: str
    status: str
    solve_time_s: float
    gap_rel: float = float("nan")
    variables: int = 0
    constraints: int = 0
    subproblems: int = 0
    order_evaluations: int = 0
    lower_bound_bytes: float = float("nan")


@dataclass(frozen=True)
class MemoryPlan:
    """Op order plus every tensor's scratchpad intervals, with traffic and solver statistics."""

    order: tuple[str, ...]
    allocations: tuple[Allocation, ...]
    capacity_bytes: int
    traffic: Traffic
    stats: SolverStats
    reload_bytes_by_step: tuple[float, ...] = ()
    """Non-compulsory loads before each step's op (they sum to ``traffic.reload_bytes``)."""
    spill_bytes_by_step: tuple[float, ...] = ()
    """Spill stores made to free room for each step's op (they sum to ``traffic.spill_bytes``)."""

    def occupancy_bytes(self) -> list[int]:
        """Scratchpad bytes in use at each step."""
        used = [0] * len(self.order)
        for a in self.allocations:
            for step in range(a.start_step, a.end_step + 1):
                used[step] += a.size_bytes
        return used

    def evictions(self) -> list[Allocation]:
        """Intervals that end while their tensor is still needed later (evict, then reload)."""
        by_tensor: dict[str, list[Allocation]] = defaultdict(list)
        for a in self.allocations:
            by_tensor[a.tensor].append(a)
        evicted = []
        for intervals in by_tensor.values():
            intervals.sort(key=lambda a: a.start_step)
            evicted += intervals[:-1]
        return evicted


def step_traffic(
    problem: MemoryProblem, steps: int, allocations: tuple[Allocation, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Non-compulsory reload and spill bytes charged to each step, as :func:`plan_traffic` counts
    them: a reload at the step its interval starts; an intermediate's one spill at the step after
    its first interval ends (the op that needed the room)."""
    reload = [0.0] * steps
    spill = [0.0] * steps
    by_tensor: dict[str, list[Allocation]] = defaultdict(list)
    for a in allocations:
        by_tensor[a.tensor].append(a)
    for name, intervals in by_tensor.items():
        t = problem.tensors[name]
        intervals.sort(key=lambda a: a.start_step)
        loads = [a for a in intervals if a.loaded]
        if t.role != "intermediate":
            loads = loads[1:]  # the first load of a weight or input is compulsory
        for a in loads:
            reload[a.start_step] += t.size_bytes
        if t.role == "intermediate" and loads and not t.is_output:
            spill[min(intervals[0].end_step + 1, steps - 1)] += t.size_bytes
    return tuple(reload), tuple(spill)


def plan_traffic(problem: MemoryProblem, allocations: tuple[Allocation, ...]) -> Traffic:
    """Off-chip traffic implied by ``allocations`` (see the module docstring for the split)."""
    compulsory = 0.0
    for t in problem.tensors.values():
        if t.role != "intermediate":
            compulsory += t.size_bytes
        if t.is_output:
            compulsory += t.size_bytes
    loads: dict[str, int] = defaultdict(int)
    for a in allocations:
        if a.loaded:
            loads[a.tensor] += 1
    reload = spill = 0.0
    for name, count in loads.items():
        t = problem.tensors[name]
        if t.role == "intermediate":
            reload += count * t.size_bytes
            if not t.is_output:  # an output is stored anyway; its spill is that store
                spill += t.size_bytes
        else:
            reload += max(count - 1, 0) * t.size_bytes
    return Traffic(compulsory_bytes=compulsory, reload_bytes=reload, spill_bytes=spill)


def _cheapest_cover(items: list[tuple[int, int, str]], excess: int) -> float:
    """Least traffic of evicting whole tensors ``(traffic per byte, bytes, name)`` totalling at
    least ``excess`` bytes: exact over subsets for a few tensors, the fractional relaxation (a
    lower bound of it) for many."""
    if excess <= 0:
        return 0.0
    if len(items) <= 12:
        best = math.inf
        for mask in range(1, 1 << len(items)):
            chosen = [items[i] for i in range(len(items)) if mask >> i & 1]
            if sum(size for _, size, _ in chosen) >= excess:
                best = min(best, sum(per * size for per, size, _ in chosen))
        return best
    cost = 0.0
    for per_byte, size, _ in sorted(items):
        take = min(size, excess)
        cost += per_byte * take
        excess -= take
        if excess <= 0:
            break
    return cost


def lower_bound_bytes(problem: MemoryProblem) -> float:
    """Non-compulsory bytes that no schedule, allocation or replacement can avoid.

    A tensor is live across op ``v`` in every topological order when it was made (or, for a
    weight or input, first used) by an ancestor of ``v`` and is read by a descendant of ``v``,
    and ``v`` itself does not use it. If those tensors and ``v``'s own working set exceed the
    scratchpad, tensors among them totalling the excess must be off-chip while ``v`` runs: each
    is reloaded later, and an evicted intermediate was also spilled (2 bytes of traffic per byte;
    a weight, an input or a graph output 1). The cheapest such set bounds the traffic at ``v``.
    Ops whose sets of candidate tensors are disjoint are paid by different tensors, so their
    bounds add: the bound sums them over ops picked greedily, costliest first, with disjoint
    candidate sets. It proves a plan optimal when the plan meets it.
    """
    ancestors: dict[str, set[str]] = {}
    for op in problem.ops:  # topological
        found: set[str] = set()
        for pred in problem.predecessors[op]:
            found.add(pred)
            found |= ancestors[pred]
        ancestors[op] = found
    descendants: dict[str, set[str]] = {op: set() for op in problem.ops}
    for op, above in ancestors.items():
        for a in above:
            descendants[a].add(op)
    events: list[tuple[float, frozenset[str]]] = []
    for op in problem.ops:
        used = set(problem.op_tensors[op])
        before, after = ancestors[op], descendants[op]
        across: list[tuple[int, int, str]] = []  # (traffic per byte, bytes, tensor)
        for t in problem.tensors.values():
            if t.name in used or not any(c in after for c in t.consumers):
                continue
            if t.producer is not None:
                if t.producer not in before:
                    continue
            elif not any(c in before for c in t.consumers):
                continue
            per_byte = 2 if t.role == "intermediate" and not t.is_output else 1
            across.append((per_byte, t.size_bytes, t.name))
        excess = problem.working_set_bytes(op) + sum(b for _, b, _ in across)
        excess -= problem.capacity_bytes
        if excess > 0:
            events.append((_cheapest_cover(across, excess), frozenset(n for _, _, n in across)))
    total = 0.0
    taken: set[str] = set()
    for cost, names in sorted(events, key=lambda e: -e[0]):
        if not names & taken:
            total += cost
            taken |= names
    return total


class PlanError(ArchsimError):
    """A memory plan that breaks a rule (a mapper bug; tests use it)."""


def validate_plan(problem: MemoryProblem, order: tuple[str, ...], allocations) -> None:
    """Raise :class:`PlanError` unless the plan is valid.

    Checks: ``order`` runs every op once after its predecessors; every op's tensors are resident
    at its step; an intermediate is resident only from its producer's step on and only intervals
    starting at that step are unloaded; intervals of one tensor do not overlap; allocations lie in
    ``[0, capacity)`` and allocations resident at the same step occupy disjoint address ranges.
    """
    if sorted(order) != sorted(problem.ops):
        raise PlanError("order does not run every op exactly once")
    step_of = {op: i for i, op in enumerate(order)}
    for op in order:
        for pred in problem.predecessors[op]:
            if step_of[pred] >= step_of[op]:
                raise PlanError(f"op '{op}' runs before its predecessor '{pred}'")
    by_tensor: dict[str, list[Allocation]] = defaultdict(list)
    for a in allocations:
        t = problem.tensors[a.tensor]
        if a.size_bytes != t.size_bytes:
            raise PlanError(f"tensor '{a.tensor}' allocated {a.size_bytes} B, needs {t.size_bytes}")
        if a.offset_bytes < 0 or a.offset_bytes + a.size_bytes > problem.capacity_bytes:
            raise PlanError(f"tensor '{a.tensor}' at {a.offset_bytes} B runs past the scratchpad")
        if a.start_step > a.end_step:
            raise PlanError(f"tensor '{a.tensor}' has an empty interval")
        if t.role == "intermediate":
            made = step_of[t.producer]
            if a.start_step < made:
                raise PlanError(f"tensor '{a.tensor}' resident before it is produced")
            if (a.start_step == made) == a.loaded:
                raise PlanError(f"tensor '{a.tensor}': interval at {a.start_step} load flag wrong")
        elif not a.loaded:
            raise PlanError(f"{t.role} '{a.tensor}' resident without a load")
        by_tensor[a.tensor].append(a)
    for name, intervals in by_tensor.items():
        intervals.sort(key=lambda a: a.start_step)
        for before, after in itertools.pairwise(intervals):
            if after.start_step <= before.end_step:
                raise PlanError(f"tensor '{name}' has overlapping intervals")
    for op in order:
        step = step_of[op]
        for name in problem.op_tensors[op]:
            if not any(a.start_step <= step <= a.end_step for a in by_tensor.get(name, [])):
                raise PlanError(f"op '{op}' at step {step}: tensor '{name}' is not resident")
    live: list[list[Allocation]] = [[] for _ in order]
    for a in allocations:
        for step in range(a.start_step, a.end_step + 1):
            live[step].append(a)
    for step, resident in enumerate(live):
        resident.sort(key=lambda a: a.offset_bytes)
        for low, high in itertools.pairwise(resident):
            if low.offset_bytes + low.size_bytes > high.offset_bytes:
                raise PlanError(
                    f"step {step}: '{low.tensor}' and '{high.tensor}' overlap in the scratchpad"
                )


def make_plan(
    problem: MemoryProblem,
    order: tuple[str, ...],
    allocations: list[Allocation],
    stats: SolverStats,
) -> MemoryPlan:
    """Bundle a plan with its traffic (allocations sorted by start step, then tensor)."""
    ordered = tuple(sorted(allocations, key=lambda a: (a.start_step, a.tensor, a.end_step)))
    reload, spill = step_traffic(problem, len(order), ordered)
    return MemoryPlan(
        order=tuple(order),
        allocations=ordered,
        capacity_bytes=problem.capacity_bytes,
        traffic=plan_traffic(problem, ordered),
        stats=stats,
        reload_bytes_by_step=reload,
        spill_bytes_by_step=spill,
    )


def scratchpad_capacity_bytes(device: object) -> float | None:
    """Scratchpad bytes of a device model, or None if it has no software-managed on-chip memory.

    NPUs call it ``scratchpad``, FPGA designs ``onchip`` (BRAM + URAM); caches (GPU L2) are not
    software-managed and do not count.
    """
    config = getattr(device, "config", None)
    for field_name in ("scratchpad", "onchip"):
        level = getattr(config, field_name, None)
        if level is not None:
            return float(level.size_bytes)
    return None
