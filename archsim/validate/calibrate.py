"""Fit a machine file's efficiency parameters to measured kernel times.

``calibrate(measured, machine_file)`` reads a measured CSV once, then searches for the values of a
few real-valued fields of the machine file (by default every number of the device's
``efficiency`` block and its ``kernel_launch``) that minimise the prediction error, and returns a
:class:`Calibration`: the fitted values next to the original ones, the error before and after on
the rows it was fitted on and on rows it never saw, and the machine file's text with only the
fitted values changed.

Objective
---------
For each validation family, ``median APE + 0.5 * p90 APE`` (APE in percent); the objective is the
mean of that over the families, so each family weighs the same and a family of 300 rows does not
drown one of 20. The median rewards being right on typical kernels, the p90 term keeps the tail
from being sacrificed for them.

Search
------
Nelder-Mead on the logarithm of each value (a step is a relative change, the same for 0.8 and for
6 us), clipped to the field's bounds (``Fraction`` fields to (0, 1]) and to a factor of 1000 around
the starting value, restarted from its best point until a restart no longer improves. It is
deterministic: no random numbers. Every evaluation rebuilds the machine through
:func:`~archsim.config.overrides.set_path` and full validation, exactly as a sweep point is built,
so a fitted value gets every check a value written in the file gets.

Hold-out
--------
Every fifth compared row (in file order) is held out of the fit and reported separately, so the
report shows how the fit generalises, not only how well it fits its own rows.
"""

from __future__ import annotations

import logging
import math
import re
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from archsim.config.loader import MachineFile, Path_, parse_yaml, validate_as
from archsim.config.machine import MachineConfig
from archsim.config.overrides import set_path
from archsim.errors import ArchsimError
from archsim.hw.base import DeviceModel
from archsim.hw.machine import Machine
from archsim.validate.metrics import absolute_percentage_error, family_metrics, summarize
from archsim.validate.predict import predict_row, select_device
from archsim.validate.readers import LoweredRow, read_measured_csv

logger = logging.getLogger(__name__)

# Weight of the 90th-percentile APE next to the median in each family's term of the objective.
P90_WEIGHT = 0.5
OBJECTIVE_TEXT = (
    "mean over families of (median APE + 0.5 x p90 APE), in %; "
    "each family weighs the same, however many rows it has"
)
# Every HOLDOUT_EVERY-th compared row (positions 4, 9, 14, ... in file order) is held out.
HOLDOUT_EVERY = 5
DEFAULT_MAX_EVALS = 400
# Fitted values are written with this many significant digits: finer than the +-5% run-to-run
# spread of the measurements, so rounding costs nothing a user could measure.
SIGNIFICANT_DIGITS = 3
# The search stays within this factor of the starting value: an efficiency that wants to move
# 1000x is a model that is missing a mechanism, not a parameter to fit.
SEARCH_SPAN = 1e3
# Initial simplex step in log space (about 16 %).
_LOG_STEP = 0.15
# Converged when the simplex spans less than this in log space (0.1 %) ...
_X_TOL = 1e-3
# ... and its objective values differ by less than this (percentage points).
_F_TOL = 1e-4
# A parameter whose 20 % change moves no prediction by this relative amount is not fitted.
_SENSITIVITY_PROBE = 0.8
_SENSITIVITY_RTOL = 1e-9

_QUANTITY = re.compile(
    r"^\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>\S.*?)\s*$"
)


# --- parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One real-valued field of the machine file that the fit may change.

    Attributes
    ----------
    path:
        Dotted path as the user names it (``devices.h100.efficiency.tensor``).
    raw_path:
        The same field as keys and list indices of the raw mapping (for its line number).
    before_si:
        Value in the file, in SI units (seconds for ``kernel_launch``).
    before_text:
        The value as written in the file (``0.82``, ``6.1 us``).
    unit:
        Unit the file writes the value in (``us``), or None for a plain number.
    si_per_unit:
        SI value of one ``unit`` (1e-6 for ``us``; 1.0 for a plain number).
    lower, upper:
        Bounds of the search, SI units, both inclusive (the field's own bounds, within
        :data:`SEARCH_SPAN` of the starting value).
    """

    path: str
    raw_path: Path_
    before_si: float
    before_text: str
    unit: str | None
    si_per_unit: float
    lower: float
    upper: float

    def raw_value(self, value_si: float, digits: int | None = None) -> float | str:
        """The value as it goes into the raw mapping: a number, or a string with the unit."""
        number = value_si / self.si_per_unit
        text = _format_number(number, digits)
        return float(text) if self.unit is None else f"{text} {self.unit}"

    def text(self, value_si: float, digits: int | None = None) -> str:
        """The value as written in YAML (``0.803``, ``5.87 us``)."""
        return str(self.raw_value(value_si, digits))

    def rounded(self, value_si: float) -> float:
        """``value_si`` rounded as the file will say it (:data:`SIGNIFICANT_DIGITS` in its unit)."""
        number = float(_format_number(value_si / self.si_per_unit, SIGNIFICANT_DIGITS))
        return number * self.si_per_unit


def _format_number(number: float, digits: int | None) -> str:
    # Positional notation: PyYAML reads "1e-05" (no dot) as a string, not a float.
    if digits is None:
        return np.format_float_positional(number, unique=True, trim="0")
    return np.format_float_positional(
        number, precision=digits, unique=True, fractional=False, trim="0"
    )


def default_parameter_paths(machine_file: MachineFile, device_name: str | None) -> list[str]:
    """Every number of the device's ``efficiency`` block, then its ``kernel_launch``.

    Parameters
    ----------
    machine_file:
        The loaded machine file.
    device_name:
        Device whose fields are fitted; None: the first device of the machine.
    """
    devices = machine_file.raw.get("devices") or []
    chosen = _raw_device(devices, device_name)
    name = str(chosen.get("name"))
    paths: list[str] = []

    def leaves(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                leaves(value, f"{prefix}.{key}")
        elif _is_real(node):
            paths.append(prefix)

    leaves(chosen.get("efficiency"), f"devices.{name}.efficiency")
    if "kernel_launch" in chosen:
        paths.append(f"devices.{name}.kernel_launch")
    if not paths:
        raise ArchsimError(
            f"device '{name}' has no 'efficiency' block or 'kernel_launch'; name the fields to fit "
            "with --params (dotted paths such as devices.<name>.<field>)"
        )
    return paths


def _raw_device(devices: list[Any], device_name: str | None) -> dict[str, Any]:
    if not devices:
        raise ArchsimError("the machine file has no devices")
    if device_name is None:
        return devices[0]
    for device in devices:
        if isinstance(device, dict) and device.get("name") == device_name:
            return device
    names = ", ".join(str(d.get("name")) for d in devices if isinstance(d, dict))
    raise ArchsimError(f"the machine has no device '{device_name}' (it has: {names})")


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def resolve_parameter(machine_file: MachineFile, path: str) -> Parameter:
    """Check that ``path`` names a real-valued field of the file and describe it.

    The field must exist in the file (a default value that the file does not write cannot be
    edited in place) and hold a number or a quantity with a unit; integers (``sm_count``), names
    and groups of fields are refused.

    Raises
    ------
    ArchsimError
        Naming ``path`` and what is wrong with it.
    """
    raw: Any = machine_file.raw
    node: Any = machine_file.config
    annotation: Any = None
    metadata: list[Any] = []
    raw_path: list[str | int] = []
    for part in path.split("."):
        if isinstance(raw, dict):
            if part not in raw:
                keys = ", ".join(sorted(map(str, raw))) or "none"
                raise ArchsimError(f"--params '{path}': no field '{part}' here (fields: {keys})")
            key: str | int = part
        elif isinstance(raw, list):
            key = _list_index(raw, part, path)
        else:
            raise ArchsimError(f"--params '{path}': '{part}' reaches into a value, not a mapping")
        raw_path.append(key)
        raw = raw[key]
        node, annotation, metadata = _config_child(node, annotation, key, path)
    if isinstance(raw, dict | list) or isinstance(node, BaseModel):
        raise ArchsimError(f"--params '{path}': is a group of fields, not a number; name one field")
    if (
        not isinstance(node, float)
        or isinstance(raw, bool)
        or not isinstance(raw, int | float | str)
    ):
        raise ArchsimError(
            f"--params '{path}': is {type(node).__name__} {raw!r}; only real-valued fields "
            "(efficiencies, times, bandwidths) can be fitted"
        )
    before_si = float(node)
    if not before_si > 0:
        raise ArchsimError(
            f"--params '{path}': is {raw!r}; the fit searches positive values, so write a positive "
            "starting value"
        )
    if isinstance(raw, str):
        match = _QUANTITY.match(raw)
        if match is None or float(match.group("num")) == 0:
            raise ArchsimError(f"--params '{path}': cannot split '{raw}' into a number and a unit")
        unit: str | None = match.group("unit")
        si_per_unit = before_si / float(match.group("num"))
    else:
        unit, si_per_unit = None, 1.0
    lower, upper = _bounds(metadata)
    return Parameter(
        path=path,
        raw_path=tuple(raw_path),
        before_si=before_si,
        before_text=str(raw),
        unit=unit,
        si_per_unit=si_per_unit,
        lower=max(lower, before_si / SEARCH_SPAN),
        upper=min(upper, before_si * SEARCH_SPAN),
    )


def _list_index(items: list[Any], part: str, path: str) -> int:
    # the addressing of set_path: an index, or the entry whose 'name' is part
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    names = [str(i.get("name")) for i in items if isinstance(i, dict) and "name" in i]
    raise ArchsimError(
        f"--params '{path}': '{part}' is neither an index below {len(items)} nor a name "
        f"({', '.join(names) or 'no named entries'})"
    )


def _config_child(
    node: Any, annotation: Any, key: str | int, path: str
) -> tuple[Any, Any, list[Any]]:
    """Step from a validated config node to its child ``key``: (child, annotation, metadata).

    The metadata carries the field's constraints (``Fraction``: greater than 0, at most 1).
    """
    if isinstance(node, BaseModel):
        for name, field in type(node).model_fields.items():
            if key in (name, field.alias):
                return getattr(node, name), field.annotation, list(field.metadata)
    if isinstance(node, list) and isinstance(key, int):
        return node[key], None, []
    if isinstance(node, dict):
        value_type = typing.get_args(annotation)[-1] if typing.get_args(annotation) else None
        metadata: list[Any] = []
        if typing.get_origin(value_type) is typing.Annotated:
            for extra in typing.get_args(value_type)[1:]:
                metadata += list(getattr(extra, "metadata", [extra]))
        for existing, value in node.items():
            if getattr(existing, "value", existing) == key:
                return value, value_type, metadata
    raise ArchsimError(f"--params '{path}': '{key}' is not part of the validated configuration")


def _bounds(metadata: Sequence[Any]) -> tuple[float, float]:
    # annotated_types constraints (Gt, Ge, Lt, Le) as pydantic keeps them on a field
    lower, upper = 0.0, math.inf
    for constraint in metadata:
        for attr in ("gt", "ge", "lt", "le"):
            bound = getattr(constraint, attr, None)
            if bound is None:
                continue
            # an exclusive bound is nudged inside, so that the search may sit on it
            if attr == "gt":
                lower = max(lower, float(bound) + abs(float(bound)) * 1e-9)
            elif attr == "ge":
                lower = max(lower, float(bound))
            elif attr == "lt":
                upper = min(upper, float(bound) - abs(float(bound)) * 1e-9)
            else:
                upper = min(upper, float(bound))
    return lower, upper


# --- evaluation ----------------------------------------------------------------------------------


class _Evaluator:
    """Predicts the measured rows for a vector of parameter values (SI units)."""

    def __init__(
        self,
        machine_file: MachineFile,
        device_name: str | None,
        parameters: Sequence[Parameter],
        rows: Sequence[LoweredRow],
        host_launch_s: float | None,
    ):
        self.machine_file = machine_file
        self.device_name = device_name
        self.parameters = tuple(parameters)
        self.rows = tuple(rows)
        self.host_launch_s = host_launch_s

    def raw_with(self, values_si: Sequence[float], digits: int | None = None) -> dict[str, Any]:
        raw = self.machine_file.raw
        for parameter, value in zip(self.parameters, values_si, strict=True):
            raw = set_path(raw, parameter.path, parameter.raw_value(value, digits))
        return raw

    def device(self, values_si: Sequence[float], digits: int | None = None) -> DeviceModel:
        raw = self.raw_with(values_si, digits)
        config = validate_as(MachineConfig, raw, self.machine_file.path, self.machine_file.lines)
        return select_device(Machine.from_config(config), self.device_name)

    def predict_us(self, values_si: Sequence[float], which: np.ndarray | None = None) -> np.ndarray:
        """Predicted time per row in microseconds (NaN where the device cannot run a row)."""
        device = self.device(values_si)
        chosen = range(len(self.rows)) if which is None else which
        out = np.full(len(self.rows), np.nan)
        for i in chosen:
            # the same per-row prediction as 'archsim validate' (the row's L2 state, launches)
            prediction = predict_row(self.rows[i], device, host_launch_s=self.host_launch_s)
            if prediction.latency_s is not None:
                out[i] = prediction.latency_s * 1e6
        return out


def family_objective(ape_pct: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """Mean over families of ``median + P90_WEIGHT * p90`` of the APE (percent).

    Parameters
    ----------
    ape_pct:
        APE of every row, percent (NaN rows are left out).
    groups:
        Row indices of each family.

    Returns
    -------
    float
        The objective, or NaN when no family has a row with an APE.
    """
    terms = []
    for group in groups:
        values = ape_pct[group]
        values = values[np.isfinite(values)]
        if values.size:
            terms.append(float(np.median(values) + P90_WEIGHT * np.percentile(values, 90)))
    return float(np.mean(terms)) if terms else math.nan


def _ape(measured_us: np.ndarray, predicted_us: np.ndarray) -> np.ndarray:
    return np.abs(predicted_us - measured_us) / measured_us * 100.0


# --- the search ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`nelder_mead`: best point, its value, evaluations used, convergence."""

    x: np.ndarray
    value: float
    evaluations: int
    converged: bool


def nelder_mead(
    function: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_evals: int,
    step: float = _LOG_STEP,
    x_tol: float = _X_TOL,
    f_tol: float = _F_TOL,
) -> SearchResult:
    """Minimise ``function`` from ``x0`` by Nelder-Mead, every point clipped into the bounds.

    Deterministic (standard coefficients 1, 2, 1/2, 1/2; no random restarts): after convergence
    it restarts from the best point with a fresh simplex while that still improves and
    evaluations remain, which rescues a simplex that collapsed against a bound.

    Parameters
    ----------
    function:
        Objective of a point; NaN counts as +inf.
    x0, lower, upper:
        Start and inclusive bounds, one entry per dimension.
    max_evals:
        Most calls of ``function`` (repeated points are remembered, not counted twice).
    step:
        Edge length of the initial simplex along each axis.
    x_tol, f_tol:
        Converged when every vertex is within ``x_tol`` of the best in every coordinate and the
        values differ by less than ``f_tol``.
    """
    memo: dict[tuple[float, ...], float] = {}

    def f(x: np.ndarray) -> float:
        key = tuple(float(v) for v in x)
        if key not in memo:
            if len(memo) >= max_evals:
                raise _BudgetSpent
            value = function(x)
            memo[key] = math.inf if math.isnan(value) else value
        return memo[key]

    def clip(x: np.ndarray) -> np.ndarray:
        return np.clip(x, lower, upper)

    converged = False
    best_f = math.inf
    try:
        start = clip(np.asarray(x0, dtype=float))
        best_f = f(start)
        while True:
            converged, value = _nelder_mead_run(f, clip, start, step, x_tol, f_tol)
            improved = value < best_f - f_tol
            best_f = min(best_f, value)
            if not improved:
                break
            start = np.array(min(memo, key=memo.__getitem__))
    except _BudgetSpent:
        converged = False
    # the best point ever evaluated, whichever stage found it
    best_key = min(memo, key=memo.__getitem__)
    return SearchResult(np.array(best_key), memo[best_key], len(memo), converged)


class _BudgetSpent(Exception):
    """Raised inside the search when ``max_evals`` evaluations have been used."""


def _nelder_mead_run(
    f: Callable[[np.ndarray], float],
    clip: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    step: float,
    x_tol: float,
    f_tol: float,
) -> tuple[bool, float]:
    """One Nelder-Mead run from ``start`` until its simplex meets the tolerances.

    Returns ``(converged, best value)``; running out of evaluations raises ``_BudgetSpent``.
    """
    n = start.size
    simplex = [start]
    for axis in range(n):
        vertex = start.copy()
        vertex[axis] += step
        if clip(vertex)[axis] == start[axis]:
            # at an upper bound: step the other way so the simplex does not start flat
            vertex[axis] = start[axis] - step
        simplex.append(clip(vertex))
    values = [f(v) for v in simplex]
    while True:
        order = np.argsort(values, kind="stable")
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        spread_x = max(float(np.max(np.abs(v - simplex[0]))) for v in simplex[1:])
        if spread_x < x_tol and values[-1] - values[0] < f_tol:
            return True, values[0]
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        reflected = clip(centroid + (centroid - worst))
        f_reflected = f(reflected)
        if f_reflected < values[0]:
            expanded = clip(centroid + 2.0 * (reflected - centroid))
            f_expanded = f(expanded)
            if f_expanded < f_reflected:
                simplex[-1], values[-1] = expanded, f_expanded
            else:
                simplex[-1], values[-1] = reflected, f_reflected
            continue
        if f_reflected < values[-2]:
            simplex[-1], values[-1] = reflected, f_reflected
            continue
        if f_reflected < values[-1]:
            contracted = clip(centroid + 0.5 * (reflected - centroid))
        else:
            contracted = clip(centroid + 0.5 * (worst - centroid))
        f_contracted = f(contracted)
        if f_contracted < min(f_reflected, values[-1]):
            simplex[-1], values[-1] = contracted, f_contracted
            continue
        best = simplex[0]
        simplex = [best] + [clip(best + 0.5 * (v - best)) for v in simplex[1:]]
        values = [values[0]] + [f(v) for v in simplex[1:]]


# --- calibration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedParameter:
    """A parameter with its value before and after the fit.

    Attributes
    ----------
    parameter:
        The field and its original value.
    after_si:
        The value written to the calibrated file (rounded to :data:`SIGNIFICANT_DIGITS`), SI.
    after_text:
        The same as written in YAML.
    fitted:
        False when no compared row depends on the field, so it was held at its value.
    """

    parameter: Parameter
    after_si: float
    after_text: str
    fitted: bool

    @property
    def changed(self) -> bool:
        return self.after_text != self.parameter.before_text


@dataclass(frozen=True)
class Calibration:
    """The result of fitting a machine file to a measured CSV.

    Attributes
    ----------
    source:
        The measured CSV.
    machine_path:
        The machine file that was fitted.
    device:
        ``name (kind)`` of the device the rows were predicted on.
    parameters:
        Every parameter asked for, fitted or held.
    rows:
        One row per compared measured row: ``index`` (row of the CSV), ``family``, ``split``
        (``fit`` or ``holdout``), ``measured_us``, ``predicted_before_us``, ``predicted_after_us``,
        ``ape_before_pct`` and ``ape_after_pct``.
    skipped:
        Rows of the CSV that were not compared (not lowerable, or not supported by the device).
    objective:
        ``{"fit": {"before", "after"}, "holdout": {"before", "after"}}`` (percent; None when a
        split has no rows).
    evaluations:
        Machine evaluations of the search.
    converged:
        Whether the search met its tolerances before running out of evaluations.
    improved:
        False when the rounded fit was no better than the original values (then kept).
    wall_s:
        Time the fit took, seconds.
    calibrated_text:
        The machine file with only the fitted values (and their comments) changed.
    """

    source: str
    machine_path: str
    device: str
    parameters: tuple[FittedParameter, ...]
    rows: pd.DataFrame
    skipped: int
    objective: dict[str, dict[str, float | None]]
    evaluations: int
    converged: bool
    improved: bool
    wall_s: float
    calibrated_text: str

    def split(self, name: str) -> pd.DataFrame:
        return self.rows[self.rows["split"] == name]


def calibrate(
    measured: Path,
    machine_file: MachineFile,
    *,
    param_paths: Sequence[str] | None = None,
    device_name: str | None = None,
    host_launch_s: float | None = None,
    max_evals: int = DEFAULT_MAX_EVALS,
) -> Calibration:
    """Fit parameters of ``machine_file`` to the measured CSV ``measured``.

    Parameters
    ----------
    measured:
        A measured CSV in the schema of ``shared/data/gpu/*.csv`` (times in microseconds).
    machine_file:
        The loaded machine file; it is not changed.
    param_paths:
        Dotted paths of the fields to fit; None: :func:`default_parameter_paths`.
    device_name:
        Device to predict with; None: the machine's first device.
    host_launch_s:
        Host time per eager kernel launch, seconds; None takes the device's own figure (see
        :func:`archsim.validate.predict.predict_ops`).
    max_evals:
        Most machine evaluations the search may use.

    Returns
    -------
    Calibration
        Fitted values, errors before and after (fitted and held-out rows) and the new file text.

    Raises
    ------
    ArchsimError
        For a bad parameter path, a file that is not a measured CSV, or no comparable row.
    """
    started = time.perf_counter()
    if max_evals < 1:
        raise ArchsimError(f"--max-evals must be at least 1, got {max_evals}")
    if measured.name.endswith((".json", ".json.gz")):
        raise ArchsimError(
            f"{measured}: calibrate reads measured CSVs (the schema of shared/data/gpu/*.csv), "
            "not profiler traces"
        )
    paths = list(param_paths) if param_paths else default_parameter_paths(machine_file, device_name)
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ArchsimError(f"--params names {repeated} more than once")
    parameters = [resolve_parameter(machine_file, p) for p in paths]
    table = read_measured_csv(measured)
    measured_all = pd.to_numeric(table.frame["median_us"], errors="coerce").to_numpy(float)

    evaluator = _Evaluator(machine_file, device_name, parameters, table.lowered, host_launch_s)
    before = np.array([p.before_si for p in parameters])
    device = evaluator.device(before)
    predicted_before = evaluator.predict_us(before)
    row_measured = np.array([measured_all[r.index] for r in table.lowered])
    compared = np.flatnonzero(np.isfinite(predicted_before) & (row_measured > 0))
    if compared.size == 0:
        raise ArchsimError(
            f"{measured}: no row can be compared on device '{device.name}' ({device.kind}) "
            f"({len(table.lowered)} lowered, {len(table.skipped)} skipped); "
            "run 'archsim validate' to see why"
        )
    holdout_mask = (np.arange(compared.size) % HOLDOUT_EVERY) == HOLDOUT_EVERY - 1
    fit_rows, holdout_rows = compared[~holdout_mask], compared[holdout_mask]
    families = [table.lowered[i].family for i in range(len(table.lowered))]
    fit_groups = _groups(fit_rows, families)

    def objective_of(predicted: np.ndarray, groups: list[np.ndarray]) -> float:
        return family_objective(_ape(row_measured, predicted), groups)

    # Fields no compared row depends on would only wander; they are held at their values.
    active = []
    for k, parameter in enumerate(parameters):
        probe = before.copy()
        probe[k] = max(parameter.lower, parameter.before_si * _SENSITIVITY_PROBE)
        moved = evaluator.predict_us(probe, fit_rows)[fit_rows]
        base = predicted_before[fit_rows]
        if np.any(np.abs(moved - base) > _SENSITIVITY_RTOL * np.abs(base)):
            active.append(k)
        else:
            logger.info(
                "%s: no compared row depends on it; held at %s",
                parameter.path,
                parameter.before_text,
            )

    def search_objective(log_x: np.ndarray) -> float:
        values = before.copy()
        values[active] = np.exp(log_x)
        value = objective_of(evaluator.predict_us(values, fit_rows), fit_groups)
        logger.debug("objective %.4f at %s", value, values)
        return value

    evaluations, converged = 0, True
    best = before.copy()
    if active:
        log_lower = np.log([parameters[k].lower for k in active])
        log_upper = np.log([parameters[k].upper for k in active])
        result = nelder_mead(
            search_objective, np.log(before[active]), log_lower, log_upper, max_evals=max_evals
        )
        best[active] = np.exp(result.x)
        evaluations, converged = result.evaluations, result.converged

    # the file gets rounded values, so the "after" numbers are those of the rounded values
    after = before.copy()
    for k in active:
        after[k] = parameters[k].rounded(best[k])
    predicted_after = evaluator.predict_us(after)
    improved = bool(active) and objective_of(predicted_after, fit_groups) < objective_of(
        predicted_before, fit_groups
    )
    if not improved:
        after, predicted_after = before.copy(), predicted_before.copy()
    fitted = tuple(
        FittedParameter(
            parameter=p,
            after_si=float(after[k]),
            after_text=p.text(after[k], SIGNIFICANT_DIGITS)
            if after[k] != before[k]
            else p.before_text,
            fitted=k in active,
        )
        for k, p in enumerate(parameters)
    )

    rows = pd.DataFrame(
        {
            "index": [table.lowered[i].index for i in compared],
            "family": [families[i] for i in compared],
            "split": np.where(holdout_mask, "holdout", "fit"),
            "measured_us": row_measured[compared],
            "predicted_before_us": predicted_before[compared],
            "predicted_after_us": predicted_after[compared],
        }
    )
    for when in ("before", "after"):
        rows[f"ape_{when}_pct"] = absolute_percentage_error(
            rows["measured_us"], rows[f"predicted_{when}_us"]
        )
    holdout_groups = _groups(holdout_rows, families)
    objective = {
        split: {
            "before": _finite(objective_of(predicted_before, groups)),
            "after": _finite(objective_of(predicted_after, groups)),
        }
        for split, groups in (("fit", fit_groups), ("holdout", holdout_groups))
    }
    text = calibrated_yaml(machine_file, fitted, _fit_note(measured, rows[rows["split"] == "fit"]))
    return Calibration(
        source=str(measured),
        machine_path=machine_file.path,
        device=f"{device.name} ({device.kind})",
        parameters=fitted,
        rows=rows,
        skipped=len(table.frame) - int(compared.size),
        objective=objective,
        evaluations=evaluations,
        converged=converged,
        improved=improved,
        wall_s=time.perf_counter() - started,
        calibrated_text=text,
    )


def _groups(rows: np.ndarray, families: Sequence[str]) -> list[np.ndarray]:
    names = sorted({families[i] for i in rows})
    return [np.array([i for i in rows if families[i] == name], dtype=int) for name in names]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- the calibrated file -------------------------------------------------------------------------

_COMMENT = re.compile(r"\s+#.*$")
_VALUE = (
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'"
    r"|[^\s\"'#,{}\[\]](?:[^#,{}\[\]\n]*?[^\s#,{}\[\]])?)"
    # a value ends at a flow separator, at a comment (' #') or at the end of the line
    r"(?=\s*(?:[,}\]]|$)|\s+#)"
)


def _fit_note(measured: Path, fit_rows: pd.DataFrame) -> str:
    median_before = summarize(fit_rows["ape_before_pct"])["median_ape"]
    median_after = summarize(fit_rows["ape_after_pct"])["median_ape"]
    return (
        f"fitted by archsim calibrate on {measured.name} ({len(fit_rows)} rows, "
        f"median APE {median_before:.1f}% -> {median_after:.1f}%)"
    )


def calibrated_yaml(
    machine_file: MachineFile, parameters: Sequence[FittedParameter], note: str
) -> str:
    """The machine file's text with each changed value replaced and its comment rewritten.

    Every other byte of the file is kept. The changed line's comment becomes
    ``# <note>; was <old value as written>``. The result is parsed again and compared with the intended
    mapping, so a value the line editor cannot place raises instead of writing a wrong file.

    Raises
    ------
    ArchsimError
        When a value is not written on its key's line in a form this editor understands.
    """
    text = Path(machine_file.path).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    expected = machine_file.raw
    for fitted in parameters:
        if not fitted.changed:
            continue
        parameter = fitted.parameter
        line_no = machine_file.lines.get(parameter.raw_path)
        if line_no is None:
            raise ArchsimError(f"{machine_file.path}: cannot find the line of '{parameter.path}'")
        lines[line_no - 1] = _edit_line(
            lines[line_no - 1],
            str(parameter.raw_path[-1]),
            fitted.after_text,
            note,
            machine_file.path,
            line_no,
        )
        new_value = parameter.raw_value(fitted.after_si, SIGNIFICANT_DIGITS)
        expected = set_path(expected, parameter.path, new_value)
    result = "".join(lines)
    written, _ = parse_yaml(result, machine_file.path)
    if written != expected:
        raise ArchsimError(
            f"{machine_file.path}: could not edit the fitted values in place (is a value not on "
            "its key's line?); the fitted values are in the report"
        )
    return result


def _edit_line(line: str, key: str, value: str, note: str, source: str, line_no: int) -> str:
    """Replace the value of ``key`` on ``line`` and make its comment ``# <note>; was <old>``."""
    ending = line[len(line.rstrip("\r\n")) :]
    body = line[: len(line) - len(ending)]
    match = re.search(rf"(?<![\w.-]){re.escape(key)}\s*:[ \t]+{_VALUE}", body)
    if match is None:
        raise ArchsimError(f"{source}:{line_no}: cannot find the value of '{key}' on this line")
    old = match.group("value")
    quote = old[0] if old[0] in "\"'" else ""
    value = f"{quote}{value}{quote}"
    comment = f"# {note}; was {old[1:-1] if quote else old}"
    head = body[: match.start("value")] + value
    rest = body[match.end("value") :]
    old_comment = _COMMENT.search(rest)
    code = head + (rest[: old_comment.start()] if old_comment else rest.rstrip())
    # keep the comment in its column when the code still fits before it
    column = len(body) - len(old_comment.group().lstrip()) if old_comment else 0
    padding = " " * max(2, column - len(code)) if old_comment else "  "
    return f"{code}{padding}{comment}{ending}"


def write_calibrated(calibration: Calibration, out_dir: Path) -> Path:
    """Write ``out_dir/<machine stem>.calibrated.yaml`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{Path(calibration.machine_path).stem}.calibrated.yaml"
    if path.resolve() == Path(calibration.machine_path).resolve():
        raise ArchsimError(f"{path}: refusing to overwrite the machine file being calibrated")
    path.write_text(calibration.calibrated_text, encoding="utf-8")
    return path


# --- reports -------------------------------------------------------------------------------------


def _family_table(rows: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int | None]]]:
    before = family_metrics(rows, ape="ape_before_pct").set_index("family")
    after = family_metrics(rows, ape="ape_after_pct").set_index("family")
    return {
        str(name): {
            "before": _plain_stats(before.loc[name].to_dict()),
            "after": _plain_stats(after.loc[name].to_dict()),
        }
        for name in before.index
    }


def _plain_stats(stats: dict[str, Any]) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}
    for key, value in stats.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            out[key] = None
        elif key == "n":
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def _overall(rows: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    return {
        "before": _plain_stats(summarize(rows["ape_before_pct"])),
        "after": _plain_stats(summarize(rows["ape_after_pct"])),
    }


def calibration_json(calibration: Calibration, output: Path | None) -> dict[str, object]:
    """The ``--format json`` body; every missing value is null, never NaN.

    ``{"params": {path: {"before", "after", "before_text", "after_text", "fitted"}},
    "objective": {"before", "after"}, "families": {name: {"before": stats, "after": stats}},
    "overall": {...}, "holdout": {"objective", "families", "overall"}, "output": path, ...}``;
    ``objective``, ``families`` and ``overall`` are over the fitted rows, ``holdout`` the same
    over the held-out rows; stats are ``n``, ``median_ape``, ``p90_ape`` (percent) and
    ``within_10pct`` (share). ``before``/``after`` of a parameter are SI values.
    """
    fit, holdout = calibration.split("fit"), calibration.split("holdout")
    return {
        "measured": calibration.source,
        "hw": calibration.machine_path,
        "device": calibration.device,
        "objective_definition": OBJECTIVE_TEXT,
        "rows": {
            "compared": len(calibration.rows),
            "fit": len(fit),
            "holdout": len(holdout),
            "holdout_rule": f"every {HOLDOUT_EVERY}th compared row in file order",
            "skipped": calibration.skipped,
        },
        "params": {
            f.parameter.path: {
                "before": f.parameter.before_si,
                "after": f.after_si,
                "before_text": f.parameter.before_text,
                "after_text": f.after_text,
                "fitted": f.fitted,
            }
            for f in calibration.parameters
        },
        "objective": calibration.objective["fit"],
        "families": _family_table(fit),
        "overall": _overall(fit),
        "holdout": {
            "objective": calibration.objective["holdout"],
            "families": _family_table(holdout),
            "overall": _overall(holdout),
        },
        "evaluations": calibration.evaluations,
        "converged": calibration.converged,
        "improved": calibration.improved,
        "wall_s": round(calibration.wall_s, 3),
        "output": None if output is None else str(output),
    }


def calibration_table(calibration: Calibration) -> str:
    """Plain-text summary: parameters before and after, objective, per-family errors."""
    fit, holdout = calibration.split("fit"), calibration.split("holdout")
    lines = [
        f"{Path(calibration.source).name} on {calibration.device}: {len(calibration.rows)} rows "
        f"compared ({len(fit)} fitted, {len(holdout)} held out: every {HOLDOUT_EVERY}th), "
        f"{calibration.skipped} skipped",
        f"objective: {OBJECTIVE_TEXT}",
        f"search: {calibration.evaluations} evaluations, "
        f"{'converged' if calibration.converged else 'stopped at --max-evals'}, "
        f"{calibration.wall_s:.1f} s",
        "",
    ]
    width = max(len("parameter"), *(len(f.parameter.path) for f in calibration.parameters))
    lines.append(f"{'parameter':<{width}} {'before':>10} {'after':>10}")
    for f in calibration.parameters:
        after = f.after_text if f.fitted else "(held: no compared row depends on it)"
        lines.append(f"{f.parameter.path:<{width}} {f.parameter.before_text:>10} {after:>10}")
    if not any(f.fitted for f in calibration.parameters):
        lines.append("no compared row depends on these parameters; nothing was fitted")
    elif not calibration.improved:
        lines.append("the fit did not improve on the file's values; they are kept")
    lines += ["", f"{'objective %':<20} {'before':>8} {'after':>8}"]
    for name, label in (("fit", "fitted rows"), ("holdout", "held-out rows")):
        o = calibration.objective[name]
        lines.append(f"{label:<20} {_num(o['before'], '.2f'):>8} {_num(o['after'], '.2f'):>8}")
    for label, rows in (("fitted rows", fit), ("held-out rows", holdout)):
        lines += [
            "",
            f"{label:<20} {'n':>5} {'median APE %':>15} {'p90 APE %':>15} {'within 10 %':>13}",
        ]
        table = _family_table(rows)
        table["overall"] = _overall(rows)
        for name, stats in table.items():
            b, a = stats["before"], stats["after"]
            lines.append(
                f"{name:<20} {b['n']:>5} "
                f"{_arrow(b['median_ape'], a['median_ape'], '.1f'):>15} "
                f"{_arrow(b['p90_ape'], a['p90_ape'], '.1f'):>15} "
                f"{_arrow(b['within_10pct'], a['within_10pct'], '.0%'):>13}"
            )
    return "\n".join(lines)


def _arrow(before: object, after: object, spec: str) -> str:
    return f"{_num(before, spec)} -> {_num(after, spec)}"


def _num(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)
