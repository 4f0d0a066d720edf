"""cuSPARSELt 2:4 and cuBLAS fp16 times at the Flash-LLM kernel benchmark's shapes (run on a GPU).

The shapes are those of the Flash-LLM artifact's kernel_benchmark/benchmark.sh (OPT-30B/66B/175B
weights, 8-64 tokens). The 2:4 call is laid out as the artifact's sparTA.h lays it out: the
compressed weight (output features x K) times a row-major K x tokens activation matrix, the
algorithm chosen by cuSPARSELt's search. Each time is the mean of 20 back-to-back calls replayed
from a CUDA graph (the artifact times 10,000 back-to-back calls, without flushing the L2), the
median over 5 replays.

Usage: python3 cusparselt_flash_llm_shapes.py OUT.csv
"""

from __future__ import annotations

import csv
import functools
import statistics
import sys

import torch

SHAPES = (
    (21504, 7168),
    (7168, 7168),
    (28672, 7168),
    (7168, 28672),
    (27648, 9216),
    (9216, 9216),
    (36864, 9216),
    (9216, 36864),
    (36864, 12288),
    (12288, 12288),
    (49152, 12288),
    (12288, 49152),
)
TOKENS = (8, 16, 32, 64)
CALLS_PER_GRAPH = 20
REPLAYS = 5


def _graph_time_us(fn) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(CALLS_PER_GRAPH):
                fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPLAYS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / CALLS_PER_GRAPH)
    return statistics.median(times)


def main(path: str) -> None:
    torch.manual_seed(0)
    rows = []
    for n_out, k in (*SHAPES, (1024, 1024)):
        weight = torch.randn(n_out, k, device="cuda", dtype=torch.float16)
        # the first two of every group of four along K, as sparTA.h's A1
        weight.view(n_out, k // 4, 4)[:, :, 2:] = 0
        packed = torch._cslt_compress(weight)
        for tokens in TOKENS:
            act = torch.randn(k, tokens, device="cuda", dtype=torch.float16)
            alg = torch._cslt_sparse_mm_search(packed, act)
            sparse_us = _graph_time_us(
                functools.partial(torch._cslt_sparse_mm, packed, act, alg_id=alg)
            )
            dense_us = _graph_time_us(functools.partial(torch.mm, weight, act))
            rows.append(
                {
                    "n_out": n_out,
                    "k": k,
                    "tokens": tokens,
                    "alg_id": alg,
                    "cusparselt_us": round(sparse_us, 3),
                    "cublas_us": round(dense_us, 3),
                }
            )
            print(rows[-1], flush=True)
        torch.cuda.empty_cache()
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(torch.cuda.get_device_name(), torch.__version__, torch.backends.cusparselt.version())


if __name__ == "__main__":
    main(sys.argv[1])
