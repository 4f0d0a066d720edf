"""``archsim sweep`` with a search block, --resume and the Dask executor, as a user runs it."""

from __future__ import annotations

import json

import pandas as pd

from .conftest import DATA

NPU_SEARCH = str(DATA / "machines" / "npu_search.yaml")
FPGA = str(DATA / "machines" / "tiny_fpga.yaml")
GEMMS = str(DATA / "workloads" / "tiny_gemms.yaml")


def test_search_then_resume_reuses_every_point(archsim, tmp_path):
    out = tmp_path / "out"
    first = archsim("sweep", NPU_SEARCH, GEMMS, "-o", str(out), "--jobs", "2")
    assert first.returncode == 0, first.stderr
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 48 and table["pareto"].any()
    assert not table.loc[table["pareto"], "area_mm2"].gt(560).any()  # the area constraint
    for name in ("points.jsonl", "pareto.png", "parallel.png", "report.md", "manifest.json"):
        assert (out / name).exists(), name
    again = archsim("sweep", NPU_SEARCH, GEMMS, "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert "48 points reused, 0 damaged" in again.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["evaluated_points"] == 0 and manifest["search"]["strategy"] == "nsga2"
    assert manifest["hypervolume"] > 0 and manifest["knee_point"] is not None
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), table)


def test_dask_executor_writes_the_rows_of_the_process_pool(archsim, tmp_path):
    pool = archsim("sweep", FPGA, GEMMS, "-o", str(tmp_path / "pool"), "--jobs", "1")
    dask = archsim(
        "sweep", FPGA, GEMMS, "-o", str(tmp_path / "dask"), "--executor", "dask", "-j", "1"
    )
    assert pool.returncode == 0 and dask.returncode == 0, dask.stderr
    assert (tmp_path / "pool" / "results.parquet").read_bytes() == (
        tmp_path / "dask" / "results.parquet"
    ).read_bytes()


def test_unreachable_scheduler_is_one_line_and_exit_2(archsim, tmp_path):
    done = archsim("sweep", FPGA, GEMMS, "-o", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("archsim: error: cannot reach the Dask scheduler")
    assert len(done.stderr.strip().splitlines()) == 1
