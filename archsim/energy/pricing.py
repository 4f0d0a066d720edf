"""Counts, then prices: energy of an op is its action counts times the device's per-action table.

Action names are ``mac.<dtype>`` (one multiply-accumulate), ``vector_op`` (one vector-unit
operation), ``read.<level>`` / ``write.<level>`` (one byte at a memory level), ``link`` (one byte
over the interconnect) and ``sm_active_s`` (one GPU SM holding resident warps for one second; its
price is a power). Keeping counts separate from prices lets a result be re-priced for another
technology node without simulating again.
"""

from __future__ import annotations

from collections.abc import Mapping


def action_energy_j(actions: Mapping[str, float], prices_j: Mapping[str, float]) -> float:
    """Sum of count x price; an action without a price is an error in the device model."""
    total = 0.0
    for action, count in actions.items():
        if count == 0:
            continue
        try:
            total += count * prices_j[action]
        except KeyError:
            raise KeyError(
                f"no energy price for action '{action}' (priced: {sorted(prices_j)})"
            ) from None
    return total


def memory_prices_j(level: str, read_j: float, write_j: float) -> dict[str, float]:
    """Per-byte prices of one memory level."""
    return {f"read.{level}": read_j, f"write.{level}": write_j}


def mac_prices_j(mac_energy_j: Mapping[object, float]) -> dict[str, float]:
    """``{DType: J}`` -> ``{"mac.<dtype>": J}``."""
    return {f"mac.{getattr(d, 'value', d)}": e for d, e in mac_energy_j.items()}
