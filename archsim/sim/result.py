"""Simulation results: frozen per-op records, totals, and the tidy DataFrame built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

# Columns of ``Result.to_dataframe()``, in order; ``bytes_<level>`` columns follow, one per
# memory level that any op touched.
OP_COLUMNS = (
    "op",
    "kind",
    "device",
    "dtype",
    "start_s",
    "cycles",
    "latency_s",
    "energy_j",
    "flops",
    "bytes",
    "op_per_byte",
    "utilization",
    "bound",
    "notes",
)


@dataclass(frozen=True)
class OpRecord:
    """One op as simulated. ``bytes`` is the op's compulsory traffic; ``bytes_by_level`` what the
    device model says moved at each memory level."""

    op: str
    kind: str
    device: str
    dtype: str
    start_s: float
    cycles: float
    latency_s: float
    energy_j: float
    flops: float
    bytes: float
    op_per_byte: float
    utilization: float
    bound: str
    notes: str
    bytes_by_level: Mapping[str, float] = field(default_factory=dict)
    actions: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Totals:
    """Whole-run figures."""

    latency_s: float
    energy_j: float
    dynamic_energy_j: float
    static_energy_j: float
    transfer_s: float
    flops: float
    area_mm2: float
    time_by_bound_s: Mapping[str, float]

    @property
    def edp_j_s(self) -> float:
        return self.energy_j * self.latency_s

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops / self.latency_s

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.latency_s

    @property
    def dominant_bound(self) -> str:
        return max(self.time_by_bound_s.items(), key=lambda kv: kv[1])[0]


def run_totals(
    *,
    latency_s: float,
    dynamic_energy_j: float,
    transfer_energy_j: float,
    transfer_s: float,
    flops: float,
    time_by_bound_s: dict[str, float],
    static_power_w: float,
    area_mm2: float,
) -> Totals:
    """Totals of a run: static power is charged over the whole latency; transfers count as their
    own bound. Shared by ``simulate()`` and the record-free sweep summary so both agree exactly."""
    if transfer_s:
        time_by_bound_s["transfer"] = transfer_s
    static_energy_j = static_power_w * latency_s
    return Totals(
        latency_s=latency_s,
        energy_j=dynamic_energy_j + transfer_energy_j + static_energy_j,
        dynamic_energy_j=dynamic_energy_j + transfer_energy_j,
        static_energy_j=static_energy_j,
        transfer_s=transfer_s,
        flops=flops,
        area_mm2=area_mm2,
        time_by_bound_s=time_by_bound_s,
    )


@dataclass(frozen=True)
class Result:
    """Per-op records in execution order and the totals of one simulated design point."""

    machine: str
    workload: str
    mapper: str
    records: tuple[OpRecord, ...]
    totals: Totals

    def to_dataframe(self) -> pd.DataFrame:
        """One row per op; columns ``OP_COLUMNS`` then ``bytes_<level>`` per memory level."""
        levels = sorted({level for r in self.records for level in r.bytes_by_level})
        rows = []
        for record in self.records:
            row = {column: getattr(record, column) for column in OP_COLUMNS}
            for level in levels:
                row[f"bytes_{level}"] = record.bytes_by_level.get(level, 0.0)
            rows.append(row)
        return pd.DataFrame(rows, columns=[*OP_COLUMNS, *(f"bytes_{lv}" for lv in levels)])

    def time_by_kind_s(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for record in self.records:
            totals[record.kind] = totals.get(record.kind, 0.0) + record.latency_s
        return totals
