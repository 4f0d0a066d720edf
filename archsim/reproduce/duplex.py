"""Duplex (Yun et al., MICRO 2024): an H100-class xPU with Logic-PIM against the H100 alone, on
Mixtral-8x7B decode, from archsim's models (throughput and energy)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from archsim.config import load_machine
from archsim.hw.machine import Machine
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve
from archsim.sim.system import SystemPlan, simulate_decode_step
from archsim.workloads.models.presets import get_model

TENSOR_PARALLEL = 2  # assumption: Mixtral-8x7B's 93 GB of bf16 weights need two 80 GB devices
# assumption: the paper's configuration behind its headline figures could not be retrieved, so
# the grid is fixed here and every metric is taken over all of it (no point of it is picked)
BATCHES = (32, 64, 128)
MEAN_CONTEXTS = (1024, 2048, 4096)  # assumption: contexts uniform in [c/2, 3c/2), seed 0
TOLERANCE = 0.15
PAPER_SPEEDUP = 2.67  # [Duplex] abstract: up to 2.67x throughput over the GPU
PAPER_ENERGY_REDUCTION = 0.42  # [Duplex] abstract: 42.03% lower energy


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(resolve(name, "archsim.hwconfigs")).config)


def compare(batch: int, mean_context: int) -> tuple[float, float]:
    """(throughput ratio Duplex / H100, energy reduction per token) for one batch."""
    mixtral = get_model("mixtral-8x7b")
    rng = np.random.default_rng(0)
    contexts = [int(c) for c in rng.integers(mean_context // 2, mean_context * 3 // 2, batch)]
    gpu = simulate_decode_step(
        _machine("h100"),
        mixtral,
        contexts,
        SystemPlan("h100", "h100"),
        tensor_parallel=TENSOR_PARALLEL,
    )
    duplex = simulate_decode_step(
        _machine("duplex"),
        mixtral,
        contexts,
        SystemPlan("xpu", "logic_pim", co_processing=True),
        tensor_parallel=TENSOR_PARALLEL,
    )
    return duplex.tokens_per_s / gpu.tokens_per_s, 1.0 - duplex.energy_j / gpu.energy_j


@register_reproduction("duplex")
def reproduce_duplex() -> Reproduction:
    rows = []
    for batch in BATCHES:
        for context in MEAN_CONTEXTS:
            speedup, saving = compare(batch, context)
            rows.append(
                {
                    "batch": batch,
                    "mean_context": context,
                    "speedup": round(speedup, 2),
                    "energy_reduction": round(saving, 3),
                }
            )
    table = pd.DataFrame(rows)
    metrics = {
        "throughput_over_gpu_max": Metric(
            PAPER_SPEEDUP,
            float(table.speedup.max()),
            TOLERANCE,
            "x",
            "highest throughput gain over the H100 across the whole grid ('up to')",
        ),
        "energy_reduction": Metric(
            PAPER_ENERGY_REDUCTION,
            float(table.energy_reduction.mean()),
            TOLERANCE,
            "fraction",
            "energy per token saved against the H100, mean over the whole grid",
        ),
    }
    doc = Document("Duplex reproduction")
    doc.add(Paragraph("Regenerate with `archsim reproduce duplex`."))
    doc.add(Heading("Setup"))
    doc.add(
        Paragraph(
            f"Mixtral-8x7B decode (GQA 32/8 heads, 8 experts, top-2, uniform routing), tensor "
            f"parallel {TENSOR_PARALLEL}, one device's share modelled. Baseline: the shipped "
            "h100.yaml running everything. Duplex: hwconfigs/duplex.yaml, the same H100 as xPU plus "
            "Logic-PIM; through archsim.sim.system with co-processing: attention requests split "
            "between xPU and Logic-PIM in proportion to speed, each expert placed where the layer's "
            "experts finish sooner (low-Op/B experts land on Logic-PIM), both running at once and "
            "sharing the stacks' bandwidth. Energy is the priced action counts plus static power."
        )
    )
    doc.add(Heading("Assumptions"))
    doc.add(
        Paragraph(
            "The model, batch and lengths behind the paper's headline figures (up to 2.67x, "
            "42.03% less energy) could not be retrieved from the material available to us, so "
            f"the grid (batches {', '.join(map(str, BATCHES))}; mean contexts "
            f"{', '.join(map(str, MEAN_CONTEXTS))}) was fixed beforehand and the metrics read "
            "off all of it: 'up to' is the grid's highest speedup, the energy saving its mean. "
            "No batch or length was chosen after seeing the results. Logic-PIM has 4x the "
            "external bandwidth over its TSVs and units sized for Op/B 8; "
            "its reads cost 60% of a full HBM access (duplex.yaml states each)."
        )
    )
    doc.add(Heading("Results"))
    doc.add(Table(table))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            "The highest speedup over the grid is well above 2.67x. It comes at batch 32, where "
            "each expert sees a few tokens and runs on Logic-PIM at the assumed 4x TSV bandwidth "
            "while the H100 is bound by loading weights. The model runs decode steps only; the "
            "paper's continuous batching also runs prompts (prefill) on the xPU, which Logic-PIM "
            "does not speed up and which dilutes the gain. The 4x TSV multiple is an assumption, "
            "not a cited figure. Neither was tuned to the paper's number."
        )
    )
    return Reproduction(name="duplex", metrics=metrics, report=doc)
