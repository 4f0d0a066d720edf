"""Duplex (Yun et al., MICRO 2024): an H100-class xPU with Logic-PIM against the H100 alone, on
Mixtral-8x7B and GLaM served with continuous batching, from archsim's models (throughput and
energy).

[Duplex] Yun et al., "Duplex: A Device for Large Language Models with Mixture of Experts, Grouped
Query Attention, and Continuous Batching", MICRO 2024 (arXiv 2409.01141); section numbers below
are the paper's.
"""

from __future__ import annotations

import copy

import pandas as pd

from archsim.config import load_machine
from archsim.config.machine import MachineConfig
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
PAPER_ENERGY = {"mixtral-8x7b": 0.3328, "glam-143b": 0.4203}  # [Duplex] Sec. 7.4, "up to"
# [Duplex]'s simulator (its DRAM energy table, after FGDRAM Table 3): data movement of a full HBM
# read and of a Logic-PIM read, pJ per bit; duplex.yaml's Logic-PIM price is derived from them
FULL_READ_PJ_PER_BIT = 3.48
LOGIC_PIM_READ_PJ_PER_BIT = 1.81
# one joule per byte, so that a machine priced by dram_byte_counter reports bytes as joules
_BYTE_PRICE = "1 J"

SYSTEMS = {
    "gpu": ("h100", SystemPlan("h100", "h100"), True),
    # one processor at a time: decode MoE layers and attention on Logic-PIM (Fig. 10(a), (b))
    "duplex": ("duplex", SystemPlan("xpu", "logic_pim", experts_on_attention=True), True),
    # expert co-processing with every expert split across the devices (Duplex+PE+T)
    "duplex_pe_t": ("duplex", SystemPlan("xpu", "logic_pim", co_processing=True), False),
}


def _raw(name: str) -> dict:
    return load_machine(resolve(name, "archsim.hwconfigs")).raw


def _from_raw(raw: dict) -> Machine:
    return Machine.from_config(MachineConfig.model_validate(raw))


def _machine(name: str) -> Machine:
    return _from_raw(_raw(name))


def dram_and_arithmetic(raw: dict) -> dict:
    """A machine file re-priced as [Duplex] counts energy: DRAM accesses and arithmetic only.

    Sec. 6 prices the arithmetic units (synthesized at 7 nm), the Logic-PIM buffers and the
    HBM's activation, read, write and TSV energy (O'Connor et al., MICRO 2017); Fig. 15 splits
    each layer's energy into DRAM and compute and nothing else. So idle power, the GPU's L2 and
    its activity power (SMs holding warps, memory interface and L2-to-SM transfers) are left
    out, for the GPU and for Duplex's xPU alike; the action counts are the same, only the
    prices change.
    """
    priced = copy.deepcopy(raw)
    for device in priced["devices"]:
        device["static_power"] = "0 W"
        device.pop("power", None)
        if "l2" in device:
            device["l2"]["read_energy_per_byte"] = device["l2"]["write_energy_per_byte"] = "0 pJ"
    return priced


def dram_byte_counter(raw: dict, device_name: str) -> dict:
    """A machine file whose only price is 1 J per DRAM byte of ``device_name``: the energy of a
    run is then the bytes that device moves to and from DRAM."""
    priced = copy.deepcopy(dram_and_arithmetic(raw))
    for device in priced["devices"]:
        device["mac_energy"] = {dtype: "0 pJ" for dtype in device["mac_energy"]}
        device["vector_op_energy"] = "0 pJ"
        memory = device["hbm"] if device["kind"] == "gpu" else device["dram"]
        price = _BYTE_PRICE if device["name"] == device_name else "0 pJ"
        memory["read_energy_per_byte"] = memory["write_energy_per_byte"] = price
    return priced


def _serve(machine: Machine, system: str, model: str, batch: int, length: int):
    arch, devices = MODELS[model]
    _, plan, expert_parallel = SYSTEMS[system]
    return steady_state_serving(
        machine,
        arch,
        plan,
        batch=batch,
        input_len=length,
        output_len=length,
        tensor_parallel=devices,
        expert_parallel=devices if expert_parallel else 1,
    )


def serving_grid() -> pd.DataFrame:
    """Steady-state throughput and energy per token of every system at every grid point.

    ``*_j_per_token`` is energy as the paper counts it (:func:`dram_and_arithmetic`);
    ``*_board_j_per_token`` prices the shipped files whole: idle power and the measured GPU
    activity power of h100.yaml, which the xPU of duplex.yaml shares.
    """
    names = {m for m, _, _ in SYSTEMS.values()}
    board = {name: _machine(name) for name in names}
    paper = {name: _from_raw(dram_and_arithmetic(_raw(name))) for name in names}
    rows = []
    for model in MODELS:
        for batch in BATCHES:
            for length in LENGTHS:
                row: dict[str, object] = {"model": model, "batch": batch, "length": length}
                for system, (machine, _, _) in SYSTEMS.items():
                    result = _serve(board[machine], system, model, batch, length)
                    row[f"{system}_tokens_per_s"] = result.tokens_per_s
                    row[f"{system}_board_j_per_token"] = result.energy_per_token_j
                    row[f"{system}_j_per_token"] = _serve(
                        paper[machine], system, model, batch, length
                    ).energy_per_token_j
                rows.append(row)
    grid = pd.DataFrame(rows)
    for system in ("duplex", "duplex_pe_t"):
        grid[f"{system}_speedup"] = grid[f"{system}_tokens_per_s"] / grid["gpu_tokens_per_s"]
        for scope in ("", "board_"):
            grid[f"{system}_{scope}energy_reduction"] = (
                1.0 - grid[f"{system}_{scope}j_per_token"] / grid[f"gpu_{scope}j_per_token"]
            )
    return grid


def dram_bytes_per_token(system: str, model: str, batch: int, length: int) -> dict[str, float]:
    """DRAM bytes each device of ``system`` moves per output token (prefill included)."""
    machine_name = SYSTEMS[system][0]
    return {
        name: _serve(
            _from_raw(dram_byte_counter(_raw(machine_name), name)), system, model, batch, length
        ).energy_per_token_j
        for name in _machine(machine_name).devices
    }


def _traffic_table(grid: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per-token DRAM traffic of the GPU and of Duplex's two processors at telling points, and
    the sentence that reads it."""
    rows = []
    for model in MODELS:
        ours = grid[grid.model == model]
        best = ours.loc[ours.duplex_pe_t_energy_reduction.idxmax()]
        for batch in (min(BATCHES), max(BATCHES)):
            length = int(best.length)
            gpu = dram_bytes_per_token("gpu", model, batch, length)["h100"]
            hbm = _machine("h100").devices["h100"].config.hbm
            duplex = dram_bytes_per_token("duplex_pe_t", model, batch, length)
            point = ours[(ours.batch == batch) & (ours.length == length)].iloc[0]
            rows.append(
                {
                    "model": model,
                    "batch": batch,
                    "length": length,
                    "gpu_mb_per_token": gpu / 1e6,
                    "xpu_mb_per_token": duplex["xpu"] / 1e6,
                    "logic_pim_mb_per_token": duplex["logic_pim"] / 1e6,
                    "xpu_share": duplex["xpu"] / (duplex["xpu"] + duplex["logic_pim"]),
                    # what the GPU spends on arithmetic: the same in both systems, it dilutes
                    # the ratio (reads and writes are priced alike in h100.yaml)
                    "gpu_arithmetic_share": 1.0
                    - gpu * hbm.read_energy_per_byte_j / point.gpu_j_per_token,
                    "energy_reduction": point.duplex_pe_t_energy_reduction,
                    # how much a Logic-PIM read price 1 pJ/B lower would add to the saving
                    "reduction_per_pj_b": duplex["logic_pim"] * 1e-12 / point.gpu_j_per_token,
                }
            )
    table = pd.DataFrame(rows)
    shares = {(r.model, r.batch): r.xpu_share for r in table.itertuples(index=False)}
    low, top = min(BATCHES), max(BATCHES)
    mixtral = [s for (m, _), s in shares.items() if m == "mixtral-8x7b"]
    glam = [s for (m, _), s in shares.items() if m == "glam-143b"]
    text = (
        "The saving follows the share of the bytes the xPU still reads, at the xPU's full "
        "price. The paper's reason (Sec. 7.4) is reproduced: Mixtral routes each token to 2 of "
        "8 experts, GLaM to 2 of 64, so at the same batch a Mixtral expert sees 8x the tokens "
        "and a higher Op/B, and co-processing hands more experts to the xPU as the batch "
        f"grows: the xPU's share of Mixtral's bytes goes from {min(mixtral):.0%} to "
        f"{max(mixtral):.0%} between batch {low} and batch {top}, while GLaM's, its dense "
        "blocks' FFNs and the FC layers, shrinks from "
        f"{max(glam):.0%} to {min(glam):.0%} as the batch shares those weights among more "
        "tokens, its MHA KV cache and experts staying on Logic-PIM. "
        "Mixtral's GQA KV cache is a quarter of an MHA one, so long contexts add fewer "
        "Logic-PIM bytes to dilute the xPU's share than GLaM's do."
    )
    return table.round(3), text


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
            f"DRAM and arithmetic energy per token saved by Duplex+PE+T against the H100 on "
            f"{model} ('up to')",
        )
    logic_pim = _machine("duplex").devices["logic_pim"]
    bundle = bundle_stream_efficiency(logic_pim.standard, logic_pim.config.bank_bundle)
    gpu = _machine("h100").devices["h100"]
    tsv_over_gpu = logic_pim.sustained_bw_bytes_per_s / (
        gpu.config.hbm.bw_bytes_per_s * gpu.config.efficiency.hbm
    )
    best = grid.loc[grid.duplex_pe_t_speedup.idxmax()]
    gpu_prices = gpu.energy_per_action_j()
    gpu_byte_pj = (gpu_prices["read.hbm"] + gpu_prices["read.l2"]) * 1e12
    hbm_pj = gpu.config.hbm.read_energy_per_byte_j * 1e12
    pim_pj = logic_pim.config.dram.read_energy_per_byte_j * 1e12
    traffic, explained = _traffic_table(grid)
    per_pj = float(traffic.reduction_per_pj_b.max())
    ratio_pj = hbm_pj * LOGIC_PIM_READ_PJ_PER_BIT / FULL_READ_PJ_PER_BIT
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
            "per L_out decode steps every slot's prompt is prefilled once on the xPU. Each "
            "metric is the highest value over the grid, as the paper's 'up to' figures are. "
            "The paper's 42.03% energy saving is GLaM's and Mixtral's is 33.28% (Sec. 7.4), so "
            "each model is held to its own."
        )
    )
    doc.add(Heading("Energy: what is counted"))
    doc.add(
        Paragraph(
            "The paper counts energy as its Sec. 6 and Fig. 15 describe: the arithmetic units "
            "(synthesized at 7 nm), the Logic-PIM buffers and the HBM's activation, read, write "
            "and TSV energy after O'Connor et al. (MICRO 2017), split per layer into DRAM and "
            "compute and nothing else: no idle power, no GPU caches, memory interface or SM "
            "activity. The metrics price archsim's action counts the same way "
            "(archsim.reproduce.duplex.dram_and_arithmetic): MACs and vector operations on both "
            "processors, DRAM bytes at h100.yaml's "
            f"{hbm_pj:.0f} pJ/B for the H100 and the xPU alike, and at {pim_pj:.1f} pJ/B for "
            "Logic-PIM, whose reads skip the global I/O wires to the data TSVs and the "
            "interposer (Sec. 4.3). That price comes from the paper's own DRAM energies, whose "
            f"simulator charges {FULL_READ_PJ_PER_BIT} pJ/bit of data movement to a full HBM "
            f"read and {LOGIC_PIM_READ_PJ_PER_BIT} pJ/bit to a Logic-PIM read (FGDRAM Table 3 "
            "segments), activation alike; h100.yaml's full access less the "
            f"{FULL_READ_PJ_PER_BIT - LOGIC_PIM_READ_PJ_PER_BIT:.2f} pJ/bit that only the xPU's "
            "reads move gives it "
            "(duplex.yaml). Duplex's DRAM energy can therefore fall at most "
            f"1 - {pim_pj:.1f}/{hbm_pj:.0f} = {1 - pim_pj / hbm_pj:.0%} below the GPU's, and "
            "only on the bytes Logic-PIM reads."
        )
    )
    doc.add(
        Paragraph(
            "The same runs priced whole, as a board would draw (column board_energy_reduction "
            "below): h100.yaml now carries the activity power measured on an H100 "
            "(tests/data/h100_power: 0.34 W per SM holding warps, 57 pJ/B of memory interface, "
            "37 pJ/B from L2 to the SMs), and duplex.yaml's xPU carries the same block, so the "
            "two GPUs are priced alike; each HBM byte the GPU streams to its SMs costs "
            f"{gpu_byte_pj:.0f} pJ there against {pim_pj:.1f} pJ for a Logic-PIM read, and the "
            f"{gpu.static_power_w():.0f} W idle power of both (measured on an H100 with a CUDA "
            "context, tests/data/h100_power) runs for a shorter time (the speedup). "
            "This is not the paper's metric: it "
            "prices the GPU's measured overheads but none of Logic-PIM's beyond its MACs and an "
            "assumed 10 W, whose controller, buffers and logic-die wires the paper prices with "
            "FinCACTI figures it does not list, so it bounds the saving from above."
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
            "and they set the bundle's activation cost. A MAC costs archsim's bf16 price on "
            "both processors (the paper does not list its synthesized 7 nm units' energy); the "
            "same in both systems, it only dilutes the ratio (gpu_arithmetic_share below). The "
            "Logic-PIM static power (10 W) is an assumption and enters only the board-level "
            "figures."
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
            "duplex_pe_t_board_energy_reduction",
        ]
    ].round(3)
    doc.add(Table(shown))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Why Mixtral saves less than GLaM"))
    doc.add(
        Paragraph(
            "DRAM bytes per output token (prefill included) that each processor moves, at the "
            "smallest and the largest batch and the length of each model's best energy saving; "
            "the reduction is the paper-scope one."
        )
    )
    doc.add(Table(traffic))
    doc.add(Paragraph(explained))
    doc.add(Heading("Gaps"))
    doc.add(
        Paragraph(
            f"Both speedups land on the paper's; the highest is {best.model} at batch "
            f"{best.batch}, (L, L) = ({best.length}, {best.length}), where the experts' weights "
            f"dominate the step and Logic-PIM's bundles stream them at {tsv_over_gpu:.1f}x the "
            "H100's sustained bandwidth (the 4x TSV peak less the bundle's row activations). "
            "Both energy savings land within the tolerance when energy is counted as the paper "
            "counts it; the order (Mixtral below GLaM) and the trends (Mixtral's saving falling "
            "with the batch, both rising with the length) are the paper's. The model leaves out "
            "the communication between devices, which the paper's cluster model adds alike to "
            "both systems and which would pull both ratios a little toward 1. The savings hang "
            "on the Logic-PIM read price, derived rather than measured: a price 1 pJ/B lower "
            f"adds reduction_per_pj_b to the saving (up to {per_pj:.3f}), so the paper's own "
            f"{LOGIC_PIM_READ_PJ_PER_BIT}/{FULL_READ_PJ_PER_BIT} ratio applied to the whole "
            f"{hbm_pj:.0f} pJ/B ({ratio_pj:.1f} pJ/B, activation scaled too) would add up to "
            f"{per_pj * (pim_pj - ratio_pj):.3f}. Board-level "
            f"savings (up to {grid.duplex_pe_t_board_energy_reduction.max():.2f}) are far above "
            "the paper's because they include the GPU's "
            "measured interface and SM power and its idle power, which the paper does not "
            "count, and no measured counterpart for Logic-PIM's logic die. No constant was "
            "tuned to the paper's numbers."
        )
    )
    return Reproduction(name="duplex", metrics=metrics, report=doc)
