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
# cuSPARSELt 2:4 time over cuBLAS time at this benchmark's 48 cases in sparTA.h's layout, mean,
# measured on an H100 (tests/data/h100/cusparselt_flash_llm_shapes.csv, cuSPARSELt 0.8.0).
H100_CUSPARSELT_OVER_CUBLAS = 0.57


def speedup_table(machine: str = "a100") -> pd.DataFrame:
    """One row per (sparsity, shape, batch): every kernel's time and Flash-LLM's speedups."""
    gpu = load_machine(resolve(machine, "archsim.hwconfigs")).config.devices[0]
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
                row["sputnik L1 hit"] = others["sputnik"].l1_hit_rate
                row["sparta"] = others["sparta"].notes
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
    def implied(kernel: str) -> list[tuple[float, float]]:
        # the kernel's time over cuBLAS's, from the two speedups over each: paper, model
        pairs = []
        for sparsity in PAPER:
            pct = round(sparsity * 100)
            over_dense = metrics[f"speedup_over_dense_{pct}"]
            over_kernel = metrics[f"speedup_over_{kernel}_{pct}"]
            pairs.append(
                (
                    over_kernel.paper / over_dense.paper,
                    over_kernel.archsim / over_dense.archsim,
                )
            )
        return pairs

    def listed(pairs: list[tuple[float, float]]) -> str:
        return "; ".join(f"{paper:.2f} vs {model:.2f}" for paper, model in pairs)

    sputnik_pairs = implied("sputnik")
    sputnik_excess = [paper / model for paper, model in sputnik_pairs]
    sparta_pairs = implied("sparta")

    wide = table[table["M/K/N"].str.endswith(("/32", "/64"))]
    hit_wide = float(wide["sputnik L1 hit"].mean())
    doc = Document("Flash-LLM: unstructured SpMM on A100 tensor cores")
    doc.add(Paragraph("Regenerate with `archsim reproduce flash-llm`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        "Machine: the shipped a100.yaml (108 SMs, 312 TFLOP/s fp16, 2039 GB/s HBM, 0.6 us HBM "
        "latency, 163 KiB shared memory per SM; its cuSPARSELt terms, 1 us per call and 0.83 of "
        "peak HBM, carried over from an H100 measurement at this benchmark's shapes) and the "
        "A100's 192 KB unified L1/shared array per SM (whitepaper). No constant was fitted to "
        "this paper.",
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
        "load/store and fp32 pipes, and the activation lines missed in L1 at L2 bandwidth. "
        "Sputnik reads the activations with __ldg through L1 (load_store.h) and its CSR rows keep "
        "their column indices sorted (the artifact's sputnik_utils.h scans columns in order), "
        "so the rows resident on an SM sweep the activation rows together. The L1 hit rate comes "
        "from an LRU simulation of one SM's rows doing so (its resident blocks, later waves "
        "starting as rows end, 128-byte lines holding 128/(2 x tokens) activation rows, the "
        "sparse tiles streaming through the same L1), with the blocks' issue rates spread by "
        "20%: the spread that makes the simulation match L1 hit rates measured with Nsight "
        "Compute on an H100 for a kernel with Sputnik's access pattern (tests/data/h100/"
        "sputnik_like_sweep.py: 10 cases, K 7168-49152; sorted rows hit 40-90%, the same rows "
        "shuffled 6-34%; strict lockstep would over-predict the long rows by up to 0.5). "
        f"Here {hit_wide:.2f} on average at 32 and 64 tokens. SparTA: as the artifact's sparTA.h "
        "runs it, cuSPARSELt 2:4 (archsim's 2:4 GEMM model, searched) on the first two "
        "non-zeros of each group of four, then Sputnik on the rest. Dense: archsim's GPU model "
        "of cuBLAS.",
        "The 2:4 terms were measured with tests/data/h100/cusparselt_flash_llm_shapes.py on an "
        "H100 (cuSPARSELt 0.8.0, PyTorch 2.11): the 48 (shape, tokens) cases of this benchmark "
        "in sparTA.h's layout (compressed weight times a row-major K x tokens activation "
        "matrix, searched algorithm, back-to-back calls). cuSPARSELt took 0.52-0.65 of "
        "cuBLAS's time (mean 0.57; its bytes are 0.5625 of cuBLAS's), 0.80 of peak HBM against "
        "cuBLAS's 0.81, and about 1 us more per call at 1024 x 1024. archsim's H100 2:4 terms "
        "(12 us per call, 0.75 of peak, fitted on PyTorch's F.linear layout) over-predict "
        "these cases by 28% (median): they describe another layout's kernels.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            "Over cuBLAS all three sparsities land within tolerance once the load pipeline is "
            "a queueing network rather than latency plus transfer in series (the earlier model "
            "made 70% too slow) rather than a maximum of bounds (that makes 90% about 1.5x too "
            "fast: at high sparsity the steps are short and latency, HBM and shared-memory "
            "demands are comparable, so contention, not one bound, sets the pace)."
        )
    )
    doc.add(
        Paragraph(
            "Over Sputnik the model is within tolerance at 70% and low at 80 and 90%. Sputnik's "
            "time over cuBLAS's, paper vs model at 70/80/90%: "
            f"{listed(sputnik_pairs)}: the kernel the paper timed took "
            f"{min(sputnik_excess):.2f}-{max(sputnik_excess):.2f}x the modelled time, the "
            "most where kept weights are fewest. At 8 and 16 tokens the modelled kernel is "
            "bound by its fp32 pipe (0.75 cycles per kept weight per SM: per thread a "
            "conversion and an FMA for each of 2 activation elements plus 2 per kept weight, "
            "4 rows per warp instruction). "
            "Candidates, neither modelled nor measured here (Sputnik is not built here): "
            "its half-precision configurations hold a dense fragment of 2 x kBlockItemsK x "
            "kBlockItemsX / kBlockWidth = 64, 128 and 256 registers per thread at 8-16, 32 and "
            "64 tokens (cuda_spmm.cu.cc), so register pressure may leave fewer warps than the 32 "
            "blocks per SM modelled, and its loop neither prefetches the next sparse tile nor "
            "overlaps the dense loads with the FMAs, a latency chain per 64 kept weights that "
            "weighs most when rows are short. The earlier capacity-over-working-set L1 model "
            "(random reuse: 2-14% hits at 64 tokens) put the 32 and 64 token cases on L2 "
            "bandwidth; the sorted sweep, checked against the H100 measurement, removes that "
            "assumption."
        )
    )
    doc.add(
        Paragraph(
            "Over SparTA the model is low. Its 2:4 part is cuSPARSELt, which on the H100 at "
            f"exactly these shapes and layout takes {H100_CUSPARSELT_OVER_CUBLAS} of cuBLAS's "
            "time, as modelled here "
            "(the 2:4 part in the sparta column against the dense time). SparTA's time over "
            f"cuBLAS's, paper vs model at 70/80/90%: {listed(sparta_pairs)}. At 90% the "
            "Sputnik remainder is 0.1% of the weights, so the paper's cuSPARSELt on the A100 "
            f"took about {sparta_pairs[-1][0]:.2f} of cuBLAS's time, "
            f"{sparta_pairs[-1][0] / H100_CUSPARSELT_OVER_CUBLAS:.1f}x the ratio measured on "
            "the H100: as if the "
            "cuSPARSELt of the artifact's 2022 setup (nvcr.io/nvidia/pytorch:22.07-py3, its "
            "docs/1_Preparations.md; the release is not stated) reached about three quarters "
            "of cuBLAS's share of HBM bandwidth on these skinny shapes. No A100 or older-release "
            "measurement is available to carry that in; the 2:4 terms stay those measured. At 70% the Sputnik "
            "remainder (2.3% of the weights) adds the Sputnik gap above. No constant was "
            "changed to close these gaps; the tests pin their direction."
        )
    )
    doc.add(Heading("Per shape"))
    doc.add(Table(table.round(3)))
    return doc
