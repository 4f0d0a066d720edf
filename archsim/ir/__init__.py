"""Operator-graph IR: tensors with dtype and sparsity, frozen ops, and the ``OpGraph``."""

from archsim.ir.graph import GraphSummary, OpGraph
from archsim.ir.ops import (
    Attention,
    Collective,
    Conv2d,
    Elementwise,
    Embedding,
    Gemm,
    MoeCombine,
    MoeDispatch,
    MoeRouter,
    Norm,
    Op,
    Pool2d,
    Softmax,
    attention,
    gemm,
)
from archsim.ir.tensor import DENSE, NM, Block, Dense, DType, Sparsity, Tensor, Unstructured

__all__ = [
    "DENSE",
    "NM",
    "Attention",
    "Block",
    "Collective",
    "Conv2d",
    "DType",
    "Dense",
    "Elementwise",
    "Embedding",
    "Gemm",
    "GraphSummary",
    "MoeCombine",
    "MoeDispatch",
    "MoeRouter",
    "Norm",
    "Op",
    "OpGraph",
    "Pool2d",
    "Softmax",
    "Sparsity",
    "Tensor",
    "Unstructured",
    "attention",
    "gemm",
]
