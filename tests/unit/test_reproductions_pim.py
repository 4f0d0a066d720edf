"""NeuPIMs and Duplex reproductions against the papers' figures, within ±15%."""

from __future__ import annotations

import pytest

from archsim.reproduce import run_reproduction

TOLERANCE = 0.15


@pytest.fixture(scope="module")
def neupims():
    return run_reproduction("neupims")


@pytest.fixture(scope="module")
def duplex():
    return run_reproduction("duplex")


def test_neupims_over_gpu_only_undershoots(neupims):
    # Known miss (reports/reproductions/neupims.md, Gaps): the paper measured its A100 40GB
    # running PyTorch, slower than its NPU-only system; archsim's kernel-level A100 40GB runs
    # the step faster than the NPU, so the gain over it comes out low. NeuPIMs must still win.
    m = neupims.metrics["throughput_over_gpu_only"]
    assert 1.0 < m.archsim < m.paper * (1 - TOLERANCE)


def test_neupims_over_npu_only_overshoots(neupims):
    # Known miss (reports/reproductions/neupims.md, Gaps): NeuPIMs is bound by its NPU GEMMs,
    # and NPU-only attention cannot beat the DRAM bandwidth, so the gain comes out above the
    # paper's; it must stay a gain.
    m = neupims.metrics["throughput_over_npu_only"]
    assert m.archsim > m.paper * (1 + TOLERANCE)


def test_neupims_over_naive_npu_pim_within_tolerance(neupims):
    # per-request channels, short V rows, ganged activations and the softmax round trip make
    # PIM attention long enough that sub-batch interleaving pays as in the paper
    m = neupims.metrics["throughput_over_naive_npu_pim"]
    assert abs(m.archsim - m.paper) <= TOLERANCE * m.paper, (m.archsim, m.paper)


def test_neupims_beats_every_baseline(neupims):
    assert all(m.archsim > 1.0 for m in neupims.metrics.values())


@pytest.mark.parametrize(
    "metric",
    [
        "throughput_over_gpu_max",
        "throughput_no_coprocessing_over_gpu_max",
        "energy_reduction_mixtral_max",
        "energy_reduction_glam_max",
    ],
)
def test_duplex_within_tolerance(duplex, metric):
    m = duplex.metrics[metric]
    assert m.tolerance == TOLERANCE
    assert abs(m.archsim - m.paper) <= TOLERANCE * m.paper, (metric, m.archsim, m.paper)


def test_duplex_mixtral_saves_less_energy_than_glam(duplex):
    # the paper's order (Sec. 7.4): Mixtral's few experts see more tokens each, so more of
    # them go to the xPU and its full-price DRAM reads
    mixtral = duplex.metrics["energy_reduction_mixtral_max"].archsim
    assert 0.0 < mixtral < duplex.metrics["energy_reduction_glam_max"].archsim
