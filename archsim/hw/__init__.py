"""Device models (one per family), shared hardware pieces, and the machine they form."""

from archsim.hw.base import (
    Bound,
    DeviceModel,
    OpCost,
    build_device,
    register_device,
    registered_kinds,
)
from archsim.hw.machine import Machine

__all__ = [
    "Bound",
    "DeviceModel",
    "Machine",
    "OpCost",
    "build_device",
    "register_device",
    "registered_kinds",
]
