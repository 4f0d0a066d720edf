"""PyTorch profiler Chrome traces (``record_shapes=True``): GPU kernels with the shapes that ran.

Each GPU event (kernel, memset, memcpy) is linked to the host call that launched it (same
``args.correlation``), then to the CPU ops enclosing that call on the same thread (time
containment). The innermost enclosing aten op that archsim can lower decides the ops: its
``Input Dims`` and ``Input type`` give the shapes and dtype. All GPU events launched by one aten op
call form a *group*; the op is predicted once, on the group's principal kernel, so helper kernels
(cuBLAS ``splitKreduce``, cuDNN ``lean_reduction``, workspace memsets) are attributed to it and
never counted twice.

Iterations are the ``ProfilerStep#N`` annotations when present; otherwise the top-level
``record_function`` annotations, each one an iteration when their names are distinct, or a new
iteration whenever the first tag repeats (e.g. ``L.rmsnorm1`` opening each layer call).
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archsim.errors import ArchsimError
from archsim.ir.ops import Attention, Elementwise, Gemm, Norm, Op, Softmax, attention, gemm
from archsim.ir.tensor import DType, Tensor
from archsim.validate.readers import SKINNY_M, Unlowerable

GPU_EVENT_CATEGORIES = ("kernel", "gpu_memset", "gpu_memcpy")
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")

# Kernels that finish the work of another kernel of the same aten op call; never its principal.
AUXILIARY_KERNEL = re.compile(r"splitKreduce|lean_reduction|reduce_kernel", re.IGNORECASE)

# Timestamps are microseconds with nanosecond digits; containment allows this much rounding.
_EPS_US = 1e-3

_TORCH_DTYPES = {
    "c10::BFloat16": DType.BF16,
    "c10::Half": DType.FP16,
    "float": DType.FP32,
    "c10::Float8_e4m3fn": DType.FP8,
    "c10::Float8_e5m2": DType.FP8,
    "signed char": DType.INT8,
}


@dataclass(frozen=True)
class _Span:
    """A complete ("X") trace event."""

    index: int
    name: str
    category: str
    ts_us: float
    dur_us: float
    pid: object
    tid: object
    args: dict[str, object]

    @property
    def end_us(self) -> float:
        return self.ts_us + self.dur_us


@dataclass(frozen=True)
class TraceKernel:
    """One GPU event of the trace with the host context that launched it.

    Attributes
    ----------
    iteration:
        Name of the profiled iteration the launch belongs to (None when unknown).
    kernel_name:
        Kernel name (or "Memset (Device)" / "Memcpy ...").
    kind:
        ``kernel``, ``gpu_memset`` or ``gpu_memcpy``.
    ts_us:
        GPU start time relative to the first GPU event of the trace, in microseconds.
    measured_us:
        GPU duration, in microseconds.
    correlation:
        The profiler's launch correlation id.
    aten_op:
        The aten op the event is lowered by (the innermost lowerable enclosing op), else the
        innermost enclosing aten op, else None.
    aten_input_shapes:
        ``Input Dims`` of ``aten_op`` as JSON text.
    aten_input_types:
        ``Input type`` of ``aten_op`` as JSON text.
    layer_step:
        Innermost enclosing ``record_function`` tag other than the iteration's own.
    group:
        Identifier of the aten op call that launched the event (-1 when there is none).
    """

    iteration: str | None
    kernel_name: str
    kind: str
    ts_us: float
    measured_us: float
    correlation: int | None
    aten_op: str | None
    aten_input_shapes: str
    aten_input_types: str
    layer_step: str | None
    group: int


@dataclass(frozen=True)
class OpGroup:
    """The GPU events of one aten op call, with the ops that call lowers to.

    Attributes
    ----------
    group:
        The ``TraceKernel.group`` id.
    principal:
        Index (into the trace's kernels) of the event that carries the prediction.
    members:
        Indices of every event of the group, principal included.
    ops:
        The lowered ops (empty when ``reason`` says why not).
    family:
        Validation family of the ops (``gemm``, ``attention_prefill``, ``norm`` ...), or None.
    reason:
        Why the group is not lowered ("" when it is).
    """

    group: int
    principal: int
    members: tuple[int, ...]
    ops: tuple[Op, ...]
    family: str | None
    reason: str = ""


@dataclass(frozen=True)
class ProfilerTrace:
    """The GPU events of a trace, their op groups and the iterations found."""

    source: str
    kernels: tuple[TraceKernel, ...]
    groups: tuple[OpGroup, ...]
    iterations: tuple[str, ...]

    def busy_us_by_iteration(self) -> dict[str, float]:
        """Sum of GPU event durations (kernels, memsets, memcpys) per iteration, microseconds."""
        busy = {name: 0.0 for name in self.iterations}
        for kernel in self.kernels:
            if kernel.iteration is not None:
                busy[kernel.iteration] += kernel.measured_us
        return busy


def load_trace_events(path: Path) -> list[dict[str, object]]:
    """The ``traceEvents`` of a Chrome trace file (``.json`` or gzipped ``.json.gz``)."""
    try:
        with path.open("rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, EOFError) as exc:
        raise ArchsimError(f"{path}: cannot read as a Chrome trace ({exc})") from exc
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ArchsimError(f"{path}: no 'traceEvents' list; not a PyTorch profiler trace")
    return [e for e in events if isinstance(e, dict)]


def read_trace(path: Path) -> ProfilerTrace:
    """Parse a profiler trace into GPU events with shapes, op groups and iterations.

    Parameters
    ----------
    path:
        A ``torch.profiler`` Chrome trace recorded with ``record_shapes=True``.
    """
    spans = _complete_events(load_trace_events(path))
    gpu = sorted((s for s in spans if s.category in GPU_EVENT_CATEGORIES), key=lambda s: s.ts_us)
    if not gpu:
        raise ArchsimError(f"{path}: the trace has no GPU kernel events (was CUDA profiled?)")
    launches = {
        corr: s
        for s in spans
        if s.category in LAUNCH_CATEGORIES and (corr := _correlation(s)) is not None
    }
    by_thread: dict[tuple[object, object], list[_Span]] = {}
    annotations: dict[tuple[object, object], list[_Span]] = {}
    for s in spans:
        if s.category == "cpu_op":
            by_thread.setdefault((s.pid, s.tid), []).append(s)
        elif s.category == "user_annotation":
            annotations.setdefault((s.pid, s.tid), []).append(s)

    launch_of = [launches.get(c) if (c := _correlation(s)) is not None else None for s in gpu]
    op_chains = _chains_for(by_thread, launch_of)
    tag_chains = _chains_for(annotations, launch_of)
    iteration_spans = _iteration_spans(annotations)
    iteration_ids = {id(span): name for name, span in iteration_spans}

    origin_us = gpu[0].ts_us
    kernels: list[TraceKernel] = []
    group_ops: dict[int, tuple[_Span, ...]] = {}
    for position, (event, launch) in enumerate(zip(gpu, launch_of, strict=True)):
        chain = op_chains[position]
        chosen = _lowerable(chain)
        shown = chosen or (chain[-1] if chain else None)
        if chosen is not None:
            group_ops.setdefault(chosen.index, tuple(chain[: chain.index(chosen) + 1]))
        tags = tag_chains[position]
        iteration = next((iteration_ids[id(t)] for t in tags if id(t) in iteration_ids), None)
        if iteration is None and launch is not None:
            iteration = _iteration_by_time(iteration_spans, launch)
        step = next((t.name for t in reversed(tags) if id(t) not in iteration_ids), None)
        kernels.append(
            TraceKernel(
                iteration=iteration,
                kernel_name=event.name,
                kind=event.category,
                ts_us=round(event.ts_us - origin_us, 3),
                measured_us=event.dur_us,
                correlation=_correlation(event),
                aten_op=shown.name if shown else None,
                aten_input_shapes=json.dumps(shown.args.get("Input Dims")) if shown else "",
                aten_input_types=json.dumps(shown.args.get("Input type")) if shown else "",
                layer_step=step,
                group=chosen.index if chosen is not None else -1,
            )
        )
    groups = _groups(kernels, group_ops)
    names = tuple(name for name, _ in iteration_spans)
    if any(k.iteration is None for k in kernels) and not names:
        kernels = [_with_iteration(k, "all") for k in kernels]
        names = ("all",)
    return ProfilerTrace(str(path), tuple(kernels), groups, names)


# --- linking ------------------------------------------------------------------------------------


def _complete_events(events: list[dict[str, object]]) -> list[_Span]:
    spans = []
    for index, e in enumerate(events):
        if e.get("ph") != "X" or "ts" not in e:
            continue
        args = e.get("args")
        spans.append(
            _Span(
                index=index,
                name=str(e.get("name", "")),
                category=str(e.get("cat", "")),
                ts_us=float(e["ts"]),  # type: ignore[arg-type]
                dur_us=float(e.get("dur", 0.0)),  # type: ignore[arg-type]
                pid=e.get("pid"),
                tid=e.get("tid"),
                args=args if isinstance(args, dict) else {},
            )
        )
    return spans


def _correlation(span: _Span) -> int | None:
    value = span.args.get("correlation")
    return int(value) if isinstance(value, int | float) else None


def _chains_for(
    intervals_by_thread: dict[tuple[object, object], list[_Span]], launches: list[_Span | None]
) -> list[list[_Span]]:
    """For each launch, the intervals of its thread that contain it, outermost first."""
    chains: list[list[_Span]] = [[] for _ in launches]
    queries: dict[tuple[object, object], list[int]] = {}
    for position, launch in enumerate(launches):
        if launch is not None:
            queries.setdefault((launch.pid, launch.tid), []).append(position)
    for thread, positions in queries.items():
        intervals = sorted(intervals_by_thread.get(thread, []), key=lambda s: (s.ts_us, -s.dur_us))
        positions.sort(key=lambda p: launches[p].ts_us)  # type: ignore[union-attr]
        # Sweep in time order: ops on one thread nest, so the open ones form a stack.
        stack: list[_Span] = []
        cursor = 0
        for position in positions:
            launch = launches[position]
            assert launch is not None
            while cursor < len(intervals) and intervals[cursor].ts_us <= launch.ts_us + _EPS_US:
                start = intervals[cursor].ts_us
                while stack and stack[-1].end_us < start - _EPS_US:
                    stack.pop()
                stack.append(intervals[cursor])
                cursor += 1
            while stack and stack[-1].end_us < launch.ts_us - _EPS_US:
                stack.pop()
            chains[position] = [s for s in stack if s.end_us >= launch.end_us - _EPS_US]
    return chains


def _iteration_spans(
    annotations: dict[tuple[object, object], list[_Span]],
) -> list[tuple[str, _Span]]:
    """(name, span) of each profiled iteration, in time order; empty when none can be found."""
    every = [s for spans in annotations.values() for s in spans]
    steps = sorted((s for s in every if s.name.startswith("ProfilerStep#")), key=lambda s: s.ts_us)
    if steps:
        return [(s.name, s) for s in steps]
    for spans in annotations.values():
        ordered = sorted(spans, key=lambda s: (s.ts_us, -s.dur_us))
        top: list[_Span] = []
        for span in ordered:
            if not top or span.ts_us >= top[-1].end_us - _EPS_US:
                top.append(span)
        names = [s.name for s in top]
        if len(top) > 1 and len(set(names)) == len(names):
            return [(s.name, s) for s in top]
        if len(top) > 1 and names.count(names[0]) > 1:
            # tags repeat per iteration: each occurrence of the first tag opens a new one
            starts = [i for i, name in enumerate(names) if name == names[0]]
            bounds = [*starts, len(top)]
            found = []
            for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                first, last = top[lo], top[hi - 1]
                span = _Span(
                    -1,
                    f"iter{n}",
                    "iteration",
                    first.ts_us,
                    last.end_us - first.ts_us,
                    first.pid,
                    first.tid,
                    {},
                )
                found.append((span.name, span))
            return found
    return []


def _iteration_by_time(iterations: list[tuple[str, _Span]], launch: _Span) -> str | None:
    starts = [span.ts_us for _, span in iterations]
    at = bisect_right(starts, launch.ts_us + _EPS_US) - 1
    if at >= 0 and iterations[at][1].end_us >= launch.ts_us - _EPS_US:
        return iterations[at][0]
    return None


def _with_iteration(kernel: TraceKernel, name: str) -> TraceKernel:
    return TraceKernel(**{**kernel.__dict__, "iteration": name})


def _groups(
    kernels: list[TraceKernel], chains: dict[int, tuple[_Span, ...]]
) -> tuple[OpGroup, ...]:
    members: dict[int, list[int]] = {}
    for position, kernel in enumerate(kernels):
        if kernel.group >= 0:
            members.setdefault(kernel.group, []).append(position)
    groups = []
    for group, positions in members.items():
        principal = next(
            (
                p
                for p in positions
                if kernels[p].kind == "kernel"
                and not AUXILIARY_KERNEL.search(kernels[p].kernel_name)
            ),
            next((p for p in positions if kernels[p].kind == "kernel"), positions[0]),
        )
        chain = chains[group]
        try:
            ops = lower_aten(chain[-1].name, chain, f"op{group}")
            family = _family(ops)
            groups.append(OpGroup(group, principal, tuple(positions), ops, family))
        except (Unlowerable, ValueError) as exc:
            groups.append(OpGroup(group, principal, tuple(positions), (), None, str(exc)))
    return tuple(sorted(groups, key=lambda g: g.principal))


# --- lowering of aten ops -------------------------------------------------------------------------


def lower_aten(name: str, chain: Sequence[_Span], op_name: str) -> tuple[Op, ...]:
    """Lower the aten op call ``chain[-1]`` (enclosed by ``chain[:-1]``) to archsim ops."""
    lowering = ATEN_LOWERINGS.get(name)
    if lowering is None:
        raise Unlowerable(f"no lowering for {name}")
    return lowering(_Call(chain[-1], chain[:-1]), op_name)


@dataclass(frozen=True)
class _Call:
    span: _Span
    outer: Sequence[_Span]

    @property
    def dims(self) -> list[list[int]]:
        dims = self.span.args.get("Input Dims")
        if not isinstance(dims, list):
            raise Unlowerable(f"{self.span.name} has no 'Input Dims' (record_shapes was off)")
        return [d if isinstance(d, list) else [] for d in dims]

    def tensor_dims(self) -> list[list[int]]:
        return [d for d in self.dims if d]

    def dtype(self) -> DType:
        types = self.span.args.get("Input type")
        # the first tensor input decides; scalars and empty (None) arguments are skipped
        tensor_types = [
            str(t)
            for t in (types if isinstance(types, list) else [])
            if t and "Scalar" not in str(t)
        ]
        if not tensor_types or tensor_types[0] not in _TORCH_DTYPES:
            found = tensor_types[0] if tensor_types else None
            raise Unlowerable(f"{self.span.name}: input type {found!r} has no archsim dtype")
        return _TORCH_DTYPES[tensor_types[0]]

    def contiguous(self) -> bool:
        """False when a tensor input's ``Input Strides`` are not the row-major ones of its dims.

        A trace without strides (older profilers) counts as contiguous.
        """
        strides = self.span.args.get("Input Strides")
        if not isinstance(strides, list):
            return True
        for dims, stride in zip(self.dims, strides, strict=False):
            if not dims or not isinstance(stride, list) or len(stride) != len(dims):
                continue
            expected = 1
            for size, actual in zip(reversed(dims), reversed(stride), strict=True):
                # a dimension of size 1 may carry any stride
                if size != 1 and actual != expected:
                    return False
                expected *= size
        return True

    def concrete(self, position: int) -> str:
        values = self.span.args.get("Concrete Inputs")
        if isinstance(values, list) and position < len(values):
            return str(values[position])
        return ""


def _lower_mm(call: _Call, name: str) -> tuple[Op, ...]:
    a, b = call.tensor_dims()[-2:]
    return (_gemm(name, a, b, call.dtype()),)


def _lower_addmm(call: _Call, name: str) -> tuple[Op, ...]:
    # addmm(bias, a, b): the bias add is fused into the GEMM epilogue
    dims = call.dims
    return (_gemm(name, dims[1], dims[2], call.dtype()),)


def _lower_bmm(call: _Call, name: str) -> tuple[Op, ...]:
    a, b = call.tensor_dims()[-2:]
    if len(a) != 3 or len(b) != 3 or a[0] != b[0] or a[2] != b[1]:
        raise Unlowerable(f"bmm shapes {a} x {b} are not [B,M,K] x [B,K,N]")
    return (gemm(name, a[1], b[2], a[2], call.dtype(), batch=a[0], b_is_weight=False),)


def _lower_matmul(call: _Call, name: str) -> tuple[Op, ...]:
    a, b = call.tensor_dims()[:2]
    if len(b) == 2:
        return (_gemm(name, a, b, call.dtype()),)
    if len(a) == len(b) == 3:
        return _lower_bmm(call, name)
    raise Unlowerable(f"matmul shapes {a} x {b} are neither [..,M,K] x [K,N] nor batched 3-D")


def _lower_linear(call: _Call, name: str) -> tuple[Op, ...]:
    x, w = call.tensor_dims()[:2]
    if len(w) != 2 or x[-1] != w[1]:
        raise Unlowerable(f"linear shapes {x} x {w} are not [..,K] x [N,K]")
    return (gemm(name, math.prod(x[:-1]), w[0], w[1], call.dtype()),)


def _gemm(name: str, a: list[int], b: list[int], dtype: DType) -> Op:
    if len(b) != 2 or a[-1] != b[0]:
        raise Unlowerable(f"GEMM shapes {a} x {b} are not [..,M,K] x [K,N]")
    return gemm(name, math.prod(a[:-1]), b[1], b[0], dtype)


# (layout of q/k/v, position of is_causal among the arguments) per attention entry point; the
# flash/efficient *_forward kernels take [batch, seq, heads, dim], the sdpa front ends
# [batch, heads, seq, dim]. Efficient attention passes a mask type (0 none, 1/2 causal).
_ATTENTION_SIGNATURES: dict[str, tuple[str, int]] = {
    "aten::scaled_dot_product_attention": ("bhsd", 5),
    "aten::_scaled_dot_product_cudnn_attention": ("bhsd", 6),
    "aten::_cudnn_attention_forward": ("bhsd", 10),
    "aten::_scaled_dot_product_flash_attention": ("bhsd", 4),
    "aten::_flash_attention_forward": ("bshd", 8),
    "aten::_scaled_dot_product_efficient_attention": ("bhsd", 6),
    "aten::_efficient_attention_forward": ("bshd", 9),
}


def _lower_attention(call: _Call, name: str) -> tuple[Op, ...]:
    layout, _ = _ATTENTION_SIGNATURES[call.span.name]
    q, k = call.tensor_dims()[:2]
    if len(q) != 4 or len(k) != 4:
        raise Unlowerable(f"attention q {q} / k {k} are not 4-D")
    if layout == "bhsd":
        (batch, heads_q, q_len, head_dim), (_, heads_kv, kv_len, _) = q, k
    else:
        (batch, q_len, heads_q, head_dim), (_, kv_len, heads_kv, _) = q, k
    op = attention(
        name,
        batch=batch,
        heads_q=heads_q,
        heads_kv=heads_kv,
        q_len=q_len,
        kv_len=kv_len,
        head_dim=head_dim,
        causal=_is_causal(call),
        dtype=call.dtype(),
    )
    return (op,)


def _is_causal(call: _Call) -> bool:
    # the innermost call may not carry the flag (or carries it as a mask type); any enclosing
    # attention front end that does is as good
    for span in (call.span, *reversed(call.outer)):
        signature = _ATTENTION_SIGNATURES.get(span.name)
        if signature is None:
            continue
        value = _Call(span, ()).concrete(signature[1]).strip()
        if value in ("True", "False"):
            return value == "True"
        if value.isdigit():
            return int(value) != 0
    return False


def _lower_norm(call: _Call, name: str) -> tuple[Op, ...]:
    x = call.tensor_dims()[0]
    dtype = call.dtype()
    rows, cols = math.prod(x[:-1]), x[-1]
    function = "layernorm" if "layer_norm" in call.span.name else "rmsnorm"
    return (
        Norm(
            name,
            function,
            Tensor(f"{name}.x", (rows, cols), dtype),
            Tensor(f"{name}.weight", (cols,), dtype, is_weight=True),
            Tensor(f"{name}.out", (rows, cols), dtype),
        ),
    )


def _lower_softmax(call: _Call, name: str) -> tuple[Op, ...]:
    x = tuple(call.tensor_dims()[0])
    dtype = call.dtype()
    return (Softmax(name, Tensor(f"{name}.x", x, dtype), Tensor(f"{name}.out", x, dtype)),)


def _elementwise(function: str) -> Callable[[_Call, str], tuple[Op, ...]]:
    def lower(call: _Call, name: str) -> tuple[Op, ...]:
        shapes = [tuple(d) for d in call.tensor_dims()]
        if not shapes:
            raise Unlowerable(f"{call.span.name} has no tensor inputs")
        out = tuple(int(d) for d in np.broadcast_shapes(*shapes))
        dtype = call.dtype()
        if function == "copy":
            # copy_(dst, src) reads the source and writes the destination once
            shapes = shapes[-1:]
        ins = tuple(Tensor(f"{name}.in{i}", s, dtype) for i, s in enumerate(shapes))
        out_tensor = Tensor(f"{name}.out", out, dtype)
        return (Elementwise(name, function, ins, out_tensor, contiguous=call.contiguous()),)

    return lower


AtenLowering = Callable[[_Call, str], tuple[Op, ...]]

ATEN_LOWERINGS: dict[str, AtenLowering] = {
    "aten::mm": _lower_mm,
    "aten::_scaled_mm": _lower_mm,
    "aten::addmm": _lower_addmm,
    "aten::bmm": _lower_bmm,
    "aten::baddbmm": _lower_bmm,
    "aten::matmul": _lower_matmul,
    "aten::linear": _lower_linear,
    **dict.fromkeys(_ATTENTION_SIGNATURES, _lower_attention),
    "aten::_fused_rms_norm": _lower_norm,
    "aten::rms_norm": _lower_norm,
    "aten::native_layer_norm": _lower_norm,
    "aten::layer_norm": _lower_norm,
    "aten::_softmax": _lower_softmax,
    "aten::softmax": _lower_softmax,
    **dict.fromkeys(("aten::add", "aten::add_", "aten::sub", "aten::sub_"), _elementwise("add")),
    **dict.fromkeys(("aten::mul", "aten::mul_", "aten::div", "aten::div_"), _elementwise("mul")),
    **dict.fromkeys(("aten::silu", "aten::silu_"), _elementwise("silu")),
    **dict.fromkeys(("aten::gelu", "aten::gelu_"), _elementwise("gelu")),
    **dict.fromkeys(
        ("aten::copy_", "aten::clone", "aten::_to_copy", "aten::index_copy_"), _elementwise("copy")
    ),
}


def _lowerable(chain: Sequence[_Span]) -> _Span | None:
    """The innermost op of ``chain`` that archsim can lower."""
    return next((s for s in reversed(chain) if s.name in ATEN_LOWERINGS), None)


def _family(ops: tuple[Op, ...]) -> str:
    op = ops[0]
    if isinstance(op, Gemm):
        if op.batch > 1 and not op.b.is_weight:
            return "bmm"
        return "gemm" if op.m >= SKINNY_M else "gemm_skinny"
    if isinstance(op, Attention):
        return f"attention_{op.phase}"
    return op.kind
