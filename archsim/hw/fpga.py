"""FPGA overlay accelerator: cascaded DSP chains, sparse multiplexers, on-chip activations, HBM.

Effects modelled, in order of the fidelity ladder:

* roofline: DSP slices x MACs per slice per cycle (dtype packing) x clock against DRAM bandwidth;
* tiling: output columns are dealt to ``dsp_count // chain.length`` chains in rounds, activation
  rows go through in groups of the packing factor (a GEMV leaves packed lanes idle);
* sparse DSP chains: a chain of ``L`` slices with ``M``-input multiplexers runs an N:M weight in
  ``L // N`` segments, each covering M reduction elements per cycle (FlightLLM §4.1); block
  sparsity skips whole chain passes; unsupported patterns are decompressed and run dense;
* number formats: each has a MAC rate per DSP; bf16 without its own entry runs on the fp16 (or
  fp32) unit, whose multiplier takes its narrower significand;
* memory placement: weights (and attention's KV cache) stream from DRAM at a sustained share of
  its peak, an embedding gathers only its tokens' table rows; with ``activations_on_chip``
  (always-on-chip decode) the activations of ops that fit stay in BRAM/URAM, otherwise each
  activation crosses DRAM and pays its latency on the critical path because the next op needs it;
* control: each op issues instructions (``instruction`` block). With a ``matrix`` block a matrix
  op issues the loads, matrix instructions and stores its shape needs under the overlay compiler's
  tiling (:func:`matrix_instruction_mix`), and issue overlaps execution (decoupled LD/MV/ST queues)
  so an op takes the longer of the two; without one, ``per_op`` instructions are issued serially.

The per-mask counterpart of the density formulas is :func:`archsim.kernels.sparse_chain.dsp_chain_work`;
tests check that the two agree on N:M masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from archsim.config.machine import DspChainConfig, FpgaConfig, MatrixInstructionConfig
from archsim.energy.pricing import mac_prices_j, memory_prices_j
from archsim.hw.base import Bound, OpCost, register_device
from archsim.ir.ops import Attention, Embedding, Gemm, Op
from archsim.ir.tensor import NM, Block, DType, Sparsity, Tensor


@dataclass(frozen=True)
class ChainSchedule:
    """How one weight column runs on a DSP chain.

    Attributes
    ----------
    cycles_per_column:
        Chain cycles to reduce one activation row against one output column.
    window:
        Reduction elements one segment's multiplexers select from (1: dense datapath).
    segment:
        DSP slices per segment.
    kept_fraction:
        Share of the column's weights multiplied (1 for dense or decompressed runs).
    mode:
        ``dense``, ``nm`` (sparse datapath), ``block`` (pass skipping) or ``decompressed``.
    """

    cycles_per_column: float
    window: int
    segment: int
    kept_fraction: float
    mode: str


@dataclass(frozen=True)
class InstructionMix:
    """Instructions of one op by kind (``other``: ops the matrix rule does not cover)."""

    loads: int = 0
    computes: int = 0
    stores: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.loads + self.computes + self.stores + self.other

    def __add__(self, other: InstructionMix) -> InstructionMix:
        return InstructionMix(
            self.loads + other.loads,
            self.computes + other.computes,
            self.stores + other.stores,
            self.other + other.other,
        )

    def scaled(self, times: int) -> InstructionMix:
        return InstructionMix(
            self.loads * times, self.computes * times, self.stores * times, self.other * times
        )


def _k_chunks(k_blocks: int, block_bytes: float, buffer_bytes: float) -> int:
    # the compiler cuts K so that two chunks fit the buffer (double buffering), then tiles
    # K in chunks of k_blocks // split blocks; the last chunk may be a short remainder
    split = max(1, math.ceil(k_blocks * block_bytes / (buffer_bytes / 2)))
    per_chunk = max(1, k_blocks // split)
    return math.ceil(k_blocks / per_chunk)


def matrix_instruction_mix(
    m: int,
    n: int,
    k: int,
    weight_element_bytes: float,
    sparse: bool,
    rule: MatrixInstructionConfig,
    heads: int = 1,
) -> InstructionMix:
    """Instructions the overlay compiler issues for one ``m x k`` by ``k x n`` product.

    One row (matrix-vector): one input load, then per group of ``mv_outputs_per_group`` outputs
    and per K chunk one weight load per HBM channel (plus an index and a mask load per channel
    for sparse weights) and one MV, then one store. Several rows (matrix-matrix): per tile of
    ``mm_rows_per_tile`` rows one activation load per ``block`` rows; per ``block`` outputs and K
    chunk one weight load (plus two for sparse weights) and one MM; per ``block`` outputs one
    store per ``block`` rows of the tile. ``heads`` independent products of one shape (attention
    heads) share the matrix-vector input load and output store and repeat the rest.
    """
    b = rule.block
    k_blocks = math.ceil(k / b)
    n_blocks = math.ceil(n / b)
    sparse_loads = 2 if sparse else 0
    if m == 1:
        group_blocks = rule.mv_outputs_per_group // b
        groups = math.ceil(n_blocks / group_blocks)
        # one channel's share of a group: group_outputs / channels columns of one block of K
        per_channel_outputs = rule.mv_outputs_per_group / rule.weight_load_channels
        chunks = _k_chunks(
            k_blocks, b * per_channel_outputs * weight_element_bytes, rule.mv_weight_buffer_bytes
        )
        channels = min(rule.weight_load_channels, n_blocks)
        per_chunk_loads = channels * (1 + sparse_loads)
        return InstructionMix(
            loads=1 + heads * groups * chunks * per_chunk_loads,
            computes=heads * groups * chunks,
            stores=1,
        )
    row_blocks = math.ceil(m / b)
    tiles = math.ceil(m / rule.mm_rows_per_tile)
    chunks = _k_chunks(k_blocks, b * b * weight_element_bytes, rule.mm_weight_buffer_bytes)
    return InstructionMix(
        loads=row_blocks + tiles * n_blocks * chunks * (1 + sparse_loads),
        computes=tiles * n_blocks * chunks,
        stores=row_blocks * n_blocks,
    ).scaled(heads)


def chain_schedule(k: int, sparsity: Sparsity, chain: DspChainConfig | None) -> ChainSchedule:
    """Cycles of one column of a ``k``-long weight under ``sparsity`` on one chain.

    Parameters
    ----------
    k:
        Reduction length (elements).
    sparsity:
        Sparsity of the weight along ``k``.
    chain:
        The chain configuration; ``None`` means independent slices (chains of one).

    Returns
    -------
    ChainSchedule
        Equal to the mean per-column cycles of ``dsp_chain_work`` on a mask of this pattern.
    """
    length = chain.length if chain else 1
    mux = chain.mux_inputs if chain else 1
    dense_cycles = float(math.ceil(k / length))
    if isinstance(sparsity, NM) and 1 < sparsity.m <= mux and sparsity.n < sparsity.m:
        segments = length // sparsity.n
        if segments >= 1:
            windows = math.ceil(k / sparsity.m)
            return ChainSchedule(
                float(math.ceil(windows / segments)),
                sparsity.m,
                sparsity.n,
                sparsity.density,
                "nm",
            )
    if isinstance(sparsity, Block) and sparsity.density < 1.0:
        # a pass covers `length` consecutive reduction rows; it is skipped when every block it
        # touches is dropped (blocks are kept independently with probability `density`)
        blocks_per_pass = max(1, math.ceil(length / sparsity.height))
        busy = 1.0 - (1.0 - sparsity.density) ** blocks_per_pass
        return ChainSchedule(dense_cycles * busy, 1, 1, sparsity.density, "block")
    mode = "dense" if sparsity.density >= 1.0 else "decompressed"
    return ChainSchedule(dense_cycles, 1, 1, 1.0, mode)


def _gemm_dram_tensors(op: Gemm) -> tuple[Tensor, ...]:
    return tuple(t for t in op.inputs() if t.is_weight)


def _attention_dram_tensors(op: Attention) -> tuple[Tensor, ...]:
    # the KV cache lives in DRAM across steps whatever the activation policy
    return (op.k, op.v)


def _embedding_dram_tensors(op: Embedding) -> tuple[Tensor, ...]:
    # the table stays in HBM; a lookup gathers only the rows of this step's tokens, so the
    # traffic is those rows (one table row per token), not the table
    d_model = op.table.shape[1]
    rows = Tensor(f"{op.table.name}.gathered", (op.rows, d_model), op.table.dtype, is_weight=True)
    return (rows,)


# Tensors of an op that move between DRAM and the chip however activations are placed, by op
# kind; weights of other kinds stream whole.
_RESIDENT_IN_DRAM: dict[str, Callable[..., tuple[Tensor, ...]]] = {
    "gemm": _gemm_dram_tensors,
    "attention": _attention_dram_tensors,
    "embedding": _embedding_dram_tensors,
}

# A float format the overlay has no unit for runs on a configured float unit of another format:
# bf16's 8-bit significand fits the DSP48E2 27x18 multiplier an fp16 unit feeds its 11-bit one
# (Xilinx UG579), and its 3 extra exponent bits widen the LUT exponent adder beside the DSP, so a
# bf16 MAC takes the DSP cycles of an fp16 (or fp32) MAC. Tried in order.
_FLOAT_CARRIERS: dict[DType, tuple[DType, ...]] = {DType.BF16: (DType.FP16, DType.FP32)}


def _weights_only(op: Op) -> tuple[Tensor, ...]:
    return tuple(t for t in op.inputs() if t.is_weight)


@register_device("fpga")
class FpgaDevice:
    """DSP-chain overlay accelerator on an FPGA (FlightLLM- and SAT-style).

    Parameters
    ----------
    config:
        The validated FPGA section of a machine file.
    """

    kind = "fpga"
    fidelity = ("roofline", "tiling", "sparse_dsp_chain", "memory_placement", "instruction_issue")

    def __init__(self, config: FpgaConfig):
        self.config = config
        self.name = config.name
        length = config.dsp_chain.length if config.dsp_chain else 1
        self.chain_length = length
        self.chains = max(config.dsp_count // length, 1)

    # ---- Protocol: description ----------------------------------------------------------

    @property
    def clock_hz(self) -> float:
        return self.config.clock_hz

    def supports(self, op: Op) -> bool:
        # every op kind runs on the overlay (matrix ops on the DSP chains, norms, softmax,
        # elementwise, routing and gathers on the vector path); the number format decides
        return self._mac_dtype(op) in self.config.macs_per_dsp_per_cycle

    def datapath_dtype(self, dtype: DType) -> DType:
        """The configured MAC format that executes ``dtype`` (itself when configured)."""
        table = self.config.macs_per_dsp_per_cycle
        if dtype in table:
            return dtype
        return next((c for c in _FLOAT_CARRIERS.get(dtype, ()) if c in table), dtype)

    def peak_flops_per_s(self, dtype: DType) -> float:
        per_dsp = self.config.macs_per_dsp_per_cycle.get(self.datapath_dtype(dtype), 0)
        return 2.0 * self.config.dsp_count * per_dsp * self.clock_hz

    def peak_bw_bytes_per_s(self) -> float:
        return self.config.dram.bw_bytes_per_s

    def energy_per_action_j(self) -> Mapping[str, float]:
        dram, onchip = self.config.dram, self.config.onchip
        return {
            **mac_prices_j(self.config.mac_energy_j),
            **memory_prices_j("dram", dram.read_energy_per_byte_j, dram.write_energy_per_byte_j),
            **memory_prices_j(
                "onchip", onchip.read_energy_per_byte_j, onchip.write_energy_per_byte_j
            ),
            "vector_op": self.config.vector_op_energy_j,
        }

    def area_mm2(self) -> float:
        return self.config.area_mm2

    def static_power_w(self) -> float:
        return self.config.static_power_w

    def memory_capacity_bytes(self) -> float:
        return self.config.dram.size_bytes

    # ---- placement ----------------------------------------------------------------------

    def _mac_dtype(self, op: Op) -> DType:
        # mixed precision: a GEMM with low-bit weights packs MACs by the weight's width
        # (activations are widened in the DSP pre-adder path), so the weight dtype sets the rate
        if isinstance(op, Gemm) and op.b.is_weight:
            return self.datapath_dtype(op.b.dtype)
        return self.datapath_dtype(op.dtype)

    def split_traffic(self, op: Op) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(DRAM inputs, on-chip inputs, DRAM outputs) under the activation placement policy.

        Activations stay on chip when ``activations_on_chip`` is set and the op's activations fit
        in half the on-chip RAM (the other half double-buffers the weight stream).
        """
        resident = _RESIDENT_IN_DRAM.get(op.kind, _weights_only)(op)
        resident_ids = {id(t) for t in resident}
        # weights an op reads only in part (the embedding table) are covered by `resident`
        activations = [t for t in op.inputs() if not t.is_weight and id(t) not in resident_ids]
        act_bytes = sum(t.stored_bytes for t in activations) + op.bytes_written()
        on_chip = self.config.activations_on_chip and act_bytes <= self.config.onchip.size_bytes / 2
        dram_in = list(resident) + ([] if on_chip else activations)
        chip_in = activations if on_chip else []
        dram_out = [] if on_chip else list(op.outputs())
        return dram_in, chip_in, dram_out

    # ---- Protocol: costs ----------------------------------------------------------------

    def roofline(self, op: Op) -> OpCost:
        dram_in, chip_in, dram_out = self.split_traffic(op)
        dram_bytes = sum(t.stored_bytes for t in dram_in + dram_out)
        chip_bytes = sum(t.stored_bytes for t in chip_in) + (
            0.0 if dram_out else op.bytes_written()
        )
        peak = self.peak_flops_per_s(self._mac_dtype(op))
        compute_s = op.effective_flops() / peak if isinstance(op, Gemm) else op.flops() / peak
        memory_s = max(
            dram_bytes / self.config.dram.bw_bytes_per_s,
            chip_bytes / self.config.onchip.bw_bytes_per_s,
        )
        fixed_s = self.config.dram.latency_s if dram_bytes else 0.0
        return self._finish(
            op, compute_s, memory_s, fixed_s, dram_in, dram_out, chip_bytes, {}, "roofline"
        )

    def cost(self, op: Op, mapping: object | None = None) -> OpCost:
        dram_in, chip_in, dram_out = self.split_traffic(op)
        dram_bytes = sum(t.stored_bytes for t in dram_in + dram_out)
        chip_bytes = sum(t.stored_bytes for t in chip_in) + (
            0.0 if dram_out else op.bytes_written()
        )
        dram_bw = self.config.dram.bw_bytes_per_s * self.config.dram_efficiency
        memory_s = max(dram_bytes / dram_bw, chip_bytes / self.config.onchip.bw_bytes_per_s)
        # an activation that went through DRAM is produced by the previous op, so its first
        # bytes cannot be prefetched: one DRAM latency per such tensor on the critical path
        activation_trips = len(dram_out) + sum(1 for t in dram_in if not t.is_weight)
        fixed_s = self.config.dram.latency_s * (1 + activation_trips) if dram_bytes else 0.0
        issue_s = self.instructions(op) * self._issue_s()
        spec = self.config.instruction
        overlapped = spec is not None and spec.matrix is not None
        # decoupled LD/MV/ST queues let issue run ahead of execution; the serial per-op
        # count has no such queues, so its issue adds to the op
        if not overlapped:
            fixed_s += issue_s
            issue_s = 0.0
        actions: dict[str, float] = {}
        if isinstance(op, Gemm):
            compute_cycles, schedule, macs = self.gemm_cycles(op)
            compute_s = compute_cycles / self.clock_hz
            actions[f"mac.{self._mac_dtype(op).value}"] = macs
            note = f"{self.chains} chains x {self.chain_length} DSP, {schedule.mode}"
        else:
            compute_s = op.flops() / self.peak_flops_per_s(self._mac_dtype(op))
            actions["vector_op"] = op.flops()
            note = "streamed on DSPs"
        return self._finish(
            op, compute_s, memory_s, fixed_s, dram_in, dram_out, chip_bytes, actions, note, issue_s
        )

    def gemm_cycles(self, op: Gemm) -> tuple[float, ChainSchedule, float]:
        """Compute cycles of a GEMM on the chains, its chain schedule and the MACs it performs.

        Chains take output columns in rounds of ``chains``; the packing factor of the weight's
        dtype sets how many activation rows share one weight per slice and cycle.
        """
        weight = op.b
        schedule = chain_schedule(op.k, weight.sparsity, self.config.dsp_chain)
        pack = self.config.macs_per_dsp_per_cycle[self._mac_dtype(op)]
        rounds = math.ceil(op.n / self.chains)
        rows = math.ceil(op.m / pack)
        fill = self.config.dsp_chain.pipeline_cycles if self.config.dsp_chain else 0
        cycles = op.batch * rows * rounds * schedule.cycles_per_column + fill
        macs = op.batch * op.m * op.n * op.k * schedule.kept_fraction * op.a.sparsity.density
        return cycles, schedule, macs

    def instructions(self, op: Op) -> int:
        """Instructions one op issues (0 without an ``instruction`` block)."""
        return self.instruction_mix(op).total

    def instruction_mix(self, op: Op) -> InstructionMix:
        """Instructions one op issues, by kind.

        With a ``matrix`` rule, GEMMs follow :func:`matrix_instruction_mix` and attention runs
        as its two products (scores, then values) over all heads. Other ops, and every op without the
        rule, issue ``per_op`` instructions per tile: an op whose activations exceed the half of
        on-chip RAM left beside the weight buffers is cut into tiles along its rows.
        """
        spec = self.config.instruction
        if spec is None:
            return InstructionMix()
        rule = spec.matrix
        if rule is not None and isinstance(op, Gemm):
            sparse = op.b.sparsity.density < 1.0
            elem = op.b.dtype.size_bytes
            if op.b.is_weight:  # a shared weight sees the batch as more rows
                return matrix_instruction_mix(op.batch * op.m, op.n, op.k, elem, sparse, rule)
            return matrix_instruction_mix(op.m, op.n, op.k, elem, sparse, rule).scaled(op.batch)
        if rule is not None and isinstance(op, Attention):
            elem = op.k.dtype.size_bytes
            heads = op.batch * op.heads_q
            shapes = ((op.kv_len, op.head_dim), (op.head_dim, op.kv_len))
            mixes = [
                matrix_instruction_mix(op.q_len, n, k, elem, False, rule, heads) for n, k in shapes
            ]
            return mixes[0] + mixes[1]
        activation_bytes = sum(t.stored_bytes for t in op.inputs() if not t.is_weight)
        tiles = max(1, math.ceil(activation_bytes / (self.config.onchip.size_bytes / 2)))
        return InstructionMix(other=spec.per_op * tiles)

    def instruction_bytes(self, op: Op) -> float:
        """Encoded size of the instructions one op issues."""
        spec = self.config.instruction
        if spec is None:
            return 0.0
        mix = self.instruction_mix(op)
        rule = spec.matrix
        if rule is None:
            return mix.total * spec.size_bytes
        return (
            mix.loads * rule.load_size_bytes
            + mix.computes * rule.compute_size_bytes
            + mix.stores * rule.store_size_bytes
            + mix.other * spec.size_bytes
        )

    def _issue_s(self) -> float:
        spec = self.config.instruction
        return spec.issue_s if spec else 0.0

    def _finish(
        self,
        op: Op,
        compute_s: float,
        memory_s: float,
        fixed_s: float,
        dram_in: list[Tensor],
        dram_out: list[Tensor],
        chip_bytes: float,
        actions: dict[str, float],
        note: str,
        issue_s: float = 0.0,
    ) -> OpCost:
        body_s = max(compute_s, memory_s, issue_s)
        latency_s = max(body_s + fixed_s, 1e-12)
        if fixed_s > body_s or (issue_s > 0 and issue_s == body_s):
            bound = Bound.LAUNCH
        elif compute_s >= memory_s:
            bound = Bound.COMPUTE
        else:
            bound = Bound.MEMORY
        dram_read = sum(t.stored_bytes for t in dram_in)
        dram_write = sum(t.stored_bytes for t in dram_out)
        ideal_s = (
            op.effective_flops() if isinstance(op, Gemm) else op.flops()
        ) / self.peak_flops_per_s(self._mac_dtype(op))
        all_actions = {
            "read.dram": dram_read,
            "write.dram": dram_write,
            "read.onchip": chip_bytes,
            **actions,
        }
        return OpCost(
            latency_s=latency_s,
            cycles=latency_s * self.clock_hz,
            bound=bound,
            utilization=min(1.0, ideal_s / latency_s),
            bytes_by_level={"dram": dram_read + dram_write, "onchip": chip_bytes},
            actions=all_actions,
            notes=note,
        )
