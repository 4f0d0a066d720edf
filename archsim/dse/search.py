"""Search strategies over a design space: the whole grid, random samples, or NSGA-II.

Search is separate from evaluation: a strategy proposes design points and reads back their result
rows through an ``evaluate`` callable (the executor), so every strategy runs on every executor and
through the resumable point log alike.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from archsim.config.search import ConstraintConfig, SearchConfig
from archsim.dse.space import DesignPoint, DesignSpace

Rows = list[dict[str, Any]]
Evaluate = Callable[[list[DesignPoint]], Rows]
Combo = tuple[int, ...]

# Children redrawn this many times when they repeat an evaluated design, before giving up on them
MAX_CHILD_RETRIES = 32


def constraint_violation(rows: Sequence[dict[str, Any]], constraints: Sequence[ConstraintConfig]):
    """Per row: 0 when every constraint is met, else the summed relative excess; inf if infeasible.

    Relative excess (``value / max - 1``) puts limits of different units on one scale, as in
    Deb's constrained NSGA-II.
    """
    violation = np.zeros(len(rows))
    for i, row in enumerate(rows):
        if not row.get("feasible", False):
            violation[i] = np.inf
            continue
        for constraint in constraints:
            value = float(row[constraint.column])
            if constraint.max is not None and value > constraint.max:
                violation[i] += (value - constraint.max) / max(constraint.max, 1e-300)
            if constraint.min is not None and value < constraint.min:
                violation[i] += (constraint.min - value) / max(constraint.min, 1e-300)
    return violation


def objective_matrix(rows: Sequence[dict[str, Any]], search: SearchConfig) -> np.ndarray:
    """Objectives of ``rows`` as a minimisation matrix (maximised ones negated; NaN -> inf)."""
    columns, maximize = search.objective_columns()
    values = np.array([[float(row[c]) for c in columns] for row in rows], dtype=float)
    values = values.reshape(len(rows), len(columns))
    for j, column in enumerate(columns):
        if column in maximize:
            values[:, j] = -values[:, j]
    return np.where(np.isnan(values), np.inf, values)


def nondominated_ranks(values: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Front number of each row (0 = best) under constrained domination (Deb et al. 2002).

    ``a`` dominates ``b`` when ``a`` meets the constraints and ``b`` does not, when both miss them
    and ``a`` by less, or when both meet them and ``a`` is no worse in every objective and better
    in one.
    """
    n = len(values)
    ok = violation == 0
    no_worse = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    better = np.any(values[:, None, :] < values[None, :, :], axis=2)
    pareto = no_worse & better & ok[:, None] & ok[None, :]
    by_feasibility = ok[:, None] & ~ok[None, :]
    by_violation = ~ok[:, None] & ~ok[None, :] & (violation[:, None] < violation[None, :])
    dominates = pareto | by_feasibility | by_violation  # [a, b]: a dominates b
    ranks = np.full(n, -1)
    dominated_by = dominates.sum(axis=0)
    rank = 0
    current = np.flatnonzero(dominated_by == 0)
    while len(current):
        ranks[current] = rank
        dominated_by = dominated_by - dominates[current].sum(axis=0)
        dominated_by[ranks >= 0] = -1
        current = np.flatnonzero(dominated_by == 0)
        rank += 1
    return ranks


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front (ends of each objective: inf)."""
    n, d = values.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(d):
        order = np.argsort(values[:, j], kind="stable")
        column = values[order, j]
        span = column[-1] - column[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0 and np.isfinite(span):
            distance[order[1:-1]] += (column[2:] - column[:-2]) / span
    return distance


def _survivors(values: np.ndarray, violation: np.ndarray, keep: int) -> tuple[np.ndarray, ...]:
    """Indices of the ``keep`` best rows by (rank, crowding), with their ranks and crowding."""
    ranks = nondominated_ranks(values, violation)
    crowding = np.zeros(len(values))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(values[members])
    order = np.lexsort((-crowding, ranks))[:keep]
    return order, ranks[order], crowding[order]


class _Evaluator:
    """Numbers points in proposal order and remembers every evaluated combination."""

    def __init__(self, space: DesignSpace, evaluate: Evaluate):
        self.space = space
        self.evaluate = evaluate
        self.combos: list[Combo] = []
        self.rows: Rows = []
        self.seen: set[Combo] = set()

    def run(self, combos: Sequence[Combo]) -> Rows:
        start = len(self.combos)
        points = [self.space.point(start + i, combo) for i, combo in enumerate(combos)]
        rows = self.evaluate(points)
        self.combos += list(combos)
        self.seen.update(combos)
        self.rows += rows
        return rows


def run_search(
    space: DesignSpace, search: SearchConfig, evaluate: Evaluate
) -> tuple[list[Combo], Rows]:
    """Explore ``space`` with ``search``'s strategy; every evaluated combination and its row.

    Rows are in proposal order and numbered by it (``point``), so the same inputs and seed give
    the same points in the same order, on any executor.
    """
    evaluator = _Evaluator(space, evaluate)
    size = space.size
    if search.strategy == "grid":
        evaluator.run(list(itertools.product(*[range(n) for n in space.lengths])))
    elif search.strategy == "random":
        budget = min(search.budget or size, size)
        # random.Random.sample draws from a range without materialising it, so huge spaces work
        flats = random.Random(search.seed).sample(range(size), budget)
        evaluator.run([space.combo(flat) for flat in flats])
    else:
        _nsga2(space, search, evaluator)
    return evaluator.combos, evaluator.rows


def _tournament(
    rng: np.random.Generator,
    population: list[int],
    ranks: np.ndarray,
    crowding: np.ndarray,
    combos: list[Combo],
) -> Combo:
    """Binary tournament: the better of two random members by (rank, crowding)."""
    a, b = (int(i) for i in rng.integers(len(population), size=2))
    better = a if (ranks[a], -crowding[a]) <= (ranks[b], -crowding[b]) else b
    return combos[population[better]]


def _nsga2(space: DesignSpace, search: SearchConfig, evaluator: _Evaluator) -> None:
    """NSGA-II (Deb et al., IEEE TEC 2002) over the discrete axes of ``space``.

    Binary tournaments on (rank, crowding) pick parents; uniform crossover and per-gene redraws
    make children; parents and children compete for the next population. Children that repeat an
    evaluated design are redrawn, so the budget buys distinct designs.
    """
    rng = np.random.default_rng(search.seed)
    lengths = space.lengths
    budget = min(search.budget or space.size, space.size)
    first = min(search.population, budget)
    flats = random.Random(search.seed).sample(range(space.size), first)
    evaluator.run([space.combo(flat) for flat in flats])
    population = list(range(len(evaluator.combos)))
    while len(evaluator.combos) < budget:
        rows = [evaluator.rows[i] for i in population]
        # best first: ranks and crowding then line up with the reordered population
        order, ranks, crowding = _survivors(
            objective_matrix(rows, search),
            constraint_violation(rows, search.constraints),
            len(population),
        )
        population = [population[i] for i in order]
        wanted = min(search.population, budget - len(evaluator.combos))
        children: list[Combo] = []
        pending: set[Combo] = set()
        for _ in range(wanted * MAX_CHILD_RETRIES):
            if len(children) == wanted:
                break
            mother = _tournament(rng, population, ranks, crowding, evaluator.combos)
            father = _tournament(rng, population, ranks, crowding, evaluator.combos)
            genes = [m if rng.random() < 0.5 else f for m, f in zip(mother, father, strict=True)]
            for j, length in enumerate(lengths):
                if rng.random() < search.mutation:
                    genes[j] = int(rng.integers(length))
            child = tuple(int(g) for g in genes)
            if child not in evaluator.seen and child not in pending:
                children.append(child)
                pending.add(child)
        if not children:
            # the neighbourhood of the population is exhausted: spend the rest on new samples
            unseen = (c for c in itertools.product(*[range(n) for n in lengths]))
            children = [c for c in unseen if c not in evaluator.seen][:wanted]
            if not children:
                break
        start = len(evaluator.combos)
        evaluator.run(children)
        candidates = population + list(range(start, len(evaluator.combos)))
        rows = [evaluator.rows[i] for i in candidates]
        order, _, _ = _survivors(
            objective_matrix(rows, search),
            constraint_violation(rows, search.constraints),
            search.population,
        )
        population = [candidates[i] for i in order]
