"""Resumable sweeps: the point log survives crashes, torn records are recomputed, never read;
results are byte-identical run to run and executor to executor."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from archsim.config import load_machine, load_workload
from archsim.dse.executor import dask_client, run_dask, run_local
from archsim.dse.space import expand_grid
from archsim.dse.store import LOG_NAME, PointLog, read_log
from archsim.dse.sweep import run_sweep

DATA = Path(__file__).parents[1] / "data"
NPU_SEARCH = DATA / "machines" / "npu_search.yaml"
FPGA = DATA / "machines" / "tiny_fpga.yaml"
GEMMS = DATA / "workloads" / "tiny_gemms.yaml"


def _sweep(out: Path, **kwargs):
    return run_sweep(load_machine(NPU_SEARCH), load_workload(GEMMS), out, progress=False, **kwargs)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh")
    return out, _sweep(out)


def test_same_inputs_and_seed_give_byte_identical_results(fresh, tmp_path):
    out, _ = fresh
    _sweep(tmp_path)
    assert (tmp_path / "results.parquet").read_bytes() == (out / "results.parquet").read_bytes()


def test_resume_after_a_torn_write_recomputes_only_what_is_missing(fresh, tmp_path):
    out, outcome = fresh
    lines = (out / LOG_NAME).read_bytes().splitlines(keepends=True)
    assert len(lines) == len(outcome.table) == 48
    # a crash mid-append: 30 whole records, then half of the 31st; and one record altered later
    damaged = [*lines[:30], lines[30][: len(lines[30]) // 2]]
    damaged[5] = damaged[5].replace(b'latency_s\\": ', b'latency_s\\": 1')
    assert damaged[5] != lines[5]
    (tmp_path / LOG_NAME).write_bytes(b"".join(damaged))
    resumed = _sweep(tmp_path, resume=True)
    assert resumed.corrupted_records == 2
    assert resumed.reused_points == 29
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["evaluated_points"] == 48 - 29
    pd.testing.assert_frame_equal(resumed.table, outcome.table)
    assert (tmp_path / "results.parquet").read_bytes() == (out / "results.parquet").read_bytes()
    # the resumed log holds every point intact again
    assert len(read_log(tmp_path / LOG_NAME).rows) == 48


def test_resume_recomputes_nothing_that_finished(fresh, tmp_path):
    out, outcome = fresh
    (tmp_path / LOG_NAME).write_bytes((out / LOG_NAME).read_bytes())
    resumed = _sweep(tmp_path, resume=True)
    assert resumed.reused_points == 48 and resumed.corrupted_records == 0
    pd.testing.assert_frame_equal(resumed.table, outcome.table)


def test_a_new_sweep_keeps_the_old_log_aside(fresh, tmp_path):
    out, _ = fresh
    (tmp_path / LOG_NAME).write_bytes((out / LOG_NAME).read_bytes())
    outcome = _sweep(tmp_path)
    assert outcome.reused_points == 0
    assert (tmp_path / (LOG_NAME + ".bak")).read_bytes() == (out / LOG_NAME).read_bytes()


def test_appending_after_a_torn_line_starts_a_new_record(tmp_path):
    path = tmp_path / LOG_NAME
    with PointLog(path) as log:
        log.append([("a", {"x": 1.5})])
    path.write_bytes(path.read_bytes() + b'{"key": "b", "sha')
    with PointLog(path) as log:
        log.append([("c", {"x": float("nan")})])
    contents = read_log(path)
    assert set(contents.rows) == {"a", "c"} and contents.corrupted == 1


def test_kill_9_mid_sweep_then_resume_loses_nothing(fresh, tmp_path):
    _out, outcome = fresh
    script = (
        "import sys; from pathlib import Path\n"
        "from archsim.config import load_machine, load_workload\n"
        "from archsim.dse.sweep import run_sweep\n"
        f"run_sweep(load_machine({str(NPU_SEARCH)!r}), load_workload({str(GEMMS)!r}), "
        f"Path({str(tmp_path)!r}), progress=False)\n"
    )
    # run outside the source tree: `python -c` puts the working directory first on sys.path
    child = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    log = tmp_path / LOG_NAME
    # generous: a cold start compiles the Numba kernels, and CI machines can be loaded
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and child.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= 16:
            break
        time.sleep(0.01)
    child.kill()  # SIGKILL, like kill -9; a no-op if the sweep already ended
    child.wait()
    finished = len(read_log(log).rows)
    assert 16 <= finished < 48, "the sweep should have been killed part way"
    resumed = _sweep(tmp_path, resume=True)
    assert resumed.reused_points == finished
    pd.testing.assert_frame_equal(resumed.table, outcome.table)


def test_dask_local_cluster_gives_the_rows_of_the_process_pool():
    points = expand_grid(load_machine(FPGA), load_workload(GEMMS))
    local = run_local(points, jobs=1, progress=False)
    with dask_client(workers=2, processes=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        seen = []
        distributed = run_dask(
            points, client, progress=False, on_rows=lambda chunk, rows: seen.extend(rows)
        )
    assert len(seen) == len(points)
    assert pd.DataFrame(distributed).equals(pd.DataFrame(local))
