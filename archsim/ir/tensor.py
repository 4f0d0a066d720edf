"""Tensors of the operator graph: shape, element type and sparsity.

Sparsity is a property of a tensor, never a separate op type: a GEMM whose weight is 2:4 sparse is
still a GEMM. Each sparsity kind knows its density (the share of stored non-zeros) and the
metadata it needs, so every device model can price sparse operands the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class DType(StrEnum):
    """Element types with their storage width."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bits(self) -> int:
        return _DTYPE_BITS[self]

    @property
    def size_bytes(self) -> float:
        return self.bits / 8


_DTYPE_BITS = {
    DType.FP32: 32,
    DType.TF32: 32,
    DType.FP16: 16,
    DType.BF16: 16,
    DType.FP8: 8,
    DType.INT8: 8,
    DType.INT4: 4,
}


@dataclass(frozen=True)
class Dense:
    """Every element stored."""

    @property
    def density(self) -> float:
        return 1.0

    def metadata_bits_per_element(self) -> float:
        return 0.0

    def describe(self) -> str:
        return "dense"


@dataclass(frozen=True)
class Unstructured:
    """A random share ``density`` of the elements is non-zero.

    Stored compressed as values plus a 16-bit position per non-zero, as tile-local sparse formats
    (Flash-LLM's tiled CSL, Sputnik's CSR within 64K-column tiles) do.
    """

    density: float
    index_bits: int = 16

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"unstructured density must be in (0, 1], got {self.density}")

    def metadata_bits_per_element(self) -> float:
        return self.density * self.index_bits

    def describe(self) -> str:
        return f"unstructured({self.density:g})"


@dataclass(frozen=True)
class NM:
    """N non-zeros in every group of M consecutive elements along the reduction dimension.

    Metadata is the position of each kept value inside its group: ceil(log2(M)) bits per kept value
    (2 bits for 2:4, as NVIDIA's sparse tensor cores store it).
    """

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (0 < self.n <= self.m):
            raise ValueError(f"N:M sparsity needs 0 < N <= M, got {self.n}:{self.m}")

    @property
    def density(self) -> float:
        return self.n / self.m

    def metadata_bits_per_element(self) -> float:
        return self.density * math.ceil(math.log2(self.m)) if self.m > 1 else 0.0

    def describe(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class Block:
    """Blocks of ``height`` x ``width`` elements are kept or dropped whole; ``density`` are kept.

    Metadata is one 32-bit block index per kept block.
    """

    height: int
    width: int
    density: float

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(
                f"block sparsity needs positive block sides, got {self.height}x{self.width}"
            )
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"block density must be in (0, 1], got {self.density}")

    def metadata_bits_per_element(self) -> float:
        return self.density * 32 / (self.height * self.width)

    def describe(self) -> str:
        return f"block({self.height}x{self.width},{self.density:g})"


Sparsity = Dense | Unstructured | NM | Block

DENSE = Dense()


@dataclass(frozen=True)
class Tensor:
    """A named tensor. Names do not take part in equality, so identical layers compare equal.

    Parameters
    ----------
    name:
        Unique within a graph; edges of the graph follow tensor names.
    shape:
        Extent of each dimension, in elements.
    dtype:
        Element type.
    sparsity:
        How the non-zeros are laid out; dense by default.
    is_weight:
        True for parameters (read from memory, never produced by an op of the graph).
    """

    name: str = field(compare=False)
    shape: tuple[int, ...]
    dtype: DType
    sparsity: Sparsity = DENSE
    is_weight: bool = False

    def __post_init__(self) -> None:
        if any(int(d) != d or d < 1 for d in self.shape):
            raise ValueError(f"tensor '{self.name}' has a non-positive dimension: {self.shape}")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def dense_bytes(self) -> float:
        """Bytes if every element were stored."""
        return self.numel * self.dtype.size_bytes

    @property
    def stored_bytes(self) -> float:
        """Bytes actually moved: kept values plus sparsity metadata."""
        values = self.numel * self.sparsity.density * self.dtype.size_bytes
        return values + self.numel * self.sparsity.metadata_bits_per_element() / 8

    @property
    def metadata_bytes(self) -> float:
        return self.numel * self.sparsity.metadata_bits_per_element() / 8
