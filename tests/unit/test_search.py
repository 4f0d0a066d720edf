"""Search strategies, constrained ranking, hypervolume and knee, and the ``search:`` block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archsim.config import load_machine, load_workload, machine_from_text
from archsim.config.search import SearchConfig
from archsim.dse.pareto import hypervolume, knee_index
from archsim.dse.search import nondominated_ranks, run_search
from archsim.dse.space import DesignSpace
from archsim.errors import ConfigError

DATA = Path(__file__).parents[1] / "data"
NPU_SEARCH = DATA / "machines" / "npu_search.yaml"
GEMMS = DATA / "workloads" / "tiny_gemms.yaml"


def test_hypervolume_of_known_fronts():
    assert hypervolume(np.array([[1.0, 1.0]]), np.array([2.0, 2.0])) == 1.0
    # two steps: 1x2 + 1x1 (the union of the two dominated boxes)
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == 3.0
    # a dominated point and one outside the reference add nothing
    front = np.array([[1.0, 2.0], [2.0, 1.0], [2.5, 2.5], [0.5, 4.0]])
    assert hypervolume(front, np.array([3.0, 3.0])) == 3.0


def test_hypervolume_matches_monte_carlo_in_three_dimensions():
    rng = np.random.default_rng(3)
    front = rng.random((25, 3))
    samples = rng.random((200_000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for point in front:
        dominated |= np.all(samples >= point, axis=1)
    assert hypervolume(front, np.ones(3)) == pytest.approx(dominated.mean(), abs=0.005)


def test_knee_is_the_point_that_bulges_towards_the_ideal():
    front = np.array([[0.0, 1.0], [0.15, 0.3], [0.5, 0.2], [1.0, 0.0]])
    assert knee_index(front) == 1
    shuffled = front[[3, 1, 0, 2]]
    assert knee_index(shuffled) == 1


def test_constrained_ranks_put_feasible_before_violating():
    values = np.array([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5], [3.0, 0.1]])
    violation = np.array([0.0, 0.0, 0.3, 0.0])
    ranks = nondominated_ranks(values, violation)
    # row 2 would dominate everything, but it misses a constraint
    assert ranks.tolist() == [0, 1, 2, 0]


def _space() -> DesignSpace:
    return DesignSpace(load_machine(NPU_SEARCH), load_workload(GEMMS))


def _fake_evaluate(points):
    # a cheap stand-in for the executor: objectives that trade off with the array count
    rows = []
    for p in points:
        npu = p.machine.devices[0]
        pes = npu.systolic_array.count * npu.systolic_array.rows
        rows.append(
            {
                "point": p.index,
                "feasible": True,
                "latency_s": 1.0 / pes + 1e-12 / npu.dram.bw_bytes_per_s,
                "energy_j": 1.0 + pes / 1e3,
                "area_mm2": 100.0 + pes / 10,
                "power_w": 10.0,
            }
        )
    return rows


@pytest.mark.parametrize("strategy", ["random", "nsga2"])
def test_search_spends_its_budget_on_distinct_points_reproducibly(strategy):
    space = _space()
    search = SearchConfig(strategy=strategy, budget=40, population=8, seed=5)
    combos, rows = run_search(space, search, _fake_evaluate)
    assert len(combos) == 40 and len(set(combos)) == 40
    assert [r["point"] for r in rows] == list(range(40))
    again, _ = run_search(space, search, _fake_evaluate)
    assert again == combos
    other, _ = run_search(
        space, search.model_validate({**search.model_dump(), "seed": 6}), _fake_evaluate
    )
    assert other != combos


def test_nsga2_beats_random_sampling_on_hypervolume():
    space = _space()
    reference = np.array([1.1, 1.1, 1.1])

    def objectives(rows):
        return np.array([[r["latency_s"], r["energy_j"], r["area_mm2"]] for r in rows])

    wins = 0
    for seed in range(3):
        evolved = objectives(
            run_search(
                space,
                SearchConfig(strategy="nsga2", budget=48, population=12, seed=seed),
                _fake_evaluate,
            )[1]
        )
        sampled = objectives(
            run_search(
                space, SearchConfig(strategy="random", budget=48, seed=seed), _fake_evaluate
            )[1]
        )
        both = np.vstack([evolved, sampled])  # one common scale for both
        low, high = both.min(axis=0), both.max(axis=0)
        wins += hypervolume((evolved - low) / (high - low), reference) >= hypervolume(
            (sampled - low) / (high - low), reference
        )
    assert wins >= 2


def test_budget_larger_than_the_space_runs_it_once():
    space = _space()
    combos, _ = run_search(space, SearchConfig(strategy="random", budget=10**6), _fake_evaluate)
    assert len(combos) == space.size == 4 * 4 * 3 * 4 * 2 * 2  # machine x workload axes


def _with_search(block: str) -> str:
    text = NPU_SEARCH.read_text()
    return text[: text.index("search:")] + block


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("search:\n  strategy: nsga2\n", "needs a 'budget'"),
        ("search:\n  strategy: annealing\n  budget: 5\n", "search.strategy"),
        ("search:\n  objectives: [latency, speed]\n", "search.objectives.1"),
        ("search:\n  constraints: [{metric: area, max: 600}]\n", "with its unit"),
        ("search:\n  constraints: [{metric: area, max: '600 W'}]\n", "search.constraints.0.max"),
        ("search:\n  constraints: [{metric: area}]\n", "needs 'max' or 'min'"),
        ("search:\n  budget: -3\n", "search.budget"),
        ("search:\n  strategy: random\n  budget: 5\n  sed: 3\n", "allowed: budget"),
    ],
)
def test_bad_search_blocks_name_the_field(block, expected):
    with pytest.raises(ConfigError) as caught:
        machine_from_text(_with_search(block), "m.yaml")
    message = str(caught.value)
    assert expected in message and "m.yaml:" in message and "\n" not in message
