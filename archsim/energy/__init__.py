"""Energy and area: action counts priced by per-action tables."""

from archsim.energy.pricing import action_energy_j, mac_prices_j, memory_prices_j

__all__ = ["action_energy_j", "mac_prices_j", "memory_prices_j"]
