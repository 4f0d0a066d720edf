import numpy as np
import pandas as pd
import pytest

from archsim.dse.pareto import pareto_front, pareto_mask


def brute_force_front(values: np.ndarray) -> np.ndarray:
    keep = []
    for i, row in enumerate(values):
        dominated = any(
            np.all(other <= row) and np.any(other < row) for j, other in enumerate(values) if j != i
        )
        keep.append(not dominated)
    return np.array(keep)


@pytest.mark.parametrize("objectives", [2, 3, 4])
def test_pareto_mask_matches_brute_force(objectives):
    rng = np.random.default_rng(objectives)
    for _ in range(20):
        values = rng.integers(0, 6, size=(40, objectives)).astype(float)
        assert np.array_equal(pareto_mask(values), brute_force_front(values))


def test_front_excludes_infeasible_and_honours_maximize():
    df = pd.DataFrame(
        {
            "latency_s": [1.0, 2.0, 0.5, 3.0],
            "throughput": [10.0, 30.0, 5.0, 1.0],
            "feasible": [True, True, False, True],
        }
    )
    front = pareto_front(df, ["latency_s", "throughput"], maximize=["throughput"])
    # row 2 is fastest but infeasible; row 3 is slower and lower-throughput than rows 0 and 1
    assert front.tolist() == [True, True, False, False]
