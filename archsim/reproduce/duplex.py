"""Duplex (Yun et al., MICRO 2024): an H100-class xPU with Logic-PIM against the H100 alone, on
Mixtral-8x7B and GLaM served with continuous batching, from archsim's models (throughput and
energy).

[Duplex] Yun et al., "Duplex: A Device for Large Language Models with Mixture of Experts, Grouped
Query Attention, and Continuous Batching", MICRO 2024 (arXiv 2409.01141); section numbers below
are the paper's.
"""

from __future__ import annotations

import pandas as pd

from archsim.config import load_machine
from archsim.hw.machine import Machine
from archsim.hw.memory import bundle_stream_efficiency
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve
from archsim.sim.system import SystemPlan, steady_state_serving
from archsim.workloads.models.presets import ModelArchitecture, get_model

# [Duplex] Table 2: GLaM 143B, 32 blocks of hidden 4096, 32 heads (MHA), FFN 16384, 64 experts,
# top-2, MoE in every other block (Sec. 6); the order of the blocks does not change a decode
# step's cost, so the 16 dense blocks are counted as leading ones. Two-matrix (GELU) FFNs and the
# 256K vocabulary of Du et al., ICML 2022, give the 143B parameters.
GLAM = ModelArchitecture(
    name="glam-143b",
    d_model=4096,
    layers=32,
    heads=32,
    kv_heads=32,
    head_dim=128,
    d_ff=16384,
    vocab=256000,
    norm="layernorm",
    activation="gelu",
    experts=64,
    top_k=2,
    expert_d_ff=16384,
    first_dense_layers=16,
)
# [Duplex] Sec. 6: Mixtral on one node of four devices, GLaM on one node of eight; tensor
# parallelism for the FC layers within a node and expert parallelism for the MoE layers on the
# GPU (Sec. 3); Duplex+PE+T splits every expert across the node's devices too (Sec. 5.2)
MODELS: dict[str, tuple[ModelArchitecture, int]] = {
    "mixtral-8x7b": (get_model("mixtral-8x7b"), 4),
    "glam-143b": (GLAM, 8),
}
# [Duplex] Fig. 8: batch sizes 32-128 and (L_in, L_out) from (256, 256) to (4096, 4096)
BATCHES = (32, 64, 128)
LENGTHS = (256, 512, 1024, 2048, 4096)  # assumption: the square points of Fig. 8's range
TOLERANCE = 0.15
PAPER_SPEEDUP = 2.67  # [Duplex] Sec. 7.1: Duplex+PE+T up to 2.67x the GPU's throughput
PAPER_SPEEDUP_PLAIN = 2.51  # [Duplex] Sec. 7.1: Duplex (no co-processing) up to 2.51x
PAPER_ENERGY = {"mixtral-8x7b": 0.3328, "glam-143b": 0.4203}  # [Duplex] Sec. 7.3, "up to"

SYSTEMS = {
    "gpu": ("h100", SystemPlan("h100", "h100"), True),
    # one processor at a time: decode MoE layers and attention on Logic-PIM (Fig. 10(a), (b))
    "duplex": ("duplex", SystemPlan("xpu", "logic_pim", experts_on_attention=True), True),
    # expert co-processing with every expert split across the devices (Duplex+PE+T)
    "duplex_pe_t": ("duplex", SystemPlan("xpu", "logic_pim", co_processing=True), False),
}


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(resolve(name, "archsim.hwconfigs")).config)


def serving_grid() -> pd.DataFrame:
    """Steady-state throughput and energy per token of every system at every grid point."""
    machines = {name: _machine(name) for name in {m for m, _, _ in SYSTEMS.values()}}
    rows = []
    for model, (arch, devices) in MODELS.items():
        for batch in BATCHES:
            for length in LENGTHS:
                row: dict[str, object] = {"model": model, "batch": batch, "length": length}
                for system, (machine, plan, expert_parallel) in SYSTEMS.items():
                    result = steady_state_serving(
                        machines[machine],
                        arch,
                        plan,
                        batch=batch,
                        input_len=length,
                        output_len=length,
                        tensor_parallel=devices,
                        expert_parallel=devices if expert_parallel else 1,
                    )
                    row[f"{system}_tokens_per_s"] = result.tokens_per_s
                    row[f"{system}_j_per_token"] = result.energy_per_token_j
                rows.append(row)
    grid = pd.DataFrame(rows)
    for system in ("duplex", "duplex_pe_t"):
        grid[f"{system}_speedup"] = grid[f"{system}_tokens_per_s"] / grid["gpu_tokens_per_s"]
        grid[f"{system}_energy_reduction"] = (
            1.0 - grid[f"{system}_j_per_token"] / grid["gpu_j_per_token"]
        )
    return grid


@register_reproduction("duplex")
def reproduce_duplex() -> Reproduction:
    grid = serving_grid()
    metrics = {
        "throughput_over_gpu_max": Metric(
            PAPER_SPEEDUP,
            float(grid.duplex_pe_t_speedup.max()),
            TOLERANCE,
            "x",
            "Duplex+PE+T over the H100, highest over both models' grids ('up to')",
        ),
        "throughput_no_coprocessing_over_gpu_max": Metric(
            PAPER_SPEEDUP_PLAIN,
            float(grid.duplex_speedup.max()),
            TOLERANCE,
            "x",
            "Duplex without co-processing over the H100, highest over both grids ('up to')",
        ),
    }
    for model, paper in PAPER_ENERGY.items():
        saving = grid[grid.model == model].duplex_pe_t_energy_reduction.max()
        metrics[f"energy_reduction_{model.split('-')[0]}_max"] = Metric(
            paper,
            float(saving),
            TOLERANCE,
            "fraction",
            f"energy per token saved by Duplex+PE+T against the H100 on {model} ('up to')",
        )
    logic_pim = _machine("duplex").devices["logic_pim"]
    bundle = bundle_stream_efficiency(logic_pim.standard, logic_pim.config.bank_bundle)
    gpu = _machine("h100").devices["h100"]
    tsv_over_gpu = logic_pim.sustained_bw_bytes_per_s / (
        gpu.config.hbm.bw_bytes_per_s * gpu.config.efficiency.hbm
    )
    best = grid.loc[grid.duplex_pe_t_speedup.idxmax()]
    doc = Document("Duplex reproduction")
    doc.add(Paragraph("Regenerate with `archsim reproduce duplex`."))
    doc.add(Heading("Setup"))
    doc.add(
        Paragraph(
            "As the paper's Sec. 6 sets it up: Mixtral-8x7B on one node of four devices and "
            "GLaM (143B, 64 experts, MoE every other block, MHA) on one node of eight; tensor "
            "parallelism for the FC layers and attention heads, expert parallelism for the MoE "
            "layers on the GPU and on Duplex without co-processing, every expert split across "
            "the devices for Duplex+PE+T; one device's share is modelled, the all-reduces and "
            "all-to-alls between devices left out for every system alike. Baseline: the shipped "
            "h100.yaml running everything. Duplex: hwconfigs/duplex.yaml, the H100 as xPU plus "
            "Logic-PIM on its five HBM3 stacks (4x the HBM3 bandwidth over added TSVs, 21.3 "
            "TFLOP/s a stack). Duplex runs the MoE layers and attention of decode steps on "
            "Logic-PIM; Duplex+PE+T instead gives each expert to whichever processor finishes "
            "the layer's experts sooner, decode attention staying on Logic-PIM. Logic-PIM reads "
            "one bank bundle (eight banks) at a time, so each row it opens pays the staggered "
            "activations of the bundle's banks with no other bank to hide them (DRAM timing "
            f"kernel: {bundle:.0%} of the bundle's peak at the H100's HBM3 timings); its reads "
            "and the xPU's take separate paths to separate bundles, so neither slows the other."
        )
    )
    doc.add(
        Paragraph(
            f"Continuous batching in steady state (archsim.sim.system.steady_state_serving): "
            f"batch {', '.join(map(str, BATCHES))} requests in flight, each finished request "
            f"replaced at once, (L_in, L_out) = (L, L) for L in {', '.join(map(str, LENGTHS))}; "
            "per L_out decode steps every slot's prompt is prefilled once on the xPU. Energy "
            "per token is the priced action counts plus static power. Each metric is the "
            "highest value over the grid, as the paper's 'up to' figures are. The paper's "
            "42.03% energy saving is GLaM's and Mixtral's is 33.28% (Sec. 7.3), so each model "
            "is held to its own."
        )
    )
    doc.add(Heading("Assumptions"))
    doc.add(
        Paragraph(
            "The grid's points: the paper plots (L_in, L_out) from (256, 256) to (4096, 4096) "
            "without listing them; the square powers of two are taken, and every request of a "
            "point has the same lengths (the paper samples them from Gaussians around those "
            "means). Grok-1 (two nodes over InfiniBand) is left out: inter-node communication "
            "is not modelled, and the paper reports its gains as the smallest of the three. "
            "HBM3's tFAW, tRRD and tRCD are taken as HBM2's (archsim/hw/memory/standards.py), "
            "and they set the bundle's activation cost. Logic-PIM reads cost 60% of a full HBM "
            "access and the Logic-PIM static power is 10 W (duplex.yaml states each)."
        )
    )
    doc.add(Heading("Results"))
    shown = grid[
        [
            "model",
            "batch",
            "length",
            "duplex_speedup",
            "duplex_pe_t_speedup",
            "duplex_pe_t_energy_reduction",
        ]
    ].round(3)
    doc.add(Table(shown))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            f"Both speedups land on the paper's; the highest is {best.model} at batch "
            f"{best.batch}, (L, L) = ({best.length}, {best.length}), where the experts' weights "
            f"dominate the step and Logic-PIM's bundles stream them at {tsv_over_gpu:.1f}x the "
            "H100's sustained bandwidth (the 4x TSV peak less the bundle's row activations). "
            "GLaM's energy saving sits at the edge of the tolerance. "
            "The energy saving for Mixtral comes out well above the paper's 33.28%: the Logic-"
            "PIM read energy (60% of a full HBM access) and the static power of both systems "
            "are assumptions, and a faster step saves static energy in proportion, while the "
            "paper's breakdown is by layer and its static share is not stated. The model leaves "
            "out the communication between devices, which the paper's cluster model adds alike "
            "to both systems and which would pull both ratios a little toward 1. No constant "
            "was tuned to the paper's numbers."
        )
    )
    return Reproduction(name="duplex", metrics=metrics, report=doc)
