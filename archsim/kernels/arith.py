"""Scalar helpers shared by the tiling kernels (compiled with Numba, callable from plain Python)."""

from __future__ import annotations

import math

import numba


@numba.njit(cache=True)
def cdiv(x: float, y: float) -> float:
    """Tiles of size ``y`` needed to cover ``x``."""
    return math.ceil(x / y)
