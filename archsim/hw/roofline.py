"""Roofline bound shared by every device model."""

from __future__ import annotations

from archsim.hw.base import Bound, OpCost
from archsim.ir.ops import Op


def roofline_cost(
    op: Op,
    *,
    peak_flops_per_s: float,
    bw_bytes_per_s: float,
    memory_level: str,
    clock_hz: float,
    fixed_latency_s: float = 0.0,
    use_effective_flops: bool = False,
) -> OpCost:
    """``max(flops / peak, bytes / bandwidth)`` plus a fixed latency.

    ``use_effective_flops`` counts only the work on non-zeros, for devices that skip zeros.
    """
    work = op.effective_flops() if use_effective_flops else op.flops()
    compute_s = work / peak_flops_per_s
    memory_s = op.bytes() / bw_bytes_per_s
    body_s = max(compute_s, memory_s)
    latency_s = max(body_s + fixed_latency_s, 1e-12)
    if fixed_latency_s > body_s:
        bound = Bound.LAUNCH
    elif compute_s >= memory_s:
        bound = Bound.COMPUTE
    else:
        bound = Bound.MEMORY
    return OpCost(
        latency_s=latency_s,
        cycles=latency_s * clock_hz,
        bound=bound,
        utilization=min(1.0, compute_s / latency_s),
        bytes_by_level={memory_level: op.bytes()},
        actions={
            f"read.{memory_level}": op.bytes_read(),
            f"write.{memory_level}": op.bytes_written(),
        },
        notes="roofline",
    )
