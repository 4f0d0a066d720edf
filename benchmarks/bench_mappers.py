"""Speed of the mappers: COSMA MILP solve time and traffic against LRU/Belady as graphs grow, and
the tiling search's candidates per second.

Run: ``python benchmarks/bench_mappers.py`` (prints a JSON summary). Not a test: numbers depend
on the machine and the MILP solver (CBC unless highspy is installed).

Networks: the CNNs and the NASNet-A stack of ``archsim reproduce cosma`` (``networks_at_m_r``:
whole-graph MILP per CNN, divide and conquer on the stack; solve time, status, MiB moved).

Graphs: residual layer lists of 8, 16, 32 and 64 ops (3x3 convolutions with a skip across three layers every third,
a 1x1/5x5 branch pair joined by a concatenation every eight) and NAS cell stacks of 1 and 2
NASNet-A-like cells. Each gets the smallest scratchpad that runs every op untiled (the largest
working set of one op, COSMA's M_R), as in ``archsim reproduce cosma``; the MILP windows are 8 ops,
after an order search of 2000 orders per start, in two passes with staggered cuts (divide and
conquer); ``lower_bound_kib`` is the traffic no plan avoids (a plan meeting it is optimal).
Baselines on the graph order: first fit with LRU or Belady eviction (``reduction_pct`` is against
the better), and Belady counting bytes with TensorFlow Lite's greedy-by-size offsets
(``tflite_belady``, COSMA's own baseline; ``reduction_vs_tflite_pct``).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from archsim.config import load_machine, load_workload
from archsim.config.workload import NasCellSpec, WorkloadConfig
from archsim.hw import Machine
from archsim.mappers.cosma import cosma_plan, solver_name
from archsim.mappers.heuristics import plan_greedy_by_size, plan_with_eviction
from archsim.mappers.memory_plan import MemoryPlan, MemoryProblem
from archsim.mappers.tiling_search import search_tiling
from archsim.workloads import lower

ROOT = Path(__file__).parents[1]
WINDOW_OPS = 8
TIME_LIMIT_S = 5.0


def residual_layers(ops: int) -> dict:
    """A layer-list workload of exactly ``ops`` layers."""
    layers: list[dict] = [{"name": "l0", "op": "conv2d", "out_channels": 32, "kernel": 3}]
    trunk = ["l0"]  # outputs with the trunk's 32 channels, which adds may join
    while len(layers) < ops:
        i = len(layers)
        if i % 8 == 5 and ops - i >= 3:
            layers += [
                {
                    "name": f"l{i}",
                    "op": "conv2d",
                    "out_channels": 16,
                    "kernel": 1,
                    "inputs": [trunk[-1]],
                },
                {
                    "name": f"l{i + 1}",
                    "op": "conv2d",
                    "out_channels": 16,
                    "kernel": 5,
                    "inputs": [trunk[-1]],
                },
                {"name": f"l{i + 2}", "op": "concat", "inputs": [f"l{i}", f"l{i + 1}"]},
            ]
        elif i % 3 == 2 and len(trunk) >= 4:
            layers.append({"name": f"l{i}", "op": "add", "inputs": [trunk[-1], trunk[-4]]})
        else:
            layers.append(
                {
                    "name": f"l{i}",
                    "op": "conv2d",
                    "out_channels": 32,
                    "kernel": 3,
                    "inputs": [trunk[-1]],
                }
            )
        trunk.append(layers[-1]["name"])
    return {
        "generator": "layer_list",
        "input": {"channels": 32, "height": 28, "width": 28},
        "dtype": "int8",
        "layers": layers,
    }


def memory_problem(config: WorkloadConfig) -> MemoryProblem:
    return MemoryProblem.at_minimum_required(lower(config))


def bench_cosma() -> list[dict[str, float | str]]:
    cases: list[tuple[str, WorkloadConfig]] = []
    for ops in (8, 16, 32, 64):
        spec = {"schema_version": 1, "name": f"residual{ops}", "workload": residual_layers(ops)}
        cases.append((f"layer_list_{ops}", WorkloadConfig.model_validate(spec)))
    for cells in (1, 2):
        spec = NasCellSpec(cells=cells, channels=64, image_size=28)
        cases.append(
            (f"nas_{cells}_cells", WorkloadConfig(schema_version=1, name="nas", workload=spec))
        )
    rows: list[dict[str, float | str]] = []
    for name, config in cases:
        problem = memory_problem(config)
        row: dict[str, float | str] = {"graph": name, "ops": len(problem.ops)}
        planners = {
            "lru": lambda p: plan_with_eviction(p, p.ops, "lru"),
            "belady": lambda p: plan_with_eviction(p, p.ops, "belady"),
            "tflite_belady": lambda p: plan_greedy_by_size(p, p.ops, "belady"),
        }
        for key, planner in planners.items():
            started = time.perf_counter()
            plan = planner(problem)
            assert isinstance(plan, MemoryPlan), plan
            row[f"{key}_s"] = round(time.perf_counter() - started, 4)
            row[f"{key}_noncompulsory_kib"] = round(plan.traffic.non_compulsory_bytes / 1024, 1)
        plan = cosma_plan(problem, time_limit_s=TIME_LIMIT_S, max_ilp_ops=WINDOW_OPS)
        assert isinstance(plan, MemoryPlan), plan
        row["cosma_s"] = round(plan.stats.solve_time_s, 3)
        row["cosma_noncompulsory_kib"] = round(plan.traffic.non_compulsory_bytes / 1024, 1)
        row["cosma_status"] = plan.stats.status
        row["subproblems"] = plan.stats.subproblems
        row["orders_tried"] = plan.stats.order_evaluations
        row["lower_bound_kib"] = round(plan.stats.lower_bound_bytes / 1024, 1)
        cosma = float(row["cosma_noncompulsory_kib"])
        first_fit = min(float(row["lru_noncompulsory_kib"]), float(row["belady_noncompulsory_kib"]))
        offline = float(row["tflite_belady_noncompulsory_kib"])
        for key, baseline in (("reduction_pct", first_fit), ("reduction_vs_tflite_pct", offline)):
            row[key] = round(100 * (1 - cosma / baseline), 1) if baseline else 0.0
        rows.append(row)
    return rows


def bench_tiling_search() -> dict[str, float]:
    machine = Machine.from_config(load_machine(ROOT / "hwconfigs" / "tpu_like.yaml").config)
    npu = machine.devices["npu"]
    graph = lower(load_workload(ROOT / "workloads" / "resnet50.yaml").config)
    ops = [op for op in graph if op.kind in ("conv2d", "gemm")]
    search_tiling(ops[0], npu)  # load the compiled kernel once
    results = {}
    for prune in (True, False):
        started = time.perf_counter()
        found = [search_tiling(op, npu, prune=prune) for op in ops]
        wall = time.perf_counter() - started
        evaluated = sum(r.candidates_evaluated for r in found)
        replayed = sum(r.candidates_replayed for r in found)
        key = "pruned" if prune else "brute_force"
        results[f"{key}_ops"] = len(ops)
        results[f"{key}_wall_s"] = round(wall, 3)
        results[f"{key}_candidates_evaluated"] = evaluated
        results[f"{key}_candidates_replayed"] = replayed
        results[f"{key}_candidates_per_s"] = round(evaluated / wall)
        results[f"{key}_median_op_candidates_per_s"] = round(
            statistics.median(r.candidates_per_s for r in found)
        )
    return results


def bench_networks() -> list[dict[str, float | str]]:
    """Whole-graph MILP on the CNNs and divide and conquer on the NASNet-A stack, at M_R, as in
    ``archsim reproduce cosma``: the graphs on which the MILP has work left after the search."""
    from archsim.reproduce.cosma import GRAPHS, compare_graph

    keep = ("ops", "solve_time_s", "status", "first_fit_mib", "cosma_mib", "bound_mib")
    results = []
    for name in GRAPHS:
        row = compare_graph(name)
        results.append({"graph": name, **{k: row[k] for k in keep}})
    return results


def main() -> None:
    summary = {
        "solver": solver_name(),
        "cosma_window_ops": WINDOW_OPS,
        "cosma_time_limit_s": TIME_LIMIT_S,
        "memory_planning": bench_cosma(),
        "networks_at_m_r": bench_networks(),
        "tiling_search_resnet50_tpu_like": bench_tiling_search(),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
