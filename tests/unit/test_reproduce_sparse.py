"""Paper reproductions of the sparse and FPGA accelerators, checked against the papers' figures.

Tolerance: ±15% of the paper's value, as the reproductions state. A metric the model cannot reach
is reported with its gap in the report; its test pins the direction of the effect instead.
"""

from __future__ import annotations

import pytest

from archsim.reproduce.flightllm import reproduce_flightllm
from archsim.reproduce.sat import reproduce_sat


@pytest.fixture(scope="module")
def flightllm():
    return reproduce_flightllm()


@pytest.mark.parametrize(
    "metric",
    ["u280_decode_tokens_per_s", "energy_efficiency_vs_v100s", "vhk158_throughput_vs_a100"],
)
def test_flightllm_matches_paper(flightllm, metric):
    m = flightllm.metrics[metric]
    assert m.tolerance == 0.15
    assert m.within_tolerance, (metric, m.paper, m.archsim)


def test_flightllm_energy_gap_is_reported(flightllm):
    m = flightllm.metrics["energy_efficiency_vs_v100s_vllm"]
    # the FPGA is more efficient, but the modelled V100S board draws less than the paper implies
    assert 1.0 < m.archsim < m.paper
    assert "Gap" in " ".join(getattr(b, "text", "") for b in flightllm.report.blocks)


def test_sat_bdwp_speedup_matches_paper():
    m = reproduce_sat().metrics["bdwp_2of8_speedup_over_dense"]
    assert m.tolerance == 0.15
    assert m.within_tolerance, (m.paper, m.archsim)
