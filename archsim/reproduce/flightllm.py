"""FlightLLM (Zeng et al., FPGA 2024): LLaMA2-7B decode on U280 and VHK158 against V100S and A100.

Both sides are built from shipped machine files and run through archsim's device models; the
metrics are the model's tokens per second and the ratios of its throughput and energy per token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import pandas as pd
import yaml

from archsim.config.loader import load_machine, machine_from_text, parse_yaml
from archsim.config.overrides import set_path
from archsim.config.workload import TransformerSpec
from archsim.energy.pricing import action_energy_j
from archsim.hw.base import DeviceModel, build_device
from archsim.hw.fpga import FpgaDevice
from archsim.hw.fpga_compile import bucket_tops, compilation_cost, padding_overhead
from archsim.ir.ops import Gemm, Op
from archsim.ir.tensor import DType
from archsim.report.document import Document, Heading, Paragraph, Table
from archsim.reproduce.base import Metric, Reproduction, metrics_table, register_reproduction
from archsim.shipped import resolve
from archsim.workloads.transformer import lower_transformer

MODEL = "llama2-7b"
CONTEXT_TOKENS = 512  # tokens in the KV cache at the modelled decode step (see assumptions)
FPGA_WEIGHT_DTYPE = DType.INT8
TOLERANCE = 0.15
# U280 board power running LLaMA2-7B decode as FlightLLM reports it (55 tokens/s, 1.22 tokens/J,
# 45 W), read from a third-party tabulation of the paper's figures (the paper's own table could
# not be retrieved); a check of the FPGA power model, not a metric.
U280_REPORTED_POWER_W = 45.0


def shipped_device(name: str) -> DeviceModel:
    """The (first) device of a shipped machine file, e.g. ``u280_flightllm``."""
    config = load_machine(resolve(name, "archsim.hwconfigs")).config
    return build_device(config.devices[0])


def decode_ops(
    seq_len: int, weight_dtype: DType | None = None, *, layers: int | None = None
) -> list[Op]:
    """One batch-1 decode step of LLaMA2-7B in fp16, optionally with low-bit linear weights.

    ``weight_dtype`` re-types the weights of the linear layers only (mixed precision: fp16
    activations, KV cache and norms; int8/int4 weights).
    """
    spec = TransformerSpec(
        model=MODEL, phase="decode", batch=1, seq_len=seq_len, dtype=DType.FP16, layers=layers
    )
    return [_retype_weight(op, weight_dtype) for op in lower_transformer(spec)]


def _pass_ops(phase: str, length: int, weight_dtype: DType) -> list[Op]:
    spec = TransformerSpec(
        model=MODEL,
        phase=phase,
        batch=1,
        seq_len=length,
        dtype=DType.FP16,
        layers=1,
        include_lm_head=False,
    )
    return [_retype_weight(op, weight_dtype) for op in lower_transformer(spec)]


def _retype_weight(op: Op, dtype: DType | None) -> Op:
    if dtype is None or not isinstance(op, Gemm) or not op.b.is_weight:
        return op
    return dataclasses.replace(op, b=dataclasses.replace(op.b, dtype=dtype))


def run_ops(device: DeviceModel, ops: Sequence[Op]) -> tuple[float, float]:
    """Latency (s) of ``ops`` run one after another and their energy (J), static power included."""
    prices = device.energy_per_action_j()
    latency_s = 0.0
    energy_j = 0.0
    for op in ops:
        cost = device.cost(op)
        latency_s += cost.latency_s
        energy_j += action_energy_j(cost.actions, prices)
    return latency_s, energy_j + device.static_power_w() * latency_s


@register_reproduction("flightllm")
def reproduce_flightllm() -> Reproduction:
    """LLaMA2-7B batch-1 decode: U280 tokens/s, energy efficiency over V100S, VHK158 over A100."""
    fpga_ops = decode_ops(CONTEXT_TOKENS, FPGA_WEIGHT_DTYPE)
    gpu_ops = decode_ops(CONTEXT_TOKENS)
    rows = []
    results: dict[str, tuple[float, float]] = {}
    for machine, ops, weights in (
        ("u280_flightllm", fpga_ops, "int8"),
        ("vhk158_flightllm", fpga_ops, "int8"),
        ("v100s", gpu_ops, "fp16"),
        ("a100", gpu_ops, "fp16"),
    ):
        latency_s, energy_j = run_ops(shipped_device(machine), ops)
        results[machine] = (latency_s, energy_j)
        rows.append(
            {
                "machine": machine,
                "weights": weights,
                "ms/token": latency_s * 1e3,
                "tokens/s": 1.0 / latency_s,
                "J/token": energy_j,
                "mean power W": energy_j / latency_s,
            }
        )
    u280_s, u280_j = results["u280_flightllm"]
    metrics = {
        "u280_decode_tokens_per_s": Metric(
            55.0, 1.0 / u280_s, TOLERANCE, "tokens/s", "LLaMA2-7B decode, batch 1, U280"
        ),
        "energy_efficiency_vs_v100s": Metric(
            6.0,
            results["v100s"][1] / u280_j,
            TOLERANCE,
            "x",
            "tokens per joule, U280 over V100S",
        ),
        "vhk158_throughput_vs_a100": Metric(
            1.2,
            results["a100"][0] / results["vhk158_flightllm"][0],
            TOLERANCE,
            "x",
            "decode tokens/s, VHK158 over A100",
        ),
    }
    v100s = shipped_device("v100s")
    tdp_w = getattr(getattr(v100s, "config", None), "tdp_w", 0.0)
    power = {
        "v100s_w": results["v100s"][1] / results["v100s"][0],
        "v100s_tdp_w": tdp_w,
        "u280_w": u280_j / u280_s,
        "u280_idle_w": shipped_device("u280_flightllm").static_power_w(),
        # V100S power the paper's ratio implies at the modelled V100S and U280 rates
        "v100s_implied_w": metrics["energy_efficiency_vs_v100s"].paper
        * u280_j
        / results["v100s"][0],
        "board_limit_ratio": tdp_w * results["v100s"][0] / u280_j,
    }
    report = _report(pd.DataFrame(rows), metrics, _onchip_effect(), _compilation_table(), power)
    return Reproduction("flightllm", metrics, report)


def _onchip_effect() -> pd.DataFrame:
    u280 = shipped_device("u280_flightllm")
    assert isinstance(u280, FpgaDevice)
    text = resolve("u280_flightllm", "archsim.hwconfigs").read_text(encoding="utf-8")
    raw, _ = parse_yaml(text, "u280_flightllm.yaml")
    machine = machine_from_text(
        yaml.safe_dump(set_path(raw, "devices.0.activations_on_chip", False))
    ).config
    off = FpgaDevice(machine.devices[0])
    rows = []
    for label, device in (("always-on-chip decode", u280), ("activations through HBM", off)):
        ops = decode_ops(CONTEXT_TOKENS, FPGA_WEIGHT_DTYPE)
        latency_s, _ = run_ops(device, ops)
        weight_bytes = sum(op.weight_bytes() for op in ops)
        hbm_bytes = sum(device.cost(op).bytes_by_level.get("dram", 0.0) for op in ops)
        rows.append(
            {
                "U280 decode": label,
                "tokens/s": 1.0 / latency_s,
                "HBM GB/token": hbm_bytes / 1e9,
                "weight GB/token": weight_bytes / 1e9,
                "useful HBM bandwidth utilization": weight_bytes / latency_s / 460e9,
            }
        )
    return pd.DataFrame(rows)


def _compilation_table(max_len: int = 2048) -> pd.DataFrame:
    u280 = shipped_device("u280_flightllm")
    assert isinstance(u280, FpgaDevice)
    build = partial(_pass_ops, weight_dtype=FPGA_WEIGHT_DTYPE)
    layers = 32
    rows = []
    for label, lengths, bucket in (
        ("per-length", list(range(1, max_len + 1)), 1),
        ("length-adaptive, 64-token buckets", bucket_tops(max_len, 64), 64),
        ("length-adaptive, 256-token buckets", bucket_tops(max_len, 256), 256),
    ):
        cost = compilation_cost(u280, build, lengths)
        rows.append(
            {
                "compilation": label,
                "streams": cost.streams,
                "instruction storage MB (32 layers)": cost.storage_bytes * layers / 1e6,
                "prefill padding": padding_overhead(max_len, bucket),
            }
        )
    return pd.DataFrame(rows)


def _report(
    table: pd.DataFrame,
    metrics: dict[str, Metric],
    onchip: pd.DataFrame,
    compile_table: pd.DataFrame,
    power: dict[str, float],
) -> Document:
    doc = Document("FlightLLM: LLaMA2-7B decode on U280 and VHK158")
    doc.add(Paragraph("Regenerate with `archsim reproduce flightllm`."))
    doc.add(Heading("Metrics"))
    doc.add(metrics_table(metrics))
    doc.add(Heading("Per-machine decode step"))
    doc.add(Table(table))
    doc.add(Heading("Setup and assumptions"))
    for text in (
        f"Workload: LLaMA2-7B, batch 1, one decode step with {CONTEXT_TOKENS} tokens in the KV "
        "cache (the paper's runs generate hundreds of tokens after a short prompt; 512 is "
        "assumed as a representative cache length). All 32 blocks and the LM head are modelled.",
        "FPGA numerics: int8 linear-layer weights with fp16 activations, KV cache and norms "
        "(the paper's mixed-precision scheme; int8 is assumed as the mean weight width, which "
        "is also the W8 width of the SmoothQuant baseline the paper compares against). Weights "
        "are dense in decode: the sparse DSP chain speeds up compute, and batch-1 decode is "
        "bound by HBM, so sparsity is left out of the decode step.",
        "GPU baselines: fp16 weights and activations (vLLM, batch 1, as the paper's abstract "
        "states), one kernel per op, with archsim's GPU model (tiles, waves, launch overhead) "
        "and the shipped v100s.yaml / a100.yaml.",
        "Energy: action counts (MACs, HBM and on-chip bytes) priced by each machine file, plus "
        "idle (static) power x time. GPUs add the activity power a busy board draws beyond the "
        "counts (AccelWattch's split): each active SM holding warps, and per byte the HBM "
        "interface (controller, PHY) and the L2-to-SM transfer. The V100S takes its idle and "
        "per-SM power from AccelWattch's Volta fit and its per-byte energies from H100 board "
        "power measured in tests/data/h100_power (where the model predicts the measured "
        "batch-1 decode power within 4%). The paper measured board power on both sides; energy "
        "efficiency is tokens per joule.",
    ):
        doc.add(Paragraph(text))
    doc.add(Heading("Always-on-chip decode"))
    doc.add(
        Paragraph(
            "With activations kept in on-chip RAM, HBM carries only weights and the KV cache, and "
            "no op waits on an HBM round trip for its input. Turning the policy off on the same "
            "U280 design:"
        )
    )
    doc.add(Table(onchip))
    doc.add(Heading("Length-adaptive compilation"))
    doc.add(
        Paragraph(
            "Instruction storage of one prefill and one decode stream per compiled length, for "
            "lengths 1..2048 (counted on one block and scaled to 32). Buckets share one stream "
            "sized for the bucket's longest length; prefill pads to it."
        )
    )
    doc.add(Table(compile_table))
    doc.add(Heading("Power check"))
    doc.add(
        Paragraph(
            f"The modelled U280 draws {power['u280_w']:.1f} W in decode "
            f"({power['u280_idle_w']:.0f} W board idle plus DSP, on-chip RAM and HBM activity), "
            f"against the {U280_REPORTED_POWER_W:.0f} W "
            "FlightLLM reports for it (55 tokens/s at 1.22 tokens/J, as tabulated by a later "
            "survey). The modelled V100S draws "
            f"{power['v100s_w']:.0f} W, {power['v100s_w'] / power['v100s_tdp_w']:.0%} of its "
            f"{power['v100s_tdp_w']:.0f} W limit; an H100 running the same batch-1 linears "
            "measured 71% of its limit (tests/data/h100_power)."
        )
    )
    doc.add(Heading("Gap: energy efficiency over V100S"))
    doc.add(
        Paragraph(
            "With the GPU activity power (action counts alone gave 1.5x) the FPGA's advantage is "
            f"{metrics['energy_efficiency_vs_v100s'].archsim:.1f}x, short of 6.0x. At the "
            f"modelled rates the paper's ratio needs {power['v100s_implied_w']:.0f} W on the "
            f"V100S, {power['v100s_implied_w'] / power['v100s_tdp_w']:.0%} of its "
            f"{power['v100s_tdp_w']:.0f} W limit (or a slower V100S at less power). Two causes "
            "remain outside the model: the "
            "V100S's per-byte interface and transfer energies are the H100's (4N) taken unscaled "
            "to 12 nm, a lower bound (no V100 board power was measured here); and the vLLM "
            "decode step on the V100S (host gaps, unfused kernels) is modelled only through "
            "kernel launch overhead, while the paper's V100S tokens/s could not be retrieved. "
            "No constant was changed to close the gap. For scale only (not a metric): pricing "
            f"the V100S at its {power['v100s_tdp_w']:.0f} W board limit for the whole step would "
            f"give {power['board_limit_ratio']:.1f}x, an upper bound."
        )
    )
    return doc
