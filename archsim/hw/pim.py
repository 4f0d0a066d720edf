"""Processing-in-memory device, at the roofline rung of the fidelity ladder.

Bank-side MAC units stream operands at the internal (all-bank) bandwidth, so memory-bound ops such
as GEMV run at that bandwidth instead of the external one. Bank timing, row buffers and refresh
belong to the detailed PIM model; this one bounds what PIM can do.
"""

from __future__ import annotations

from collections.abc import Mapping

from archsim.config.machine import PimConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.roofline import roofline_cost
from archsim.ir.ops import Elementwise, Gemm, Op
from archsim.ir.tensor import DType


@register_device("pim")
class PimDevice:
    """Bank-level PIM: GEMV and elementwise ops in the DRAM banks."""

    kind = "pim"
    fidelity = ("roofline",)

    def __init__(self, config: PimConfig):
        self.config = config
        self.name = config.name
        mac_units = config.channels * config.banks_per_channel * config.macs_per_bank_per_cycle
        self._peak_flops_per_s = 2.0 * mac_units * config.clock_hz

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    def supports(self, op: Op) -> bool:
        # PIM units serve weight-streaming GEMVs/skinny GEMMs and elementwise ops
        return isinstance(op, Gemm | Elementwise) and op.dtype in self.config.mac_energy_j

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
        actions = dict(base.actions)
        macs = op.flops() / 2 if isinstance(op, Gemm) else 0.0
        if macs:
            actions[f"mac.{op.dtype.value}"] = macs
        else:
            actions["vector_op"] = op.flops()
        return OpCost(
            latency_s=base.latency_s,
            cycles=base.cycles,
            bound=base.bound if base.bound is not Bound.LAUNCH else Bound.LAUNCH,
            utilization=base.utilization,
            bytes_by_level=base.bytes_by_level,
            actions=actions,
            notes="pim roofline at internal bandwidth",
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
        }

    def area_mm2(self) -> float:
        return self.config.area_mm2

    def static_power_w(self) -> float:
        return self.config.static_power_w

    def memory_capacity_bytes(self) -> float:
        return self.config.dram.size_bytes
