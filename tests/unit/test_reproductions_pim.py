"""NeuPIMs and Duplex reproductions against the papers' figures, within ±15%."""

from __future__ import annotations

import pytest

from archsim.reproduce import run_reproduction
from archsim.reproduce.neupims import (
    BATCHES,
    DATASETS,
    GPT3_7B,
    MODELS,
    GridModel,
    gpu_eager_step_s,
    grid_results,
    load_machines,
)
from archsim.reproduce.neupims_traces import TRACES
from archsim.sim.system import decode_layer_ops
from archsim.validate.predict import predict_ops

TOLERANCE = 0.15


@pytest.fixture(scope="module")
def neupims():
    return run_reproduction("neupims")


@pytest.fixture(scope="module")
def neupims_grid():
    return grid_results()


@pytest.fixture(scope="module")
def duplex():
    return run_reproduction("duplex")


def test_neupims_over_npu_only_undershoots_over_the_grid(neupims):
    # Known miss (reports/reproductions/neupims.md, Gaps): over the paper's grid attention is a
    # small share of the NPU-only step at small batches and on Alpaca, and the NPU-only
    # attention reads the KV cache near the DRAM bandwidth, so the mean gain stays low; NeuPIMs
    # must still beat NPU-only on average.
    m = neupims.metrics["throughput_over_npu_only"]
    assert 1.0 < m.archsim < m.paper * (1 - TOLERANCE)


def test_neupims_over_naive_npu_pim_undershoots_over_the_grid(neupims, neupims_grid):
    # Known miss (Gaps): no interleaving below batch 256 and interleaving that re-reads the
    # weights at 256 keep the mean low; at batch 512 interleaving must pay at every point.
    m = neupims.metrics["throughput_over_naive_npu_pim"]
    assert m.archsim < m.paper * (1 - TOLERANCE)
    assert (neupims_grid[neupims_grid.batch == 512].over_naive_npu_pim > 1.0).all()


def test_neupims_over_gpu_only_undershoots_over_the_grid(neupims, neupims_grid):
    # Known miss (Gaps): archsim's A100 40GB runs the steps faster than the NPU, eager launch
    # queue included, so the gain over it stays below the gain over NPU-only.
    m = neupims.metrics["throughput_over_gpu_only"]
    assert m.archsim < m.paper * (1 - TOLERANCE)
    assert m.archsim < neupims.metrics["throughput_over_npu_only"].archsim


def test_neupims_gains_grow_with_batch_and_context(neupims_grid):
    # the paper's trend (Sec. 8.2): larger batches and ShareGPT's longer contexts give
    # attention, and so PIM, more of the step
    by_batch = neupims_grid.groupby("batch").over_npu_only.mean()
    by_dataset = neupims_grid.groupby("dataset").over_npu_only.mean()
    assert by_batch[512] > by_batch[128] > by_batch[64]
    assert by_dataset["sharegpt"] > by_dataset["alpaca"]


def test_neupims_gain_over_npu_only_bounded_by_attention_share(neupims_grid):
    # NeuPIMs still runs every GEMM of the NPU-only step on the same NPU, so taking attention
    # off the NPU can save at most its share of the step
    bound = 1.0 / (1.0 - neupims_grid.npu_attention_share)
    assert (neupims_grid.over_npu_only <= bound * (1 + 1e-9)).all()


def test_neupims_traces_cover_the_grid():
    # one batch per (dataset, batch, model) point, each request's context within the
    # repository's 2048-token limit
    points = {(d, b, m) for d in DATASETS for b in BATCHES for m in MODELS}
    assert set(TRACES) == points
    for (_, batch, _), contexts in TRACES.items():
        assert len(contexts) == batch
        assert all(1 <= c <= 2048 for c in contexts)


def test_eager_gpu_step_waits_for_the_host_when_kernels_are_short():
    # eager PyTorch: the host issues a kernel every host_launch + host_alloc; with kernels
    # shorter than that the step is the host's issue time, with long ones the GPU's
    machine = load_machines()["gpu_only"]
    device = machine.devices["a100"]
    issue_s = device.host_launch_s + device.host_alloc_s
    assert issue_s > 0
    small = GridModel(GPT3_7B, tensor_parallel=8, pipeline_parallel=1).stage
    ops = decode_layer_ops(small, [64] * 8, tensor_parallel=8) * small.layers
    eager = gpu_eager_step_s(machine, small, [64] * 8, 8)
    graph = predict_ops(ops, device, graph=True).latency_s
    assert eager >= (len(ops) - 1) * issue_s
    assert eager > 1.2 * graph
    # a large batch keeps the GPU busy longer than the host needs to issue its kernels
    big = TRACES[("sharegpt", 512, "gpt3-7b")]
    eager_big = gpu_eager_step_s(machine, GPT3_7B, big, 4)
    graph_big = predict_ops(
        decode_layer_ops(GPT3_7B, big, tensor_parallel=4) * GPT3_7B.layers, device, graph=True
    ).latency_s
    assert eager_big == pytest.approx(graph_big, rel=0.02)


@pytest.mark.parametrize(
    "metric",
    [
        "throughput_over_gpu_max",
        "throughput_no_coprocessing_over_gpu_max",
        "energy_reduction_mixtral_max",
        "energy_reduction_glam_max",
    ],
)
def test_duplex_within_tolerance(duplex, metric):
    m = duplex.metrics[metric]
    assert m.tolerance == TOLERANCE
    assert abs(m.archsim - m.paper) <= TOLERANCE * m.paper, (metric, m.archsim, m.paper)


def test_duplex_mixtral_saves_less_energy_than_glam(duplex):
    # the paper's order (Sec. 7.4): Mixtral's few experts see more tokens each, so more of
    # them go to the xPU and its full-price DRAM reads
    mixtral = duplex.metrics["energy_reduction_mixtral_max"].archsim
    assert 0.0 < mixtral < duplex.metrics["energy_reduction_glam_max"].archsim
