"""Tilings of a GEMM over a scratchpad: the mapping object device models accept for GEMMs.

A tiling is search output (a mapper or the model's own small search chooses it); device models
only evaluate it. Sizes are in elements of the GEMM's ``m``, ``n`` and ``k`` dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

LoopOrder = Literal["n_outer", "m_outer"]
"""Which output-tile loop is outer. ``n_outer`` keeps a weight (``b``) tile resident while the
``m`` tiles stream past it; ``m_outer`` keeps an activation (``a``) tile resident instead. Reuse
only happens when the reduction is not split (one ``k`` tile), since partial sums are kept per
output tile."""


@dataclass(frozen=True)
class GemmTiling:
    """A scratchpad tiling of ``out[m, n] = a[m, k] @ b[k, n]``.

    Parameters
    ----------
    tile_m, tile_n, tile_k:
        Tile extent along each dimension, in elements; clipped to the GEMM's own size.
    buffers:
        Scratchpad buffers per operand tile: 1 (no overlap of DMA and compute) or 2 (double
        buffering).
    loop_order:
        Outer loop over output tiles; ``None`` lets the model pick the one moving fewer bytes.
    """

    tile_m: int
    tile_n: int
    tile_k: int
    buffers: int = 2
    loop_order: LoopOrder | None = None

    def __post_init__(self) -> None:
        if min(self.tile_m, self.tile_n, self.tile_k) < 1:
            raise ValueError(f"tile sizes must be positive, got {self.describe()}")
        if self.buffers not in (1, 2):
            raise ValueError(f"buffers must be 1 or 2, got {self.buffers}")
        if self.loop_order not in (None, "n_outer", "m_outer"):
            raise ValueError(f"loop_order must be 'n_outer' or 'm_outer', got {self.loop_order!r}")

    def describe(self) -> str:
        return f"{self.tile_m}x{self.tile_n}x{self.tile_k}"

    def clipped(self, m: int, n: int, k: int) -> GemmTiling:
        """The same tiling with each tile no larger than the GEMM it tiles."""
        return GemmTiling(
            min(self.tile_m, m),
            min(self.tile_n, n),
            min(self.tile_k, k),
            self.buffers,
            self.loop_order,
        )


def scratchpad_footprint_bytes(
    tile_m: float | np.ndarray,
    tile_n: float | np.ndarray,
    tile_k: float | np.ndarray,
    buffers: float,
    a_elem_bytes: float,
    b_elem_bytes: float,
    acc_elem_bytes: float,
) -> float | np.ndarray:
    """Scratchpad bytes a tiling needs: ``buffers`` copies of the ``a``, ``b`` and output tiles.

    The output tile is held at accumulator width (``acc_elem_bytes``, 4 for fp32 partial sums)
    across the ``k`` loop. Works elementwise on numpy arrays too.
    """
    a_tile = tile_m * tile_k * a_elem_bytes
    b_tile = tile_k * tile_n * b_elem_bytes
    out_tile = tile_m * tile_n * acc_elem_bytes
    return buffers * (a_tile + b_tile + out_tile)


def power_of_two_candidates(extent: int, base: int, steps: int = 8) -> list[int]:
    """Tile sizes ``base * 2**i`` (i < ``steps``) clipped to ``extent``, without repeats.

    ``base`` is the array dimension the tile maps onto, so tiles stay aligned to the hardware.
    """
    sizes = {min(extent, base << i) for i in range(steps)}
    # the whole extent is always a candidate: it avoids a ragged last tile
    if extent <= base << (steps - 1):
        sizes.add(extent)
    return sorted(sizes)


def tile_counts(extent: int, tile: int) -> int:
    return math.ceil(extent / tile)
