"""TPU-like NPU: systolic arrays and a vector unit around a DMA-fed scratchpad.

GEMMs are tiled over the scratchpad; each tile's DMA load, systolic-array compute and store run
through the tile pipeline kernel (``archsim.kernels.tile_pipeline``), so double buffering, pipeline
fill/drain of the arrays and ragged edge tiles all show in the result. Attention is lowered to two
batched GEMMs (QK^T and PV) plus a softmax on the vector unit. Elementwise ops, norms, softmax and
the MoE routing/gather/scatter ops stream through the vector unit; embedding lookups are DMA
gathers.

Sparse operands are handled simply by default: DMA moves their compressed bytes (values plus
metadata), the arrays do the dense math (no zero skipping), so sparsity saves bandwidth, not compute.
With the machine file's opt-in ``sparse_array`` (N:M multiplexers in front of the WS array's PEs,
as VEGETA and S2TA build them) a sparse weight runs in fewer stationary blocks: each array column
is a sparse chain along K (``archsim.kernels.sparse_chain``), a sample of the weight's mask gives
each column's passes, and the slowest column of every block sets its time (load imbalance).
Patterns the multiplexers cannot shorten fall back to dense math.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from archsim.config.machine import NpuConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.errors import ArchsimError, InfeasibleError
from archsim.hw.base import Bound, OpCost, register_device
from archsim.hw.roofline import roofline_cost
from archsim.hw.tiling import GemmTiling, power_of_two_candidates, scratchpad_footprint_bytes
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
)
from archsim.ir.tensor import NM, Block, DType, Sparsity, Tensor, Unstructured
from archsim.kernels import gemm_plan
from archsim.kernels.sparse_chain import (
    block_mask,
    chain_metadata_bits,
    dsp_chain_work,
    nm_mask,
    skewed_mask,
)
from archsim.kernels.tile_pipeline import simulate_tile_pipeline

# Partial sums are kept at fp32 width across the k loop, as MXU-style arrays accumulate in fp32.
ACC_ELEM_BYTES = 4.0
# Vector ops after the softmax exponent: max, subtract, exp, sum, scale (as ``Softmax.flops``).
SOFTMAX_OPS_PER_ELEMENT = 5.0
# Elementwise streams are cut into chunks of at most this size so that DMA overlaps the vector
# unit; smaller chunks would only add DMA setups.
VECTOR_CHUNK_BYTES = float(1 << 20)
MAX_VECTOR_CHUNKS = 4096
# Tilings kept from the analytic estimate and replayed through the pipeline kernel.
REPLAYED_CANDIDATES = 6

# A sparse weight's work on a sparse array is measured on a sample of its mask: whole passes along
# K up to about this many rows and whole array-column groups up to about this many columns. The
# patterns of the IR are stationary (every window and block drawn alike), so a sample of a few
# dozen (pass, column group) blocks gives the mean; a fixed seed keeps costs reproducible.
MASK_SAMPLE_ROWS = 4096
MASK_SAMPLE_COLS = 512
MASK_SEED = 0

# ops streamed through the vector unit; an embedding lookup is a DMA gather with no arithmetic
_VECTOR_OPS = (Elementwise, Norm, Softmax, MoeRouter, MoeDispatch, MoeCombine, Embedding, Pool2d)


@dataclass(frozen=True)
class _GemmProblem:
    """A GEMM as the arrays see it: ``batch`` independent ``m x n x k`` products.

    Element sizes are average stored bytes (compressed for sparse operands). An operand or result
    already on chip (attention's scores and probabilities) moves no DRAM bytes.
    """

    m: int
    n: int
    k: int
    batch: int
    a_elem_bytes: float
    b_elem_bytes: float
    out_elem_bytes: float
    a_from_dram: bool = True
    out_to_dram: bool = True

    @property
    def macs(self) -> float:
        return float(self.batch) * self.m * self.n * self.k


@dataclass(frozen=True)
class _SparseGemmPlan:
    """A sparse-weight GEMM on the sparse array: its measured work, compressed K and bytes."""

    work: SparseArrayWork
    k_eff: int
    weight_bytes: float
    metadata_bytes: float
    compulsory_bytes: float


@dataclass(frozen=True)
class _GemmRun:
    """The evaluated tile pipeline of one GEMM under one tiling (cycles at the device clock)."""

    tiling: GemmTiling
    tiles: int
    cycles: float
    stall_cycles: float
    compute_cycles: float
    load_cycles: float
    store_cycles: float
    dram_read_bytes: float
    dram_write_bytes: float
    sp_read_bytes: float
    sp_write_bytes: float


def _double_buffered_run(
    tiling: GemmTiling,
    load: np.ndarray,
    compute: np.ndarray,
    store: np.ndarray,
    dram_bytes: tuple[float, float],
    sp_bytes: tuple[float, float],
) -> _GemmRun:
    """The tile pipeline of one attention mapping with two buffers, as a :class:`_GemmRun`.

    ``dram_bytes`` and ``sp_bytes`` are (read, write) totals over all tiles.
    """
    total, stall = simulate_tile_pipeline(
        np.ascontiguousarray(load, dtype=np.float64),
        np.ascontiguousarray(compute, dtype=np.float64),
        np.ascontiguousarray(store, dtype=np.float64),
        2,
    )
    return _GemmRun(
        tiling=tiling,
        tiles=len(load),
        cycles=float(total),
        stall_cycles=float(stall),
        compute_cycles=float(compute.sum()),
        load_cycles=float(load.sum()),
        store_cycles=float(store.sum()),
        dram_read_bytes=dram_bytes[0],
        dram_write_bytes=dram_bytes[1],
        sp_read_bytes=sp_bytes[0],
        sp_write_bytes=sp_bytes[1],
    )


def _ceil_div(x: np.ndarray | int | float, y: np.ndarray | int | float) -> np.ndarray:
    return np.ceil(np.asarray(x, dtype=np.float64) / y)


def _extents(total: int, tile: int) -> np.ndarray:
    """Sizes of the tiles along one dimension: full tiles and a ragged last one."""
    count = math.ceil(total / tile)
    sizes = np.full(count, float(tile))
    sizes[-1] = total - (count - 1) * tile
    return sizes


def _elem_bytes(tensor: Tensor) -> float:
    return tensor.stored_bytes / tensor.numel


@dataclass(frozen=True)
class SparseArrayWork:
    """A sparse weight on an N:M weight-stationary array, measured on its mask.

    Attributes
    ----------
    work_fraction:
        Array time over the dense array's time for the same reduction length: stationary
        blocks the sparse array loads (each as long as a dense one) per dense block.
    imbalance:
        Blocks the slowest column of each column group needs over the group's mean column,
        summed over all blocks (1: every column as busy as the slowest).
    kept_fraction:
        Share of the weights kept (multiplied).
    metadata_bits_per_kept:
        Multiplexer-select bits that travel with each kept weight.
    """

    work_fraction: float
    imbalance: float
    kept_fraction: float
    metadata_bits_per_kept: float


def sparse_array_work(
    mask: np.ndarray, lanes: int, cols: int, n_max: int, m: int
) -> SparseArrayWork:
    """Work of a ``K x N`` weight mask on a WS array whose columns are sparse chains.

    Each array column is a chain of ``lanes`` MAC lanes along K (PE rows times MACs per PE),
    cut into groups of ``n_max`` lanes that select from windows of ``m`` consecutive reduction
    elements; a stationary block (one *pass*) covers ``lanes // n_max * m`` rows of K and is
    repeated as often as its fullest window needs (``archsim.kernels.sparse_chain``). The array's
    columns load their blocks in lockstep, so over each group of ``cols`` output columns the
    column that needs the most repetitions sets the pass's time.

    Parameters
    ----------
    mask:
        ``K x N`` array, non-zero where the weight is kept.
    lanes:
        MAC lanes of one array column (PE rows x MACs per PE per cycle).
    cols:
        Columns of one array (output columns in lockstep).
    n_max, m:
        Multiplexer group size and window (``sparse_array.n_max`` and ``sparse_array.m``).
    """
    k_len, n_cols = mask.shape
    pass_rows = (lanes // n_max) * m
    passes = math.ceil(k_len / pass_rows)
    padded = np.zeros((passes * pass_rows, n_cols), dtype=np.uint8)
    padded[:k_len] = mask != 0
    # one kernel column per (pass, output column): each then holds exactly one pass
    by_pass = np.ascontiguousarray(
        padded.reshape(passes, pass_rows, n_cols).transpose(1, 0, 2).reshape(pass_rows, -1)
    )
    need, kept = dsp_chain_work(by_pass, passes * n_cols, lanes, m, n_max)
    groups = math.ceil(n_cols / cols)
    per_column = np.zeros((passes, groups * cols))
    per_column[:, :n_cols] = need.reshape(passes, n_cols)
    per_group = per_column.reshape(passes, groups, cols)
    widths = np.minimum(cols, n_cols - cols * np.arange(groups))
    slowest = float(per_group.max(axis=2).sum())
    mean = float((per_group.sum(axis=2) / widths).sum())
    kept_weights = float(kept.sum())
    return SparseArrayWork(
        work_fraction=slowest / groups * lanes / k_len,
        imbalance=slowest / mean if mean > 0 else 1.0,
        kept_fraction=kept_weights / (k_len * n_cols),
        metadata_bits_per_kept=chain_metadata_bits(1.0, m),
    )


def weight_mask_sample(sparsity: Sparsity, k: int, n: int, pass_rows: int, cols: int) -> np.ndarray:
    """A seeded draw of a ``K x N`` weight's mask, cut to whole passes and column groups.

    Unstructured sparsity is drawn uniform over the columns (the IR carries no skew).
    """
    k_rows = min(k, max(pass_rows, MASK_SAMPLE_ROWS // pass_rows * pass_rows))
    n_cols = min(n, max(cols, MASK_SAMPLE_COLS // cols * cols))
    if isinstance(sparsity, NM):
        rows = math.ceil(k_rows / sparsity.m) * sparsity.m
        return nm_mask(rows, n_cols, sparsity.n, sparsity.m, MASK_SEED)[:k_rows]
    if isinstance(sparsity, Block):
        return block_mask(
            k_rows, n_cols, sparsity.height, sparsity.width, sparsity.density, MASK_SEED
        )
    if isinstance(sparsity, Unstructured):
        return skewed_mask(k_rows, n_cols, sparsity.density, 0.0, MASK_SEED)
    return np.ones((k_rows, n_cols), dtype=np.uint8)


def _gemm_run(run: np.ndarray) -> _GemmRun:
    """A :class:`_GemmRun` from a run vector of ``archsim.kernels.gemm_plan``."""
    g = gemm_plan
    return _GemmRun(
        tiling=GemmTiling(
            int(run[g.R_TILE_M]),
            int(run[g.R_TILE_N]),
            int(run[g.R_TILE_K]),
            int(run[g.R_BUFFERS]),
            g.LOOP_ORDERS[int(run[g.R_LOOP_ORDER])],
        ),
        tiles=int(run[g.R_TILES]),
        cycles=float(run[g.R_CYCLES]),
        stall_cycles=float(run[g.R_STALL_CYCLES]),
        compute_cycles=float(run[g.R_COMPUTE_CYCLES]),
        load_cycles=float(run[g.R_LOAD_CYCLES]),
        store_cycles=float(run[g.R_STORE_CYCLES]),
        dram_read_bytes=float(run[g.R_DRAM_READ_BYTES]),
        dram_write_bytes=float(run[g.R_DRAM_WRITE_BYTES]),
        sp_read_bytes=float(run[g.R_SP_READ_BYTES]),
        sp_write_bytes=float(run[g.R_SP_WRITE_BYTES]),
    )


@register_device("npu")
class NpuDevice:
    """Systolic-array NPU (TPU-like) with a scratchpad, DMA engines and a vector unit.

    Parameters
    ----------
    config:
        The validated NPU section of a machine file.
    """

    kind = "npu"
    fidelity = ("roofline", "tiling", "fill_drain", "double_buffering")

    def __init__(self, config: NpuConfig):
        self.config = config
        self.name = config.name
        array = config.systolic_array
        self._rows = array.rows
        self._cols = array.cols
        self._arrays = array.count
        self._pes = array.count * array.rows * array.cols
        self._dram_bytes_per_cycle = config.dram.bw_bytes_per_s / config.clock_hz
        self._sp_bytes_per_cycle = config.scratchpad.bw_bytes_per_s / config.clock_hz
        self._setup_cycles = config.dma.setup_s * config.clock_hz
        # equal ops hash equal (names excluded), so repeated layers are costed once per device
        self._cached_cost = functools.lru_cache(maxsize=4096)(self._cost)
        self._cached_sparse_work = functools.lru_cache(maxsize=256)(self._sparse_work)

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    # ---- Protocol ---------------------------------------------------------------------------

    def supports(self, op: Op) -> bool:
        if isinstance(op, Collective):
            return False  # a single NPU has no collective engine; the interconnect model owns it
        if isinstance(op, Gemm | Attention | Conv2d):
            return op.dtype in self.config.macs_per_pe_per_cycle
        return isinstance(op, _VECTOR_OPS)

    def roofline(self, op: Op) -> OpCost:
        vector = isinstance(op, _VECTOR_OPS)
        peak = self._vector_flops_per_s() if vector else self.peak_flops_per_s(op.dtype)
        bw = self.config.dram.bw_bytes_per_s
        gemm = op.as_gemm() if isinstance(op, Conv2d) and self.supports(op) else op
        sparse = self._sparse_gemm_plan(gemm) if isinstance(gemm, Gemm) else None
        if sparse is not None:
            # zero skipping shortens K, and the array's weight format may be smaller than the
            # IR's, so both rates scale up to keep the roofline a lower bound
            peak *= gemm.k / sparse.k_eff
            bw *= max(1.0, gemm.bytes() / sparse.compulsory_bytes)
        return roofline_cost(
            op,
            peak_flops_per_s=peak if peak > 0 else float("inf"),
            bw_bytes_per_s=bw,
            memory_level="dram",
            clock_hz=self.clock_hz,
            fixed_latency_s=self.config.dram.latency_s,
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        """Cost of ``op``; ``mapping`` may be a :class:`GemmTiling` for a GEMM.

        Raises
        ------
        InfeasibleError
            When a given tiling does not fit the scratchpad, or no tiling does.
        ArchsimError
            When the op is not supported or the mapping is not a ``GemmTiling``.
        """
        return self._cached_cost(op, mapping)

    def peak_flops_per_s(self, dtype: DType) -> float:
        macs_per_pe = self.config.macs_per_pe_per_cycle.get(dtype, 0)
        return 2.0 * self._pes * macs_per_pe * self.clock_hz

    def peak_bw_bytes_per_s(self) -> float:
        return self.config.dram.bw_bytes_per_s

    def energy_per_action_j(self) -> Mapping[str, float]:
        dram, sp = self.config.dram, self.config.scratchpad
        return {
            **mac_prices_j(self.config.mac_energy_j),
            **memory_prices_j("dram", dram.read_energy_per_byte_j, dram.write_energy_per_byte_j),
            **memory_prices_j("scratchpad", sp.read_energy_per_byte_j, sp.write_energy_per_byte_j),
            "vector_op": self.config.vector_op_energy_j,
        }

    def area_mm2(self) -> float:
        """Sum of the component areas, so swept sizes change the total.

        PEs x per-PE area + vector lanes x per-lane area + scratchpad MiB x SRAM area per MiB
        + DRAM bandwidth (TB/s) x PHY area per TB/s + the fixed remainder, in mm^2.
        """
        area = self.config.area
        scratchpad_mib = self.config.scratchpad.size_bytes / 2**20
        dram_tb_s = self.config.dram.bw_bytes_per_s / 1e12
        return (
            area.per_pe_mm2 * self._pes
            + area.per_vector_lane_mm2 * self.config.vector_unit.lanes
            + area.sram_per_mib_mm2 * scratchpad_mib
            + area.dram_phy_per_tb_s_mm2 * dram_tb_s
            + area.fixed_mm2
        )

    def static_power_w(self) -> float:
        """Fixed idle draw plus leakage that scales with the configured area, in W."""
        return self.config.static_power_w + self.config.leakage_per_mm2_w * self.area_mm2()

    def memory_capacity_bytes(self) -> float:
        return self.config.dram.size_bytes

    # ---- dispatch ---------------------------------------------------------------------------

    def _cost(self, op: Op, mapping: object | None) -> OpCost:
        if not self.supports(op):
            raise ArchsimError(f"{self.name}: npu does not run {op.kind} ops in {op.dtype.value}")
        if mapping is not None and not isinstance(mapping, GemmTiling):
            raise ArchsimError(
                f"{self.name}: npu mappings are GemmTiling objects, got {type(mapping).__name__}"
            )
        if isinstance(op, Gemm):
            return self._gemm_cost(op, mapping)
        if isinstance(op, Conv2d):
            # costed as its im2col GEMM (see Conv2d.as_gemm for the extra input traffic)
            return self._gemm_cost(op.as_gemm(), mapping)
        if mapping is not None:
            raise ArchsimError(f"{self.name}: a GemmTiling applies to gemm ops, not {op.kind}")
        if isinstance(op, Attention):
            return self._attention_cost(op)
        return self._vector_cost(op)

    # ---- GEMM -------------------------------------------------------------------------------

    def _macs_per_pe(self, dtype: DType) -> int:
        return self.config.macs_per_pe_per_cycle[dtype]

    def _footprint(
        self,
        tile_m: float | np.ndarray,
        tile_n: float | np.ndarray,
        tile_k: float | np.ndarray,
        buffers: int,
        p: _GemmProblem,
    ) -> float | np.ndarray:
        """Scratchpad bytes of a tiling of ``p`` (elementwise over candidate arrays)."""
        return scratchpad_footprint_bytes(
            tile_m, tile_n, tile_k, buffers, p.a_elem_bytes, p.b_elem_bytes, ACC_ELEM_BYTES
        )

    def _setup_per_tile(self, transfers: int | np.ndarray) -> np.ndarray:
        """DMA setup cycles for ``transfers`` descriptors; the engines start them in parallel."""
        return np.ceil(np.asarray(transfers, dtype=np.float64) / self.config.dma.engines) * (
            self._setup_cycles
        )

    def _gemm_params(self, p: _GemmProblem, macs_per_pe: int) -> np.ndarray:
        """The parameter vector of the GEMM plan kernels (``archsim.kernels.gemm_plan``).

        The kernels model the arrays as the module docstring and :meth:`_gemm_cost` describe:
        WS or OS blocks dealt over the arrays, fill and drain once per tile, the scratchpad port
        keeping up with the operands and the fp32 output tile, and the analytic estimate that
        ranks tilings before the best few are replayed tile by tile.
        """
        params = np.empty(gemm_plan.N_PARAMS)
        params[gemm_plan.P_M], params[gemm_plan.P_N], params[gemm_plan.P_K] = p.m, p.n, p.k
        params[gemm_plan.P_BATCH] = p.batch
        params[gemm_plan.P_A_BYTES] = p.a_elem_bytes
        params[gemm_plan.P_B_BYTES] = p.b_elem_bytes
        params[gemm_plan.P_OUT_BYTES] = p.out_elem_bytes
        params[gemm_plan.P_A_FROM_DRAM] = float(p.a_from_dram)
        params[gemm_plan.P_OUT_TO_DRAM] = float(p.out_to_dram)
        params[gemm_plan.P_ACC_BYTES] = ACC_ELEM_BYTES
        params[gemm_plan.P_ROWS] = self._rows
        params[gemm_plan.P_COLS] = self._cols
        params[gemm_plan.P_ARRAYS] = self._arrays
        params[gemm_plan.P_MACS_PER_PE] = macs_per_pe
        params[gemm_plan.P_DATAFLOW] = gemm_plan.DATAFLOWS.index(
            self.config.systolic_array.dataflow
        )
        params[gemm_plan.P_DRAM_BYTES_PER_CYCLE] = self._dram_bytes_per_cycle
        params[gemm_plan.P_SP_BYTES_PER_CYCLE] = self._sp_bytes_per_cycle
        params[gemm_plan.P_SETUP_CYCLES] = self._setup_cycles
        params[gemm_plan.P_DMA_ENGINES] = self.config.dma.engines
        params[gemm_plan.P_CAPACITY_BYTES] = self.config.scratchpad.size_bytes
        params[gemm_plan.P_REPLAYED] = REPLAYED_CANDIDATES
        return params

    def _plan_gemm(
        self, p: _GemmProblem, dtype: DType, tiling: GemmTiling | None, op_name: str
    ) -> _GemmRun:
        """The run of ``p`` under ``tiling``, or under the model's own best tiling if None.

        The search ranks every double-buffered power-of-two multiple of the array size along
        each dimension by an analytic estimate and replays the best ``REPLAYED_CANDIDATES``
        through the tile pipeline, all in one kernel call.
        """
        macs_per_pe = self._macs_per_pe(dtype)
        capacity = self.config.scratchpad.size_bytes
        params = self._gemm_params(p, macs_per_pe)
        if tiling is not None:
            t = tiling.clipped(p.m, p.n, p.k)
            need = self._footprint(t.tile_m, t.tile_n, t.tile_k, t.buffers, p)
            if need > capacity:
                raise InfeasibleError(
                    f"{self.name}: tiling {tiling.describe()} of gemm '{op_name}' needs "
                    f"{need / 2**20:.2f} MiB of scratchpad with {t.buffers} buffer(s), more than "
                    f"the {capacity / 2**20:.2f} MiB available; use smaller tiles or one buffer"
                )
            order = (
                gemm_plan.AUTO_LOOP_ORDER
                if t.loop_order is None
                else gemm_plan.LOOP_ORDERS.index(t.loop_order)
            )
            run = gemm_plan.run_tiling(
                float(t.tile_m), float(t.tile_n), float(t.tile_k), t.buffers, order, params
            )
            return _gemm_run(run)
        run = gemm_plan.plan_gemm(
            np.asarray(power_of_two_candidates(p.m, self._rows), dtype=np.float64),
            np.asarray(power_of_two_candidates(p.n, self._cols), dtype=np.float64),
            np.asarray(
                power_of_two_candidates(p.k, self._rows * macs_per_pe, steps=9), dtype=np.float64
            ),
            params,
        )
        if run[gemm_plan.R_TILE_M] == 0:
            smallest = self._footprint(1, min(p.n, self._cols), min(p.k, self._rows), 2, p)
            raise InfeasibleError(
                f"{self.name}: scratchpad {capacity / 2**20:.2f} MiB cannot hold even the "
                f"smallest double-buffered tile of gemm '{op_name}' ({smallest / 2**20:.2f} MiB)"
            )
        return _gemm_run(run)

    def _gemm_problem(self, op: Gemm) -> _GemmProblem:
        # a weight shared across the batch makes the batch one taller GEMM
        shared = op.b.is_weight or op.batch == 1
        return _GemmProblem(
            m=op.m * op.batch if shared else op.m,
            n=op.n,
            k=op.k,
            batch=1 if shared else op.batch,
            a_elem_bytes=_elem_bytes(op.a),
            b_elem_bytes=_elem_bytes(op.b),
            out_elem_bytes=_elem_bytes(op.out),
        )

    def _gemm_cost(self, op: Gemm, tiling: GemmTiling | None) -> OpCost:
        sparse = self._sparse_gemm_plan(op)
        if sparse is not None:
            return self._sparse_gemm_cost(op, tiling, sparse)
        run = self._plan_gemm(self._gemm_problem(op), op.dtype, tiling, op.name)
        macs = op.flops() / 2.0  # dense math even on sparse operands
        return self._finish(
            macs=macs,
            dtype=op.dtype,
            runs=(run,),
            body_cycles=run.cycles,
            vector_ops=0.0,
            extra_sp=(0.0, 0.0),
            compulsory_bytes=op.bytes(),
            notes=self._describe(run) + self._sparse_fallback_note(op),
        )

    # ---- sparse arrays (opt-in) -------------------------------------------------------------

    def _sparse_work(self, sparsity: Sparsity, k: int, n: int, lanes: int) -> SparseArrayWork:
        sparse = self.config.sparse_array
        assert sparse is not None
        pass_rows = (lanes // sparse.n_max) * sparse.m
        mask = weight_mask_sample(sparsity, k, n, pass_rows, self._cols)
        return sparse_array_work(mask, lanes, self._cols, sparse.n_max, sparse.m)

    def _sparse_weight_work(self, op: Gemm) -> SparseArrayWork | None:
        """The weight's work on the sparse array, or None where the option does not apply."""
        weight = op.b
        if self.config.sparse_array is None or not weight.is_weight:
            return None
        if weight.sparsity.density >= 1.0 or op.dtype not in self.config.macs_per_pe_per_cycle:
            return None
        lanes = self._rows * self._macs_per_pe(op.dtype)
        return self._cached_sparse_work(weight.sparsity, op.k, op.n, lanes)

    def _sparse_gemm_plan(self, op: Gemm) -> _SparseGemmPlan | None:
        """How a GEMM runs on the sparse array, or None for dense math (option absent, dense or
        activation-only operands, or a pattern the multiplexers cannot shorten)."""
        work = self._sparse_weight_work(op)
        if work is None:
            return None
        k_eff = max(1, math.ceil(op.k * work.work_fraction))
        if k_eff >= op.k:
            return None
        kept = work.kept_fraction * op.k * op.n
        metadata_bytes = kept * work.metadata_bits_per_kept / 8.0
        weight_bytes = kept * op.b.dtype.size_bytes + metadata_bytes
        return _SparseGemmPlan(
            work=work,
            k_eff=k_eff,
            weight_bytes=weight_bytes,
            metadata_bytes=metadata_bytes,
            compulsory_bytes=op.a.stored_bytes + weight_bytes + op.out.stored_bytes,
        )

    def _sparse_fallback_note(self, op: Gemm) -> str:
        work = self._sparse_weight_work(op)
        if work is None:
            return ""
        return (
            f"; sparse array: {op.b.sparsity.describe()} weights need {work.work_fraction:.2f} "
            "of dense work, no gain, dense math"
        )

    def _sparse_gemm_cost(
        self, op: Gemm, tiling: GemmTiling | None, sparse: _SparseGemmPlan
    ) -> OpCost:
        """A sparse-weight GEMM on the sparse array: a dense GEMM of the compressed K.

        The planner sees K shortened to ``k_eff`` (stationary blocks, imbalance included, times
        the array's rows), with the activations' bytes per compressed element scaled up by
        ``k / k_eff`` (every window's ``m`` activations still enter the array) and the weight
        stored as kept values plus multiplexer selects. A given tiling's ``tile_k`` counts
        compressed reduction elements. MACs counted are the kept ones.
        """
        base = self._gemm_problem(op)
        scale = op.k / sparse.k_eff
        problem = replace(
            base,
            k=sparse.k_eff,
            a_elem_bytes=base.a_elem_bytes * scale,
            b_elem_bytes=sparse.weight_bytes / (sparse.k_eff * op.n),
        )
        run = self._plan_gemm(problem, op.dtype, tiling, op.name)
        work = sparse.work
        array = self.config.sparse_array
        assert array is not None
        return self._finish(
            macs=op.flops() / 2.0 * work.kept_fraction,
            dtype=op.dtype,
            runs=(run,),
            body_cycles=run.cycles,
            vector_ops=0.0,
            extra_sp=(0.0, 0.0),
            compulsory_bytes=sparse.compulsory_bytes,
            notes=(
                f"{self._describe(run)}; sparse array n_max {array.n_max} of m {array.m} on "
                f"{op.b.sparsity.describe()} weights: {work.work_fraction:.2f} of dense work, "
                f"column imbalance {work.imbalance:.2f}x, {work.kept_fraction:.0%} kept, "
                f"metadata {sparse.metadata_bytes / 2**20:.2f} MiB"
            ),
        )

    def _describe(self, run: _GemmRun) -> str:
        t = run.tiling
        dma_share = run.stall_cycles / run.cycles if run.cycles > 0 else 0.0
        buffering = "double-buffered" if t.buffers == 2 else "single-buffered"
        return (
            f"{self.config.systolic_array.dataflow} tile {t.describe()}, {run.tiles} tiles, "
            f"{t.loop_order}, {buffering}, dma-bound {dma_share:.0%}"
        )

    def _finish(
        self,
        *,
        macs: float,
        dtype: DType,
        runs: tuple[_GemmRun, ...],
        body_cycles: float,
        vector_ops: float,
        extra_sp: tuple[float, float],
        compulsory_bytes: float,
        notes: str,
    ) -> OpCost:
        """Common tail of GEMM and attention costs: DRAM floor, latency, bound, actions."""
        dram_read = sum(r.dram_read_bytes for r in runs)
        dram_write = sum(r.dram_write_bytes for r in runs)
        sp_read = sum(r.sp_read_bytes for r in runs) + extra_sp[0]
        sp_write = sum(r.sp_write_bytes for r in runs) + extra_sp[1]
        # loads and stores use separate DMA queues in the kernel but share the DRAM bandwidth
        dram_cycles = (dram_read + dram_write) / self._dram_bytes_per_cycle
        cycles = max(body_cycles, dram_cycles, compulsory_bytes / self._dram_bytes_per_cycle)
        latency_s = cycles / self.clock_hz + self.config.dram.latency_s
        compute = sum(r.compute_cycles for r in runs)
        dma = max(sum(r.load_cycles for r in runs), sum(r.store_cycles for r in runs), dram_cycles)
        if self.config.dram.latency_s > cycles / self.clock_hz:
            bound = Bound.LAUNCH
        elif dma > compute:
            bound = Bound.MEMORY
        else:
            bound = Bound.COMPUTE
        peak_macs_per_s = self._pes * self._macs_per_pe(dtype) * self.clock_hz
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=bound,
            utilization=min(1.0, macs / (latency_s * peak_macs_per_s)),
            bytes_by_level={"dram": dram_read + dram_write, "scratchpad": sp_read + sp_write},
            actions={
                f"mac.{dtype.value}": macs,
                "vector_op": vector_ops,
                "read.dram": dram_read,
                "write.dram": dram_write,
                "read.scratchpad": sp_read,
                "write.scratchpad": sp_write,
            },
            notes=notes,
        )

    # ---- attention --------------------------------------------------------------------------

    def _attention_cost(self, op: Attention) -> OpCost:
        """Decode or prefill attention under the faster of two mappings onto the arrays.

        * **K/V stationary**: QK^T and PV as batched GEMMs, each request's K and V loaded into
          the arrays as the stationary operand (one row per cycle). Query heads of one GQA
          group share their K/V head, so each (batch, KV head) is one GEMM with
          ``q_len * group`` rows. This suits prefill, where many query rows reuse each K block.
        * **K/V streaming** (:meth:`_kv_streaming_run`): the few query rows of a decode step are
          the stationary operand and K, V stream past them, so one (request, KV head) occupies
          one array and K/V enter at ``arrays x head_dim`` elements per cycle.
        * **Ganged GEMV** (:meth:`_ganged_gemv_run`, opt-in with the machine file's
          ``decode_attention: ganged_gemv``, for reproducing NeuPIMs' baselines): one
          (request, KV head) at a time on all arrays sharing each stationary tile; it replaces
          the two above for decode.

        Scores and probabilities stay on chip (flash-style fusion); Q, K and V are read from
        DRAM and the output written back. A causal mask skips the masked tiles, which the
        lowering models as an average KV length of ``score_pairs / q_len``. The vector unit works
        beside the arrays, so the softmax hides behind the GEMMs unless it is the longer of the
        two.
        """
        group = op.heads_q // op.heads_kv
        rows = op.q_len * group
        kv_eff = max(1, math.ceil(op.score_pairs() / op.q_len))
        elem = _elem_bytes(op.q)
        score_bytes = op.out.dtype.size_bytes
        common = {"m": rows, "batch": op.batch * op.heads_kv, "a_elem_bytes": elem}
        qk = _GemmProblem(
            n=kv_eff,
            k=op.head_dim,
            b_elem_bytes=_elem_bytes(op.k),
            out_elem_bytes=score_bytes,
            out_to_dram=False,
            **common,
        )
        pv = _GemmProblem(
            n=op.head_dim,
            k=kv_eff,
            b_elem_bytes=_elem_bytes(op.v),
            out_elem_bytes=_elem_bytes(op.out),
            a_from_dram=False,
            **common,
        )
        qk_run = self._plan_gemm(qk, op.dtype, None, op.name)
        pv_run = self._plan_gemm(pv, op.dtype, None, op.name)
        runs: tuple[_GemmRun, ...] = (qk_run, pv_run)
        notes = f"kv-stationary qk: {self._describe(qk_run)}; pv: {self._describe(pv_run)}"
        ganged = (
            self._ganged_gemv_run(op, rows, kv_eff)
            if self.config.decode_attention == "ganged_gemv"
            else None
        )
        streamed = None if ganged is not None else self._kv_streaming_run(op, rows, kv_eff)
        if ganged is not None:
            runs = (ganged,)
            dma_share = ganged.stall_cycles / ganged.cycles if ganged.cycles > 0 else 0.0
            notes = (
                f"ganged gemv: one (request, head) at a time on all arrays, "
                f"{ganged.tiles} tiles, dma-bound {dma_share:.0%}"
            )
        elif streamed is not None and streamed.cycles < qk_run.cycles + pv_run.cycles:
            runs = (streamed,)
            t = streamed.tiling
            dma_share = streamed.stall_cycles / streamed.cycles if streamed.cycles > 0 else 0.0
            notes = (
                f"kv-streaming: q stationary, K/V chunks of {t.tile_m} positions, "
                f"{streamed.tiles} tiles, dma-bound {dma_share:.0%}"
            )
        scores = float(op.batch * op.heads_q * op.score_pairs())
        softmax_ops = SOFTMAX_OPS_PER_ELEMENT * scores
        softmax_cycles = softmax_ops / self.config.vector_unit.lanes
        body = max(sum(r.cycles for r in runs), softmax_cycles)
        return self._finish(
            macs=op.flops() / 2.0,
            dtype=op.dtype,
            runs=runs,
            body_cycles=body,
            vector_ops=softmax_ops,
            # the softmax reads fp32 scores and writes probabilities in the op's dtype
            extra_sp=(scores * ACC_ELEM_BYTES, scores * score_bytes),
            compulsory_bytes=op.bytes(),
            notes=notes,
        )

    def _kv_streaming_run(self, op: Attention, rows: int, kv_len: int) -> _GemmRun | None:
        """Attention with the query rows stationary in the arrays and K, V streaming past them.

        Each (request, KV head) pair is one *stream*, run on one array; the arrays take
        ``arrays`` streams at a time (a round). Per stream, in WS terms:

        * QK^T as ``s^T = K q^T``: ``q^T`` (``head_dim x rows``) is the stationary block and K's
          rows enter one per cycle, so a block takes ``max(kv, array rows)`` cycles;
        * PV as ``o^T = V^T P^T``: a ``P^T`` chunk (array-rows positions x ``rows``) is the
          stationary block, loaded from the on-chip scores, and V's ``head_dim`` columns stream
          past it, ``max(head_dim, array rows)`` cycles per chunk.

        The next stream's stationary operand is loaded behind the current stream (double
        buffering), so the arrays' skewed pipeline fills and drains once per run, not per
        stream. K and V are cut along the KV length into chunks that fit the scratchpad with
        two buffers per array (flash-decoding style: partial softmax sums are rescaled on the
        vector unit); every (round, chunk) is one tile of the DMA pipeline.

        Returns ``None`` when the query rows do not fit one array's columns (prefill: the
        K/V-stationary mapping is the natural one there) or no chunk fits the scratchpad.
        """
        if rows > self._cols:
            return None
        macs_per_pe = self._macs_per_pe(op.dtype)
        arr_rows, arrays, d = self._rows, self._arrays, op.head_dim
        q_b, k_b, v_b, o_b = (_elem_bytes(t) for t in (op.q, op.k, op.v, op.out))
        kv_b = k_b + v_b
        capacity = self.config.scratchpad.size_bytes

        def footprint(chunk: int) -> float:
            # per array and buffer: the K and V chunk, q, fp32 scores of the chunk and output
            per_stream = chunk * d * kv_b + rows * d * q_b + rows * (chunk + d) * ACC_ELEM_BYTES
            return 2.0 * arrays * per_stream

        fitting = [
            c for c in power_of_two_candidates(kv_len, arr_rows, 12) if footprint(c) <= capacity
        ]
        if not fitting:
            return None
        chunk = max(fitting)
        streams = op.batch * op.heads_kv
        rounds = math.ceil(streams / arrays)
        per_round = np.full(rounds, float(arrays))
        per_round[-1] = streams - (rounds - 1) * arrays
        chunks = _extents(kv_len, chunk)
        # tiles in round-major order, KV chunks inner
        s = np.repeat(per_round, len(chunks))
        c = np.tile(chunks, rounds)
        first = np.tile(np.arange(len(chunks)) == 0, rounds)
        last = np.tile(np.arange(len(chunks)) == len(chunks) - 1, rounds)
        qk_blocks = math.ceil(d / (arr_rows * macs_per_pe)) * math.ceil(rows / self._cols)
        qk_cycles = qk_blocks * np.maximum(c, arr_rows)
        pv_blocks = _ceil_div(c, arr_rows * macs_per_pe) * math.ceil(rows / self._cols)
        pv_cycles = pv_blocks * max(d, arr_rows)
        # every array runs one stream of the round at once
        array_cycles = qk_cycles + pv_cycles
        operand_reads = s * (c * d * kv_b + rows * d * q_b)
        acc_bytes = s * rows * (c + d) * ACC_ELEM_BYTES
        compute = np.maximum(array_cycles, (operand_reads + acc_bytes) / self._sp_bytes_per_cycle)
        compute[0] += arr_rows + self._cols  # fill and drain, once per run
        load_bytes = s * c * d * kv_b + np.where(first, s * rows * d * q_b, 0.0)
        store_bytes = np.where(last, s * rows * d * o_b, 0.0)
        transfers = np.where(first, 3.0, 2.0)  # K and V, plus q on a stream's first chunk
        load = load_bytes / self._dram_bytes_per_cycle + self._setup_per_tile(transfers)
        store = np.where(last, store_bytes / self._dram_bytes_per_cycle + self._setup_cycles, 0.0)
        dram_read, dram_write = float(load_bytes.sum()), float(store_bytes.sum())
        return _double_buffered_run(
            GemmTiling(int(chunk), rows, d, buffers=2),
            load,
            compute,
            store,
            (dram_read, dram_write),
            (
                float(operand_reads.sum() + acc_bytes.sum()) + dram_write,
                dram_read + float(acc_bytes.sum()),
            ),
        )

    def _ganged_gemv_run(self, op: Attention, rows: int, kv_len: int) -> _GemmRun | None:
        """Decode attention as GEMVs run one (request, KV head) *stream* at a time on all arrays
        ganged on one stationary tile, as NeuPIMs' NPU simulator runs its NPU-only attention.

        There (github.com/casys-kaist/NeuPIMs: src/ModelProgram.cc builds the NPU-only program
        from FusedMHA; src/operations/FusedMHA.cc issues per request and head one GEMM_PRELOAD
        for QK^T with the query as the preloaded operand and the K rows streamed, then one
        GEMM_PRELOAD per 128 score positions for PV with V streamed; the arrays share each
        preloaded tile and split the streamed rows, ``size = rows / 8`` for its 8 arrays, as in
        src/operations/MatMul.cc), and src/NeuPIMSystolicWS.cc starts each preload
        ``core_height`` cycles after the instruction before it. So per stream:

        * QK^T: per stationary ``q^T`` block, ``max(array rows, kv / arrays)`` cycles (the
          block's load, one row per cycle, or K's rows split over the arrays);
        * PV: per chunk of ``array rows`` score positions, ``max(array rows, head_dim /
          arrays)`` cycles.

        With a single query row the arrays cannot split anything but the streamed rows, so the
        stationary loads set the time: one per 128 positions of PV, where K/V streaming gives
        each array its own stream. The repository's PV loop runs ``(kv + 127) / 128`` rounded up
        chunks, one more than the positions need; the chunks the positions need are counted.
        K and V of a few streams rotate through two scratchpad buffers. Returns ``None`` when
        the query rows do not fit one array's columns (prefill) or one stream does not fit.
        """
        if rows > self._cols:
            return None
        macs_per_pe = self._macs_per_pe(op.dtype)
        arr_rows, arrays, d = self._rows, self._arrays, op.head_dim
        q_b, k_b, v_b, o_b = (_elem_bytes(t) for t in (op.q, op.k, op.v, op.out))
        per_stream_bytes = (
            kv_len * d * (k_b + v_b) + rows * d * q_b + rows * (kv_len + d) * ACC_ELEM_BYTES
        )
        group = min(arrays, int(self.config.scratchpad.size_bytes // (2.0 * per_stream_bytes)))
        if group < 1:
            return None
        col_blocks = math.ceil(rows / self._cols)
        qk_blocks = math.ceil(d / (arr_rows * macs_per_pe)) * col_blocks
        pv_blocks = math.ceil(kv_len / (arr_rows * macs_per_pe)) * col_blocks
        stream_cycles = qk_blocks * max(arr_rows, math.ceil(kv_len / arrays)) + pv_blocks * max(
            arr_rows, math.ceil(d / arrays)
        )
        streams = op.batch * op.heads_kv
        s = _extents(streams, group)
        compute = s * float(stream_cycles)
        compute[0] += arr_rows + self._cols  # fill and drain, once per run
        load_bytes = s * (kv_len * d * (k_b + v_b) + rows * d * q_b)
        store_bytes = s * rows * d * o_b
        load = load_bytes / self._dram_bytes_per_cycle + self._setup_per_tile(3.0)
        store = store_bytes / self._dram_bytes_per_cycle + self._setup_cycles
        acc_bytes = s * rows * (kv_len + d) * ACC_ELEM_BYTES
        dram_read, dram_write = float(load_bytes.sum()), float(store_bytes.sum())
        return _double_buffered_run(
            GemmTiling(int(kv_len), rows, d, buffers=2),
            load,
            compute,
            store,
            (dram_read, dram_write),
            (dram_read + float(acc_bytes.sum()) + dram_write, dram_read + float(acc_bytes.sum())),
        )

    # ---- vector unit ------------------------------------------------------------------------

    def _vector_flops_per_s(self) -> float:
        return float(self.config.vector_unit.lanes) * self.clock_hz

    def _vector_cost(self, op: Op) -> OpCost:
        """Stream the op through DRAM -> scratchpad -> vector unit -> scratchpad -> DRAM.

        The data is cut into chunks that rotate through two buffers, so the slower of the vector
        unit (``lanes`` operations per cycle) and the DRAM bandwidth sets the time.
        """
        read_b, write_b, work = op.bytes_read(), op.bytes_written(), op.flops()
        chunk = min(VECTOR_CHUNK_BYTES, self.config.scratchpad.size_bytes / 4)
        chunks = int(min(MAX_VECTOR_CHUNKS, max(1, math.ceil((read_b + write_b) / chunk))))
        bpc = self._dram_bytes_per_cycle
        load = np.full(chunks, read_b / chunks / bpc + self._setup_cycles)
        compute = np.full(chunks, work / chunks / self.config.vector_unit.lanes)
        store = np.full(chunks, write_b / chunks / bpc + (self._setup_cycles if write_b else 0.0))
        total, stall = simulate_tile_pipeline(load, compute, store, 2)
        dram_cycles = (read_b + write_b) / bpc
        cycles = max(float(total), dram_cycles)
        latency_s = cycles / self.clock_hz + self.config.dram.latency_s
        compute_cycles = float(compute.sum())
        if self.config.dram.latency_s > cycles / self.clock_hz:
            bound = Bound.LAUNCH
        elif max(float(load.sum()), dram_cycles) > compute_cycles:
            bound = Bound.MEMORY
        else:
            bound = Bound.COMPUTE
        share = stall / total if total > 0 else 0.0
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=bound,
            # of the vector unit's peak: the arrays take no part in these ops
            utilization=min(1.0, work / (latency_s * self._vector_flops_per_s())),
            bytes_by_level={"dram": read_b + write_b, "scratchpad": 2.0 * (read_b + write_b)},
            actions={
                "vector_op": work,
                "read.dram": read_b,
                "write.dram": write_b,
                "read.scratchpad": read_b + write_b,
                "write.scratchpad": read_b + write_b,
            },
            notes=f"vector unit, {chunks} chunks, dma-bound {share:.0%}",
        )
