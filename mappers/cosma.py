"""COSMA-style MILP: op order, scratchpad addresses and tensor replacement chosen together.

Formulation (after Li et al., "COSMA", 2023, Section 4; written here from the problem statement in
:mod:`archsim.mappers.memory_plan`), over a window of ``n`` ops and local steps ``t = 0..n-1``:

* ``x[v, t]``: op ``v`` runs at step ``t``; one op per step, each op once, and an op only within
  its ASAP..ALAP range of the window's dependency graph (which prunes most variables);
  dependencies as ``sum_t t x[u, t] + 1 <= sum_t t x[v, t]``.
* ``r[i, t]``: tensor ``i`` resident during step ``t``; forced by every op that uses it
  (``r[i, t] >= x[v, t]``); an intermediate not before its producer ran.
* ``l[i, t] >= r[i, t] - r[i, t-1] - x[producer(i), t]``: a residency that begins other than by
  being produced is a load from off-chip memory.
* ``s[i] >= l[i, t]``: an intermediate reloaded anywhere was spilled once (graph outputs are
  stored anyway); one that leaves the window evicted while needed later is spilled as well.
* ``sum_i size_i r[i, t] <= capacity``.
* ``a[i]``: the tensor's offset (one per tensor per window); for every pair of tensors that can
  be resident at the same step, ``y[i, j] >= r[i, t] + r[j, t] - 1`` and a big-M disjunction on
  ``o[i, j]`` puts one range below the other whenever ``y[i, j] = 1``.

Objective: bytes loaded plus bytes spilled; the first load of a weight or input is a constant of
it. The solver gets the heuristic plan as warm start, a time limit and a relative gap. Graphs
with more ops than ``max_ilp_ops`` are cut into windows of at most that many ops at the cut
points crossed by the fewest live bytes (after an order search that fixes which ops share a
window); each window is one MILP that inherits the previous window's residents (with their
addresses) and hands on its own, in two passes with staggered cuts (divide and conquer). A lower
bound on unavoidable traffic proves plans optimal and stops the search early; windows before the
starting plan's first non-compulsory transfer keep that plan's steps, and a pass that already
moves more than its start is abandoned.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import pulp

from archsim.mappers.heuristics import (
    best_heuristic_plan,
    min_peak_order,
    plan_greedy_by_size,
    search_order,
)
from archsim.mappers.memory_plan import (
    ALIGN_BYTES,
    Allocation,
    MemoryPlan,
    MemoryProblem,
    SolverStats,
    lower_bound_bytes,
    make_plan,
    plan_traffic,
)

logger = logging.getLogger(__name__)

# Offsets are continuous in the MILP (in lines of ALIGN_BYTES); rounding them can leave two
# neighbours a line apart or overlapping by one, which `_legalize` repairs.
_PAD_LINES = 0


def solver_name() -> str:
    """``highs`` when highspy is importable, otherwise ``cbc`` (shipped with PuLP)."""
    try:
        import highspy  # noqa: F401
    except ImportError:
        return "cbc"
    return "highs"


def _solver(
    time_limit_s: float, gap_rel: float, warm: bool, max_nodes: int | None
) -> pulp.LpSolver:
    """The MILP solver. CBC stops at ``max_nodes`` branch-and-bound nodes, a budget of work that,
    unlike the time limit, gives the same answer on a loaded machine; the time limit stays as a
    guard. PuLP's HiGHS interface takes no warm start, and HiGHS reports no status for a node
    limit, so HiGHS runs to the gap or the time limit."""
    if solver_name() == "highs":
        return pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=gap_rel)
    return pulp.PULP_CBC_CMD(
        msg=False, timeLimit=time_limit_s, gapRel=gap_rel, warmStart=warm, maxNodes=max_nodes
    )


@dataclass
class _Carried:
    """A tensor resident at a window boundary: its byte offset and the open interval's start."""

    offset_bytes: int
    start_step: int
    loaded: bool


@dataclass
class _State:
    """What one window hands to the next."""

    resident: dict[str, _Carried] = field(default_factory=dict)
    loaded_once: set[str] = field(default_factory=set)  # weights/inputs loaded at least once
    spilled: set[str] = field(default_factory=set)  # intermediates already in off-chip memory


@dataclass
class _WindowResult:
    order: list[str]
    allocations: list[Allocation]
    status: str
    gap_rel: float
    variables: int
    constraints: int


def _window_ranges(window: list[str], problem: MemoryProblem) -> dict[str, tuple[int, int]]:
    """ASAP and ALAP step of each op within the window's own dependency graph."""
    inside = set(window)
    n = len(window)
    asap: dict[str, int] = {}
    for op in window:  # window is topologically ordered
        preds = [p for p in problem.predecessors[op] if p in inside]
        asap[op] = max((asap[p] + 1 for p in preds), default=0)
    succs: dict[str, list[str]] = defaultdict(list)
    for op in window:
        for p in problem.predecessors[op]:
            if p in inside:
                succs[p].append(op)
    to_end: dict[str, int] = {}
    for op in reversed(window):
        to_end[op] = max((to_end[s] + 1 for s in succs[op]), default=0)
    return {op: (asap[op], n - 1 - to_end[op]) for op in window}


def _solve_window(
    problem: MemoryProblem,
    window: list[str],
    first_step: int,
    later_ops: set[str],
    state: _State,
    warm: MemoryPlan | None,
    time_limit_s: float,
    gap_rel: float,
    max_nodes: int | None,
) -> _WindowResult | str:
    n = len(window)
    line = ALIGN_BYTES
    cap = problem.capacity_bytes // line
    ranges = _window_ranges(window, problem)
    step_ops: dict[int, list[str]] = defaultdict(list)
    for op, (lo, hi) in ranges.items():
        for t in range(lo, hi + 1):
            step_ops[t].append(op)

    # every tensor the window touches or inherits, with the local steps it may be resident in
    touched: dict[str, list[str]] = defaultdict(list)
    for op in window:
        for name in problem.op_tensors[op]:
            touched[name].append(op)
    names = list(dict.fromkeys([*touched, *state.resident]))
    span: dict[str, tuple[int, int]] = {}
    live_out: set[str] = set()
    for name in names:
        t = problem.tensors[name]
        if any(c in later_ops for c in t.consumers):
            live_out.add(name)
        users = touched.get(name, [])
        produced_here = t.producer in ranges
        start = ranges[t.producer][0] if produced_here else 0
        if name not in state.resident and not produced_here:
            start = min(ranges[u][0] for u in users)
        end = n - 1 if name in live_out else max((ranges[u][1] for u in users), default=-1)
        if end < start:  # inherited but dead: freed at the window's start
            continue
        span[name] = (start, end)

    prob = pulp.LpProblem("cosma_window", pulp.LpMinimize)
    x = {
        (v, t): pulp.LpVariable(f"x_{i}_{t}", cat="Binary")
        for i, v in enumerate(window)
        for t in range(ranges[v][0], ranges[v][1] + 1)
    }
    index = {name: i for i, name in enumerate(span)}
    r = {
        (name, t): pulp.LpVariable(f"r_{index[name]}_{t}", cat="Binary")
        for name, (lo, hi) in span.items()
        for t in range(lo, hi + 1)
    }
    load = {
        (name, t): pulp.LpVariable(f"l_{index[name]}_{t}", lowBound=0, upBound=1) for (name, t) in r
    }
    size = {name: problem.tensors[name].size_bytes // line for name in span}
    # an inherited resident either stays where it is (kept = 1) or leaves at the boundary, to be
    # reloaded elsewhere if the window needs it (a reload; it unblocks a fragmented layout)
    kept = {
        name: pulp.LpVariable(f"k_{index[name]}", cat="Binary")
        for name in span
        if name in state.resident
    }
    objective = []
    spill: dict[str, pulp.LpVariable] = {}
    for name in span:
        t = problem.tensors[name]
        objective += [size[name] * load[name, s] for s in range(span[name][0], span[name][1] + 1)]
        if t.role == "intermediate" and not t.is_output and name not in state.spilled:
            spill[name] = pulp.LpVariable(f"s_{index[name]}", lowBound=0, upBound=1)
            objective.append(size[name] * spill[name])
    prob += pulp.lpSum(objective)

    time_of = {
        v: pulp.lpSum(t * x[v, t] for t in range(ranges[v][0], ranges[v][1] + 1)) for v in window
    }
    for v in window:
        prob += pulp.lpSum(x[v, t] for t in range(ranges[v][0], ranges[v][1] + 1)) == 1
    for t in range(n):
        prob += pulp.lpSum(x[v, t] for v in step_ops[t]) == 1
    for v in window:
        for p in problem.predecessors[v]:
            if p in ranges:
                prob += time_of[p] + 1 <= time_of[v]
    for v in window:
        for name in problem.op_tensors[v]:
            for t in range(ranges[v][0], ranges[v][1] + 1):
                prob += r[name, t] >= x[v, t]
    for name, (lo, hi) in span.items():
        t_info = problem.tensors[name]
        producer = t_info.producer if t_info.producer in ranges else None
        before = kept.get(name, 0)
        for s in range(lo, hi + 1):
            prev = r[name, s - 1] if s > lo else before
            made = x[producer, s] if producer and (producer, s) in x else 0
            prob += load[name, s] >= r[name, s] - prev - made
            if producer:
                prob += r[name, s] <= pulp.lpSum(
                    x[producer, q]
                    for q in range(ranges[producer][0], min(s, ranges[producer][1]) + 1)
                )
            if name in spill:
                prob += spill[name] >= load[name, s]
        if name in spill and name in live_out:
            prob += spill[name] >= 1 - r[name, hi]
    for t in range(n):
        resident_terms = [size[name] * r[name, t] for name in span if (name, t) in r]
        if resident_terms:
            prob += pulp.lpSum(resident_terms) <= cap

    # addresses: one offset per tensor in this window; inherited residents keep theirs
    addr: dict[str, pulp.LpVariable | float] = {}
    for name in span:
        upper = cap - size[name] - _PAD_LINES
        addr[name] = pulp.LpVariable(f"a_{index[name]}", lowBound=0, upBound=max(upper, 0))
        if name in state.resident:
            # an inherited resident keeps its offset while it stays; once evicted, a reload may
            # put it anywhere
            offset = state.resident[name].offset_bytes / line
            prob += kept[name] <= r[name, 0]
            prob += addr[name] - offset <= cap * (1 - kept[name])
            prob += offset - addr[name] <= cap * (1 - kept[name])
    listed = list(span)
    pair_count = 0
    for i, first in enumerate(listed):
        lo_i, hi_i = span[first]
        for second in listed[i + 1 :]:
            lo_j, hi_j = span[second]
            common = range(max(lo_i, lo_j), min(hi_i, hi_j) + 1)
            if not common:
                continue
            pair_count += 1
            y = pulp.LpVariable(f"y_{index[first]}_{index[second]}", lowBound=0, upBound=1)
            below = pulp.LpVariable(f"o_{index[first]}_{index[second]}", cat="Binary")
            for s in common:
                prob += y >= r[first, s] + r[second, s] - 1
            big = cap
            prob += addr[first] + size[first] + _PAD_LINES <= addr[second] + big * (
                1 - below
            ) + big * (1 - y)
            prob += addr[second] + size[second] + _PAD_LINES <= addr[first] + big * below + big * (
                1 - y
            )

    if warm is not None:
        _set_warm_start(warm, window, first_step, x, r, load, spill, span)
    prob.solve(_solver(time_limit_s, gap_rel, warm is not None, max_nodes))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return (
            f"MILP found no plan ({pulp.LpStatus[prob.status]}) for ops {window[0]}..{window[-1]}"
        )
    status = "optimal" if prob.sol_status == pulp.LpSolutionOptimal else "time_limit"
    gap = 0.0 if status == "optimal" else _solver_gap(prob)

    step_of = {v: first_step + round(pulp.value(time_of[v])) for v in window}
    order = sorted(window, key=lambda v: step_of[v])
    allocations: list[Allocation] = []
    new_resident: dict[str, _Carried] = {}
    for name, (lo, hi) in span.items():
        offset_bytes = round(pulp.value(addr[name])) * line
        t_info = problem.tensors[name]
        made_at = step_of.get(t_info.producer) if t_info.producer in ranges else None
        run_start: int | None = None
        carried = state.resident.get(name)
        for s in range(lo, hi + 2):
            on = s <= hi and pulp.value(r[name, s]) > 0.5
            if on and run_start is None:
                run_start = s
            if not on and run_start is not None:
                start_global, end_global = first_step + run_start, first_step + s - 1
                loaded = made_at != start_global
                if carried is not None and run_start == 0 and pulp.value(kept[name]) > 0.5:
                    start_global, loaded = carried.start_step, carried.loaded
                    offset_bytes = carried.offset_bytes
                    carried = None
                elif offset_bytes != round(pulp.value(addr[name])) * line:
                    offset_bytes = round(pulp.value(addr[name])) * line
                if s - 1 == n - 1 and name in live_out:
                    new_resident[name] = _Carried(offset_bytes, start_global, loaded)
                else:
                    allocations.append(
                        Allocation(
                            name, start_global, end_global, offset_bytes, size[name] * line, loaded
                        )
                    )
                run_start = None
        if carried is not None:  # inherited, evicted before the window's first step
            allocations.append(
                Allocation(
                    name,
                    carried.start_step,
                    first_step - 1,
                    carried.offset_bytes,
                    size[name] * line,
                    carried.loaded,
                )
            )
            if t_info.role == "intermediate" and name in live_out and not t_info.is_output:
                state.spilled.add(name)
        if name in spill and pulp.value(spill[name]) > 0.5:
            state.spilled.add(name)
    # inherited residents the window did not keep (dead ones) end just before it
    for name, carried in state.resident.items():
        if name not in span:
            allocations.append(
                Allocation(
                    name,
                    carried.start_step,
                    first_step - 1,
                    carried.offset_bytes,
                    problem.tensors[name].size_bytes,
                    carried.loaded,
                )
            )
    state.resident = new_resident
    return _WindowResult(
        order=order,
        allocations=allocations,
        status=status,
        gap_rel=gap,
        variables=prob.numVariables(),
        constraints=prob.numConstraints(),
    )


def _legalize(allocations: list[Allocation], capacity_bytes: int) -> list[Allocation] | None:
    """Snap rounded offsets so that allocations resident at the same step are disjoint.

    Allocations are placed bottom-up in the MILP's address order, each at its own offset or just
    above the highest allocation placed so far that shares a step with it. Returns None if that
    pushes one past the capacity.
    """
    placed: list[Allocation] = []
    for a in sorted(allocations, key=lambda a: (a.offset_bytes, a.start_step)):
        floor = a.offset_bytes
        for b in placed:
            if b.start_step <= a.end_step and a.start_step <= b.end_step:
                floor = max(floor, b.offset_bytes + b.size_bytes)
        if floor + a.size_bytes > capacity_bytes:
            return None
        placed.append(Allocation(a.tensor, a.start_step, a.end_step, floor, a.size_bytes, a.loaded))
    return placed


def _solver_gap(prob: pulp.LpProblem) -> float:
    """Relative gap the solver proved, where the solver reports it (HiGHS); NaN otherwise."""
    model = getattr(prob, "solverModel", None)
    if model is not None and hasattr(model, "getInfo"):
        return float(model.getInfo().mip_gap)
    return math.nan


def _set_warm_start(warm, window, first_step, x, r, load, spill, span) -> None:
    """Initial values from a plan (used for whole-graph MILPs, where steps coincide)."""
    step = {op: s - first_step for s, op in enumerate(warm.order) if op in set(window)}
    for (v, t), var in x.items():
        var.setInitialValue(1 if step.get(v) == t else 0)
    on: set[tuple[str, int]] = set()
    starts: set[tuple[str, int]] = set()
    for a in warm.allocations:
        for s in range(a.start_step, a.end_step + 1):
            on.add((a.tensor, s - first_step))
        if a.loaded:
            starts.add((a.tensor, a.start_step - first_step))
    for key, var in r.items():
        var.setInitialValue(1 if key in on else 0)
    for key, var in load.items():
        var.setInitialValue(1 if key in starts else 0)
    reloaded = {name for name, _ in starts}
    for name, var in spill.items():
        var.setInitialValue(1 if name in reloaded else 0)


def _cut_positions(windows: list[list[str]]) -> set[int]:
    """Positions in the order where ``windows`` are cut."""
    return set(itertools.accumulate(len(w) for w in windows[:-1]))


def _windows(
    problem: MemoryProblem, order: list[str], max_ops: int, avoid: set[int] | None = None
) -> list[list[str]]:
    """Cut ``order`` into windows of at most ``max_ops`` ops so that the live bytes crossing all
    cuts together are fewest (dynamic programming over cut positions, not one cut at a time):
    what crosses a cut is planned by one window without seeing the next. Positions in ``avoid``
    are not cut (a second pass cuts elsewhere)."""
    n = len(order)
    if n <= max_ops:
        return [order]
    position = {op: i for i, op in enumerate(order)}
    crossing = [0] * (n + 1)  # bytes live across the cut before position i
    for t in problem.tensors.values():
        users = [position[c] for c in t.consumers]
        if t.producer is not None:
            users.append(position[t.producer])
        if len(users) < 2:
            continue
        for cut in range(min(users) + 1, max(users) + 1):
            crossing[cut] += t.size_bytes
    fewest_windows = -(-n // max_ops)
    # cost[i]: (crossing bytes, windows) of the best cutting of order[:i]; ties take fewer windows
    cost: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * n
    back = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - max_ops), end):
            if cost[start][0] == math.inf or (avoid and start in avoid):
                continue
            candidate = (cost[start][0] + (crossing[start] if start else 0), cost[start][1] + 1)
            if candidate < cost[end]:
                cost[end], back[end] = candidate, start
    if cost[n][0] == math.inf:  # every way of cutting meets an avoided position
        return _windows(problem, order, max_ops)
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(back[cuts[-1]])
    cuts.reverse()
    windows = [order[a:b] for a, b in itertools.pairwise(cuts)]
    assert len(windows) >= fewest_windows
    return windows


def cosma_plan(
    problem: MemoryProblem,
    *,
    time_limit_s: float = 10.0,
    gap_rel: float = 0.01,
    max_ilp_ops: int = 16,
    max_nodes: int | None = 2000,
    order_evaluations: int = 2000,
    seed: int = 0,
) -> MemoryPlan | str:
    """Plan order, addresses and replacement by MILP; big graphs by divide and conquer.

    The start is the best of the baselines' plans: first fit with LRU or Belady on the graph
    order, and Belady with TensorFlow Lite's offsets
    (:func:`~archsim.mappers.heuristics.plan_greedy_by_size`) on the graph order and, for a big
    graph, on the minimum-peak-memory order. A graph of at most ``max_ilp_ops`` ops is one MILP,
    warm-started from it. A bigger graph is divided and conquered:

    1. schedule: :func:`~archsim.mappers.heuristics.search_order` searches op orders, each
       planned by LRU/Belady, for the one moving the fewest bytes (on NAS cells the order decides
       how many branch outputs are live at once), once from the graph order and once from the
       minimum-peak-memory order, unless the start already meets the lower bound;
    2. divide: that order is cut into windows of at most ``max_ilp_ops`` ops where the fewest
       live bytes cross the cuts (dynamic programming over all cuts);
    3. conquer: each window is one MILP that reorders its own ops, allocates and replaces, and
       inherits the scratchpad as the previous window left it (residents with their addresses,
       what was already spilled); a second pass cuts inside the first pass's windows (what one
       window could not see across its cut, another sees whole); the result is the best of the
       stitched MILP plans and the start. Windows that end before the start's first
       non-compulsory transfer keep the start's steps (it moves nothing there, the least a MILP
       can reach), and a pass stops once its windows move more than the start does.

    A plan that meets :func:`~archsim.mappers.memory_plan.lower_bound_bytes` is returned as
    optimal at once, without (further) MILPs.

    Parameters
    ----------
    problem:
        The graph's memory problem.
    time_limit_s:
        Solver time limit per MILP, in seconds (a guard; ``max_nodes`` is the budget).
    gap_rel:
        Relative optimality gap at which the solver stops.
    max_ilp_ops:
        Largest window solved as one MILP.
    max_nodes:
        Branch-and-bound nodes per MILP (CBC): a budget of work that gives the same plan however
        loaded the machine is. None: only the time limit stops the solver.
    order_evaluations, seed:
        Budget (per start) and seed of the order search (divide and conquer only).

    Returns
    -------
    MemoryPlan | str
        The plan (never worse than LRU or Belady on the graph order), or why no plan exists.
    """
    started = time.perf_counter()
    reason = problem.infeasible_reason()
    if reason is not None:
        return reason
    heuristic = best_heuristic_plan(problem, problem.ops)
    warm = heuristic if isinstance(heuristic, MemoryPlan) else None
    if warm is not None and warm.traffic.non_compulsory_bytes == 0:
        # nothing to improve: no schedule moves fewer than the compulsory bytes
        done = dataclasses.replace(warm.stats, status="optimal", gap_rel=0.0)
        return dataclasses.replace(warm, stats=done)
    bound = lower_bound_bytes(problem)

    def proven(plan: MemoryPlan | None) -> bool:
        return plan is not None and plan.traffic.non_compulsory_bytes <= bound

    searched_evaluations = 0
    order = list(problem.ops)
    starts = [problem.ops]
    if len(problem.ops) > max_ilp_ops:
        starts.append(min_peak_order(problem, evaluations=order_evaluations, seed=seed))

    def offer(plan: MemoryPlan | str) -> None:
        nonlocal warm, order
        if isinstance(plan, MemoryPlan) and (
            warm is None or plan.traffic.non_compulsory_bytes < warm.traffic.non_compulsory_bytes
        ):
            warm, order = plan, list(plan.order)

    # the baselines' own planner (replacement counted in bytes, then TensorFlow Lite's offline
    # offsets) often beats first-fit's plans: the search and the MILPs start from the better one,
    # so the result never moves more than a baseline on these orders
    for start in starts:
        offer(plan_greedy_by_size(problem, start, "belady"))
    if len(problem.ops) > max_ilp_ops and not proven(warm):
        # the local search ends in local optima: start it from the graph order and from the
        # minimum-peak-memory order, keep the better result
        for start in starts:
            searched = search_order(
                problem, start, evaluations=order_evaluations, seed=seed, stop_at_bytes=bound
            )
            if not isinstance(searched, MemoryPlan):
                continue
            searched_evaluations += searched.stats.order_evaluations
            offer(searched)
            offer(plan_greedy_by_size(problem, searched.order, "belady"))
            if proven(warm):
                break
    windows = _windows(problem, order, max_ilp_ops)
    method = "ilp" if len(windows) == 1 else "divide_conquer"
    solved = variables = constraints = 0

    def finish(plan: MemoryPlan, status: str, gap: float) -> MemoryPlan:
        stats = SolverStats(
            method=method,
            solver=solver_name(),
            status=status,
            solve_time_s=time.perf_counter() - started,
            gap_rel=gap,
            variables=variables,
            constraints=constraints,
            subproblems=solved,
            order_evaluations=searched_evaluations,
            lower_bound_bytes=bound,
        )
        return dataclasses.replace(plan, stats=stats)

    if proven(warm):
        # the heuristic plan meets the lower bound: optimal, no MILP needed
        return finish(warm, "optimal", 0.0)
    passes = [windows]
    if len(windows) > 1:
        # a second pass whose cuts fall inside the first pass's windows, so that what one
        # window could not see across its cut, another window sees whole
        shifted = _windows(problem, order, max_ilp_ops, avoid=_cut_positions(windows))
        if shifted != windows:
            passes.append(shifted)
    best: _Conquered | None = None
    failure = ""
    for cuts in passes:
        conquered = _conquer(
            problem,
            cuts,
            warm if len(cuts) == 1 else None,
            time_limit_s,
            gap_rel,
            max_nodes,
            start=warm,
        )
        if isinstance(conquered, _Failed):
            solved += conquered.solved
            logger.info("cosma: %s", conquered.reason)
            failure = conquered.reason
            continue
        solved += conquered.solved
        variables += conquered.variables
        constraints += conquered.constraints
        if best is None or (
            conquered.plan.traffic.non_compulsory_bytes < best.plan.traffic.non_compulsory_bytes
        ):
            best = conquered
        if proven(best.plan):
            break
    if best is None:
        if warm is not None:
            return finish(warm, "warm_start", math.nan)
        return failure
    status = "optimal" if proven(best.plan) else best.status
    gap = 0.0 if proven(best.plan) else best.gap_rel
    if (
        warm is not None
        and warm.traffic.non_compulsory_bytes < best.plan.traffic.non_compulsory_bytes
    ):
        # the MILP did not improve on its start (a node or time limit, or window cuts that the
        # heuristic's whole-graph view handles better): keep the start, say so
        return finish(warm, "warm_start", gap)
    return finish(best.plan, status, gap)


@dataclass
class _Conquered:
    plan: MemoryPlan
    status: str
    gap_rel: float
    variables: int
    constraints: int
    solved: int


@dataclass
class _Failed:
    """Why a pass of windows gave no plan, and how many MILPs it solved before."""

    reason: str
    solved: int


def _conquer(
    problem: MemoryProblem,
    windows: list[list[str]],
    warm: MemoryPlan | None,
    time_limit_s: float,
    gap_rel: float,
    max_nodes: int | None,
    start: MemoryPlan | None = None,
) -> _Conquered | _Failed:
    """Solve ``windows`` one after another, each inheriting the scratchpad the previous left.

    ``start`` is a plan of the same op order: the windows before its first step with any
    non-compulsory traffic keep its steps instead of being solved (it already moves nothing
    there, the least a window's MILP can reach), and the first solved window inherits its
    scratchpad."""
    state = _State()
    steps: list[str] = []
    allocations: list[Allocation] = []
    statuses: list[str] = []
    gaps: list[float] = []
    variables = constraints = solved = 0
    done: set[str] = set()
    skipped = _clean_prefix_windows(start, windows)
    if skipped:
        boundary = sum(len(w) for w in windows[:skipped])
        assert start is not None
        steps, allocations, state = _state_at(problem, start, boundary)
        for window in windows[:skipped]:
            done |= set(window)
    for window in windows[skipped:]:
        done |= set(window)
        later = set(problem.ops) - done
        result = _solve_window(
            problem, window, len(steps), later, state, warm, time_limit_s, gap_rel, max_nodes
        )
        if isinstance(result, str):
            return _Failed(result, solved + 1)
        solved += 1
        steps += result.order
        allocations += result.allocations
        statuses.append(result.status)
        gaps.append(result.gap_rel)
        variables += result.variables
        constraints += result.constraints
        if start is not None:
            # traffic only accumulates from window to window: a pass that already moves more
            # than its start cannot end better than it, so the remaining windows are not solved
            so_far = allocations + [
                Allocation(name, c.start_step, len(steps) - 1, c.offset_bytes, 0, c.loaded)
                for name, c in state.resident.items()
            ]
            moved = plan_traffic(problem, tuple(so_far)).non_compulsory_bytes
            if moved > start.traffic.non_compulsory_bytes:
                return _Failed(
                    f"the windows up to step {len(steps) - 1} already move {moved:.0f} B, more "
                    f"than the {start.traffic.non_compulsory_bytes:.0f} B of their start",
                    solved,
                )
    legal = _legalize(allocations, problem.capacity_bytes)
    if legal is None:
        return _Failed("MILP offsets do not fit after rounding", solved)
    status = "optimal" if all(s == "optimal" for s in statuses) else "time_limit"
    gap = math.nan if any(math.isnan(g) for g in gaps) else max(gaps, default=math.nan)
    plan = make_plan(problem, tuple(steps), legal, SolverStats("divide_conquer", "", status, 0.0))
    return _Conquered(plan, status, gap, variables, constraints, solved)


def _clean_prefix_windows(start: MemoryPlan | None, windows: list[list[str]]) -> int:
    """How many leading windows ``start`` (a plan of the windows' order) crosses with no
    non-compulsory traffic charged to any of their steps."""
    if start is None or list(start.order) != [op for w in windows for op in w]:
        return 0
    charged = [
        r + s for r, s in zip(start.reload_bytes_by_step, start.spill_bytes_by_step, strict=True)
    ]
    first_charged = next((i for i, b in enumerate(charged) if b > 0), len(charged))
    count = end = 0
    for window in windows[:-1]:  # the last window is left to the MILP in any case
        end += len(window)
        if end > first_charged:
            break
        count += 1
    return count


def _state_at(
    problem: MemoryProblem, plan: MemoryPlan, boundary: int
) -> tuple[list[str], list[Allocation], _State]:
    """``plan``'s steps before ``boundary``, its intervals that end before it, and the scratchpad
    it hands on there: residents with their offsets, and the intermediates already spilled
    (evicted before the boundary while still needed after it)."""
    steps = list(plan.order[:boundary])
    step_of = {op: i for i, op in enumerate(plan.order)}
    state = _State()
    closed: list[Allocation] = []
    for a in plan.allocations:
        if a.start_step >= boundary:
            continue
        if a.end_step >= boundary:
            state.resident[a.tensor] = _Carried(a.offset_bytes, a.start_step, a.loaded)
            continue
        closed.append(a)
        t = problem.tensors[a.tensor]
        if t.role != "intermediate":
            state.loaded_once.add(a.tensor)
        elif not t.is_output and any(step_of[c] >= boundary for c in t.consumers):
            state.spilled.add(a.tensor)
    for name in state.resident:
        if problem.tensors[name].role != "intermediate":
            state.loaded_once.add(name)
    return steps, closed, state
