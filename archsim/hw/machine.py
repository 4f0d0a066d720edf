"""A machine: the device models built from a validated machine config, and their interconnect."""

from __future__ import annotations

from dataclasses import dataclass

from archsim.config.machine import InterconnectConfig, MachineConfig
from archsim.hw.base import DeviceModel, build_device


@dataclass(frozen=True)
class Machine:
    """Devices by name, in the order of the machine file."""

    name: str
    devices: dict[str, DeviceModel]
    interconnect: InterconnectConfig | None

    @classmethod
    def from_config(cls, config: MachineConfig) -> Machine:
        return cls(
            name=config.name,
            devices={d.name: build_device(d) for d in config.devices},
            interconnect=config.interconnect,
        )

    def area_mm2(self) -> float:
        return sum(d.area_mm2() for d in self.devices.values())

    def static_power_w(self) -> float:
        return sum(d.static_power_w() for d in self.devices.values())

    def transfer_s(self, size_bytes: float) -> float:
        """Time to move ``size_bytes`` between two devices of this machine."""
        if self.interconnect is None or size_bytes == 0:
            return 0.0
        return self.interconnect.latency_s + size_bytes / self.interconnect.bw_bytes_per_s
