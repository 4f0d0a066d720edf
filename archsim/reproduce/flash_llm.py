"""Flash-LLM (Xia et al., VLDB 2024): unstructured SpMM on A100 tensor cores at 70-90% sparsity.

The kernels are archsim's models in :mod:`archsim.hw.gpu_sparse` on the shipped ``a100`` machine
file; the metrics are the mean speedups of Flash-LLM over the dense GEMM, Sputnik and SparTA across
the paper's OPT weight shapes and batch sizes, per sparsity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from archsim.config.loader import load_machine
from archsim.config.machine import GpuConfig
from archsim.hw.gpu_sparse import (
    dense_gemm,
    expected_two_four_remainder,
    flash_llm_spmm,
    flash_llm_tiling,
    sparta_spmm,
    sputnik_spmm,
)
from archsim.kernels.sparse_tiles import tile_nnz_from_density
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve

TOLERANCE = 0.15
SEED = 2024
# The artifact's kernel benchmark (AlibabaResearch/flash-llm, kernel_benchmark/benchmark.sh):
# weight shapes (output features, reduction) of OPT-30B, OPT-66B and OPT-175B (hidden 7168, 9216,
# 12288: QKV, output projection, FFN up and down), each with the split-K it was run at, times
# 8, 16, 32 and 64 tokens, at 70, 80 and 90% sparsity.
SHAPES = (
    (21504, 7168, 5),
    (7168, 7168, 7),
    (28672, 7168, 7),
    (7168, 28672, 7),
    (27648, 9216, 2),
    (9216, 9216, 6),
    (36864, 9216, 3),
    (9216, 36864, 6),
    (36864, 12288, 3),
    (12288, 12288, 9),
    (49152, 12288, 9),
    (12288, 49152, 9),
)
BATCHES = (8, 16, 32, 64)
# Xia et al., VLDB 2024, Sec. 6.1 (Fig. 10, kernel benchmark on A100-SXM4-80GB), as the artifact's
# README restates it: Flash-LLM over Sputnik/SparTA 3.6x/1.4x, 3.0x/1.4x, 2.0x/1.6x and over
# cuBLAS (tensor cores) 1.4x, 1.7x, 2.1x at 70, 80 and 90% sparsity (means over the benchmark).
PAPER = {
    0.7: {"dense": 1.4, "sputnik": 3.6, "sparta": 1.4},
    0.8: {"dense": 1.7, "sputnik": 3.0, "sparta": 1.4},
    0.9: {"dense": 2.1, "sputnik": 2.0, "sparta": 1.6},
}
# A100 unified L1 data cache and shared memory per SM: 192 KB (A100 whitepaper, "A100 SM
# Architecture"); a100.yaml carries only the shared-memory part.
A100_L1_SHARED_BYTES_PER_SM = 192 * 1024


def speedup_table(machine: str = "a100") -> pd.DataFrame:
    """One row per (sparsity, shape, batch): every kernel's time and Flash-LLM's speedups."""
    gpu = load_machine(resolve(machine, "archsim.hwconfigs")).config.devices[0]
    gpu_measured_2of4 = _with_measured_two_four_terms(gpu)
    rows = []
    for sparsity in PAPER:
        density = 1.0 - sparsity
        for n, k, split in SHAPES:
            remainder = expected_two_four_remainder(density) * k * n
            counts_by_rows: dict[int, np.ndarray] = {}
            for tokens in BATCHES:
                tiling = flash_llm_tiling(tokens)
                if tiling.tile_n not in counts_by_rows:
                    counts_by_rows[tiling.tile_n] = tile_nnz_from_density(
                        k, n, tiling.tile_k, tiling.tile_n, density, SEED
                    )
                counts = counts_by_rows[tiling.tile_n]
                flash = flash_llm_spmm(gpu, tokens, counts, k, n, tiling, split_k=split)
                l1 = A100_L1_SHARED_BYTES_PER_SM
                others = {
                    "dense": dense_gemm(gpu, tokens, k, n),
                    "sputnik": sputnik_spmm(gpu, tokens, float(counts.sum()), k, n, l1),
                    "sparta": sparta_spmm(gpu, tokens, k, n, remainder, l1),
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
                row["sputnik bound"] = others["sputnik"].bound
                what_if = sparta_spmm(gpu_measured_2of4, tokens, k, n, remainder, l1)
                row["over sparta, H100-measured 2:4 terms"] = what_if.latency_s / flash.latency_s
                rows.append(row)
    return pd.DataFrame(rows)


def _with_measured_two_four_terms(gpu: GpuConfig) -> GpuConfig:
    """``gpu`` with the cuSPARSELt fixed overhead and HBM efficiency measured on the H100.

    a100.yaml has no 2:4 measurements; h100.yaml fitted cuSPARSELt's per-call overhead and its
    share of peak HBM bandwidth. This what-if only shows how much of the SparTA gap those two
    library terms explain; the metrics use the shipped A100 file.
    """
    h100 = load_machine(resolve("h100", "archsim.hwconfigs")).config.devices[0]
    # both values come from the validated H100 file, so copying them skips no validation
    efficiency = gpu.efficiency.model_copy(update={"sparse_hbm": h100.efficiency.sparse_hbm})
    return gpu.model_copy(
        update={"sparse_kernel_overhead_s": h100.sparse_kernel_overhead_s, "efficiency": efficiency}
    )


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
    what_if = table.groupby("sparsity")["over sparta, H100-measured 2:4 terms"].mean()
    what_if_text = "/".join(f"{what_if[s]:.2f}" for s in PAPER)
    doc = Document("Flash-LLM: unstructured SpMM on A100 tensor cores")
    doc.add(Paragraph("Regenerate with `archsim reproduce flash-llm`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        "Machine: the shipped a100.yaml (108 SMs, 312 TFLOP/s fp16, 2039 GB/s HBM, 0.6 us HBM "
        "latency, 163 KiB shared memory per SM) and the A100's 192 KB unified L1/shared array "
        "per SM (whitepaper). No constant was fitted to this paper.",
        "Setup as the artifact's kernel_benchmark/benchmark.sh runs it (AlibabaResearch/flash-"
        "llm): 12 OPT-30B/66B/175B weight shapes, each at the split-K the script gives it, times "
        "8, 16, 32 and 64 tokens, at 70/80/90% sparsity; the paper's figures (Sec. 6.1, "
        "restated in the artifact README) are means over this benchmark, read here as the "
        "arithmetic mean of the per-case speedups. Masks: i.i.d. unstructured as the artifact "
        "draws them (spmm_test_utils.h keeps each weight with probability 1 - sparsity), "
        "per-tile counts drawn binomially (seed 2024).",
        "Flash-LLM: the TilingConfig its API picks per token count (256 weight rows per block "
        "up to 32 tokens, 128 at 64; shared memory per block from its SHMEM_SZ, so 2 or 3 "
        "blocks per SM), Tiled-CSL at 4 bytes per non-zero. Per 64-deep step a block has one "
        "tile load in flight; blocks are customers of a closed queueing network (exact mean "
        "value analysis): a delay of the unloaded HBM latency plus the block's own transfer "
        "through its SM's L2 port, the HBM queue, and its SM's shared-memory/tensor queue "
        "(zero-fill, MMA operand reads, the conflict-free scatter at 32 non-zeros per "
        "wavefront). Blocks are list-scheduled on SM slots; the fp16 split-K partials are "
        "reduced by a second kernel.",
        "Sputnik: its fp16 kernel configurations (4 rows per 32-thread block, 8 threads per "
        "row, 2/4/8-element activation strips per thread by token count); per kept weight "
        "the instructions of its dense-tile loop and tile MAC against the SM's issue, "
        "load/store and fp32 pipes, and the activation strips missed in L1 (hit rate = L1 "
        "left by the shared-memory carve-out over the working set) at L2 bandwidth. SparTA: "
        "as the artifact's sparTA.h runs it, cuSPARSELt 2:4 (archsim's 2:4 GEMM model, "
        "searched) on the first two non-zeros of each group of four, then Sputnik on the "
        "rest. Dense: archsim's GPU model of cuBLAS.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            "Over cuBLAS all three sparsities land within tolerance once the load pipeline is "
            "a queueing network rather than latency plus transfer in series (the earlier model "
            "made 70% too slow) rather than a maximum of bounds (that makes 90% about 1.5x too "
            "fast: at high sparsity the steps are short and latency, HBM and shared-memory "
            "demands are comparable, so contention, not one bound, sets the pace). "
            "Over Sputnik the model is high at 70% and within tolerance at 80/90%: the 32 and "
            "64 token cases are bound by activation strips missed in L1, whose hit rate is "
            "taken as capacity over working set (LRU under the uniform reuse of the "
            "benchmark's i.i.d. masks); the measured kernel evidently hit more often or "
            "sustained more L2 bandwidth on sector reads than the 0.82 x 4.5 TB/s modelled, "
            "which no available measurement settles. Not modelled either: the benchmark runs "
            "each kernel 10,000 times back to back, so the smallest sparse weights (7168 and "
            "9216 square at 90%, 10-34 MB) may stay in the 40 MB L2 between runs, which would "
            "raise the 90% speedups. "
            "Over SparTA the model is low, most at 90%: its cuSPARSELt part runs on archsim's "
            "2:4 GEMM model, whose A100 file carries no measured 2:4 fixed overhead or "
            "bandwidth efficiency (the H100 file measured a 12 us per-call overhead and 0.75 of "
            "peak HBM for cuSPARSELt; a100.yaml has neither), so the modelled 2:4 kernel is "
            "faster than the one the paper timed. With those two H100-measured terms carried "
            f"over (last column of the table) the means over SparTA would be {what_if_text} "
            "(paper 1.4/1.4/1.6). No constant was changed to close these gaps; the tests pin "
            "their direction."
        )
    )
    doc.add(Heading("Per shape"))
    doc.add(Table(table.round(3)))
    return doc
