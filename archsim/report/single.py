"""Output of ``archsim simulate`` and ``archsim show``: per-op tables, JSON, roofline plot."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from archsim.config.machine import MachineConfig
from archsim.hw.machine import Machine
from archsim.ir.graph import OpGraph
from archsim.ir.tensor import DType
from archsim.pipeline import PointOutcome
from archsim.report import breakdown
from archsim.report.plots import roofline_plot
from archsim.sim.result import Result


def simulate_json(outcome: PointOutcome) -> dict[str, Any]:
    """``{"total": {...}, "ops": [{"name", "kind", "device", "cycles", "latency_s", ...}]}``."""
    assert outcome.result is not None
    result = outcome.result
    totals = result.totals
    total = {
        "latency_s": totals.latency_s,
        "energy_j": totals.energy_j,
        "dynamic_energy_j": totals.dynamic_energy_j,
        "static_energy_j": totals.static_energy_j,
        "flops": totals.flops,
        "achieved_flops_per_s": totals.achieved_flops_per_s,
        "throughput_per_s": outcome.work_items / totals.latency_s,
        "throughput_unit": f"{outcome.work_unit}/s",
        "area_mm2": totals.area_mm2,
        "edp_j_s": totals.edp_j_s,
        "power_w": totals.average_power_w,
        "dominant_bound": totals.dominant_bound,
        "time_by_bound_s": dict(totals.time_by_bound_s),
        "machine": result.machine,
        "workload": result.workload,
        "mapper": result.mapper,
    }
    ops = result.to_dataframe().rename(columns={"op": "name"})
    return {"total": total, "ops": ops.to_dict(orient="records")}


def simulate_table(outcome: PointOutcome) -> str:
    assert outcome.result is not None
    result = outcome.result
    ops = result.to_dataframe()
    shown = pd.DataFrame(
        {
            "op": ops["op"],
            "kind": ops["kind"],
            "device": ops["device"],
            "latency_us": (ops["latency_s"] * 1e6).round(3),
            "energy_uj": (ops["energy_j"] * 1e6).round(3),
            "op/B": ops["op_per_byte"].round(2),
            "util": ops["utilization"].round(3),
            "bound": ops["bound"],
            "notes": ops["notes"],
        }
    )
    totals = result.totals
    lines = [
        shown.to_string(index=False, max_colwidth=48),
        "",
        f"total: {totals.latency_s * 1e3:.4f} ms, {outcome.work_items / totals.latency_s:.4g} "
        f"{outcome.work_unit}/s, {totals.energy_j * 1e3:.4f} mJ "
        f"({totals.static_energy_j / totals.energy_j:.0%} static), {totals.area_mm2:.0f} mm2, "
        f"{totals.achieved_flops_per_s / 1e12:.2f} TFLOP/s achieved",
        breakdown.explain(result),
    ]
    return "\n".join(lines)


def roofline_for(result: Result, machine_config: MachineConfig, path: Path) -> Path:
    """Roofline of the ops run on the device that takes most of the time."""
    ops = result.to_dataframe()
    device_name = ops.groupby("device")["latency_s"].sum().idxmax()
    device = Machine.from_config(machine_config).devices[device_name]
    on_device = ops[ops["device"] == device_name]
    dtype = DType(on_device.groupby("dtype")["latency_s"].sum().idxmax())
    return roofline_plot(
        on_device,
        path,
        f"{result.workload} on {result.machine} / {device_name} ({dtype.value})",
        peak_flops_per_s=device.peak_flops_per_s(dtype) or None,
        peak_bw_bytes_per_s=device.peak_bw_bytes_per_s(),
    )


def graph_summary_text(graph: OpGraph, show_ops: bool) -> str:
    summary = graph.summary()
    kinds = ", ".join(f"{k} {n}" for k, n in Counter(summary.ops_by_kind).most_common())
    lines = [
        f"workload:   {summary.name}",
        f"ops:        {summary.op_count} ({kinds})",
        f"parameters: {summary.parameter_count / 1e9:.3f} B ({summary.weight_bytes / 2**30:.2f} GiB)",
        f"FLOPs:      {summary.flops / 1e9:.2f} GFLOP",
        f"bytes:      {summary.bytes / 2**20:.1f} MiB compulsory traffic",
        f"Op/B:       {summary.op_per_byte:.2f}",
    ]
    if show_ops:
        rows = [
            {
                "op": op.name,
                "kind": op.kind,
                "dtype": op.dtype.value,
                "GFLOP": op.flops() / 1e9,
                "MiB": op.bytes() / 2**20,
                "op/B": op.op_per_byte(),
            }
            for op in graph
        ]
        lines += ["", pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    return "\n".join(lines)
