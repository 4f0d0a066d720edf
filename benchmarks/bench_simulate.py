"""Speed of archsim itself: one Llama-2-7B decode step on the NPU, and a 100-point sweep.

Run: ``python benchmarks/bench_simulate.py`` (prints a JSON summary). Not a test: numbers depend
on the machine; the README and release notes quote them for a 2-core machine.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

from archsim.config import load_machine, load_workload
from archsim.dse.executor import run_local
from archsim.dse.space import expand_grid
from archsim.hw import Machine
from archsim.mappers import get_mapper
from archsim.sim import simulate
from archsim.workloads import lower

ROOT = Path(__file__).parents[1]


def time_simulate(repeats: int = 20) -> dict[str, float]:
    machine_file = load_machine(ROOT / "hwconfigs" / "tpu_like.yaml")
    workload = load_workload(ROOT / "workloads" / "llama2_7b_decode.yaml").config
    started = time.perf_counter()
    graph = lower(workload)
    lower_s = time.perf_counter() - started
    timings = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        machine = Machine.from_config(machine_file.config)  # fresh device caches every time
        result = simulate(get_mapper("greedy").map(graph, machine), machine)
        timings.append(time.perf_counter() - started)
    return {
        "ops": len(graph),
        "lower_s": lower_s,
        "first_simulate_s (includes JIT or cache load)": timings[0],
        "simulate_median_s": statistics.median(timings[1:]),
        "predicted_latency_ms": result.totals.latency_s * 1e3,
    }


def time_sweep(points_wanted: int = 100, jobs: int = 2) -> dict[str, float]:
    machine_file = load_machine(ROOT / "hwconfigs" / "tpu_like.yaml")
    workload_file = load_workload(ROOT / "workloads" / "llama2_7b_decode.yaml")
    points = expand_grid(machine_file, workload_file)
    points = list(itertools.islice(itertools.cycle(points), points_wanted))
    started = time.perf_counter()
    rows = run_local(points, jobs=jobs, progress=False)
    wall_s = time.perf_counter() - started
    return {"points": len(rows), "jobs": jobs, "wall_s": wall_s, "points_per_s": len(rows) / wall_s}


def main() -> None:
    summary = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "simulate_llama2_7b_decode_npu": time_simulate(),
        "sweep_100_points": time_sweep(),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
