from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"


def run_archsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command in a clean directory (so the source tree is not on sys.path)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "archsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture
def archsim(tmp_path):
    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return run_archsim(*args, cwd=tmp_path)

    return invoke
