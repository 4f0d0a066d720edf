"""Workload files: a generator with its parameters, lowered to an ``OpGraph`` by archsim.workloads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from archsim.config.quantities import Fraction, PositiveInt, StrictModel
from archsim.ir.tensor import DType


class DenseSpec(StrictModel):
    kind: Literal["dense"] = "dense"


class UnstructuredSpec(StrictModel):
    kind: Literal["unstructured"] = "unstructured"
    density: Fraction = Field(description="Share of non-zero elements, in (0, 1].")


class NMSpec(StrictModel):
    kind: Literal["nm"] = "nm"
    n: PositiveInt = Field(description="Non-zeros kept in each group.")
    m: PositiveInt = Field(description="Group size along the reduction dimension.")

    @model_validator(mode="after")
    def _n_le_m(self) -> NMSpec:
        if self.n > self.m:
            raise ValueError(f"N:M sparsity needs n <= m, got {self.n}:{self.m}")
        return self


class BlockSpec(StrictModel):
    kind: Literal["block"] = "block"
    height: PositiveInt = Field(description="Rows of a block.")
    width: PositiveInt = Field(description="Columns of a block.")
    density: Fraction = Field(description="Share of blocks kept.")


SparsitySpec = Annotated[
    DenseSpec | UnstructuredSpec | NMSpec | BlockSpec, Field(discriminator="kind")
]


class UniformRouting(StrictModel):
    distribution: Literal["uniform"] = "uniform"


class ZipfRouting(StrictModel):
    distribution: Literal["zipf"] = "zipf"
    exponent: float = Field(gt=0.0, le=10.0, description="Zipf exponent s: expert i gets ~ 1/i^s.")


class ExplicitRouting(StrictModel):
    distribution: Literal["explicit"] = "explicit"
    counts: list[Annotated[int, Field(ge=0)]] = Field(
        description="Tokens routed to each expert, in expert order (must sum to tokens * top_k)."
    )


RoutingSpec = Annotated[
    UniformRouting | ZipfRouting | ExplicitRouting, Field(discriminator="distribution")
]


class GemmShape(StrictModel):
    m: PositiveInt = Field(description="Rows of the activation / output.")
    n: PositiveInt = Field(description="Output features.")
    k: PositiveInt = Field(description="Reduction length.")
    batch: PositiveInt = Field(default=1, description="Independent GEMMs sharing the weight.")


class GemmSuiteSpec(StrictModel):
    """A list of independent GEMMs (e.g. the linear layers of a model at several token counts)."""

    generator: Literal["gemm_suite"] = "gemm_suite"
    dtype: DType = Field(default=DType.BF16, description="Element type of both operands.")
    shapes: list[GemmShape] = Field(min_length=1, description="The GEMMs, run one after another.")
    weight_sparsity: SparsitySpec = Field(default_factory=DenseSpec)
    activation_sparsity: SparsitySpec = Field(default_factory=DenseSpec)


class TransformerSpec(StrictModel):
    """A decoder-only transformer (dense or MoE) in prefill or one decode step."""

    generator: Literal["transformer"] = "transformer"
    model: str = Field(
        description="A model preset: llama2-7b, llama3-8b, mixtral-8x7b, deepseek-moe-16b."
    )
    phase: Literal["prefill", "decode"] = Field(description="Prompt processing or one decode step.")
    batch: PositiveInt = Field(description="Sequences processed together.")
    seq_len: PositiveInt = Field(
        description="Prefill: prompt tokens per sequence. Decode: tokens already in the KV cache."
    )
    layers: PositiveInt | None = Field(
        default=None, description="Simulate only this many layers (default: all of the model)."
    )
    dtype: DType = Field(default=DType.BF16, description="Weights and activations.")
    weight_sparsity: SparsitySpec = Field(
        default_factory=DenseSpec, description="Sparsity of the linear-layer weights."
    )
    routing: RoutingSpec = Field(
        default_factory=UniformRouting, description="How tokens spread over experts (MoE models)."
    )
    include_lm_head: bool = Field(
        default=True, description="Add the final norm and vocabulary GEMM."
    )


class MoeLayerSpec(StrictModel):
    """One mixture-of-experts FFN layer (router, dispatch, SwiGLU experts, combine)."""

    generator: Literal["moe_layer"] = "moe_layer"
    tokens: PositiveInt = Field(description="Tokens entering the layer.")
    d_model: PositiveInt = Field(description="Hidden size.")
    d_ff: PositiveInt = Field(description="Intermediate size of one expert.")
    experts: PositiveInt = Field(description="Routed experts.")
    top_k: PositiveInt = Field(description="Experts per token.")
    dtype: DType = Field(default=DType.BF16)
    routing: RoutingSpec = Field(default_factory=UniformRouting)

    @model_validator(mode="after")
    def _top_k_fits(self) -> MoeLayerSpec:
        if self.top_k > self.experts:
            raise ValueError(f"top_k {self.top_k} exceeds experts {self.experts}")
        return self


class CnnSpec(StrictModel):
    """A convolutional network from a preset (ResNet-18/34/50/101, MobileNetV2, GoogLeNet,
    SqueezeNet, DenseNet-121), one inference pass."""

    generator: Literal["cnn"] = "cnn"
    model: Literal[
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "mobilenet_v2",
        "googlenet",
        "squeezenet",
        "densenet121",
    ] = Field(description="Network preset.")
    batch: PositiveInt = Field(default=1, description="Images per inference.")
    image_size: PositiveInt = Field(default=224, description="Input height and width, in pixels.")
    dtype: DType = Field(default=DType.INT8, description="Weights and activations.")


class NasCellSpec(StrictModel):
    """A stack of NASNet-A-like normal cells: many parallel branches between two cell inputs."""

    generator: Literal["nas_cell"] = "nas_cell"
    cells: PositiveInt = Field(default=2, description="Normal cells stacked.")
    channels: PositiveInt = Field(default=64, description="Channels of every branch.")
    image_size: PositiveInt = Field(
        default=28, description="Feature-map height and width, in pixels."
    )
    batch: PositiveInt = Field(default=1, description="Images per inference.")
    dtype: DType = Field(default=DType.INT8, description="Weights and activations.")


class _LayerBase(StrictModel):
    name: str = Field(description="Layer name, unique in the list; later layers refer to it.")
    inputs: list[str] = Field(
        default_factory=list,
        description="Layers (or 'input') this layer reads; default: the layer before it.",
    )


class ConvLayer(_LayerBase):
    op: Literal["conv2d"] = Field(description="2-D convolution.")
    out_channels: PositiveInt = Field(description="Output channels.")
    kernel: PositiveInt = Field(description="Kernel height and width.")
    stride: PositiveInt = Field(default=1, description="Stride in both directions.")
    padding: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Symmetric zero padding, in pixels (default: kernel // 2, 'same' at stride 1).",
    )
    groups: PositiveInt = Field(default=1, description="Channel groups (depthwise: = channels).")


class LinearLayer(_LayerBase):
    op: Literal["linear"] = Field(description="Fully connected layer over the flattened input.")
    out_features: PositiveInt = Field(description="Output features.")


class PoolLayer(_LayerBase):
    op: Literal["pool"] = Field(description="Max or average pooling.")
    function: Literal["max", "avg"] = Field(default="max", description="Pooling function.")
    kernel: PositiveInt | None = Field(
        default=None, description="Window height and width (default: global pooling)."
    )
    stride: PositiveInt | None = Field(default=None, description="Stride (default: the kernel).")


class AddLayer(_LayerBase):
    op: Literal["add"] = Field(description="Elementwise sum of inputs of equal shape.")


class ConcatLayer(_LayerBase):
    op: Literal["concat"] = Field(description="Channel concatenation of inputs of equal size.")


LayerSpec = Annotated[
    ConvLayer | LinearLayer | PoolLayer | AddLayer | ConcatLayer, Field(discriminator="op")
]


class ImageInput(StrictModel):
    channels: PositiveInt = Field(description="Input channels.")
    height: PositiveInt = Field(description="Input height, in pixels.")
    width: PositiveInt = Field(description="Input width, in pixels.")


class LayerListSpec(StrictModel):
    """A user's own network as a list of layers; shapes follow from the input."""

    generator: Literal["layer_list"] = "layer_list"
    input: ImageInput = Field(description="Shape of one input image.")
    batch: PositiveInt = Field(default=1, description="Images per inference.")
    dtype: DType = Field(default=DType.INT8, description="Weights and activations.")
    layers: list[LayerSpec] = Field(min_length=1, description="Layers in a topological order.")


class TrainingSpec(StrictModel):
    """One training step of a stack of linear layers (forward, input- and weight-gradient GEMMs).

    Convolutions enter as their im2col GEMMs: ``m`` = batch x output pixels, ``k`` = in-channels x
    kernel area, ``n`` = out-channels.
    """

    generator: Literal["training"] = "training"
    dtype: DType = Field(default=DType.FP16, description="Element type of weights and activations.")
    layers: list[GemmShape] = Field(
        min_length=1, description="Forward GEMM of each layer: m rows, k inputs, n outputs."
    )
    weight_sparsity: SparsitySpec = Field(
        default_factory=DenseSpec, description="Sparsity of the weights in the forward pass."
    )
    bidirectional: bool = Field(
        default=True,
        description=(
            "Bidirectional weight pruning (BDWP): the backward pass multiplies by a second copy "
            "of the weight pruned N:M along the output dimension, so the input-gradient GEMM is "
            "sparse too; false: the backward pass uses the dense weight."
        ),
    )
    weight_update: bool = Field(
        default=True, description="Add the optimizer's elementwise weight update per layer."
    )


GeneratorSpec = Annotated[
    GemmSuiteSpec
    | TransformerSpec
    | MoeLayerSpec
    | TrainingSpec
    | CnnSpec
    | NasCellSpec
    | LayerListSpec,
    Field(discriminator="generator"),
]


class WorkloadConfig(StrictModel):
    """A workload file."""

    schema_version: Literal[1] = Field(description="Version of this file format (1).")
    name: str = Field(description="Short name of the workload.")
    description: str = Field(default="", description="One line shown by 'archsim list'.")
    workload: GeneratorSpec = Field(description="The generator and its parameters.")
    mapper: str | None = Field(
        default=None,
        description="Mapper for this workload (e.g. cosma, lru); the CLI's --mapper overrides it.",
    )
    sweep: dict[str, list[object]] | None = Field(
        default=None, description="Workload parameters to sweep: dotted path -> list of values."
    )
