"""The machine and workload files that ship with archsim (package data), found by name."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from archsim.config.loader import parse_yaml
from archsim.errors import ArchsimError, ConfigError


@dataclass(frozen=True)
class ShippedFile:
    name: str
    path: Path
    description: str


def _package_dir(package: str) -> Path:
    return Path(str(resources.files(package)))


def shipped_files(package: str) -> list[ShippedFile]:
    """``archsim.hwconfigs`` or ``archsim.workloads``: each YAML with its description line."""
    found = []
    for path in sorted(_package_dir(package).glob("*.yaml")):
        try:
            raw, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
            description = str(raw.get("description", ""))
        except ConfigError as exc:
            description = f"(unreadable: {exc})"
        found.append(ShippedFile(path.stem, path, description))
    return found


def resolve(argument: str, package: str) -> Path:
    """A path as given, or else the shipped file of that name (``tpu_like`` or ``tpu_like.yaml``)."""
    path = Path(argument)
    if path.exists():
        return path
    stem = path.name.removesuffix(".yaml")
    for shipped in shipped_files(package):
        if shipped.name == stem:
            return shipped.path
    if path.parent != Path("."):
        return path  # an explicit path that does not exist: let the loader say so
    names = ", ".join(f.name for f in shipped_files(package))
    raise ArchsimError(f"{argument}: no such file, and no shipped file of that name ({names})")
