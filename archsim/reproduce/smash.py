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
        "Workload: C = A @ A on seeded Chung-Lu power-law matrices (the thesis squares R-MAT "
        "graphs); the paper's 9.4x is read as the speedup over the competing kernel that does "
        "best, and the metric is the geometric mean over the matrices.",
        "Each thread's hash table is its share of the core scratchpad (8-byte slots); rows are "
        "dealt round-robin to threads; collisions and overflow come from running the table on "
        "the real pattern.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gap"))
    doc.add(
        Paragraph(
            "The geometric mean lands near 9.4x, but it averages matrices that disagree with the "
            "paper in opposite directions, so it is not evidence of agreement. "
            "The modelled row-wise kernel wins by far more than 9.4x on the smaller matrices: "
            "the inner product refetches B for every row, and the outer product's per-k work "
            "(column of A times row of B) is the product of two power-law degrees, so round-"
            "robin threads are badly imbalanced. The thesis' baselines were tuned PIUMA kernels "
            "whose load balancing and caching archsim does not model, which makes them faster "
            "than modelled here. On the larger, more skewed matrix the per-thread tables fill: "
            "long probe chains and one overloaded thread make the row-wise kernel lose to the "
            "outer product. No constant was changed to close the gap; the tests also pin the "
            "per-matrix directions (row-wise beats both on the moderate matrices)."
        )
    )
    doc.add(Heading("Per matrix"))
    doc.add(Table(table.round(3)))
    return Reproduction("smash", metrics, doc)
