"""COSMA (Li, Gupta and Malik, "Combined Scheduling, Memory Allocation and Tensor Replacement for
Minimizing Off-Chip Data Accesses of DNN Accelerators", arXiv:2311.18246, 2023): the MILP's cut in
non-compulsory off-chip traffic against replacement baselines, and its solve time per graph.

Setup, after the paper's Section V-A: the scratchpad is the paper's tightest budget M_R, "the
maximum memory required by a single operator", i.e. the inputs and outputs of the hungriest op
(here with its weights, the paper's activation-and-parameter setting); 8-bit tensors, batch 1,
224x224 images for the CNNs. The paper compares against a TensorFlow Lite linear allocator under
the default or the minimum-peak-memory order with Belady or ILP-greedy replacement and averages
its 84% over ten human-designed DNNs; its 85% is the divide-and-conquer heuristic on four NAS
graphs (PNASNet-5, AmoebaNet-D, NASNet-A, DARTS). Here the baselines are the same two schedules
(the graph order, and a minimum-peak-memory order found by local search; its peak is the
m_p_mib column) with first-fit allocation and LRU or Belady eviction, the reduction is taken
against the best of the four on each graph, and the graphs are ResNet-50 and MobileNetV2 (two of
the paper's ten; MILP windows of at most 8 ops) and two NASNet-A-like normal cells at 64 channels, 28x28 (divide and
conquer: order search, then two passes of MILP windows, the second cut inside the first's
windows). All traffic numbers come out of archsim's planners.
"""

from __future__ import annotations

import pandas as pd

from archsim.config.workload import CnnSpec, NasCellSpec, WorkloadConfig
from archsim.mappers.cosma import cosma_plan, solver_name
from archsim.mappers.heuristics import min_peak_order, peak_live_bytes, plan_with_eviction
from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.workloads import lower

# COSMA, abstract and Section V-B: the ILP cuts non-compulsory off-chip traffic by 84% on average
# over ten human-designed DNNs at the tightest budget M_R; the divide-and-conquer heuristic by 85%
# on NAS graphs.
PAPER_ILP_REDUCTION_PCT = 84.0
PAPER_NAS_REDUCTION_PCT = 85.0
# Section V-A as quoted by an independent reproduction's notes (the PDF was not at hand): Gurobi on
# an Apple M1 Pro solves the human-designed DNNs in 0.296 s on average, the NAS graphs by
# heuristics in about two minutes.
PAPER_CNN_SOLVE_TIME_S = 0.296
PAPER_NAS_SOLVE_TIME_S = 120.0

WINDOW_OPS = 8
# per MILP window: the node budget stops CBC the same way on any machine; the time limit guards it
TIME_LIMIT_S = 2.0
MAX_NODES = 2000
ORDER_EVALUATIONS = 2000

GRAPHS = {
    "resnet50": CnnSpec(model="resnet50"),
    "mobilenet_v2": CnnSpec(model="mobilenet_v2"),
    "nas_cell": NasCellSpec(cells=2, channels=64, image_size=28),
}


def minimum_required_bytes(problem: MemoryProblem) -> int:
    """COSMA's M_R: the largest working set (inputs, weights and outputs) of a single op."""
    return max(problem.working_set_bytes(op) for op in problem.ops)


def _problem(name: str) -> MemoryProblem:
    config = WorkloadConfig(schema_version=1, name=name, workload=GRAPHS[name])
    graph = lower(config)
    unbounded = MemoryProblem.from_graph(graph, 2**62)
    return MemoryProblem.from_graph(graph, minimum_required_bytes(unbounded))


def compare_graph(name: str) -> dict[str, float | str]:
    """Non-compulsory MiB of the four baselines and of COSMA on one graph, and the solve time.

    The baselines are the paper's two schedules, the graph's own order and a minimum-peak-memory
    order, each with LRU and with Belady eviction."""
    problem = _problem(name)
    row: dict[str, float | str] = {"ops": float(len(problem.ops))}
    row["m_r_mib"] = problem.capacity_bytes / 2**20
    low_peak = min_peak_order(problem, evaluations=ORDER_EVALUATIONS)
    row["m_p_mib"] = peak_live_bytes(problem, low_peak) / 2**20
    for schedule, order in (("graph", problem.ops), ("minpeak", low_peak)):
        for policy in ("lru", "belady"):
            plan = plan_with_eviction(problem, order, policy)
            assert isinstance(plan, MemoryPlan), plan
            row[f"{schedule}_{policy}_mib"] = plan.traffic.non_compulsory_bytes / 2**20
    plan = cosma_plan(
        problem,
        time_limit_s=TIME_LIMIT_S,
        max_ilp_ops=WINDOW_OPS,
        max_nodes=MAX_NODES,
        order_evaluations=ORDER_EVALUATIONS,
    )
    assert isinstance(plan, MemoryPlan), plan
    row["cosma_mib"] = plan.traffic.non_compulsory_bytes / 2**20
    row["bound_mib"] = plan.stats.lower_bound_bytes / 2**20
    row["compulsory_mib"] = plan.traffic.compulsory_bytes / 2**20
    row["solve_time_s"] = plan.stats.solve_time_s
    row["subproblems"] = float(plan.stats.subproblems)
    row["orders_tried"] = float(plan.stats.order_evaluations)
    row["status"] = plan.stats.status
    baseline = min(float(v) for k, v in row.items() if k.endswith(("_lru_mib", "_belady_mib")))
    row["baseline_mib"] = baseline
    cosma = float(row["cosma_mib"])
    row["reduction_pct"] = 100.0 * (1 - cosma / baseline) if baseline else 0.0
    return row


@register_reproduction("cosma")
def reproduce_cosma() -> Reproduction:
    rows = {name: compare_graph(name) for name in GRAPHS}
    cnn = [rows["resnet50"], rows["mobilenet_v2"]]
    metrics = {
        "ilp_traffic_reduction_pct": Metric(
            paper=PAPER_ILP_REDUCTION_PCT,
            archsim=sum(float(r["reduction_pct"]) for r in cnn) / len(cnn),
            tolerance=0.15,
            unit="%",
            description="non-compulsory traffic cut vs the better of LRU/Belady, CNN graphs",
        ),
        "nas_traffic_reduction_pct": Metric(
            paper=PAPER_NAS_REDUCTION_PCT,
            archsim=float(rows["nas_cell"]["reduction_pct"]),
            tolerance=0.15,
            unit="%",
            description="divide and conquer on the NAS cell graph vs the better baseline",
        ),
        "cnn_solve_time_s": Metric(
            paper=PAPER_CNN_SOLVE_TIME_S,
            archsim=sum(float(r["solve_time_s"]) for r in cnn) / len(cnn),
            tolerance=1.0,
            unit="s",
            description="mean planning time of the CNN graphs (CBC windows vs Gurobi whole graphs)",
        ),
        "nas_solve_time_s": Metric(
            paper=PAPER_NAS_SOLVE_TIME_S,
            archsim=float(rows["nas_cell"]["solve_time_s"]),
            tolerance=1.0,
            unit="s",
            description="planning time of the NAS cell graph by divide and conquer",
        ),
    }
    doc = Document("COSMA: scratchpad planning by MILP vs LRU and Belady")
    doc.add(Paragraph("Regenerate with `archsim reproduce cosma`."))
    doc.add(Paragraph(__doc__.split("\n\n", 1)[1].replace("\n", " ")))
    doc.add(
        Paragraph(
            f"Solver: {solver_name()}, {MAX_NODES} branch-and-bound nodes (CBC) and at most "
            f"{TIME_LIMIT_S:g} s per MILP window; order search: {ORDER_EVALUATIONS} orders, seed 0. "
            "Status `warm_start` means the MILP windows found nothing better than the searched "
            "order's LRU/Belady plan, which is then the result; `optimal` that every MILP was "
            "solved to optimality or that the plan meets bound_mib, the traffic no plan can "
            "avoid (tensors live across an op in every order that do not fit beside it)."
        )
    )
    doc.add(Heading("Per graph"))
    frame = pd.DataFrame([{"graph": name, **row} for name, row in rows.items()])
    doc.add(Table(frame))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Gaps"))
    nas_baseline_mib = float(rows["nas_cell"]["baseline_mib"])
    nas = GRAPHS["nas_cell"]
    # the int8 stem output (batch 1), spilled once and reloaded once
    stem_mib = 2 * nas.channels * nas.image_size**2 / 2**20
    nas_floor_pct = 100 * (1 - stem_mib / nas_baseline_mib)
    doc.add(
        Paragraph(
            "CNN reduction above the paper's 84%: two of the paper's ten graphs, both nearly "
            "chains, against baselines with first-fit allocation and LRU or Belady eviction where "
            "the paper's use the TensorFlow Lite linear allocator with Belady or an ILP-greedy "
            "replacement; MobileNetV2 has M_P = M_R, and the paper too reports that COSMA removes "
            "all non-compulsory traffic at M_P while the baselines do not. "
            "NAS cells: this graph's floor (bound_mib). At the first cell's concatenation the "
            "five block outputs and the concatenated result fill M_R exactly, so the stem output, "
            "still needed by the second cell, must be spilled and reloaded once, a "
            f"reduction of at most {nas_floor_pct:.1f}% against the baselines' "
            f"{nas_baseline_mib:.2f} MiB; divide and conquer "
            f"reaches {float(rows['nas_cell']['reduction_pct']):.1f}% (status "
            f"{rows['nas_cell']['status']}). The paper's 85% averages "
            "four real NAS networks with more cells. ResNet-50: every res5 block's 2.3 MiB "
            "weight leaves no room for the block's shortcut, which is spilled and reloaded; the "
            f"optimum lies between the bound ({float(rows['resnet50']['bound_mib']):.2f} MiB, "
            "evictions forced in every order) and the plan "
            f"({float(rows['resnet50']['cosma_mib']):.2f} MiB). "
            "Solve times: CBC on 8-op windows after the order searches "
            "here, Gurobi on whole graphs in the paper."
        )
    )
    return Reproduction(name="cosma", metrics=metrics, report=doc)
