"""SMASH (Shivdikar, 2021): row-wise SpGEMM with hashing scratchpads on a PIUMA-like die.

C = A @ A on seeded Chung-Lu power-law matrices, priced by :mod:`archsim.hw.graph_accel` on the
shipped ``piuma_smash`` file for three dataflows; the metric is the row-wise kernel's speedup over
the faster of the inner- and outer-product kernels.
"""

from __future__ import annotations

import pandas as pd

from archsim.config.graph_accel import load_graph_accel
from archsim.hw.graph_accel import (
    inner_product_cost,
    outer_product_cost,
    rowwise_hash_cost,
    rowwise_stats,
    table_slots,
)
from archsim.kernels.sparse_spgemm import power_law_csr
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve

TOLERANCE = 0.15
PAPER_SPEEDUP = 9.4  # SMASH thesis abstract: 9.4x over competing SpGEMM kernels on PIUMA
# (n, mean degree, power-law exponent, seed): R-MAT-like graphs of the size SMASH simulates
MATRICES = ((8192, 8, 2.1, 7), (8192, 16, 2.1, 8), (16384, 8, 2.5, 9))


def dataflow_table() -> pd.DataFrame:
    accel = load_graph_accel(resolve("piuma_smash", "archsim.hwconfigs"))
    slots = table_slots(accel)
    rows = []
    for n, degree, exponent, seed in MATRICES:
        a = power_law_csr(n, degree, exponent, seed)
        stats = rowwise_stats(a, a, slots)
        row = rowwise_hash_cost(accel, a, stats)
        inner = inner_product_cost(accel, a, a)
        outer = outer_product_cost(accel, a, a, stats)
        rows.append(
            {
                "matrix": f"n={n} deg={degree} exp={exponent}",
                "nnz(A)": int(a[1].size),
                "products": stats.products,
                "nnz(C)": stats.output_nnz,
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


@register_reproduction("smash")
def reproduce_smash() -> Reproduction:
    """Row-wise hashing SpGEMM over the faster of inner and outer product (geometric mean)."""
    table = dataflow_table()
    gmean = float(table["over best"].prod() ** (1.0 / len(table)))
    metrics = {
        "rowwise_speedup_over_best_competitor": Metric(
            PAPER_SPEEDUP,
            gmean,
            TOLERANCE,
            "x",
            "row-wise hashing SpGEMM over the faster of inner/outer product, PIUMA-like die",
        )
    }
    doc = Document("SMASH: row-wise SpGEMM with hashing scratchpads")
    doc.add(Paragraph("Regenerate with `archsim reproduce smash`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        "Machine: hwconfigs/piuma_smash.yaml (8 cores x 4 pipelines x 16 threads; clock, "
        "scratchpad and DRAM bandwidth are assumed where the PIUMA papers give no figure).",
        "Workload: C = A @ A on seeded Chung-Lu power-law matrices (the thesis squares "
        "power-law graphs); the paper's 9.4x is read as the speedup over the competing kernel "
        "that does best, and the metric is the geometric mean over the matrices. The stored "
        "sources hold the thesis' abstract and contents only, so its per-matrix figures (Ch. 6) "
        "could not be checked; the per-matrix table below is archsim's alone.",
        "All three kernels take work items dynamically (the next item to the first free "
        "thread, as PIUMA's remote atomics on a shared counter allow and SMASH's window "
        "distribution phase does). Row-wise (SMASH V1, thesis Sec. 5.1): windows of "
        "consecutive rows sized to half a core's scratchpad table, merged by the core's "
        "threads with atomic adds into the shared table, then written back; collisions come "
        "from running the table on the real pattern. Inner product: each row of A expanded "
        "into a scratchpad lookup while all of B streams past it from DRAM (B refetched per "
        "row). Outer product: one kept A entry times its row of B per work item, partial "
        "products written to DRAM, read back and sorted per output row.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gap"))
    doc.add(
        Paragraph(
            "Per matrix the row-wise kernel now wins by a similar margin on every matrix "
            "(earlier: 66x, 66x and 0.33x, from round-robin threads, a per-row merge on the "
            "outer product's hub columns and per-thread hash tables that overflowed on the "
            "skewed matrix). The mean lands above the thesis' 9.4x, so it is a miss, not "
            "agreement: the best competitor is the outer product, whose time is its merge "
            "phase, one thread sorting each output row's partial products; the heaviest "
            "(hub) rows make that phase several times the mean thread's work. A tuned PIUMA "
            "outer product that split hub rows over threads, or merged with a faster "
            "accumulator than a comparison sort, would close some of the gap; the thesis' "
            "baseline code is not available to say which it did. No constant was changed to "
            "close the gap; the tests pin its direction and that the per-matrix speedups agree "
            "with one another."
        )
    )
    doc.add(Heading("Per matrix"))
    doc.add(Table(table.round(3)))
    return Reproduction("smash", metrics, doc)
