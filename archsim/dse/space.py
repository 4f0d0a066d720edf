"""Design spaces: the grid spanned by the ``sweep:`` blocks of a machine and a workload file."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from archsim.config.loader import MachineFile, WorkloadFile, validate_as
from archsim.config.machine import MachineConfig
from archsim.config.overrides import set_path
from archsim.config.workload import WorkloadConfig
from archsim.errors import ArchsimError, ConfigError


@dataclass(frozen=True)
class DesignPoint:
    """One point of the grid: the swept values and the validated configs they give."""

    index: int
    params: dict[str, Any]
    machine: MachineConfig
    workload: WorkloadConfig


def _axes(file: MachineFile | WorkloadFile) -> list[tuple[str, list[Any]]]:
    sweep = file.config.sweep or {}
    axes = []
    for path, values in sweep.items():
        if not values:
            raise ConfigError(
                file.path,
                "a swept field needs at least one value",
                field=f"sweep.{path}",
                line=file.lines.get(("sweep", path)),
            )
        axes.append((path, list(values)))
    return axes


def _variant(file: MachineFile | WorkloadFile, model: type, overrides: dict[str, Any]) -> Any:
    raw = {k: v for k, v in file.raw.items() if k != "sweep"}
    for path, value in overrides.items():
        try:
            raw = set_path(raw, path, value)
        except ArchsimError as exc:
            raise ConfigError(
                file.path, str(exc), field=f"sweep.{path}", line=file.lines.get(("sweep", path))
            ) from None
    if not overrides:
        return validate_as(model, raw, file.path, file.lines)
    try:
        return validate_as(model, raw, file.path)
    except ConfigError as exc:
        values = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ConfigError(
            file.path,
            f"sweep point ({values}): {exc.detail}",
            field=exc.field,
            line=file.lines.get(("sweep", next(iter(overrides)))),
        ) from None


class DesignSpace:
    """The discrete space spanned by both files' ``sweep:`` blocks, with validated points on demand.

    A combination is a tuple of value indices, machine axes first. Machine and workload variants
    are validated once each and reused, so sampling strategies pay validation per distinct
    variant, not per point.

    Parameters
    ----------
    machine_file, workload_file:
        The loaded files; their ``sweep:`` blocks give the axes.
    """

    def __init__(self, machine_file: MachineFile, workload_file: WorkloadFile):
        self.machine_file = machine_file
        self.workload_file = workload_file
        self.machine_axes = _axes(machine_file)
        self.workload_axes = _axes(workload_file)
        self.axes = self.machine_axes + self.workload_axes
        self._machines: dict[tuple[int, ...], MachineConfig] = {}
        self._workloads: dict[tuple[int, ...], WorkloadConfig] = {}

    @property
    def params(self) -> list[str]:
        """The swept dotted paths, machine first."""
        return [path for path, _ in self.axes]

    @property
    def lengths(self) -> list[int]:
        """Values per axis."""
        return [len(values) for _, values in self.axes]

    @property
    def size(self) -> int:
        """Number of combinations (an exact integer, possibly huge)."""
        return math.prod(self.lengths)

    def combo(self, flat: int) -> tuple[int, ...]:
        """Value indices of the ``flat``-th combination in grid order (last axis fastest)."""
        digits = []
        for length in reversed(self.lengths):
            flat, digit = divmod(flat, length)
            digits.append(digit)
        return tuple(reversed(digits))

    def validate_axes(self) -> None:
        """Validate every swept value on its own, so a refused value fails before any point runs."""
        for i, (_, values) in enumerate(self.axes):
            for j in range(len(values)):
                combo = [0] * len(self.axes)
                combo[i] = j
                self.point(0, tuple(combo))

    def point(self, index: int, combo: tuple[int, ...]) -> DesignPoint:
        """The validated design point of ``combo``, numbered ``index``."""
        n_machine = len(self.machine_axes)
        m_combo, w_combo = combo[:n_machine], combo[n_machine:]
        m_over = {
            path: values[k] for (path, values), k in zip(self.machine_axes, m_combo, strict=True)
        }
        w_over = {
            path: values[k] for (path, values), k in zip(self.workload_axes, w_combo, strict=True)
        }
        if m_combo not in self._machines:
            self._machines[m_combo] = _variant(self.machine_file, MachineConfig, m_over)
        if w_combo not in self._workloads:
            self._workloads[w_combo] = _variant(self.workload_file, WorkloadConfig, w_over)
        return DesignPoint(
            index, {**m_over, **w_over}, self._machines[m_combo], self._workloads[w_combo]
        )


def expand_grid(machine_file: MachineFile, workload_file: WorkloadFile) -> list[DesignPoint]:
    """Every combination of the swept values of both files, each validated like a written file.

    A swept value that the schema refuses is an error naming the sweep key, raised before any
    point runs; a point that is valid but cannot run the workload becomes an infeasible row later.
    """
    space = DesignSpace(machine_file, workload_file)
    combos = itertools.product(*[range(length) for length in space.lengths])
    return [space.point(i, combo) for i, combo in enumerate(combos)]
