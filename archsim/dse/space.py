"""Design spaces: the grid spanned by the ``sweep:`` blocks of a machine and a workload file."""

from __future__ import annotations

import itertools
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


def expand_grid(machine_file: MachineFile, workload_file: WorkloadFile) -> list[DesignPoint]:
    """Every combination of the swept values of both files, each validated like a written file.

    A swept value that the schema refuses is an error naming the sweep key, raised before any
    point runs; a point that is valid but cannot run the workload becomes an infeasible row later.
    """
    machine_axes = _axes(machine_file)
    workload_axes = _axes(workload_file)
    machine_variants = [
        (dict(zip([p for p, _ in machine_axes], combo, strict=True)))
        for combo in itertools.product(*[v for _, v in machine_axes])
    ]
    workload_variants = [
        (dict(zip([p for p, _ in workload_axes], combo, strict=True)))
        for combo in itertools.product(*[v for _, v in workload_axes])
    ]
    machines = [(o, _variant(machine_file, MachineConfig, o)) for o in machine_variants]
    workloads = [(o, _variant(workload_file, WorkloadConfig, o)) for o in workload_variants]
    points = []
    for (m_over, machine), (w_over, workload) in itertools.product(machines, workloads):
        points.append(DesignPoint(len(points), {**m_over, **w_over}, machine, workload))
    return points
