"""SMASH (Shivdikar, 2021): row-wise SpGEMM with hashing scratchpads on a PIUMA-like die.

C = A @ A on seeded Chung-Lu power-law matrices, priced by :mod:`archsim.hw.graph_accel` on the
shipped ``piuma_smash`` file for three dataflows; the metric is the row-wise kernel's speedup over
the faster of the inner- and outer-product kernels. A sensitivity table prices the choices the
thesis' stored text does not settle (how the baselines merge, how SMASH's write-back finds its
slots), so the report shows how far each would move the metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from archsim.config.graph_accel import GraphAccelConfig, load_graph_accel
from archsim.hw.graph_accel import (
    RowwiseStats,
    inner_product_cost,
    outer_product_cost,
    rowwise_hash_cost,
    rowwise_stats,
    table_slots,
)
from archsim.kernels.sparse_spgemm import power_law_csr, row_runs
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve

TOLERANCE = 0.15
PAPER_SPEEDUP = 9.4  # SMASH thesis abstract: 9.4x "as compared to competing approaches" on PIUMA
# (n, mean degree, power-law exponent, seed): R-MAT-like graphs of the size SMASH simulates
MATRICES = ((8192, 8, 2.1, 7), (8192, 16, 2.1, 8), (16384, 8, 2.5, 9))
AS_MODELLED = "as modelled"
# choices the stored thesis text does not settle, each as keyword arguments of the cost functions
VARIANTS = {
    AS_MODELLED: ({}, {}),
    "outer merge sorts each row (p log2 p)": ({}, {"merge_kind": "sort"}),
    "outer merge split evenly over all threads": ({}, {"split_rows": True}),
    "row-wise write-back scans the whole table": ({"writeback": "scanned"}, {}),
}


@dataclass(frozen=True)
class Case:
    """One matrix of the workload and the hashing kernel's counts on it."""

    label: str
    a: tuple[np.ndarray, np.ndarray]
    stats: RowwiseStats


def cases(accel: GraphAccelConfig) -> list[Case]:
    slots = table_slots(accel)
    out = []
    for n, degree, exponent, seed in MATRICES:
        a = power_law_csr(n, degree, exponent, seed)
        out.append(Case(f"n={n} deg={degree} exp={exponent}", a, rowwise_stats(a, a, slots)))
    return out


def _piuma() -> GraphAccelConfig:
    return load_graph_accel(resolve("piuma_smash", "archsim.hwconfigs"))


def dataflow_table(
    accel: GraphAccelConfig | None = None, workload: list[Case] | None = None
) -> pd.DataFrame:
    """Per matrix: counts of the hashing kernel and the three dataflows' times."""
    accel = accel or _piuma()
    rows = []
    for case in workload or cases(accel):
        a, stats = case.a, case.stats
        row = rowwise_hash_cost(accel, a, stats)
        inner = inner_product_cost(accel, a, a)
        outer = outer_product_cost(accel, a, a, stats)
        rows.append(
            {
                "matrix": case.label,
                "nnz(A)": int(a[1].size),
                "products": stats.products,
                "nnz(C)": stats.output_nnz,
                "runs/row": float(row_runs(a, a).mean()),
                "probes/product": stats.collisions_per_product,
                "overflow share": stats.overflow_share,
                "row-wise ms": row.latency_s * 1e3,
                "row-wise bound": row.bound,
                "row-wise imbalance": row.imbalance,
                "inner ms": inner.latency_s * 1e3,
                "outer ms": outer.latency_s * 1e3,
                "outer imbalance": outer.imbalance,
                "over inner": inner.latency_s / row.latency_s,
                "over outer": outer.latency_s / row.latency_s,
                "over best": min(inner.latency_s, outer.latency_s) / row.latency_s,
            }
        )
    return pd.DataFrame(rows)


def _gmean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def sensitivity_table(
    accel: GraphAccelConfig | None = None, workload: list[Case] | None = None
) -> pd.DataFrame:
    """The metric under each unsettled choice: per-matrix speedup over the best, and the mean."""
    accel = accel or _piuma()
    workload = workload or cases(accel)
    inner_s = [inner_product_cost(accel, c.a, c.a).latency_s for c in workload]
    rows = []
    for variant, (row_kw, outer_kw) in VARIANTS.items():
        speedups = []
        for case, inner in zip(workload, inner_s, strict=True):
            row = rowwise_hash_cost(accel, case.a, case.stats, **row_kw).latency_s
            outer = outer_product_cost(accel, case.a, case.a, case.stats, **outer_kw).latency_s
            speedups.append(min(inner, outer) / row)
        entry: dict[str, object] = {"variant": variant}
        entry.update({case.label: s for case, s in zip(workload, speedups, strict=True)})
        entry["geometric mean"] = _gmean(speedups)
        entry["vs paper"] = f"{_gmean(speedups) / PAPER_SPEEDUP - 1.0:+.0%}"
        rows.append(entry)
    return pd.DataFrame(rows)


@register_reproduction("smash")
def reproduce_smash() -> Reproduction:
    """Row-wise hashing SpGEMM over the faster of inner and outer product (geometric mean)."""
    accel = _piuma()
    workload = cases(accel)
    table = dataflow_table(accel, workload)
    sensitivity = sensitivity_table(accel, workload).set_index("variant")
    gmean = _gmean(list(table["over best"]))
    metrics = {
        "rowwise_speedup_over_best_competitor": Metric(
            PAPER_SPEEDUP,
            gmean,
            TOLERANCE,
            "x",
            "row-wise hashing SpGEMM over the faster of inner/outer product, PIUMA-like die",
        )
    }
    spread = sensitivity["geometric mean"]
    within = (
        "within"
        if metrics["rowwise_speedup_over_best_competitor"].within_tolerance
        else ("outside")
    )
    outer_best = bool((table["over best"] == table["over outer"]).all())
    best = "outer" if outer_best else "inner or outer"
    doc = Document("SMASH: row-wise SpGEMM with hashing scratchpads")
    doc.add(Paragraph("Regenerate with `archsim reproduce smash`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("What the thesis says, and what could not be checked"))
    for text in (
        "Sources searched: the thesis (arXiv:2105.14156) as stored by huggingface.co/papers, "
        "docslib.org and researchgate.net, and its abstract pages. Every stored copy ends after "
        "the front matter, so the abstract and the table of contents are all that could be "
        "read. The contents settle the kernel's structure: SMASH V1, atomic hashing, in three "
        "phases (window distribution 5.1.1, hashing 5.1.2, write-back 5.1.3); V2 adds "
        "tokenization (5.2) and V3 fragments memory (5.3); the results (Ch. 6) cover dataset "
        "arithmetic intensity, DRAM and cache performance, workload distribution, instruction "
        "throughput and application speedup, simulated on Sniper (4.2.2).",
        "Not settled by the stored text: the matrices (sizes, densities, R-MAT parameters), the "
        "thread count, which SMASH version the 9.4x belongs to, and how the inner- and "
        "outer-product baselines were written. The abstract says the kernel 'can achieve 9.4x "
        "speedup as compared to competing approaches' and that the thesis 'compares our SpGEMM "
        "implementation against prior solutions, all mapped to the PIUMA framework', so the "
        "9.4x is read as row-wise over the prior dataflows (inner and outer product), not as "
        "V3 over V1; archsim takes the faster of the two baselines per matrix and the geometric "
        "mean over matrices. archsim models V1; V2 and V3 are optimizations of it, so a 9.4x "
        "taken with V3 would put V1's own speedup at or below it.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        "Machine: hwconfigs/piuma_smash.yaml (8 cores x 4 pipelines x 16 threads; clock, "
        "scratchpad and DRAM bandwidth are assumed where the PIUMA papers give no figure).",
        "Workload: C = A @ A on seeded Chung-Lu power-law matrices (the thesis squares "
        "power-law graphs; its own matrices could not be read).",
        "All three kernels take work items dynamically (the next item to the first free "
        "thread, as PIUMA's remote atomics on a shared counter allow and SMASH's window "
        "distribution phase does). Row-wise (SMASH V1): windows of consecutive rows sized to "
        "half a core's scratchpad table, merged by the core's threads with atomic adds into the "
        "shared table; collisions come from running the table on the real pattern. The "
        "write-back reads each used slot from a list the inserts kept, writes it to C and sets "
        "the slot back to empty for the next window. Inner product: each row of A expanded "
        "into a scratchpad lookup while all of B streams past it from DRAM (B refetched per "
        "row). Outer product: one kept A entry times its row of B per work item, partial "
        "products written to DRAM; the merge phase reads them back and one thread per output "
        "row merges the row's sorted runs (one per kept A[i, k], as OuterSPACE keeps per-row "
        "lists of partial-product chunks) through a tournament tree, ceil(log2 runs) "
        "comparisons per partial product plus one to fold it into the output.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            f"The mean lands {within} the tolerance, on archsim's own matrices, with the "
            f"{best} product the faster baseline on every one. An earlier model had it at "
            "16.6x: its outer-product merge was a comparison sort of each row's partial "
            "products, which ignores that they arrive as sorted runs (the sensitivity table "
            f"prices that choice at {spread.iloc[1]:.1f}x), and its row-wise write-back found "
            "and cleared its used slots for free. The agreement is not tight evidence: the "
            "outer product's "
            "time is set by its heaviest row, merged by one thread (outer imbalance column); a "
            "baseline that cut heavy rows by column ranges would bring the mean to "
            f"{spread.iloc[2]:.1f}x, and a SMASH write-back that scanned the whole table instead "
            f"of a list would bring it to {spread.iloc[3]:.1f}x. Which of these the thesis' "
            "code did, its stored text does not say. The tail also scales with the issue rate "
            "of a lone thread, taken as one sixteenth of its pipeline (round-robin issue), and "
            "the instruction counts per step are assumed, not measured on PIUMA. No constant "
            "was set to reach 9.4x."
        )
    )
    doc.add(Heading("Sensitivity"))
    doc.add(
        Paragraph(
            "Speedup of the row-wise kernel over the faster baseline, per matrix, under each "
            "choice the stored thesis text leaves open (one change at a time)."
        )
    )
    doc.add(Table(sensitivity.reset_index().round(2)))
    doc.add(Heading("Per matrix"))
    doc.add(Table(table.round(3)))
    return Reproduction("smash", metrics, doc)
