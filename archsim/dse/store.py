"""Result files: ``results.parquet`` and ``manifest.json`` with provenance."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import archsim


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(df: pd.DataFrame, out_dir: Path) -> Path:
    path = out_dir / "results.parquet"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".results.parquet.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def library_versions() -> dict[str, str]:
    import numba
    import numpy
    import pydantic

    return {
        "archsim": archsim.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "pandas": pd.__version__,
        "pydantic": pydantic.__version__,
    }


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> Path:
    path = out_dir / "manifest.json"
    body = {"archsim_version": archsim.__version__, "versions": library_versions(), **manifest}
    write_atomic(path, (json.dumps(body, indent=2, default=str) + "\n").encode())
    return path


# ---- the resumable point log -----------------------------------------------------------------

LOG_NAME = "points.jsonl"


def point_key(machine_json: str, workload_json: str, mapper: str) -> str:
    """Identity of a design point's result: SHA-256 of (machine, workload, mapper, archsim version).

    The configs enter as their validated JSON, so two files that spell a value differently
    (``"1 GHz"``, ``"1000 MHz"``) share a key, and a new archsim version never reuses old results.
    """
    body = json.dumps([machine_json, workload_json, mapper, archsim.__version__])
    return hashlib.sha256(body.encode()).hexdigest()


def _row_digest(row_json: str) -> str:
    return hashlib.sha256(row_json.encode()).hexdigest()


@dataclass(frozen=True)
class LogContents:
    """What a point log holds: intact rows by key, and how many records were refused."""

    rows: dict[str, dict[str, Any]]
    corrupted: int


def read_log(path: Path) -> LogContents:
    """Rows of every intact record of ``path``; torn or altered records are counted, never read.

    A record is one line ``{"key", "sha256", "row"}`` whose digest covers the row's JSON text; a
    line cut short by a crash, or changed afterwards, fails to parse or to match its digest.
    """
    rows: dict[str, dict[str, Any]] = {}
    corrupted = 0
    if not path.exists():
        return LogContents(rows, 0)
    with path.open("rb") as handle:
        for raw_line in handle:
            if not raw_line.strip():
                continue
            try:
                record = json.loads(raw_line)
                row_json = record["row"]
                if not raw_line.endswith(b"\n") or _row_digest(row_json) != record["sha256"]:
                    raise ValueError("digest mismatch")
                rows[str(record["key"])] = json.loads(row_json)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                corrupted += 1
    return LogContents(rows, corrupted)


class PointLog:
    """Append-only log of finished design points, one self-checking JSON line each.

    Each batch of rows is written with one ``os.write`` on a file opened with ``O_APPEND`` and then
    ``fsync``-ed, so a crash (even ``kill -9``) loses at most the batch being written, and a torn
    last line is detected by :func:`read_log` and its point recomputed.

    Parameters
    ----------
    path:
        The log file; created if missing.
    """

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # a torn last line must not swallow the first record appended after it
        size = os.fstat(self._fd).st_size
        if size:
            with path.open("rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def append(self, keyed_rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Append ``(key, row)`` records durably."""
        if not keyed_rows:
            return
        lines = []
        for key, row in keyed_rows:
            # repr-exact floats (json writes the shortest round-tripping form), NaN allowed; key
            # order kept, so a resumed table has the columns of a fresh one
            row_json = json.dumps(row, default=_json_default)
            record = {"key": key, "sha256": _row_digest(row_json), "row": row_json}
            lines.append(json.dumps(record) + "\n")
        data = memoryview("".join(lines).encode())
        while data:
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> PointLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_default(value: object) -> object:
    # numpy scalars from pandas or the models
    if hasattr(value, "item"):
        return value.item()
    return str(value)
