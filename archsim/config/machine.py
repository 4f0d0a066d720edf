"""Machine files: the devices of a design, their memories, energy and area tables.

One model per device family, chosen by the ``kind`` key. YAML field names carry no units (the value
does: ``bandwidth: "3.35 TB/s"``); the Python attribute names do (``bw_bytes_per_s``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, model_validator

from archsim.config.quantities import (
    Bytes,
    BytesPerSecond,
    FlopsPerSecond,
    Fraction,
    Hertz,
    Joules,
    PositiveInt,
    Seconds,
    SquareMM,
    StrictModel,
    Watts,
)
from archsim.config.search import SearchConfig
from archsim.ir.tensor import DType

SCHEMA_VERSION = 1


class MemoryLevelConfig(StrictModel):
    """One level of a memory hierarchy (DRAM/HBM, L2, scratchpad)."""

    size_bytes: Bytes = Field(alias="size", description="Capacity, e.g. '80 GB' or '50 MiB'.")
    bw_bytes_per_s: BytesPerSecond = Field(
        alias="bandwidth", description="Peak bandwidth of the level, e.g. '3.35 TB/s'."
    )
    read_energy_per_byte_j: Joules = Field(
        alias="read_energy_per_byte", description="Energy to read one byte, e.g. '7 pJ'."
    )
    write_energy_per_byte_j: Joules = Field(
        alias="write_energy_per_byte", description="Energy to write one byte, e.g. '7 pJ'."
    )
    latency_s: Seconds = Field(
        default=0.0, alias="latency", description="Access latency of the first byte, e.g. '500 ns'."
    )


class _DeviceBase(StrictModel):
    name: str = Field(description="Name of the device, unique within the machine.")
    clock_hz: Hertz = Field(alias="clock", description="Core clock, e.g. '1.98 GHz'.")
    static_power_w: Watts = Field(
        alias="static_power", description="Leakage and idle power charged for the whole runtime."
    )
    mac_energy_j: dict[DType, Joules] = Field(
        alias="mac_energy",
        description="Energy of one multiply-accumulate per dtype; a dtype not listed is unsupported.",
    )
    vector_op_energy_j: Joules = Field(
        alias="vector_op_energy", description="Energy of one vector-unit operation (add, mul, exp)."
    )


class TileShape(StrictModel):
    """An output tile a GEMM kernel can use: one thread block computes ``m x n`` outputs."""

    m: PositiveInt = Field(description="Rows of the output tile.")
    n: PositiveInt = Field(description="Columns of the output tile.")
    efficiency: Fraction = Field(
        default=1.0,
        description=(
            "Mainloop throughput of this tile relative to 'efficiency.tensor' (smaller tiles reuse "
            "operands less, so their tensor cores wait on shared memory more often)."
        ),
    )


class GpuEfficiency(StrictModel):
    """Fractions of datasheet peaks that well-tuned kernels reach; fitted to measurements."""

    tensor: Fraction = Field(
        description="Sustained share of dense tensor-core peak in large GEMMs."
    )
    tensor_by_dtype: dict[DType, Fraction] = Field(
        default_factory=dict,
        description=(
            "Overrides 'tensor' for the dtypes listed (fp8 GEMMs that promote partial sums to "
            "fp32 reach a lower share of their peak than bf16)."
        ),
    )
    hbm: Fraction = Field(description="Sustained share of HBM bandwidth in streaming kernels.")
    l2: Fraction = Field(default=0.8, description="Sustained share of L2 bandwidth.")
    vector: Fraction = Field(
        default=0.6, description="Sustained share of the non-tensor FP32 peak."
    )
    attention: Fraction = Field(
        default=0.5,
        description=(
            "Sustained share of dense tensor-core peak in fused (FlashAttention-style) attention "
            "prefill; lower than GEMM because softmax on the special-function units sits between "
            "the two products."
        ),
    )
    attention_by_backend: dict[str, Fraction] = Field(
        default_factory=dict,
        description=(
            "Overrides 'attention' per attention kernel library ('cudnn', 'flash', 'efficient'): "
            "Hopper-native (wgmma) kernels reach about twice the share of Ampere-style ones."
        ),
    )
    attention_block_fill: Annotated[float, Field(ge=0.0)] = Field(
        default=0.0,
        description=(
            "Fixed work of one attention thread block (Q load, pipeline fill, output "
            "normalization and store), in units of one key/value block iteration."
        ),
    )
    kv_stream: Fraction | None = Field(
        default=None,
        description=(
            "Share of HBM bandwidth when decode attention streams the KV cache (long contiguous "
            "bulk loads); defaults to 'hbm'."
        ),
    )
    kv_stream_sm_share_by_backend: dict[str, Fraction] = Field(
        default_factory=dict,
        description=(
            "Per attention kernel library ('cudnn', 'flash', 'efficient'): share of one SM's L2 "
            "port bandwidth that its decode blocks sustain on the KV cache (loads in flight per "
            "SM over the memory latency); absent: the full share."
        ),
    )
    sparse_tensor: Fraction = Field(
        default=0.5,
        description=(
            "Sustained share of the 2:4 sparse tensor-core peak (twice the dense peak) in sparse "
            "GEMM kernels (cuSPARSELt): metadata loads and operand selection cost issue slots."
        ),
    )
    sparse_hbm: Fraction | None = Field(
        default=None,
        description=(
            "Share of HBM bandwidth a 2:4 sparse GEMM reaches on its compressed operand and "
            "metadata (tuned, searched algorithm); defaults to 'hbm'."
        ),
    )
    grouped_tensor: Fraction | None = Field(
        default=None,
        description=(
            "Share of dense tensor-core peak in grouped GEMMs (one kernel over many groups, e.g. "
            "MoE experts: per-group TMA descriptors and a tile scheduler that walks the groups); "
            "defaults to 'tensor'."
        ),
    )
    sparse_hbm_default_algorithm: Fraction | None = Field(
        default=None,
        description=(
            "As 'sparse_hbm' for the library's default sparse algorithm (no search, no split-K); "
            "defaults to 'sparse_hbm'."
        ),
    )
    sparse_tensor_default_algorithm: Fraction | None = Field(
        default=None,
        description=(
            "As 'sparse_tensor' for the library's default sparse algorithm (one kernel "
            "configuration for every shape, not the fastest of a search); defaults to "
            "'sparse_tensor'."
        ),
    )


class GpuPowerConfig(StrictModel):
    """Board power a GPU draws beyond its action counts (AccelWattch's split, MICRO 2021).

    A busy GPU draws power that useful MACs and array accesses do not account for: SMs holding
    resident warps burn power while they wait on memory, and each byte crosses the memory
    controller, PHY and on-chip network and is written into an SM's L1 and registers. Every field
    defaults to 0, which prices none of it (the action-count energy alone).
    """

    sm_active_w: Watts = Field(
        default=0.0,
        alias="sm_active",
        description=(
            "Power of one SM holding resident warps (stalled or issuing), above its idle power; "
            "charged for each active SM while its kernel runs, e.g. '0.34 W'."
        ),
    )
    hbm_interface_energy_per_byte_j: Joules = Field(
        default=0.0,
        alias="hbm_interface_energy_per_byte",
        description=(
            "Energy per HBM byte beyond 'hbm.read/write_energy_per_byte': memory controller, PHY "
            "and the stack's own IO and background at that rate, e.g. '57 pJ'."
        ),
    )
    sm_transfer_energy_per_byte_j: Joules = Field(
        default=0.0,
        alias="sm_transfer_energy_per_byte",
        description=(
            "Energy per byte between L2 and an SM beyond 'l2.read/write_energy_per_byte': "
            "crossbar, L1 and register-file writes, load/store issue, e.g. '37 pJ'."
        ),
    )


class GpuConfig(_DeviceBase):
    """A GPU: SMs with tensor cores, an L2 and HBM; kernels launched from a host."""

    kind: Literal["gpu"] = "gpu"
    sm_count: PositiveInt = Field(description="Streaming multiprocessors.")
    tensor_flops_per_s: dict[DType, FlopsPerSecond] = Field(
        alias="tensor_throughput",
        description="Dense tensor-core peak per dtype at the boost clock, e.g. bf16: '989 TFLOP/s'.",
    )
    vector_flops_per_s: FlopsPerSecond = Field(
        alias="vector_throughput", description="Non-tensor FP32 peak (FMA counted as 2)."
    )
    hbm: MemoryLevelConfig = Field(description="Device memory.")
    l2: MemoryLevelConfig = Field(description="Last-level cache shared by all SMs.")
    shared_memory_per_sm_bytes: Bytes = Field(
        alias="shared_memory_per_sm", description="Shared memory per SM usable by one kernel."
    )
    kernel_launch_s: Seconds = Field(
        alias="kernel_launch",
        description="Minimum GPU time of a kernel (launch, prologue, epilogue), e.g. '4 us'.",
    )
    tile_shapes: list[TileShape] = Field(
        min_length=1, description="Output tiles the GEMM library picks from (e.g. cuBLAS nvjet)."
    )
    graph_kernel_gap_s: Seconds | None = Field(
        default=None,
        alias="graph_kernel_gap",
        description=(
            "GPU time between two kernels already queued back to back (CUDA graph replay, or a "
            "host running ahead): replaces 'kernel_launch' for every kernel but the first. "
            "Defaults to 'kernel_launch'."
        ),
    )
    host_launch_s: Seconds = Field(
        default=0.0,
        alias="host_launch",
        description="Host time to issue one eager kernel launch from the framework, e.g. '11 us'.",
    )
    host_sync_s: Seconds = Field(
        default=0.0,
        alias="host_sync",
        description=(
            "Host time of one device-to-host synchronization (a data-dependent shape such as "
            "nonzero), on top of waiting for the GPU queue to drain."
        ),
    )
    host_alloc_s: Seconds = Field(
        default=0.0,
        alias="host_alloc",
        description=(
            "Host time an eager framework op spends beyond 'host_launch' (which is measured with "
            "an in-place op on one element): allocating its output from the caching allocator, "
            "argument and shape checks."
        ),
    )
    sparse_kernel_overhead_s: Seconds = Field(
        default=0.0,
        alias="sparse_kernel_overhead",
        description=(
            "Extra fixed GPU time of a 2:4 sparse GEMM call over a dense one (descriptor and "
            "metadata setup of the sparse library's kernel)."
        ),
    )
    sparse_default_tile: TileShape | None = Field(
        default=None,
        description=(
            "Output tile of the sparse library's default 2:4 algorithm (cuSPARSELt alg 0: one "
            "kernel configuration, no split-K); None: the best of 'tile_shapes'."
        ),
    )
    strided_elements_per_cycle_per_sm: PositiveFloat | None = Field(
        default=None,
        description=(
            "Elements per clock per SM of an elementwise kernel whose inputs are not contiguous "
            "(strided views): it loads one element at a time and computes each element's offsets "
            "per dimension, so it runs at an element rate below the bandwidth; None: no limit."
        ),
    )
    efficiency: GpuEfficiency = Field(description="Calibrated shares of the peaks.")
    die_area_mm2: SquareMM = Field(alias="die_area", description="Die area.")
    tdp_w: Watts = Field(alias="tdp", description="Board power limit.")
    power: GpuPowerConfig = Field(
        default_factory=GpuPowerConfig,
        description="Activity power beyond the action counts; omitted: none (0 W).",
    )

    @model_validator(mode="after")
    def _tensor_dtypes_priced(self) -> GpuConfig:
        missing = [d.value for d in self.tensor_flops_per_s if d not in self.mac_energy_j]
        if missing:
            raise ValueError(f"mac_energy has no entry for tensor_throughput dtypes {missing}")
        return self


class SystolicArrayConfig(StrictModel):
    """Systolic arrays of processing elements (one MAC each per cycle at the base dtype)."""

    count: PositiveInt = Field(description="Number of arrays.")
    rows: PositiveInt = Field(description="PE rows of each array (the reduction dimension for WS).")
    cols: PositiveInt = Field(description="PE columns of each array (output columns).")
    dataflow: Literal["ws", "os"] = Field(
        description="Weight-stationary (ws) or output-stationary (os)."
    )


class SparseArrayConfig(StrictModel):
    """N:M zero skipping in a weight-stationary array (VEGETA, Jeong et al. HPCA 2023; S2TA, Liu
    et al. HPCA 2022): each group of ``n_max`` PEs along a column takes its activations through
    ``m``-input multiplexers, so one stationary block covers ``m / n_max`` times more of K when
    every window of ``m`` weights keeps at most ``n_max``."""

    n_max: PositiveInt = Field(
        description="PEs per multiplexer group: the most kept weights of a window served in one "
        "pass (N of N:M); windows keeping more take extra passes."
    )
    m: PositiveInt = Field(
        description="Inputs of each PE's multiplexer: the window of consecutive reduction "
        "elements a group selects from (M of N:M)."
    )

    @model_validator(mode="after")
    def _sparse_pattern(self) -> SparseArrayConfig:
        if self.n_max >= self.m:
            raise ValueError(
                f"sparse_array needs n_max < m (n_max of every m weights kept), got n_max "
                f"{self.n_max}, m {self.m}; n_max = m would be a dense array: leave sparse_array out"
            )
        return self


class VectorUnitConfig(StrictModel):
    """SIMD unit for elementwise ops, norms and softmax."""

    lanes: PositiveInt = Field(description="Operations per cycle.")


class DmaConfig(StrictModel):
    """DMA engines moving tiles between DRAM and the scratchpad."""

    engines: PositiveInt = Field(description="Concurrent DMA engines.")
    setup_s: Seconds = Field(alias="setup", description="Fixed cost of starting one transfer.")


class NpuAreaConfig(StrictModel):
    """Area of each component; the total follows the configured counts and sizes."""

    per_pe_mm2: SquareMM = Field(alias="per_pe", description="One processing element (MAC + regs).")
    per_vector_lane_mm2: SquareMM = Field(alias="per_vector_lane", description="One vector lane.")
    sram_per_mib_mm2: SquareMM = Field(alias="sram_per_mib", description="One MiB of scratchpad.")
    dram_phy_per_tb_s_mm2: SquareMM = Field(
        default=0.0,
        alias="dram_phy_per_tb_s",
        description="DRAM PHYs and controllers per TB/s of DRAM bandwidth (more stacks, more PHYs).",
    )
    fixed_mm2: SquareMM = Field(
        alias="fixed", description="Everything else: NoC, control, I/O, unmodelled on-chip memory."
    )


class NpuConfig(_DeviceBase):
    """A TPU-like NPU: systolic arrays, a vector unit, a scratchpad fed by DMA from DRAM."""

    kind: Literal["npu"] = "npu"
    systolic_array: SystolicArrayConfig
    macs_per_pe_per_cycle: dict[DType, PositiveInt] = Field(
        description="MACs one PE does per cycle for each dtype it supports (e.g. int8: 2)."
    )
    vector_unit: VectorUnitConfig
    scratchpad: MemoryLevelConfig = Field(description="On-chip SRAM shared by the arrays.")
    dram: MemoryLevelConfig = Field(description="Off-chip memory.")
    dma: DmaConfig
    area: NpuAreaConfig
    leakage_per_mm2_w: Watts = Field(
        alias="leakage_per_mm2",
        description="Leakage power per mm2 of the modelled area, added to static_power, so larger "
        "arrays and buffers cost power while idle.",
    )
    decode_attention: Literal["fastest", "ganged_gemv"] = Field(
        default="fastest",
        description="How decode attention maps onto the arrays. 'fastest': the faster of K/V "
        "stationary and K/V streaming past stationary queries, each array on its own "
        "(request, head). 'ganged_gemv': one (request, head) at a time on all arrays ganged "
        "on one stationary tile (the query, then each 128-position chunk of the scores), each "
        "stationary load costing one cycle per array row, as NeuPIMs' NPU simulator issues "
        "its fused attention.",
    )

    sparse_array: SparseArrayConfig | None = Field(
        default=None,
        description="Opt-in N:M zero skipping in the arrays, e.g. {n_max: 2, m: 4}: sparse weights "
        "whose windows the multiplexers can serve run in fewer stationary blocks, the slowest "
        "column of each block setting its time. Absent: dense math on every operand.",
    )

    @model_validator(mode="after")
    def _sparse_array_fits(self) -> NpuConfig:
        sparse, array = self.sparse_array, self.systolic_array
        if sparse is None:
            return self
        if array.dataflow != "ws":
            raise ValueError(
                "sparse_array needs systolic_array.dataflow 'ws' (the multiplexers sit in front "
                f"of the stationary weights), got '{array.dataflow}'"
            )
        if array.rows % sparse.n_max:
            raise ValueError(
                f"sparse_array.n_max ({sparse.n_max}) must divide systolic_array.rows "
                f"({array.rows}): each column is cut into groups of n_max PEs"
            )
        return self

    @model_validator(mode="after")
    def _dtypes_priced(self) -> NpuConfig:
        missing = [d.value for d in self.macs_per_pe_per_cycle if d not in self.mac_energy_j]
        if missing:
            raise ValueError(f"mac_energy has no entry for macs_per_pe_per_cycle dtypes {missing}")
        return self


class PimConfig(_DeviceBase):
    """Processing in memory: MAC units beside the DRAM banks, fed at internal bank bandwidth."""

    kind: Literal["pim"] = "pim"
    channels: PositiveInt = Field(description="Memory channels (pseudo-channels for HBM).")
    banks_per_channel: PositiveInt = Field(description="Banks per channel with a PIM unit each.")
    macs_per_bank_per_cycle: PositiveInt = Field(description="MACs one bank unit does per cycle.")
    internal_bw_bytes_per_s: BytesPerSecond = Field(
        alias="internal_bandwidth", description="Aggregate bank-side bandwidth seen by PIM units."
    )
    dram: MemoryLevelConfig = Field(description="The memory the PIM units sit in.")
    area_mm2: SquareMM = Field(alias="area", description="Area added by the PIM logic.")
    memory_standard: Literal["hbm2", "hbm2e", "hbm3", "hbm3_h100"] = Field(
        default="hbm2",
        description="DRAM standard whose bank timings (tRCD, tRP, tRAS, tCCD, tREFI/tRFC) pace "
        "the PIM row streams: hbm2, hbm2e, hbm3 or hbm3_h100.",
    )
    row_buffers: Literal["single", "dual"] = Field(
        default="single",
        description="'single': blocked mode, the host cannot use the memory while PIM runs "
        "(HBM-PIM, Newton); 'dual': a second row buffer per bank lets host reads and writes run "
        "beside PIM commands (NeuPIMs).",
    )
    pim_command_energy_j: Joules = Field(
        default=0.0,
        alias="pim_command_energy",
        description="Energy of one PIM MAC command in one bank (column read to the MAC unit and "
        "the MACs), e.g. '20 pJ'; 0 leaves it out.",
    )
    activation_energy_j: Joules = Field(
        default=0.0,
        alias="activation_energy",
        description="Energy of one row activation (and precharge) in one bank, e.g. '0.8 nJ'; 0 "
        "leaves it out.",
    )
    kv_mapping: Literal["striped", "per_request_channel"] = Field(
        default="striped",
        description="Where decode attention finds the KV cache: 'striped' spreads every "
        "request over all banks of all channels; 'per_request_channel' keeps each request's "
        "K and V in the banks of one channel, in NeuPIMs' row layout, so channels run their "
        "requests one after another and the busiest channel sets the time.",
    )
    channel_policy: Literal["load_balanced", "round_robin"] = Field(
        default="load_balanced",
        description="With kv_mapping 'per_request_channel': how requests are given channels, "
        "'load_balanced' (each to the channel with the least estimated attention time) or "
        "'round_robin'.",
    )
    score_context_sync: Literal["per_head", "batch"] = Field(
        default="per_head",
        description="With kv_mapping 'per_request_channel' and dual row buffers, when the "
        "context GEMVs may start: 'per_head', each head's right after its scores, the host's "
        "softmax running beside the next heads' GEMVs; 'batch', only once every channel has "
        "finished the score GEMVs of the whole batch and the host its softmax (what a single "
        "row buffer forces, and how NeuPIMs' simulator runs both modes).",
    )


class LogicPimConfig(_DeviceBase):
    """Logic-die PIM (Duplex's Logic-PIM): processing units on the HBM base die, fed by TSVs.

    More TSVs than the external interface needs give the logic die a multiple of the external
    bandwidth; the units run GEMMs and attention of low to moderate Op/B.
    """

    kind: Literal["logic_pim"] = "logic_pim"
    compute_flops_per_s: dict[DType, FlopsPerSecond] = Field(
        alias="compute_throughput",
        description="Peak of the logic-die processing units per dtype, e.g. bf16: '200 TFLOP/s'.",
    )
    vector_flops_per_s: FlopsPerSecond = Field(
        alias="vector_throughput", description="Peak of their vector units (softmax, norms)."
    )
    internal_bw_bytes_per_s: BytesPerSecond = Field(
        alias="internal_bandwidth",
        description="Aggregate DRAM-die to logic-die (TSV) bandwidth of all stacks.",
    )
    memory_standard: Literal["hbm2", "hbm2e", "hbm3", "hbm3_h100"] = Field(
        description="DRAM standard of the stacks (its streaming efficiency scales the TSV peak): "
        "hbm2, hbm2e, hbm3 or hbm3_h100 (HBM3 at the H100's 5.2 Gb/s)."
    )
    bank_bundle: PositiveInt | None = Field(
        default=None,
        description="Banks one Logic-PIM command reads at once, two per bank group (Duplex's "
        "bank bundle, 8). When set, the units stream one bundle at a time and the TSV peak is "
        "scaled by the bundle's row-activation efficiency from the DRAM timing kernel instead "
        "of the channel's streaming efficiency.",
    )
    dram: MemoryLevelConfig = Field(
        description="The stacks as a host sees them (capacity, external bandwidth); their "
        "per-byte energies are those of a read that stops at the logic die."
    )
    area_mm2: SquareMM = Field(alias="area", description="Area added to the logic dies.")

    @model_validator(mode="after")
    def _dtypes_priced(self) -> LogicPimConfig:
        missing = [d.value for d in self.compute_flops_per_s if d not in self.mac_energy_j]
        if missing:
            raise ValueError(f"mac_energy has no entry for compute_throughput dtypes {missing}")
        return self


class DspChainConfig(StrictModel):
    """DSP slices cascaded into chains that reduce along K, with input multiplexers for sparsity."""

    length: PositiveInt = Field(
        description="DSP slices cascaded in one chain (partial sums pass down the cascade)."
    )
    mux_inputs: PositiveInt = Field(
        default=1,
        description=(
            "Activations each slice's input multiplexer selects from (1: dense only; M: N:M "
            "sparsity with groups of up to M elements runs on the sparse datapath)."
        ),
    )
    pipeline_cycles: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Fill latency of one chain in cycles: cascade depth plus multiplexer stages.",
    )

    @model_validator(mode="after")
    def _mux_fits(self) -> DspChainConfig:
        if self.mux_inputs > 1 and self.length < 2:
            raise ValueError("a sparse chain (mux_inputs > 1) needs length >= 2")
        return self


class MatrixInstructionConfig(StrictModel):
    """How an overlay's compiler tiles one matrix op into load, compute and store instructions.

    A matrix-vector op (one row) runs in groups of ``mv_outputs_per_group`` outputs, each
    group's weights loaded by one instruction per HBM channel; a matrix-matrix op runs in tiles
    of ``mm_rows_per_tile`` rows and issues one compute per ``block`` outputs. K is cut into
    chunks so that two chunks of weights fit the weight buffer (double buffering).
    """

    load_size_bytes: Bytes = Field(alias="load_size", description="Encoded size of one load.")
    compute_size_bytes: Bytes = Field(
        alias="compute_size", description="Encoded size of one matrix (MV/MM) instruction."
    )
    store_size_bytes: Bytes = Field(alias="store_size", description="Encoded size of one store.")
    block: PositiveInt = Field(description="Tile edge of the weight layout (rows and columns).")
    weight_load_channels: PositiveInt = Field(
        description="HBM channels a matrix-vector group's weights are spread over (one load each)."
    )
    mv_outputs_per_group: PositiveInt = Field(
        description="Outputs one matrix-vector instruction produces."
    )
    mv_weight_buffer_bytes: Bytes = Field(
        alias="mv_weight_buffer", description="Weight buffer of one HBM channel in MV mode."
    )
    mm_rows_per_tile: PositiveInt = Field(
        description="Activation rows one matrix-matrix instruction covers."
    )
    mm_weight_buffer_bytes: Bytes = Field(
        alias="mm_weight_buffer", description="Weight buffer in MM mode."
    )

    @model_validator(mode="after")
    def _group_splits(self) -> MatrixInstructionConfig:
        if self.mv_outputs_per_group % (self.block * self.weight_load_channels):
            raise ValueError(
                "mv_outputs_per_group must be a multiple of block x weight_load_channels "
                f"({self.block} x {self.weight_load_channels}), got {self.mv_outputs_per_group}"
            )
        return self


class InstructionConfig(StrictModel):
    """Instruction stream of an overlay accelerator: per-instruction issue cost and storage."""

    issue_s: Seconds = Field(
        alias="issue", description="Decode and dispatch time of one instruction, e.g. '40 ns'."
    )
    size_bytes: Bytes = Field(alias="size", description="Encoded size of one instruction.")
    per_op: PositiveInt = Field(
        default=1,
        description=(
            "Instructions issued per op outside the tile loop (loads, syncs, config); with a "
            "'matrix' block, only ops that are not matrix products use it."
        ),
    )
    matrix: MatrixInstructionConfig | None = Field(
        default=None,
        description="Shape-dependent instruction count of matrix ops; absent: 'per_op' for all.",
    )


class FpgaConfig(_DeviceBase):
    """An FPGA accelerator: DSP slices, on-chip RAM and HBM/DDR channels."""

    kind: Literal["fpga"] = "fpga"
    dsp_count: PositiveInt = Field(description="DSP slices used by the design.")
    macs_per_dsp_per_cycle: dict[DType, PositiveInt] = Field(
        description="MACs one DSP slice does per cycle for each dtype (packing, e.g. int8: 2)."
    )
    onchip: MemoryLevelConfig = Field(description="BRAM + URAM seen as one on-chip level.")
    dram: MemoryLevelConfig = Field(description="HBM or DDR.")
    area_mm2: SquareMM = Field(alias="area", description="Die area of the device.")
    dsp_chain: DspChainConfig | None = Field(
        default=None,
        description="How the DSP slices cascade; absent: independent dense slices (chains of 1).",
    )
    dram_channels: PositiveInt = Field(
        default=1, description="Independent HBM pseudo-channels / DDR channels the design uses."
    )
    dram_efficiency: Fraction = Field(
        default=1.0,
        description="Sustained share of 'dram.bandwidth' for long sequential weight streams.",
    )
    activations_on_chip: bool = Field(
        default=False,
        description=(
            "Always-on-chip decode: an op's activations stay in on-chip RAM when they fit in "
            "half of it, so decode moves only weights and the KV cache through DRAM."
        ),
    )
    instruction: InstructionConfig | None = Field(
        default=None, description="Instruction issue cost; absent: no per-op control overhead."
    )

    @model_validator(mode="after")
    def _dtypes_priced(self) -> FpgaConfig:
        # a dtype the DSPs run but mac_energy does not price would fail deep inside a sweep
        missing = [d.value for d in self.macs_per_dsp_per_cycle if d not in self.mac_energy_j]
        if missing:
            raise ValueError(f"mac_energy has no entry for macs_per_dsp_per_cycle dtypes {missing}")
        return self


DeviceConfig = Annotated[
    GpuConfig | NpuConfig | PimConfig | LogicPimConfig | FpgaConfig, Field(discriminator="kind")
]


class InterconnectConfig(StrictModel):
    """Link between devices of one machine (used when consecutive ops run on different devices)."""

    bw_bytes_per_s: BytesPerSecond = Field(
        alias="bandwidth", description="Per-direction bandwidth."
    )
    latency_s: Seconds = Field(alias="latency", description="Per-transfer latency.")
    energy_per_byte_j: Joules = Field(alias="energy_per_byte", description="Energy per byte moved.")


class MachineConfig(StrictModel):
    """A machine file: one or more devices and how they connect."""

    schema_version: Literal[1] = Field(description="Version of this file format (1).")
    name: str = Field(description="Short name of the design.")
    description: str = Field(default="", description="One line shown by 'archsim list'.")
    sources: list[str] = Field(
        default_factory=list, description="Datasheets and papers the numbers come from."
    )
    devices: list[DeviceConfig] = Field(min_length=1, description="The devices of the machine.")
    interconnect: InterconnectConfig | None = Field(
        default=None, description="Required when the machine has more than one device."
    )
    mapper: str = Field(default="greedy", description="Mapper used unless the CLI names another.")
    sweep: dict[str, list[object]] | None = Field(
        default=None,
        description="Design space: dotted field path -> list of values (grid over all paths).",
    )
    search: SearchConfig | None = Field(
        default=None,
        description="How to explore the sweep space (grid, random, nsga2), objectives and "
        "constraints; absent: the whole grid.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MachineConfig:
        names = [d.name for d in self.devices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"device names must be unique, repeated: {duplicates}")
        if len(self.devices) > 1 and self.interconnect is None:
            raise ValueError("a machine with several devices needs an 'interconnect' block")
        return self
