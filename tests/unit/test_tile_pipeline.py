"""The Numba tile-pipeline kernel against its plain-Python reference, and its semantics."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.kernels.tile_pipeline import (
    simulate_repeated_tile_pipeline,
    simulate_tile_pipeline,
    simulate_tile_pipeline_reference,
)


def _phases(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    load = rng.uniform(0.0, 100.0, n)
    compute = rng.uniform(0.0, 100.0, n)
    store = rng.uniform(0.0, 100.0, n)
    # some tiles have an empty phase (reused operand, no store before the last k tile)
    store[rng.random(n) < 0.3] = 0.0
    load[rng.random(n) < 0.1] = 0.0
    return load, compute, store


@pytest.mark.parametrize("seed", range(40))
def test_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    buffers = int(rng.integers(1, 4))
    load, compute, store = _phases(rng, n)
    total, stall = simulate_tile_pipeline(load, compute, store, buffers)
    ref_total, ref_stall = simulate_tile_pipeline_reference(
        list(load), list(compute), list(store), buffers
    )
    assert total == pytest.approx(ref_total, rel=1e-12)
    assert stall == pytest.approx(ref_stall, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_repeated_sequence_matches_the_reference_on_the_tiled_sequence(seed: int) -> None:
    rng = np.random.default_rng(500 + seed)
    n, repeats, buffers = int(rng.integers(1, 20)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    load, compute, store = _phases(rng, n)
    got = simulate_repeated_tile_pipeline(load, compute, store, buffers, repeats)
    tiled = (np.tile(x, repeats) for x in (load, compute, store))
    want = simulate_tile_pipeline_reference(*tiled, buffers)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    assert got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-9)


def test_empty_sequence_takes_no_time() -> None:
    empty = np.zeros(0)
    assert simulate_tile_pipeline(empty, empty, empty, 2) == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_one_buffer_serializes_every_phase(seed: int) -> None:
    load, compute, store = _phases(np.random.default_rng(100 + seed), 25)
    total, stall = simulate_tile_pipeline(load, compute, store, 1)
    assert total == pytest.approx(load.sum() + compute.sum() + store.sum())
    # compute waits for every load and every previous store
    assert stall == pytest.approx(load.sum() + store[:-1].sum())


def test_double_buffering_hides_dma_behind_long_compute() -> None:
    rng = np.random.default_rng(7)
    n = 50
    load = rng.uniform(5.0, 20.0, n)
    store = rng.uniform(5.0, 20.0, n)
    compute = rng.uniform(100.0, 200.0, n)  # each compute outlasts a store plus the next load
    total, stall = simulate_tile_pipeline(load, compute, store, 2)
    assert total == pytest.approx(load[0] + compute.sum() + store[-1])
    assert stall == pytest.approx(load[0])


def test_dma_bound_sequence_runs_at_load_rate() -> None:
    n = 40
    load = np.full(n, 100.0)
    compute = np.full(n, 10.0)
    store = np.zeros(n)
    total, stall = simulate_tile_pipeline(load, compute, store, 2)
    # loads run back to back; only the last compute sticks out
    assert total == pytest.approx(load.sum() + compute[-1])
    assert stall == pytest.approx(total - compute.sum())


def test_more_buffers_never_slower() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        load, compute, store = _phases(rng, 30)
        one = simulate_tile_pipeline(load, compute, store, 1)[0]
        two = simulate_tile_pipeline(load, compute, store, 2)[0]
        three = simulate_tile_pipeline(load, compute, store, 3)[0]
        assert three <= two + 1e-9 <= one + 2e-9
        # no schedule beats the busiest single resource
        assert two >= max(load.sum(), compute.sum(), store.sum()) - 1e-9
