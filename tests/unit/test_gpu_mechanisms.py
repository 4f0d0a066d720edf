"""GPU model mechanisms and per-family accuracy on the measured H100 rows.

Development rows: tests/data/h100; hold-out rows (other shapes): tests/data/h100_holdout.

Ratios asserted here are the measured ones of shared/data/gpu/README.md (copied CSVs), not the
model's own output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import load_machine
from archsim.hw.base import build_device
from archsim.hw.gpu import GpuDevice, GpuMapping, hbm_traffic
from archsim.hw.gpu_attention import block_makespan
from archsim.ir.ops import attention, gemm, grouped_gemm
from archsim.ir.tensor import NM
from archsim.validate.predict import predict_ops
from archsim.validate.report import validate

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "h100"
HOLDOUT = ROOT / "tests" / "data" / "h100_holdout"


@pytest.fixture(scope="module")
def h100() -> GpuDevice:
    device = build_device(load_machine(ROOT / "hwconfigs" / "h100.yaml").config.devices[0])
    assert isinstance(device, GpuDevice)
    return device


def test_split_k_chosen_for_skinny_shapes(h100: GpuDevice) -> None:
    assert h100.plan_gemm(gemm("g", 16, 1024, 4096)).split_k > 1
    assert h100.plan_gemm(gemm("g", 8192, 8192, 8192)).split_k == 1


def test_stream_k_fills_a_partial_wave(h100: GpuDevice) -> None:
    # 72 tiles of 128x256 on 132 SMs: data-parallel tiles leave 60 SMs idle for the whole K loop
    op = gemm("g", 3000, 768, 3072)
    plan = h100.plan_gemm(op)
    assert plan.stream_k and plan.partial_bytes > 0
    data_parallel = min(h100.plan_gemm(op, GpuMapping(split_k=s)).body_s for s in (1, 2, 3, 4))
    # measured on the hold-out set (tests/data/h100_holdout/gemm.csv): 23.5 us L2-warm
    assert plan.body_s < 0.8 * data_parallel
    # an imposed split-K is honoured, and sparse GEMMs keep their library's own decomposition
    assert not h100.plan_gemm(op, GpuMapping(split_k=1)).stream_k
    assert not h100.plan_gemm(gemm("g", 4096, 4096, 4096)).partial_bytes


def test_gemv_time_tracks_bytes_over_bandwidth(h100: GpuDevice) -> None:
    small, large = gemm("g", 1, 4096, 14336), gemm("g", 1, 16384, 14336)
    t_small, t_large = h100.cost(small).latency_s, h100.cost(large).latency_s
    fixed = h100.config.kernel_launch_s
    # 4x the weight bytes: about 4x the time beyond the fixed launch part
    assert 3.3 < (t_large - fixed) / (t_small - fixed) < 4.5


def test_flushed_l2_write_back_only_once_clean_lines_run_out() -> None:
    size = 50 * 2**20
    clean = (1.0 - 0.34) * size

    def write_back(read: float) -> float:
        _, written, _ = hbm_traffic(read, 0.0, size, warm_l2=False, dirty_l2_share=0.34)
        return written

    # a read that fits in the clean lines leaves the dirty ones alone
    assert write_back(0.5 * clean) == 0.0
    # past the clean part every new byte displaces one dirty line, up to all of them
    assert write_back(clean + 1e6) == pytest.approx(1e6)
    assert write_back(10 * size) == pytest.approx(0.34 * size)


def test_two_four_slower_at_small_m_faster_at_large_m(h100: GpuDevice) -> None:
    def ratio(m: int) -> float:
        dense = h100.cost(gemm("g", m, 4096, 4096)).latency_s
        sparse = h100.cost(gemm("g", m, 4096, 4096, b_sparsity=NM(2, 4))).latency_s
        return sparse / dense

    # measured (searched, README section 3): 1.19-1.25 at M<=64, 0.74-0.77 at M>=4096
    assert ratio(16) > 1.0
    assert ratio(8192) < 0.9


def test_default_sparse_algorithm_keeps_one_tile_and_no_split_k(h100: GpuDevice) -> None:
    default = GpuMapping(sparse_algorithm="default")
    tile = h100.config.sparse_default_tile
    assert tile is not None
    for m in (16, 256, 8192):
        op = gemm("g", m, 4096, 4096, b_sparsity=NM(2, 4))
        plan = h100.plan_gemm(op, default)
        assert (plan.tile_m, plan.tile_n, plan.split_k) == (tile.m, tile.n, 1)
    # the searched algorithm picks per shape (split-K at a skinny N), so it is never slower
    skinny = gemm("g", 16, 1024, 4096, b_sparsity=NM(2, 4))
    assert h100.plan_gemm(skinny, GpuMapping()).split_k > 1
    searched_s = h100.cost(skinny, GpuMapping()).latency_s
    assert searched_s < h100.cost(skinny, default).latency_s
    # measured (tests/data/h100/sparse.csv, N=1024, K=4096, M=16): 24.6 us searched, 32.9 us alg 0
    big = gemm("g", 8192, 4096, 4096, b_sparsity=NM(2, 4))
    # measured M=8192: 265.8 us searched against 333.5 us alg 0
    assert 1.1 < h100.cost(big, default).latency_s / h100.cost(big).latency_s < 1.4


def test_strided_elementwise_runs_at_an_element_rate_not_bandwidth(h100: GpuDevice) -> None:
    from archsim.ir.ops import Elementwise
    from archsim.ir.tensor import DType, Tensor

    def silu(contiguous: bool) -> Elementwise:
        shape = (2048, 14336)
        x, y = Tensor("x", shape, DType.BF16), Tensor("y", shape, DType.BF16)
        return Elementwise("silu", "silu", (x,), y, contiguous=contiguous)

    kernel = GpuMapping(kernel_only=True)
    strided = h100.cost(silu(False), kernel).latency_s
    # measured (layer_profile_kernels.csv): the strided SiLU takes 85 us, 1.4 TB/s on its bytes,
    # about half the 2.7 TB/s a contiguous kernel streams from HBM
    assert strided > 1.8 * h100.cost(silu(True), kernel).latency_s
    assert strided == pytest.approx(85e-6, rel=0.1)


def test_trace_marks_strided_views_non_contiguous() -> None:
    from archsim.validate.trace import read_trace

    trace = read_trace(DATA / "trace_layer_prefill_B1_S2048.json.gz")
    layout = {
        g.ops[0].function: g.ops[0].contiguous for g in trace.groups if g.family == "elementwise"
    }
    # SiLU and mul read halves of the fused w13 output; the residual adds read whole tensors
    assert layout == {"silu": False, "mul": False, "add": True}


def test_decode_attention_scales_with_kv_bytes_and_gqa_reduces_it(h100: GpuDevice) -> None:
    def t(kv_len: int, heads_kv: int) -> float:
        op = attention(
            "a",
            batch=32,
            heads_q=32,
            heads_kv=heads_kv,
            q_len=1,
            kv_len=kv_len,
            head_dim=128,
            causal=False,
        )
        return h100.cost(op, GpuMapping(attention_backend="cudnn")).latency_s

    assert 3.0 < t(32768, 8) / t(8192, 8) < 4.2
    assert t(8192, 8) < 0.4 * t(8192, 32)


def test_causal_prefill_skips_blocks_and_cudnn_beats_flash(h100: GpuDevice) -> None:
    def t(causal: bool, backend: str) -> float:
        op = attention(
            "a",
            batch=1,
            heads_q=32,
            heads_kv=32,
            q_len=8192,
            kv_len=8192,
            head_dim=128,
            causal=causal,
        )
        return h100.cost(op, GpuMapping(attention_backend=backend)).latency_s

    assert 0.45 < t(True, "cudnn") / t(False, "cudnn") < 0.6
    # measured S=8192: flash 1785 us against cuDNN 896 us
    assert 1.6 < t(True, "flash") / t(True, "cudnn") < 2.4


def test_grouped_moe_faster_than_naive_and_gap_shrinks_with_tokens(h100: GpuDevice) -> None:
    from archsim.validate.predict import predict_row
    from archsim.validate.readers import read_measured_csv

    table = read_measured_csv(DATA / "moe.csv")
    rows = {
        (
            str(table.frame.loc[r.index, "impl"]),
            int(table.frame.loc[r.index, "E"]),
            int(table.frame.loc[r.index, "T"]),
        ): r
        for r in table.lowered
    }

    def speedup(experts: int, tokens: int) -> float:
        naive = predict_row(rows[("naive_loop", experts, tokens)], h100).latency_s
        grouped = predict_row(rows[("grouped_mm", experts, tokens)], h100).latency_s
        return naive / grouped

    # measured (README section 6): 64 experts 26.1x at T=128, 4.84x at T=8192
    assert speedup(64, 128) > 1.5
    assert speedup(64, 8192) < speedup(64, 128)
    assert speedup(8, 1) > speedup(8, 8192)


def test_grouped_gemm_reads_only_active_experts(h100: GpuDevice) -> None:
    few = grouped_gemm("g", (4, 0, 0, 0, 0, 0, 0, 0), 14336, 4096)
    many = grouped_gemm("g", (4,) * 8, 14336, 4096)
    assert h100.cost(many).latency_s > 4 * (h100.cost(few).latency_s - h100.config.kernel_launch_s)


def test_eager_sequence_slower_than_graph(h100: GpuDevice) -> None:
    ops = [gemm(f"g{i}", 1, 1024, 1024) for i in range(10)]
    eager = predict_ops(ops, h100, eager_multi_kernel=True).latency_s
    graph = predict_ops(ops, h100, graph=True).latency_s
    assert eager > graph
    # a graph overlaps each launch with the previous kernel
    assert graph < sum(h100.cost(op).latency_s for op in ops)


def test_host_bound_eager_sequence_pays_launch_and_allocation_per_op(h100: GpuDevice) -> None:
    # tiny kernels: the host issuing them is the bottleneck, not the GPU
    ops = [gemm(f"g{i}", 1, 256, 256) for i in range(40)]
    per_op_s = h100.host_launch_s + h100.host_alloc_s
    assert h100.host_alloc_s > 0
    eager = predict_ops(ops, h100, eager_multi_kernel=True).latency_s
    assert eager == pytest.approx(39 * per_op_s + h100.cost(ops[-1]).latency_s, rel=0.05)


def test_grouped_gemm_runs_below_dense_tensor_share(h100: GpuDevice) -> None:
    # compute-bound: 8 experts of 2048 rows each against one dense GEMM of all 16384 rows
    grouped = h100.cost(grouped_gemm("g", (2048,) * 8, 4096, 4096)).latency_s
    dense = h100.cost(gemm("d", 8 * 2048, 4096, 4096), GpuMapping()).latency_s
    # h100.yaml: grouped share 0.7 against the dense 0.82
    assert 1.1 < grouped / dense < 1.3


def test_head_dim_64_prefill_costs_more_than_half_of_head_dim_128(h100: GpuDevice) -> None:
    def t(head_dim: int) -> float:
        op = attention(
            "a",
            batch=2,
            heads_q=32,
            heads_kv=32,
            q_len=4096,
            kv_len=4096,
            head_dim=head_dim,
            causal=True,
        )
        return h100.cost(op, GpuMapping(attention_backend="cudnn")).latency_s

    # the softmax exponentials per score do not shrink with head_dim; measured on the hold-out
    # set (tests/data/h100_holdout/sdpa.csv, B=2, S=4096): 338 us at 64 against 485 us at 128
    assert 0.62 < t(64) / t(128) < 0.78


def test_block_makespan_follows_greedy_list_scheduling() -> None:
    # 3 blocks of 1, 2, 3 on 2 SMs in order: SM0 takes 1 then 3 (ends at 4), SM1 takes 2
    assert block_makespan([1.0, 2.0, 3.0], 1, 2) == 4.0
    # one short wave: the longest block bounds the grid
    assert block_makespan([5.0, 1.0], 1, 8) == 5.0
    # many waves: the balanced bound
    assert block_makespan([1.0], 10_000, 100) == pytest.approx(100.0)


def test_flash_decode_streams_slower_than_cudnn_at_large_batch(h100: GpuDevice) -> None:
    op = attention(
        "a", batch=128, heads_q=32, heads_kv=8, q_len=1, kv_len=32768, head_dim=128, causal=False
    )

    def t(backend: str) -> float:
        return h100.cost(op, GpuMapping(attention_backend=backend)).latency_s

    # measured (tests/data/h100/sdpa.csv): flash 6960 us against cuDNN 5570 us
    assert 1.15 < t("flash") / t("cudnn") < 1.45


# (file, family, median APE bound %, p90 bound % or None). The targets: dense GEMM
# median <= 5 %, p90 <= 15 %; every other family median <= 10 % (naive MoE <= 15 %). Bounds above
# the target are the current state, asserted so that it cannot silently get worse.
TARGETS = [
    ("gemm.csv", "gemm", 5.0, 15.0),
    ("gemm.csv", "gemm_skinny", 10.0, None),
    ("sparse.csv", "sparse24", 10.0, None),
    ("bmm.csv", "bmm", 10.0, None),
    ("sdpa.csv", "attention_prefill", 10.0, None),
    ("sdpa.csv", "attention_decode", 10.0, None),
    ("moe.csv", "moe_naive", 15.0, None),
    ("moe.csv", "moe_grouped", 10.0, None),
    ("layer.csv", "layer", 10.0, None),
    ("trace_layer_prefill_B1_S2048.json.gz", "gemm", 10.0, None),
    ("trace_layer_prefill_B1_S2048.json.gz", "attention_prefill", 10.0, None),
    ("trace_layer_prefill_B1_S2048.json.gz", "elementwise", 10.0, None),
    ("trace_layer_prefill_B1_S2048.json.gz", "norm", 10.0, None),
]

# The same families on the hold-out shapes (tests/data/h100_holdout), never used in a fit.
HOLDOUT_TARGETS = [
    ("gemm.csv", "gemm", 5.0, 15.0),
    ("gemm.csv", "gemm_skinny", 10.0, None),
    ("sparse.csv", "sparse24", 10.0, None),
    ("bmm.csv", "bmm", 10.0, None),
    ("sdpa.csv", "attention_prefill", 10.0, None),
    ("sdpa.csv", "attention_decode", 10.0, None),
    # naive above target (currently 19.1 %): the model runs these loops too fast; the hold-out
    # host's faster bare launch (6.6 us in its facts.csv against 11.2 us) would make it worse
    ("moe.csv", "moe_naive", 20.0, None),
    ("moe.csv", "moe_grouped", 10.0, None),
]


def _check_family(
    path: Path, device: GpuDevice, family: str, median: float, p90: float | None
) -> None:
    families = validate(path, device).families.set_index("family")
    assert families.loc[family, "n"] >= 3
    assert families.loc[family, "median_ape"] <= median
    if p90 is not None:
        assert families.loc[family, "p90_ape"] <= p90


@pytest.mark.parametrize(("file", "family", "median_bound", "p90_bound"), TARGETS)
def test_family_accuracy(
    h100: GpuDevice, file: str, family: str, median_bound: float, p90_bound: float | None
) -> None:
    _check_family(DATA / file, h100, family, median_bound, p90_bound)


@pytest.mark.parametrize(("file", "family", "median_bound", "p90_bound"), HOLDOUT_TARGETS)
def test_family_accuracy_holdout(
    h100: GpuDevice, file: str, family: str, median_bound: float, p90_bound: float | None
) -> None:
    _check_family(HOLDOUT / file, h100, family, median_bound, p90_bound)
