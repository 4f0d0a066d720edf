"""Flash-LLM and SMASH: kernels against their references, mechanisms, and the papers' figures.

Tolerance: ±15% of the paper's value. Metrics the model misses are pinned by direction, and the
report must explain the gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from archsim.config import load_machine
from archsim.config.graph_accel import load_graph_accel
from archsim.errors import ArchsimError
from archsim.hw.base import build_device
from archsim.hw.gpu_sparse import (
    FlashLlmTiling,
    dense_gemm,
    flash_llm_spmm,
    flash_llm_tiling,
    group_counts,
    sputnik_l1_hit_rate,
    sputnik_spmm,
    two_four_split,
)
from archsim.hw.graph_accel import (
    inner_product_cost,
    outer_product_cost,
    rowwise_hash_cost,
    rowwise_stats,
    table_slots,
)
from archsim.ir.ops import gemm
from archsim.ir.tensor import NM, DType
from archsim.kernels.sparse_chain import skewed_mask
from archsim.kernels.sparse_spgemm import (
    power_law_csr,
    product_windows,
    row_products,
    row_runs,
    rowwise_hash_spgemm,
    rowwise_hash_spgemm_reference,
)
from archsim.kernels.sparse_tiles import (
    closed_network_cycle,
    closed_network_cycle_reference,
    random_mask,
    schedule_blocks,
    schedule_blocks_reference,
    tile_nnz,
    tile_nnz_from_density,
    tile_nnz_reference,
    tiled_csl_bytes,
)
from archsim.kernels.sweep_cache import iid_csr_rows, sweep_hits, sweep_hits_reference
from archsim.reproduce.flash_llm import reproduce_flash_llm
from archsim.reproduce.smash import AS_MODELLED, VARIANTS, reproduce_smash

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def a100():
    return load_machine(ROOT / "hwconfigs" / "a100.yaml").config.devices[0]


@pytest.fixture(scope="module")
def piuma():
    return load_graph_accel(ROOT / "hwconfigs" / "piuma_smash.yaml")


@pytest.mark.parametrize("shape, tile", [((130, 70), (64, 32)), ((64, 256), (64, 256))])
def test_tile_kernel_matches_reference(shape, tile):
    mask = skewed_mask(*shape, 0.3, 1.0, seed=3)
    np.testing.assert_array_equal(tile_nnz(mask, *tile), tile_nnz_reference(mask, *tile))


def test_block_scheduler_matches_reference():
    work = np.random.default_rng(1).random(37)
    np.testing.assert_allclose(schedule_blocks(work, 5), schedule_blocks_reference(work, 5))


def test_tiled_csl_metadata_counts_positions_and_offsets():
    counts = np.array([[10, 0], [5, 1]])
    values, metadata = tiled_csl_bytes(counts)
    assert values == 32 and metadata == 2 * 16 + 4 * 4


def test_imbalance_per_tile_grows_with_skewed_masks(a100):
    tiling = FlashLlmTiling(tile_n=64, tile_k=64)
    imbalance = []
    for skew in (0.0, 2.0):
        mask = skewed_mask(1024, 64 * 216, 0.2, skew, seed=5)
        counts = tile_nnz(mask, 64, 64)
        cost = flash_llm_spmm(a100, 16, counts, 1024, 64 * 216, tiling, split_k=1)
        imbalance.append(cost.imbalance)
    # the per-step HBM latency is paid by every tile alike, so skew shows above that floor
    assert imbalance[1] > imbalance[0] + 0.01


def test_flash_llm_advantage_shrinks_as_density_grows(a100):
    tiling = FlashLlmTiling()
    k, n = 4096, 256 * 64
    speedups = []
    for density in (0.1, 0.3, 0.6):
        counts = tile_nnz(random_mask(k, n, density, seed=2), tiling.tile_k, tiling.tile_n)
        flash = flash_llm_spmm(a100, 16, counts, k, n, tiling)
        speedups.append(dense_gemm(a100, 16, k, n).latency_s / flash.latency_s)
    assert speedups[0] > speedups[1] > speedups[2]
    assert speedups[2] < 1.0  # at 40% sparsity the 4-byte Tiled-CSL words outweigh the savings


def test_closed_network_matches_reference_and_its_bounds():
    rng = np.random.default_rng(3)
    think, hbm, sm = rng.random(5) * 1e-6, rng.random(5) * 1e-8, rng.random(5) * 4e-7
    fast = closed_network_cycle(think, hbm, sm, 6, 40)
    np.testing.assert_allclose(fast, closed_network_cycle_reference(think, hbm, sm, 6, 40))
    # a block's loop is never shorter than its own demands, nor than the HBM queue's bound
    assert np.all(fast >= think + hbm + sm / 6 - 1e-15)
    assert np.all(fast >= 40 * hbm - 1e-15)
    # one customer alone never queues
    np.testing.assert_allclose(closed_network_cycle(think, hbm, sm, 6, 1), think + hbm + sm)


def test_flash_llm_queueing_slows_short_steps_more_than_long_ones(a100):
    # at high sparsity latency, HBM and shared memory are comparable, so contention matters
    k, n = 7168, 256 * 108
    ratios = []
    for density in (0.1, 0.3):
        tiling = flash_llm_tiling(16)
        counts = tile_nnz_from_density(k, n, tiling.tile_k, tiling.tile_n, density, seed=4)
        cost = flash_llm_spmm(a100, 16, counts, k, n, tiling, split_k=2)
        streaming_s = cost.hbm_bytes / (a100.hbm.bw_bytes_per_s * a100.efficiency.hbm)
        ratios.append(cost.latency_s / streaming_s)
    assert ratios[0] > ratios[1] > 1.0


def test_flash_llm_tiling_follows_its_api():
    assert flash_llm_tiling(8).tile_n == 256 and flash_llm_tiling(64).tile_n == 128
    assert flash_llm_tiling(32).shared_bytes == (256 + 32) * 64 * 2 * 2
    with pytest.raises(ValueError, match="tokens"):
        flash_llm_tiling(24)


def test_sputnik_per_nonzero_cost_grows_with_strip_width_and_l1_misses(a100):
    nnz, k, n = 5e6, 7168, 7168
    l1 = 192 * 1024
    per = [sputnik_spmm(a100, t, nnz, k, n, l1).latency_s for t in (8, 16, 32, 64)]
    # 8 tokens pay for the 16-column strip of the 16-token kernel; wider strips cost more
    assert per[0] == pytest.approx(per[1]) and per[1] < per[2] < per[3]
    # the rows sweeping together find most strips in L1, so the CUDA cores bound the kernel
    full = sputnik_spmm(a100, 64, nnz, k, n, l1)
    assert full.bound == "fp32" and full.l1_hit_rate > 0.5
    # with a few KB of L1 left after the shared-memory carve-out the misses go to L2
    starved = sputnik_spmm(a100, 64, nnz, k, n, 70 * 1024)
    assert starved.l1_hit_rate < full.l1_hit_rate
    assert starved.bound == "l2" and starved.latency_s > per[3]


@pytest.mark.parametrize(
    "rows, k, density, slots, per_line, capacity, stream_every, stream_lines",
    [
        (20, 500, 0.3, 6, 2, 40, 16, 2),
        (9, 300, 0.1, 4, 1, 10, 0, 0),
        (30, 800, 0.5, 32, 4, 30, 64, 2),
        (5, 50, 1.0, 2, 1, 3, 4, 1),
    ],
)
def test_sweep_kernel_matches_reference(
    rows, k, density, slots, per_line, capacity, stream_every, stream_lines
):
    columns, lengths = iid_csr_rows(rows, k, density, seed=3)
    rates = np.linspace(1.0, 0.6, slots)
    args = (columns, lengths, slots, per_line, capacity, stream_every, stream_lines, rates, 5)
    assert sweep_hits(*args) == sweep_hits_reference(*args)


def test_iid_rows_are_sorted_csr_rows_of_the_density():
    columns, lengths = iid_csr_rows(200, 1000, 0.2, seed=1)
    for row, length in zip(columns, lengths, strict=True):
        kept = row[:length]
        assert (np.diff(kept) > 0).all() and kept.min() >= 0 and kept.max() < 1000
        assert (row[length:] == -1).all()
    assert lengths.mean() == pytest.approx(200, rel=0.05)
    with pytest.raises(ValueError, match="density"):
        iid_csr_rows(2, 10, 0.0, seed=0)


def test_sorted_sweep_reuses_what_random_order_cannot():
    # 32 resident rows over 4000 activation rows with room for 300 lines: a sweep in column
    # order finds most strips fetched by the rows ahead; the same reads in a random order do not
    columns, lengths = iid_csr_rows(64, 4000, 0.3, seed=2)
    lockstep = np.ones(32)
    sorted_hits, reads = sweep_hits(columns, lengths, 32, 1, 300, 0, 0, lockstep)
    rng = np.random.default_rng(0)
    shuffled = columns.copy()
    for row, length in zip(shuffled, lengths, strict=True):
        row[:length] = rng.permutation(row[:length])
    random_hits, _ = sweep_hits(shuffled, lengths, 32, 1, 300, 0, 0, lockstep)
    assert sorted_hits / reads > 0.6
    assert random_hits / reads < 300 / 4000 + 0.05  # capacity over working set
    # a smaller cache, sparse tiles streaming through it, and rows drifting apart cost hits
    assert sweep_hits(columns, lengths, 32, 1, 100, 0, 0, lockstep)[0] < sorted_hits
    assert sweep_hits(columns, lengths, 32, 1, 300, 8, 2, lockstep)[0] < sorted_hits
    drifting = np.linspace(1.0, 0.5, 32)
    assert sweep_hits(columns, lengths, 32, 1, 300, 0, 0, drifting)[0] < sorted_hits


# H100 (CUDA C++ Programming Guide, compute capability 9.0): 132 SMs, 256 KB of L1 and shared
# memory per SM, shared-memory carve-outs in KB, 32 resident blocks per SM.
H100_SMS, H100_L1_SHARED_KB = 132, 256
H100_CARVEOUTS_KB = (0, 8, 16, 32, 64, 100, 132, 164, 196, 228)


def test_sweep_hit_rates_match_a_sputnik_like_kernel_measured_on_h100():
    """sputnik_like_sweep.py's kernel: 1.5 KB of shared memory per block, int32 indices."""
    measured = pd.read_csv(ROOT / "tests" / "data" / "h100" / "sputnik_like_sweep.csv")
    # sorted rows stay far above shuffled ones: the sweep is what L1 reuses
    pivot = measured.pivot_table(
        index=["n_out", "k", "density", "tokens"],
        columns="shuffled",
        values="ld_sector_hits",
    )
    assert (pivot[0] > 2.0 * pivot[1]).all()
    errors, lockstep_errors = [], []
    for case in measured[(measured["shuffled"] == 0) & (measured["tokens"] >= 32)].itertuples():
        # a dense read is tokens / 16 sectors per kept weight; the other sectors are the
        # sparse tiles', which mostly miss: the dense hit rate lies between these two
        dense_sectors = case.nnz * case.tokens / 16
        sparse_sectors = case.ld_sectors - dense_sectors
        low = (case.ld_sector_hits - sparse_sectors) / dense_sectors
        high = case.ld_sector_hits / dense_sectors
        blocks = case.n_out // 4
        per_sm = -(-blocks // H100_SMS)
        resident = min(32, per_sm)
        carveout = next(c for c in H100_CARVEOUTS_KB if c >= resident * 2.5)
        capacity = (H100_L1_SHARED_KB - carveout) * 1024 // 128
        per_line = 128 // (2 * case.tokens)
        args = (case.k, case.density, resident, 4, per_sm * 4, per_line, capacity)
        predicted = sputnik_l1_hit_rate(*args, stream_lines=3)
        assert low - 0.12 < predicted < high + 0.12, (case, predicted)
        errors.append(predicted - (low + high) / 2)
        columns, lengths = iid_csr_rows(per_sm * 4, case.k, case.density, 0)
        hits, reads = sweep_hits(
            columns, lengths, resident * 4, per_line, capacity, 64, 3, np.ones(resident * 4)
        )
        lockstep_errors.append(hits / reads - (low + high) / 2)
    assert np.sqrt(np.mean(np.square(errors))) < 0.1
    # in strict lockstep the long rows would keep far more in L1 than was measured
    assert np.mean(lockstep_errors) > 0.15


def test_a100_two_four_terms_reproduce_the_h100_measurement_at_flash_llm_shapes(a100):
    """a100.yaml's cuSPARSELt terms, carried back onto the H100 they were measured on."""
    h100 = load_machine(ROOT / "hwconfigs" / "h100.yaml").config.devices[0]
    ratio = a100.efficiency.sparse_hbm / a100.efficiency.hbm
    efficiency = h100.efficiency.model_copy(update={"sparse_hbm": ratio * h100.efficiency.hbm})
    carried = h100.model_copy(
        update={"sparse_kernel_overhead_s": a100.sparse_kernel_overhead_s, "efficiency": efficiency}
    )
    measured = pd.read_csv(ROOT / "tests" / "data" / "h100" / "cusparselt_flash_llm_shapes.csv")
    measured = measured[measured["n_out"] > 1024]

    def sparse_over_dense(gpu):
        device = build_device(gpu)
        out = []
        for row in measured.itertuples():
            dense = gemm("d", row.tokens, row.n_out, row.k, DType.FP16)
            sparse = gemm("s", row.tokens, row.n_out, row.k, DType.FP16, b_sparsity=NM(2, 4))
            out.append(device.cost(sparse).latency_s / device.cost(dense).latency_s)
        return np.array(out)

    observed = (measured["cusparselt_us"] / measured["cublas_us"]).to_numpy()
    assert np.median(np.abs(sparse_over_dense(carried) / observed - 1.0)) < 0.05
    # h100.yaml's own 2:4 terms, fitted on PyTorch's F.linear layout, miss this layout
    assert np.median(sparse_over_dense(h100) / observed - 1.0) > 0.15


def test_two_four_split_keeps_two_per_group():
    mask = np.array([[1], [1], [1], [0], [1], [1], [1], [1]], dtype=np.uint8)
    assert two_four_split(group_counts(mask)) == (4.0, 3.0)


@pytest.mark.parametrize("slots, capacity", [(7, 5), (64, 40), (64, 1000)])
def test_hash_kernel_matches_reference(slots, capacity):
    a = power_law_csr(300, 6, 2.2, seed=4)
    windows = product_windows(row_products(a, a), capacity)
    fast = rowwise_hash_spgemm(a[0], a[1], a[0], a[1], slots, windows)
    np.testing.assert_array_equal(
        fast, rowwise_hash_spgemm_reference(a[0], a[1], a[0], a[1], slots, windows)
    )


def test_row_products_count_the_selected_b_rows():
    a = power_law_csr(200, 5, 2.2, seed=2)
    b_rows = np.diff(a[0])
    expected = [b_rows[a[1][a[0][i] : a[0][i + 1]]].sum() for i in range(200)]
    np.testing.assert_array_equal(row_products(a, a), expected)


def test_row_runs_count_the_nonempty_b_rows_selected():
    a = power_law_csr(200, 5, 2.2, seed=2)
    b = power_law_csr(200, 3, 2.6, seed=5)  # sparser, so some selected rows of B are empty
    b_rows = np.diff(b[0])
    expected = [int((b_rows[a[1][a[0][i] : a[0][i + 1]]] > 0).sum()) for i in range(200)]
    assert (b_rows == 0).any()
    np.testing.assert_array_equal(row_runs(a, b), expected)


def test_hash_collisions_grow_with_load_factor():
    a = power_law_csr(2000, 8, 2.2, seed=6)
    windows = product_windows(row_products(a, a), 2000)
    rates = []
    for slots in (8192, 4096, 2600):
        counts = rowwise_hash_spgemm(a[0], a[1], a[0], a[1], slots, windows)
        rates.append(counts[:, 2].sum() / counts[:, 0].sum())
    assert rates[0] < rates[1] < rates[2]


def test_windows_sized_by_products_never_overflow(piuma):
    a = power_law_csr(4096, 8, 2.2, seed=7)
    stats = rowwise_stats(a, a, 4096)
    assert stats.overflow_share == 0.0
    assert stats.windows.max() > 0  # the rows did need several windows


def test_dynamic_work_distribution_balances_power_law_rows(piuma):
    a = power_law_csr(8192, 8, 2.1, seed=7)
    stats = rowwise_stats(a, a, table_slots(piuma))
    assert rowwise_hash_cost(piuma, a, stats).imbalance < 1.25


def test_outer_product_moves_more_partial_products_than_rowwise(piuma):
    a = power_law_csr(4096, 8, 2.2, seed=7)
    stats = rowwise_stats(a, a, table_slots(piuma))
    row = rowwise_hash_cost(piuma, a, stats)
    outer = outer_product_cost(piuma, a, a, stats)
    inner = inner_product_cost(piuma, a, a)
    assert outer.dram_bytes > 2.0 * row.dram_bytes
    assert inner.dram_bytes > outer.dram_bytes


def test_outer_merge_of_sorted_runs_beats_sorting_the_row(piuma):
    a = power_law_csr(4096, 8, 2.2, seed=7)
    stats = rowwise_stats(a, a, table_slots(piuma))
    tree = outer_product_cost(piuma, a, a, stats)
    sort = outer_product_cost(piuma, a, a, stats, merge_kind="sort")
    assert tree.latency_s < sort.latency_s
    assert tree.dram_bytes == sort.dram_bytes  # the same partials move either way


def test_outer_merge_split_over_threads_removes_the_heavy_row_tail(piuma):
    a = power_law_csr(8192, 8, 2.1, seed=7)
    stats = rowwise_stats(a, a, table_slots(piuma))
    one_thread_per_row = outer_product_cost(piuma, a, a, stats)
    split = outer_product_cost(piuma, a, a, stats, split_rows=True)
    assert one_thread_per_row.imbalance > 2.0  # the hub row outlasts the rest of the merge
    assert split.latency_s < one_thread_per_row.latency_s


def test_writeback_scanning_the_table_costs_more_than_a_list(piuma):
    a = power_law_csr(4096, 8, 2.2, seed=7)
    stats = rowwise_stats(a, a, table_slots(piuma))
    # windows fill at most half the table, so a scan visits more slots than were used
    assert stats.output_nnz < 0.5 * stats.table_slots * (stats.windows.max() + 1)
    listed = rowwise_hash_cost(piuma, a, stats)
    scanned = rowwise_hash_cost(piuma, a, stats, writeback="scanned")
    assert scanned.latency_s > listed.latency_s


@pytest.mark.parametrize(
    "call, allowed",
    [
        (lambda p, a, s: rowwise_hash_cost(p, a, s, writeback="sorted"), "listed, scanned"),
        (lambda p, a, s: outer_product_cost(p, a, a, s, merge_kind="heap"), "tournament, sort"),
    ],
)
def test_spgemm_choices_reject_unknown_names(piuma, call, allowed):
    a = power_law_csr(64, 4, 2.2, seed=1)
    stats = rowwise_stats(a, a, table_slots(piuma))
    with pytest.raises(ArchsimError, match=allowed):
        call(piuma, a, stats)


@pytest.fixture(scope="module")
def flash():
    return reproduce_flash_llm()


@pytest.mark.parametrize(
    "metric",
    [
        "speedup_over_dense_70",
        "speedup_over_dense_80",
        "speedup_over_dense_90",
        "speedup_over_sputnik_70",
    ],
)
def test_flash_llm_matches_paper(flash, metric):
    m = flash.metrics[metric]
    assert m.tolerance == 0.15
    assert m.within_tolerance, (metric, m.paper, m.archsim)


def test_flash_llm_gaps_keep_direction_and_are_explained(flash):
    for sparsity in (70, 80, 90):
        assert flash.metrics[f"speedup_over_dense_{sparsity}"].archsim > 1.0
        assert flash.metrics[f"speedup_over_sputnik_{sparsity}"].archsim > 1.0
        assert flash.metrics[f"speedup_over_sparta_{sparsity}"].archsim > 1.0
    dense = [flash.metrics[f"speedup_over_dense_{s}"].archsim for s in (70, 80, 90)]
    sputnik = [flash.metrics[f"speedup_over_sputnik_{s}"].archsim for s in (70, 80, 90)]
    assert dense[0] < dense[1] < dense[2]  # as in the paper: 1.4, 1.7, 2.1
    assert sputnik[0] > sputnik[1] > sputnik[2]  # as in the paper: 3.6, 3.0, 2.0
    # documented misses: Sputnik (bound by its CUDA cores once its activations hit in L1) and
    # SparTA (cuSPARSELt at the ratio measured on the H100) are faster than the paper timed
    for sparsity in (70, 80, 90):
        for kernel in ("sputnik", "sparta"):
            metric = flash.metrics[f"speedup_over_{kernel}_{sparsity}"]
            assert metric.archsim < metric.paper
    texts = " ".join(getattr(b, "text", "") for b in flash.report.blocks)
    assert "Gaps" in texts and "cusparselt_flash_llm_shapes" in texts


@pytest.fixture(scope="module")
def smash():
    return reproduce_smash()


def _block_frames(result):
    return [b.frame for b in result.report.blocks if hasattr(b, "frame")]


def test_smash_matches_paper(smash):
    m = smash.metrics["rowwise_speedup_over_best_competitor"]
    assert m.tolerance == 0.15
    assert m.within_tolerance, (m.paper, m.archsim)


def test_smash_matrices_agree_and_sensitivity_is_reported(smash):
    per_matrix = next(f for f in _block_frames(smash) if "over best" in f.columns)
    over_best = per_matrix["over best"]
    assert (over_best > 1.0).all() and over_best.max() < 2.0 * over_best.min()
    sensitivity = next(f for f in _block_frames(smash) if "variant" in f.columns)
    sensitivity = sensitivity.set_index("variant")["geometric mean"]
    assert list(sensitivity.index) == list(VARIANTS)
    modelled = sensitivity[AS_MODELLED]
    metric = smash.metrics["rowwise_speedup_over_best_competitor"].archsim
    assert modelled == pytest.approx(metric, abs=0.01)  # the table is rounded to 0.01
    # each open choice moves the metric the way its mechanism says: a row sort slows the
    # baseline, splitting heavy rows speeds it up, a table scan slows the row-wise kernel
    assert sensitivity["outer merge sorts each row (p log2 p)"] > modelled
    assert sensitivity["outer merge split evenly over all threads"] < modelled
    assert sensitivity["row-wise write-back scans the whole table"] < modelled
    texts = " ".join(getattr(b, "text", "") for b in smash.report.blocks)
    assert "Gaps" in texts and "not tight evidence" in texts
