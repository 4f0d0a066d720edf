"""The NPU's GEMM plan kernels (tiling search plus pipeline replays in one call) against their
plain-Python references, on random GEMMs and machines."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.hw.tiling import power_of_two_candidates
from archsim.kernels import gemm_plan as kernel

# the kernels sum per-tile terms one by one, the references with numpy's pairwise sums
RELATIVE = 1e-9


def _params(rng: np.random.Generator) -> np.ndarray:
    p = np.empty(kernel.N_PARAMS)
    p[kernel.P_M] = rng.choice([1, 7, 8, 64, 100, 513])
    p[kernel.P_N] = rng.choice([3, 64, 96, 1000, 4096])
    p[kernel.P_K] = rng.choice([5, 128, 300, 4096])
    p[kernel.P_BATCH] = rng.choice([1, 1, 3, 8])
    p[kernel.P_A_BYTES] = rng.choice([1.0, 2.0, 4.0])
    p[kernel.P_B_BYTES] = rng.choice([0.6, 1.0, 2.0])
    p[kernel.P_OUT_BYTES] = rng.choice([2.0, 4.0])
    p[kernel.P_A_FROM_DRAM] = rng.choice([0.0, 1.0])
    p[kernel.P_OUT_TO_DRAM] = rng.choice([0.0, 1.0])
    p[kernel.P_ACC_BYTES] = 4.0
    p[kernel.P_ROWS] = rng.choice([8, 32, 128])
    p[kernel.P_COLS] = rng.choice([8, 32, 128])
    p[kernel.P_ARRAYS] = rng.choice([1, 3, 4, 16])
    p[kernel.P_MACS_PER_PE] = rng.choice([1, 2])
    p[kernel.P_DATAFLOW] = rng.integers(len(kernel.DATAFLOWS))
    p[kernel.P_DRAM_BYTES_PER_CYCLE] = rng.uniform(50.0, 2000.0)
    p[kernel.P_SP_BYTES_PER_CYCLE] = rng.uniform(500.0, 20000.0)
    p[kernel.P_SETUP_CYCLES] = rng.uniform(0.0, 400.0)
    p[kernel.P_DMA_ENGINES] = rng.choice([1, 2, 4])
    p[kernel.P_CAPACITY_BYTES] = rng.choice([2.0**16, 2.0**20, 2.0**24])
    p[kernel.P_REPLAYED] = rng.choice([1, 6])
    return p


def _candidates(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols, macs = int(p[kernel.P_ROWS]), int(p[kernel.P_COLS]), int(p[kernel.P_MACS_PER_PE])
    return (
        np.asarray(power_of_two_candidates(int(p[kernel.P_M]), rows), dtype=np.float64),
        np.asarray(power_of_two_candidates(int(p[kernel.P_N]), cols), dtype=np.float64),
        np.asarray(power_of_two_candidates(int(p[kernel.P_K]), rows * macs, 9), dtype=np.float64),
    )


@pytest.mark.parametrize("seed", range(40))
def test_search_matches_the_reference(seed: int) -> None:
    p = _params(np.random.default_rng(seed))
    got = kernel.plan_gemm(*_candidates(p), p)
    want = kernel.plan_gemm_reference(*_candidates(p), p)
    np.testing.assert_allclose(got, want, rtol=RELATIVE, atol=0.0)


@pytest.mark.parametrize("seed", range(40))
def test_one_tiling_matches_the_reference(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    p = _params(rng)
    tiles = [
        float(rng.integers(1, 2 * int(p[d]) + 1)) for d in (kernel.P_M, kernel.P_N, kernel.P_K)
    ]
    buffers = int(rng.choice([1, 2]))
    order = int(rng.choice([kernel.AUTO_LOOP_ORDER, 0, 1]))
    got = kernel.run_tiling(*tiles, buffers, order, p)
    want = kernel.run_tiling_reference(*tiles, buffers, order, p)
    np.testing.assert_allclose(got, want, rtol=RELATIVE, atol=0.0)


def test_nothing_fits_a_tiny_scratchpad() -> None:
    p = _params(np.random.default_rng(0))
    p[kernel.P_CAPACITY_BYTES] = 1.0
    assert kernel.plan_gemm(*_candidates(p), p)[kernel.R_TILE_M] == 0
    assert kernel.plan_gemm_reference(*_candidates(p), p)[kernel.R_TILE_M] == 0


def test_the_winner_is_the_fastest_replayed_candidate() -> None:
    """Replaying more candidates never gives a slower winner, and every fitting candidate
    replayed gives the best of all of them."""
    p = _params(np.random.default_rng(7))
    p[kernel.P_M], p[kernel.P_N], p[kernel.P_K], p[kernel.P_BATCH] = 100, 1000, 300, 3
    p[kernel.P_ROWS], p[kernel.P_COLS], p[kernel.P_CAPACITY_BYTES] = 32, 32, 2.0**24
    candidates = _candidates(p)
    p[kernel.P_REPLAYED] = 1
    first = kernel.plan_gemm(*candidates, p)[kernel.R_CYCLES]
    p[kernel.P_REPLAYED] = 10_000
    every = kernel.plan_gemm(*candidates, p)[kernel.R_CYCLES]
    grid = np.meshgrid(*candidates, indexing="ij")
    brute = min(
        kernel.run_tiling(m, n, k, 2, kernel.AUTO_LOOP_ORDER, p)[kernel.R_CYCLES]
        for m, n, k in zip(*(g.ravel() for g in grid), strict=True)
    )
    assert every <= first
    assert every == brute
