"""``summarize`` (the sweep's record-free path) gives exactly the totals of ``simulate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import load_machine, load_workload
from archsim.dse.evaluate import evaluate_points, outcome_row
from archsim.dse.space import expand_grid
from archsim.hw.machine import Machine
from archsim.mappers import get_mapper
from archsim.pipeline import run_point
from archsim.sim import simulate
from archsim.sim.summary import OpFacts, summarize
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]
DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    ("machine", "workload"),
    [
        (ROOT / "hwconfigs" / "tpu_like.yaml", ROOT / "workloads" / "llama2_7b_decode.yaml"),
        (ROOT / "hwconfigs" / "h100.yaml", ROOT / "workloads" / "llama2_7b_decode.yaml"),
        (DATA / "machines" / "pim_plus_fpga.yaml", DATA / "workloads" / "tiny_gemms.yaml"),
    ],
    ids=["npu", "gpu", "two_devices"],
)
def test_totals_equal_those_of_simulate_bit_for_bit(machine, workload):
    config = load_machine(machine).config
    workload_config = load_workload(workload).config
    graph = lower(workload_config)
    facts = OpFacts()
    for _ in range(2):  # the second pass reads the facts cached by the first
        built = Machine.from_config(config)
        schedule = get_mapper(config.mapper).map(graph, built)
        full = simulate(schedule, Machine.from_config(config))
        summary = summarize(schedule, built, facts)
        assert summary.totals == full.totals
        assert summary.time_by_kind_s == full.time_by_kind_s()
        assert list(summary.time_by_kind_s) == list(full.time_by_kind_s())


def test_sweep_rows_equal_rows_from_full_results():
    points = expand_grid(
        load_machine(DATA / "machines" / "npu_search.yaml"),
        load_workload(DATA / "workloads" / "tiny_gemms.yaml"),
    )[::97]
    fast = evaluate_points(points, None)
    for point, row in zip(points, fast, strict=True):
        full = outcome_row(run_point(point.machine, point.workload))
        assert {k: row[k] for k in full} == full


def test_equal_ops_are_costed_once_per_device():
    config = load_machine(ROOT / "hwconfigs" / "tpu_like.yaml").config
    graph = lower(load_workload(ROOT / "workloads" / "llama2_7b_decode.yaml").config)
    machine = Machine.from_config(config)
    schedule = get_mapper(config.mapper).map(graph, machine)
    (device,) = machine.devices.values()
    costed = []
    original = device.cost

    def counting(op, mapping=None):
        costed.append(op)
        return original(op, mapping)

    device.cost = counting
    summarize(schedule, machine)
    assert len(costed) == len(graph.distinct_ops()) < len(graph)
