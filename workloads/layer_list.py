"""A user's own network as a list of layers (``generator: layer_list``); shapes are inferred."""

from __future__ import annotations

from collections.abc import Sequence

from archsim.config.workload import (
    AddLayer,
    ConcatLayer,
    ConvLayer,
    LayerListSpec,
    LinearLayer,
    PoolLayer,
)
from archsim.errors import ArchsimError
from archsim.ir.ops import Op
from archsim.workloads.cnn import CnnBuilder, images_per_run
from archsim.workloads.registry import register_lowering


def _conv(b: CnnBuilder, layer: ConvLayer, inputs: list[str]) -> str:
    return b.conv(
        layer.name,
        inputs[0],
        layer.out_channels,
        layer.kernel,
        layer.stride,
        layer.padding,
        layer.groups,
    )


def _linear(b: CnnBuilder, layer: LinearLayer, inputs: list[str]) -> str:
    return b.linear(layer.name, inputs[0], layer.out_features)


def _pool(b: CnnBuilder, layer: PoolLayer, inputs: list[str]) -> str:
    return b.pool(layer.name, inputs[0], layer.function, layer.kernel, layer.stride)


def _add(b: CnnBuilder, layer: AddLayer, inputs: list[str]) -> str:
    return b.add(layer.name, inputs)


def _concat(b: CnnBuilder, layer: ConcatLayer, inputs: list[str]) -> str:
    return b.concat(layer.name, inputs)


# op name -> (builder, how many inputs it takes: exactly one, or at least two)
_LAYER_BUILDERS = {
    "conv2d": (_conv, "one"),
    "linear": (_linear, "one"),
    "pool": (_pool, "one"),
    "add": (_add, "many"),
    "concat": (_concat, "many"),
}


@register_lowering("layer_list", work_items=images_per_run)
def lower_layer_list(spec: LayerListSpec) -> Sequence[Op]:
    """One op per layer, in file order; ``inputs`` name earlier layers or ``input``.

    Raises
    ------
    ArchsimError
        Naming the layer (``workload.layers[i]``) for an unknown or later input, a repeated name
        or shapes that do not fit.
    """
    builder = CnnBuilder(batch=spec.batch, dtype=spec.dtype)
    outputs = {
        "input": builder.input("input", spec.input.channels, spec.input.height, spec.input.width)
    }
    previous = "input"
    for index, layer in enumerate(spec.layers):
        where = f"workload.layers[{index}] ('{layer.name}')"
        if layer.name in outputs:
            raise ArchsimError(f"{where}: the name is already taken by an earlier layer")
        names = layer.inputs or [previous]
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise ArchsimError(
                f"{where}: inputs {unknown} are not earlier layers (known: {', '.join(outputs)})"
            )
        build, arity = _LAYER_BUILDERS[layer.op]
        if (arity == "one") != (len(names) == 1):
            wanted = "exactly one input" if arity == "one" else "at least two inputs"
            raise ArchsimError(f"{where}: {layer.op} takes {wanted}, got {len(names)}")
        try:
            outputs[layer.name] = build(builder, layer, [outputs[n] for n in names])
        except ArchsimError as exc:
            raise ArchsimError(f"{where}: {exc}") from None
        previous = layer.name
    return builder.ops
