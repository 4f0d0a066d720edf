"""NeuPIMs' per-request-channel PIM attention: channel imbalance, short KV rows, ganged
activation, the softmax round trip and PIM commands taking the host's column slots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import simpy

from archsim.config import load_machine
from archsim.errors import ArchsimError
from archsim.hw import build_device
from archsim.hw.machine import Machine
from archsim.hw.memory import HBM2, pim_gemv_row_cycles
from archsim.ir.tensor import DType
from archsim.reproduce.neupims import GPT3_7B
from archsim.sim.system import SystemPlan, _Layer, _Memory, simulate_decode_step

ROOT = Path(__file__).parents[2]
SHAPE = {"heads_q": 8, "heads_kv": 8, "head_dim": 128, "dtype": DType.BF16}


def _config(name: str, **pim_fields):
    config = load_machine(ROOT / "hwconfigs" / f"{name}.yaml").config
    if not pim_fields:
        return config
    devices = list(config.devices)
    devices[1] = devices[1].model_copy(update=pim_fields)
    return config.model_copy(update={"devices": devices})


def _pim(name: str = "neupims", **pim_fields):
    return build_device(_config(name, **pim_fields).devices[1])


def _machine(name: str, **pim_fields) -> Machine:
    return Machine.from_config(_config(name, **pim_fields))


def _phases(pim, contexts):
    channels = pim.assign_channels(contexts, **SHAPE)
    return pim.attention_phases(contexts, channels, **SHAPE)


def test_channel_imbalance_grows_with_skewed_contexts():
    pim = _pim()
    rng = np.random.default_rng(0)
    even = [300] * 256
    # the same tokens in total, a few long requests among many short ones
    skewed = list(rng.permutation([2048] * 24 + [int((300 * 256 - 2048 * 24) / 232)] * 232))
    assert abs(sum(skewed) - sum(even)) < 232

    def spread(contexts):
        return sum(phase.cost.latency_s for phase in _phases(pim, contexts))

    assert spread(skewed) > 1.1 * spread(even)


def test_load_balancing_beats_round_robin_on_skewed_contexts():
    balanced = _pim("neupims")
    round_robin = _pim("neupims_naive")
    assert balanced.config.channel_policy == "load_balanced"
    assert round_robin.config.channel_policy == "round_robin"
    rng = np.random.default_rng(1)
    contexts = [int(c) for c in rng.choice([32, 64, 128, 2048], size=256, p=[0.4, 0.3, 0.2, 0.1])]
    times = [
        sum(p.cost.latency_s for p in _phases(pim, contexts)) for pim in (balanced, round_robin)
    ]
    assert times[0] < times[1]


def test_short_contexts_cost_more_activations_per_kv_byte():
    pim = _pim()
    per_token = {}
    for context in (64, 512, 2048):
        work = pim.request_work(context, **SHAPE)
        per_token[context] = (work.qk_rows + work.sv_rows) / context
        assert work.sv_cycles > 0 and work.qk_cycles > 0
    # a V row holds 512 tokens of one dimension: short contexts leave it mostly empty
    assert per_token[64] > 2 * per_token[512]
    assert per_token[512] == pytest.approx(per_token[2048], rel=0.05)


def test_ganged_activation_sets_the_row_overhead():
    full = pim_gemv_row_cycles(HBM2, banks_per_channel=32, comps=32, readres=4)
    short = pim_gemv_row_cycles(HBM2, banks_per_channel=32, comps=2, readres=1)
    # a row of two MAC commands still pays the whole activation: far more than 2/32 of a full row
    assert short > 0.4 * full
    # a wider activation window spaces the G_ACTs further apart
    slow_faw = dataclasses.replace(HBM2, t_faw_s=2 * HBM2.t_faw_s)
    assert pim_gemv_row_cycles(slow_faw, banks_per_channel=32, comps=32, readres=4) > full
    with pytest.raises(ValueError, match="at least one MAC command"):
        pim_gemv_row_cycles(HBM2, banks_per_channel=32, comps=0, readres=1)


def test_softmax_round_trip_lengthens_blocked_pim_attention():
    contexts = list(np.random.default_rng(2).integers(64, 512, 128))
    softmax = _Layer(GPT3_7B, contexts, 4, DType.BF16).softmax_op()
    gaps = {}
    systems = {
        "neupims_naive": {},
        "neupims": {},
        "neupims_per_head": {"score_context_sync": "per_head"},
    }
    for name, fields in systems.items():
        machine = _machine(name.removesuffix("_per_head"), **fields)
        step = simulate_decode_step(
            machine, GPT3_7B, contexts, SystemPlan("npu", "pim"), tensor_parallel=4
        )
        round_trip = machine.devices["npu"].cost(softmax).latency_s
        assert round_trip > 0
        # one batch: NPU and PIM alternate; time beyond their busy sums is the softmax wait
        gaps[name] = (step.latency_s - sum(step.busy_s.values())) / (GPT3_7B.layers * round_trip)
    # blocked mode: the scores leave the banks only once every channel is done, so every
    # layer waits for the NPU's softmax between the two GEMVs
    assert gaps["neupims_naive"] == pytest.approx(1.0, rel=0.05)
    # NeuPIMs as its simulator runs it: the context GEMVs wait for the whole batch's scores
    assert _pim("neupims").config.score_context_sync == "batch"
    assert gaps["neupims"] == pytest.approx(1.0, rel=0.05)
    # dual row buffers synchronised per head: each head's scores go out while the next heads'
    # GEMVs run, and the softmax hides
    assert abs(gaps["neupims_per_head"]) < 0.05


def test_blocked_pim_pays_the_busiest_channel_twice():
    contexts = [int(c) for c in np.random.default_rng(4).integers(16, 2048, 256)]
    shape = {**SHAPE}
    dual = _pim("neupims", score_context_sync="per_head")
    blocked, synced = _pim("neupims_naive"), _pim("neupims")
    channels = dual.assign_channels(contexts, **shape)
    one = dual.attention_phases(contexts, channels, **shape)
    two = blocked.attention_phases(contexts, channels, **shape)
    assert len(one) == 1 and len(two) == 2
    # batch-synchronised dual row buffers run the same two phases as blocked mode
    batch = synced.attention_phases(contexts, channels, **shape)
    assert [p.cost.latency_s for p in batch] == pytest.approx([p.cost.latency_s for p in two])
    # the score and context phases each end with their busiest channel: never shorter than the
    # busiest channel running both back to back
    assert sum(p.cost.latency_s for p in two) >= one[0].cost.latency_s


def test_pim_commands_take_host_column_slots():
    env = simpy.Environment()
    memory = _Memory(env, 0.0, exclusive=False)
    host_bw, latency = 1e12, 1e-4
    demand = host_bw  # an op that alone fills the channels
    assert memory.host_duration_s(latency, demand, host_bw) == latency
    memory.column_bus[0] = (0.3, 10.0)  # a PIM phase holding 30% of the slots, long running
    assert memory.host_duration_s(latency, demand, host_bw) == pytest.approx(latency / 0.7)
    memory.column_bus[0] = (0.3, latency / 2)  # it ends halfway: slowed only while it runs
    slowed = memory.host_duration_s(latency, demand, host_bw)
    assert latency < slowed < latency / 0.7
    # an op that needs a small share of the bandwidth fits beside the PIM commands
    assert memory.host_duration_s(latency, 0.5 * host_bw, host_bw) == latency


def test_dual_row_buffer_npu_slows_beside_pim_phases():
    contexts = [int(c) for c in np.random.default_rng(3).integers(64, 512, 256)]
    machine = _machine("neupims")
    step = simulate_decode_step(
        machine, GPT3_7B, contexts, SystemPlan("npu", "pim", 2), tensor_parallel=4
    )
    npu = machine.devices["npu"]
    standalone = 0.0
    for half in (contexts[:128], contexts[128:]):
        layer = _Layer(GPT3_7B, half, 4, DType.BF16)
        standalone += sum(npu.cost(op).latency_s for op in layer.qkv + layer.post)
    standalone *= GPT3_7B.layers
    # the sub-batches' GEMMs read their weights while the other sub-batch's PIM commands hold
    # part of every channel's column slots, so the NPU is busy longer than its GEMMs alone take
    assert step.busy_s["npu"] > 1.02 * standalone


def test_trace_channel_placement_sets_the_pim_time():
    # a request trace's placement overrides the device policy: the same batch crowded into a
    # few channels runs its PIM attention longer than spread over all 32
    contexts = [300] * 64
    machine = _machine("neupims_naive")
    plan = SystemPlan("npu", "pim")
    spread = simulate_decode_step(
        machine, GPT3_7B, contexts, plan, tensor_parallel=4, channels=[i % 32 for i in range(64)]
    )
    policy = simulate_decode_step(machine, GPT3_7B, contexts, plan, tensor_parallel=4)
    crowded = simulate_decode_step(
        machine, GPT3_7B, contexts, plan, tensor_parallel=4, channels=[i % 8 for i in range(64)]
    )
    assert spread.latency_s == pytest.approx(policy.latency_s)  # round robin places them so
    assert crowded.busy_s["pim"] > 3.0 * spread.busy_s["pim"]
    assert crowded.latency_s > spread.latency_s


@pytest.mark.parametrize(
    ("channels", "message"), [([0] * 3, "3 channel assignments for 4"), ([0, 1, 2, 32], "32")]
)
def test_trace_channel_placement_rejects_bad_channels(channels, message):
    with pytest.raises(ArchsimError, match=message):
        simulate_decode_step(
            _machine("neupims_naive"),
            GPT3_7B,
            [100] * 4,
            SystemPlan("npu", "pim"),
            tensor_parallel=4,
            channels=channels,
        )
