#!/usr/bin/env python3
"""Focused GPU measurements for validating archsim's GPU model on shapes it was not fitted on.

What it measures
----------------
Kernel times of the op families that ``archsim validate`` compares (dense GEMM, 2:4 sparse GEMM,
batched GEMV of attention decode, ``scaled_dot_product_attention`` prefill and decode, an MoE
layer), plus device facts (properties, nvidia-smi, copy bandwidth, peak GEMM). Two plans:

``h100_holdout``
    Shapes that are *not* in the H100 development set (``shared/data/gpu``): other models' linear
    layers (Llama-3-70B, Mixtral, Qwen sizes), odd M, non-power-of-two squares, other 2:4 sparse
    shapes, other decode lengths, head_dim 64 attention, another MoE configuration.
``h200``
    The same dense GEMM list (bf16, fp16 and fp8 L2-flushed, bf16 L2-warm), the bmm decode GEMVs,
    head_dim-128 attention rows and the MoE rows, for validating an H200 machine file; the device
    facts give its SM count, clocks, L2, copy bandwidth and peak GEMM.

Output (all under ``--out``; written row by row, so a run cut short still leaves its rows)
    ``facts.csv gemm.csv sparse.csv bmm.csv sdpa.csv moe.csv``
        One row per measurement in exactly the column schema of ``shared/data/gpu/*.csv``
        (``FIELDS`` below); ``archsim validate FILE --hw ...`` reads them unchanged.
    ``device_facts.json``
        nvidia-smi fields (before the run, right after the bf16 peak, after the section),
        ``nvidia-smi -q`` text, all ``torch.cuda.get_device_properties`` fields, library versions
        and the headline numbers (``measured``).
    ``run_log.txt``
        The log of every section.

Timing method (the same as ``shared/tools/gpu_probe.py``, which made the development set)
    CUDA events around the op only, one start/end pair per rep, one host sync after all reps;
    3 warm-up calls, one timed call to estimate the duration ``t``, then
    ``reps = clamp(0.15 s / t, 5, 50)`` (MoE: at most 30). With ``l2_flush=True`` a 256 MiB int32
    buffer is overwritten (``zero_``) before each rep, followed by a ~100 us spin kernel
    (``torch.cuda._sleep``); with ``l2_flush=False`` a ~300 us spin kernel. Both are outside the
    timed region and keep the GPU queue ahead of the host. ``graph=True`` rows capture the op in a
    CUDA graph (warmed on a side stream) and time its replay. Each section runs in its own Python
    process with a wall-clock cap and starts with a 0.4 s bf16 GEMM burn to ramp the clocks.
    Inputs are ``randn`` (never zeros), seeds fixed per section. Clocks and power settings of the
    card are never touched.

How to run
    On a machine with PyTorch + CUDA (one GPU)::

        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_measure.py --plan h100_holdout --out $OUT
        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_measure.py --plan h200 --out $OUT

    Anywhere (no torch needed), to list the rows a plan would measure::

        python3 benchmarks/gpu_measure.py --plan h100_holdout --dry-run

    ``--sections gemm,bmm`` runs a subset; ``--budget-s`` caps the whole run (default 480 s);
    ``--plan smoke`` runs tiny sizes on a GPU in well under a minute.
"""

# The closures below bind loop variables and are called within the same iteration (B023, F821
# after the per-iteration `del`), and the timed ops are lambdas as in shared/tools/gpu_probe.py.
# ruff: noqa: B023, E731, F821, B904

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time
import traceback

FIELDS = [
    "section",
    "op",
    "impl",
    "dtype",
    "M",
    "N",
    "K",
    "B",
    "H",
    "H_kv",
    "S_q",
    "S_kv",
    "head_dim",
    "E",
    "topk",
    "d_model",
    "d_ff",
    "T",
    "l2_flush",
    "graph",
    "reps",
    "median_us",
    "p10_us",
    "p90_us",
    "min_us",
    "mean_us",
    "flops",
    "bytes",
    "tflops",
    "gbps",
    "flops_formula",
    "bytes_formula",
    "ref_median_us",
    "speedup_vs_ref",
    "check_rel_err",
    "expert_counts",
    "status",
    "error",
    "extra",
    "gpu",
    "torch_version",
    "cuda_version",
    "timestamp",
]

FLUSH_BYTES = 256 * 1024 * 1024
PAD_FLUSH_CYCLES = 200000  # ~100 us at 1.98 GHz, after the 256 MiB flush
PAD_NOFLUSH_CYCLES = 600000  # ~300 us at 1.98 GHz

# ----------------------------------------------------------------------------------------------
# plans
# ----------------------------------------------------------------------------------------------
# (N, K) of linear layers from models whose shapes are not in the development set:
# Llama-3-70B (d 8192, ffn 28672; GQA qkv 10240), Qwen-14B-like (d 5120, ffn 13824),
# a 6144x4096 fused qkv of Llama-3-8B, BERT-base-like (768 / 3072).
HOLDOUT_NK = [
    (8192, 8192),
    (28672, 8192),
    (8192, 28672),
    (10240, 8192),
    (6144, 4096),
    (5120, 5120),
    (13824, 5120),
    (5120, 13824),
    (3072, 768),
    (768, 3072),
]
HOLDOUT_M = [1, 8, 24, 48, 96, 200, 384, 768, 1536, 3000, 6144]
HOLDOUT_SQUARE = [1000, 1800, 2560, 3500, 5000, 7168, 9000, 10240]
# _scaled_mm needs dimensions divisible by 16: the nearest such sizes
HOLDOUT_SQUARE_FP8 = [1008, 1808, 2560, 3504, 5008, 7168, 9008, 10240]
# a third of the (N, K) list measured twice (pass 2), to show run-to-run spread
REPEAT_NK = [(8192, 8192), (28672, 8192), (3072, 768)]

PLANS = {
    "h100_holdout": dict(
        sections=["facts", "gemm", "sparse", "bmm", "sdpa", "moe"],
        caps={"facts": 35, "gemm": 150, "sparse": 100, "bmm": 25, "sdpa": 70, "moe": 60},
        copy_sizes=[1 << 30, 4 << 30],
        peak_n=8192,
        peak_dtypes=["bf16", "fp16", "fp8_e4m3"],
        # (dtype, l2_flush, (N, K) list, M list, square sizes, pass)
        gemm_passes=[
            ("bf16", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("fp8_e4m3", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE_FP8, 1),
            ("fp16", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("bf16", False, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("bf16", True, REPEAT_NK, HOLDOUT_M, HOLDOUT_SQUARE[-3:], 2),
        ],
        sparse_NK=HOLDOUT_NK,
        sparse_M=[32, 256, 1024, 4096],
        bmm_BH=[64, 512],
        bmm_L=[1024, 4096, 16384],
        bmm_hd=128,
        sdpa_prefill=[
            (B, S, Hkv, hd)
            for hd in (64, 128)
            for B in (1, 2)
            for S in (1024, 4096)
            for Hkv in (32, 8)
        ],
        sdpa_decode=[(B, L, 8, 128) for B in (4, 16, 64) for L in (1024, 4096, 16384)],
        sdpa_H=32,
        sdpa_backends=["default", "flash_attention"],
        moe_cfgs=[
            ("e16_top4_d2048_ff2816", 16, 4, 2048, 2816),
            ("e8_top2_d5120_ff13824", 8, 2, 5120, 13824),
        ],
        moe_T=[16, 256, 2048],
    ),
    "h200": dict(
        sections=["facts", "gemm", "bmm", "sdpa", "moe"],
        caps={"facts": 45, "gemm": 150, "bmm": 25, "sdpa": 60, "moe": 60},
        copy_sizes=[128 << 20, 1 << 30, 4 << 30],
        peak_n=8192,
        peak_dtypes=["bf16", "fp16", "fp8_e4m3"],
        gemm_passes=[
            ("bf16", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("fp8_e4m3", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE_FP8, 1),
            ("fp16", True, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("bf16", False, HOLDOUT_NK, HOLDOUT_M, HOLDOUT_SQUARE, 1),
            ("bf16", True, REPEAT_NK, HOLDOUT_M, HOLDOUT_SQUARE[-3:], 2),
        ],
        bmm_BH=[64, 512],
        bmm_L=[1024, 4096, 16384],
        bmm_hd=128,
        sdpa_prefill=[(B, S, Hkv, 128) for B in (1, 2) for S in (1024, 4096) for Hkv in (32, 8)],
        sdpa_decode=[(B, L, 8, 128) for B in (4, 16, 64) for L in (1024, 4096, 16384)],
        sdpa_H=32,
        sdpa_backends=["default", "flash_attention"],
        moe_cfgs=[
            ("e16_top4_d2048_ff2816", 16, 4, 2048, 2816),
            ("e8_top2_d5120_ff13824", 8, 2, 5120, 13824),
        ],
        moe_T=[16, 256, 2048],
    ),
    "smoke": dict(
        sections=["facts", "gemm", "sparse", "bmm", "sdpa", "moe"],
        caps={"facts": 30, "gemm": 30, "sparse": 40, "bmm": 20, "sdpa": 20, "moe": 30},
        copy_sizes=[128 << 20],
        peak_n=4096,
        peak_dtypes=["bf16"],
        gemm_passes=[
            ("bf16", True, [(3072, 768)], [1, 200], [1000], 1),
            ("fp8_e4m3", True, [(3072, 768)], [1, 200], [1008], 1),
        ],
        sparse_NK=[(6144, 4096)],
        sparse_M=[256],
        bmm_BH=[64],
        bmm_L=[1024],
        bmm_hd=128,
        sdpa_prefill=[(1, 1024, 8, 64)],
        sdpa_decode=[(4, 1024, 8, 128)],
        sdpa_H=32,
        sdpa_backends=["default", "flash_attention"],
        moe_cfgs=[("e16_top4_d2048_ff2816", 16, 4, 2048, 2816)],
        moe_T=[16],
    ),
}

# ----------------------------------------------------------------------------------------------
# globals set per section process
# ----------------------------------------------------------------------------------------------
torch = None
F = None
DEV = "cuda"
DEADLINE = float("inf")
META: dict = {}
_FLUSH_BUF = None
DRY = False


def left() -> float:
    return DEADLINE - time.time()


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def short_err(e, n=300):
    s = " ".join(f"{type(e).__name__}: {e}".split())
    return s[:n]


class Stop(Exception):
    pass


class Writer:
    """Appends rows in the shared/data/gpu schema; in dry-run mode only counts and prints."""

    def __init__(self, path):
        self.n = 0
        self.path = path
        if DRY:
            self.f = None
            return
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")  # noqa: SIM115 (kept open for the section)
        self.w = csv.DictWriter(
            self.f, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n"
        )
        if new:
            self.w.writeheader()
            self.f.flush()

    def row(self, **kw):
        r = {k: "" for k in FIELDS}
        r.update(
            {
                "gpu": META.get("gpu", ""),
                "torch_version": META.get("torch", ""),
                "cuda_version": META.get("cuda", ""),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
        timing = kw.pop("timing", None)
        if timing:
            r.update(
                {
                    k: timing[k]
                    for k in ("reps", "median_us", "p10_us", "p90_us", "min_us", "mean_us")
                }
            )
        extra = kw.pop("extra", None)
        if extra is not None:
            r["extra"] = json.dumps(extra, sort_keys=True, default=str)
        unknown = set(kw) - set(FIELDS)
        if unknown:
            raise KeyError(f"not schema columns: {sorted(unknown)}")
        r.update(kw)
        if not r.get("status"):
            r["status"] = "ok" if timing else "error"
        med = r.get("median_us")
        if med not in ("", None) and float(med) > 0:
            med = float(med)
            if r.get("flops") not in ("", None):
                r["tflops"] = round(float(r["flops"]) / (med * 1e-6) / 1e12, 4)
            if r.get("bytes") not in ("", None):
                r["gbps"] = round(float(r["bytes"]) / (med * 1e-6) / 1e9, 3)
        for k in ("median_us", "p10_us", "p90_us", "min_us", "mean_us"):
            if r[k] not in ("", None):
                r[k] = round(float(r[k]), 3)
        self.n += 1
        brief = {
            k: r[k]
            for k in (
                "op",
                "impl",
                "dtype",
                "M",
                "N",
                "K",
                "B",
                "H_kv",
                "S_q",
                "S_kv",
                "head_dim",
                "T",
                "l2_flush",
                "graph",
                "median_us",
                "tflops",
                "gbps",
                "status",
            )
            if r[k] not in ("", None)
        }
        if r["status"] != "ok":
            brief["error"] = str(r["error"])[:160]
        if DRY:
            print("  plan", json.dumps(brief), flush=True)
            return
        self.w.writerow(r)
        self.f.flush()
        print("  row", json.dumps(brief), flush=True)


# ----------------------------------------------------------------------------------------------
# timing (identical to shared/tools/gpu_probe.py)
# ----------------------------------------------------------------------------------------------
def sync():
    torch.cuda.synchronize()


def flush_buf():
    global _FLUSH_BUF
    if _FLUSH_BUF is None:
        _FLUSH_BUF = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=DEV)
    return _FLUSH_BUF


def _pct(v, q):
    import numpy as np

    return float(np.percentile(np.asarray(v, dtype=float), q))


DRY_TIMING = dict(reps=0, median_us=1.0, p10_us=1.0, p90_us=1.0, min_us=1.0, mean_us=1.0)


def bench(fn, flush=True, target_s=0.15, min_reps=5, max_reps=50, warmup=3, reps=None, pad=True):
    """Time fn() with CUDA events; returns dict of stats in microseconds."""
    if DRY:
        return dict(DRY_TIMING)
    for _ in range(warmup):
        fn()
    sync()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    torch.cuda.synchronize()
    est = max(s.elapsed_time(e) * 1e-3, 1e-6)
    if reps is None:
        reps = int(min(max_reps, max(min_reps, target_s / est)))
    buf = flush_buf() if flush else None
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if flush:
            buf.zero_()
            if pad:
                torch.cuda._sleep(PAD_FLUSH_CYCLES)
        elif pad:
            torch.cuda._sleep(PAD_NOFLUSH_CYCLES)
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    times = sorted(starts[i].elapsed_time(ends[i]) * 1e3 for i in range(reps))
    return dict(
        reps=reps,
        median_us=_pct(times, 50),
        p10_us=_pct(times, 10),
        p90_us=_pct(times, 90),
        min_us=times[0],
        mean_us=sum(times) / len(times),
        est_us=est * 1e6,
    )


def graph_of(fn):
    """Capture fn() (after warm-up on a side stream) into a CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g


def rel_err(out, ref):
    if DRY:
        return ""
    out, ref = out.float(), ref.float()
    d = (out - ref).norm().item()
    r = ref.norm().item()
    if not math.isfinite(d):
        return float("nan")
    return d / max(r, 1e-30)


def cuda_alive():
    try:
        torch.cuda.synchronize()
        return True
    except Exception:
        return False


def handle_error(W, e, **kw):
    """Write an error row; return False if the CUDA context is dead."""
    W.row(status="error", error=short_err(e), **kw)
    if isinstance(e, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
    ok = cuda_alive()
    if not ok:
        log("CUDA context appears dead after error; aborting section")
    return ok


def deadline_row(W, section, where):
    W.row(
        section=section,
        op="deadline_reached",
        status="skipped",
        error=f"section time budget reached at {where}; later items not measured",
    )


def randn(*shape, dtype=None, scale=1.0):
    t = torch.randn(*shape, device=DEV, dtype=torch.float32 if dtype is None else dtype)
    if scale != 1.0:
        t.mul_(scale)
    return t


def _free():
    if not DRY:
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# section: device facts
# ----------------------------------------------------------------------------------------------
SMI_FIELDS = [
    "name",
    "driver_version",
    "pstate",
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "clocks.applications.graphics",
    "clocks.applications.memory",
    "clocks.default_applications.graphics",
    "power.limit",
    "power.max_limit",
    "power.draw",
    "temperature.gpu",
    "memory.total",
    "memory.used",
    "pcie.link.gen.current",
    "pcie.link.width.current",
    "ecc.mode.current",
    "compute_mode",
    "mig.mode.current",
    "persistence_mode",
    "clocks_event_reasons.active",
]
SMI_SHORT = [
    "clocks.sm",
    "clocks.mem",
    "power.draw",
    "temperature.gpu",
    "clocks_event_reasons.active",
]


def smi_query(fields=SMI_FIELDS):
    out = {}
    try:  # one call first; any unsupported field fails the whole query
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        vals = [v.strip() for v in r.stdout.strip().split(",")]
        if r.returncode == 0 and len(vals) == len(fields):
            return dict(zip(fields, vals, strict=True))
    except Exception:
        pass
    for f in fields:
        try:
            r = subprocess.run(
                ["nvidia-smi", f"--query-gpu={f}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            out[f] = (r.stdout.strip() or r.stderr.strip())[:200]
        except Exception as e:
            out[f] = "ERR " + short_err(e, 100)
    return out


def sec_facts(cfg, W, outdir):
    facts = {"meta": META}
    meas = {}
    if not DRY:
        try:
            r = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, timeout=60)
            facts["nvidia_smi_q"] = r.stdout + r.stderr
        except Exception as e:
            facts["nvidia_smi_q_error"] = short_err(e)
        facts["nvidia_smi_before"] = smi_query()
        p = torch.cuda.get_device_properties(0)
        props = {}
        for a in dir(p):
            if a.startswith("_"):
                continue
            try:
                v = getattr(p, a)
            except Exception:
                continue
            if isinstance(v, (int, float, str, bool)):
                props[a] = v
            elif a == "uuid":
                props[a] = str(v)
        facts["torch_device_properties"] = props
        ver = {"torch": torch.__version__, "cuda": torch.version.cuda}
        for name, fn in [
            ("cudnn", lambda: torch.backends.cudnn.version()),
            ("cusparselt", lambda: torch.backends.cusparselt.version()),
            (
                "cublas_lt_bf16_reduced_reduction",
                lambda: torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
            ),
            ("allow_tf32_default", lambda: torch.backends.cuda.matmul.allow_tf32),
        ]:
            try:
                ver[name] = fn()
            except Exception as e:
                ver[name] = "ERR " + short_err(e, 100)
        try:
            import triton

            ver["triton"] = triton.__version__
        except Exception as e:
            ver["triton"] = "ERR " + short_err(e, 100)
        ver["python"] = sys.version.split()[0]
        facts["versions"] = ver
    # --- device-to-device copy bandwidth (large buffers: HBM, not L2) ---
    for nbytes in cfg["copy_sizes"]:
        kw = dict(
            section="facts",
            op="d2d_copy",
            impl="Tensor.copy_",
            dtype="bf16",
            N=nbytes // 2,
            l2_flush=False,
            flops=0,
            bytes=2 * nbytes,
            bytes_formula="2*nbytes (read+write)",
        )
        try:
            if DRY:
                t = bench(None)
            else:
                src = randn(nbytes // 2, dtype=torch.bfloat16)
                dst = torch.empty_like(src)
                t = bench(lambda: dst.copy_(src), flush=False, max_reps=100, target_s=0.3)
                del src, dst
            W.row(timing=t, extra={"nbytes": nbytes}, **kw)
            meas[f"copy_GBps_{nbytes >> 20}MiB"] = 2 * nbytes / (t["median_us"] * 1e-6) / 1e9
        except Exception as e:
            if not handle_error(W, e, **kw):
                return
    # --- write-only bandwidth (fill) ---
    nbytes = max(cfg["copy_sizes"])
    kw = dict(
        section="facts",
        op="fill_write",
        impl="Tensor.fill_",
        dtype="fp32",
        N=nbytes // 4,
        l2_flush=False,
        flops=0,
        bytes=nbytes,
        bytes_formula="nbytes (write only)",
    )
    try:
        if DRY:
            t = bench(None)
        else:
            buf = torch.empty(nbytes // 4, dtype=torch.float32, device=DEV)
            t = bench(lambda: buf.fill_(1.0), flush=False, max_reps=100, target_s=0.3)
            del buf
        W.row(timing=t, **kw)
        meas[f"fill_GBps_{nbytes >> 20}MiB"] = nbytes / (t["median_us"] * 1e-6) / 1e9
    except Exception as e:
        if not handle_error(W, e, **kw):
            return
    # --- peak GEMM at n^3 ---
    n = cfg["peak_n"]
    for dname in cfg["peak_dtypes"]:
        esz = {"bf16": 2, "fp16": 2, "fp8_e4m3": 1}[dname]
        kw = dict(
            section="facts",
            op="peak_gemm_square",
            impl="torch._scaled_mm" if dname == "fp8_e4m3" else "torch.matmul",
            dtype=dname,
            M=n,
            N=n,
            K=n,
            l2_flush=False,
            flops=2 * n**3,
            bytes=n * n * (2 * esz + 2),
            flops_formula="2*M*N*K",
            bytes_formula="(M*K+K*N)*in_bytes + M*N*out_bytes",
        )
        try:
            if DRY:
                t = bench(None)
            else:
                if dname == "fp8_e4m3":
                    a = randn(n, n).to(torch.float8_e4m3fn)
                    b = randn(n, n).to(torch.float8_e4m3fn).t()
                    one = torch.tensor(1.0, device=DEV)
                    fn = lambda: torch._scaled_mm(
                        a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16
                    )
                else:
                    dt = torch.bfloat16 if dname == "bf16" else torch.float16
                    a = randn(n, n, dtype=dt)
                    b = randn(n, n, dtype=dt)
                    fn = lambda: torch.matmul(a, b)
                t = bench(fn, flush=False, max_reps=50, min_reps=20, target_s=0.5, warmup=10)
                if dname == "bf16":
                    facts["nvidia_smi_right_after_bf16_peak"] = smi_query(SMI_SHORT)
                del a, b
            W.row(timing=t, extra={"data": "randn"}, **kw)
            meas[f"peak_{dname}_TFLOPs_{n}"] = 2 * n**3 / (t["median_us"] * 1e-6) / 1e12
        except Exception as e:
            if not handle_error(W, e, **kw):
                return
    # --- launch overhead ---
    if not DRY:
        try:
            x = torch.zeros(1, device=DEV)
            for _ in range(100):
                x.add_(1.0)
            sync()
            nl = 2000
            t0 = time.perf_counter()
            for _ in range(nl):
                x.add_(1.0)
            sync()
            host_us = (time.perf_counter() - t0) / nl * 1e6
            W.row(
                section="facts",
                op="launch_host_rate",
                impl="Tensor.add_ (1 elem), host wall clock",
                dtype="fp32",
                N=nl,
                status="ok",
                median_us=host_us,
                reps=1,
                extra={"meaning": "host wall time per eager launch incl. dispatcher overhead"},
            )
            meas["eager_launch_host_us"] = host_us
        except Exception as e:
            handle_error(W, e, section="facts", op="launch_overhead")
    facts["measured"] = meas
    if DRY:
        return
    facts["nvidia_smi_after"] = smi_query(SMI_SHORT)
    with open(os.path.join(outdir, "device_facts.json"), "w") as f:
        json.dump(facts, f, indent=1, default=str)
    log("facts:", json.dumps(meas))


# ----------------------------------------------------------------------------------------------
# section: dense GEMM
# ----------------------------------------------------------------------------------------------
def make_gemm(dname, M, N, K, square=False):
    """returns (fn, check_fn) computing x[M,K] @ W[N,K]^T (or square a@b)."""
    if dname == "fp8_e4m3":
        x8 = randn(M, K).to(torch.float8_e4m3fn)
        b8 = randn(N, K).to(torch.float8_e4m3fn).t()  # column-major (K,N)
        one = torch.tensor(1.0, device=DEV)
        fn = lambda: torch._scaled_mm(x8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

        def check():
            nn_ = min(N, 1024)
            return rel_err(fn()[:, :nn_], x8.float() @ b8[:, :nn_].float())

        return fn, check
    dt = torch.bfloat16 if dname == "bf16" else torch.float16
    x = randn(M, K, dtype=dt)
    b = randn(K, N, dtype=dt) if square else randn(N, K, dtype=dt).t()
    fn = lambda: torch.matmul(x, b)

    def check():
        nn_ = min(N, 1024)
        return rel_err(fn()[:, :nn_], x.float() @ b[:, :nn_].float())

    return fn, check


def sec_gemm(cfg, W, outdir):
    for dname, flush, nks, ms, squares, pss in cfg["gemm_passes"]:
        in_b = 1 if dname == "fp8_e4m3" else 2
        shapes = [(M, N, K, False) for (N, K) in nks for M in ms]
        shapes += [(n, n, n, True) for n in squares]
        last_nk = None
        for M, N, K, sq in shapes:
            if left() < 4:
                deadline_row(W, "gemm", f"{dname} flush={flush} pass={pss} M={M} N={N} K={K}")
                raise Stop()
            kw = dict(
                section="gemm",
                op="gemm_square" if sq else "gemm_xWt",
                impl="torch._scaled_mm" if dname == "fp8_e4m3" else "torch.matmul",
                dtype=dname,
                M=M,
                N=N,
                K=K,
                l2_flush=flush,
                flops=2 * M * N * K,
                bytes=(M * K + N * K) * in_b + M * N * 2,
                flops_formula="2*M*N*K",
                bytes_formula="(M*K+N*K)*in_bytes + M*N*out_bytes(2, bf16/fp16 out)",
            )
            try:
                chk = ""
                if DRY:
                    t = bench(None)
                else:
                    fn, check = make_gemm(dname, M, N, K, square=sq)
                    if last_nk != (N, K) and M >= 16:
                        chk = check()
                        last_nk = (N, K)
                    t = bench(fn, flush=flush)
                    del fn, check
                W.row(
                    timing=t,
                    check_rel_err=chk,
                    extra={
                        "layout": "a@b both row-major"
                        if sq and dname != "fp8_e4m3"
                        else "x[M,K] row-major @ W[N,K]^T (W row-major, i.e. B column-major)",
                        "out_dtype": "bf16" if dname == "fp8_e4m3" else dname,
                        "scales": "per-tensor fp32 =1.0" if dname == "fp8_e4m3" else None,
                        "pass": pss,
                        "set": "holdout",
                    },
                    **kw,
                )
            except Exception as e:
                if not handle_error(W, e, **kw):
                    raise Stop()
        _free()


# ----------------------------------------------------------------------------------------------
# section: 2:4 sparse (GPU time only: CUDA graph rows)
# ----------------------------------------------------------------------------------------------
def mask_24(N, K):
    """random 2:4 mask along K (2 of every 4 kept)."""
    r = torch.rand(N, K // 4, 4, device=DEV)
    idx = r.topk(2, dim=-1).indices
    m = torch.zeros(N, K // 4, 4, device=DEV, dtype=torch.bool)
    m.scatter_(-1, idx, True)
    return m.reshape(N, K)


def sec_sparse(cfg, W, outdir):
    if not DRY:
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT
    for N, K in cfg["sparse_NK"]:
        if left() < 8:
            deadline_row(W, "sparse", f"N={N} K={K}")
            raise Stop()
        s = wp = None
        try:
            if not DRY:
                w = randn(N, K, dtype=torch.bfloat16, scale=K**-0.5)
                wp = (w * mask_24(N, K)).contiguous()
                del w
                sync()
                t0 = time.perf_counter()
                s = SparseSemiStructuredTensorCUSPARSELT.from_dense(wp)
                sync()
                conv_ms = (time.perf_counter() - t0) * 1e3
            else:
                conv_ms = 0.0
            W.row(
                section="sparse",
                op="sparse24_compress",
                impl="cusparselt",
                dtype="bf16",
                N=N,
                K=K,
                status="ok",
                extra={"class": "SparseSemiStructuredTensorCUSPARSELT", "host_wall_ms": conv_ms},
            )
        except Exception as e:
            if not handle_error(
                W,
                e,
                section="sparse",
                op="sparse24_compress",
                impl="cusparselt",
                dtype="bf16",
                N=N,
                K=K,
            ):
                raise Stop()
            continue
        for M in cfg["sparse_M"]:
            if left() < 5:
                deadline_row(W, "sparse", f"N={N} K={K} M={M}")
                raise Stop()
            base = dict(
                section="sparse",
                dtype="bf16",
                M=M,
                N=N,
                K=K,
                l2_flush=True,
                flops=2 * M * N * K,
                flops_formula="2*M*N*K (dense-equivalent)",
            )
            dbytes = dict(bytes=(M * K + N * K + M * N) * 2, bytes_formula="(M*K+N*K+M*N)*2")
            sbytes = dict(
                bytes=(M * K + M * N) * 2 + N * K + N * K // 8,
                bytes_formula="(M*K+M*N)*2 + N*K/2*2 (kept values) + N*K/8 (metadata)",
            )
            ref = None
            x = dfn = None
            try:
                if DRY:
                    ref = bench(None)
                else:
                    x = randn(M, K, dtype=torch.bfloat16)
                    dfn = lambda: F.linear(x, wp)
                    g = graph_of(dfn)
                    ref = bench(lambda: g.replay(), flush=True)
                    del g
                W.row(
                    op="dense_linear_same_shape",
                    impl="F.linear dense (pruned W)",
                    graph=True,
                    timing=ref,
                    extra={"note": "CUDA graph replay (GPU time only)"},
                    **dbytes,
                    **base,
                )
            except Exception as e:
                if not handle_error(W, e, op="dense_linear_same_shape", graph=True, **base):
                    raise Stop()
            kw = dict(
                op="sparse24_cslt_mm_searched",
                impl="torch._cslt_sparse_mm",
                graph=True,
                **sbytes,
                **base,
            )
            try:
                alg = ""
                chk = ""
                if DRY:
                    ts = bench(None)
                else:
                    if x is None:
                        x = randn(M, K, dtype=torch.bfloat16)
                        dfn = lambda: F.linear(x, wp)
                    xt = x.t()
                    alg = torch._cslt_sparse_mm_search(s.packed, xt, transpose_result=True)
                    alg = alg[0] if isinstance(alg, (tuple, list)) else int(alg)
                    cfn = lambda: torch._cslt_sparse_mm(
                        s.packed, xt, transpose_result=True, alg_id=alg
                    )
                    chk = rel_err(cfn(), dfn()) if M in (cfg["sparse_M"][0], 1024) else ""
                    g = graph_of(cfn)
                    ts = bench(lambda: g.replay(), flush=True)
                    del g
                W.row(
                    timing=ts,
                    check_rel_err=chk,
                    ref_median_us=round(ref["median_us"], 3) if ref else "",
                    speedup_vs_ref=round(ref["median_us"] / ts["median_us"], 4) if ref else "",
                    extra={
                        "alg_id": alg,
                        "call": "_cslt_sparse_mm(packed, x.t(), "
                        "transpose_result=True, alg_id=searched)",
                        "ref": "dense graph row",
                    },
                    **kw,
                )
            except Exception as e:
                if not handle_error(W, e, **kw):
                    raise Stop()
            del x
        del s, wp
        _free()


# ----------------------------------------------------------------------------------------------
# section: batched GEMV (attention decode via bmm)
# ----------------------------------------------------------------------------------------------
def sec_bmm(cfg, W, outdir):
    d = cfg["bmm_hd"]
    for BH in cfg["bmm_BH"]:
        for L in cfg["bmm_L"]:
            if left() < 4:
                deadline_row(W, "bmm", f"BH={BH} L={L}")
                raise Stop()
            q = k = v = p = None
            if not DRY:
                try:
                    q = randn(BH, 1, d, dtype=torch.bfloat16)
                    k = randn(BH, L, d, dtype=torch.bfloat16)
                    v = randn(BH, L, d, dtype=torch.bfloat16)
                    p = torch.softmax(randn(BH, 1, L), -1).to(torch.bfloat16)
                except Exception as e:
                    if not handle_error(W, e, section="bmm", op="alloc", B=BH, S_kv=L):
                        raise Stop()
                    continue
            for op, fn, byt, bf in [
                (
                    "bmm_qKt",
                    lambda: torch.bmm(q, k.transpose(1, 2)),
                    (BH * d + BH * L * d + BH * L) * 2,
                    "(BH*d + BH*L*d + BH*L)*2",
                ),
                (
                    "bmm_PV",
                    lambda: torch.bmm(p, v),
                    (BH * L + BH * L * d + BH * d) * 2,
                    "(BH*L + BH*L*d + BH*d)*2",
                ),
            ]:
                kw = dict(
                    section="bmm",
                    op=op,
                    impl="torch.bmm",
                    dtype="bf16",
                    B=BH,
                    S_q=1,
                    S_kv=L,
                    head_dim=d,
                    M=1,
                    N=(L if op == "bmm_qKt" else d),
                    K=(d if op == "bmm_qKt" else L),
                    l2_flush=True,
                    flops=2 * BH * L * d,
                    flops_formula="2*BH*L*head_dim",
                    bytes=byt,
                    bytes_formula=bf,
                )
                try:
                    t = bench(fn, flush=True)
                    W.row(
                        timing=t,
                        extra={
                            "B_col": "B holds B*H (batch*heads)",
                            "layout": "K stored [BH,L,d], used as K^T view",
                        },
                        **kw,
                    )
                except Exception as e:
                    if not handle_error(W, e, **kw):
                        raise Stop()
            del q, k, v, p
            _free()


# ----------------------------------------------------------------------------------------------
# section: SDPA
# ----------------------------------------------------------------------------------------------
def sdpa_backends(names):
    out = []
    for name in names:
        if name == "default":
            out.append(("default", None))
            continue
        if DRY:
            out.append((name, None))
            continue
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if hasattr(SDPBackend, name.upper()):
            out.append((name, (sdpa_kernel, getattr(SDPBackend, name.upper()))))
    return out


def run_sdpa_cfg(W, cfg, kind, B, H, Hkv, Sq, Skv, d, causal):
    if not DRY:
        q = randn(B, H, Sq, d, dtype=torch.bfloat16)
        k = randn(B, Hkv, Skv, d, dtype=torch.bfloat16)
        v = randn(B, Hkv, Skv, d, dtype=torch.bfloat16)
    if causal:
        flops = 4 * B * H * d * (Sq * (Sq + 1) // 2)
        ff = "4*B*H*head_dim*S*(S+1)/2 (causal: QK^T and PV over the lower triangle)"
    else:
        flops = 4 * B * H * Sq * Skv * d
        ff = "4*B*H*S_q*S_kv*head_dim"
    ref = None
    k_rep = v_rep = None
    for bname, ctx in sdpa_backends(cfg["sdpa_backends"]):
        modes = ["native"] if Hkv == H else ["enable_gqa", "repeat_kv"]
        for gm in modes:
            hk_eff = Hkv if gm != "repeat_kv" else H
            kw = dict(
                section="sdpa",
                op=f"sdpa_{kind}",
                impl=bname,
                dtype="bf16",
                B=B,
                H=H,
                H_kv=Hkv,
                S_q=Sq,
                S_kv=Skv,
                head_dim=d,
                l2_flush=True,
                flops=flops,
                flops_formula=ff,
                bytes=2 * B * H * Sq * d * 2 + 2 * B * hk_eff * Skv * d * 2,
                bytes_formula="(Q+O) 2*B*H*S_q*d*2 + (K+V) 2*B*Hkv_eff*S_kv*d*2 "
                "(Hkv_eff=H when K/V were pre-expanded)",
            )
            ext = {
                "gqa_mode": gm,
                "causal": causal,
                "note": (
                    "K/V pre-expanded with repeat_interleave outside timing"
                    if gm == "repeat_kv"
                    else ""
                ),
                "check": "rel err vs first successful backend",
            }
            try:
                if DRY:
                    W.row(timing=bench(None), extra=ext, **kw)
                    break  # plan the native/enable_gqa row only
                if gm == "repeat_kv":
                    if 2 * B * H * Skv * d * 2 > 24e9:
                        W.row(
                            status="skipped",
                            error="repeat_kv fallback skipped: expanded K/V would exceed 24 GB",
                            extra=ext,
                            **kw,
                        )
                        continue
                    if k_rep is None:
                        k_rep = k.repeat_interleave(H // Hkv, dim=1)
                        v_rep = v.repeat_interleave(H // Hkv, dim=1)
                    fn = lambda: F.scaled_dot_product_attention(q, k_rep, v_rep, is_causal=causal)
                elif gm == "enable_gqa":
                    fn = lambda: F.scaled_dot_product_attention(
                        q, k, v, is_causal=causal, enable_gqa=True
                    )
                else:
                    fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                cm = ctx[0](ctx[1]) if ctx is not None else contextlib.nullcontext()
                with cm:
                    out = fn()
                    if ref is None:
                        ref = out
                        chk = 0.0
                    else:
                        chk = rel_err(out, ref)
                    del out
                    t = bench(fn, flush=True)
                W.row(timing=t, check_rel_err=chk, extra=ext, **kw)
                if gm == "enable_gqa":
                    break  # native GQA worked; skip the repeat fallback
            except Exception as e:
                if not handle_error(W, e, extra=ext, **kw):
                    raise Stop()
    if not DRY:
        del q, k, v, ref, k_rep, v_rep
    _free()


def sec_sdpa(cfg, W, outdir):
    H = cfg["sdpa_H"]
    for B, S, Hkv, d in cfg["sdpa_prefill"]:
        if left() < 5:
            deadline_row(W, "sdpa", f"prefill B={B} S={S} Hkv={Hkv} d={d}")
            raise Stop()
        try:
            run_sdpa_cfg(W, cfg, "prefill", B, H, Hkv, S, S, d, True)
        except Stop:
            raise
        except Exception as e:
            if not handle_error(
                W, e, section="sdpa", op="sdpa_prefill", B=B, S_q=S, H_kv=Hkv, head_dim=d
            ):
                raise Stop()
    for B, L, Hkv, d in cfg["sdpa_decode"]:
        if left() < 5:
            deadline_row(W, "sdpa", f"decode B={B} L={L}")
            raise Stop()
        try:
            run_sdpa_cfg(W, cfg, "decode", B, H, Hkv, 1, L, d, False)
        except Stop:
            raise
        except Exception as e:
            if not handle_error(W, e, section="sdpa", op="sdpa_decode", B=B, S_kv=L, head_dim=d):
                raise Stop()


# ----------------------------------------------------------------------------------------------
# section: MoE
# ----------------------------------------------------------------------------------------------
def route(x, Wr, k):
    logits = x @ Wr
    probs = torch.softmax(logits.float(), dim=-1)
    topw, topi = probs.topk(k, dim=-1)
    topw = (topw / topw.sum(-1, keepdim=True)).to(x.dtype)
    return topw, topi


def moe_naive(x, Wr, w1, w3, w2, k):
    E = w1.shape[0]
    topw, topi = route(x, Wr, k)
    out = torch.zeros_like(x)
    for e in range(E):
        tok, slot = torch.where(topi == e)  # host sync
        if tok.numel() == 0:
            continue
        xe = x.index_select(0, tok)
        h = F.silu(xe @ w1[e].t()) * (xe @ w3[e].t())
        y = (h @ w2[e].t()) * topw[tok, slot].unsqueeze(1)
        out.index_add_(0, tok, y)
    return out


def moe_grouped(x, Wr, w1t, w3t, w2t, k):
    E = w1t.shape[0]
    topw, topi = route(x, Wr, k)
    flat = topi.reshape(-1)
    order = torch.argsort(flat, stable=True)
    tok = order // k
    counts = torch.zeros(E, dtype=torch.int32, device=x.device).scatter_add_(
        0, flat, torch.ones_like(flat, dtype=torch.int32)
    )
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    xs = x.index_select(0, tok)
    h = F.silu(torch._grouped_mm(xs, w1t, offs=offs)) * torch._grouped_mm(xs, w3t, offs=offs)
    y = torch._grouped_mm(h, w2t, offs=offs) * topw.reshape(-1)[order].unsqueeze(1)
    out = torch.zeros_like(x).index_add_(0, tok, y)
    return out


def sec_moe(cfg, W, outdir):
    for name, E, k, d, f in cfg["moe_cfgs"]:
        if left() < 6:
            deadline_row(W, "moe", name)
            raise Stop()
        if not DRY:
            try:
                torch.manual_seed(1234)
                Wr = randn(d, E, dtype=torch.bfloat16, scale=d**-0.5)
                w1 = randn(E, f, d, dtype=torch.bfloat16, scale=d**-0.5)
                w3 = randn(E, f, d, dtype=torch.bfloat16, scale=d**-0.5)
                w2 = randn(E, d, f, dtype=torch.bfloat16, scale=f**-0.5)
                w1t, w3t, w2t = w1.transpose(1, 2), w3.transpose(1, 2), w2.transpose(1, 2)
            except Exception as e:
                if not handle_error(W, e, section="moe", op="alloc", impl=name):
                    raise Stop()
                continue
        for T in cfg["moe_T"]:
            if left() < 4:
                deadline_row(W, "moe", f"{name} T={T}")
                raise Stop()
            seed = 1000 + T
            if DRY:
                counts = [T * k // E] * E
            else:
                try:
                    torch.manual_seed(seed)
                    x = randn(T, d, dtype=torch.bfloat16)
                    _, topi = route(x, Wr, k)
                    counts = torch.bincount(topi.reshape(-1), minlength=E).tolist()
                except Exception as e:
                    if not handle_error(W, e, section="moe", op="route", impl=name, T=T):
                        raise Stop()
                    continue
            cstr = "|".join(str(c) for c in counts)
            n_act = sum(1 for c in counts if c > 0)
            base = dict(
                section="moe",
                dtype="bf16",
                E=E,
                topk=k,
                d_model=d,
                d_ff=f,
                T=T,
                l2_flush=True,
                expert_counts=cstr,
                flops=2 * T * d * E + 6 * T * k * d * f,
                flops_formula="2*T*d*E (router) + 2*T*topk*3*d*ff (SwiGLU experts)",
                bytes=2 * (d * E + n_act * 3 * d * f + 2 * T * d),
                bytes_formula="2*(d*E + n_active_experts*3*d*ff + 2*T*d) "
                "(weights of experts with >=1 token, x in, out; "
                "intermediates excluded)",
            )
            ext = {
                "config": name,
                "seed": seed,
                "n_active_experts": n_act,
                "max_count": max(counts),
                "routing": "softmax(x@Wr) -> topk -> renormalize",
                "weights": "randn*fan_in^-0.5, torch.manual_seed(1234)",
                "x": f"randn, torch.manual_seed({seed})",
            }
            t_naive = None
            out_naive = None
            try:
                if DRY:
                    t_naive = bench(None)
                else:
                    fn = lambda: moe_naive(x, Wr, w1, w3, w2, k)
                    out_naive = fn()
                    t_naive = bench(fn, flush=True, max_reps=30)
                W.row(
                    op="moe_layer",
                    impl="naive_loop",
                    timing=t_naive,
                    extra=dict(
                        ext,
                        note="per-expert torch.where (host sync) + index_select + "
                        "3 matmuls + index_add_; time includes host syncs/launch gaps",
                    ),
                    **base,
                )
            except Exception as e:
                if not handle_error(W, e, op="moe_layer", impl="naive_loop", extra=ext, **base):
                    raise Stop()
            try:
                chk = ""
                if DRY:
                    tg = bench(None)
                else:
                    fn = lambda: moe_grouped(x, Wr, w1t, w3t, w2t, k)
                    out_g = fn()
                    chk = rel_err(out_g, out_naive) if out_naive is not None else ""
                    del out_g
                    tg = bench(fn, flush=True, max_reps=30)
                W.row(
                    op="moe_layer",
                    impl="grouped_mm",
                    timing=tg,
                    check_rel_err=chk,
                    ref_median_us=round(t_naive["median_us"], 3) if t_naive else "",
                    speedup_vs_ref=round(t_naive["median_us"] / tg["median_us"], 4)
                    if t_naive
                    else "",
                    extra=dict(
                        ext,
                        note="argsort by expert, index_select, 3x torch._grouped_mm "
                        "(bf16, offs=int32 cumsum), index_add_; no host sync; "
                        "ref = naive_loop; check = rel err vs naive",
                    ),
                    **base,
                )
            except Exception as e:
                if not handle_error(W, e, op="moe_layer", impl="grouped_mm", extra=ext, **base):
                    raise Stop()
            if not DRY:
                del x, out_naive
        if not DRY:
            del Wr, w1, w3, w2, w1t, w3t, w2t
        _free()


SECTION_FNS = {
    "facts": sec_facts,
    "gemm": sec_gemm,
    "sparse": sec_sparse,
    "bmm": sec_bmm,
    "sdpa": sec_sdpa,
    "moe": sec_moe,
}


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------
def run_section(name, plan, outdir):
    """Run one section in this process (the parent starts one process per section)."""
    global torch, F, META
    cfg = PLANS[plan]
    if not DRY:
        import torch as _t
        import torch.nn.functional as _F

        torch, F = _t, _F
        if not torch.cuda.is_available():
            raise SystemExit("CUDA is not available; use --dry-run to list the rows")
        META = {
            "gpu": torch.cuda.get_device_name(0),
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
        }
        torch.manual_seed(0)
        try:  # ramp clocks up from idle before the first measurement
            a_ = torch.randn(4096, 4096, device=DEV, dtype=torch.bfloat16)
            t0_ = time.time()
            while time.time() - t0_ < 0.4:
                for _ in range(20):
                    a_ @ a_
                torch.cuda.synchronize()
            del a_
        except Exception as e:
            log("warm-up failed:", short_err(e))
    W = Writer(os.path.join(outdir, f"{name}.csv"))
    t0 = time.time()
    try:
        SECTION_FNS[name](cfg, W, outdir)
    except Stop:
        log(f"section {name} stopped early")
    except Exception as e:
        traceback.print_exc()
        W.row(section=name, op="section_crash", status="error", error=short_err(e))
    log(f"section {name} done: {W.n} rows in {time.time() - t0:.1f}s")
    return W.n


def summarize(outdir, sections):
    lines = []
    for s in sections:
        p = os.path.join(outdir, f"{s}.csv")
        if not os.path.exists(p):
            lines.append(f"{s:7s}: no csv")
            continue
        with open(p) as f:
            rows = list(csv.DictReader(f))
        by = {}
        for r in rows:
            key = (r["op"], r["impl"], r["dtype"], r["status"])
            by[key] = by.get(key, 0) + 1
        lines.append(f"{s:7s}: {len(rows)} rows")
        for key, n in sorted(by.items()):
            lines.append(f"    {n:4d}  {' '.join(key)}")
        for r in rows:
            if r["status"] != "ok":
                lines.append(
                    f"    ERR {r['op']} {r['impl']} {r['dtype']} M={r['M']} N={r['N']} "
                    f"K={r['K']} B={r['B']} S={r['S_q']}/{r['S_kv']}: "
                    f"{r['error'][:150]}"
                )
    return "\n".join(lines)


def main():
    global DEADLINE, DRY
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--plan", default="h100_holdout", choices=list(PLANS))
    ap.add_argument(
        "--out",
        default=os.environ.get("OUT", "gpu_measure_out"),
        help="output folder (default: $OUT)",
    )
    ap.add_argument("--sections", default="", help="comma list; default: the plan's sections")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock cap of the run")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="list the rows the plan would measure; needs no torch or GPU",
    )
    ap.add_argument("--section", default="", help=argparse.SUPPRESS)  # child process
    ap.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    DRY = a.dry_run
    plan = PLANS[a.plan]
    secs = [s for s in plan["sections"] if not a.sections or s in a.sections.split(",")]
    if DRY:
        total = {}
        for s in secs:
            print(f"== {s}")
            total[s] = run_section(s, a.plan, a.out)
        print(
            f"plan {a.plan}: "
            + ", ".join(f"{s} {n}" for s, n in total.items())
            + f"; {sum(total.values())} rows in all"
        )
        return
    if a.section:
        DEADLINE = a.deadline if a.deadline > 0 else float("inf")
        run_section(a.section, a.plan, a.out)
        return
    os.makedirs(a.out, exist_ok=True)
    logp = os.path.join(a.out, "run_log.txt")
    t_start = time.time()
    g_deadline = t_start + a.budget_s
    for s in secs:
        now = time.time()
        to = min(plan["caps"][s], g_deadline - now)
        if to < 15:
            log(f"== {s}: skipped (global budget)")
            continue
        log(f"== {s}: start (timeout {to:.0f}s)")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--plan",
            a.plan,
            "--section",
            s,
            "--out",
            a.out,
            "--deadline",
            str(now + to - 6),
        ]
        t0 = time.time()
        with open(logp, "a") as lf:
            lf.write(f"\n==== section {s} ====\n")
            lf.flush()
            try:
                r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, timeout=to)
                rc = r.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        with open(logp) as lf:
            tail = [t for t in lf.read().splitlines()[-3:]]
        log(f"== {s}: rc={rc} {time.time() - t0:.1f}s | " + " / ".join(t[:200] for t in tail))
    summ = summarize(a.out, secs)
    print(summ)
    log(f"total {time.time() - t_start:.1f}s")


if __name__ == "__main__":
    main()
