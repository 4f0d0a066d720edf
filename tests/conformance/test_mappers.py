"""Every registered mapper gives a valid schedule: each op once, in dependency order, on a device
that supports it; or an Infeasible with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import load_machine, load_workload
from archsim.hw import Machine
from archsim.mappers import Infeasible, Schedule, get_mapper, registered_mappers
from archsim.workloads import lower

DATA = Path(__file__).parents[1] / "data"
WORKLOADS = Path(__file__).parents[2] / "workloads"


@pytest.mark.parametrize("mapper_name", registered_mappers())
@pytest.mark.parametrize("machine_file", ["tiny_fpga.yaml", "pim_plus_fpga.yaml"])
def test_schedule_is_valid(mapper_name, machine_file):
    machine = Machine.from_config(load_machine(DATA / "machines" / machine_file).config)
    workload = load_workload(WORKLOADS / "llama2_7b_decode.yaml").config
    workload = workload.model_validate(
        {
            **workload.model_dump(by_alias=True),
            "workload": {**workload.workload.model_dump(), "layers": 2},
        }
    )
    graph = lower(workload)
    schedule = get_mapper(mapper_name).map(graph, machine)
    if isinstance(schedule, Infeasible):
        assert schedule.reason
        return
    assert isinstance(schedule, Schedule)
    names = [entry.op.name for entry in schedule.entries]
    assert sorted(names) == sorted(op.name for op in graph)
    position = {name: i for i, name in enumerate(names)}
    for name in names:
        for pred in graph.predecessors(name):
            assert position[pred] < position[name]
    for entry in schedule.entries:
        assert machine.devices[entry.device].supports(entry.op)


def test_capacity_shortfall_is_infeasible_with_reason():
    machine = Machine.from_config(load_machine(DATA / "machines" / "tiny_fpga.yaml").config)
    graph = lower(load_workload(WORKLOADS / "llama2_7b_decode.yaml").config)  # 13 GB > 8 GiB
    result = get_mapper("greedy").map(graph, machine)
    assert isinstance(result, Infeasible)
    assert "GiB" in result.reason and "fpga" in result.reason
