"""Frozen operators of the graph. Each knows its arithmetic work and the bytes it must move.

Conventions (the same as the measured GPU data under ``shared/data/gpu``):

* ``flops()`` counts dense-equivalent arithmetic: a multiply-accumulate is 2 operations, and a
  sparse operand does not reduce it. ``effective_flops()`` is the work on non-zeros only.
* ``bytes_read()`` / ``bytes_written()`` are the compulsory traffic: each input read once, each
  output written once, sparse tensors at their compressed size including metadata.
* Names (of ops and tensors) take no part in equality, so identical layers compare and hash equal
  and device models can cache their cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from archsim.ir.tensor import DENSE, DType, Sparsity, Tensor


@dataclass(frozen=True)
class Op:
    """Base of every operator."""

    name: str = field(compare=False)
    kind: ClassVar[str] = "op"

    def inputs(self) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def outputs(self) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def flops(self) -> float:
        """Dense-equivalent arithmetic operations (a MAC counts 2)."""
        raise NotImplementedError

    def effective_flops(self) -> float:
        """Arithmetic on non-zero operands only; equals ``flops()`` for dense ops."""
        return self.flops()

    @property
    def dtype(self) -> DType:
        """The element type the op computes in."""
        return self.inputs()[0].dtype

    def bytes_read(self) -> float:
        return sum(t.stored_bytes for t in self.inputs())

    def bytes_written(self) -> float:
        return sum(t.stored_bytes for t in self.outputs())

    def bytes(self) -> float:
        """Compulsory traffic: inputs read once plus outputs written once."""
        return self.bytes_read() + self.bytes_written()

    def weight_bytes(self) -> float:
        return sum(t.stored_bytes for t in self.inputs() if t.is_weight)

    def resident_weights(self) -> tuple[Tensor, ...]:
        """Weights that must stay in device memory for this op although it does not read them."""
        return ()

    def op_per_byte(self) -> float:
        """Arithmetic intensity in operations per byte of compulsory traffic."""
        traffic = self.bytes()
        return self.flops() / traffic if traffic > 0 else float("inf")


@dataclass(frozen=True)
class Gemm(Op):
    """``out[b, m, n] = sum_k a[b, m, k] * w[b?, k, n]``; either operand may be sparse.

    ``b`` is a weight shared across the batch when ``b.is_weight``; otherwise it has a leading
    batch dimension (attention's score and value products). M = 1 makes it a GEMV.
    """

    a: Tensor
    b: Tensor
    out: Tensor
    m: int
    n: int
    k: int
    batch: int = 1
    kind: ClassVar[str] = "gemm"

    def __post_init__(self) -> None:
        if min(self.m, self.n, self.k, self.batch) < 1:
            raise ValueError(f"gemm '{self.name}' needs positive sizes, got {self.shape_str()}")
        if self.a.numel != self.batch * self.m * self.k:
            raise ValueError(
                f"gemm '{self.name}': operand a {self.a.shape} is not {self.shape_str()}"
            )
        b_numel = self.k * self.n * (1 if self.b.is_weight else self.batch)
        if self.b.numel != b_numel:
            raise ValueError(
                f"gemm '{self.name}': operand b {self.b.shape} is not {self.shape_str()}"
            )

    def shape_str(self) -> str:
        prefix = f"{self.batch}x" if self.batch > 1 else ""
        return f"{prefix}{self.m}x{self.n}x{self.k}"

    @property
    def is_gemv(self) -> bool:
        return self.m == 1

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.a, self.b)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 2.0 * self.batch * self.m * self.n * self.k

    def effective_flops(self) -> float:
        return self.flops() * self.a.sparsity.density * self.b.sparsity.density


def gemm(
    name: str,
    m: int,
    n: int,
    k: int,
    dtype: DType = DType.BF16,
    *,
    batch: int = 1,
    b_is_weight: bool = True,
    a_sparsity: Sparsity = DENSE,
    b_sparsity: Sparsity = DENSE,
    out_dtype: DType | None = None,
    a_name: str | None = None,
    b_name: str | None = None,
    out_name: str | None = None,
) -> Gemm:
    """Build a GEMM with its tensors named after the op unless names are given."""
    a_shape = (batch, m, k) if batch > 1 else (m, k)
    b_shape = (k, n) if b_is_weight or batch == 1 else (batch, k, n)
    out_shape = (batch, m, n) if batch > 1 else (m, n)
    return Gemm(
        name=name,
        a=Tensor(a_name or f"{name}.a", a_shape, dtype, a_sparsity),
        b=Tensor(b_name or f"{name}.w", b_shape, dtype, b_sparsity, is_weight=b_is_weight),
        out=Tensor(out_name or f"{name}.out", out_shape, out_dtype or _accumulate_out(dtype)),
        m=m,
        n=n,
        k=k,
        batch=batch,
    )


def _accumulate_out(dtype: DType) -> DType:
    # fp8 and int GEMMs write a 16-bit result in every framework we model (torch._scaled_mm -> bf16)
    return DType.BF16 if dtype in (DType.FP8, DType.INT8, DType.INT4) else dtype


@dataclass(frozen=True)
class GroupedGemm(Op):
    """One kernel running a GEMM per group (MoE experts): ``out[rows of g] = x[rows of g] @ w[g]``.

    ``x`` holds the rows of all groups sorted by group (``group_rows[g]`` rows each), ``w`` the
    ``[groups, k, n]`` weights. Only the weights of groups with at least one row are read.
    """

    x: Tensor
    w: Tensor
    out: Tensor
    group_rows: tuple[int, ...]
    n: int
    k: int
    kind: ClassVar[str] = "grouped_gemm"

    def __post_init__(self) -> None:
        rows = sum(self.group_rows)
        if min(self.n, self.k) < 1 or rows < 1 or min(self.group_rows) < 0:
            raise ValueError(f"grouped gemm '{self.name}' needs positive sizes")
        if self.x.numel != rows * self.k or self.w.numel != len(self.group_rows) * self.k * self.n:
            raise ValueError(f"grouped gemm '{self.name}': operands do not match the groups")

    @property
    def active_groups(self) -> int:
        return sum(1 for r in self.group_rows if r > 0)

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x, self.w)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 2.0 * sum(self.group_rows) * self.n * self.k

    def bytes_read(self) -> float:
        # idle groups' weights are never loaded
        share = self.active_groups / len(self.group_rows)
        return self.x.stored_bytes + self.w.stored_bytes * share


def grouped_gemm(
    name: str, group_rows: tuple[int, ...], n: int, k: int, dtype: DType = DType.BF16
) -> GroupedGemm:
    """Build a grouped GEMM over ``len(group_rows)`` weight matrices ``[k, n]``."""
    rows = sum(group_rows)
    return GroupedGemm(
        name=name,
        x=Tensor(f"{name}.x", (rows, k), dtype),
        w=Tensor(f"{name}.w", (len(group_rows), k, n), dtype, is_weight=True),
        out=Tensor(f"{name}.out", (rows, n), _accumulate_out(dtype)),
        group_rows=tuple(group_rows),
        n=n,
        k=k,
    )


@dataclass(frozen=True)
class Attention(Op):
    """Scaled dot-product attention, fused (FlashAttention style): QK^T, softmax, PV.

    ``heads_kv < heads_q`` is grouped-query attention. Decode is ``q_len == 1`` against a KV cache
    of ``kv_len`` positions; prefill with ``causal`` masks the upper triangle.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    out: Tensor
    batch: int
    heads_q: int
    heads_kv: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool
    kind: ClassVar[str] = "attention"

    def __post_init__(self) -> None:
        if self.heads_q % self.heads_kv:
            raise ValueError(
                f"attention '{self.name}': {self.heads_q} query heads are not a multiple of "
                f"{self.heads_kv} KV heads"
            )
        if self.causal and self.q_len > self.kv_len:
            raise ValueError(
                f"attention '{self.name}': causal q_len {self.q_len} > kv_len {self.kv_len}"
            )

    @property
    def phase(self) -> str:
        return "decode" if self.q_len == 1 else "prefill"

    def score_pairs(self) -> int:
        """(query, key) pairs computed per head: all of them, or the causal lower triangle."""
        if not self.causal:
            return self.q_len * self.kv_len
        offset = self.kv_len - self.q_len  # queries see the cached prefix plus themselves
        return self.q_len * offset + self.q_len * (self.q_len + 1) // 2

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.q, self.k, self.v)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        # QK^T and PV each take 2*d operations per (query, key) pair and query head
        return 4.0 * self.batch * self.heads_q * self.head_dim * self.score_pairs()


def attention(
    name: str,
    *,
    batch: int,
    heads_q: int,
    heads_kv: int,
    q_len: int,
    kv_len: int,
    head_dim: int,
    causal: bool,
    dtype: DType = DType.BF16,
    q_name: str | None = None,
    k_name: str | None = None,
    v_name: str | None = None,
    out_name: str | None = None,
) -> Attention:
    return Attention(
        name=name,
        q=Tensor(q_name or f"{name}.q", (batch, heads_q, q_len, head_dim), dtype),
        k=Tensor(k_name or f"{name}.k", (batch, heads_kv, kv_len, head_dim), dtype),
        v=Tensor(v_name or f"{name}.v", (batch, heads_kv, kv_len, head_dim), dtype),
        out=Tensor(out_name or f"{name}.out", (batch, heads_q, q_len, head_dim), dtype),
        batch=batch,
        heads_q=heads_q,
        heads_kv=heads_kv,
        q_len=q_len,
        kv_len=kv_len,
        head_dim=head_dim,
        causal=causal,
    )


# Operations per output element of the elementwise functions we lower to (a multiply or add is 1;
# a transcendental is counted as 4, the usual SFU cost on GPUs and vector units).
ELEMENTWISE_FLOPS_PER_ELEMENT = {
    "add": 1.0,
    "mul": 1.0,
    "silu": 5.0,
    "gelu": 8.0,
    "silu_mul": 6.0,
    "rope": 3.0,
    "copy": 0.0,
    "scale_add": 2.0,
}


@dataclass(frozen=True)
class Elementwise(Op):
    """One output element per input element: activations, residual adds, RoPE, KV-cache writes."""

    function: str
    ins: tuple[Tensor, ...]
    out: Tensor
    # False when an input is a strided view (e.g. one half of a fused gate/up output): a kernel
    # then computes each element's address instead of loading contiguous vectors
    contiguous: bool = True
    kind: ClassVar[str] = "elementwise"

    def __post_init__(self) -> None:
        if self.function not in ELEMENTWISE_FLOPS_PER_ELEMENT:
            allowed = ", ".join(sorted(ELEMENTWISE_FLOPS_PER_ELEMENT))
            raise ValueError(
                f"elementwise '{self.name}': unknown function '{self.function}' ({allowed})"
            )

    def inputs(self) -> tuple[Tensor, ...]:
        return self.ins

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return ELEMENTWISE_FLOPS_PER_ELEMENT[self.function] * self.out.numel


@dataclass(frozen=True)
class Norm(Op):
    """RMSNorm or LayerNorm over the last dimension of ``x`` (rows x cols)."""

    function: str  # "rmsnorm" | "layernorm"
    x: Tensor
    weight: Tensor
    out: Tensor
    kind: ClassVar[str] = "norm"

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x, self.weight)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        # rmsnorm: square, sum, scale, weight multiply; layernorm adds the mean pass
        per_element = 4.0 if self.function == "rmsnorm" else 7.0
        return per_element * self.x.numel


@dataclass(frozen=True)
class Softmax(Op):
    """Softmax over the last dimension (max, exp, sum, divide)."""

    x: Tensor
    out: Tensor
    kind: ClassVar[str] = "softmax"

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x,)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 5.0 * self.x.numel


@dataclass(frozen=True)
class MoeRouter(Op):
    """Router of a mixture-of-experts layer: logits = x @ W_r, softmax, top-k.

    ``expert_tokens`` is how many tokens each expert receives (sums to tokens * top_k); it comes
    from the routing distribution of the workload and decides the per-expert GEMM sizes.
    ``idle_expert_weights`` are the weights of the experts that receive no tokens.
    """

    x: Tensor
    w_router: Tensor
    out: Tensor
    tokens: int
    experts: int
    top_k: int
    expert_tokens: tuple[int, ...]
    idle_expert_weights: tuple[Tensor, ...] = ()
    kind: ClassVar[str] = "moe_router"

    def __post_init__(self) -> None:
        if len(self.expert_tokens) != self.experts:
            raise ValueError(
                f"router '{self.name}': {len(self.expert_tokens)} counts for {self.experts} experts"
            )
        if sum(self.expert_tokens) != self.tokens * self.top_k:
            raise ValueError(
                f"router '{self.name}': expert token counts sum to {sum(self.expert_tokens)}, "
                f"not tokens*top_k = {self.tokens * self.top_k}"
            )

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x, self.w_router)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def resident_weights(self) -> tuple[Tensor, ...]:
        # experts that receive no tokens in this run launch nothing, but serving the model still
        # needs their weights in memory
        return self.idle_expert_weights

    def flops(self) -> float:
        d_model = self.w_router.shape[0]
        # logits GEMM, then softmax (5 per logit) and top-k selection (1 compare per logit)
        return 2.0 * self.tokens * d_model * self.experts + 6.0 * self.tokens * self.experts


@dataclass(frozen=True)
class MoeDispatch(Op):
    """Gather each token's row once per chosen expert into expert-contiguous order."""

    x: Tensor
    routing: Tensor
    out: Tensor
    kind: ClassVar[str] = "moe_dispatch"

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x, self.routing)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 0.0

    def bytes_read(self) -> float:
        # every routed copy reads its source row; the routing table is read once
        return self.out.stored_bytes + self.routing.stored_bytes


@dataclass(frozen=True)
class MoeCombine(Op):
    """Weighted sum of each token's top-k expert outputs back into token order.

    ``expert_out`` is the whole expert-contiguous buffer (tokens * top_k rows). When each expert's
    GEMM writes its own tensor, pass them as ``parts``: they are read instead of ``expert_out``
    (same bytes), so the graph gets an edge from every expert to the combine.
    """

    expert_out: Tensor
    routing: Tensor
    out: Tensor
    top_k: int
    parts: tuple[Tensor, ...] = ()
    kind: ClassVar[str] = "moe_combine"

    def __post_init__(self) -> None:
        if self.parts and sum(t.numel for t in self.parts) != self.expert_out.numel:
            raise ValueError(
                f"combine '{self.name}': parts hold {sum(t.numel for t in self.parts)} elements, "
                f"expert_out {self.expert_out.numel}"
            )

    def inputs(self) -> tuple[Tensor, ...]:
        return (*(self.parts or (self.expert_out,)), self.routing)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 2.0 * self.expert_out.numel


@dataclass(frozen=True)
class Embedding(Op):
    """Token-embedding lookup: ``out[t, :] = table[id_t, :]`` for each of the ``out`` rows.

    The whole ``table`` is an input and a weight (it must be resident and counts toward the
    parameters), but only the gathered rows move, so ``bytes_read`` is one table row per token.
    Token ids (4 bytes per token, beside 2 * d_model bytes per row) are left out of the traffic.
    """

    table: Tensor
    out: Tensor
    kind: ClassVar[str] = "embedding"

    def __post_init__(self) -> None:
        if len(self.table.shape) != 2 or self.out.shape[-1] != self.table.shape[1]:
            raise ValueError(
                f"embedding '{self.name}': rows {self.out.shape} do not match "
                f"table {self.table.shape}"
            )

    @property
    def rows(self) -> int:
        """Tokens looked up."""
        return self.out.numel // self.table.shape[1]

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.table,)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        return 0.0

    def bytes_read(self) -> float:
        return self.table.stored_bytes * self.rows / self.table.shape[0]


COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall")


@dataclass(frozen=True)
class Collective(Op):
    """A collective over ``participants`` devices on ``buffer`` (the per-device message)."""

    function: str
    buffer: Tensor
    out: Tensor
    participants: int
    kind: ClassVar[str] = "collective"

    def __post_init__(self) -> None:
        if self.function not in COLLECTIVES:
            raise ValueError(
                f"collective '{self.name}': unknown '{self.function}' ({', '.join(COLLECTIVES)})"
            )
        if self.participants < 1:
            raise ValueError(f"collective '{self.name}': participants must be >= 1")

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.buffer,)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        # the reduction adds of a ring all-reduce / reduce-scatter
        if self.function in ("allreduce", "reducescatter"):
            return float(self.buffer.numel) * (self.participants - 1) / self.participants
        return 0.0

    def link_bytes(self) -> float:
        """Bytes each device sends over its links in a ring algorithm."""
        p = self.participants
        size = self.buffer.stored_bytes
        if p == 1:
            return 0.0
        if self.function == "allreduce":
            return 2.0 * size * (p - 1) / p
        if self.function == "allgather":
            return size * (p - 1)
        return size * (p - 1) / p


@dataclass(frozen=True)
class Conv2d(Op):
    """2-D convolution over NCHW activations: ``out[b, co, y, x] = sum w[co, ci, ky, kx] * in``.

    ``groups`` splits the channels into independent convolutions (``groups == in_channels ==
    out_channels`` is a depthwise convolution). The weight has shape
    ``(out_channels, in_channels // groups, kernel_h, kernel_w)``. Padding is symmetric.
    """

    x: Tensor
    w: Tensor
    out: Tensor
    batch: int
    in_channels: int
    out_channels: int
    in_h: int
    in_w: int
    kernel_h: int
    kernel_w: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"conv2d '{self.name}': channels {self.in_channels}->{self.out_channels} are not "
                f"multiples of groups {self.groups}"
            )
        if self.out_h < 1 or self.out_w < 1:
            raise ValueError(f"conv2d '{self.name}': kernel larger than the padded input")
        expected = (self.batch, self.out_channels, self.out_h, self.out_w)
        if self.out.shape != expected:
            raise ValueError(f"conv2d '{self.name}': output {self.out.shape} is not {expected}")

    @property
    def out_h(self) -> int:
        return (self.in_h + 2 * self.padding - self.kernel_h) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.in_w + 2 * self.padding - self.kernel_w) // self.stride + 1

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x, self.w)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def gemm_dims(self) -> tuple[int, int, int, int]:
        """``(groups, m, n, k)`` of the im2col GEMM: per group ``m = batch * out_h * out_w``
        output pixels, ``n = out_channels / groups`` filters, ``k = in_channels / groups *
        kernel_h * kernel_w`` taps."""
        m = self.batch * self.out_h * self.out_w
        n = self.out_channels // self.groups
        k = self.in_channels // self.groups * self.kernel_h * self.kernel_w
        return self.groups, m, n, k

    def flops(self) -> float:
        groups, m, n, k = self.gemm_dims()
        return 2.0 * groups * m * n * k

    def effective_flops(self) -> float:
        return self.flops() * self.x.sparsity.density * self.w.sparsity.density

    def as_gemm(self) -> Gemm:
        """The im2col GEMM with the same arithmetic: the input unrolled into ``m x k`` patches.

        Its ``a`` operand replicates each input pixel up to ``kernel_h * kernel_w`` times, so it
        moves more bytes than the convolution's compulsory traffic unless the device forms the
        patches on chip. Grouped convolutions become a batch of ``groups`` GEMMs with one weight
        each (``b`` is then not a weight shared across the batch).
        """
        groups, m, n, k = self.gemm_dims()
        return gemm(
            self.name,
            m,
            n,
            k,
            self.dtype,
            batch=groups,
            b_is_weight=groups == 1,
            a_sparsity=self.x.sparsity,
            b_sparsity=self.w.sparsity,
            out_dtype=self.out.dtype,
            a_name=f"{self.x.name}.im2col",
            b_name=self.w.name,
            out_name=self.out.name,
        )


@dataclass(frozen=True)
class Pool2d(Op):
    """Max or average pooling over NCHW windows (``kernel`` = whole input: global pooling)."""

    function: str  # "max" | "avg"
    x: Tensor
    out: Tensor
    kernel: int
    stride: int
    kind: ClassVar[str] = "pool2d"

    def __post_init__(self) -> None:
        if self.function not in ("max", "avg"):
            raise ValueError(f"pool2d '{self.name}': function must be max or avg")

    def inputs(self) -> tuple[Tensor, ...]:
        return (self.x,)

    def outputs(self) -> tuple[Tensor, ...]:
        return (self.out,)

    def flops(self) -> float:
        # one compare or add per window element of each output
        return float(self.out.numel * self.kernel * self.kernel)
