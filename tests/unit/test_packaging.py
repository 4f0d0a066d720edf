"""Every Python package of the source tree is listed for installation, so a plain `pip install .`
ships it (a package missing from the list imports from a source checkout but not from a wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _installed_name(package_dir: Path, mapping: dict[str, str]) -> str:
    relative = package_dir.relative_to(ROOT).as_posix()
    for name, source in sorted(mapping.items(), key=lambda kv: -len(kv[1])):
        if relative == source or relative.startswith(source + "/"):
            return name + relative[len(source) :].replace("/", ".")
    return relative.replace("/", ".")


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config.get("package-dir", {})
    found = set()
    for top in ("archsim", "mappers", "workloads", "hwconfigs"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(_installed_name(init.parent, mapping))
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"listed packages without a directory: {sorted(listed - found)}"
