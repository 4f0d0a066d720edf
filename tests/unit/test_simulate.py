from pathlib import Path

import pytest

from archsim.config import load_machine
from archsim.hw import Machine
from archsim.ir import OpGraph, gemm
from archsim.mappers import Schedule, ScheduledOp, get_mapper
from archsim.sim import OP_COLUMNS, simulate

DATA = Path(__file__).parents[1] / "data" / "machines"


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(DATA / name).config)


def _chain(*sizes: tuple[int, int, int]) -> OpGraph:
    ops = []
    for i, (m, n, k) in enumerate(sizes):
        a_name = f"g{i - 1}.out" if i else None
        ops.append(gemm(f"g{i}", m, n, k, a_name=a_name))
    return OpGraph("chain", ops)


def test_totals_add_up():
    machine = _machine("tiny_fpga.yaml")
    graph = _chain((64, 1024, 1024), (64, 1024, 1024), (64, 512, 1024))
    result = simulate(get_mapper("greedy").map(graph, machine), machine)
    latencies = [r.latency_s for r in result.records]
    assert result.totals.latency_s == pytest.approx(sum(latencies))
    assert [r.start_s for r in result.records] == pytest.approx(
        [0, latencies[0], sum(latencies[:2])]
    )
    assert result.totals.static_energy_j == pytest.approx(
        machine.static_power_w() * result.totals.latency_s
    )
    assert result.totals.energy_j == pytest.approx(
        result.totals.dynamic_energy_j + result.totals.static_energy_j
    )
    assert result.records[0].latency_s == result.records[1].latency_s  # equal ops cost the same
    frame = result.to_dataframe()
    assert list(frame.columns[: len(OP_COLUMNS)]) == list(OP_COLUMNS)
    assert len(frame) == 3 and "bytes_dram" in frame.columns


def test_moving_a_tensor_between_devices_costs_interconnect_time():
    machine = _machine("pim_plus_fpga.yaml")
    graph = _chain((64, 1024, 1024), (64, 1024, 1024))
    together = Schedule("chain", tuple(ScheduledOp(op, "fpga") for op in graph), "manual")
    split = Schedule(
        "chain", (ScheduledOp(graph.ops()[0], "fpga"), ScheduledOp(graph.ops()[1], "pim")), "manual"
    )
    t_together = simulate(together, machine).totals
    t_split = simulate(split, machine).totals
    assert t_together.transfer_s == 0
    moved = graph.ops()[0].out.stored_bytes
    expected = machine.interconnect.latency_s + moved / machine.interconnect.bw_bytes_per_s
    assert t_split.transfer_s == pytest.approx(expected)


def test_greedy_puts_weight_streaming_gemv_on_pim():
    machine = _machine("pim_plus_fpga.yaml")
    graph = OpGraph("gemv", [gemm("gemv", 1, 8192, 8192)])
    schedule = get_mapper("greedy").map(graph, machine)
    assert schedule.entries[0].device == "pim"  # 8 TB/s inside the banks vs 460 GB/s DRAM
