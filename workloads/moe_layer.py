"""Lowering of one mixture-of-experts FFN layer (``generator: moe_layer``)."""

from __future__ import annotations

from collections.abc import Sequence

from archsim.config.workload import MoeLayerSpec
from archsim.ir.ops import Op
from archsim.workloads.layers import moe_ffn
from archsim.workloads.registry import register_lowering
from archsim.workloads.routing import expert_token_counts


def moe_layer_work_items(spec: MoeLayerSpec) -> tuple[float, str]:
    """One run of the layer processes ``spec.tokens`` tokens."""
    return float(spec.tokens), "tokens"


@register_lowering("moe_layer", work_items=moe_layer_work_items)
def lower_moe_layer(spec: MoeLayerSpec) -> Sequence[Op]:
    """Router, dispatch, a SwiGLU expert per expert with tokens, combine.

    The layer reads ``moe.x`` (``tokens x d_model``, produced outside the graph) and writes
    ``moe.combined``. Per-expert GEMMs have M = that expert's tokens from ``spec.routing``.
    """
    counts = expert_token_counts(
        spec.routing, tokens=spec.tokens, experts=spec.experts, top_k=spec.top_k
    )
    built = moe_ffn(
        "moe",
        "moe.x",
        tokens=spec.tokens,
        d_model=spec.d_model,
        expert_d_ff=spec.d_ff,
        expert_tokens=counts,
        top_k=spec.top_k,
        dtype=spec.dtype,
    )
    return built.ops
