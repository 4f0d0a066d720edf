"""Bank-level PIM (HBM-PIM, Newton, NeuPIMs): MAC units beside every bank, GEMV by row streaming.

In all-bank mode one command drives every bank of a channel in lockstep: each bank activates a
row of its slice of the weight matrix, its MAC unit consumes the row column by column (one
command per ``macs_per_bank_per_cycle`` elements), and the bank precharges and moves on. The
timeline of one bank, paced by the DRAM standard's tRCD, tRAS, tRP, tCCD_L and refresh, comes
from the DRAM timing kernel; every bank of every channel runs the same timeline.

A MAC unit holds one input vector, so an operand of M rows streams the weights M times: PIM
wins on GEMV (Op/B about 1) and loses once M, the reuse a GEMM engine gets for free, grows. The
input vectors go in and the partial sums come out over the channel bus at the external bandwidth.

``row_buffers: single`` is blocked mode: while PIM runs, the host cannot use the memory.
``dual`` (NeuPIMs) adds a second row buffer per bank, so host traffic runs beside PIM commands;
the system level (``archsim.sim.system``) uses ``blocks_host_memory`` to tell the two apart.

``kv_mapping: per_request_channel`` is NeuPIMs' decode attention [NeuPIMs-repo]: each request's
K and V live in the banks of one channel (src/scheduler/Scheduler.cc, src/tensor/PIMTensor), so
a channel runs its requests' GEMVs one after another and the busiest channel sets the time. K
is stored token-major: one row of each bank holds one token's keys for ``row / head_dim`` heads,
and an all-bank row covers ``banks`` tokens (src/operations/NeuPIMSLogitSoftmax.cc). V is stored
dimension-major: one row of a bank holds up to ``row`` tokens of one head dimension, so a short
context fills only part of every V row it activates (src/operations/NeuPIMSAttend.cc). Each row
pays a ganged all-bank activation (``pim_gemv_row_cycles``), each input vector a global-buffer
write (``pim_gwrite_cycles``); the scores leave for the host's softmax between the two GEMVs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from archsim.config.machine import PimConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.memory import (
    get_standard,
    pim_gemv_row_cycles,
    pim_gwrite_cycles,
    pim_row_stream,
)
from archsim.hw.roofline import roofline_cost
from archsim.ir.ops import Attention, Elementwise, Gemm, Op
from archsim.ir.tensor import DType


@dataclass(frozen=True)
class RequestGemvWork:
    """The PIM work of one request's decode attention in its channel (one layer, one device).

    Attributes
    ----------
    qk_cycles, sv_cycles:
        Controller cycles of the score GEMVs (q . K^T) and of the context GEMVs (p . V).
    qk_rows, sv_rows:
        All-bank row activations of each.
    qk_comps, sv_comps:
        All-bank MAC commands of each.
    gwrites:
        Input vectors written to the global buffer (queries, then score chunks).
    qk_bus_cycles, sv_bus_cycles:
        Cycles of each phase in which the channel's column-command slots carry PIM commands
        (MAC commands, result reads, global-buffer writes), closed to the host's reads.
    """

    qk_cycles: float
    sv_cycles: float
    qk_rows: int
    sv_rows: int
    qk_comps: int
    sv_comps: int
    gwrites: int
    qk_bus_cycles: float
    sv_bus_cycles: float


@dataclass(frozen=True)
class PimPhase:
    """One phase of per-request-channel attention: its cost and how much of the busiest
    channel's column-command bus its PIM commands hold (the share host reads cannot use)."""

    cost: OpCost
    column_bus_share: float


@register_device("pim")
class PimDevice:
    """Bank-level PIM: GEMV-shaped GEMMs, decode attention and elementwise ops in the banks."""

    kind = "pim"
    fidelity = ("roofline", "memory timing (bank/row-buffer, refresh)")

    def __init__(self, config: PimConfig):
        self.config = config
        self.name = config.name
        self.standard = get_standard(config.memory_standard)
        self.banks = config.channels * config.banks_per_channel
        mac_units = self.banks * config.macs_per_bank_per_cycle
        self._peak_flops_per_s = 2.0 * mac_units * config.clock_hz

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    @property
    def blocks_host_memory(self) -> bool:
        """True in blocked mode: the host cannot read or write while PIM commands run."""
        return self.config.row_buffers == "single"

    def supports(self, op: Op) -> bool:
        if op.dtype not in self.config.mac_energy_j:
            return False
        if isinstance(op, Attention):
            return op.q_len == 1  # decode: one query row per head, a GEMV over the KV cache
        return isinstance(op, Gemm | Elementwise)

    def roofline(self, op: Op) -> OpCost:
        return roofline_cost(
            op,
            peak_flops_per_s=self._peak_flops_per_s,
            bw_bytes_per_s=self.config.internal_bw_bytes_per_s,
            memory_level="dram",
            clock_hz=self.clock_hz,
            fixed_latency_s=self.config.dram.latency_s,
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        base = self.roofline(op)
        if isinstance(op, Elementwise):
            actions = {**base.actions, "vector_op": op.flops()}
            return OpCost(
                latency_s=base.latency_s,
                cycles=base.cycles,
                bound=base.bound,
                utilization=base.utilization,
                bytes_by_level=base.bytes_by_level,
                actions=actions,
                notes="pim elementwise at internal bandwidth",
            )
        streamed_bytes, passes, io_bytes, macs = self._gemv_work(op)
        elem_bytes = op.dtype.size_bytes
        std = self.standard
        bytes_per_command = self.config.macs_per_bank_per_cycle * elem_bytes
        commands_per_row = max(1, int(std.row_bytes // bytes_per_command))
        rows_per_bank = streamed_bytes / (self.banks * std.row_bytes)
        # the MAC unit takes one cycle of the PIM clock per command
        command_cycles = std.clock_hz / self.config.clock_hz
        cycles, acts_per_bank, refreshes = pim_row_stream(
            std, rows_per_bank, commands_per_row, command_cycles
        )
        stream_s = cycles / std.clock_hz
        io_s = io_bytes / self.config.dram.bw_bytes_per_s
        latency_s = max(stream_s + io_s + self.config.dram.latency_s, base.latency_s)
        commands = rows_per_bank * commands_per_row * self.banks
        actions: dict[str, float] = {
            f"mac.{op.dtype.value}": macs,
            "pim.command": commands,
            "dram.activate": acts_per_bank * self.banks,
            "read.dram": io_bytes,
        }
        if isinstance(op, Attention):
            actions["vector_op"] = 5.0 * op.batch * op.heads_q * op.kv_len  # softmax
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=Bound.MEMORY,
            utilization=min(1.0, 2.0 * macs / self._peak_flops_per_s / latency_s),
            bytes_by_level={"dram": streamed_bytes + io_bytes},
            actions=actions,
            notes=(
                f"pim all-bank row stream: {passes} pass(es), {rows_per_bank:.1f} rows/bank, "
                f"{refreshes:.0f} refreshes"
            ),
        )

    def _gemv_work(self, op: Op) -> tuple[float, int, float, float]:
        """(bytes streamed from the banks, passes, bytes over the channel bus, MACs)."""
        if isinstance(op, Attention):
            group = op.heads_q // op.heads_kv
            kv_bytes = op.k.stored_bytes + op.v.stored_bytes
            # each query head of a GQA group is its own input vector: the group re-streams K, V
            io = op.q.stored_bytes + op.out.stored_bytes
            return kv_bytes * group, group, io, op.flops() / 2.0
        assert isinstance(op, Gemm)
        # the bank-resident operand is b (weights, or per-batch K/V); a's rows are input vectors
        return (
            op.b.stored_bytes * op.m,
            op.m,
            op.a.stored_bytes + op.out.stored_bytes,
            op.flops() / 2,
        )

    @property
    def maps_requests_to_channels(self) -> bool:
        """True when each request's KV cache sits in one channel (NeuPIMs' layout)."""
        return self.config.kv_mapping == "per_request_channel"

    def request_work(
        self, context: int, *, heads_q: int, heads_kv: int, head_dim: int, dtype: DType
    ) -> RequestGemvWork:
        """PIM commands of one request's decode attention over ``context`` cached tokens.

        Follows NeuPIMs' layouts (module docstring): K rows of ``row / head_dim`` heads of one
        token per bank and ``banks`` tokens per all-bank row; V rows of up to ``row`` tokens of
        one head dimension per bank, ``banks`` dimensions per all-bank row, the last chunk of
        a context only partly filled. Each query head of a GQA group is its own input vector,
        so a group re-runs its K and V rows.
        """
        std = self.standard
        banks = self.config.banks_per_channel
        per_command = self.config.macs_per_bank_per_cycle
        row_elems = std.row_bytes // dtype.size_bytes
        commands_per_row = max(1, row_elems // per_command)
        group = max(1, heads_q // heads_kv)
        width = heads_kv * head_dim
        heads_per_row = max(1, row_elems // head_dim)
        comps_per_head = math.ceil(head_dim / per_command)
        gwrite = pim_gwrite_cycles(std, commands_per_row=commands_per_row)
        # an all-bank MAC command blocks column commands of every rank for max(burst, tCCD_S)
        # ([NeuPIMs-repo] NewtonSim timing.cc: COMP -> READ same rank read_to_read_s), result
        # reads max(burst, tCCD_L), global-buffer writes tCCD_S + tCCD_L per column
        command_bus = max(std.burst_cycles, float(std.t_ccd_s_cycles))
        result_bus = max(std.burst_cycles, float(std.t_ccd_l_cycles))
        gwrite_bus = float(std.t_ccd_s_cycles + std.t_ccd_l_cycles) * commands_per_row

        def row(comps: int, readres: int) -> float:
            return pim_gemv_row_cycles(std, banks_per_channel=banks, comps=comps, readres=readres)

        # scores: one query vector per chunk of the model width, then every token tile's rows
        k_chunks = math.ceil(width / (heads_per_row * head_dim))
        k_tiles = math.ceil(context / banks)
        qk = qk_bus = 0.0
        qk_rows = qk_comps = 0
        for chunk in range(k_chunks):
            heads = min(heads_per_row, heads_kv - chunk * heads_per_row)
            qk += gwrite + k_tiles * row(heads * comps_per_head, heads)
            qk_bus += gwrite_bus + k_tiles * (
                heads * comps_per_head * command_bus + heads * result_bus
            )
            qk_rows += k_tiles
            qk_comps += k_tiles * heads * comps_per_head
        # context: per head, one score chunk of up to a row of tokens, then its V rows
        v_chunks = math.ceil(context / row_elems)
        v_tiles = math.ceil(head_dim / banks)
        sv = sv_bus = 0.0
        sv_rows = sv_comps = 0
        for chunk in range(v_chunks):
            tokens = min(row_elems, context - chunk * row_elems)
            chunk_comps = math.ceil(tokens / per_command)
            sv += heads_kv * (gwrite + v_tiles * row(chunk_comps, 1))
            sv_bus += heads_kv * (gwrite_bus + v_tiles * (chunk_comps * command_bus + result_bus))
            sv_rows += heads_kv * v_tiles
            sv_comps += heads_kv * v_tiles * chunk_comps
        gwrites = k_chunks + heads_kv * v_chunks
        return RequestGemvWork(
            qk_cycles=qk * group,
            sv_cycles=sv * group,
            qk_rows=qk_rows * group,
            sv_rows=sv_rows * group,
            qk_comps=qk_comps * group,
            sv_comps=sv_comps * group,
            gwrites=gwrites * group,
            qk_bus_cycles=qk_bus * group,
            sv_bus_cycles=sv_bus * group,
        )

    def assign_channels(
        self, contexts: Sequence[int], *, heads_q: int, heads_kv: int, head_dim: int, dtype: DType
    ) -> np.ndarray:
        """Channel of each request, in order of arrival.

        ``load_balanced`` is NeuPIMs' greedy channel load balancing ([NeuPIMs-repo]
        src/scheduler/Scheduler.cc ``allocate_pim_tile``): each request goes to the channel whose
        requests' estimated attention time is the smallest so far. ``round_robin`` is Newton's.
        """
        channels = self.config.channels
        if self.config.channel_policy == "round_robin":
            return np.arange(len(contexts)) % channels
        load = np.zeros(channels)
        out = np.empty(len(contexts), dtype=np.int64)
        for i, context in enumerate(contexts):
            work = self.request_work(
                int(context), heads_q=heads_q, heads_kv=heads_kv, head_dim=head_dim, dtype=dtype
            )
            ch = int(np.argmin(load))
            out[i] = ch
            load[ch] += work.qk_cycles + work.sv_cycles
        return out

    def attention_phases(
        self,
        contexts: Sequence[int],
        channels: Sequence[int],
        *,
        heads_q: int,
        heads_kv: int,
        head_dim: int,
        dtype: DType,
    ) -> tuple[PimPhase, ...]:
        """Costs of a batch's decode attention with per-request channels.

        Every channel runs its requests one after another, and the scores go to the host's
        vector units for the softmax between the score and context GEMVs. In blocked mode
        (one row buffer) the results cannot leave the banks while PIM runs, so the whole
        batch's scores wait for the last channel: two phases (scores, then contexts), each
        ending with its busiest channel, the host's softmax between them. With dual row
        buffers the scores of one head go out while the next head's GEMVs run, so the
        softmax hides behind them ([NeuPIMs] Sec. 6.1): one phase, each channel's score and
        context GEMVs back to back, ending with the busiest channel; unless
        ``score_context_sync`` is ``batch``, which keeps the two phases with dual row buffers
        too (the host's reads still run beside them).
        """
        if len(contexts) != len(channels):
            raise ValueError(f"{len(contexts)} contexts but {len(channels)} channel assignments")
        qk = np.zeros(self.config.channels)
        sv = np.zeros(self.config.channels)
        bus = np.zeros((2, self.config.channels))
        rows = np.zeros(2)
        comps = np.zeros(2)
        for context, ch in zip(contexts, channels, strict=True):
            work = self.request_work(
                int(context), heads_q=heads_q, heads_kv=heads_kv, head_dim=head_dim, dtype=dtype
            )
            qk[ch] += work.qk_cycles
            sv[ch] += work.sv_cycles
            bus[:, ch] += (work.qk_bus_cycles, work.sv_bus_cycles)
            rows += (work.qk_rows, work.sv_rows)
            comps += (work.qk_comps, work.sv_comps)
        tokens = float(sum(contexts))
        elem = dtype.size_bytes
        kv_bytes = tokens * heads_kv * head_dim * elem
        macs = tokens * heads_q * head_dim
        vectors = len(contexts) * heads_q * head_dim * elem
        scores = tokens * heads_q * elem
        banks = self.config.banks_per_channel
        if self.blocks_host_memory or self.config.score_context_sync == "batch":
            runs = [(qk, bus[0], comps[0], rows[0]), (sv, bus[1], comps[1], rows[1])]
        else:
            runs = [(qk + sv, bus.sum(axis=0), comps.sum(), rows.sum())]
        phases = []
        for cycles, bus_cycles, commands, activations in runs:
            # queries in and scores out, then scores in and contexts out
            io = (vectors + scores) * 2 / len(runs)
            share_macs = macs * 2 / len(runs)
            latency_s = float(cycles.max()) / self.standard.clock_hz + self.config.dram.latency_s
            share = float(bus_cycles.max() / cycles.max()) if cycles.max() > 0 else 0.0
            cost = OpCost(
                latency_s=latency_s,
                cycles=latency_s * self.clock_hz,
                bound=Bound.MEMORY,
                utilization=min(1.0, 2.0 * share_macs / self._peak_flops_per_s / latency_s),
                bytes_by_level={"dram": kv_bytes * 2 / len(runs) + io},
                actions={
                    f"mac.{dtype.value}": share_macs,
                    "pim.command": commands * banks,
                    "dram.activate": activations * banks,
                    "read.dram": io,
                },
                notes=(
                    f"pim per-request channels: busiest channel "
                    f"{cycles.max():.0f} cycles, mean {cycles.mean():.0f}"
                ),
            )
            phases.append(PimPhase(cost, min(1.0, share)))
        return tuple(phases)

    def peak_flops_per_s(self, dtype: DType) -> float:
        return self._peak_flops_per_s if dtype in self.config.mac_energy_j else 0.0

    def peak_bw_bytes_per_s(self) -> float:
        return self.config.internal_bw_bytes_per_s

    def energy_per_action_j(self) -> Mapping[str, float]:
        dram = self.config.dram
        return {
            **mac_prices_j(self.config.mac_energy_j),
            **memory_prices_j("dram", dram.read_energy_per_byte_j, dram.write_energy_per_byte_j),
            "vector_op": self.config.vector_op_energy_j,
            "pim.command": self.config.pim_command_energy_j,
            "dram.activate": self.config.activation_energy_j,
        }

    def area_mm2(self) -> float:
        return self.config.area_mm2

    def static_power_w(self) -> float:
        return self.config.static_power_w

    def memory_capacity_bytes(self) -> float:
        return self.config.dram.size_bytes
