"""DRAM timing shared by the device models: HBM standards, access patterns, PIM row streams."""

from archsim.hw.memory.standards import (
    HBM2,
    HBM2E,
    HBM3,
    HBM3_H100,
    STANDARDS,
    DramStandard,
    get_standard,
)
from archsim.hw.memory.timing import (
    StreamStats,
    bundle_stream_efficiency,
    pim_gemv_row_cycles,
    pim_gwrite_cycles,
    pim_row_stream,
    random_pattern,
    serve_stream,
    streaming_pattern,
    timing_params,
)

__all__ = [
    "HBM2",
    "HBM2E",
    "HBM3",
    "HBM3_H100",
    "STANDARDS",
    "DramStandard",
    "StreamStats",
    "bundle_stream_efficiency",
    "get_standard",
    "pim_gemv_row_cycles",
    "pim_gwrite_cycles",
    "pim_row_stream",
    "random_pattern",
    "serve_stream",
    "streaming_pattern",
    "timing_params",
]
