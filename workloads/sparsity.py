"""Sparsity specs of workload files to the sparsity kinds of the IR."""

from __future__ import annotations

from collections.abc import Callable

from archsim.config.workload import SparsitySpec
from archsim.errors import ArchsimError
from archsim.ir.tensor import DENSE, NM, Block, Sparsity, Unstructured

_CONVERTERS: dict[str, Callable[[SparsitySpec], Sparsity]] = {
    "dense": lambda spec: DENSE,
    "unstructured": lambda spec: Unstructured(spec.density),
    "nm": lambda spec: NM(spec.n, spec.m),
    "block": lambda spec: Block(spec.height, spec.width, spec.density),
}


def to_ir_sparsity(spec: SparsitySpec) -> Sparsity:
    """The IR sparsity a spec describes.

    Parameters
    ----------
    spec:
        A validated ``dense``, ``unstructured``, ``nm`` or ``block`` spec.

    Returns
    -------
    Sparsity
        ``Dense``, ``Unstructured``, ``NM`` or ``Block`` with the same parameters.
    """
    return _CONVERTERS[spec.kind](spec)


def check_reduction_fits(sparsity: Sparsity, k: int, field: str) -> None:
    """Refuse N:M sparsity whose group size does not divide a GEMM's reduction length ``k``.

    N:M groups run along the reduction dimension (NVIDIA's 2:4 layout), so a partial last group
    has no defined layout.

    Raises
    ------
    ArchsimError
        Naming ``field`` when ``k`` is not a multiple of ``m``.
    """
    if isinstance(sparsity, NM) and k % sparsity.m:
        raise ArchsimError(
            f"{field}: {sparsity.describe()} sparsity needs a reduction length that is a multiple "
            f"of {sparsity.m}, got k = {k}"
        )
