"""Configuration: the only reader of YAML. Frozen pydantic models with units parsed at the edge."""

from archsim.config.loader import (
    LoadedFile,
    MachineFile,
    WorkloadFile,
    load_machine,
    load_workload,
    machine_from_text,
    parse_yaml,
    validate_as,
    workload_from_text,
)
from archsim.config.machine import (
    DeviceConfig,
    FpgaConfig,
    GpuConfig,
    InterconnectConfig,
    MachineConfig,
    MemoryLevelConfig,
    NpuConfig,
    PimConfig,
)
from archsim.config.overrides import set_path
from archsim.config.workload import (
    GemmSuiteSpec,
    MoeLayerSpec,
    RoutingSpec,
    SparsitySpec,
    TransformerSpec,
    WorkloadConfig,
)

__all__ = [
    "DeviceConfig",
    "FpgaConfig",
    "GemmSuiteSpec",
    "GpuConfig",
    "InterconnectConfig",
    "LoadedFile",
    "MachineConfig",
    "MachineFile",
    "MemoryLevelConfig",
    "MoeLayerSpec",
    "NpuConfig",
    "PimConfig",
    "RoutingSpec",
    "SparsitySpec",
    "TransformerSpec",
    "WorkloadConfig",
    "WorkloadFile",
    "load_machine",
    "load_workload",
    "machine_from_text",
    "parse_yaml",
    "set_path",
    "validate_as",
    "workload_from_text",
]
