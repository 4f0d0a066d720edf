"""Devices built from shipped machine files and a round-number NPU, shared by the device tests."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from archsim.config import load_machine
from archsim.config.workload import CnnSpec
from archsim.hw.base import build_device
from archsim.hw.gpu import GpuDevice

REPO = Path(__file__).resolve().parents[2]

# every CNN preset the workload schema offers
CNN_MODELS: tuple[str, ...] = typing.get_args(CnnSpec.model_fields["model"].annotation)

# Round numbers, not a product: 1 GHz, 1 TB/s (1000 DRAM bytes per cycle), four 128x128 WS arrays.
NPU_BASE: dict[str, Any] = {
    "kind": "npu",
    "name": "npu",
    "clock": "1 GHz",
    "static_power": "10 W",
    "leakage_per_mm2": "0.05 W",
    "mac_energy": {"bf16": "0.5 pJ", "int8": "0.1 pJ"},
    "vector_op_energy": "0.5 pJ",
    "systolic_array": {"count": 4, "rows": 128, "cols": 128, "dataflow": "ws"},
    "macs_per_pe_per_cycle": {"bf16": 1, "int8": 2},
    "vector_unit": {"lanes": 1024},
    "scratchpad": {
        "size": "16 MiB",
        "bandwidth": "20 TB/s",
        "read_energy_per_byte": "1 pJ",
        "write_energy_per_byte": "1 pJ",
    },
    "dram": {
        "size": "32 GiB",
        "bandwidth": "1 TB/s",
        "read_energy_per_byte": "30 pJ",
        "write_energy_per_byte": "30 pJ",
        "latency": "100 ns",
    },
    "dma": {"engines": 2, "setup": "50 ns"},
    "area": {
        "per_pe": "0.001 mm2",
        "per_vector_lane": "0.01 mm2",
        "sram_per_mib": "0.5 mm2",
        "dram_phy_per_tb_s": "40 mm2",
        "fixed": "100 mm2",
    },
}


def shipped_gpu(name: str) -> GpuDevice:
    """The GPU of the shipped machine file ``hwconfigs/NAME.yaml``."""
    device = build_device(load_machine(REPO / "hwconfigs" / f"{name}.yaml").config.devices[0])
    assert isinstance(device, GpuDevice)
    return device
