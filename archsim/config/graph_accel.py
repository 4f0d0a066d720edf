"""Graph-accelerator files: a PIUMA-like many-threaded machine with per-core scratchpads.

Kept apart from the machine files of ``archsim.config.machine``: a graph accelerator is priced by
pure SpGEMM cost functions (``archsim.hw.graph_accel``), not by the op-level device protocol.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from archsim.config.loader import parse_yaml, validate_as
from archsim.config.quantities import Bytes, BytesPerSecond, Hertz, PositiveInt, StrictModel


class GraphAccelConfig(StrictModel):
    """Cores of multi-threaded pipelines with a scratchpad each, over fine-grained DRAM."""

    name: str = Field(description="Name of the accelerator.")
    cores: PositiveInt = Field(description="Cores on the die.")
    pipelines_per_core: PositiveInt = Field(
        description="Multi-threaded pipelines per core that run the kernel's threads."
    )
    threads_per_pipeline: PositiveInt = Field(
        description="Hardware threads per pipeline; the pipeline issues one of them per cycle."
    )
    clock_hz: Hertz = Field(alias="clock", description="Core clock, e.g. '1 GHz'.")
    scratchpad_per_core_bytes: Bytes = Field(
        alias="scratchpad_per_core", description="Software-managed scratchpad per core."
    )
    dram_bw_bytes_per_s: BytesPerSecond = Field(
        alias="dram_bandwidth",
        description="DRAM bandwidth of the die at 8-byte access granularity.",
    )


class GraphAccelFile(StrictModel):
    """A graph-accelerator file: ``schema_version``, ``name``, sources and the accelerator."""

    schema_version: PositiveInt = Field(description="File format version (1).")
    name: str = Field(description="Short name of the design.")
    description: str = Field(default="", description="One line shown by 'archsim list'.")
    sources: list[str] = Field(default_factory=list, description="Where the numbers come from.")
    graph_accelerator: GraphAccelConfig = Field(description="The accelerator.")


def load_graph_accel(path: str | Path) -> GraphAccelConfig:
    """Read and validate a graph-accelerator file."""
    source = str(path)
    raw, lines = parse_yaml(Path(path).read_text(encoding="utf-8"), source)
    return validate_as(GraphAccelFile, raw, source, lines).graph_accelerator
