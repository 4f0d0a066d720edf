"""Instruction storage of an FPGA overlay: per-length compilation against length-adaptive buckets.

An overlay runs a compiled instruction stream per (phase, sequence length): addresses, tile counts
and loop bounds change with the length, so a stream compiled for one length cannot serve another.
Compiling every length up to the context limit stores one prefill and one decode stream per
length. Length-adaptive compilation (FlightLLM §5.2) compiles one stream per *bucket* of lengths,
sized for the bucket's longest length; the actual length is a runtime operand, and shorter
inputs in the bucket pay the padding to the bucket's top in prefill.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from archsim.hw.fpga import FpgaDevice
from archsim.ir.ops import Op

# ops of one pass for (phase, length): phase is "prefill" or "decode"
PassBuilder = Callable[[str, int], Sequence[Op]]


@dataclass(frozen=True)
class CompilationCost:
    """Instruction storage of a compilation policy over lengths ``1..max_len``.

    Attributes
    ----------
    streams:
        Instruction streams stored (one per phase and compiled length).
    instructions:
        Instructions over all stored streams.
    storage_bytes:
        Encoded size of those instructions (loads, matrix instructions and stores each at
        their own size when the device has a ``matrix`` rule).
    """

    streams: int
    instructions: int
    storage_bytes: float


def bucket_tops(max_len: int, bucket_len: int) -> list[int]:
    """Longest length of each bucket of ``bucket_len`` consecutive lengths up to ``max_len``."""
    if bucket_len < 1 or max_len < 1:
        raise ValueError(f"lengths must be positive, got max_len={max_len}, bucket={bucket_len}")
    return [min(top, max_len) for top in range(bucket_len, max_len + bucket_len, bucket_len)]


def compilation_cost(
    device: FpgaDevice, build: PassBuilder, lengths: Sequence[int]
) -> CompilationCost:
    """Instructions stored when one prefill and one decode stream are compiled per length.

    Parameters
    ----------
    device:
        The FPGA model that counts and sizes instructions per op (it needs an ``instruction``
        block).
    build:
        ``(phase, length) -> ops`` of one pass.
    lengths:
        The lengths compiled: every length for per-length compilation, the bucket tops for
        length-adaptive compilation.
    """
    spec = device.config.instruction
    if spec is None:
        raise ValueError(f"device '{device.name}' has no 'instruction' block to count with")
    total = 0
    storage_bytes = 0.0
    for length in lengths:
        for phase in ("prefill", "decode"):
            for op in build(phase, length):
                total += device.instructions(op)
                storage_bytes += device.instruction_bytes(op)
    streams = 2 * len(lengths)
    return CompilationCost(streams, total, storage_bytes)


def padding_overhead(max_len: int, bucket_len: int) -> float:
    """Mean extra prefill tokens, as a share of the real ones, over lengths ``1..max_len``.

    Every length is padded to its bucket's top; with uniform lengths this is the price of
    length-adaptive compilation in prefill work.
    """
    padded = sum(
        min(math.ceil(n / bucket_len) * bucket_len, max_len) for n in range(1, max_len + 1)
    )
    real = max_len * (max_len + 1) / 2
    return padded / real - 1.0
