"""TPU-like NPU: systolic arrays and a vector unit around a DMA-fed scratchpad.

GEMMs are tiled over the scratchpad; each tile's DMA load, systolic-array compute and store run
through the tile pipeline kernel (``archsim.kernels.tile_pipeline``), so double buffering, pipeline
fill/drain of the arrays and ragged edge tiles all show in the result. Attention is lowered to two
batched GEMMs (QK^T and PV) plus a softmax on the vector unit. Elementwise ops, norms, softmax and
the MoE routing/gather/scatter ops stream through the vector unit; embedding lookups are DMA
gathers.

Sparse operands are handled simply: DMA moves their compressed bytes (values plus metadata), the
arrays do the dense math (no zero skipping), so sparsity saves bandwidth, not compute.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

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
from archsim.ir.tensor import DType, Tensor
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
        return roofline_cost(
            op,
            peak_flops_per_s=peak if peak > 0 else float("inf"),
            bw_bytes_per_s=self.config.dram.bw_bytes_per_s,
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

    def _array_cycles(
        self, tile_m: np.ndarray, tile_n: np.ndarray, tile_k: np.ndarray, macs_per_pe: int
    ) -> np.ndarray:
        """Cycles the arrays need for tiles of the given sizes (elementwise over arrays).

        The tile is cut into blocks the size of one array; blocks are dealt out over the arrays.
        A PE doing several MACs per cycle reduces that many consecutive ``k`` elements at once.

        * WS: a block holds ``rows*macs_per_pe x cols`` weights; ``tile_m`` activation rows stream
          through it, one per cycle. Loading the next block's weights (one row per cycle) is
          double-buffered behind the stream, so a block costs ``max(tile_m, rows)`` cycles.
        * OS: a block holds ``rows x cols`` outputs; ``tile_k / macs_per_pe`` operand steps stream
          through, and draining the outputs (``rows`` cycles) overlaps the next block.

        Since a WS array takes in its stationary operand one row (``cols`` values) per cycle, a
        GEMV can be limited by that rate rather than by DRAM when arrays are few or narrow.
        Blocks left over after the full rounds are shared by all arrays (see below).
        Filling and draining the array's skewed pipeline (``rows + cols`` cycles) is paid once
        per tile, since blocks of one tile follow each other back to back.
        """
        rows, cols = self._rows, self._cols
        if self.config.systolic_array.dataflow == "ws":
            blocks = _ceil_div(tile_k, rows * macs_per_pe) * _ceil_div(tile_n, cols)
            per_block = np.maximum(tile_m, rows)
        else:
            blocks = _ceil_div(tile_m, rows) * _ceil_div(tile_n, cols)
            per_block = np.maximum(_ceil_div(tile_k, macs_per_pe), rows)
        arrays = self._arrays
        full_rounds = np.floor(blocks / arrays)
        leftover = blocks - full_rounds * arrays
        # the last, partial round shares its blocks over all arrays: for WS several arrays hold
        # copies of one weight block and split its rows; for OS they split the reduction and
        # add the partial sums. Each array still pays a full weight load (``rows`` cycles).
        copies = np.floor(arrays / np.maximum(leftover, 1.0))
        if self.config.systolic_array.dataflow == "ws":
            shared = np.maximum(np.ceil(tile_m / copies), rows)
        else:
            shared = np.maximum(np.ceil(_ceil_div(tile_k, macs_per_pe) / copies), rows)
        last_round = np.where(leftover > 0, shared, 0.0)
        return full_rounds * per_block + last_round + (rows + cols)

    def _operand_read_bytes(
        self, tile_m: np.ndarray, tile_n: np.ndarray, tile_k: np.ndarray, p: _GemmProblem
    ) -> np.ndarray:
        """Scratchpad bytes the arrays read for one tile's operands."""
        a_tile = tile_m * tile_k * p.a_elem_bytes
        b_tile = tile_k * tile_n * p.b_elem_bytes
        # the activation tile streams once per column block in both dataflows
        a_reads = a_tile * _ceil_div(tile_n, self._cols)
        # WS loads each weight into an array once per tile; OS streams it once per row block
        ws = self.config.systolic_array.dataflow == "ws"
        b_reads = b_tile if ws else b_tile * _ceil_div(tile_m, self._rows)
        return a_reads + b_reads

    def _tile_compute_cycles(
        self,
        tile_m: np.ndarray,
        tile_n: np.ndarray,
        tile_k: np.ndarray,
        p: _GemmProblem,
        macs_per_pe: int,
    ) -> np.ndarray:
        array = self._array_cycles(tile_m, tile_n, tile_k, macs_per_pe)
        # the scratchpad ports must keep up with the arrays: operands in, the fp32 output tile out
        # (partial sums accumulate beside the arrays within a tile, as in MXU result buffers)
        traffic = self._operand_read_bytes(tile_m, tile_n, tile_k, p)
        traffic = traffic + tile_m * tile_n * ACC_ELEM_BYTES
        return np.maximum(array, traffic / self._sp_bytes_per_cycle)

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

    def _traffic(
        self, p: _GemmProblem, n_m: np.ndarray, n_n: np.ndarray, n_k: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """DRAM bytes read under each loop order (``n_outer``, ``m_outer``).

        Without a split reduction, the outer loop's operand tile stays resident while the inner
        loop runs; otherwise both operands are re-read for every output tile that needs them.
        """
        a_total = p.batch * p.m * p.k * p.a_elem_bytes if p.a_from_dram else 0.0
        b_total = p.batch * p.k * p.n * p.b_elem_bytes
        single_k = n_k == 1
        n_outer = a_total * n_n + b_total * np.where(single_k, 1.0, n_m)
        m_outer = a_total * np.where(single_k, 1.0, n_n) + b_total * n_m
        return n_outer, m_outer

    def _search_tilings(self, p: _GemmProblem, macs_per_pe: int) -> list[GemmTiling]:
        """Best few double-buffered tilings by an analytic estimate (vectorized over candidates).

        Candidates are power-of-two multiples of the array size along each dimension. The
        estimate is the longer of two bounds on the pipeline: the first load then all compute, or
        all DMA then the last compute; plus the last store. Compute sums full and ragged edge
        tiles exactly; DMA setups and edge reuse are approximate, so the best few are replayed
        through the kernel.
        """
        rows, cols = self._rows, self._cols
        ms = power_of_two_candidates(p.m, rows)
        ns = power_of_two_candidates(p.n, cols)
        ks = power_of_two_candidates(p.k, rows * macs_per_pe, steps=9)
        tm, tn, tk = (g.ravel().astype(np.float64) for g in np.meshgrid(ms, ns, ks, indexing="ij"))
        fits = self._footprint(tm, tn, tk, 2, p) <= self.config.scratchpad.size_bytes
        if not fits.any():
            return []
        tm, tn, tk = tm[fits], tn[fits], tk[fits]
        n_m, n_n, n_k = _ceil_div(p.m, tm), _ceil_div(p.n, tn), _ceil_div(p.k, tk)
        tiles = n_m * n_n * n_k * p.batch
        # each dimension has (count - 1) full tiles and one last tile, possibly ragged
        last_m, last_n, last_k = p.m - (n_m - 1) * tm, p.n - (n_n - 1) * tn, p.k - (n_k - 1) * tk
        compute_total = np.zeros_like(tm)
        for size_m, count_m in ((tm, n_m - 1), (last_m, 1.0)):
            for size_n, count_n in ((tn, n_n - 1), (last_n, 1.0)):
                for size_k, count_k in ((tk, n_k - 1), (last_k, 1.0)):
                    per_tile = self._tile_compute_cycles(size_m, size_n, size_k, p, macs_per_pe)
                    compute_total += count_m * count_n * count_k * per_tile
        compute_total *= p.batch
        last_compute = self._tile_compute_cycles(last_m, last_n, last_k, p, macs_per_pe)
        n_outer, m_outer = self._traffic(p, n_m, n_n, n_k)
        out_bytes = p.batch * p.m * p.n * p.out_elem_bytes if p.out_to_dram else 0.0
        dram = np.minimum(n_outer, m_outer) + out_bytes
        dma = dram / self._dram_bytes_per_cycle + tiles * self._setup_per_tile(2)
        a_first = tm * tk * p.a_elem_bytes if p.a_from_dram else 0.0
        first_load = (a_first + tk * tn * p.b_elem_bytes) / self._dram_bytes_per_cycle
        last_store = (
            last_m * last_n * p.out_elem_bytes if p.out_to_dram else 0.0
        ) / self._dram_bytes_per_cycle
        estimate = np.maximum(first_load + compute_total, dma + last_compute) + last_store
        best = np.argsort(estimate, kind="stable")[:REPLAYED_CANDIDATES]
        return [GemmTiling(int(tm[i]), int(tn[i]), int(tk[i]), buffers=2) for i in best]

    def _setup_per_tile(self, transfers: int | np.ndarray) -> np.ndarray:
        """DMA setup cycles for ``transfers`` descriptors; the engines start them in parallel."""
        return np.ceil(np.asarray(transfers, dtype=np.float64) / self.config.dma.engines) * (
            self._setup_cycles
        )

    def _run_tiling(self, p: _GemmProblem, tiling: GemmTiling, macs_per_pe: int) -> _GemmRun:
        """Replay every tile of ``p`` under ``tiling`` through the pipeline kernel."""
        t = tiling.clipped(p.m, p.n, p.k)
        ms, ns, ks = _extents(p.m, t.tile_m), _extents(p.n, t.tile_n), _extents(p.k, t.tile_k)
        n_m, n_n, n_k = len(ms), len(ns), len(ks)
        order = t.loop_order
        if order is None:
            n_outer, m_outer = self._traffic(p, np.array(n_m), np.array(n_n), np.array(n_k))
            order = "n_outer" if float(n_outer) <= float(m_outer) else "m_outer"
        # tile sizes on a (m, n, k) grid, then laid out in loop order with k innermost
        tm = ms[:, None, None] * np.ones((1, n_n, n_k))
        tn = ns[None, :, None] * np.ones((n_m, 1, n_k))
        tk = ks[None, None, :] * np.ones((n_m, n_n, 1))
        k_index = np.broadcast_to(np.arange(n_k)[None, None, :], tm.shape)
        m_index = np.broadcast_to(np.arange(n_m)[:, None, None], tm.shape)
        n_index = np.broadcast_to(np.arange(n_n)[None, :, None], tm.shape)
        axes = (1, 0, 2) if order == "n_outer" else (0, 1, 2)
        tm, tn, tk, k_index, m_index, n_index = (
            np.transpose(x, axes).ravel() for x in (tm, tn, tk, k_index, m_index, n_index)
        )
        single_k = n_k == 1
        load_a = np.full(tm.shape, p.a_from_dram)
        load_b = np.ones(tm.shape, dtype=bool)
        if single_k and order == "n_outer":
            load_b = m_index == 0  # weight tile stays while the m tiles stream past
        elif single_k and order == "m_outer":
            load_a = load_a & (n_index == 0)
        a_bytes = np.where(load_a, tm * tk * p.a_elem_bytes, 0.0)
        b_bytes = np.where(load_b, tk * tn * p.b_elem_bytes, 0.0)
        last_k = k_index == n_k - 1
        out_bytes = np.where(last_k & p.out_to_dram, tm * tn * p.out_elem_bytes, 0.0)
        transfers = load_a.astype(np.float64) + load_b
        load = (a_bytes + b_bytes) / self._dram_bytes_per_cycle + np.where(
            transfers > 0, self._setup_per_tile(transfers), 0.0
        )
        store = np.where(
            out_bytes > 0, out_bytes / self._dram_bytes_per_cycle + self._setup_cycles, 0.0
        )
        compute = self._tile_compute_cycles(tm, tn, tk, p, macs_per_pe)
        if p.batch > 1:
            load, compute, store = (np.tile(x, p.batch) for x in (load, compute, store))
        total, stall = simulate_tile_pipeline(
            np.ascontiguousarray(load),
            np.ascontiguousarray(compute),
            np.ascontiguousarray(store),
            t.buffers,
        )
        dram_read = float(a_bytes.sum() + b_bytes.sum()) * p.batch
        dram_write = float(out_bytes.sum()) * p.batch
        operand_reads = float(self._operand_read_bytes(tm, tn, tk, p).sum()) * p.batch
        # DMA writes what it loads into the scratchpad and reads what it stores; the arrays read
        # operands, write the fp32 output tile of every k tile and read it back on the next one
        acc_bytes = tm * tn * ACC_ELEM_BYTES
        acc_write = float(acc_bytes.sum()) * p.batch
        acc_read = float(acc_bytes[k_index > 0].sum()) * p.batch
        return _GemmRun(
            tiling=GemmTiling(t.tile_m, t.tile_n, t.tile_k, t.buffers, order),
            tiles=len(load),
            cycles=float(total),
            stall_cycles=float(stall),
            compute_cycles=float(compute.sum()),
            load_cycles=float(load.sum()),
            store_cycles=float(store.sum()),
            dram_read_bytes=dram_read,
            dram_write_bytes=dram_write,
            sp_read_bytes=operand_reads + acc_read + dram_write,
            sp_write_bytes=dram_read + acc_write,
        )

    def _plan_gemm(
        self, p: _GemmProblem, dtype: DType, tiling: GemmTiling | None, op_name: str
    ) -> _GemmRun:
        macs_per_pe = self._macs_per_pe(dtype)
        capacity = self.config.scratchpad.size_bytes
        if tiling is not None:
            t = tiling.clipped(p.m, p.n, p.k)
            need = self._footprint(t.tile_m, t.tile_n, t.tile_k, t.buffers, p)
            if need > capacity:
                raise InfeasibleError(
                    f"{self.name}: tiling {tiling.describe()} of gemm '{op_name}' needs "
                    f"{need / 2**20:.2f} MiB of scratchpad with {t.buffers} buffer(s), more than "
                    f"the {capacity / 2**20:.2f} MiB available; use smaller tiles or one buffer"
                )
            return self._run_tiling(p, t, macs_per_pe)
        candidates = self._search_tilings(p, macs_per_pe)
        if not candidates:
            smallest = self._footprint(1, min(p.n, self._cols), min(p.k, self._rows), 2, p)
            raise InfeasibleError(
                f"{self.name}: scratchpad {capacity / 2**20:.2f} MiB cannot hold even the "
                f"smallest double-buffered tile of gemm '{op_name}' ({smallest / 2**20:.2f} MiB)"
            )
        runs = [self._run_tiling(p, t, macs_per_pe) for t in candidates]
        return min(runs, key=lambda r: r.cycles)

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
            notes=self._describe(run),
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
        streamed = self._kv_streaming_run(op, rows, kv_eff)
        if streamed is not None and streamed.cycles < qk_run.cycles + pv_run.cycles:
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
        total, stall = simulate_tile_pipeline(
            np.ascontiguousarray(load),
            np.ascontiguousarray(compute),
            np.ascontiguousarray(store),
            2,
        )
        dram_read, dram_write = float(load_bytes.sum()), float(store_bytes.sum())
        return _GemmRun(
            tiling=GemmTiling(int(chunk), rows, d, buffers=2),
            tiles=len(load),
            cycles=float(total),
            stall_cycles=float(stall),
            compute_cycles=float(compute.sum()),
            load_cycles=float(load.sum()),
            store_cycles=float(store.sum()),
            dram_read_bytes=dram_read,
            dram_write_bytes=dram_write,
            sp_read_bytes=float(operand_reads.sum() + acc_bytes.sum()) + dram_write,
            sp_write_bytes=dram_read + float(acc_bytes.sum()),
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
