"""Result files: ``results.parquet`` and ``manifest.json`` with provenance."""

from __future__ import annotations

import json
import os
import platform
import tempfile
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
