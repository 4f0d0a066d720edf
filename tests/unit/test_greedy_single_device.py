"""The greedy mapper's single-device path: every op on the device, support asked per distinct op,
capacity from the graph's resident tensors, with the answers of the general per-op path."""

from __future__ import annotations

from pathlib import Path

from archsim.config import load_workload, machine_from_text
from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.mappers import Infeasible, get_mapper
from archsim.mappers.capacity import check_capacity, resident_bytes_by_device
from archsim.mappers.schedule import ScheduledOp
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]


def _machine(dram_size: str = "32 GiB") -> Machine:
    text = (ROOT / "hwconfigs" / "tpu_like.yaml").read_text()
    if "\nsweep:" in text:
        text = text[: text.index("\nsweep:")]
    text = text.replace('size: "32 GiB"', f'size: "{dram_size}"', 1)
    return Machine.from_config(machine_from_text(text, "tpu_like").config)


def _decode() -> OpGraph:
    return lower(load_workload(ROOT / "workloads" / "llama2_7b_decode.yaml").config)


def test_every_op_lands_on_the_device_in_graph_order() -> None:
    graph, machine = _decode(), _machine()
    schedule = get_mapper("greedy").map(graph, machine)
    assert not isinstance(schedule, Infeasible)
    assert [e.op for e in schedule.entries] == graph.ops()
    assert {e.device for e in schedule.entries} == set(machine.devices)


def test_distinct_ops_cover_the_graph_with_few_ops() -> None:
    graph = _decode()
    distinct = graph.distinct_ops()
    assert len(distinct) < len(graph) // 10  # repeated layers collapse
    assert set(graph.ops()) == set(distinct)
    assert len(set(distinct)) == len(distinct)


def test_resident_bytes_equal_those_of_the_per_op_count_bit_for_bit() -> None:
    graph = _decode()
    entries = [ScheduledOp(op=op, device="npu") for op in graph]
    _, needed = graph.resident_tensors()
    assert needed == resident_bytes_by_device(entries)["npu"]
    assert needed > 13e9  # 6.7 B bf16 weights plus the KV cache


def test_too_small_a_memory_gives_the_per_op_check_reason() -> None:
    graph, machine = _decode(), _machine("4 GiB")
    schedule = get_mapper("greedy").map(graph, machine)
    assert isinstance(schedule, Infeasible)
    (name,) = machine.devices
    expected = check_capacity([ScheduledOp(op=op, device=name) for op in graph], machine)
    assert expected is not None
    assert schedule.reason == expected.reason
