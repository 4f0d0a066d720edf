"""FPGA accelerator, at the roofline rung of the fidelity ladder.

Peak arithmetic is DSP slices x MACs per slice per cycle x clock; operands stream from HBM/DDR.
DSP-chain structure, sparse chains and instruction cost belong to the detailed FPGA model.
"""

from __future__ import annotations

from collections.abc import Mapping

from archsim.config.machine import FpgaConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import OpCost, register_device
from archsim.hw.roofline import roofline_cost
from archsim.ir.ops import Gemm, Op
from archsim.ir.tensor import DType


@register_device("fpga")
class FpgaDevice:
    """DSP-slice accelerator on an FPGA."""

    kind = "fpga"
    fidelity = ("roofline",)

    def __init__(self, config: FpgaConfig):
        self.config = config
        self.name = config.name

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    def supports(self, op: Op) -> bool:
        return op.dtype in self.config.macs_per_dsp_per_cycle

    def roofline(self, op: Op) -> OpCost:
        return roofline_cost(
            op,
            peak_flops_per_s=self.peak_flops_per_s(op.dtype),
            bw_bytes_per_s=self.config.dram.bw_bytes_per_s,
            memory_level="dram",
            clock_hz=self.clock_hz,
            fixed_latency_s=self.config.dram.latency_s,
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        base = self.roofline(op)
        actions = dict(base.actions)
        if isinstance(op, Gemm):
            actions[f"mac.{op.dtype.value}"] = op.flops() / 2
        else:
            actions["vector_op"] = op.flops()
        return OpCost(
            latency_s=base.latency_s,
            cycles=base.cycles,
            bound=base.bound,
            utilization=base.utilization,
            bytes_by_level=base.bytes_by_level,
            actions=actions,
            notes="fpga roofline",
        )

    def peak_flops_per_s(self, dtype: DType) -> float:
        per_dsp = self.config.macs_per_dsp_per_cycle.get(dtype, 0)
        return 2.0 * self.config.dsp_count * per_dsp * self.clock_hz

    def peak_bw_bytes_per_s(self) -> float:
        return self.config.dram.bw_bytes_per_s

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
