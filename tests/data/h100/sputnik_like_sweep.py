"""L1 hit rate and time of a Sputnik-like CSR SpMM on a GPU, rows in sorted vs shuffled order.

Sputnik's fp16 kernels (Gale et al., SC 2020; sputnik/spmm/cuda_spmm.cu.cc) run 4 weight rows per
32-thread block, 8 threads per row; each row stages 64 kept weights (values and column indices)
in shared memory, then every thread reads its strip of the activation row each kept weight
indexes with __ldg and accumulates in fp32. This kernel keeps that access pattern (not Sputnik's
register blocking), so its L1 hit rate shows what the rows sweeping the activations in sorted
column order reuse, against the same reads with each row's order shuffled.

Usage: python3 sputnik_like_sweep.py time OUT.csv (kernel times), and under Nsight Compute
``ncu --metrics l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_glo
bal_op_ld_lookup_hit.sum -k regex:spmm python3 sputnik_like_sweep.py ncu`` (one launch per case,
in the order printed). sputnik_like_sweep.csv holds both, measured on an H100 80GB HBM3 (PyTorch
2.11, CuPy 14.2): ``us`` the mean of 10 back-to-back launches, ``ld_sectors`` and
``ld_sector_hits`` the global-load sectors looked up in L1 and those that hit (dense strips and
sparse tiles together).
"""

from __future__ import annotations

import csv
import functools
import sys

import cupy as cp
import torch

SOURCE = r"""
#include <cuda_fp16.h>
template <int E>
__device__ void spmm(const int* __restrict__ offsets, const __half* __restrict__ values,
                     const int* __restrict__ cols, const __half* __restrict__ act,
                     float* __restrict__ out, int tokens) {
  __shared__ __half vals[4][64];
  __shared__ int idx[4][64];
  int sub = threadIdx.x / 8, t = threadIdx.x % 8;
  int row = blockIdx.x * 4 + sub;
  float acc[E];
  for (int e = 0; e < E; ++e) acc[e] = 0.f;
  int start = offsets[row], end = offsets[row + 1];
  for (int base = start; base < end; base += 64) {
    int count = min(64, end - base);
    for (int i = t; i < count; i += 8) {
      vals[sub][i] = __ldg(values + base + i);
      idx[sub][i] = __ldg(cols + base + i) * tokens;
    }
    __syncwarp();
    for (int i = 0; i < count; ++i) {
      float v = __half2float(vals[sub][i]);
      const __half* p = act + idx[sub][i] + t * E;
      __half h[E];
      if (E == 2) *reinterpret_cast<float*>(h) = __ldg(reinterpret_cast<const float*>(p));
      if (E == 4) *reinterpret_cast<float2*>(h) = __ldg(reinterpret_cast<const float2*>(p));
      if (E == 8) *reinterpret_cast<float4*>(h) = __ldg(reinterpret_cast<const float4*>(p));
      for (int e = 0; e < E; ++e) acc[e] += v * __half2float(h[e]);
    }
    __syncwarp();
  }
  for (int e = 0; e < E; ++e) out[row * tokens + t * E + e] = acc[e];
}
extern "C" __global__ void spmm2(const int* o, const __half* v, const int* c, const __half* a,
                                 float* y, int n) { spmm<2>(o, v, c, a, y, n); }
extern "C" __global__ void spmm4(const int* o, const __half* v, const int* c, const __half* a,
                                 float* y, int n) { spmm<4>(o, v, c, a, y, n); }
extern "C" __global__ void spmm8(const int* o, const __half* v, const int* c, const __half* a,
                                 float* y, int n) { spmm<8>(o, v, c, a, y, n); }
"""
CASES = [
    (7168, 7168, 0.3),
    (7168, 7168, 0.1),
    (28672, 7168, 0.3),
    (12288, 49152, 0.3),
    (12288, 49152, 0.1),
]
TOKENS = (16, 32, 64)


def csr(n_out: int, k: int, density: float, shuffled: bool):
    gen = torch.Generator(device="cuda").manual_seed(0)
    mask = torch.rand(n_out, k, device="cuda", generator=gen) < density
    rows, cols = mask.nonzero(as_tuple=True)
    del mask
    if shuffled:
        key = rows.double() * 4.0 + torch.rand(
            rows.numel(), device="cuda", generator=gen, dtype=torch.float64
        )
        cols = cols[torch.argsort(key)]
    counts = torch.bincount(rows, minlength=n_out)
    offsets = torch.zeros(n_out + 1, dtype=torch.int32, device="cuda")
    offsets[1:] = torch.cumsum(counts, 0).to(torch.int32)
    values = torch.randn(cols.numel(), device="cuda", dtype=torch.float16)
    return offsets, values, cols.to(torch.int32).contiguous()


def main() -> None:
    mode = sys.argv[1]
    module = cp.RawModule(code=SOURCE, options=("-std=c++17",))
    rows_out = []
    for n_out, k, density in CASES:
        for shuffled in (False, True):
            offsets, values, cols = csr(n_out, k, density, shuffled)
            for tokens in TOKENS:
                act = torch.randn(k, tokens, device="cuda", dtype=torch.float16)
                out = torch.empty(n_out, tokens, device="cuda", dtype=torch.float32)
                kernel = module.get_function(f"spmm{tokens // 8}")
                args = (
                    cp.asarray(offsets),
                    cp.asarray(values),
                    cp.asarray(cols),
                    cp.asarray(act),
                    cp.asarray(out),
                    cp.int32(tokens),
                )
                run = functools.partial(kernel, (n_out // 4,), (32,), args)
                if mode == "ncu":
                    run()
                    cp.cuda.Device().synchronize()
                    print("case", n_out, k, density, tokens, int(shuffled), flush=True)
                    continue
                for _ in range(3):
                    run()
                start, end = cp.cuda.Event(), cp.cuda.Event()
                start.record()
                for _ in range(10):
                    run()
                end.record()
                end.synchronize()
                us = cp.cuda.get_elapsed_time(start, end) * 1e3 / 10
                row = dict(
                    n_out=n_out,
                    k=k,
                    density=density,
                    tokens=tokens,
                    shuffled=int(shuffled),
                    nnz=int(values.numel()),
                    us=round(us, 2),
                )
                print(row, flush=True)
                rows_out.append(row)
            del offsets, values, cols
            torch.cuda.empty_cache()
    if mode == "time":
        with open(sys.argv[2], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows_out[0]))
            writer.writeheader()
            writer.writerows(rows_out)


if __name__ == "__main__":
    main()
