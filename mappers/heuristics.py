"""Replacement heuristics: a fixed op order, first-fit allocation, LRU or Belady-style eviction;
and a local search over op orders that these planners evaluate.

These are the baselines COSMA compares its ILP against. Ops run in the given order; before each op
its missing tensors are allocated first-fit in the scratchpad's address space. When no free range
is large enough, a resident tensor the op does not need is evicted: the least recently used one
(LRU), or the one whose next use lies furthest ahead (Belady's rule, which is optimal for equal
sizes and a fixed order, but not with tensors of different sizes in a fragmented address space).
Tensors with no later use are freed after their last op at no cost.
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


def plan_with_eviction(
    problem: MemoryProblem, order: tuple[str, ...], policy: EvictionPolicy
) -> MemoryPlan | str:
    """Plan the scratchpad for ``order`` with ``policy`` eviction.

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
            offset = _first_fit(resident, size, capacity)
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
                offset = _first_fit(resident, size, capacity)
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
    stats = SolverStats(
        method=policy,
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
    problem: MemoryProblem, after: dict[str, list[str]], order: list[str], rng: random.Random
) -> list[str] | None:
    """``order`` with a random run of consecutive ops put back at a random legal position
    (between its last predecessor and its first successor), or None if it has no other place."""
    first = rng.randrange(len(order))
    segment = order[first : first + rng.choice(_SEGMENT_OPS)]
    inside = set(segment)
    rest = [op for op in order if op not in inside]
    position = {op: i for i, op in enumerate(rest)}
    low = max(
        (position[p] + 1 for op in segment for p in problem.predecessors[op] if p not in inside),
        default=0,
    )
    high = min(
        (position[s] for op in segment for s in after[op] if s not in inside),
        default=len(rest),
    )
    if low > high:
        return None
    at = rng.randint(low, high)
    candidate = rest[:at] + segment + rest[at:]
    return None if candidate == order else candidate


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
    tried = attempts = 0
    while tried < evaluations and attempts < 20 * evaluations and len(order) > 1:
        attempts += 1
        candidate = _moved_segment(problem, after, order, rng)
        if candidate is None:
            continue
        tried += 1
        peak = peak_live_bytes(problem, candidate)
        if peak <= best:
            best, order = peak, candidate
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
    (equal-cost moves are kept so the search can cross plateaus). It is how the divide and
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
    best = best_heuristic_plan(problem, tuple(order))
    if isinstance(best, str):
        return best
    after = successors(problem)
    rng = random.Random(seed)
    tried = 0
    attempts = 0
    # a segment with no legal new place is skipped; bound the attempts so a chain graph ends
    while tried < evaluations and attempts < 20 * evaluations and len(order) > 1:
        attempts += 1
        if best.traffic.non_compulsory_bytes <= stop_at_bytes:
            break
        candidate = _moved_segment(problem, after, order, rng)
        if candidate is None:
            continue
        tried += 1
        plan = best_heuristic_plan(problem, tuple(candidate))
        if isinstance(plan, MemoryPlan) and (
            plan.traffic.non_compulsory_bytes <= best.traffic.non_compulsory_bytes
        ):
            best, order = plan, candidate
    stats = SolverStats(
        method="order_search",
        solver="none",
        status="heuristic",
        solve_time_s=time.perf_counter() - started,
        order_evaluations=tried,
    )
    return dataclasses.replace(best, stats=stats)
