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
    GemmSuiteSpec | TransformerSpec | MoeLayerSpec | TrainingSpec, Field(discriminator="generator")
]


class WorkloadConfig(StrictModel):
    """A workload file."""

    schema_version: Literal[1] = Field(description="Version of this file format (1).")
    name: str = Field(description="Short name of the workload.")
    description: str = Field(default="", description="One line shown by 'archsim list'.")
    workload: GeneratorSpec = Field(description="The generator and its parameters.")
    sweep: dict[str, list[object]] | None = Field(
        default=None, description="Workload parameters to sweep: dotted path -> list of values."
    )
