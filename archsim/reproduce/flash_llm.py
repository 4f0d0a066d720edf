"""Flash-LLM (Xia et al., VLDB 2024): unstructured SpMM on A100 tensor cores at 70-90% sparsity.

The kernels are archsim's models in :mod:`archsim.hw.gpu_sparse` on the shipped ``a100`` machine
file; the metrics are the mean speedups of Flash-LLM over the dense GEMM, Sputnik and SparTA across
the paper's OPT weight shapes and batch sizes, per sparsity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from archsim.config.loader import load_machine
from archsim.hw.gpu_sparse import (
    FlashLlmTiling,
    dense_gemm,
    expected_two_four_remainder,
    flash_llm_spmm,
    sparta_spmm,
    sputnik_spmm,
)
from archsim.kernels.sparse_tiles import tile_nnz_from_density
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve

TOLERANCE = 0.15
SEED = 2024
# Weight shapes (output features, reduction) of OPT-30B/66B layers: QKV, output projection and
# the two FFN matrices at hidden 7168 (OPT-30B), as the paper's kernel benchmark takes them.
SHAPES = ((21504, 7168), (7168, 7168), (28672, 7168), (7168, 28672))
BATCHES = (8, 16, 32)
# Flash-LLM Sec. 6.1 (and the authors' summary): mean speedups at 70/80/90% sparsity.
PAPER = {
    0.7: {"dense": 1.4, "sputnik": 3.6, "sparta": 1.4},
    0.8: {"dense": 1.7, "sputnik": 3.0, "sparta": 1.4},
    0.9: {"dense": 2.1, "sputnik": 2.0, "sparta": 1.6},
}


def speedup_table(machine: str = "a100") -> pd.DataFrame:
    """One row per (sparsity, shape, batch): every kernel's time and Flash-LLM's speedups."""
    gpu = load_machine(resolve(machine, "archsim.hwconfigs")).config.devices[0]
    tiling = FlashLlmTiling()
    rows = []
    for sparsity in PAPER:
        density = 1.0 - sparsity
        for n, k in SHAPES:
            counts = tile_nnz_from_density(k, n, tiling.tile_k, tiling.tile_n, density, SEED)
            remainder = expected_two_four_remainder(density) * k * n
            for tokens in BATCHES:
                flash = flash_llm_spmm(gpu, tokens, counts, k, n, tiling)
                others = {
                    "dense": dense_gemm(gpu, tokens, k, n),
                    "sputnik": sputnik_spmm(gpu, tokens, float(counts.sum()), k, n),
                    "sparta": sparta_spmm(gpu, tokens, k, n, remainder),
                }
                row = {
                    "sparsity": sparsity,
                    "M/K/N": f"{n}/{k}/{tokens}",
                    "flash-llm us": flash.latency_s * 1e6,
                    "flash-llm bound": flash.bound,
                    "imbalance": flash.imbalance,
                    "config": flash.notes,
                }
                for name, cost in others.items():
                    row[f"{name} us"] = cost.latency_s * 1e6
                    row[f"over {name}"] = cost.latency_s / flash.latency_s
                rows.append(row)
    return pd.DataFrame(rows)


@register_reproduction("flash-llm")
def reproduce_flash_llm() -> Reproduction:
    """Flash-LLM SpMM speedups over dense, Sputnik and SparTA at 70, 80 and 90% sparsity."""
    table = speedup_table()
    metrics = {}
    for sparsity, targets in PAPER.items():
        part = table[table["sparsity"] == sparsity]
        for name, paper in targets.items():
            metrics[f"speedup_over_{name}_{round(sparsity * 100)}"] = Metric(
                paper,
                float(np.mean(part[f"over {name}"])),
                TOLERANCE,
                "x",
                f"mean Flash-LLM speedup over {name} at {sparsity:.0%} sparsity, A100",
            )
    return Reproduction("flash-llm", metrics, _report(table, metrics))


def _report(table: pd.DataFrame, metrics: dict[str, Metric]) -> Document:
    doc = Document("Flash-LLM: unstructured SpMM on A100 tensor cores")
    doc.add(Paragraph("Regenerate with `archsim reproduce flash-llm`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        "Machine: the shipped a100.yaml (108 SMs, 312 TFLOP/s fp16, 2039 GB/s HBM, 0.6 us HBM "
        "latency, 163 KiB shared memory per SM). No constant was fitted to this paper.",
        "Shapes: OPT weights at hidden 7168 (QKV 21504x7168, output 7168x7168, FFN 28672x7168 "
        "and 7168x28672) times 8, 16 and 32 tokens; the paper's figure spans OPT layers at these "
        "batch sizes, so its mean is assumed to weigh them alike. Metrics are arithmetic means.",
        "Masks: i.i.d. unstructured, per-tile counts drawn binomially (seed 2024), which is "
        "the distribution of a real random mask's tile counts.",
        "Flash-LLM: 256x64 tiles (its TilingConfig for 4 warps), Tiled-CSL (4 bytes per "
        "non-zero, 4 per tile), double buffering with one load in flight per block, shared "
        "memory at 128 B/clock/SM for zero-fill, scatter and MMA reads, split-K searched 1-8 "
        "with a separate reduction kernel, blocks list-scheduled on SM slots.",
        "Sputnik: 4 bytes per non-zero, activation rows gathered through L2, fp32 FMAs on "
        "CUDA cores. SparTA: archsim's 2:4 GEMM (cuSPARSELt path of the GPU model) plus the "
        "non-zeros beyond two per group of four on the Sputnik kernel. Dense: archsim's GPU "
        "model of cuBLAS.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            "At 70% sparsity the modelled Flash-LLM gains less over dense than the paper: each "
            "block keeps one tile load in flight, so every 64-deep K step pays the full HBM "
            "latency, a floor that does not shrink with density; the A100 file's 0.6 us is an "
            "unloaded pointer-chase figure, and the dense side carries H100-fitted efficiencies. "
            "Sputnik is modelled at its bandwidth and FMA limits without its index-decoding and "
            "row-swizzle overheads, so the modelled Sputnik is faster than measured and the "
            "speedups over it are low. SparTA's 2:4 part runs on archsim's calibrated 2:4 GEMM "
            "model, which at 8-32 tokens is nearly as fast as Flash-LLM at 70-80% sparsity; the "
            "paper measured SparTA's own kernels slower. No constant was changed to close these "
            "gaps; the tests pin their direction."
        )
    )
    doc.add(Heading("Per shape"))
    doc.add(Table(table.round(3)))
    return doc
