"""Measured-kernel CSVs (the schema of ``shared/data/gpu/*.csv``) lowered to archsim ops.

Each timed row becomes a :class:`LoweredRow`: a validation family and the ops that ran. Rows that
cannot be compared are kept as :class:`SkippedRow` with the reason, never dropped silently.

Families
--------
``gemm`` (dense, M >= 64), ``gemm_skinny`` (dense, M < 64), ``sparse24`` (2:4 weight, GPU time
only), ``bmm`` (batched GEMV of attention decode), ``attention_prefill``, ``attention_decode``,
``moe_grouped``, ``moe_naive``, ``layer`` (one decoder layer replayed from a CUDA graph) and
``layer_eager`` (the same layer called eagerly; host-bound, reported apart).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from archsim.errors import ArchsimError
from archsim.ir.ops import Elementwise, Norm, Op, Softmax, attention, gemm, grouped_gemm
from archsim.ir.tensor import NM, DType, Tensor

# Below this many rows a GEMM is "skinny": cuBLAS picks split-K / GEMV-like kernels that are
# bandwidth- and latency-bound, so its error behaves unlike that of tiled GEMMs.
SKINNY_M = 64

REQUIRED_COLUMNS = ("op", "impl", "dtype", "status", "median_us")

# README "Method", L2 flush: a 256 MiB memset before each rep leaves the L2 holding dirty lines
# that the timed kernel must write back once its footprint outgrows the clean lines (clean lines
# are evicted first, see archsim.hw.gpu.hbm_traffic). The share was fitted by a grid over 0.24-0.44
# on the development dense GEMM and bmm rows (tests/data/h100 gemm.csv, bmm.csv; objective: mean
# over the gemm, gemm_skinny and bmm families of median + p90/2 of |% error|) with the efficiencies
# of hwconfigs/h100.yaml unchanged; it describes the measurement, not the GPU.
FLUSHED_DIRTY_L2_SHARE = 0.34
# README "Method", queue pads: a spin kernel queued before each rep keeps the GPU busy this long
# after the flush (about 300 us without a flush), so an eager multi-kernel op finds this many
# microseconds of its host launches already done when its first kernel starts.
QUEUE_PAD_FLUSHED_S = 100e-6
QUEUE_PAD_WARM_S = 300e-6

# SDPA backends of README section 5 ('default' dispatches to cuDNN in the measured build).
_SDPA_BACKENDS = {
    "default": "cudnn",
    "cudnn_attention": "cudnn",
    "flash_attention": "flash",
    "efficient_attention": "efficient",
}

_DTYPES = {
    "bf16": DType.BF16,
    "fp16": DType.FP16,
    "fp32": DType.FP32,
    "tf32": DType.TF32,
    "fp8": DType.FP8,
    "fp8_e4m3": DType.FP8,
    "fp8_e5m2": DType.FP8,
    "int8": DType.INT8,
}


@dataclass(frozen=True)
class LoweredRow:
    """One measured row with the ops that archsim predicts it by.

    Attributes
    ----------
    index:
        Position of the row in the input file (0-based, header excluded).
    family:
        Validation family (see the module docstring).
    ops:
        The ops the row ran, in launch order.
    eager_multi_kernel:
        True when the measurement is an eager call of several kernels, so host launch gaps between
        kernels are part of the measured time (README section "Queue pads").
    l2_flushed:
        True when the L2 was flushed before each rep (it holds the flush's dirty lines), False
        when it was left warm, None when unknown (priced cold and clean).
    graph:
        True when the kernels replay from a CUDA graph: queued back to back, no host launches.
    attention_backend:
        Attention kernel library the row forced (``cudnn``, ``flash``, ``efficient``), or None.
    sparse_algorithm:
        ``searched`` or ``default`` for 2:4 sparse rows.
    host_syncs:
        Positions in ``ops`` after which the host waits for the GPU (data-dependent shapes).
    queue_head_start_s:
        Host launch time already spent when the first kernel starts (the queue pad), seconds.
    """

    index: int
    family: str
    ops: tuple[Op, ...]
    eager_multi_kernel: bool = False
    l2_flushed: bool | None = None
    graph: bool = False
    attention_backend: str | None = None
    sparse_algorithm: str = "searched"
    host_syncs: tuple[int, ...] = ()
    queue_head_start_s: float = 0.0


@dataclass(frozen=True)
class SkippedRow:
    """A row that is not compared, and why."""

    index: int
    family: str | None
    reason: str


@dataclass(frozen=True)
class MeasuredTable:
    """A measured CSV: every input row, and each row either lowered or skipped."""

    source: str
    frame: pd.DataFrame
    lowered: tuple[LoweredRow, ...]
    skipped: tuple[SkippedRow, ...]


class Unlowerable(Exception):
    """A row (or trace op) whose shape archsim cannot express; the message is the reason."""


def read_measured_csv(path: Path) -> MeasuredTable:
    """Read a measured CSV and lower each row.

    Parameters
    ----------
    path:
        A CSV in the schema of ``shared/data/gpu/*.csv`` (times in microseconds).

    Returns
    -------
    MeasuredTable
        The raw rows plus, for each, a lowering or a skip reason.
    """
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ArchsimError(f"{path}: cannot read as CSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ArchsimError(
            f"{path}: not a measured-kernel CSV; missing columns {missing} "
            f"(expected the schema of shared/data/gpu/*.csv)"
        )
    frame = frame.reset_index(drop=True)
    lowered: list[LoweredRow] = []
    skipped: list[SkippedRow] = []
    for index, row in frame.iterrows():
        outcome = lower_row(int(index), row)  # type: ignore[arg-type]
        (lowered if isinstance(outcome, LoweredRow) else skipped).append(outcome)
    return MeasuredTable(str(path), frame, tuple(lowered), tuple(skipped))


# The facts file that a measured set keeps beside its CSVs, and its row that times the host:
# ``Tensor.add_`` on one element launched eagerly 2000 times, host wall time per launch
# (tests/data/README_measurements.md, "Facts"). Host launch time belongs to the host CPU, driver
# and framework build that made the measurement, not to the GPU.
FACTS_FILE = "facts.csv"
_HOST_LAUNCH_FACT = "launch_host_rate"


def read_host_launch_s(facts_path: Path) -> float | None:
    """Host wall time per eager kernel launch measured in a facts CSV.

    Parameters
    ----------
    facts_path:
        A ``facts.csv`` in the measured-CSV schema.

    Returns
    -------
    float or None
        Seconds per launch (the ``launch_host_rate`` row's ``median_us``), or None when the file
        has no usable row of that name.
    """
    try:
        frame = pd.read_csv(facts_path)
    except (OSError, ValueError) as exc:
        raise ArchsimError(f"{facts_path}: cannot read as CSV ({exc})") from exc
    if not {"op", "median_us"} <= set(frame.columns):
        return None
    rows = frame[frame["op"] == _HOST_LAUNCH_FACT]
    if "status" in rows.columns:
        rows = rows[rows["status"].fillna("ok") == "ok"]
    times_us = pd.to_numeric(rows["median_us"], errors="coerce").dropna()
    times_us = times_us[times_us > 0]
    if times_us.empty:
        return None
    return float(times_us.iloc[0]) * 1e-6


def facts_beside(measured_path: Path) -> Path | None:
    """The ``facts.csv`` in the directory of a measured file, if there is one."""
    facts = measured_path.parent / FACTS_FILE
    return facts if facts.is_file() else None


def lower_row(index: int, row: pd.Series) -> LoweredRow | SkippedRow:
    """Lower one CSV row, or say why it is skipped."""
    op_name = str(row["op"])
    status = str(row["status"])
    if status != "ok":
        detail = _text(row.get("error")) or "no reason given"
        return SkippedRow(index, None, f"status={status}: {detail}")
    if not _is_number(row["median_us"]) or float(row["median_us"]) <= 0:
        return SkippedRow(index, None, f"'{op_name}' carries no timing (its content is in 'extra')")
    lowering = ROW_LOWERINGS.get(op_name)
    if lowering is None:
        return SkippedRow(index, None, f"no lowering for op '{op_name}'")
    try:
        return lowering(index, row)
    except Unlowerable as exc:
        return SkippedRow(index, None, str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        return SkippedRow(index, None, f"cannot lower '{op_name}': {exc}")


# --- row lowerings, one per measured op name ---------------------------------------------------


def _lower_dense_gemm(index: int, row: pd.Series) -> LoweredRow:
    m, n, k = _int(row, "M"), _int(row, "N"), _int(row, "K")
    family = "gemm" if m >= SKINNY_M else "gemm_skinny"
    op = gemm(f"row{index}", m, n, k, _dtype(row))
    return LoweredRow(index, family, (op,), l2_flushed=_l2_flushed(row))


def _lower_sparse24(index: int, row: pd.Series) -> LoweredRow | SkippedRow:
    if not _flag(row.get("graph")):
        # README section 3: eager F.linear on a cuSPARSELt tensor spends 420 us or more per call in
        # host-side dispatch and plan setup while the GPU idles; the kernel is a small part of it.
        return SkippedRow(
            index,
            "sparse24",
            "framework overhead: eager 2:4 F.linear time is host-side dispatch and cuSPARSELt "
            "plan setup, not kernel time (use graph=True or searched rows)",
        )
    m, n, k = _int(row, "M"), _int(row, "N"), _int(row, "K")
    op = gemm(f"row{index}", m, n, k, _dtype(row), b_sparsity=NM(2, 4))
    # F.linear on a cuSPARSELt tensor uses alg_id 0; _cslt_sparse_mm_searched the searched one
    algorithm = "searched" if "searched" in str(row["op"]) else "default"
    return LoweredRow(
        index, "sparse24", (op,), l2_flushed=_l2_flushed(row), sparse_algorithm=algorithm
    )


def _lower_bmm(index: int, row: pd.Series) -> LoweredRow:
    # the B column holds batch*heads; M, N, K are the per-matrix sizes (M = 1: a GEMV)
    op = gemm(
        f"row{index}",
        _int(row, "M"),
        _int(row, "N"),
        _int(row, "K"),
        _dtype(row),
        batch=_int(row, "B"),
        b_is_weight=False,
    )
    return LoweredRow(index, "bmm", (op,), l2_flushed=_l2_flushed(row))


def _lower_sdpa(index: int, row: pd.Series) -> LoweredRow:
    extra = _extra(row)
    heads_q = _int(row, "H")
    # K/V pre-expanded with repeat_interleave run as plain multi-head attention
    heads_kv = heads_q if extra.get("gqa_mode") == "repeat_kv" else _int(row, "H_kv")
    q_len = _int(row, "S_q")
    causal = bool(extra.get("causal", str(row["op"]) == "sdpa_prefill"))
    op = attention(
        f"row{index}",
        batch=_int(row, "B"),
        heads_q=heads_q,
        heads_kv=heads_kv,
        q_len=q_len,
        kv_len=_int(row, "S_kv"),
        head_dim=_int(row, "head_dim"),
        causal=causal,
        dtype=_dtype(row),
    )
    family = "attention_decode" if q_len == 1 else "attention_prefill"
    return LoweredRow(
        index,
        family,
        (op,),
        l2_flushed=_l2_flushed(row),
        attention_backend=_SDPA_BACKENDS.get(str(row["impl"])),
    )


def _lower_moe(index: int, row: pd.Series) -> LoweredRow:
    tokens, experts, top_k = _int(row, "T"), _int(row, "E"), _int(row, "topk")
    d_model, d_ff = _int(row, "d_model"), _int(row, "d_ff")
    dtype = _dtype(row)
    counts = _expert_counts(row, experts, tokens * top_k)
    routed = tokens * top_k
    name = f"row{index}"
    # README section 6, routing: softmax(x @ W_r) in fp32 -> top-k -> renormalize. The softmax
    # covers T x E values, negligible next to the experts, so it is priced in the activation dtype.
    ops: list[Op] = [
        # output zeroed for index_add_ (a fill: one pass over the output)
        _eltwise(f"{name}.out_zero", "copy", (tokens, d_model), dtype, 1),
        gemm(f"{name}.router", tokens, experts, d_model, dtype),
        Softmax(
            f"{name}.softmax",
            _act(f"{name}.logits", (tokens, experts), dtype),
            _act(f"{name}.probs", (tokens, experts), dtype),
        ),
        _eltwise(f"{name}.topk", "copy", (tokens, experts), dtype, 1),
        _eltwise(f"{name}.topk_sum", "add", (tokens, top_k), dtype, 1),
        _eltwise(f"{name}.topk_div", "mul", (tokens, top_k), dtype, 2),
    ]
    syncs: list[int] = []
    naive = str(row["impl"]) == "naive_loop"
    if naive:
        # one expert at a time: torch.where(topi == e) is a compare plus a nonzero whose output
        # size the host must read back (a sync), then gather, SwiGLU expert, weight, index_add_
        for expert, count in enumerate(counts):
            e = f"{name}.e{expert}"
            ops.append(_eltwise(f"{e}.eq", "copy", (tokens, top_k), dtype, 1))
            ops.append(_eltwise(f"{e}.nonzero", "copy", (tokens, top_k), dtype, 1))
            syncs.append(len(ops) - 1)
            if count == 0:
                continue
            ops += [
                _eltwise(f"{e}.gather", "copy", (count, d_model), dtype, 1),
                gemm(f"{e}.w1", count, d_ff, d_model, dtype),
                gemm(f"{e}.w3", count, d_ff, d_model, dtype),
                *_swiglu(e, (count, d_ff), dtype),
                gemm(f"{e}.w2", count, d_model, d_ff, dtype),
                *_combine(e, (count, d_model), dtype),
            ]
    else:
        # grouped path: argsort by expert, one gather, int32 offsets (count, cumsum, cast), then
        # each projection is one grouped GEMM over all experts; no host sync
        group_rows = tuple(counts)
        ops += [
            _eltwise(f"{name}.argsort", "copy", (tokens, top_k), dtype, 1),
            _eltwise(f"{name}.argsort_scan", "copy", (tokens, top_k), dtype, 1),
            _eltwise(f"{name}.gather", "copy", (routed, d_model), dtype, 1),
            _eltwise(f"{name}.bincount", "copy", (routed,), dtype, 1),
            _eltwise(f"{name}.cumsum", "copy", (experts,), dtype, 1),
            _eltwise(f"{name}.offs_int32", "copy", (experts,), dtype, 1),
            grouped_gemm(f"{name}.w1", group_rows, d_ff, d_model, dtype),
            grouped_gemm(f"{name}.w3", group_rows, d_ff, d_model, dtype),
            *_swiglu(name, (routed, d_ff), dtype),
            grouped_gemm(f"{name}.w2", group_rows, d_model, d_ff, dtype),
            *_combine(name, (routed, d_model), dtype),
        ]
    family = "moe_naive" if naive else "moe_grouped"
    flushed = _l2_flushed(row)
    return LoweredRow(
        index,
        family,
        tuple(ops),
        eager_multi_kernel=True,
        l2_flushed=flushed,
        host_syncs=tuple(syncs),
        queue_head_start_s=QUEUE_PAD_WARM_S if flushed is False else QUEUE_PAD_FLUSHED_S,
    )


# Llama-style layer of README section 7: fused wqkv [6144, 4096] and w13 [28672, 4096]
LAYER_QKV_N = 6144
LAYER_W13_N = 28672


def _lower_layer(index: int, row: pd.Series) -> LoweredRow:
    batch, d_model, d_ff = _int(row, "B"), _int(row, "d_model"), _int(row, "d_ff")
    heads_q, heads_kv, head_dim = _int(row, "H"), _int(row, "H_kv"), _int(row, "head_dim")
    q_len, kv_len = _int(row, "S_q"), _int(row, "S_kv")
    dtype = _dtype(row)
    qkv_n = (heads_q + 2 * heads_kv) * head_dim
    tokens = batch * q_len
    name = f"row{index}"
    x = (tokens, d_model)
    ops: list[Op] = [
        _rmsnorm(f"{name}.norm1", x, dtype),
        gemm(f"{name}.qkv", tokens, qkv_n, d_model, dtype),
    ]
    decode = str(row["op"]) == "decoder_layer_decode"
    if decode:
        # the new K and V are copied into the preallocated cache, one copy kernel each
        kv_new = (batch, heads_kv, q_len, head_dim)
        ops += [
            _eltwise(f"{name}.k_cache_write", "copy", kv_new, dtype, 1),
            _eltwise(f"{name}.v_cache_write", "copy", kv_new, dtype, 1),
        ]
    ops += [
        attention(
            f"{name}.attention",
            batch=batch,
            heads_q=heads_q,
            heads_kv=heads_kv,
            q_len=q_len,
            kv_len=kv_len,
            head_dim=head_dim,
            causal=not decode,
            dtype=dtype,
        ),
        gemm(f"{name}.o_proj", tokens, d_model, heads_q * head_dim, dtype),
        _eltwise(f"{name}.residual1", "add", x, dtype, 2),
        _rmsnorm(f"{name}.norm2", x, dtype),
        gemm(f"{name}.w13", tokens, 2 * d_ff, d_model, dtype),
        # the measured layer runs SiLU and the multiply as two kernels (the profiler shows both)
        *_swiglu(name, (tokens, d_ff), dtype),
        gemm(f"{name}.down", tokens, d_model, d_ff, dtype),
        _eltwise(f"{name}.residual2", "add", x, dtype, 2),
    ]
    # README section 7: only the CUDA-graph rows are GPU time; eager rows add host time that the
    # torch dispatcher spends per op (far above the 11 us of a bare launch), reported apart
    eager = str(row["impl"]) == "eager"
    flushed = _l2_flushed(row)
    return LoweredRow(
        index,
        "layer_eager" if eager else "layer",
        tuple(ops),
        eager_multi_kernel=eager,
        l2_flushed=flushed,
        graph=not eager,
        queue_head_start_s=QUEUE_PAD_WARM_S if flushed is False else QUEUE_PAD_FLUSHED_S,
    )


RowLowering = Callable[[int, pd.Series], LoweredRow | SkippedRow]

ROW_LOWERINGS: dict[str, RowLowering] = {
    "gemm_xWt": _lower_dense_gemm,
    "gemm_square": _lower_dense_gemm,
    "dense_linear_same_shape": _lower_dense_gemm,
    "sparse24_linear": _lower_sparse24,
    "sparse24_cslt_mm_searched": _lower_sparse24,
    "bmm_qKt": _lower_bmm,
    "bmm_PV": _lower_bmm,
    "sdpa_prefill": _lower_sdpa,
    "sdpa_decode": _lower_sdpa,
    "moe_layer": _lower_moe,
    "decoder_layer_prefill": _lower_layer,
    "decoder_layer_decode": _lower_layer,
}


# --- small op builders shared by the lowerings -------------------------------------------------


def _act(name: str, shape: tuple[int, ...], dtype: DType) -> Tensor:
    return Tensor(name, shape, dtype)


def _eltwise(name: str, function: str, shape: tuple[int, ...], dtype: DType, n_in: int) -> Op:
    ins = tuple(_act(f"{name}.in{i}", shape, dtype) for i in range(n_in))
    return Elementwise(name, function, ins, _act(f"{name}.out", shape, dtype))


def _rmsnorm(name: str, shape: tuple[int, int], dtype: DType) -> Op:
    weight = Tensor(f"{name}.weight", (shape[-1],), dtype, is_weight=True)
    return Norm(
        name, "rmsnorm", _act(f"{name}.x", shape, dtype), weight, _act(f"{name}.out", shape, dtype)
    )


def _swiglu(name: str, shape: tuple[int, int], dtype: DType) -> list[Op]:
    return [
        _eltwise(f"{name}.silu", "silu", shape, dtype, 1),
        _eltwise(f"{name}.mul", "mul", shape, dtype, 2),
    ]


def _combine(name: str, shape: tuple[int, int], dtype: DType) -> list[Op]:
    # routing-weight multiply, then index_add_ into the token-ordered output
    return [
        _eltwise(f"{name}.weight_mul", "mul", shape, dtype, 2),
        _eltwise(f"{name}.index_add", "add", shape, dtype, 2),
    ]


# --- cell parsing ------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _int(row: pd.Series, column: str) -> int:
    value = row.get(column)
    if not _is_number(value):
        raise Unlowerable(f"column '{column}' is empty for op '{row['op']}'")
    number = float(value)  # type: ignore[arg-type]
    if number != int(number) or number < 1:
        raise Unlowerable(f"column '{column}' = {value} is not a positive integer")
    return int(number)


def _l2_flushed(row: pd.Series) -> bool | None:
    value = row.get("l2_flush")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _flag(value)


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return _is_number(value) and bool(float(value))  # type: ignore[arg-type]


def _dtype(row: pd.Series) -> DType:
    name = _text(row.get("dtype")).lower()
    if name not in _DTYPES:
        raise Unlowerable(f"dtype '{name}' has no archsim equivalent")
    return _DTYPES[name]


def _extra(row: pd.Series) -> dict[str, object]:
    text = _text(row.get("extra"))
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _expert_counts(row: pd.Series, experts: int, routed: int) -> list[int]:
    text = _text(row.get("expert_counts"))
    if not text:
        raise Unlowerable("MoE row without 'expert_counts'")
    counts = [int(c) for c in text.split("|")]
    if len(counts) != experts or sum(counts) != routed:
        raise Unlowerable(
            f"expert_counts has {len(counts)} entries summing to {sum(counts)}; "
            f"expected {experts} summing to T*topk = {routed}"
        )
    return counts
