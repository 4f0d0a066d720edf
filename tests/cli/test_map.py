"""``archsim map``: the printed schedule and totals agree with the mapper's plan; the occupancy
plot is written; bad input is one line and exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archsim.config import load_machine, load_workload
from archsim.hw import Machine
from archsim.mappers import Schedule, get_mapper
from archsim.workloads import lower

from .conftest import DATA

MACHINE = str(DATA / "machines" / "small_scratchpad_npu.yaml")
WORKLOAD = Path(__file__).parents[2] / "workloads" / "small_cnn_layers.yaml"


@pytest.mark.parametrize("mapper", ["lru", "cosma"])
def test_map_prints_the_plan_totals_and_writes_the_plot(archsim, tmp_path, mapper):
    out = tmp_path / "maps"
    done = archsim("map", MACHINE, str(WORKLOAD), "--mapper", mapper, "-o", str(out))
    assert done.returncode == 0, done.stderr
    schedule = get_mapper(mapper).map(
        lower(load_workload(WORKLOAD).config),
        Machine.from_config(load_machine(MACHINE).config),
    )
    assert isinstance(schedule, Schedule) and schedule.memory_plan is not None
    total = re.search(
        r"total: compulsory (\d+) B, non-compulsory (\d+) B \(reload (\d+) B, spill (\d+) B\)",
        done.stdout,
    )
    assert total, done.stdout
    printed = [float(v) for v in total.groups()]
    expected = [
        schedule.stats[key]
        for key in ("compulsory_bytes", "non_compulsory_bytes", "reload_bytes", "spill_bytes")
    ]
    assert printed == pytest.approx(expected)
    # the scratchpad is too small for this network: something is evicted and reloaded
    assert printed[1] > 0
    # one row per op in schedule order, and the per-step columns add up to the totals (KiB)
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"\s*\d+\s", line)]
    assert [r[1] for r in rows] == [e.op.name for e in schedule.entries]
    assert sum(float(r[3]) for r in rows) * 1024 == pytest.approx(
        printed[0], abs=0.1 * len(rows) * 1024
    )
    assert sum(float(r[4]) for r in rows) * 1024 == pytest.approx(
        printed[1], abs=0.1 * len(rows) * 1024
    )
    assert "solver:" in done.stdout
    assert (out / "occupancy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_with_a_mapper_that_plans_no_scratchpad_says_so(archsim, tmp_path):
    done = archsim("map", MACHINE, str(WORKLOAD), "--mapper", "greedy", "-o", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    assert "no scratchpad plan" in done.stdout and "cosma" in done.stdout
    assert not (tmp_path / "m" / "occupancy.png").exists()


def test_map_unknown_mapper_is_one_line_exit_2(archsim):
    done = archsim("map", MACHINE, str(WORKLOAD), "--mapper", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "available:" in done.stderr
