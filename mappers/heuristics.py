"""Replacement heuristics for a fixed op order, and a local search over op orders that these
planners evaluate. They are the baselines COSMA compares its ILP against.

Online (:func:`plan_with_eviction`): ops run in the given order; before each op its missing
tensors are placed in the scratchpad's address space, first fit or best fit. When no free range is
large enough, a resident tensor the op does not need is evicted: the least recently used one
(LRU), or the one whose next use lies furthest ahead (Belady's rule, which is optimal for equal
sizes and a fixed order, but not with tensors of different sizes in a fragmented address space).
Tensors with no later use are freed after their last op at no cost.

Offline (:func:`plan_greedy_by_size`, COSMA's TensorFlow Lite baseline): Belady decides residency
counting bytes, then TensorFlow Lite's arena planner gives every residency interval an offset,
knowing all intervals at once.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import time
from collections import defaultdict
from typing import Literal

from archsim.mappers.memory_plan import (
    Allocation,
    MemoryPlan,
    MemoryProblem,
    SolverStats,
    make_plan,
    plan_traffic,
)

EvictionPolicy = Literal["lru", "belady"]


def topological_order(problem: MemoryProblem) -> tuple[str, ...]:
    """The graph's own order (the lowerings emit ops topologically)."""
    return problem.ops


def _first_fit(resident: dict[str, list[int]], size: int, capacity: int) -> int | None:
    """Lowest offset of a free range of ``size`` bytes; ``resident`` maps tensor -> [offset, size]."""
    cursor = 0
    for offset, used in sorted(resident.values()):
        if offset - cursor >= size:
            return cursor
        cursor = max(cursor, offset + used)
    return cursor if capacity - cursor >= size else None


def _best_fit(resident: dict[str, list[int]], size: int, capacity: int) -> int | None:
    """Start of the smallest free range that holds ``size`` bytes, the gap rule of TensorFlow
    Lite's ``SimpleMemoryArena::Allocate`` (see :func:`greedy_by_size_offsets`), with the space
    above the highest resident tensor as one more range."""
    cursor = 0
    best_offset = best_gap = None
    for offset, used in sorted(resident.values()):
        gap = offset - cursor
        if gap >= size and (best_gap is None or gap < best_gap):
            best_offset, best_gap = cursor, gap
        cursor = max(cursor, offset + used)
    top = capacity - cursor
    if top >= size and (best_gap is None or top < best_gap):
        best_offset = cursor
    return best_offset


Fit = Literal["first", "best"]
_FITS = {"first": _first_fit, "best": _best_fit}


def plan_with_eviction(
    problem: MemoryProblem, order: tuple[str, ...], policy: EvictionPolicy, fit: Fit = "first"
) -> MemoryPlan | str:
    """Plan the scratchpad for ``order`` with ``policy`` eviction.

    Each missing tensor is placed when its op runs, by ``fit``: the lowest free range that holds
    it (``first``) or the smallest (``best``, TensorFlow Lite's gap rule applied online).

    When fragmentation leaves no free range large enough even after evicting every tensor the op
    does not need, the op's own resident tensors are evicted as well and all of its tensors are
    reloaded packed from address 0.

    Returns
    -------
    MemoryPlan | str
        The plan, or the reason none exists (an op's tensors alone exceed the scratchpad).
    """
    started = time.perf_counter()
    reason = problem.infeasible_reason()
    if reason is not None:
        return reason
    allocations = _eviction_allocations(problem, order, policy, fit)
    stats = SolverStats(
        method=policy if fit == "first" else f"{policy}_{fit}_fit",
        solver="none",
        status="heuristic",
        solve_time_s=time.perf_counter() - started,
    )
    return make_plan(problem, order, allocations, stats)


def _eviction_allocations(
    problem: MemoryProblem, order: tuple[str, ...], policy: EvictionPolicy, fit: Fit = "first"
) -> list[Allocation]:
    """The intervals of :func:`plan_with_eviction` (every op's working set must fit)."""
    place = _FITS[fit]
    uses: dict[str, list[int]] = defaultdict(list)
    for step, op in enumerate(order):
        for name in problem.op_tensors[op]:
            uses[name].append(step)
    capacity = problem.capacity_bytes
    resident: dict[str, list[int]] = {}  # tensor -> [offset, size]
    opened: dict[str, tuple[int, bool]] = {}  # tensor -> (start step, loaded)
    last_used: dict[str, int] = {}
    allocations: list[Allocation] = []

    def close(name: str, end_step: int) -> None:
        offset, size = resident.pop(name)
        start, loaded = opened.pop(name)
        allocations.append(Allocation(name, start, end_step, offset, size, loaded))

    def next_use(name: str, step: int) -> int:
        steps = uses[name]
        index = bisect.bisect_right(steps, step)
        return steps[index] if index < len(steps) else len(order)

    for step, op in enumerate(order):
        needed = problem.op_tensors[op]
        missing = [n for n in needed if n not in resident]
        # big tensors first: they are the hardest to place in a fragmented space
        missing.sort(key=lambda n: -problem.tensors[n].size_bytes)
        for name in missing:
            size = problem.tensors[name].size_bytes
            offset = place(resident, size, capacity)
            while offset is None:
                victims = [n for n in resident if n not in needed]
                if not victims:
                    # fragmentation: the op's own tensors are scattered; evict them too and
                    # reload them packed from address 0 (they fit: working set <= capacity)
                    for other in [n for n in resident if opened[n][0] < step]:
                        close(other, step - 1)
                    for other in list(resident):
                        del resident[other], opened[other]
                    return_to = [n for n in needed if n not in resident]
                    return_to.sort(key=lambda n: -problem.tensors[n].size_bytes)
                    cursor = 0
                    for other in return_to:
                        resident[other] = [cursor, problem.tensors[other].size_bytes]
                        opened[other] = (step, problem.tensors[other].producer != op)
                        cursor += problem.tensors[other].size_bytes
                    offset = -1
                    break
                if policy == "lru":
                    victim = min(victims, key=lambda n: (last_used[n], -resident[n][1]))
                else:
                    victim = max(victims, key=lambda n: (next_use(n, step), resident[n][1]))
                close(victim, step - 1)
                offset = place(resident, size, capacity)
            if offset < 0:
                break  # every tensor of the op was just placed packed
            resident[name] = [offset, size]
            opened[name] = (step, problem.tensors[name].producer != op)
        for name in needed:
            last_used[name] = step
        for name in needed:
            if next_use(name, step) == len(order):
                close(name, step)
    for name in list(resident):
        close(name, len(order) - 1)
    return allocations


def greedy_by_size_offsets(intervals: list[tuple[int, int, int]]) -> list[int]:
    """Offsets of ``(size_bytes, first_step, last_step)`` intervals by TensorFlow Lite's arena
    planner, the allocator of COSMA's baselines (its Section V-A).

    ``ArenaPlanner::CreateTensorAllocationVector`` (tensorflow/lite/arena_planner.cc) orders the
    tensors by size, largest first, equal sizes by first use; ``SimpleMemoryArena::Allocate``
    (tensorflow/lite/simple_memory_arena.cc) then walks the already placed tensors whose
    lifetimes intersect the new one, in address order, and takes the smallest gap between them
    that fits (best fit), or else the address just above the highest of them. Sizes are already
    aligned (:data:`~archsim.mappers.memory_plan.ALIGN_BYTES`), so every offset is too.
    """
    offsets = [0] * len(intervals)
    placed: list[tuple[int, int]] = []  # (offset, interval index), in address order
    for index in sorted(range(len(intervals)), key=lambda i: (-intervals[i][0], intervals[i][1])):
        size, first, last = intervals[index]
        best_offset = best_fit = None
        cursor = 0
        for offset, other in placed:
            other_size, other_first, other_last = intervals[other]
            if other_last < first or other_first > last:
                continue
            if cursor + size <= offset and (best_fit is None or offset - cursor < best_fit):
                best_offset, best_fit = cursor, offset - cursor
            cursor = max(cursor, offset + other_size)
            if best_fit == 0:
                break
        offsets[index] = cursor if best_offset is None else best_offset
        bisect.insort(placed, (offsets[index], index))
    return offsets


def _replace_by_bytes(
    problem: MemoryProblem,
    order: tuple[str, ...],
    policy: EvictionPolicy,
    budget_bytes: list[int],
    flush_before: set[int],
) -> list[tuple[str, int, int, bool]]:
    """Residency intervals ``(tensor, first_step, last_step, loaded)`` chosen by ``policy`` with
    the scratchpad seen as a byte count, not an address space: before step ``s`` the tensors
    its op misses are brought in and others evicted until at most ``budget_bytes[s]`` are
    resident. Before a step in ``flush_before`` every resident tensor is evicted."""
    uses: dict[str, list[int]] = defaultdict(list)
    for step, op in enumerate(order):
        for name in problem.op_tensors[op]:
            uses[name].append(step)
    size = {name: t.size_bytes for name, t in problem.tensors.items()}
    resident: dict[str, tuple[int, bool]] = {}  # tensor -> (first step, loaded)
    last_used: dict[str, int] = {}
    intervals: list[tuple[str, int, int, bool]] = []
    used = 0

    def close(name: str, last_step: int) -> None:
        nonlocal used
        first, loaded = resident.pop(name)
        used -= size[name]
        intervals.append((name, first, last_step, loaded))

    def next_use(name: str, step: int) -> int:
        steps = uses[name]
        index = bisect.bisect_right(steps, step)
        return steps[index] if index < len(steps) else len(order)

    for step, op in enumerate(order):
        needed = problem.op_tensors[op]
        if step in flush_before:
            for name in list(resident):
                close(name, step - 1)
        for name in needed:
            if name not in resident:
                resident[name] = (step, problem.tensors[name].producer != op)
                used += size[name]
        while used > budget_bytes[step]:
            victims = [n for n in resident if n not in needed]
            if policy == "lru":
                victim = min(victims, key=lambda n: (last_used[n], -size[n]))
            else:
                victim = max(victims, key=lambda n: (next_use(n, step), size[n]))
            close(victim, step - 1)
        for name in needed:
            last_used[name] = step
            if next_use(name, step) == len(order):
                close(name, step)
    for name in list(resident):
        close(name, len(order) - 1)
    return intervals


def plan_greedy_by_size(
    problem: MemoryProblem, order: tuple[str, ...], policy: EvictionPolicy = "belady"
) -> MemoryPlan | str:
    """COSMA's baseline: replacement by ``policy``, then TensorFlow Lite's greedy-by-size offsets.

    The two decisions are made apart, as in the tool flows COSMA compares against (its Section
    V-A): the replacement policy picks which tensors are resident at each step counting bytes
    only; :func:`greedy_by_size_offsets` then gives every residency interval one address. Where
    the offsets run past the scratchpad (the allocator fragments the space), the steps whose
    resident tensors overflow get a byte budget smaller by the overflow and the replacement is
    redone; a step already down to its op's own working set instead evicts everything before it
    (and then before the next step), which the allocator always packs.

    Returns
    -------
    MemoryPlan | str
        The plan, or the reason none exists (an op's tensors alone exceed the scratchpad).
    """
    started = time.perf_counter()
    reason = problem.infeasible_reason()
    if reason is not None:
        return reason
    capacity = problem.capacity_bytes
    working_set = [problem.working_set_bytes(op) for op in order]
    budget = [capacity] * len(order)
    flush_before: set[int] = set()
    while True:
        residency = _replace_by_bytes(problem, order, policy, budget, flush_before)
        sizes = [problem.tensors[name].size_bytes for name, *_ in residency]
        offsets = greedy_by_size_offsets(
            [(sizes[i], first, last) for i, (_, first, last, _) in enumerate(residency)]
        )
        top = [0] * len(order)  # highest address in use at each step
        for i, (_, first, last, _) in enumerate(residency):
            for step in range(first, last + 1):
                top[step] = max(top[step], offsets[i] + sizes[i])
        overflowing = [step for step, high in enumerate(top) if high > capacity]
        if not overflowing:
            break
        for step in overflowing:
            if budget[step] > working_set[step]:
                budget[step] = max(working_set[step], budget[step] - (top[step] - capacity))
            elif step not in flush_before:
                flush_before.add(step)
            elif step + 1 < len(order):
                flush_before.add(step + 1)
    allocations = [
        Allocation(name, first, last, offsets[i], sizes[i], loaded)
        for i, (name, first, last, loaded) in enumerate(residency)
    ]
    stats = SolverStats(
        method=f"tflite_{policy}",
        solver="none",
        status="heuristic",
        solve_time_s=time.perf_counter() - started,
    )
    return make_plan(problem, order, allocations, stats)


def best_heuristic_plan(problem: MemoryProblem, order: tuple[str, ...]) -> MemoryPlan | str:
    """The better of the LRU and Belady plans for ``order`` (fewer non-compulsory bytes)."""
    plans = [plan_with_eviction(problem, order, policy) for policy in ("lru", "belady")]
    found = [p for p in plans if isinstance(p, MemoryPlan)]
    if not found:
        return str(plans[0])
    return min(found, key=lambda p: p.traffic.non_compulsory_bytes)


def _heuristic_bytes(problem: MemoryProblem, order: tuple[str, ...]) -> float:
    """Non-compulsory bytes of :func:`best_heuristic_plan` without building the plan (the order
    search evaluates thousands of orders and keeps one)."""
    return min(
        plan_traffic(
            problem, tuple(_eviction_allocations(problem, order, policy))
        ).non_compulsory_bytes
        for policy in ("lru", "belady")
    )


def _best_plan_of(problem: MemoryProblem, order: tuple[str, ...]) -> MemoryPlan | str:
    """The better of the first-fit plans and the byte-counting Belady plan with TensorFlow Lite
    offsets for ``order``."""
    plans = [best_heuristic_plan(problem, order), plan_greedy_by_size(problem, order, "belady")]
    found = [p for p in plans if isinstance(p, MemoryPlan)]
    if not found:
        return str(plans[0])
    return min(found, key=lambda p: p.traffic.non_compulsory_bytes)


def successors(problem: MemoryProblem) -> dict[str, list[str]]:
    """Ops that depend on each op."""
    after: dict[str, list[str]] = {op: [] for op in problem.ops}
    for op in problem.ops:
        for pred in problem.predecessors[op]:
            after[pred].append(op)
    return after


# Lengths of the order segments the search moves: single ops, and runs as long as a NASNet
# separable-convolution branch (four ops) plus its join, so that whole branches change places.
_SEGMENT_OPS = (1, 1, 2, 3, 4, 5, 6, 8, 10)


def _moved_segment(
    problem: MemoryProblem,
    after: dict[str, list[str]],
    order: list[str],
    position: dict[str, int],
    rng: random.Random,
) -> list[str] | None:
    """``order`` with a random run of consecutive ops put back at a random legal position
    (between its last predecessor and its first successor), or None if it has no other place.

    ``position`` is each op's index in ``order``. The legal range is found from it before the new
    order is built: most segments of a near-chain graph have no other place, and rejecting them
    without copying the order keeps the search's cost in the orders it actually plans."""
    first = rng.randrange(len(order))
    segment = order[first : first + rng.choice(_SEGMENT_OPS)]
    end = first + len(segment)  # ops after the segment move down by len(segment) in the rest
    low = 0
    high = len(order) - len(segment)
    for op in segment:
        for p in problem.predecessors[op]:
            at = position[p]
            if at < first:  # in order, every outside predecessor lies before the segment
                low = max(low, at + 1)
        for s in after[op]:
            at = position[s]
            if at >= end:
                high = min(high, at - len(segment))
    if low > high:
        return None
    at = rng.randint(low, high)
    if at == first:
        return None
    rest = order[:first] + order[end:]
    return rest[:at] + segment + rest[at:]


def peak_live_bytes(problem: MemoryProblem, order: tuple[str, ...] | list[str]) -> int:
    """Largest sum of live tensors at any step of ``order`` with nothing evicted: a tensor lives
    from its producer (or first use) to its last use. The scratchpad that runs ``order`` with no
    off-chip traffic beyond the compulsory."""
    position = {op: i for i, op in enumerate(order)}
    delta = [0] * (len(order) + 1)
    for t in problem.tensors.values():
        users = [position[c] for c in t.consumers]
        start = position[t.producer] if t.producer is not None else min(users)
        end = max(users, default=start)
        delta[start] += t.size_bytes
        delta[end + 1] -= t.size_bytes
    live = peak = 0
    for change in delta[:-1]:
        live += change
        peak = max(peak, live)
    return peak


def min_peak_order(
    problem: MemoryProblem, *, evaluations: int = 20000, seed: int = 0
) -> tuple[str, ...]:
    """A topological order with a small peak of live bytes: COSMA's second baseline schedule,
    the "minimum peak memory footprint" (MPMF) order (its Section V-A), found here by the same
    local search as :func:`search_order` on :func:`peak_live_bytes` instead of by an ILP."""
    order = list(problem.ops)
    best = peak_live_bytes(problem, order)
    after = successors(problem)
    rng = random.Random(seed)
    position = {op: i for i, op in enumerate(order)}
    tried = attempts = 0
    while tried < evaluations and attempts < 20 * evaluations and len(order) > 1:
        attempts += 1
        candidate = _moved_segment(problem, after, order, position, rng)
        if candidate is None:
            continue
        tried += 1
        peak = peak_live_bytes(problem, candidate)
        if peak <= best:
            best, order = peak, candidate
            position = {op: i for i, op in enumerate(order)}
    return tuple(order)


def search_order(
    problem: MemoryProblem,
    start: tuple[str, ...] | None = None,
    *,
    evaluations: int = 2000,
    seed: int = 0,
    stop_at_bytes: float = 0.0,
) -> MemoryPlan | str:
    """Search topological orders for the one whose LRU/Belady plan moves the fewest bytes.

    A local search over schedules: each step takes a run of consecutive ops out of the current
    order and puts it back at a random position between its last predecessor and its first
    successor (so every candidate is a valid order), plans the candidate with
    :func:`best_heuristic_plan` and keeps it when it moves no more non-compulsory bytes
    (equal-cost moves are kept so the search can cross plateaus). The order found is planned
    once more by Belady with TensorFlow Lite's offsets (:func:`plan_greedy_by_size`), and the
    better plan is returned. It is how the divide and
    conquer of :func:`archsim.mappers.cosma.cosma_plan` fixes which ops share a window, and on
    its own a schedule heuristic for graphs with many parallel branches (NAS cells), where the
    order decides how many block outputs are live at once.

    The search is deterministic: a seeded generator and a budget counted in evaluated orders,
    not in seconds, so the result does not depend on the machine's load.

    Parameters
    ----------
    problem:
        The memory problem.
    start:
        Initial order (default: the graph's own).
    evaluations:
        Candidate orders planned.
    seed:
        Seed of the move generator.
    stop_at_bytes:
        Stop once a plan moves no more non-compulsory bytes than this (a lower bound).

    Returns
    -------
    MemoryPlan | str
        The best plan found (its ``stats.method`` is ``order_search``), or why no plan exists.
    """
    started = time.perf_counter()
    order = list(start if start is not None else problem.ops)
    reason = problem.infeasible_reason()
    if reason is not None:
        return reason
    best_bytes = _heuristic_bytes(problem, tuple(order))
    after = successors(problem)
    rng = random.Random(seed)
    position = {op: i for i, op in enumerate(order)}
    tried = 0
    attempts = 0
    # a segment with no legal new place is skipped; bound the attempts so a chain graph ends
    while tried < evaluations and attempts < 20 * evaluations and len(order) > 1:
        attempts += 1
        if best_bytes <= stop_at_bytes:
            break
        candidate = _moved_segment(problem, after, order, position, rng)
        if candidate is None:
            continue
        tried += 1
        moved = _heuristic_bytes(problem, tuple(candidate))
        if moved <= best_bytes:
            best_bytes, order = moved, candidate
            position = {op: i for i, op in enumerate(order)}
    stats = SolverStats(
        method="order_search",
        solver="none",
        status="heuristic",
        solve_time_s=time.perf_counter() - started,
        order_evaluations=tried,
    )
    best = _best_plan_of(problem, tuple(order))
    assert isinstance(best, MemoryPlan)  # every op's working set fits
    return dataclasses.replace(best, stats=stats)
