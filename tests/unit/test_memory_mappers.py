"""Memory-planning mappers in simulation, and the MILP under HiGHS: a plan's reloads and spills
are paid in the simulated bytes, energy and latency of the ops that caused them; HiGHS (when
installed) finds plans as good as the brute-force optimum."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from archsim.config import load_machine, load_workload
from archsim.hw import Machine
from archsim.ir.graph import OpGraph
from archsim.ir.ops import Elementwise
from archsim.ir.tensor import DType, Tensor
from archsim.mappers import Schedule, get_mapper
from archsim.mappers.heuristics import plan_with_eviction
from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem, validate_plan
from archsim.sim import simulate
from archsim.workloads import lower

ROOT = Path(__file__).parents[2]
MACHINE = ROOT / "tests" / "data" / "machines" / "small_scratchpad_npu.yaml"
WORKLOAD = ROOT / "workloads" / "small_cnn_layers.yaml"
KIB = 1024


def _branches() -> OpGraph:
    """x feeds two branches whose results are joined late: the order decides what must spill."""

    def t(name: str) -> Tensor:
        return Tensor(name, (KIB,), DType.INT8)

    return OpGraph(
        "branches",
        [
            Elementwise("a", "copy", (t("x"),), t("ya")),
            Elementwise("b", "copy", (t("x"),), t("yb")),
            Elementwise("c", "copy", (t("ya"),), t("yc")),
            Elementwise("d", "copy", (t("yb"),), t("yd")),
            Elementwise("e", "add", (t("yc"), t("yd")), t("ye")),
            Elementwise("f", "add", (t("ye"), t("ya")), t("yf")),
        ],
    )


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine.from_config(load_machine(MACHINE).config)


@pytest.fixture(scope="module")
def graph():
    return lower(load_workload(WORKLOAD).config)


@pytest.mark.parametrize("mapper", ["lru", "cosma"])
def test_simulation_pays_the_plans_reloads_and_spills(machine, graph, mapper):
    schedule = get_mapper(mapper).map(graph, machine)
    assert isinstance(schedule, Schedule) and schedule.memory_plan is not None
    plan = schedule.memory_plan
    extra_bytes = plan.traffic.non_compulsory_bytes
    assert extra_bytes > 0  # this scratchpad is too small for the network
    charged = simulate(schedule, machine)
    # the same ops in the same order with no plan attached: the device costs alone
    bare = simulate(Schedule(schedule.graph_name, schedule.entries, schedule.mapper), machine)
    dram = [r.bytes_by_level.get("dram", 0.0) for r in charged.records]
    dram_bare = [r.bytes_by_level.get("dram", 0.0) for r in bare.records]
    assert sum(dram) - sum(dram_bare) == pytest.approx(extra_bytes)
    # each op pays what the plan moved for it, and only that op
    per_step = [
        r + s for r, s in zip(plan.reload_bytes_by_step, plan.spill_bytes_by_step, strict=True)
    ]
    assert [a - b for a, b in zip(dram, dram_bare, strict=True)] == pytest.approx(per_step)
    npu = machine.devices[schedule.entries[0].device]
    extra_s = extra_bytes / npu.peak_bw_bytes_per_s()
    assert charged.totals.latency_s - bare.totals.latency_s == pytest.approx(extra_s, rel=1e-9)
    assert charged.totals.energy_j > bare.totals.energy_j


def test_step_traffic_adds_up_to_the_plan_totals(machine, graph):
    schedule = get_mapper("belady").map(graph, machine)
    assert isinstance(schedule, Schedule)
    plan = schedule.memory_plan
    assert sum(plan.reload_bytes_by_step) == pytest.approx(plan.traffic.reload_bytes)
    assert sum(plan.spill_bytes_by_step) == pytest.approx(plan.traffic.spill_bytes)
    assert len(plan.reload_bytes_by_step) == len(schedule.entries)


def test_milp_under_highs_matches_cbc_on_a_small_graph(monkeypatch):
    pytest.importorskip("highspy")
    from archsim.mappers import cosma

    assert cosma.solver_name() == "highs"
    problem = MemoryProblem.from_graph(_branches(), 3 * KIB)
    highs = cosma.cosma_plan(problem, time_limit_s=20)
    assert isinstance(highs, MemoryPlan)
    assert highs.stats.solver == "highs" and highs.stats.status == "optimal"
    validate_plan(problem, highs.order, highs.allocations)
    # every order with Belady eviction (optimal for one tensor size and a fixed order)
    graph = nx.DiGraph()
    graph.add_nodes_from(problem.ops)
    for op, preds in problem.predecessors.items():
        graph.add_edges_from((p, op) for p in preds)
    best = min(
        plan_with_eviction(problem, tuple(order), "belady").traffic.non_compulsory_bytes
        for order in nx.all_topological_sorts(graph)
    )
    assert highs.traffic.non_compulsory_bytes == pytest.approx(best)
    monkeypatch.setattr(cosma, "solver_name", lambda: "cbc")
    cbc = cosma.cosma_plan(problem, time_limit_s=20)
    assert isinstance(cbc, MemoryPlan) and cbc.stats.solver == "cbc"
    assert cbc.traffic.non_compulsory_bytes == pytest.approx(highs.traffic.non_compulsory_bytes)


def test_tiled_mapper_never_slower_per_op_and_uses_searched_tilings(machine, graph):
    greedy = get_mapper("greedy").map(graph, machine)
    tiled = get_mapper("tiled").map(graph, machine)
    assert isinstance(greedy, Schedule) and isinstance(tiled, Schedule)
    assert [e.op.name for e in tiled.entries] == [e.op.name for e in greedy.entries]
    assert tiled.stats["tilings_kept"] > 0
    assert any(e.mapping is not None for e in tiled.entries)
    base = simulate(greedy, machine)
    searched = simulate(tiled, machine)
    for before, after in zip(base.records, searched.records, strict=True):
        assert after.latency_s <= before.latency_s
    assert searched.totals.latency_s < base.totals.latency_s
    # the scratchpad planners carry the same tilings under their own op order
    planned = get_mapper("lru").map(graph, machine)
    assert isinstance(planned, Schedule)
    mapped = {e.op.name: e.mapping for e in tiled.entries}
    assert all(e.mapping == mapped[e.op.name] for e in planned.entries)
