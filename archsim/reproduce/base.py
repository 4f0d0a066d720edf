"""Paper reproductions: each one runs archsim's own models and compares with the paper's figures.

A reproduction is a function registered by name that returns the metrics it reproduced (the paper's
value, archsim's value, the tolerance) and a report document stating the setup and the assumptions
taken where the paper is ambiguous. ``archsim reproduce NAME`` writes the report to
``reports/reproductions/NAME.md`` and prints the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from archsim.errors import ArchsimError
from archsim.report.document import Document, Table


@dataclass(frozen=True)
class Metric:
    """One reproduced number.

    ``tolerance`` is relative: the reproduction passes when
    ``|archsim - paper| <= tolerance * |paper|``.
    """

    paper: float
    archsim: float
    tolerance: float
    unit: str
    description: str = ""

    @property
    def relative_error(self) -> float:
        return (self.archsim - self.paper) / self.paper if self.paper else math.inf

    @property
    def within_tolerance(self) -> bool:
        return abs(self.archsim - self.paper) <= self.tolerance * abs(self.paper)


@dataclass(frozen=True)
class Reproduction:
    """What a reproduction returns: its metrics by name and the report to write."""

    name: str
    metrics: dict[str, Metric]
    report: Document
    extra_files: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """``{"metrics": {name: {"paper", "archsim", "tolerance", "unit"}}}`` plus pass flags."""
        return {
            "name": self.name,
            "metrics": {
                name: {
                    "paper": m.paper,
                    "archsim": m.archsim,
                    "tolerance": m.tolerance,
                    "unit": m.unit,
                    "relative_error": m.relative_error,
                    "within_tolerance": m.within_tolerance,
                    "description": m.description,
                }
                for name, m in self.metrics.items()
            },
        }


def metrics_table(metrics: dict[str, Metric]) -> Table:
    """The report table every reproduction opens with: paper vs archsim per metric."""
    return Table(
        pd.DataFrame(
            [
                {
                    "metric": name,
                    "paper": m.paper,
                    "archsim": round(m.archsim, 3),
                    "unit": m.unit,
                    "error": f"{m.relative_error:+.1%}",
                    "tolerance": f"±{m.tolerance:.0%}",
                    "within": m.within_tolerance,
                }
                for name, m in metrics.items()
            ]
        )
    )


ReproductionFn = Callable[[], Reproduction]

_REGISTRY: dict[str, ReproductionFn] = {}


def register_reproduction(name: str) -> Callable[[ReproductionFn], ReproductionFn]:
    """Decorator: make ``archsim reproduce <name>`` run the decorated function."""

    def decorate(fn: ReproductionFn) -> ReproductionFn:
        if name in _REGISTRY:
            raise ValueError(f"reproduction '{name}' registered twice")
        _REGISTRY[name] = fn
        return fn

    return decorate


def registered_reproductions() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def run_reproduction(name: str) -> Reproduction:
    _load_builtin()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ArchsimError(f"unknown reproduction '{name}' (available: {known})")
    return _REGISTRY[name]()


def _load_builtin() -> None:
    # each module registers itself on import; a module appears here once its reproduction exists
    import importlib
    import pkgutil

    import archsim.reproduce as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("base",):
            importlib.import_module(f"archsim.reproduce.{info.name}")
