#!/usr/bin/env python3
"""Board power of one GPU in a few steady states, for checking archsim's GPU power model.

What it measures
----------------
Each phase keeps the GPU in one steady state for ``--phase-s`` seconds while nvidia-smi samples
the board power every 100 ms (``power.draw``: the driver's 1 s average; ``power.draw.instant``)
with the SM and memory clocks. The phases, in this order (the hottest last):

``idle``
    A CUDA context and 14 GB of weights resident, no kernel running.
``sleep_1sm``
    ``torch.cuda._sleep``: one thread block spinning on one SM, back to back (a busy GPU with one
    active SM and no memory traffic).
``gemv_b1``
    Batch-1 decode of LLaMA2-7B's linear layers in fp16: 32 blocks of q/k/v (12288 x 4096), o
    (4096 x 4096), gate/up (22016 x 4096) and down (4096 x 11008), then the LM head (32000 x
    4096), each ``F.linear`` of a 1 x 4096 activation, replayed from one CUDA graph (as serving
    engines replay decode steps). Weight streaming from HBM, every SM busy.
``decode_b64``
    The same weights with a 64-row activation (tensor-core GEMMs still streaming the weights).
``copy``
    Device-to-device copy of a 2 GiB fp16 buffer (``copy_``): HBM read and write, no math.
``gemm_bf16``
    8192 x 8192 x 8192 bf16 ``torch.mm`` back to back: tensor cores at full occupancy.

With ``--extra`` (CuPy kernels, compiled by NVRTC), four phases that separate the parts of the
power before the ones above:

``spin_all_sms``
    Four 256-thread blocks per SM spinning on ``clock64()``: every SM issuing, no memory traffic.
``chase_all_sms``
    Eight warps per SM, one lane of each following a random pointer chain through 512 MiB:
    every SM holding warps stalled on HBM loads, at a few percent of the HBM bandwidth.
``copy_16sm``
    A grid-stride 16-byte copy of the 2 GiB buffer from 16 thread blocks of 1024 threads:
    HBM streaming from 16 SMs only.
``gemv_l2``
    Batch-1 ``F.linear`` against one 4096 x 4096 fp16 weight (32 MiB, resident in L2), 100 per
    CUDA graph replay: every SM streaming from L2, next to no HBM traffic.

Per phase the script also records how many iterations ran and how long one took, so each
phase's work rate (bytes/s, FLOP/s) is known alongside its power, and takes one
``nvidia-smi -q -d POWER`` snapshot in the middle of the phase (it reports the memory's power
separately on Hopper).

Output (under ``--out``)
    ``power_samples.csv``  one row per nvidia-smi sample: ``t_s`` (seconds since the script
        started, stamped when the line arrived), ``phase``, ``power_w``, ``power_instant_w``,
        ``sm_clock_mhz``, ``mem_clock_mhz``, ``util_pct``, ``temp_c``.
    ``phases.csv``  one row per phase: start/end times, iterations, seconds per iteration, HBM
        bytes and FLOPs per iteration, and the median power over the phase's samples after the
        first ``--settle-s`` seconds (the 1 s averaging window and the clock ramp).
    ``power_q.txt``  the ``nvidia-smi -q -d POWER`` snapshot of each phase.
    ``env.json``  GPU name, driver, torch and CUDA versions, power limit.

How to run (a machine with one NVIDIA GPU, PyTorch and nvidia-smi; about 90 s)::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_power_measure.py --out $OUT

Clocks and power limits are never changed.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

# LLaMA2-7B linear layers (out_features, in_features), one decoder block, and the LM head.
LLAMA2_7B_BLOCK = ((12288, 4096), (4096, 4096), (22016, 4096), (4096, 11008))
LLAMA2_7B_LAYERS = 32
LLAMA2_7B_LM_HEAD = (32000, 4096)
GEMM_SIZE = 8192
COPY_BYTES = 2 * 2**30

SMI_FIELDS = (
    "power.draw",
    "power.draw.instant",
    "clocks.sm",
    "clocks.mem",
    "utilization.gpu",
    "temperature.gpu",
)
SAMPLE_COLUMNS = (
    "t_s",
    "phase",
    "power_w",
    "power_instant_w",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "util_pct",
    "temp_c",
)


def _number(text: str) -> float:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return float("nan")


class PowerSampler:
    """nvidia-smi in loop mode in a background thread; each line is stamped on arrival."""

    def __init__(self, t0: float, interval_ms: int = 100) -> None:
        self.t0 = t0
        self.phase = "start"
        self.rows: list[dict[str, object]] = []
        fields = list(SMI_FIELDS)
        probe = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:  # older drivers have no power.draw.instant
            fields.remove("power.draw.instant")
        self.fields = fields
        self._proc = subprocess.Popen(
            [
                "nvidia-smi",
                f"--query-gpu={','.join(fields)}",
                "--format=csv,noheader,nounits",
                f"-lms={interval_ms}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            values = dict(zip(self.fields, line.split(","), strict=False))
            self.rows.append(
                {
                    "t_s": round(time.time() - self.t0, 3),
                    "phase": self.phase,
                    "power_w": _number(values.get("power.draw", "")),
                    "power_instant_w": _number(values.get("power.draw.instant", "nan")),
                    "sm_clock_mhz": _number(values.get("clocks.sm", "")),
                    "mem_clock_mhz": _number(values.get("clocks.mem", "")),
                    "util_pct": _number(values.get("utilization.gpu", "")),
                    "temp_c": _number(values.get("temperature.gpu", "")),
                }
            )

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)


def _power_snapshot() -> str:
    out = subprocess.run(
        ["nvidia-smi", "-q", "-d", "POWER"], capture_output=True, text=True, check=False
    )
    return out.stdout


def run_phase(
    name: str,
    step: Callable[[], None],
    seconds: float,
    sampler: PowerSampler,
    snapshots: dict[str, str],
    sync: Callable[[], None],
) -> dict[str, float]:
    """Call ``step`` back to back for ``seconds``; returns start/end times and the iteration count."""
    sampler.phase = name
    start = time.time()
    iterations = 0
    snapped = False
    while True:
        for _ in range(4):
            step()
            iterations += 1
        sync()  # keep the queue short so the phase ends on time
        elapsed = time.time() - start
        if not snapped and elapsed > seconds / 2:
            snapshots[name] = _power_snapshot()
            snapped = True
        if elapsed >= seconds:
            break
    end = time.time()
    return {
        "start_s": start - sampler.t0,
        "end_s": end - sampler.t0,
        "iterations": iterations,
        "s_per_iteration": (end - start) / iterations,
    }


_KERNELS = r"""
extern "C" __global__ void spin(long long cycles, int* out) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
    if (threadIdx.x == 0) out[blockIdx.x] = 1;
}
extern "C" __global__ void chase(const unsigned int* __restrict__ next, unsigned int* out,
                                 int steps, unsigned int n) {
    unsigned int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if ((threadIdx.x & 31) != 0) return;
    unsigned int p = (warp * 2654435761u) % n;
    for (int i = 0; i < steps; ++i) p = next[p];
    out[warp] = p;
}
extern "C" __global__ void copy16(const float4* __restrict__ src, float4* __restrict__ dst,
                                  unsigned long long n) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
         i < n; i += stride)
        dst[i] = src[i];
}
"""


def _extra_phases(torch, dev, src, dst):
    """The four phases that separate per-SM, per-HBM-byte and per-L2-byte power (CuPy kernels)."""
    import cupy
    import torch.nn.functional as F

    module = cupy.RawModule(code=_KERNELS)
    spin, chase, copy16 = (module.get_function(n) for n in ("spin", "chase", "copy16"))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    flags = cupy.zeros(sms * 4, dtype=cupy.int32)
    chain_n = 128 * 2**20  # 512 MiB of uint32: ten times the L2
    order = torch.randperm(chain_n, device=dev, dtype=torch.int64)
    nxt = torch.empty(chain_n, device=dev, dtype=torch.int64)
    nxt[order] = torch.roll(order, -1)
    chain = cupy.asarray(nxt.to(torch.int32))
    del order, nxt
    chase_warps = sms * 8
    chase_out = cupy.zeros(chase_warps, dtype=cupy.uint32)
    chase_steps = 10_000
    src_c, dst_c = cupy.asarray(src), cupy.asarray(dst)
    vectors = src.numel() * src.element_size() // 16
    w_l2 = torch.randn(4096, 4096, device=dev, dtype=torch.float16) * 4096**-0.5
    x_l2 = torch.randn(1, 4096, device=dev, dtype=torch.float16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            F.linear(x_l2, w_l2)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(100):
            F.linear(x_l2, w_l2)
    spin_cycles = 20_000_000
    return [
        (
            "spin_all_sms",
            lambda: spin((sms * 4,), (256,), (cupy.int64(spin_cycles), flags)),
            0.0,
            0.0,
        ),
        (
            "chase_all_sms",
            lambda: chase(
                (sms,), (256,), (chain, chase_out, cupy.int32(chase_steps), cupy.uint32(chain_n))
            ),
            32.0 * chase_warps * chase_steps,
            0.0,
        ),
        (
            "copy_16sm",
            lambda: copy16((16,), (1024,), (src_c, dst_c, cupy.uint64(vectors))),
            2.0 * vectors * 16,
            0.0,
        ),
        ("gemv_l2", graph.replay, 0.0, 100 * 2.0 * 4096 * 4096),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--phase-s", type=float, default=12.0, help="seconds per phase")
    parser.add_argument(
        "--settle-s", type=float, default=3.0, help="seconds left out at each phase start"
    )
    parser.add_argument("--extra", action="store_true", help="run the four CuPy phases first")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    import torch.nn.functional as F

    t0 = time.time()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    sync = torch.cuda.synchronize

    # weights and buffers first, so every phase runs with the same memory resident
    shapes = [s for _ in range(LLAMA2_7B_LAYERS) for s in LLAMA2_7B_BLOCK] + [LLAMA2_7B_LM_HEAD]
    weights = [torch.randn(n, k, device=dev, dtype=torch.float16) * k**-0.5 for n, k in shapes]
    weight_bytes = sum(w.numel() * w.element_size() for w in weights)
    x1 = {k: torch.randn(1, k, device=dev, dtype=torch.float16) for k in (4096, 11008)}
    x64 = {k: torch.randn(64, k, device=dev, dtype=torch.float16) for k in (4096, 11008)}

    def linears(xs: dict[int, torch.Tensor]) -> None:
        for w in weights:
            F.linear(xs[w.shape[1]], w)

    graphs = {}
    for label, xs in (("gemv_b1", x1), ("decode_b64", x64)):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                linears(xs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            linears(xs)
        graphs[label] = graph
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=dev, dtype=torch.bfloat16)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=dev, dtype=torch.bfloat16)
    c = torch.empty(GEMM_SIZE, GEMM_SIZE, device=dev, dtype=torch.bfloat16)
    src = torch.randn(COPY_BYTES // 2, device=dev, dtype=torch.float16)
    dst = torch.empty_like(src)
    sync()

    sleep_cycles = 20_000_000  # about 10 ms at 2 GHz per spin kernel
    phases: list[tuple[str, Callable[[], None], float, float]] = [
        ("idle", lambda: time.sleep(0.05), 0.0, 0.0),
        ("sleep_1sm", lambda: torch.cuda._sleep(sleep_cycles), 0.0, 0.0),
        ("gemv_b1", graphs["gemv_b1"].replay, weight_bytes, 2.0 * weight_bytes / 2),
        ("decode_b64", graphs["decode_b64"].replay, weight_bytes, 64 * 2.0 * weight_bytes / 2),
        ("copy", lambda: dst.copy_(src), 2.0 * COPY_BYTES, 0.0),
        (
            "gemm_bf16",
            lambda: torch.mm(a, b, out=c),
            3.0 * GEMM_SIZE * GEMM_SIZE * 2,
            2.0 * GEMM_SIZE**3,
        ),
    ]

    if args.extra:
        phases[1:1] = _extra_phases(torch, dev, src, dst)
        sync()

    sampler = PowerSampler(t0)
    time.sleep(2.0)
    snapshots: dict[str, str] = {}
    rows = []
    for name, step, hbm_bytes, flops in phases:
        for _ in range(3):  # warm-up outside the phase
            step()
        sync()
        result = run_phase(name, step, args.phase_s, sampler, snapshots, sync)
        samples = [
            r
            for r in sampler.rows
            if r["phase"] == name and r["t_s"] >= result["start_s"] + args.settle_s
        ]
        power = [float(r["power_w"]) for r in samples]
        instant = [float(r["power_instant_w"]) for r in samples]
        clocks = [float(r["sm_clock_mhz"]) for r in samples]
        row = {
            "phase": name,
            **{k: round(v, 6) for k, v in result.items()},
            "hbm_bytes_per_iteration": hbm_bytes,
            "flops_per_iteration": flops,
            "samples": len(samples),
            "median_power_w": statistics.median(power) if power else float("nan"),
            "median_power_instant_w": statistics.median(instant) if instant else float("nan"),
            "median_sm_clock_mhz": statistics.median(clocks) if clocks else float("nan"),
        }
        if name == "idle":
            row["s_per_iteration"] = 0.0
        rows.append(row)
        print(json.dumps(row), flush=True)
        sampler.phase = "gap"
        time.sleep(1.0)
    sampler.stop()

    with open(args.out / "power_samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        writer.writerows(sampler.rows)
    with open(args.out / "phases.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(args.out / "power_q.txt", "w") as f:
        for name, text in snapshots.items():
            f.write(f"===== {name} =====\n{text}\n")
    smi = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.mem",
            "--format=csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    env = {
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
        "weight_bytes": weight_bytes,
        "phase_s": args.phase_s,
        "settle_s": args.settle_s,
    }
    (args.out / "env.json").write_text(json.dumps(env, indent=1))


if __name__ == "__main__":
    main()
