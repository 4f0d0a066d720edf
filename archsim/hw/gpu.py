"""GPU device model: tiled GEMMs with wave quantization and split-K, fused attention, streaming ops.

The model sits at the second rung of the fidelity ladder (tiling and wave/tile quantization). It
predicts what a tuned library kernel (cuBLAS, FlashAttention, a fused elementwise kernel) takes on
one GPU, from the config's datasheet peaks and a handful of efficiencies fitted to measurements.

GEMM, in the way cuBLAS heuristics pick a kernel:

* every output tile shape the library offers (``tile_shapes``) and every split-K factor is tried,
  and the candidate with the least predicted time wins;
* tiles (times split-K slices) run in waves of ``sm_count`` thread blocks, one per SM, so the
  time steps up each time the block count crosses a multiple of the SM count;
* one block's mainloop runs at the SM's share of the tensor-core peak for the dtype times
  ``efficiency.tensor`` (or ``efficiency.tensor_by_dtype``) times the tile's own efficiency;
* memory time is the compulsory traffic at HBM bandwidth times ``efficiency.hbm``, and at most the
  bandwidth the active SMs can pull (each SM gets ``l2`` bandwidth / ``sm_count``). Re-reads of
  operand panels by neighbouring tiles are served by L2 (counted as L2 traffic) because the
  library rasterizes tiles so that a wave's panels stay resident;
* split-K writes fp32 partial tiles and reduces them after the mainloop (through L2 when they
  fit, else HBM);
* stream-K (the decomposition Hopper's cuBLAS and CUTLASS kernels offer besides data-parallel
  tiles) spreads the tiles' K iterations evenly over all SMs, so a partial last wave costs its
  share of a wave instead of a whole one; the SMs that end inside a tile hand fp32 partials to
  the one that finishes it, written and read once through L2;
* a fixed ``kernel_launch`` time and the HBM latency of the first load are added.

Convolutions run as cuDNN runs most of them, as an implicit GEMM: per group ``M = batch *
out_h * out_w``, ``N = out_channels / groups``, ``K = in_channels / groups * kernel_h * kernel_w``
(:meth:`archsim.ir.ops.Conv2d.as_gemm`), priced by the GEMM path above (tiles, waves, split-K,
the dtype's tensor rate). The kernel forms the im2col patches on chip (TMA im2col loads on Hopper,
shared-memory gathers before it) instead of writing them out, so HBM reads each input pixel once
(at most the im2col operand's bytes, for strided 1x1 convolutions that skip pixels); the up to
``kernel_h * kernel_w`` re-reads of a pixel by neighbouring patches are counted as L2 traffic,
like the GEMM's panel re-reads. Convolutions with fewer than ``_MMA_MIN_N`` filters per group
(depthwise ones) have too little work per group to fill a tensor-core MMA and run as a direct
CUDA-core kernel, one streaming pass over input, weights and output. Pooling is a streaming kernel.

Time is ``launch + latency + max(compute, memory) + reduction``; the bound is whichever of
compute, memory or the fixed part is largest.

Energy is counts times prices (:mod:`archsim.energy.pricing`), plus the activity power a busy GPU
draws beyond them (AccelWattch's split, Kandiah et al., MICRO 2021; the ``power`` block of the
config): each kernel counts ``sm_active_s``, the SM-seconds of its active SMs while it runs
(launch gaps excluded), priced at the power of one SM holding resident warps; HBM bytes also pay
the memory interface (controller, PHY, IO) and bytes between L2 and the SMs the on-chip transfer
(crossbar, L1, register file). Idle power is the device's ``static_power`` over the whole run.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from archsim.config.machine import GpuConfig, TileShape
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.gpu_attention import (
    SFU_OPS_PER_CYCLE_PER_SM,
    decode_splits,
    prefill_compute_s,
)
from archsim.hw.gpu_sparse import (
    FLASH_LLM_TOKEN_SIZES,
    SpmmCost,
    flash_llm_padded_tokens,
    flash_llm_spmm_for_density,
)
from archsim.ir.ops import (
    Attention,
    Conv2d,
    Elementwise,
    Gemm,
    GroupedGemm,
    MoeRouter,
    Op,
    gemm,
)
from archsim.ir.tensor import DENSE, NM, DType, Unstructured

# Op kinds that a GPU runs as one bandwidth-bound kernel (one pass over inputs and outputs).
_STREAMING_KINDS = frozenset(
    {"elementwise", "norm", "softmax", "moe_dispatch", "moe_combine", "embedding", "pool2d"}
)
# Smallest N of a tensor-core MMA instruction (mma.sync m16n8k16 on Ampere/Hopper, Volta's
# m8n8k4 likewise): a convolution group with fewer filters leaves most of every MMA idle, so
# libraries run it (depthwise convolutions, cuDNN's and PyTorch's depthwise kernels) as a direct
# CUDA-core kernel instead of an implicit GEMM.
_MMA_MIN_N = 8

# Split-K factors tried for skinny GEMMs (cuBLAS and CUTLASS offer small integer splits).
_SPLIT_K_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16)
# A split-K slice keeps at least this many K elements: shorter slices would not fill the
# multistage shared-memory pipeline (a few 64-wide K blocks).
_MIN_K_PER_SPLIT = 256
# Bytes of one K iteration of a mainloop stage: 64 bf16/fp16 or 128 fp8 elements (one 128-byte
# swizzled row of a TMA-loaded operand tile); stream-K splits work at this granularity.
_K_BLOCK_BYTES = 128
# Partial sums of split-K are kept in fp32.
_PARTIAL_BYTES = 4.0
# Traffic one thread block of a streaming kernel moves per pass: 256 threads with one 16-byte
# vector each (the vectorized elementwise and norm kernels); sets how many SMs such a kernel keeps
# busy, for its activity power only.
_STREAM_BYTES_PER_BLOCK = 256 * 16
# Attention kernel libraries a mapping may name (efficiency.attention_by_backend keys).
ATTENTION_BACKENDS = ("cudnn", "flash", "efficient")
# Sparse GEMM algorithms: the library default (alg 0: one kernel configuration, no split-K) or
# the best of a search over the library's kernels (cuSPARSELt's matmul search).
SPARSE_ALGORITHMS = ("searched", "default")


@dataclass(frozen=True)
class GpuMapping:
    """Choices a mapper may impose on the GPU model instead of letting it pick.

    Attributes
    ----------
    tile:
        Output tile ``(m, n)`` for a GEMM; ``None`` lets the model choose among ``tile_shapes``.
    split_k:
        Split-K factor for a GEMM; ``None`` lets the model choose.
    warm_l2:
        True when the op's inputs are already in L2 (the previous op produced them, or the same
        weights were just read). Inputs up to the L2 capacity are then read at L2 bandwidth, and
        nothing dirty has to be evicted first.
    dirty_l2_share:
        Share of L2 (0..1) holding dirty lines of earlier kernels, for example after a kernel that
        wrote a large output, or after an L2 flush by memset. New data evicts them first, one HBM
        write-back per byte. Ignored when ``warm_l2`` is True.
    attention_backend:
        Attention kernel library (one of ``ATTENTION_BACKENDS``); ``None``: the config's
        ``efficiency.attention``.
    sparse_algorithm:
        ``searched`` (the best kernel of the sparse library, split-K allowed) or ``default``.
    queued:
        True when the kernel was queued behind another one (CUDA graph replay, or a host that runs
        ahead): its launch overlaps the previous kernel and only ``graph_kernel_gap`` remains.
    kernel_only:
        True to price the kernel's execution alone, as a profiler's kernel duration shows it (no
        launch time).
    """

    tile: tuple[int, int] | None = None
    split_k: int | None = None
    warm_l2: bool = False
    dirty_l2_share: float = 0.0
    attention_backend: str | None = None
    sparse_algorithm: str = "searched"
    queued: bool = False
    kernel_only: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.dirty_l2_share <= 1.0:
            raise ValueError(f"dirty_l2_share must be in [0, 1], got {self.dirty_l2_share}")
        if self.attention_backend is not None and self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(
                f"attention_backend must be one of {ATTENTION_BACKENDS}, "
                f"got {self.attention_backend!r}"
            )
        if self.sparse_algorithm not in SPARSE_ALGORITHMS:
            raise ValueError(
                f"sparse_algorithm must be one of {SPARSE_ALGORITHMS}, "
                f"got {self.sparse_algorithm!r}"
            )


@dataclass(frozen=True)
class GemmPlan:
    """The kernel configuration chosen for one GEMM and its predicted time components.

    Times are in seconds, traffic in bytes.
    """

    tile_m: int
    tile_n: int
    split_k: int
    blocks: int
    waves: float
    compute_s: float
    memory_s: float
    reduction_s: float
    hbm_read_bytes: float
    hbm_write_bytes: float
    l2_bytes: float
    stream_k: bool = False
    partial_bytes: float = 0.0

    @property
    def hbm_bytes(self) -> float:
        return self.hbm_read_bytes + self.hbm_write_bytes

    @property
    def body_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.reduction_s


def wave_count(blocks: int, sm_count: int) -> int:
    """Full waves needed to run ``blocks`` thread blocks, one block per SM at a time."""
    return -(-blocks // sm_count)


def tile_count(m: int, n: int, batch: int, tile_m: int, tile_n: int) -> int:
    """Output tiles of a batched ``m x n`` result (edge tiles are padded to the full tile)."""
    return batch * -(-m // tile_m) * -(-n // tile_n)


def streaming_time_s(
    hbm_bytes: float, l2_bytes: float, hbm_bw_bytes_per_s: float, l2_bw_bytes_per_s: float
) -> float:
    """Time to move bytes from HBM and from L2, one after the other (they share the L2 port)."""
    return hbm_bytes / hbm_bw_bytes_per_s + l2_bytes / l2_bw_bytes_per_s


def hbm_traffic(
    read_bytes: float,
    write_bytes: float,
    l2_size_bytes: float,
    *,
    warm_l2: bool,
    dirty_l2_share: float,
) -> tuple[float, float, float]:
    """Split an op's compulsory traffic between HBM and L2.

    Parameters
    ----------
    read_bytes, write_bytes:
        Compulsory bytes the op reads and writes.
    l2_size_bytes:
        L2 capacity.
    warm_l2:
        Inputs (up to the L2 capacity) are already resident in L2.
    dirty_l2_share:
        Share of L2 holding dirty lines of earlier kernels. The replacement policy evicts clean
        lines first (they cost nothing to drop), so new data displaces dirty lines, one HBM
        write-back per byte, only once it no longer fits in the clean part of the L2.

    Returns
    -------
    tuple of float
        ``(hbm_read_bytes, hbm_write_bytes, l2_hit_bytes)``.
    """
    l2_hits = min(read_bytes, l2_size_bytes) if warm_l2 else 0.0
    hbm_read = read_bytes - l2_hits
    dirty_bytes = 0.0 if warm_l2 else dirty_l2_share * l2_size_bytes
    clean_bytes = l2_size_bytes - dirty_bytes
    # an op whose footprint fits in the clean lines leaves the dirty ones in place
    write_backs = min(max(0.0, hbm_read + write_bytes - clean_bytes), dirty_bytes)
    # outputs themselves reach HBM once, when they are evicted in turn
    return hbm_read, max(write_bytes, write_backs), l2_hits


def _is_two_four(op: Gemm) -> bool:
    """Exactly one operand is 2:4 sparse: the GEMM runs on the sparse tensor cores."""
    two_four = NM(2, 4)
    return (op.a.sparsity == two_four) != (op.b.sparsity == two_four)


def _sparse_tensor_core_speedup(op: Gemm) -> float:
    # Sparse tensor cores skip the zero half of a 2:4 operand: math time halves. Block and other
    # N:M sparsity run on dense tensor cores after decompression, so their math costs as much as
    # dense; only their compressed bytes move less. Unstructured operands reach the tiled kernel
    # zero-filled, or run on Flash-LLM (GpuDevice._gemm_cost).
    two_four = NM(2, 4)
    if (op.a.sparsity == two_four) != (op.b.sparsity == two_four):
        return 2.0
    return 1.0


# Element types the Flash-LLM kernel runs (fp16 values in Tiled-CSL; bf16 has the same width).
_FLASH_LLM_DTYPES = frozenset({DType.FP16, DType.BF16})
# Flash-LLM's mainloop bounds, as :class:`archsim.hw.base.Bound`: its load chain and HBM queue
# are memory; shared memory and tensor cores are the SM's work.
_FLASH_LLM_BOUNDS = {
    "memory": Bound.MEMORY,
    "latency": Bound.MEMORY,
    "shared_memory": Bound.COMPUTE,
    "tensor": Bound.COMPUTE,
}


@dataclass(frozen=True)
class _SpmmShape:
    """A GEMM as Flash-LLM sees it: a ``k x n`` sparse weight times ``tokens`` dense columns."""

    tokens: int
    k: int
    n: int
    density: float


def _spmm_shape(op: Gemm) -> _SpmmShape | None:
    """The Flash-LLM problem of a skinny GEMM with one unstructured fp16/bf16 operand, else None.

    A sparse ``b`` (``K x N``) is the kernel's weight and the ``M`` (times batch, when the weight
    is shared) rows of ``a`` its tokens; a sparse ``a`` (``M x K``) is the weight of the transposed
    product (``out^T = b^T a^T``), its ``N`` columns the tokens.
    """
    if op.dtype not in _FLASH_LLM_DTYPES:
        return None
    a_sparse = isinstance(op.a.sparsity, Unstructured)
    b_sparse = isinstance(op.b.sparsity, Unstructured)
    if b_sparse and op.a.sparsity == DENSE and op.b.shape == (op.k, op.n):
        shape = _SpmmShape(op.batch * op.m, op.k, op.n, op.b.sparsity.density)
    elif a_sparse and op.b.sparsity == DENSE and op.batch == 1:
        shape = _SpmmShape(op.n, op.k, op.m, op.a.sparsity.density)
    else:
        return None
    return shape if shape.tokens <= FLASH_LLM_TOKEN_SIZES[-1] else None


def _zero_filled(op: Gemm) -> Gemm:
    """The GEMM with its unstructured operands stored dense, zeros included."""
    a, b = op.a, op.b
    if isinstance(a.sparsity, Unstructured):
        a = dataclasses.replace(a, sparsity=DENSE)
    if isinstance(b.sparsity, Unstructured):
        b = dataclasses.replace(b, sparsity=DENSE)
    return dataclasses.replace(op, a=a, b=b)


def _zero_filled_grouped(op: GroupedGemm) -> GroupedGemm:
    """The grouped GEMM with its unstructured operands stored dense, zeros included."""
    x, w = op.x, op.w
    if isinstance(x.sparsity, Unstructured):
        x = dataclasses.replace(x, sparsity=DENSE)
    if isinstance(w.sparsity, Unstructured):
        w = dataclasses.replace(w, sparsity=DENSE)
    return dataclasses.replace(op, x=x, w=w)


def _grouped_spmm_shapes(op: GroupedGemm) -> tuple[_SpmmShape, ...] | None:
    """One Flash-LLM problem per expert with tokens, or None where Flash-LLM cannot run them all.

    The experts' weights must be unstructured fp16/bf16 and their tokens dense. An expert with
    more tokens than one Flash-LLM token tile rules the per-expert loop out altogether: that
    expert would run the dense kernel, and mixing kernels per expert is left to the grouped
    dense GEMM, which already serves such token counts well.
    """
    if op.dtype not in _FLASH_LLM_DTYPES or op.x.sparsity != DENSE:
        return None
    if not isinstance(op.w.sparsity, Unstructured):
        return None
    active = [rows for rows in op.group_rows if rows > 0]
    if max(active) > FLASH_LLM_TOKEN_SIZES[-1]:
        return None
    density = op.w.sparsity.density
    return tuple(_SpmmShape(rows, op.k, op.n, density) for rows in active)


@register_device("gpu")
class GpuDevice:
    """One GPU running library kernels, launched one at a time from a host.

    Parameters
    ----------
    config:
        The validated GPU section of a machine file.

    Notes
    -----
    Sparse GEMM operands are kept simple: a 2:4 (``NM(2, 4)``) operand uses the sparse tensor
    cores, which halves math time, and moves its compressed bytes (kept values plus 2-bit
    metadata). An unstructured operand has two kernels, and the faster one runs, as a library
    that offers both would pick it: the dense GEMM over the weight stored dense with its zeros
    (dense tensor cores cannot read a compressed unstructured layout), and, for a skinny fp16/bf16
    GEMM with the other operand dense, Flash-LLM (:mod:`archsim.hw.gpu_sparse`: Tiled-CSL loaded
    as sparse, computed as dense on the tensor cores). Block and other N:M sparsity run on the
    dense tensor cores at the dense math time and only move fewer (compressed) bytes.
    """

    kind = "gpu"
    fidelity = ("roofline", "tiling", "wave_quantization", "split_k")

    def __init__(self, config: GpuConfig):
        self.config = config
        self.name = config.name
        eff = config.efficiency
        self._hbm_bw = config.hbm.bw_bytes_per_s * eff.hbm
        self._l2_bw = config.l2.bw_bytes_per_s * eff.l2
        # The most one SM can pull through its L2 port: its share of the aggregate L2 bandwidth.
        self._per_sm_bw = self._l2_bw / config.sm_count
        self._vector_flops = config.vector_flops_per_s * eff.vector
        self._fixed_s = config.kernel_launch_s + config.hbm.latency_s
        gap = config.graph_kernel_gap_s
        self._queued_fixed_s = (
            config.kernel_launch_s if gap is None else gap
        ) + config.hbm.latency_s
        self._kv_stream_bw = config.hbm.bw_bytes_per_s * (eff.kv_stream or eff.hbm)
        sparse_hbm = eff.sparse_hbm or eff.hbm
        self._sparse_hbm_bw = {
            "searched": config.hbm.bw_bytes_per_s * sparse_hbm,
            "default": config.hbm.bw_bytes_per_s * (eff.sparse_hbm_default_algorithm or sparse_hbm),
        }
        # the default sparse algorithm is one kernel configuration, not the fastest of a search
        self._sparse_tensor_eff = {
            "searched": eff.sparse_tensor,
            "default": eff.sparse_tensor_default_algorithm or eff.sparse_tensor,
        }
        # per-instance cache: ops and mappings are frozen and hash structurally
        self._cost_cached = functools.lru_cache(maxsize=16384)(self._cost)
        # Flash-LLM runs once per distinct (tokens, weight shape, density, dtype), whatever the
        # op's name or mapping
        self._flash_llm_cached = functools.lru_cache(maxsize=1024)(self._flash_llm)

    # ---- Protocol: description ------------------------------------------------------------

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    @property
    def host_launch_s(self) -> float:
        """Host time per eager kernel launch (from the config)."""
        return self.config.host_launch_s

    @property
    def host_alloc_s(self) -> float:
        """Host time of an eager op beyond its bare launch (from the config)."""
        return self.config.host_alloc_s

    @property
    def host_sync_s(self) -> float:
        """Host time of one device-to-host synchronization (from the config)."""
        return self.config.host_sync_s

    def supports(self, op: Op) -> bool:
        if op.kind == "collective":
            # no GPU-to-GPU link is modelled yet
            return False
        if isinstance(op, Gemm | GroupedGemm | Attention | MoeRouter | Conv2d):
            return op.dtype in self.config.tensor_flops_per_s
        return op.kind in _STREAMING_KINDS

    def peak_flops_per_s(self, dtype: DType) -> float:
        tensor = self.config.tensor_flops_per_s.get(dtype, 0.0)
        vector = self.config.vector_flops_per_s if dtype is DType.FP32 else 0.0
        return max(tensor, vector)

    def peak_bw_bytes_per_s(self) -> float:
        return self.config.hbm.bw_bytes_per_s

    def energy_per_action_j(self) -> Mapping[str, float]:
        hbm, l2, power = self.config.hbm, self.config.l2, self.config.power
        interface_j = power.hbm_interface_energy_per_byte_j
        transfer_j = power.sm_transfer_energy_per_byte_j
        return {
            **mac_prices_j(self.config.mac_energy_j),
            **memory_prices_j(
                "hbm",
                hbm.read_energy_per_byte_j + interface_j,
                hbm.write_energy_per_byte_j + interface_j,
            ),
            **memory_prices_j(
                "l2",
                l2.read_energy_per_byte_j + transfer_j,
                l2.write_energy_per_byte_j + transfer_j,
            ),
            "vector_op": self.config.vector_op_energy_j,
            # one SM holding resident warps for one second (J per SM-second = W per SM)
            "sm_active_s": power.sm_active_w,
        }

    def area_mm2(self) -> float:
        return self.config.die_area_mm2

    def static_power_w(self) -> float:
        return self.config.static_power_w

    def memory_capacity_bytes(self) -> float:
        return self.config.hbm.size_bytes

    # ---- Protocol: costs ------------------------------------------------------------------

    def roofline(self, op: Op) -> OpCost:
        """Lower bound at the datasheet peaks: no efficiency, no launch, no quantization."""
        self._check_supported(op)
        peak = self._op_peak_flops_per_s(op)
        compute_s = op.flops() / peak if peak > 0 and op.flops() > 0 else 0.0
        memory_s = op.bytes() / self.config.hbm.bw_bytes_per_s
        latency_s = max(compute_s, memory_s, 1e-12)
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=Bound.COMPUTE if compute_s >= memory_s else Bound.MEMORY,
            utilization=min(1.0, compute_s / latency_s),
            bytes_by_level={"hbm": op.bytes()},
            actions={"read.hbm": op.bytes_read(), "write.hbm": op.bytes_written()},
            notes="roofline",
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        """Modelled cost of ``op``; ``mapping`` may be a :class:`GpuMapping` or ``None``."""
        if mapping is not None and not isinstance(mapping, GpuMapping):
            raise TypeError(f"GPU mapping must be a GpuMapping, got {type(mapping).__name__}")
        self._check_supported(op)
        return self._cost_cached(op, mapping or GpuMapping())

    def _cost(self, op: Op, mapping: GpuMapping) -> OpCost:
        if isinstance(op, Gemm):
            return self._gemm_cost(op, mapping)
        if isinstance(op, GroupedGemm):
            return self._grouped_gemm_cost(op, mapping)
        if isinstance(op, Attention):
            return self._attention_cost(op, mapping)
        if isinstance(op, MoeRouter):
            return self._router_cost(op, mapping)
        if isinstance(op, Conv2d):
            return self._conv_cost(op, mapping)
        return self._streaming_cost(op, mapping)

    def _check_supported(self, op: Op) -> None:
        if not self.supports(op):
            raise ValueError(
                f"GPU '{self.name}' cannot run {op.kind} op '{op.name}' in {op.dtype.value} "
                f"(tensor dtypes: {sorted(d.value for d in self.config.tensor_flops_per_s)}; "
                "collectives need a multi-GPU link, not modelled yet)"
            )

    def _op_peak_flops_per_s(self, op: Op) -> float:
        if isinstance(op, Gemm):
            return self.config.tensor_flops_per_s[op.dtype] * _sparse_tensor_core_speedup(op)
        if isinstance(op, GroupedGemm | Attention | MoeRouter | Conv2d):
            return self.config.tensor_flops_per_s[op.dtype]
        return self.config.vector_flops_per_s

    def _tensor_efficiency(self, dtype: DType) -> float:
        eff = self.config.efficiency
        return eff.tensor_by_dtype.get(dtype, eff.tensor)

    def _launch_gap_s(self, mapping: GpuMapping) -> float:
        """The part of a kernel's fixed time when no SM runs it yet (host launch or graph gap)."""
        if mapping.kernel_only:
            return 0.0
        if mapping.queued:
            return self._queued_fixed_s - self.config.hbm.latency_s
        return self.config.kernel_launch_s

    def _sm_active_s(self, active_sms: float, run_s: float) -> float:
        """SM-seconds of resident warps: ``active_sms`` SMs (at most all) for ``run_s``."""
        return min(float(active_sms), float(self.config.sm_count)) * max(0.0, run_s)

    def _fixed(self, mapping: GpuMapping) -> float:
        """Fixed time of one kernel: launch (or the queued gap) plus the first load's latency."""
        if mapping.kernel_only:
            return self.config.hbm.latency_s
        return self._queued_fixed_s if mapping.queued else self._fixed_s

    # ---- GEMM -----------------------------------------------------------------------------

    def plan_gemm(
        self, op: Gemm, mapping: GpuMapping | None = None, *, a_hbm_bytes: float | None = None
    ) -> GemmPlan:
        """The tile and split-K with the least predicted time (or the ones ``mapping`` imposes).

        ``a_hbm_bytes`` replaces the ``a`` operand's bytes in the HBM traffic (an implicit GEMM
        whose ``a`` is formed on chip from a smaller tensor); its L2 re-reads stay those of ``a``.
        """
        mapping = mapping or GpuMapping()
        tiles = self.config.tile_shapes
        if mapping.tile is not None:
            tiles = [t for t in tiles if (t.m, t.n) == mapping.tile] or [
                TileShape(m=mapping.tile[0], n=mapping.tile[1])
            ]
        if mapping.split_k is not None:
            splits: tuple[int, ...] = (mapping.split_k,)
        elif _is_two_four(op) and mapping.sparse_algorithm == "default":
            # the sparse library's default algorithm is one configuration without split-K
            splits = (1,)
            if mapping.tile is None and self.config.sparse_default_tile is not None:
                tiles = [self.config.sparse_default_tile]
        else:
            splits = tuple(s for s in _SPLIT_K_FACTORS if s == 1 or op.k / s >= _MIN_K_PER_SPLIT)
        best: GemmPlan | None = None
        for tile in tiles:
            candidates = [
                self._gemm_plan(op, tile, split, mapping, a_hbm_bytes=a_hbm_bytes)
                for split in splits
            ]
            if mapping.split_k is None and not _is_two_four(op):
                candidates.append(
                    self._gemm_plan(op, tile, 1, mapping, stream_k=True, a_hbm_bytes=a_hbm_bytes)
                )
            for plan in candidates:
                if best is None or plan.body_s < best.body_s:
                    best = plan
        assert best is not None  # tile_shapes has at least one entry
        return best

    def _gemm_plan(
        self,
        op: Gemm,
        tile: TileShape,
        split: int,
        mapping: GpuMapping,
        *,
        stream_k: bool = False,
        a_hbm_bytes: float | None = None,
    ) -> GemmPlan:
        cfg = self.config
        warm_l2, dirty_l2_share = mapping.warm_l2, mapping.dirty_l2_share
        sparse = _is_two_four(op)
        tensor_eff = (
            self._sparse_tensor_eff[mapping.sparse_algorithm]
            if sparse
            else self._tensor_efficiency(op.dtype)
        )
        sms = cfg.sm_count
        out_tiles = tile_count(op.m, op.n, op.batch, tile.m, tile.n)
        blocks = out_tiles * split
        waves = wave_count(blocks, sms)

        # mainloop of one block: its tile's MACs over its K slice at one SM's share of the peak
        sm_flops = (
            cfg.tensor_flops_per_s[op.dtype]
            * _sparse_tensor_core_speedup(op)
            * tensor_eff
            * tile.efficiency
            / sms
        )
        k_slice = -(-op.k // split)
        compute_s = waves * 2.0 * tile.m * tile.n * k_slice / sm_flops
        # stream-K: every SM runs an equal share of all tiles' K iterations; a tile whose
        # iterations span several SMs is summed from fp32 partials, one per SM that stops
        # inside it (at most one per SM)
        stream_partials = 0
        if stream_k:
            k_block = max(1, int(_K_BLOCK_BYTES / op.dtype.size_bytes))
            k_iterations = -(-op.k // k_block)
            units = out_tiles * k_iterations
            compute_s = -(-units // sms) * 2.0 * tile.m * tile.n * k_block / sm_flops
            if out_tiles % sms:
                blocks = min(units, sms)
                stream_partials = min(out_tiles * (k_iterations - 1), sms)

        # compulsory traffic, plus the panel re-reads that L2 serves
        a_bytes, b_bytes = op.a.stored_bytes, op.b.stored_bytes
        out_bytes = op.out.stored_bytes
        tiles_along_n = -(-op.n // tile.n)
        tiles_along_m = -(-op.m // tile.m)
        l2_reads = a_bytes * tiles_along_n + b_bytes * tiles_along_m
        hbm_read, hbm_write, from_l2 = hbm_traffic(
            (a_bytes if a_hbm_bytes is None else a_hbm_bytes) + b_bytes,
            out_bytes,
            cfg.l2.size_bytes,
            warm_l2=warm_l2,
            dirty_l2_share=dirty_l2_share,
        )
        active_sms = min(blocks, sms)
        # a 2:4 kernel gathers values and 2-bit metadata: its own bandwidth share
        device_bw = self._sparse_hbm_bw[mapping.sparse_algorithm] if sparse else self._hbm_bw
        hbm_bw = min(device_bw, active_sms * self._per_sm_bw)
        l2_bw = min(self._l2_bw, active_sms * self._per_sm_bw)
        memory_s = streaming_time_s(hbm_read + hbm_write, from_l2, hbm_bw, l2_bw)

        # stream-K fixup: each partial tile is written once and read once by the finishing SM
        reduction_s = 0.0
        partial_bytes = stream_partials * tile.m * tile.n * _PARTIAL_BYTES
        if stream_partials:
            l2_reads += partial_bytes
            reduction_s = 2.0 * partial_bytes / self._l2_bw
        # split-K: each slice writes an fp32 partial tile, then the partials are summed
        if split > 1:
            # every partial is written once and read back once
            partial_bytes = split * op.batch * op.m * op.n * _PARTIAL_BYTES
            if 2.0 * partial_bytes <= cfg.l2.size_bytes:
                l2_reads += partial_bytes
                reduction_s = 2.0 * partial_bytes / self._l2_bw
            else:
                hbm_read += partial_bytes
                hbm_write += partial_bytes
                reduction_s = 2.0 * partial_bytes / self._hbm_bw
        return GemmPlan(
            tile_m=tile.m,
            tile_n=tile.n,
            split_k=split,
            blocks=blocks,
            waves=blocks / sms,
            compute_s=compute_s,
            memory_s=memory_s,
            reduction_s=reduction_s,
            hbm_read_bytes=hbm_read,
            hbm_write_bytes=hbm_write,
            l2_bytes=l2_reads + from_l2,
            stream_k=stream_k,
            partial_bytes=partial_bytes,
        )

    def _gemm_cost(self, op: Gemm, mapping: GpuMapping) -> OpCost:
        if not (isinstance(op.a.sparsity, Unstructured) or isinstance(op.b.sparsity, Unstructured)):
            return self._tiled_gemm_cost(op, mapping)
        # dense tensor cores read no compressed unstructured layout: the weight is stored dense
        tiled = self._tiled_gemm_cost(_zero_filled(op), mapping)
        dense = dataclasses.replace(tiled, notes=f"dense GEMM, zeros stored: {tiled.notes}")
        shape = _spmm_shape(op)
        # a mapping that imposes a tile or split-K has chosen the dense kernel
        if shape is None or mapping.tile is not None or mapping.split_k is not None:
            return dense
        sparse = self._flash_llm_cost(op, shape, mapping)
        # a library offering both kernels (or its autotuner) would run the faster one
        return sparse if sparse.latency_s < dense.latency_s else dense

    def _flash_llm(self, shape: _SpmmShape, dtype: DType) -> SpmmCost:
        return flash_llm_spmm_for_density(
            self.config, shape.tokens, shape.k, shape.n, shape.density, dtype
        )

    def _flash_llm_cost(self, op: Gemm, shape: _SpmmShape, mapping: GpuMapping) -> OpCost:
        """Flash-LLM's kernel (and its split-K reduction) as an :class:`OpCost`.

        The engine prices a host launch plus the first load's latency; the mapping's fixed time
        (queued, kernel only) replaces it. Its weight streams from HBM: the model has no warm-L2
        path.
        """
        cfg = self.config
        spmm = self._flash_llm_cached(shape, op.dtype)
        fixed_s = self._fixed(mapping)
        latency_s = spmm.latency_s - self._fixed_s + fixed_s
        body_s = latency_s - fixed_s
        bound = Bound.LAUNCH if fixed_s >= body_s else _FLASH_LLM_BOUNDS[spmm.bound]
        l2_written = spmm.hbm_write_bytes + spmm.partial_bytes
        sm_active_s = self._sm_active_s(
            min(spmm.blocks, cfg.sm_count), latency_s - self._launch_gap_s(mapping)
        )
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=bound,
            utilization=self._utilization(op, latency_s),
            bytes_by_level={"hbm": spmm.hbm_bytes, "l2": spmm.l2_read_bytes + l2_written},
            actions={
                # computed as dense: the tensor cores multiply the zeros scattered into each tile
                f"mac.{op.dtype.value}": op.flops() / 2.0,
                "vector_op": float(shape.tokens * shape.n * spmm.split_k),
                "read.hbm": spmm.hbm_bytes - spmm.hbm_write_bytes,
                "write.hbm": spmm.hbm_write_bytes,
                "read.l2": spmm.l2_read_bytes,
                "write.l2": l2_written,
                "sm_active_s": sm_active_s,
            },
            notes=(
                f"flash-llm SpMM (Tiled-CSL, density {shape.density:g}, {shape.tokens} tokens "
                f"run as {flash_llm_padded_tokens(shape.tokens)}), {spmm.notes}, "
                f"metadata {spmm.metadata_bytes / 1e6:.2f} MB"
            ),
        )

    def _tiled_gemm_cost(
        self, op: Gemm, mapping: GpuMapping, *, a_hbm_bytes: float | None = None
    ) -> OpCost:
        plan = self.plan_gemm(op, mapping, a_hbm_bytes=a_hbm_bytes)
        fixed_s = self._fixed(mapping)
        if _is_two_four(op):
            fixed_s += self.config.sparse_kernel_overhead_s
        latency_s = fixed_s + plan.body_s
        bound = _bound(plan.compute_s, plan.memory_s + plan.reduction_s, fixed_s)
        macs = op.flops() / 2.0 / _sparse_tensor_core_speedup(op)
        l2_written = op.out.stored_bytes + plan.partial_bytes
        sm_active_s = self._sm_active_s(
            min(plan.blocks, self.config.sm_count), latency_s - self._launch_gap_s(mapping)
        )
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=bound,
            utilization=self._utilization(op, latency_s),
            bytes_by_level={"hbm": plan.hbm_bytes, "l2": plan.l2_bytes + l2_written},
            actions={
                f"mac.{op.dtype.value}": macs,
                # epilogue: one conversion per output element, one add per extra partial
                "vector_op": float(op.batch * op.m * op.n * plan.split_k),
                "read.hbm": plan.hbm_read_bytes,
                "write.hbm": plan.hbm_write_bytes,
                "read.l2": plan.l2_bytes,
                "write.l2": l2_written,
                "sm_active_s": sm_active_s,
            },
            notes=(
                f"tile {plan.tile_m}x{plan.tile_n}, {plan.waves:.2f} waves, "
                + f"split-k {plan.split_k}"
                + (", stream-k" if plan.stream_k else "")
            ),
        )

    # ---- convolution ----------------------------------------------------------------------

    def _conv_cost(self, op: Conv2d, mapping: GpuMapping) -> OpCost:
        """Implicit GEMM on the tensor cores, or a direct kernel for depthwise-like groups."""
        groups, m, n, k = op.gemm_dims()
        if n < _MMA_MIN_N:
            # a few filters per group: a direct kernel, one pass over input, weights and output
            direct = self._streaming_cost(op, mapping)
            return dataclasses.replace(
                direct,
                notes=f"direct conv kernel ({groups} groups of {n} filters, {k} taps), "
                f"{direct.bound.value}",
            )
        equivalent = op.as_gemm()
        if isinstance(equivalent.a.sparsity, Unstructured) or isinstance(
            equivalent.b.sparsity, Unstructured
        ):
            # implicit-GEMM kernels read no compressed layout: zeros are stored and multiplied
            equivalent = _zero_filled(equivalent)
        # patches are formed on chip: HBM reads each input pixel once, at most the im2col bytes
        # (a strided 1x1 convolution reads only the pixels it samples)
        a_hbm_bytes = min(op.x.stored_bytes, equivalent.a.stored_bytes)
        cost = self._tiled_gemm_cost(equivalent, mapping, a_hbm_bytes=a_hbm_bytes)
        shape = f"{m}x{n}x{k}" + (f" x {groups} groups" if groups > 1 else "")
        return dataclasses.replace(
            cost,
            utilization=self._utilization(op, cost.latency_s),
            notes=f"implicit GEMM {shape}: {cost.notes}",
        )

    # ---- attention ------------------------------------------------------------------------

    def _attention_cost(self, op: Attention, mapping: GpuMapping) -> OpCost:
        cfg = self.config
        eff = cfg.efficiency
        sms = cfg.sm_count
        peak = cfg.tensor_flops_per_s[op.dtype]
        kv_bytes = op.k.stored_bytes + op.v.stored_bytes
        q_out_bytes = op.q.stored_bytes + op.out.stored_bytes
        backend = mapping.attention_backend
        attention_eff = (
            eff.attention_by_backend.get(backend, eff.attention) if backend else (eff.attention)
        )
        fixed_s = self._fixed(mapping)
        stream_bw = self._hbm_bw
        per_sm_stream_bw = self._per_sm_bw
        if op.phase == "prefill":
            # FlashAttention: one block per (batch, query head, query tile), K/V streamed through
            # shared memory (HBM sees Q, K, V and O once); causal tiles above the diagonal skipped
            blocks = op.batch * op.heads_q * -(-op.q_len // 128)
            splits = 1
            compute_s = prefill_compute_s(
                batch_heads=op.batch * op.heads_q,
                q_len=op.q_len,
                kv_len=op.kv_len,
                head_dim=op.head_dim,
                causal=op.causal,
                sm_count=sms,
                sm_flops_per_s=peak * attention_eff / sms,
                sm_exp_per_s=SFU_OPS_PER_CYCLE_PER_SM * cfg.clock_hz,
                block_fill_iterations=eff.attention_block_fill,
            )
            partial_bytes = 0.0
        else:
            # flash-decoding: split the KV sequence so that every SM streams part of the cache;
            # each (batch, KV head) block serves its whole group of query heads (GQA)
            # memory-efficient attention (xformers/CUTLASS) does not split the KV sequence
            splits = (
                1
                if backend == "efficient"
                else decode_splits(op.batch, op.heads_kv, op.kv_len, sms)
            )
            blocks = op.batch * op.heads_kv * splits
            compute_s = op.flops() / (peak * attention_eff)
            stream_bw = self._kv_stream_bw
            # a backend whose decode blocks keep fewer loads in flight per SM (Ampere-style
            # cp.async pipelines, no TMA) streams at most its per-SM rate times the active SMs
            sm_share = eff.kv_stream_sm_share_by_backend.get(backend or "", 1.0)
            per_sm_stream_bw = self._per_sm_bw * sm_share
            # each split writes fp32 partial outputs plus its max and sum; a second kernel merges
            # them (cuDNN lean_reduction, FlashAttention's split-KV combine), queued right behind
            partial_bytes = (
                2.0 * splits * op.batch * op.heads_q * (op.head_dim + 2) * _PARTIAL_BYTES
                if splits > 1
                else 0.0
            )
            if splits > 1:
                fixed_s += self._queued_fixed_s
        active_sms = min(blocks, sms)
        hbm_bw = min(stream_bw, active_sms * per_sm_stream_bw)
        hbm_read, hbm_write, from_l2 = self._hbm_traffic(op, mapping)
        memory_s = streaming_time_s(hbm_read + hbm_write, from_l2, hbm_bw, self._l2_bw)
        reduction_s = partial_bytes / self._l2_bw
        latency_s = fixed_s + max(compute_s, memory_s) + reduction_s
        # the split-KV combine kernel is queued behind: its gap idles the SMs too
        gaps_s = self._launch_gap_s(mapping) + (
            self._queued_fixed_s - cfg.hbm.latency_s if splits > 1 else 0.0
        )
        sm_active_s = self._sm_active_s(active_sms, latency_s - gaps_s)
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=_bound(compute_s, memory_s + reduction_s, fixed_s),
            utilization=self._utilization(op, latency_s),
            bytes_by_level={
                "hbm": hbm_read + hbm_write,
                "l2": kv_bytes + q_out_bytes + partial_bytes,
            },
            actions={
                f"mac.{op.dtype.value}": op.flops() / 2.0,
                # softmax: about 5 vector operations per (query, key) score
                "vector_op": 5.0 * op.batch * op.heads_q * op.score_pairs(),
                "read.hbm": hbm_read,
                "write.hbm": hbm_write,
                "read.l2": op.bytes_read() + partial_bytes / 2.0,
                "write.l2": op.bytes_written() + partial_bytes / 2.0,
                "sm_active_s": sm_active_s,
            },
            notes=f"{op.phase}, {blocks} blocks, {blocks / sms:.2f} waves, split-kv {splits}",
        )

    # ---- grouped GEMM (MoE experts in one kernel) ------------------------------------------

    def _grouped_gemm_cost(self, op: GroupedGemm, mapping: GpuMapping) -> OpCost:
        """The experts' GEMMs: one grouped kernel, or Flash-LLM per expert for unstructured weights.

        Unstructured expert weights have two kernels, and the faster one runs, as for a single
        GEMM (:meth:`_gemm_cost`): the grouped dense GEMM over the weights stored dense with their
        zeros (dense tensor cores read no compressed unstructured layout), and, when every active
        expert has few enough tokens, Flash-LLM launched once per expert.
        """
        if not (isinstance(op.x.sparsity, Unstructured) or isinstance(op.w.sparsity, Unstructured)):
            return self._tiled_grouped_gemm_cost(op, mapping)
        tiled = self._tiled_grouped_gemm_cost(_zero_filled_grouped(op), mapping)
        dense = dataclasses.replace(tiled, notes=f"dense grouped GEMM, zeros stored: {tiled.notes}")
        shapes = _grouped_spmm_shapes(op)
        # a mapping that imposes a tile or split-K has chosen the dense kernel
        if shapes is None or mapping.tile is not None or mapping.split_k is not None:
            return dense
        sparse = self._per_expert_flash_llm_cost(op, shapes, mapping)
        return sparse if sparse.latency_s < dense.latency_s else dense

    def _per_expert_flash_llm_cost(
        self, op: GroupedGemm, shapes: tuple[_SpmmShape, ...], mapping: GpuMapping
    ) -> OpCost:
        """Flash-LLM once per active expert, one kernel after another, costs summed.

        Flash-LLM (Xia et al., VLDB 2024) ships a single-matrix SpMM and no grouped or batched
        variant, so an MoE layer runs it in a loop over experts: each launch pays the mapping's
        fixed time (launch or queued gap, plus the first load's latency), as the naive per-expert
        loop's GEMMs do, and moves only its own expert's Tiled-CSL weight.
        """
        costs = [
            self._flash_llm_cost(
                gemm(
                    f"{op.name}.expert",
                    shape.tokens,
                    shape.n,
                    shape.k,
                    op.dtype,
                    b_sparsity=op.w.sparsity,
                ),
                shape,
                mapping,
            )
            for shape in shapes
        ]
        latency_s = sum(c.latency_s for c in costs)
        fixed_s = len(costs) * self._fixed(mapping)
        longest = max(costs, key=lambda c: c.latency_s)
        actions: dict[str, float] = {}
        bytes_by_level: dict[str, float] = {}
        for cost in costs:
            for key, value in cost.actions.items():
                actions[key] = actions.get(key, 0.0) + value
            for key, value in cost.bytes_by_level.items():
                bytes_by_level[key] = bytes_by_level.get(key, 0.0) + value
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=Bound.LAUNCH if fixed_s >= latency_s - fixed_s else longest.bound,
            utilization=self._utilization(op, latency_s),
            bytes_by_level=bytes_by_level,
            actions=actions,
            notes=(
                f"flash-llm SpMM per expert ({len(costs)} launches, no grouped kernel); "
                f"longest: {longest.notes}"
            ),
        )

    def _tiled_grouped_gemm_cost(self, op: GroupedGemm, mapping: GpuMapping) -> OpCost:
        """One kernel over all groups: tiles summed over groups, run in waves over the SMs.

        Each group's rows are tiled separately (a group of 3 rows still fills one tile), so
        the tile count is ``sum_g ceil(rows_g / tile_m) * ceil(n / tile_n)``. The weights of
        every active group are read once from HBM.
        """
        cfg = self.config
        sms = cfg.sm_count
        grouped_eff = cfg.efficiency.grouped_tensor
        if grouped_eff is None:
            grouped_eff = self._tensor_efficiency(op.dtype)
        sm_flops = cfg.tensor_flops_per_s[op.dtype] * grouped_eff / sms
        hbm_read, hbm_write, from_l2 = self._hbm_traffic(op, mapping)
        best: tuple[float, float, float, TileShape, int] | None = None
        for tile in cfg.tile_shapes:
            tiles = sum(
                -(-rows // tile.m) * -(-op.n // tile.n) for rows in op.group_rows if rows > 0
            )
            compute_s = (
                wave_count(tiles, sms) * 2.0 * tile.m * tile.n * op.k / (sm_flops * tile.efficiency)
            )
            bw = min(self._hbm_bw, min(tiles, sms) * self._per_sm_bw)
            memory_s = streaming_time_s(hbm_read + hbm_write, from_l2, bw, self._l2_bw)
            body_s = max(compute_s, memory_s)
            if best is None or body_s < best[0]:
                best = (body_s, compute_s, memory_s, tile, tiles)
        assert best is not None
        body_s, compute_s, memory_s, tile, tiles = best
        fixed_s = self._fixed(mapping)
        latency_s = fixed_s + body_s
        sm_active_s = self._sm_active_s(tiles, latency_s - self._launch_gap_s(mapping))
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=_bound(compute_s, memory_s, fixed_s),
            utilization=self._utilization(op, latency_s),
            bytes_by_level={"hbm": hbm_read + hbm_write, "l2": op.bytes()},
            actions={
                f"mac.{op.dtype.value}": op.flops() / 2.0,
                "vector_op": float(sum(op.group_rows) * op.n),
                "read.hbm": hbm_read,
                "write.hbm": hbm_write,
                "read.l2": op.bytes_read(),
                "write.l2": op.bytes_written(),
                "sm_active_s": sm_active_s,
            },
            notes=(
                f"grouped: {op.active_groups} groups, tile {tile.m}x{tile.n}, {tiles} tiles, "
                f"{tiles / sms:.2f} waves"
            ),
        )

    # ---- MoE router and streaming ops -----------------------------------------------------

    def _router_cost(self, op: MoeRouter, mapping: GpuMapping) -> OpCost:
        # two kernels: the logits GEMM, then softmax + top-k over the logits
        d_model = op.w_router.shape[0]
        logits = gemm("router.logits", op.tokens, op.experts, d_model, op.dtype)
        gemm_cost = self._gemm_cost(logits, mapping)
        softmax_flops = 6.0 * op.tokens * op.experts
        softmax_bytes = logits.out.stored_bytes + op.out.stored_bytes
        softmax_s = self._fixed_s + max(
            softmax_bytes / self._hbm_bw, softmax_flops / self._vector_flops
        )
        latency_s = gemm_cost.latency_s + softmax_s
        actions = dict(gemm_cost.actions)
        actions["vector_op"] = actions.get("vector_op", 0.0) + softmax_flops
        actions["read.hbm"] += logits.out.stored_bytes
        actions["write.hbm"] += op.out.stored_bytes
        # the softmax + top-k kernel: one block per token row
        actions["sm_active_s"] = actions.get("sm_active_s", 0.0) + self._sm_active_s(
            op.tokens, softmax_s - self.config.kernel_launch_s
        )
        bytes_by_level = dict(gemm_cost.bytes_by_level)
        bytes_by_level["hbm"] += softmax_bytes
        fixed_s = 2.0 * self._fixed_s
        body_s = latency_s - fixed_s
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=Bound.LAUNCH if fixed_s >= body_s else gemm_cost.bound,
            utilization=self._utilization(op, latency_s),
            bytes_by_level=bytes_by_level,
            actions=actions,
            notes=f"router: {gemm_cost.notes}; softmax+top-k kernel",
        )

    def _streaming_cost(self, op: Op, mapping: GpuMapping) -> OpCost:
        hbm_read, hbm_write, from_l2 = self._hbm_traffic(op, mapping)
        memory_s = streaming_time_s(hbm_read + hbm_write, from_l2, self._hbm_bw, self._l2_bw)
        compute_s = op.flops() / self._vector_flops
        rate = self.config.strided_elements_per_cycle_per_sm
        if isinstance(op, Elementwise) and not op.contiguous and rate is not None:
            # strided inputs: one scalar load and an offset computation per element
            elements_per_s = rate * self.config.sm_count * self.clock_hz
            compute_s = max(compute_s, op.out.numel / elements_per_s)
        fixed_s = self._fixed(mapping)
        latency_s = fixed_s + max(memory_s, compute_s)
        blocks = -(-op.bytes() // _STREAM_BYTES_PER_BLOCK)
        sm_active_s = self._sm_active_s(blocks, latency_s - self._launch_gap_s(mapping))
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=_bound(compute_s, memory_s, fixed_s),
            utilization=self._utilization(op, latency_s),
            bytes_by_level={"hbm": hbm_read + hbm_write, "l2": op.bytes()},
            actions={
                "vector_op": op.flops(),
                "read.hbm": hbm_read,
                "write.hbm": hbm_write,
                "read.l2": op.bytes_read(),
                "write.l2": op.bytes_written(),
                "sm_active_s": sm_active_s,
            },
            notes=f"streaming {op.kind}",
        )

    def _hbm_traffic(self, op: Op, mapping: GpuMapping) -> tuple[float, float, float]:
        return hbm_traffic(
            op.bytes_read(),
            op.bytes_written(),
            self.config.l2.size_bytes,
            warm_l2=mapping.warm_l2,
            dirty_l2_share=mapping.dirty_l2_share,
        )

    def _utilization(self, op: Op, latency_s: float) -> float:
        peak = self._op_peak_flops_per_s(op)
        return min(1.0, op.flops() / (latency_s * peak)) if peak > 0 else 0.0


def _bound(compute_s: float, memory_s: float, fixed_s: float) -> Bound:
    """The largest of the three parts of an op's time names its bound."""
    if fixed_s >= max(compute_s, memory_s):
        return Bound.LAUNCH
    return Bound.COMPUTE if compute_s >= memory_s else Bound.MEMORY


__all__ = ["GemmPlan", "GpuDevice", "GpuMapping", "hbm_traffic", "tile_count", "wave_count"]
