"""COSMA (Li, Gupta and Malik, "Combined Scheduling, Memory Allocation and Tensor Replacement for
Minimizing Off-Chip Data Accesses of DNN Accelerators", arXiv:2311.18246, 2023): the MILP's cut in
non-compulsory off-chip traffic against replacement baselines, and its solve time per graph.

Setup, after the paper's Section V-A: the scratchpad is the paper's tightest budget M_R, "the
maximum memory required by a single operator", i.e. the inputs and outputs of the hungriest op
(here with its weights, the paper's activation-and-parameter setting); 8-bit tensors, batch 1,
224x224 images for the CNNs. The baselines are the existing methods COSMA compares against:
a fixed topological order (the graph's own, or a minimum-peak-memory order found by local
search; its peak is the m_p_mib column) with tensors placed as their ops run and LRU or
Belady eviction when they do not fit (first_fit: first fit; online_tflite: TensorFlow Lite's
best-fit gap rule with Belady). The metric is the cut against the better first_fit plan of the
two orders, averaged over the graphs on which that baseline moves any non-compulsory byte.
Beside it, a stronger planned baseline that no runtime allocator applies: Belady replacement
counted in bytes first, then TensorFlow Lite's greedy-by-size offsets over the resulting
residency intervals (the tflite columns, reduction_vs_planned_pct). The paper averages its 84%
over ten human-designed DNNs, whose list was not at hand: the CNNs here are ResNet-18/34/50/101,
MobileNetV2, GoogLeNet, SqueezeNet and DenseNet-121 with their original papers' layer shapes.
Its 85% is the divide-and-conquer heuristic on four NAS graphs (PNASNet-5, AmoebaNet-D,
NASNet-A, DARTS); here one 28x28 stack of NASNet-A (4 @ 1056): four normal cells, 44 channels
per branch. The CNNs are solved as the paper solves human-designed DNNs, by one MILP over the
whole graph; the NAS stack by divide and conquer: order search, then two passes of MILP
windows of at most 8 ops, the second cut inside the first's windows. All traffic numbers come
out of archsim's planners.
"""

from __future__ import annotations

import math
import typing

import pandas as pd

from archsim.config.workload import CnnSpec, NasCellSpec, WorkloadConfig
from archsim.mappers.cosma import cosma_plan, solver_name
from archsim.mappers.heuristics import (
    min_peak_order,
    peak_live_bytes,
    plan_greedy_by_size,
    plan_with_eviction,
)
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

# The human-designed CNNs are solved as the paper solves them, one MILP over the whole graph;
# the NAS graph by divide and conquer, with MILP windows of at most WINDOW_OPS ops.
WINDOW_OPS = 8
# per MILP: the node budget stops CBC the same way on any machine; the time limit guards it
TIME_LIMIT_S = 2.0
WHOLE_GRAPH_TIME_LIMIT_S = 60.0
MAX_NODES = 2000
ORDER_EVALUATIONS = 2000

# every CNN preset archsim ships
CNN_MODELS: tuple[str, ...] = typing.get_args(CnnSpec.model_fields["model"].annotation)
GRAPHS: dict[str, CnnSpec | NasCellSpec] = {m: CnnSpec(model=m) for m in CNN_MODELS}
# One stack of NASNet-A (4 @ 1056), the mobile ImageNet model of Zoph et al. 2018, Table 2: N = 4
# normal cells at the 28x28 stage with F = 1056 / 24 = 44 filters per branch (the penultimate
# layer has 24F filters); the reduction cells between stacks are left out.
GRAPHS["nas_cell"] = NasCellSpec(cells=4, channels=44, image_size=28)


def _problem(name: str) -> MemoryProblem:
    config = WorkloadConfig(schema_version=1, name=name, workload=GRAPHS[name])
    return MemoryProblem.at_minimum_required(lower(config))


def compare_graph(name: str) -> dict[str, float | str]:
    """Non-compulsory MiB of the baselines and of COSMA on one graph, and the solve time.

    The paper's baselines: the graph's own order and a minimum-peak-memory order, each with
    Belady replacement and TensorFlow Lite's greedy-by-size offsets (``tflite``). For reference,
    the better order's plan when tensors are placed online as their ops run, by TensorFlow Lite's
    best-fit gap rule with Belady eviction (``online_tflite``) or first fit with LRU or Belady
    (``first_fit``)."""
    problem = _problem(name)
    row: dict[str, float | str] = {"ops": float(len(problem.ops))}
    row["m_r_mib"] = problem.capacity_bytes / 2**20
    low_peak = min_peak_order(problem, evaluations=ORDER_EVALUATIONS)
    row["m_p_mib"] = peak_live_bytes(problem, low_peak) / 2**20
    online: list[float] = []
    first_fit: list[float] = []
    for schedule, order in (("graph", problem.ops), ("minpeak", low_peak)):
        plan = plan_greedy_by_size(problem, order, "belady")
        assert isinstance(plan, MemoryPlan), plan
        row[f"{schedule}_tflite_belady_mib"] = plan.traffic.non_compulsory_bytes / 2**20
        runs = (
            ("belady", "best", online),
            ("lru", "first", first_fit),
            ("belady", "first", first_fit),
        )
        for policy, fit, kept in runs:
            plan = plan_with_eviction(problem, order, policy, fit)
            assert isinstance(plan, MemoryPlan), plan
            kept.append(plan.traffic.non_compulsory_bytes / 2**20)
    row["online_tflite_belady_mib"] = min(online)
    row["first_fit_mib"] = min(first_fit)
    whole_graph = name in CNN_MODELS
    plan = cosma_plan(
        problem,
        time_limit_s=WHOLE_GRAPH_TIME_LIMIT_S if whole_graph else TIME_LIMIT_S,
        max_ilp_ops=len(problem.ops) if whole_graph else WINDOW_OPS,
        max_nodes=MAX_NODES,
        order_evaluations=ORDER_EVALUATIONS,
    )
    assert isinstance(plan, MemoryPlan), plan
    cosma = plan.traffic.non_compulsory_bytes / 2**20
    row["method"] = plan.stats.method
    row["cosma_mib"] = cosma
    row["bound_mib"] = plan.stats.lower_bound_bytes / 2**20
    row["compulsory_mib"] = plan.traffic.compulsory_bytes / 2**20
    row["solve_time_s"] = plan.stats.solve_time_s
    row["subproblems"] = float(plan.stats.subproblems)
    row["orders_tried"] = float(plan.stats.order_evaluations)
    row["status"] = plan.stats.status
    baseline = min(float(row[f"{s}_tflite_belady_mib"]) for s in ("graph", "minpeak"))
    row["planned_baseline_mib"] = baseline
    # a graph on which a baseline moves no non-compulsory byte has no reduction to take
    for key, against in (
        ("reduction_pct", float(row["first_fit_mib"])),
        ("online_reduction_pct", float(row["online_tflite_belady_mib"])),
        ("reduction_vs_planned_pct", baseline),
    ):
        row[key] = 100.0 * (1 - cosma / against) if against else math.nan
    return row


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


@register_reproduction("cosma")
def reproduce_cosma() -> Reproduction:
    rows = {name: compare_graph(name) for name in GRAPHS}
    cnn = [rows[m] for m in CNN_MODELS]
    metrics = {
        "ilp_traffic_reduction_pct": Metric(
            paper=PAPER_ILP_REDUCTION_PCT,
            archsim=_mean([float(r["reduction_pct"]) for r in cnn]),
            tolerance=0.15,
            unit="%",
            description="non-compulsory traffic cut vs topological order + LRU/Belady, mean over CNNs",
        ),
        "nas_traffic_reduction_pct": Metric(
            paper=PAPER_NAS_REDUCTION_PCT,
            archsim=float(rows["nas_cell"]["reduction_pct"]),
            tolerance=0.15,
            unit="%",
            description="divide and conquer on the NAS stack vs topological order + LRU/Belady",
        ),
        "cnn_solve_time_s": Metric(
            paper=PAPER_CNN_SOLVE_TIME_S,
            archsim=_mean([float(r["solve_time_s"]) for r in cnn]),
            tolerance=1.0,
            unit="s",
            description="mean planning time of the CNN graphs (whole-graph MILP, CBC vs Gurobi)",
        ),
        "nas_solve_time_s": Metric(
            paper=PAPER_NAS_SOLVE_TIME_S,
            archsim=float(rows["nas_cell"]["solve_time_s"]),
            tolerance=1.0,
            unit="s",
            description="planning time of the NAS cell graph by divide and conquer",
        ),
    }
    doc = Document(
        "COSMA: scratchpad planning by MILP vs topological order with LRU/Belady eviction"
    )
    doc.add(Paragraph("Regenerate with `archsim reproduce cosma`."))
    doc.add(Paragraph(__doc__.split("\n\n", 1)[1].replace("\n", " ")))
    doc.add(
        Paragraph(
            f"Solver: {solver_name()}, {MAX_NODES} branch-and-bound nodes (CBC) and at most "
            f"{WHOLE_GRAPH_TIME_LIMIT_S:g} s per whole-graph MILP, {TIME_LIMIT_S:g} s per "
            f"window; order search: {ORDER_EVALUATIONS} orders, seed 0. "
            "COSMA starts from the best of the baselines' plans and of the searched order's "
            "plans; status `warm_start` means the MILP windows found nothing better than that "
            "start, which is then the result; `optimal` that every MILP was solved to "
            "optimality or that the plan meets bound_mib, the traffic no plan can avoid "
            "(tensors live across an op in every order that do not fit beside it). "
            "reduction_pct is against first_fit_mib, online_reduction_pct against "
            "online_tflite_belady_mib, reduction_vs_planned_pct against planned_baseline_mib "
            "(the better tflite column); NaN where that baseline moves nothing."
        )
    )
    doc.add(Heading("Per graph"))
    frame = pd.DataFrame([{"graph": name, **row} for name, row in rows.items()])
    doc.add(Table(frame))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Gaps"))
    doc.add(Paragraph(_gaps(rows, cnn)))
    return Reproduction(name="cosma", metrics=metrics, report=doc)


def _gaps(rows: dict[str, dict[str, float | str]], cnn: list[dict[str, float | str]]) -> str:
    """The misses, with the numbers behind them."""
    metric_mean = _mean([float(r["reduction_pct"]) for r in cnn])
    online_mean = _mean([float(r["online_reduction_pct"]) for r in cnn])
    planned_mean = _mean([float(r["reduction_vs_planned_pct"]) for r in cnn])
    per_graph = ", ".join(
        f"{m} {float(rows[m]['reduction_pct']):.0f}% "
        f"({float(rows[m]['first_fit_mib']):.2f} -> {float(rows[m]['cosma_mib']):.2f} MiB)"
        for m in CNN_MODELS
        if not math.isnan(float(rows[m]["reduction_pct"]))
    )
    idle = [m for m in CNN_MODELS if float(rows[m]["planned_baseline_mib"]) == 0]
    planned = ", ".join(
        f"{m} {float(rows[m]['reduction_vs_planned_pct']):.0f}%"
        for m in CNN_MODELS
        if m not in idle
    )
    optimal = [m for m in CNN_MODELS if rows[m]["status"] == "optimal"]
    nas = rows["nas_cell"]
    nas_ceiling = 100 * (1 - float(nas["bound_mib"]) / float(nas["first_fit_mib"]))
    slowest = max(CNN_MODELS, key=lambda m: float(rows[m]["solve_time_s"]))
    resnets = [m for m in CNN_MODELS if m.startswith("resnet")]
    resnet_times = ", ".join(f"{float(rows[m]['solve_time_s']):.1f}" for m in resnets)
    return (
        f"CNNs: against the baselines COSMA compares against, a topological order with "
        f"tensors placed as their ops run and LRU or Belady eviction, the MILP cuts "
        f"{metric_mean:.1f}% on average (per graph: {per_graph}); against TensorFlow Lite's "
        f"best-fit gap rule applied the same way, {online_mean:.1f}%. These baselines lose "
        "bytes to fragmentation and to evicting without knowing where the next tensors must "
        f"go. {len(optimal)} of {len(CNN_MODELS)} CNN plans are proven optimal (whole-graph "
        "MILP, or no non-compulsory byte left), so the cuts are the most any plan achieves at "
        "M_R. The assumption that decides this metric is the baseline's: the paper's Section "
        "V text was not at hand. A planner that first chooses evictions by Belady counting "
        "bytes and only then lays out all residency intervals with TensorFlow Lite's "
        "greedy-by-size offsets is far stronger: it moves no non-compulsory byte at all on "
        f"{', '.join(idle) or 'none'}, and COSMA's cut against it is {planned} "
        f"(mean {planned_mean:.1f}%). No runtime allocator works that way, and such a planner "
        "already combines replacement and allocation, which is what the paper adds over "
        "existing methods; it is reported, not used as the metric. Not modelled: the paper's "
        "ILP-greedy replacement and its ten graphs. On ResNet-50 the optimum lies above the "
        f"lower bound ({float(rows['resnet50']['cosma_mib']):.2f} vs "
        f"{float(rows['resnet50']['bound_mib']):.2f} MiB): every res5 block's 2.3 MiB weight "
        "leaves no room for the block's shortcut. NAS stack: "
        f"{float(nas['first_fit_mib']):.2f} -> {float(nas['cosma_mib']):.2f} MiB "
        f"(bound {float(nas['bound_mib']):.2f} MiB, so no plan cuts more than "
        f"{nas_ceiling:.0f}% here), status {nas['status']}: the cut comes from "
        "the order search, which keeps fewer branch outputs live at once; the 8-op MILP windows "
        "of these cells, crowded with live tensors, reach no better plan within their node and "
        "time limits. The paper's 85% averages four whole NAS networks. Solve time: graphs "
        "whose starting plan meets the bound take no MILP (well under 0.1 s); the whole-graph "
        f"MILPs of {'/'.join(resnets)} take CBC {resnet_times} s "
        f"({slowest}, {int(float(rows[slowest]['ops']))} ops, the longest), where the paper "
        "reports 0.296 s on average with Gurobi on an Apple M1 Pro."
    )
