"""Speed of design-space exploration: design points per second per core on a Llama-2-7B decode
step (NPU and GPU models), the wall time of a 10,000-point sweep, and Dask scaling.

Run: ``python benchmarks/bench_dse.py [--points N] [--sweep-points N] [--dask-points N]``
(prints a JSON summary). Not a test: numbers depend on the machine; the README quotes them for a
2-core machine. Every point of every measurement is a distinct design (random samples of a large
space), so caches that only help repeated points do not flatter the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from archsim.config import load_workload, machine_from_text
from archsim.config.search import SearchConfig
from archsim.dse.evaluate import evaluate_points
from archsim.dse.executor import dask_client, run_dask
from archsim.dse.search import run_search
from archsim.dse.space import DesignSpace
from archsim.dse.sweep import run_sweep

ROOT = Path(__file__).parents[1]
DECODE = ROOT / "workloads" / "llama2_7b_decode.yaml"

NPU_SPACE = """
sweep:
  devices.npu.systolic_array.count: [1, 2, 4, 8, 16, 32]
  devices.npu.systolic_array.rows: [32, 64, 128, 256]
  devices.npu.systolic_array.cols: [32, 64, 128, 256]
  devices.npu.scratchpad.size: ["4 MiB", "8 MiB", "16 MiB", "32 MiB", "64 MiB", "128 MiB"]
  devices.npu.dram.bandwidth: ["0.3 TB/s", "0.6 TB/s", "1.2 TB/s", "2.4 TB/s", "3.6 TB/s", "4.8 TB/s"]
  devices.npu.clock: ["700 MHz", "940 MHz", "1050 MHz", "1400 MHz"]
"""

GPU_SPACE = """
sweep:
  devices.h100.sm_count: [66, 78, 100, 114, 132, 144]
  devices.h100.hbm.bandwidth: ["2 TB/s", "2.6 TB/s", "3.35 TB/s", "4 TB/s", "4.8 TB/s", "6 TB/s"]
  devices.h100.l2.size: ["25 MiB", "50 MiB", "60 MiB", "96 MiB"]
  devices.h100.tensor_throughput.bf16: ["500 TFLOP/s", "750 TFLOP/s", "989.4 TFLOP/s", "1250 TFLOP/s"]
  devices.h100.kernel_launch: ["2 us", "3 us", "4 us", "5 us"]
"""


def _machine(name: str, space: str, search: str = ""):
    text = (ROOT / "hwconfigs" / f"{name}.yaml").read_text()
    if "\nsweep:" in text:
        text = text[: text.index("\nsweep:")]
    return machine_from_text(text + space + search, f"{name}+bench")


def _sample(machine_file, n: int, seed: int = 0):
    space = DesignSpace(machine_file, load_workload(DECODE))
    points = []
    run_search(
        space,
        SearchConfig(strategy="random", budget=n, seed=seed),
        lambda batch: points.extend(batch) or [{"point": p.index} for p in batch],
    )
    return points


def points_per_second(machine_file, n: int) -> dict[str, float]:
    """One core: distinct points, one process, lowering shared as in a sweep worker."""
    points = _sample(machine_file, n)
    evaluate_points(points[:2], None)  # load the compiled kernels first
    started = time.perf_counter()
    rows = evaluate_points(points, None)
    wall_s = time.perf_counter() - started
    return {
        "points": len(rows),
        "feasible": sum(bool(r["feasible"]) for r in rows),
        "wall_s": round(wall_s, 3),
        "points_per_s_per_core": round(len(rows) / wall_s, 1),
    }


def sweep_wall_time(n: int, jobs: int = 2) -> dict[str, float]:
    """``archsim sweep`` as a library call: random search of ``n`` points on ``jobs`` processes."""
    search = f"search:\n  strategy: random\n  budget: {n}\n  seed: 1\n"
    machine_file = _machine("tpu_like", NPU_SPACE, search)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        outcome = run_sweep(
            machine_file, load_workload(DECODE), Path(out), jobs=jobs, progress=False
        )
        wall_s = time.perf_counter() - started
    return {
        "points": len(outcome.table),
        "jobs": jobs,
        "wall_s": round(wall_s, 1),
        "points_per_s": round(len(outcome.table) / wall_s, 1),
    }


def dask_scaling(n: int) -> dict[str, dict[str, float]]:
    """The same ``n`` points on a LocalCluster of 1 and of 2 worker processes."""
    points = _sample(_machine("tpu_like", NPU_SPACE), n, seed=2)
    scaling = {}
    for workers in (1, 2):
        with dask_client(workers=workers, processes=True) as client:
            # every worker imports archsim and loads the compiled kernels before the clock starts
            client.run(evaluate_points, points[:1], None)
            started = time.perf_counter()
            rows = run_dask(points, client, progress=False)
            wall_s = time.perf_counter() - started
        scaling[f"{workers}_workers"] = {
            "points": len(rows),
            "wall_s": round(wall_s, 2),
            "points_per_s": round(len(rows) / wall_s, 1),
        }
    return scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--points", type=int, default=300, help="points per model for per-core rates"
    )
    parser.add_argument("--sweep-points", type=int, default=10_000)
    parser.add_argument("--dask-points", type=int, default=600)
    args = parser.parse_args()
    summary = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "workload": "llama2_7b_decode (547 ops, batch 8, 2048 context)",
        "npu_points_per_s_per_core": points_per_second(
            _machine("tpu_like", NPU_SPACE), args.points
        ),
        "gpu_points_per_s_per_core": points_per_second(_machine("h100", GPU_SPACE), args.points),
        # before the long sweep: measured after it, in the same process, the 2-worker cluster
        # ran no faster than the 1-worker one (a fresh process shows the scaling)
        "dask_local_cluster": dask_scaling(args.dask_points),
        f"sweep_{args.sweep_points}_points_2_cores": sweep_wall_time(args.sweep_points),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
