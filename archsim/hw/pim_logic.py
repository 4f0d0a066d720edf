"""Logic-PIM (Duplex): processing units on the HBM logic die, behind more TSVs than the host sees.

The units read the DRAM dies over TSVs at ``internal_bandwidth``, a multiple of the external
interface, so ops of low to moderate Op/B (MoE experts at small token counts, grouped-query
attention) run faster than on the host. The TSV peak is scaled by the DRAM standard's streaming
efficiency (refresh and row switches), taken from the DRAM timing kernel; with ``bank_bundle``
set (Duplex), by the efficiency of streaming one bank bundle alone, whose row activations
nothing hides.

[Duplex] Yun et al., "Duplex: A Device for Large Language Models with Mixture of Experts, Grouped
Query Attention, and Continuous Batching", MICRO 2024 (arXiv 2409.01141).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from archsim.config.machine import LogicPimConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.memory import (
    DramStandard,
    bundle_stream_efficiency,
    get_standard,
    serve_stream,
    streaming_pattern,
)
from archsim.hw.roofline import roofline_cost
from archsim.ir.ops import Attention, Elementwise, Gemm, Norm, Op, Softmax
from archsim.ir.tensor import DType

# bursts of the window that measures streaming efficiency: several refresh intervals
_STREAM_WINDOW_BURSTS = 50_000


@lru_cache(maxsize=8)
def streaming_efficiency(std: DramStandard) -> float:
    """Achieved share of a channel's peak for a long sequential stream (refresh included)."""
    banks, rows = streaming_pattern(std, _STREAM_WINDOW_BURSTS)
    stats = serve_stream(std, banks, rows)
    return stats.achieved_bw_bytes_per_s / std.channel_peak_bw_bytes_per_s


@register_device("logic_pim")
class LogicPimDevice:
    """Processing units on the logic die of the memory stacks."""

    kind = "logic_pim"
    fidelity = ("roofline", "memory timing (streaming efficiency, refresh)")

    def __init__(self, config: LogicPimConfig):
        self.config = config
        self.name = config.name
        self.standard = get_standard(config.memory_standard)
        if config.bank_bundle is not None:
            efficiency = bundle_stream_efficiency(self.standard, config.bank_bundle)
        else:
            efficiency = streaming_efficiency(self.standard)
        self.sustained_bw_bytes_per_s = config.internal_bw_bytes_per_s * efficiency

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    @property
    def shares_host_bandwidth(self) -> bool:
        """False: Logic-PIM reads its bank bundle over its own TSVs while the host reads the
        other bundles, and model data are placed so the two never share a bundle ([Duplex]
        Sec. 4.3 and 5.3), so neither takes bandwidth from the other."""
        return False

    def supports(self, op: Op) -> bool:
        if isinstance(op, Gemm | Attention):
            return op.dtype in self.config.compute_flops_per_s
        return isinstance(op, Elementwise | Norm | Softmax)

    def _peak(self, op: Op) -> float:
        if isinstance(op, Gemm | Attention):
            return self.config.compute_flops_per_s[op.dtype]
        return self.config.vector_flops_per_s

    def roofline(self, op: Op) -> OpCost:
        return roofline_cost(
            op,
            peak_flops_per_s=self._peak(op),
            bw_bytes_per_s=self.config.internal_bw_bytes_per_s,
            memory_level="dram",
            clock_hz=self.clock_hz,
            fixed_latency_s=self.config.dram.latency_s,
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        compute_s = op.flops() / self._peak(op)
        memory_s = op.bytes() / self.sustained_bw_bytes_per_s
        latency_s = max(compute_s, memory_s) + self.config.dram.latency_s
        actions: dict[str, float] = {"read.dram": op.bytes_read(), "write.dram": op.bytes_written()}
        if isinstance(op, Gemm | Attention):
            actions[f"mac.{op.dtype.value}"] = op.flops() / 2.0
        else:
            actions["vector_op"] = op.flops()
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=Bound.COMPUTE if compute_s >= memory_s else Bound.MEMORY,
            utilization=min(1.0, compute_s / latency_s),
            bytes_by_level={"dram": op.bytes()},
            actions=actions,
            notes=f"logic-pim at {self.sustained_bw_bytes_per_s / 1e12:.1f} TB/s sustained TSV bandwidth",
        )

    def peak_flops_per_s(self, dtype: DType) -> float:
        return self.config.compute_flops_per_s.get(dtype, 0.0)

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
