"""Loop tiling and dataflow search for GEMMs and convolutions on scratchpad accelerators.

The search proposes, a cost function evaluates (the house rule): this module enumerates mappings
and keeps the best under the analytical model of :mod:`archsim.kernels.tiling_eval`; the device
model then costs the returned :class:`~archsim.hw.tiling.GemmTiling` with its own ``cost``.

The space of one GEMM (``batch`` independent ``m x n x k`` products; a convolution enters as its
im2col GEMM, :meth:`Conv2d.as_gemm`):

* tile sizes aligned to the compute geometry: every multiple of the array's rows along ``m``,
  of its columns along ``n`` and of ``rows x macs_per_pe`` along ``k``, plus the whole extent;
  where a dimension allows more than ``max_sizes_per_dim`` such sizes, only the smallest size
  of each tile count is kept (larger ones with the same count only add footprint);
* both loop orders over the output tiles (``n_outer``, ``m_outer``);
* the dataflows ``ws``, ``os`` and ``is``;
* one or two buffers per tile.

Pruning: a candidate whose buffered footprint exceeds the scratchpad is dropped; the rest go to
one Numba call that bounds each in closed form and replays the tile pipeline only of those
whose bound beats the best replay of their dataflow so far (branch and bound, in ascending
bound). The bound is a true bound of the replay, so pruning never loses the model's optimum
(tests check this against brute force over the unpruned space).

Devices: an NPU runs only the dataflow of its machine file, so the returned mapping is the best
of that dataflow; the other dataflows (``is`` is not modelled by the NPU at all) are reported
from the kernel only, in ``by_dataflow``. The FPGA's DSP chains hold weight columns (``ws``),
rows = chain length, columns = chains; the FPGA model costs GEMMs without a tiling, so its
search result is the kernel's prediction only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from archsim.errors import ArchsimError
from archsim.hw.tiling import GemmTiling, scratchpad_footprint_bytes
from archsim.ir.ops import Conv2d, Gemm, Op
from archsim.kernels import tiling_eval as kernel

# Partial sums are held at fp32 width across the k loop (as the NPU model does).
ACC_ELEM_BYTES = 4.0
MAX_SIZES_PER_DIM = 48


@dataclass(frozen=True)
class TilingTarget:
    """The compute and memory geometry a tiling is searched for.

    Attributes
    ----------
    device:
        Device name, for messages.
    rows, cols:
        PEs of one array along the stationary operand's two dimensions.
    arrays:
        Arrays working in parallel.
    macs_per_pe:
        MACs one PE does per cycle along ``k`` (dtype packing).
    fill_drain_cycles:
        Cycles one tile pays to fill and drain the arrays' pipeline.
    capacity_bytes:
        Scratchpad (on-chip memory) bytes available to the tiles.
    dram_bytes_per_cycle:
        Sustained DRAM bytes per device cycle.
    sp_bytes_per_cycle:
        Scratchpad port bytes per device cycle.
    setup_cycles:
        Cycles to issue one DMA transfer.
    dma_engines:
        DMA engines issuing transfers in parallel.
    device_dataflows:
        Dataflows the device model itself runs (the returned mapping uses one of them).
    """

    device: str
    rows: int
    cols: int
    arrays: int
    macs_per_pe: int
    fill_drain_cycles: float
    capacity_bytes: float
    dram_bytes_per_cycle: float
    sp_bytes_per_cycle: float
    setup_cycles: float
    dma_engines: int
    device_dataflows: tuple[str, ...]


@dataclass(frozen=True)
class GemmShape:
    """A GEMM as the search sees it: ``batch`` products of ``m x n x k`` with element bytes."""

    name: str
    m: int
    n: int
    k: int
    batch: int
    a_elem_bytes: float
    b_elem_bytes: float
    out_elem_bytes: float


@dataclass(frozen=True)
class DataflowBest:
    """Best candidate of one dataflow.

    Attributes
    ----------
    dataflow:
        ``ws``, ``os`` or ``is``.
    mapping:
        Its tiling (sizes clipped to the GEMM, loop order and buffers set).
    cycles:
        Predicted cycles (kernel model).
    dram_bytes:
        Predicted DRAM bytes read and written.
    runs_on_device:
        True when the device model runs this dataflow, so ``mapping`` can be costed by it.
    """

    dataflow: str
    mapping: GemmTiling
    cycles: float
    dram_bytes: float
    runs_on_device: bool


@dataclass(frozen=True)
class TilingSearchResult:
    """The best mapping and how the search got there.

    Attributes
    ----------
    op:
        Op name.
    mapping:
        Best tiling among the dataflows the device runs; pass it to the device's ``cost``.
    dataflow:
        Dataflow of ``mapping``.
    predicted_cycles:
        Cycles of ``mapping`` under the search's model.
    by_dataflow:
        Best of each searched dataflow, including ones the device does not run.
    candidates_total:
        Size of the enumerated space.
    candidates_feasible:
        Candidates whose buffered footprint fits the scratchpad.
    candidates_evaluated:
        Candidates the kernel evaluated: every feasible one gets its closed-form bound.
    candidates_replayed:
        Candidates whose bound survived the branch and bound and were replayed tile by tile.
    search_time_s:
        Wall time of enumeration, bounds and evaluation, in seconds.
    """

    op: str
    mapping: GemmTiling
    dataflow: str
    predicted_cycles: float
    by_dataflow: tuple[DataflowBest, ...]
    candidates_total: int
    candidates_feasible: int
    candidates_evaluated: int
    candidates_replayed: int
    search_time_s: float

    @property
    def candidates_per_s(self) -> float:
        """Candidates evaluated per second of search wall time."""
        return self.candidates_evaluated / self.search_time_s if self.search_time_s > 0 else 0.0


@dataclass(frozen=True)
class Candidates:
    """Parallel arrays of candidates (the kernel's input layout)."""

    tile_m: np.ndarray
    tile_n: np.ndarray
    tile_k: np.ndarray
    loop_order: np.ndarray
    dataflow: np.ndarray
    buffers: np.ndarray

    def __len__(self) -> int:
        return int(self.tile_m.shape[0])

    def subset(self, index: np.ndarray) -> Candidates:
        return Candidates(
            *(np.ascontiguousarray(getattr(self, f)[index]) for f in self.__dataclass_fields__)
        )

    def mapping(self, i: int, shape: GemmShape) -> GemmTiling:
        """Candidate ``i`` as the tiling object device models accept."""
        return GemmTiling(
            tile_m=min(int(self.tile_m[i]), shape.m),
            tile_n=min(int(self.tile_n[i]), shape.n),
            tile_k=min(int(self.tile_k[i]), shape.k),
            buffers=int(self.buffers[i]),
            loop_order=kernel.LOOP_ORDERS[int(self.loop_order[i])],  # type: ignore[arg-type]
        )


# ---- targets, by device kind ------------------------------------------------------------------

TargetFactory = Callable[[object, GemmShape, Op], TilingTarget]
_TARGETS: dict[str, TargetFactory] = {}


def register_tiling_target(kind: str) -> Callable[[TargetFactory], TargetFactory]:
    """Register how a device family's geometry becomes a :class:`TilingTarget`."""

    def decorate(factory: TargetFactory) -> TargetFactory:
        if kind in _TARGETS:
            raise ValueError(f"tiling target '{kind}' registered twice")
        _TARGETS[kind] = factory
        return factory

    return decorate


@register_tiling_target("npu")
def _npu_target(device: object, shape: GemmShape, op: Op) -> TilingTarget:
    config = device.config  # type: ignore[attr-defined]
    array = config.systolic_array
    clock = config.clock_hz
    return TilingTarget(
        device=config.name,
        rows=array.rows,
        cols=array.cols,
        arrays=array.count,
        macs_per_pe=config.macs_per_pe_per_cycle[op.dtype],
        # the skewed systolic pipeline: rows + cols cycles to fill and drain (as the NPU model)
        fill_drain_cycles=float(array.rows + array.cols),
        capacity_bytes=config.scratchpad.size_bytes,
        dram_bytes_per_cycle=config.dram.bw_bytes_per_s / clock,
        sp_bytes_per_cycle=config.scratchpad.bw_bytes_per_s / clock,
        setup_cycles=config.dma.setup_s * clock,
        dma_engines=config.dma.engines,
        device_dataflows=(array.dataflow,),
    )


@register_tiling_target("fpga")
def _fpga_target(device: object, shape: GemmShape, op: Op) -> TilingTarget:
    config = device.config  # type: ignore[attr-defined]
    chain = config.dsp_chain
    length = chain.length if chain else 1
    clock = config.clock_hz
    # mixed precision packs MACs by the weight's width, as the FPGA model does
    dtype = op.b.dtype if isinstance(op, Gemm) and op.b.is_weight else op.dtype
    return TilingTarget(
        device=config.name,
        rows=length,
        cols=max(config.dsp_count // length, 1),
        arrays=1,
        macs_per_pe=config.macs_per_dsp_per_cycle[dtype],
        fill_drain_cycles=float(chain.pipeline_cycles if chain else 0),
        capacity_bytes=config.onchip.size_bytes,
        dram_bytes_per_cycle=config.dram.bw_bytes_per_s * config.dram_efficiency / clock,
        sp_bytes_per_cycle=config.onchip.bw_bytes_per_s / clock,
        # each transfer waits out one DRAM access latency before data streams
        setup_cycles=config.dram.latency_s * clock,
        dma_engines=1,
        device_dataflows=("ws",),
    )


def tiling_target(device: object, shape: GemmShape, op: Op) -> TilingTarget:
    """The geometry of ``device`` for ``op``, by the device's ``kind``.

    Raises
    ------
    ArchsimError
        When the device family has no scratchpad tiling to search.
    """
    kind = getattr(device, "kind", "?")
    if kind not in _TARGETS:
        raise ArchsimError(
            f"tiling search has no model of '{kind}' devices "
            f"(available: {', '.join(sorted(_TARGETS))})"
        )
    return _TARGETS[kind](device, shape, op)


# ---- the space ----------------------------------------------------------------------------------


def gemm_shape(op: Op) -> GemmShape:
    """The GEMM of ``op`` as the arrays see it.

    A convolution is its im2col GEMM. A weight shared across the batch makes the batch one
    taller GEMM (the NPU model's rule); otherwise the batch stays as independent products.

    Raises
    ------
    ArchsimError
        When ``op`` is neither a GEMM nor a convolution.
    """
    gemm = op.as_gemm() if isinstance(op, Conv2d) else op
    if not isinstance(gemm, Gemm):
        raise ArchsimError(
            f"tiling search handles gemm and conv2d ops, not {op.kind} ('{op.name}')"
        )
    shared = gemm.b.is_weight or gemm.batch == 1
    return GemmShape(
        name=op.name,
        m=gemm.m * gemm.batch if shared else gemm.m,
        n=gemm.n,
        k=gemm.k,
        batch=1 if shared else gemm.batch,
        a_elem_bytes=gemm.a.stored_bytes / gemm.a.numel,
        b_elem_bytes=gemm.b.stored_bytes / gemm.b.numel,
        out_elem_bytes=gemm.out.stored_bytes / gemm.out.numel,
    )


def aligned_sizes(extent: int, base: int, max_sizes: int = MAX_SIZES_PER_DIM) -> list[int]:
    """Tile sizes along one dimension: multiples of ``base`` below ``extent``, and ``extent``.

    With more than ``max_sizes`` of them, only the smallest size of each tile count is kept.
    """
    sizes = [*range(base, extent, base), extent]
    if len(sizes) <= max_sizes:
        return sizes
    by_count: dict[int, int] = {}
    for size in sizes:
        by_count.setdefault(math.ceil(extent / size), size)
    return sorted(by_count.values())


def enumerate_candidates(
    shape: GemmShape,
    target: TilingTarget,
    dataflows: tuple[str, ...] = kernel.DATAFLOWS,
    buffer_counts: tuple[int, ...] = (1, 2),
    max_sizes_per_dim: int = MAX_SIZES_PER_DIM,
) -> Candidates:
    """Every combination of aligned tile sizes, loop order, dataflow and buffer count."""
    ms = aligned_sizes(shape.m, target.rows, max_sizes_per_dim)
    ns = aligned_sizes(shape.n, target.cols, max_sizes_per_dim)
    ks = aligned_sizes(shape.k, target.rows * target.macs_per_pe, max_sizes_per_dim)
    flows = [kernel.DATAFLOWS.index(f) for f in dataflows]
    grid = np.meshgrid(ms, ns, ks, [0, 1], flows, list(buffer_counts), indexing="ij")
    tm, tn, tk, order, flow, buffers = (g.ravel() for g in grid)
    return Candidates(
        tile_m=tm.astype(np.float64),
        tile_n=tn.astype(np.float64),
        tile_k=tk.astype(np.float64),
        loop_order=order.astype(np.int64),
        dataflow=flow.astype(np.int64),
        buffers=buffers.astype(np.int64),
    )


def model_params(shape: GemmShape, target: TilingTarget) -> np.ndarray:
    """The kernel's parameter vector for ``shape`` on ``target``."""
    p = np.zeros(kernel.N_PARAMS)
    p[kernel.P_M], p[kernel.P_N], p[kernel.P_K], p[kernel.P_BATCH] = (
        shape.m,
        shape.n,
        shape.k,
        shape.batch,
    )
    p[kernel.P_A_BYTES] = shape.a_elem_bytes
    p[kernel.P_B_BYTES] = shape.b_elem_bytes
    p[kernel.P_OUT_BYTES] = shape.out_elem_bytes
    p[kernel.P_ACC_BYTES] = ACC_ELEM_BYTES
    p[kernel.P_ROWS] = target.rows
    p[kernel.P_COLS] = target.cols
    p[kernel.P_ARRAYS] = target.arrays
    p[kernel.P_MACS_PER_PE] = target.macs_per_pe
    p[kernel.P_FILL_DRAIN_CYCLES] = target.fill_drain_cycles
    p[kernel.P_DRAM_BYTES_PER_CYCLE] = target.dram_bytes_per_cycle
    p[kernel.P_SP_BYTES_PER_CYCLE] = target.sp_bytes_per_cycle
    p[kernel.P_SETUP_CYCLES] = target.setup_cycles
    p[kernel.P_DMA_ENGINES] = target.dma_engines
    return p


def footprint_bytes(candidates: Candidates, shape: GemmShape) -> np.ndarray:
    """Scratchpad bytes of each candidate with its buffers (tiles clipped to the GEMM)."""
    return np.asarray(
        scratchpad_footprint_bytes(
            np.minimum(candidates.tile_m, shape.m),
            np.minimum(candidates.tile_n, shape.n),
            np.minimum(candidates.tile_k, shape.k),
            candidates.buffers.astype(np.float64),
            shape.a_elem_bytes,
            shape.b_elem_bytes,
            ACC_ELEM_BYTES,
        )
    )


# ---- the search ---------------------------------------------------------------------------------


def search_tiling(
    op: Op,
    device: object,
    *,
    dataflows: tuple[str, ...] = kernel.DATAFLOWS,
    prune: bool = True,
    max_sizes_per_dim: int = MAX_SIZES_PER_DIM,
) -> TilingSearchResult:
    """Best tiling, loop order and dataflow of a GEMM or convolution on ``device``.

    Parameters
    ----------
    op:
        A ``Gemm`` or ``Conv2d``.
    device:
        A device model with a registered tiling target (``npu``, ``fpga``).
    dataflows:
        Dataflows to search; must include one the device runs.
    prune:
        Branch and bound on the lower bound (False evaluates every feasible candidate).
    max_sizes_per_dim:
        Most tile sizes per dimension before sizes of equal tile count are merged.

    Raises
    ------
    ArchsimError
        For an unsupported op or device, a dataflow list without one the device runs, or a
        scratchpad too small for any candidate.
    """
    started = time.perf_counter()
    shape = gemm_shape(op)
    target = tiling_target(device, shape, op)
    return search_shape(
        shape,
        target,
        dataflows=dataflows,
        prune=prune,
        max_sizes_per_dim=max_sizes_per_dim,
        started=started,
    )


def search_shape(
    shape: GemmShape,
    target: TilingTarget,
    *,
    dataflows: tuple[str, ...] = kernel.DATAFLOWS,
    prune: bool = True,
    max_sizes_per_dim: int = MAX_SIZES_PER_DIM,
    started: float | None = None,
) -> TilingSearchResult:
    """:func:`search_tiling` for a GEMM shape on an explicit target (same parameters)."""
    started = time.perf_counter() if started is None else started
    unknown = [f for f in dataflows if f not in kernel.DATAFLOWS]
    if unknown:
        raise ArchsimError(
            f"unknown dataflow {unknown[0]!r} (available: {', '.join(kernel.DATAFLOWS)})"
        )
    runnable = [f for f in dataflows if f in target.device_dataflows]
    if not runnable:
        raise ArchsimError(
            f"{target.device} runs dataflow {', '.join(target.device_dataflows)}; "
            f"the search was given only {', '.join(dataflows)}"
        )
    space = enumerate_candidates(shape, target, dataflows, max_sizes_per_dim=max_sizes_per_dim)
    fits = footprint_bytes(space, shape) <= target.capacity_bytes
    if not fits.any():
        raise ArchsimError(
            f"{target.device}: {target.capacity_bytes / 2**20:.2f} MiB of scratchpad holds no "
            f"aligned tile of '{shape.name}' ({shape.m}x{shape.n}x{shape.k})"
        )
    feasible = space.subset(np.flatnonzero(fits))
    params = model_params(shape, target)
    cycles, _, dram, replayed = kernel.evaluate_tilings(
        feasible.tile_m,
        feasible.tile_n,
        feasible.tile_k,
        feasible.loop_order,
        feasible.dataflow,
        feasible.buffers,
        params,
        prune,
    )
    bests: list[DataflowBest] = []
    for flow in dataflows:
        mine = np.flatnonzero(feasible.dataflow == kernel.DATAFLOWS.index(flow))
        if not len(mine):
            continue
        i = int(mine[np.argmin(cycles[mine])])
        bests.append(
            DataflowBest(
                dataflow=flow,
                mapping=feasible.mapping(i, shape),
                cycles=float(cycles[i]),
                dram_bytes=float(dram[i]),
                runs_on_device=flow in target.device_dataflows,
            )
        )
    chosen = min((b for b in bests if b.runs_on_device), key=lambda b: b.cycles)
    return TilingSearchResult(
        op=shape.name,
        mapping=chosen.mapping,
        dataflow=chosen.dataflow,
        predicted_cycles=chosen.cycles,
        by_dataflow=tuple(bests),
        candidates_total=len(space),
        candidates_feasible=len(feasible),
        candidates_evaluated=len(feasible),
        candidates_replayed=int(replayed),
        search_time_s=time.perf_counter() - started,
    )
