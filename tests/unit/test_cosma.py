"""Memory planning: the MILP's plans are valid, never worse than LRU/Belady, optimal on small
graphs (brute force), and the CNN/NAS workloads and the COSMA reproduction."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import pytest

from archsim.config import load_workload
from archsim.config.workload import WorkloadConfig
from archsim.errors import ArchsimError
from archsim.ir.graph import OpGraph
from archsim.ir.ops import Elementwise
from archsim.ir.tensor import DType, Tensor
from archsim.mappers.cosma import cosma_plan
from archsim.mappers.heuristics import plan_greedy_by_size, plan_with_eviction
from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem, PlanError, validate_plan
from archsim.workloads import lower

WORKLOADS = Path(__file__).parents[2] / "workloads"
KIB = 1024


def _t(name: str) -> Tensor:
    return Tensor(name, (KIB,), DType.INT8)  # every tensor 1 KiB


def _diamond() -> OpGraph:
    """x -> a, b, c (three branches) -> joined pairwise; branch results live long."""
    ops = [
        Elementwise("a", "copy", (_t("x"),), _t("ya")),
        Elementwise("b", "copy", (_t("x"),), _t("yb")),
        Elementwise("c", "copy", (_t("ya"),), _t("yc")),
        Elementwise("d", "copy", (_t("yb"),), _t("yd")),
        Elementwise("e", "add", (_t("yc"), _t("yd")), _t("ye")),
        Elementwise("f", "add", (_t("ye"), _t("ya")), _t("yf")),
    ]
    return OpGraph("diamond", ops)


def _brute_force_best(problem: MemoryProblem) -> float:
    """Fewest non-compulsory bytes over every topological order, with Belady eviction (optimal
    for a fixed order when all tensors have one size and no fragmentation can occur)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(problem.ops)
    for op, preds in problem.predecessors.items():
        graph.add_edges_from((p, op) for p in preds)
    best = float("inf")
    for order in nx.all_topological_sorts(graph):
        plan = plan_with_eviction(problem, tuple(order), "belady")
        assert isinstance(plan, MemoryPlan)
        best = min(best, plan.traffic.non_compulsory_bytes)
    return best


@pytest.mark.parametrize("slots", [3, 4])
def test_ilp_matches_brute_force_on_a_small_graph(slots):
    problem = MemoryProblem.from_graph(_diamond(), slots * KIB)
    plan = cosma_plan(problem, time_limit_s=20)
    assert isinstance(plan, MemoryPlan)
    validate_plan(problem, plan.order, plan.allocations)
    assert plan.traffic.non_compulsory_bytes == pytest.approx(_brute_force_best(problem))


@pytest.mark.parametrize("workload", ["small_cnn_layers", "resnet50"])
def test_ilp_plan_is_valid_and_never_worse_than_heuristics(workload):
    graph = lower(load_workload(WORKLOADS / f"{workload}.yaml").config)
    problem = MemoryProblem.at_minimum_required(graph)
    plan = cosma_plan(problem, time_limit_s=5, max_ilp_ops=8)
    assert isinstance(plan, MemoryPlan)
    validate_plan(problem, plan.order, plan.allocations)
    assert max(plan.occupancy_bytes()) <= problem.capacity_bytes
    for policy in ("lru", "belady"):
        baseline = plan_with_eviction(problem, problem.ops, policy)
        assert isinstance(baseline, MemoryPlan)
        validate_plan(problem, baseline.order, baseline.allocations)
        assert plan.traffic.non_compulsory_bytes <= baseline.traffic.non_compulsory_bytes
    # nor worse than the paper's baseline: Belady, then TensorFlow Lite's offsets
    offline = plan_greedy_by_size(problem, problem.ops, "belady")
    assert isinstance(offline, MemoryPlan)
    assert plan.traffic.non_compulsory_bytes <= offline.traffic.non_compulsory_bytes
    bound = plan.stats.lower_bound_bytes  # NaN when the first plan already moved nothing
    assert math.isnan(bound) or plan.traffic.non_compulsory_bytes >= bound


def test_validator_catches_overlap_and_missing_tensor():
    problem = MemoryProblem.from_graph(_diamond(), 4 * KIB)
    plan = plan_with_eviction(problem, problem.ops, "lru")
    assert isinstance(plan, MemoryPlan)
    moved = [
        a if i else type(a)(a.tensor, a.start_step, a.end_step, 0, a.size_bytes, a.loaded)
        for i, a in enumerate(plan.allocations)
    ]
    clash = [type(a)(a.tensor, a.start_step, a.end_step, 0, a.size_bytes, a.loaded) for a in moved]
    with pytest.raises(PlanError):
        validate_plan(problem, plan.order, clash)
    with pytest.raises(PlanError):
        validate_plan(problem, plan.order, plan.allocations[1:])


def test_op_larger_than_scratchpad_is_a_reason():
    problem = MemoryProblem.from_graph(_diamond(), 2 * KIB)  # add ops need 3 KiB
    reason = cosma_plan(problem)
    assert isinstance(reason, str) and "needed by op" in reason


def test_cnn_presets_match_published_multiply_adds():
    # He et al. 2016 Table 1: ResNet-50 3.8e9 multiply-adds; Sandler et al. 2018 Table 4:
    # MobileNetV2 300M; both within 10% (the papers round and count the FC layer differently)
    for name, macs in (("resnet50", 3.8e9), ("mobilenet_v2", 300e6)):
        graph = lower(load_workload(WORKLOADS / f"{name}.yaml").config)
        assert graph.flops() / 2 == pytest.approx(macs, rel=0.1)


@pytest.mark.parametrize(
    ("model", "macs", "weights"),
    [
        # He et al. 2016 Table 1 (FLOPs there are multiply-adds); parameter counts of the
        # torchvision models built from the same tables
        ("resnet18", 1.8e9, 11.7e6),
        ("resnet34", 3.6e9, 21.8e6),
        ("resnet101", 7.6e9, 44.5e6),
        # Szegedy et al. 2015 Section 5: 1.5 billion multiply-adds, Table 1: about 6.8M parameters
        ("googlenet", 1.5e9, 6.8e6),
        # Iandola et al. 2016 Table 1: 1,248,424 parameters; multiply-adds not given
        ("squeezenet", None, 1.248e6),
        # Huang et al. 2017 Table 2 / Figure 3: DenseNet-121 about 2.9 GFLOPs, 8.0M parameters
        ("densenet121", 2.9e9, 8.0e6),
    ],
)
def test_new_cnn_presets_match_their_papers(model, macs, weights):
    from archsim.config.workload import CnnSpec

    graph = lower(WorkloadConfig(schema_version=1, name=model, workload=CnnSpec(model=model)))
    if macs is not None:
        assert graph.flops() / 2 == pytest.approx(macs, rel=0.1)
    problem = MemoryProblem.from_graph(graph, 2**62)
    params = sum(t.size_bytes for t in problem.tensors.values() if t.role == "weight")  # int8
    assert params == pytest.approx(weights, rel=0.1)


def test_conv_im2col_gemm_has_the_same_work():
    graph = lower(load_workload(WORKLOADS / "mobilenet_v2.yaml").config)
    convs = [op for op in graph if op.kind == "conv2d"]
    assert any(op.groups > 1 for op in convs)
    for op in convs:
        assert op.as_gemm().flops() == op.flops()


def test_layer_list_errors_name_the_layer():
    spec = {
        "schema_version": 1,
        "name": "bad",
        "workload": {
            "generator": "layer_list",
            "input": {"channels": 3, "height": 8, "width": 8},
            "layers": [
                {"name": "c1", "op": "conv2d", "out_channels": 8, "kernel": 3},
                {"name": "sum", "op": "add", "inputs": ["c1", "nope"]},
            ],
        },
    }
    with pytest.raises(ArchsimError, match=r"layers\[1\] \('sum'\).*nope"):
        lower(WorkloadConfig.model_validate(spec))


def test_cosma_reproduction_against_the_paper():
    from archsim.reproduce import run_reproduction

    metrics = run_reproduction("cosma").metrics
    # against topological order with LRU/Belady eviction (the baselines the paper compares
    # against), averaged over eight CNNs at the tightest budget M_R
    ilp = metrics["ilp_traffic_reduction_pct"]
    assert ilp.within_tolerance, ilp
    nas = metrics["nas_traffic_reduction_pct"]
    assert nas.within_tolerance, nas
    # solve times are reported, not asserted: they depend on the machine


def test_order_search_is_deterministic_and_beats_the_graph_order_on_nas_cells():
    from archsim.config.workload import NasCellSpec
    from archsim.mappers.heuristics import best_heuristic_plan, search_order

    config = WorkloadConfig(
        schema_version=1, name="nas", workload=NasCellSpec(cells=2, channels=16, image_size=8)
    )
    graph = lower(config)
    problem = MemoryProblem.at_minimum_required(graph)
    graph_order = best_heuristic_plan(problem, problem.ops)
    first = search_order(problem, evaluations=300, seed=1)
    second = search_order(problem, evaluations=300, seed=1)
    assert isinstance(first, MemoryPlan) and isinstance(second, MemoryPlan)
    assert first.order == second.order and first.traffic == second.traffic
    validate_plan(problem, first.order, first.allocations)
    assert first.traffic.non_compulsory_bytes < graph_order.traffic.non_compulsory_bytes


@pytest.mark.parametrize("slots", [3, 4])
def test_lower_bound_never_exceeds_the_brute_force_optimum(slots):
    from archsim.mappers.memory_plan import lower_bound_bytes

    problem = MemoryProblem.from_graph(_diamond(), slots * KIB)
    assert lower_bound_bytes(problem) <= _brute_force_best(problem)


def test_nas_cells_plan_meets_the_lower_bound_and_says_optimal():
    from archsim.config.workload import NasCellSpec
    from archsim.mappers.memory_plan import lower_bound_bytes

    config = WorkloadConfig(
        schema_version=1, name="nas", workload=NasCellSpec(cells=2, channels=16, image_size=8)
    )
    graph = lower(config)
    problem = MemoryProblem.at_minimum_required(graph)
    bound = lower_bound_bytes(problem)
    # the first cell's concatenation fills the scratchpad while the stem output is still needed
    assert bound > 0
    plan = cosma_plan(problem, time_limit_s=5, max_ilp_ops=8, order_evaluations=2000)
    assert isinstance(plan, MemoryPlan)
    validate_plan(problem, plan.order, plan.allocations)
    assert plan.traffic.non_compulsory_bytes >= bound
    assert plan.traffic.non_compulsory_bytes == bound and plan.stats.status == "optimal"
    assert plan.stats.subproblems == 0  # proven by the bound: no MILP was needed


def test_greedy_by_size_offsets_follow_the_tflite_arena_planner():
    from archsim.mappers.heuristics import greedy_by_size_offsets

    # (size, first step, last step); the two 128-byte tensors are placed first (largest first,
    # equal sizes by first use), the others around them; no two that live at once share bytes
    intervals = [(64, 0, 0), (128, 0, 3), (32, 2, 2), (128, 0, 3), (64, 1, 1), (96, 3, 3)]
    offsets = greedy_by_size_offsets(intervals)
    assert offsets[1] == 0 and offsets[3] == 128  # size first, equal sizes by first use
    for i, (size_i, first_i, last_i) in enumerate(intervals):
        for j, (size_j, first_j, last_j) in enumerate(intervals[:i]):
            if first_i <= last_j and first_j <= last_i:  # lifetimes meet: no shared bytes
                assert offsets[i] >= offsets[j] + size_j or offsets[j] >= offsets[i] + size_i


def test_best_fit_takes_the_smallest_gap_that_fits():
    from archsim.mappers.heuristics import greedy_by_size_offsets

    # the long-lived tensors sit at 0-256 and 384-448 after two short-lived ones of step 0 leave
    # gaps; a 64-byte tensor of step 1 fits both gaps (128 and 64 bytes) and takes the smaller
    intervals = [
        (256, 0, 1),  # -> 0
        (128, 0, 0),  # -> 256, short-lived: leaves a 128-byte gap at step 1
        (64, 0, 1),  # -> 384
        (64, 0, 0),  # -> 448, short-lived
        (64, 0, 1),  # -> 512
        (64, 1, 1),  # the probe: gaps at 256 (128 bytes) and 448 (64 bytes) at step 1
    ]
    offsets = greedy_by_size_offsets(intervals)
    assert offsets[:5] == [0, 256, 384, 448, 512]
    assert offsets[5] == 448


@pytest.mark.parametrize("workload", ["small_cnn_layers", "resnet50"])
def test_tflite_belady_baseline_is_valid(workload):
    graph = lower(load_workload(WORKLOADS / f"{workload}.yaml").config)
    problem = MemoryProblem.at_minimum_required(graph)
    plan = plan_greedy_by_size(problem, problem.ops, "belady")
    assert isinstance(plan, MemoryPlan)
    validate_plan(problem, plan.order, plan.allocations)
    # with room for everything nothing moves beyond the compulsory bytes
    roomy = MemoryProblem.from_graph(graph, sum(t.size_bytes for t in problem.tensors.values()))
    assert plan_greedy_by_size(roomy, roomy.ops).traffic.non_compulsory_bytes == 0


def test_whole_graph_milp_on_resnet18_is_optimal_and_beats_every_baseline():
    # the paper's method for human-designed DNNs: one MILP over the whole graph at M_R
    from archsim.config.workload import CnnSpec
    from archsim.mappers.heuristics import min_peak_order

    graph = lower(WorkloadConfig(schema_version=1, name="r18", workload=CnnSpec(model="resnet18")))
    problem = MemoryProblem.at_minimum_required(graph)
    plan = cosma_plan(problem, time_limit_s=60, max_ilp_ops=len(problem.ops), order_evaluations=0)
    assert isinstance(plan, MemoryPlan)
    validate_plan(problem, plan.order, plan.allocations)
    assert plan.stats.method == "ilp" and plan.stats.status == "optimal"
    for order in (problem.ops, min_peak_order(problem, evaluations=500)):
        baselines = [
            plan_greedy_by_size(problem, order, "belady"),
            plan_with_eviction(problem, order, "belady", "best"),
            plan_with_eviction(problem, order, "lru"),
        ]
        for baseline in baselines:
            assert isinstance(baseline, MemoryPlan)
            validate_plan(problem, baseline.order, baseline.allocations)
            assert plan.traffic.non_compulsory_bytes <= baseline.traffic.non_compulsory_bytes
