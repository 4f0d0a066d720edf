"""JSON Schema of the file formats, for editors (``archsim schema``)."""

from __future__ import annotations

from typing import Any

from archsim.config.machine import MachineConfig
from archsim.config.workload import WorkloadConfig

SCHEMAS = {"machine": MachineConfig, "workload": WorkloadConfig}


def json_schema(which: str) -> dict[str, Any]:
    """The JSON Schema of ``machine`` or ``workload`` files, keyed by their YAML names."""
    return SCHEMAS[which].model_json_schema(by_alias=True, mode="validation")
