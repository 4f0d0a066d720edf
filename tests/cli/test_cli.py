"""The ``archsim`` command end to end, as a user runs it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import DATA

FPGA = str(DATA / "machines" / "tiny_fpga.yaml")
PIM = str(DATA / "machines" / "tiny_pim.yaml")
GEMMS = str(DATA / "workloads" / "tiny_gemms.yaml")


def test_sweep_writes_every_file(archsim, tmp_path):
    out = tmp_path / "out"
    done = archsim("sweep", FPGA, GEMMS, "-o", str(out), "--jobs", "2")
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 8  # 2 dsp counts x 2 clocks x 2 dtypes
    for column in (
        "devices.fpga.dsp_count",
        "devices.fpga.clock",
        "workload.dtype",
        "latency_s",
        "throughput_per_s",
        "energy_j",
        "area_mm2",
        "edp_j_s",
        "feasible",
        "reason",
        "pareto",
        "dominant_bound",
    ):
        assert column in table.columns, column
    assert table["feasible"].all()
    assert (table["edp_j_s"] == table["energy_j"] * table["latency_s"]).all()
    # more DSPs at the same clock and dtype never make the suite slower
    for _, group in table.groupby(["devices.fpga.clock", "workload.dtype"]):
        by_dsp = group.sort_values("devices.fpga.dsp_count")["latency_s"].to_numpy()
        assert by_dsp[1] <= by_dsp[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["points"] == 8 and manifest["archsim_version"]
    assert len(manifest["machine"]["sha256"]) == 64 and manifest["wall_time_s"] > 0
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "lowest EDP" in report and "Why design" in report
    assert "<table>" in (out / "report.html").read_text()


def test_simulate_json_shape(archsim, tmp_path):
    done = archsim("simulate", PIM, GEMMS, "--format", "json", "-o", str(tmp_path / "sim"))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert {"latency_s", "energy_j", "area_mm2"} <= set(body["total"])
    assert len(body["ops"]) == 3
    for op in body["ops"]:
        assert {"name", "kind", "device", "cycles", "latency_s", "energy_j", "bound"} <= set(op)
    assert body["total"]["latency_s"] == pytest.approx(sum(op["latency_s"] for op in body["ops"]))
    assert (tmp_path / "sim" / "roofline.png").exists()


def test_simulate_table(archsim, tmp_path):
    done = archsim("simulate", FPGA, GEMMS, "-o", str(tmp_path / "sim"))
    assert done.returncode == 0, done.stderr
    assert "total:" in done.stdout and "bound" in done.stdout


def test_list_names_shipped_files(archsim):
    done = archsim("list")
    assert done.returncode == 0, done.stderr
    assert "machines:" in done.stdout and "workloads:" in done.stdout
    assert "tpu_like" in done.stdout and "llama2_7b_decode" in done.stdout


def test_show_prints_graph_summary(archsim):
    done = archsim("show", "llama2_7b_decode")
    assert done.returncode == 0, done.stderr
    assert "parameters:" in done.stdout and "FLOPs:" in done.stdout


def test_schema_is_json_schema(archsim, tmp_path):
    done = archsim("schema", "machine", "-o", str(tmp_path / "machine.json"))
    assert done.returncode == 0, done.stderr
    schema = json.loads((tmp_path / "machine.json").read_text())
    assert "devices" in schema["properties"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("simulate", str(DATA / "absent.yaml"), GEMMS), "no such file"),
        (("simulate", GEMMS, GEMMS), "this is a workload file"),
        (("simulate", PIM, PIM), "this is a machine file"),
        (("simulate", PIM, GEMMS.replace("tiny_gemms", "bad_workload")), "unknown field"),
        (("sweep", FPGA, GEMMS, "--mapper", "nonesuch"), "unknown mapper"),
        (("simulate", "no_such_machine", GEMMS), "no shipped file"),
        (("simulate", "piuma_smash", GEMMS), "graph-accelerator file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(archsim, args, fragment):
    done = archsim(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0]
