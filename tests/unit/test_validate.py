"""archsim.validate: measured CSV lowering, profiler-trace parsing, error metrics and the CLI."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from archsim.config import load_machine
from archsim.hw.machine import Machine
from archsim.ir.ops import Attention, Gemm, GroupedGemm
from archsim.ir.tensor import NM, DType
from archsim.validate.metrics import (
    absolute_percentage_error,
    family_metrics,
    overall_metrics,
    summarize,
    worst_rows,
)
from archsim.validate.predict import predict_ops
from archsim.validate.readers import read_measured_csv
from archsim.validate.report import validate, validation_json
from archsim.validate.trace import read_trace

DATA = Path(__file__).parents[1] / "data"
TRACE = DATA / "trace_layer_prefill_B1_S2048.json.gz"
TRACE_KERNELS = DATA / "validate_prefill_trace_kernels.csv"
MIX = DATA / "validate_measured_mix.csv"
FPGA = DATA / "machines" / "tiny_fpga.yaml"

# README section 7 of the measured data: kernel busy time per iteration of the prefill trace
PREFILL_BUSY_US = 1405.0


@pytest.fixture(scope="module")
def trace():
    return read_trace(TRACE)


@pytest.fixture(scope="module")
def fpga():
    machine = Machine.from_config(load_machine(FPGA).config)
    return next(iter(machine.devices.values()))


# --- profiler trace ----------------------------------------------------------------------------


def test_trace_finds_three_iterations_with_the_profiled_kernel_count(trace):
    expected = pd.read_csv(TRACE_KERNELS)
    assert trace.iterations == ("iter0", "iter1", "iter2")
    for name in trace.iterations:
        mine = [k for k in trace.kernels if k.iteration == name]
        theirs = expected[expected["iter"] == name]
        assert sum(k.kind == "kernel" for k in mine) == (theirs["kind"] == "kernel").sum() == 11
        assert len(mine) == len(theirs)  # memsets included


def test_trace_busy_time_per_iteration_matches_the_readme(trace):
    busy = trace.busy_us_by_iteration()
    for name, value in busy.items():
        assert value == pytest.approx(PREFILL_BUSY_US, rel=0.02), name


def test_trace_links_each_kernel_to_its_aten_op_and_shapes(trace):
    # the reference CSV was produced by a different tool from the same trace
    expected = pd.read_csv(TRACE_KERNELS).set_index("correlation")
    assert len(trace.kernels) == len(expected)
    for kernel in trace.kernels:
        row = expected.loc[kernel.correlation]
        assert kernel.aten_op == row["aten_op"]
        assert json.loads(kernel.aten_input_shapes) == json.loads(row["aten_input_shapes"])
        assert kernel.layer_step == row["layer_step"]
        assert kernel.measured_us == pytest.approx(row["duration_us"], abs=1e-3)


def test_trace_lowers_gemm_shapes_and_attributes_memsets(trace):
    gemm_groups = [g for g in trace.groups if g.family == "gemm"]
    assert len(gemm_groups) == 4 * 3  # qkv, o, w13, down in each of 3 iterations
    sizes = {(op.m, op.n, op.k) for g in gemm_groups for op in g.ops if isinstance(op, Gemm)}
    assert sizes == {
        (2048, 6144, 4096),
        (2048, 4096, 4096),
        (2048, 28672, 4096),
        (2048, 4096, 14336),
    }
    for group in trace.groups:
        principal = trace.kernels[group.principal]
        assert principal.kind == "kernel"
        # every GPU event of a group (memset + kernel) was launched by the same aten op call
        assert {trace.kernels[m].aten_op for m in group.members} == {principal.aten_op}
    events = sum(len(g.members) for g in trace.groups)
    assert events == len(trace.kernels)  # each memset belongs to exactly one group


def test_trace_attention_is_causal_gqa_with_readme_flops(trace):
    attention_groups = [g for g in trace.groups if g.family == "attention_prefill"]
    assert len(attention_groups) == 3
    op = attention_groups[0].ops[0]
    assert isinstance(op, Attention)
    assert (op.heads_q, op.heads_kv, op.q_len, op.kv_len, op.causal) == (32, 8, 2048, 2048, True)
    assert op.dtype == DType.BF16
    # README section 5: causal prefill flops = 4*B*H*d*S(S+1)/2
    assert op.flops() == 4 * 1 * 32 * 128 * 2048 * 2049 / 2


def test_trace_reads_plain_json_and_splits_iterations_by_repeated_tags(tmp_path):
    # remove the iterN annotations: iterations must come from the repeating L.* tags instead
    events = json.loads(gzip.decompress(TRACE.read_bytes()))
    events["traceEvents"] = [
        e
        for e in events["traceEvents"]
        if not (e.get("cat") == "user_annotation" and str(e.get("name", "")).startswith("iter"))
    ]
    plain = tmp_path / "trace.json"
    plain.write_text(json.dumps(events))
    parsed = read_trace(plain)
    assert len(parsed.iterations) == 3
    for busy in parsed.busy_us_by_iteration().values():
        assert busy == pytest.approx(PREFILL_BUSY_US, rel=0.02)


def test_trace_validation_totals_and_json(trace, fpga):
    result = validate(TRACE, fpga)
    body = validation_json(result)
    assert len(body["rows"]) == 42
    for row in body["rows"]:
        assert {
            "kernel_name",
            "aten_op",
            "aten_input_shapes",
            "measured_us",
            "predicted_us",
        } <= set(row)
    predicted_sum = sum(r["predicted_us"] for r in body["rows"] if r["predicted_us"] is not None)
    assert body["total"]["predicted_us"] == pytest.approx(predicted_sum / 3)
    assert body["total"]["measured_us"] == pytest.approx(
        sum(r["measured_us"] for r in body["rows"]) / 3
    )
    # memsets carry no prediction of their own: they point at their GEMM or attention kernel
    memsets = [r for r in body["rows"] if r["kind"] == "gpu_memset"]
    assert memsets and all(r["predicted_us"] is None and r["attributed_to"] for r in memsets)
    assert body["overall"]["n"] == 33


# --- measured CSV ------------------------------------------------------------------------------


def test_csv_families_and_skips():
    table = read_measured_csv(MIX)
    family = {r.index: r.family for r in table.lowered}
    frame = table.frame
    for index, row in frame.iterrows():
        if index not in family:
            continue
        if row["op"] == "gemm_xWt":
            assert family[index] == ("gemm" if row["M"] >= 64 else "gemm_skinny")
        if row["op"] == "sparse24_cslt_mm_searched":
            assert family[index] == "sparse24"
    skipped = {s.index: s.reason for s in table.skipped}
    eager_sparse = frame.index[(frame["op"] == "sparse24_linear") & (frame["graph"] == False)]  # noqa: E712
    assert len(eager_sparse) == 1
    assert "framework overhead" in skipped[eager_sparse[0]]
    errors = frame.index[frame["status"] == "error"]
    assert len(errors) == 2 and all(skipped[i].startswith("status=error") for i in errors)
    untimed = frame.index[frame["op"].isin(["sparse24_kernel_profile", "profiler_trace"])]
    assert all("no timing" in skipped[i] for i in untimed)
    # no row is lost: every row is either lowered or skipped, once
    assert sorted([*family, *skipped]) == list(range(len(frame)))
    assert {r.family for r in table.lowered} == {
        "gemm",
        "gemm_skinny",
        "sparse24",
        "bmm",
        "layer_eager",
        "attention_prefill",
        "attention_decode",
        "moe_naive",
        "moe_grouped",
        "layer",
    }


def test_csv_lowered_flops_equal_the_measured_flops_column():
    table = read_measured_csv(MIX)
    checked = set()
    for lowered in table.lowered:
        row = table.frame.loc[lowered.index]
        # MoE and layer rows also hold elementwise/norm ops whose work the CSV does not count
        counted = [op for op in lowered.ops if isinstance(op, Gemm | GroupedGemm | Attention)]
        assert sum(op.flops() for op in counted) == pytest.approx(row["flops"], rel=1e-12), row[
            "op"
        ]
        checked.add(lowered.family)
    assert {"gemm", "bmm", "attention_prefill", "attention_decode", "layer", "moe_naive"} <= checked


def test_csv_lowering_details():
    table = read_measured_csv(MIX)
    by_op = {}
    for lowered in table.lowered:
        by_op.setdefault(str(table.frame.loc[lowered.index, "op"]), []).append(lowered)
    sparse = by_op["sparse24_cslt_mm_searched"][0].ops[0]
    assert sparse.b.sparsity == NM(2, 4) and sparse.a.sparsity.density == 1.0
    bmm = by_op["bmm_qKt"][0].ops[0]
    assert (bmm.batch, bmm.m, bmm.n, bmm.k, bmm.b.is_weight) == (256, 1, 2048, 128, False)
    repeat_kv = [
        r.ops[0]
        for r in by_op["sdpa_decode"]
        if "repeat_kv" in str(table.frame.loc[r.index, "extra"])
    ]
    assert repeat_kv and repeat_kv[0].heads_kv == repeat_kv[0].heads_q == 32
    layers = {str(table.frame.loc[r.index, "impl"]): r for r in by_op["decoder_layer_prefill"]}
    assert layers["eager"].eager_multi_kernel and not layers["cuda_graph"].eager_multi_kernel
    assert len(layers["eager"].ops) == 11  # one op per kernel of the profiled eager layer
    moe = next(r for r in by_op["moe_layer"] if r.family == "moe_naive")
    row = table.frame.loc[moe.index]
    counts = [int(c) for c in str(row["expert_counts"]).split("|")]
    expert_gemms = [op for op in moe.ops if isinstance(op, Gemm) and ".e" in op.name]
    assert len(expert_gemms) == 3 * sum(c > 0 for c in counts)


def test_host_launch_hook_only_raises_short_ops(fpga):
    table = read_measured_csv(MIX)
    layer = next(r for r in table.lowered if r.family == "layer_eager")
    assert layer.eager_multi_kernel
    gpu_only = predict_ops(layer.ops, fpga, eager_multi_kernel=True, host_launch_s=0.0).latency_s
    host_s = 1.0  # far longer than any op: the GPU waits for each launch in turn
    with_host = predict_ops(layer.ops, fpga, eager_multi_kernel=True, host_launch_s=host_s)
    assert with_host.latency_s == pytest.approx((len(layer.ops) - 1) * host_s, rel=1e-3)
    unchanged = predict_ops(layer.ops, fpga, eager_multi_kernel=False, host_launch_s=host_s)
    assert unchanged.latency_s == pytest.approx(gpu_only)


# --- metrics -----------------------------------------------------------------------------------


def test_ape_and_summary_on_hand_numbers():
    measured = pd.Series([100.0, 100.0, 200.0, 50.0, 0.0])
    predicted = pd.Series([110.0, 80.0, 200.0, 100.0, 5.0])
    ape = absolute_percentage_error(measured, predicted)
    assert ape.iloc[:4].tolist() == pytest.approx([10.0, 20.0, 0.0, 100.0])
    assert pd.isna(ape.iloc[4])  # no error relative to a zero measurement
    stats = summarize(ape)
    assert stats["n"] == 4
    assert stats["median_ape"] == pytest.approx(15.0)
    # sorted 0, 10, 20, 100: the 90th percentile sits at rank 2.7, 0.7 of the way from 20 to 100
    assert stats["p90_ape"] == pytest.approx(76.0)
    assert stats["within_10pct"] == pytest.approx(0.5)  # 10 % itself counts as within


def test_family_and_overall_metrics():
    frame = pd.DataFrame({"family": ["a", "a", "b"], "ape_pct": [5.0, 15.0, 40.0]})
    table = family_metrics(frame).set_index("family")
    assert table.loc["a", "n"] == 2 and table.loc["a", "median_ape"] == pytest.approx(10.0)
    assert table.loc["b", "within_10pct"] == 0.0
    overall = overall_metrics(frame)
    assert overall["n"] == 3 and overall["median_ape"] == pytest.approx(15.0)
    assert worst_rows(frame, 2)["ape_pct"].tolist() == [40.0, 15.0]
    assert summarize(pd.Series([], dtype=float))["median_ape"] is None


# --- CLI ---------------------------------------------------------------------------------------


def _archsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "archsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cli_validate_json_shape(tmp_path):
    out = tmp_path / "out"
    done = _archsim(
        "validate", str(MIX), "--hw", str(FPGA), "-o", str(out), "--format", "json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "NaN" not in done.stdout
    body = json.loads(done.stdout)
    assert set(body) == {"rows", "families", "overall", "host_launch"}
    columns = set(pd.read_csv(MIX).columns)
    assert len(body["rows"]) == len(pd.read_csv(MIX))
    for row in body["rows"]:
        assert columns | {"family", "measured_us", "predicted_us"} <= set(row)
        # a row is either predicted or says why not
        assert (row["predicted_us"] is None) != (row["skip_reason"] is None)
    fp16 = [r for r in body["rows"] if r["dtype"] == "fp16"]
    assert fp16 and "does not support" in fp16[0]["skip_reason"]  # tiny_fpga has no fp16
    for stats in body["families"].values():
        assert set(stats) == {"n", "median_ape", "p90_ape", "within_10pct"}
    predicted = [r for r in body["rows"] if r["predicted_us"] is not None]
    assert body["overall"]["n"] == len(predicted) == sum(s["n"] for s in body["families"].values())
    assert (out / "validation_scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "Worst ten rows" in report and "validation_scatter.png" in report
    assert "<table>" in (out / "report.html").read_text()


def test_cli_validate_table_and_errors(tmp_path):
    done = _archsim(
        "validate", str(TRACE), "--hw", str(FPGA), "-o", str(tmp_path / "o"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "iter1" in done.stdout and "overall" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    failed = _archsim("validate", str(bad), "--hw", str(FPGA), cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.startswith("archsim: error:") and "Traceback" not in failed.stderr
    no_device = _archsim("validate", str(MIX), "--hw", str(FPGA), "--device", "gpu0", cwd=tmp_path)
    assert no_device.returncode == 2 and "no device 'gpu0'" in no_device.stderr
