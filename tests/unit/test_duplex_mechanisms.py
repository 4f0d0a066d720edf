"""Duplex's Logic-PIM bank bundles, expert placement, dense blocks of MoE models and
steady-state continuous batching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from archsim.config import load_machine
from archsim.errors import ArchsimError
from archsim.hw import build_device
from archsim.hw.machine import Machine
from archsim.hw.memory import HBM3, HBM3_H100, bundle_stream_efficiency
from archsim.hw.memory.timing import timing_params
from archsim.hw.pim_logic import streaming_efficiency
from archsim.ir.tensor import DType
from archsim.kernels import dram_timing as k
from archsim.reproduce import duplex as duplex_repro
from archsim.reproduce.duplex import GLAM
from archsim.sim.system import SystemPlan, _Layer, simulate_decode_step, steady_state_serving
from archsim.workloads.models.presets import get_model

ROOT = Path(__file__).parents[2]
MIXTRAL = get_model("mixtral-8x7b")


def _machine(name: str) -> Machine:
    return Machine.from_config(load_machine(ROOT / "hwconfigs" / f"{name}.yaml").config)


def test_bundle_peak_is_four_times_the_external_interface():
    # eight banks, one burst each per tCCD_L = 2 tCCD_S, against one burst per tCCD_S
    std = HBM3_H100
    bundle = 8 * std.burst_bytes * std.clock_hz / std.t_ccd_l_cycles
    assert bundle / std.channel_peak_bw_bytes_per_s == pytest.approx(4.0, rel=0.01)
    # 5 stacks x 32 pseudo-channels at the H100's pin rate give its 3.35 TB/s
    assert 5 * 32 * std.channel_peak_bw_bytes_per_s == pytest.approx(3.35e12, rel=0.01)


def test_bundle_rows_pay_unhidden_activations():
    alone = bundle_stream_efficiency(HBM3_H100, 8)
    assert alone < streaming_efficiency(HBM3_H100) - 0.2
    # a wider activation window staggers the bundle's eight activations further
    slow = dataclasses.replace(HBM3_H100, name="slow-faw", t_faw_s=2 * HBM3_H100.t_faw_s)
    assert bundle_stream_efficiency(slow, 8) < alone
    # a longer column cycle spends more time on each opened row, hiding more of its opening
    long_rows = dataclasses.replace(HBM3_H100, name="long-ccd", t_ccd_l_cycles=16)
    assert bundle_stream_efficiency(long_rows, 8) > alone


def test_kernel_matches_reference_on_bundle_pattern():
    std = HBM3
    per_group, groups, columns = 2, 4, 4
    order = [g * per_group + j for j in range(per_group) for g in range(groups)]
    banks = np.tile(order, 6 * columns).astype(np.int64)
    rows = np.repeat(np.arange(6, dtype=np.int64), columns * 8)
    p = timing_params(std, banks=8)
    p[k.BANKS_PER_GROUP] = per_group
    p[k.T_BURST] = p[k.T_CL] = 0.0
    p[k.T_CCD_S] = p[k.T_CCD_L] = std.t_ccd_l_cycles / 8
    assert k.simulate_dram_stream(banks, rows, p) == pytest.approx(
        k.simulate_dram_stream_reference(banks, rows, p)
    )


def test_bank_bundle_slows_logic_pim(tmp_path):
    config = load_machine(ROOT / "hwconfigs" / "duplex.yaml").config
    bundled = build_device(config.devices[1])
    text = (ROOT / "hwconfigs" / "duplex.yaml").read_text()
    free = tmp_path / "free.yaml"
    free.write_text("\n".join(line for line in text.splitlines() if "bank_bundle:" not in line))
    streaming = build_device(load_machine(free).config.devices[1])
    assert bundled.sustained_bw_bytes_per_s < 0.7 * streaming.sustained_bw_bytes_per_s


def test_logic_pim_leaves_the_xpu_bandwidth_alone(monkeypatch):
    contexts = [2048] * 32
    plan = SystemPlan("xpu", "logic_pim", co_processing=True)
    pim_class = type(_machine("duplex").devices["logic_pim"])
    # banks that could serve only 4 TB/s in all: summed demands of the two would exceed them
    monkeypatch.setattr(pim_class, "peak_bw_bytes_per_s", lambda self: 4e12)

    def step():
        return simulate_decode_step(_machine("duplex"), MIXTRAL, contexts, plan, tensor_parallel=4)

    separate = step()
    monkeypatch.setattr(pim_class, "shares_host_bandwidth", property(lambda self: True))
    shared = step()
    # separate bundles and paths: the xPU's experts run at their standalone speed beside
    # Logic-PIM's; sharing the banks would slow them
    assert shared.busy_s["xpu"] > 1.05 * separate.busy_s["xpu"]
    assert shared.latency_s > separate.latency_s


def test_expert_placements():
    machine = _machine("duplex")
    contexts = [1024] * 32

    def busy(plan, **kw):
        return simulate_decode_step(
            machine, MIXTRAL, contexts, plan, tensor_parallel=4, **kw
        ).busy_s

    on_xpu = busy(SystemPlan("xpu", "logic_pim"), expert_parallel=4)
    on_pim = busy(SystemPlan("xpu", "logic_pim", experts_on_attention=True), expert_parallel=4)
    # the experts move from the xPU to Logic-PIM and take less time there at batch 32
    assert on_pim["xpu"] < 0.5 * on_xpu["xpu"]
    assert on_pim["logic_pim"] - on_xpu["logic_pim"] < on_xpu["xpu"] - on_pim["xpu"]
    # co-processing uses both for the experts, so neither holds all of them
    both = busy(SystemPlan("xpu", "logic_pim", co_processing=True))
    assert on_pim["xpu"] < both["xpu"] < on_xpu["xpu"]


def test_expert_parallelism_holds_whole_experts():
    contexts = [512] * 64
    tp = _Layer(MIXTRAL, contexts, 4, DType.BF16)
    ep = _Layer(MIXTRAL, contexts, 4, DType.BF16, expert_parallel=4)
    assert len(ep.expert_ops) == MIXTRAL.experts // 4
    assert len(tp.expert_ops) == MIXTRAL.experts
    # the same share of the expert weights either way
    weights = [
        sum(op.b.stored_bytes for pair in layer.expert_ops for op in pair) for layer in (tp, ep)
    ]
    assert weights[0] == pytest.approx(weights[1])
    with pytest.raises(ArchsimError, match="expert_parallel must divide"):
        _Layer(MIXTRAL, contexts, 4, DType.BF16, expert_parallel=3)


def test_dense_blocks_of_an_moe_model_run_dense_ffns():
    machine = _machine("h100")
    contexts = [1024] * 64
    plan = SystemPlan("h100", "h100")
    mixed = simulate_decode_step(machine, GLAM, contexts, plan, tensor_parallel=8).latency_s
    all_moe = dataclasses.replace(GLAM, first_dense_layers=0)
    all_dense = dataclasses.replace(GLAM, experts=0, top_k=0, expert_d_ff=0, first_dense_layers=0)
    moe = simulate_decode_step(machine, all_moe, contexts, plan, tensor_parallel=8).latency_s
    dense = simulate_decode_step(machine, all_dense, contexts, plan, tensor_parallel=8).latency_s
    # half the blocks of each kind: the step lies halfway between the two extremes
    assert dense < mixed < moe
    assert mixed == pytest.approx((dense + moe) / 2, rel=0.02)


def test_steady_state_prefill_dilutes_decode_throughput():
    machine = _machine("h100")
    plan = SystemPlan("h100", "h100")

    def serve(input_len, output_len):
        return steady_state_serving(
            machine,
            MIXTRAL,
            plan,
            batch=32,
            input_len=input_len,
            output_len=output_len,
            tensor_parallel=4,
            expert_parallel=4,
        )

    short_prompts = serve(256, 1024)
    assert short_prompts.tokens_per_s < 32 / short_prompts.decode_step_s
    assert short_prompts.prefill_s > 0
    # longer prompts for the same outputs: more prefill per generated token
    long_prompts = serve(4096, 1024)
    assert long_prompts.tokens_per_s < short_prompts.tokens_per_s
    assert long_prompts.energy_per_token_j > short_prompts.energy_per_token_j
    with pytest.raises(ArchsimError, match="must be positive"):
        serve(0, 16)


def test_xpu_is_priced_as_the_h100():
    # the xPU is the H100: the measured activity power, idle power and per-action prices of the
    # baseline apply to it unchanged, so the energy comparison differs only where the hardware does
    xpu = _machine("duplex").devices["xpu"]
    h100 = _machine("h100").devices["h100"]
    assert xpu.config.power == h100.config.power
    assert xpu.config.power.sm_active_w > 0.0
    assert xpu.energy_per_action_j() == h100.energy_per_action_j()
    assert xpu.static_power_w() == h100.static_power_w()


def _serve(raw: dict, plan: SystemPlan, batch: int = 32, length: int = 1024, **kw):
    return steady_state_serving(
        duplex_repro._from_raw(raw),
        MIXTRAL,
        plan,
        batch=batch,
        input_len=length,
        output_len=length,
        tensor_parallel=4,
        **kw,
    )


def test_paper_pricing_keeps_dram_and_arithmetic_only():
    raw = duplex_repro._raw("h100")
    plan = SystemPlan("h100", "h100")
    board = _serve(raw, plan, expert_parallel=4)
    paper = _serve(duplex_repro.dram_and_arithmetic(raw), plan, expert_parallel=4)
    counted = _serve(duplex_repro.dram_byte_counter(raw, "h100"), plan, expert_parallel=4)
    # the same runs: only the prices change
    assert paper.tokens_per_s == board.tokens_per_s
    assert 0.0 < paper.energy_per_token_j < board.energy_per_token_j
    # what is left is the DRAM bytes at the HBM price plus the MACs: no idle, L2 or SM power
    hbm_j = _machine("h100").devices["h100"].config.hbm.read_energy_per_byte_j
    dram_j = counted.energy_per_token_j * hbm_j
    assert dram_j < paper.energy_per_token_j < 1.5 * dram_j


def test_experts_on_logic_pim_save_dram_energy():
    # at batch 32 a Mixtral expert's Op/B is low: read on Logic-PIM, its weights skip the xPU's
    # global I/O wires and interposer, so the step costs less DRAM energy
    raw = duplex_repro.dram_and_arithmetic(duplex_repro._raw("duplex"))
    on_xpu = _serve(raw, SystemPlan("xpu", "logic_pim"), expert_parallel=4)
    on_pim = _serve(
        raw, SystemPlan("xpu", "logic_pim", experts_on_attention=True), expert_parallel=4
    )
    assert on_pim.energy_per_token_j < 0.8 * on_xpu.energy_per_token_j
    # a Logic-PIM byte is a full HBM access of h100.yaml less the data movement only the xPU's
    # reads pay (the paper's per-bit figures): the shared part is priced alike
    pim = _machine("duplex").devices["logic_pim"].config.dram.read_energy_per_byte_j
    hbm = _machine("h100").devices["h100"].config.hbm.read_energy_per_byte_j
    skipped_j = (duplex_repro.FULL_READ_PJ_PER_BIT - duplex_repro.LOGIC_PIM_READ_PJ_PER_BIT) * 8e-12
    assert pim == pytest.approx(hbm - skipped_j, rel=0.01)


def test_logic_pim_moves_bytes_it_does_not_add_them():
    # Duplex splits the GPU's DRAM traffic between its two processors, Logic-PIM reading most of
    # it; the total per token is the GPU's
    for model in duplex_repro.MODELS:
        gpu = duplex_repro.dram_bytes_per_token("gpu", model, 64, 512)
        duplex = duplex_repro.dram_bytes_per_token("duplex_pe_t", model, 64, 512)
        assert set(duplex) == {"xpu", "logic_pim"}
        assert sum(duplex.values()) == pytest.approx(gpu["h100"], rel=0.02)
        assert duplex["logic_pim"] > duplex["xpu"]


def test_mixtral_leans_on_the_xpu_as_the_batch_grows():
    # [Duplex] Sec. 7.4: with 8 experts, a batch of 128 gives each Mixtral expert 32 tokens, so
    # co-processing sends more experts to the xPU; GLaM's 64 experts stay on Logic-PIM and its
    # xPU weights are shared by more tokens
    def xpu_share(model: str, batch: int) -> float:
        moved = duplex_repro.dram_bytes_per_token("duplex_pe_t", model, batch, 1024)
        return moved["xpu"] / sum(moved.values())

    assert xpu_share("mixtral-8x7b", 128) > 1.3 * xpu_share("mixtral-8x7b", 32)
    assert xpu_share("glam-143b", 128) < xpu_share("glam-143b", 32)
