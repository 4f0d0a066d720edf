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
"""

from __future__ import annotations

from collections.abc import Mapping

from archsim.config.machine import PimConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.memory import get_standard, pim_row_stream
from archsim.hw.roofline import roofline_cost
from archsim.ir.ops import Attention, Elementwise, Gemm, Op
from archsim.ir.tensor import DType


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
