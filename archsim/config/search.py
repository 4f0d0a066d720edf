"""The ``search:`` block of a machine file: how to explore the design space of the ``sweep:`` blocks.

Without a ``search:`` block (or with ``strategy: grid``) every combination of the swept values
runs, as before. ``random`` samples ``budget`` distinct combinations; ``nsga2`` evolves a
population towards the Pareto front of the chosen objectives. Constraints (``area <= 600 mm2``)
are written with units and parsed here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from archsim import units
from archsim.config.quantities import Fraction, PositiveInt, StrictModel
from archsim.errors import UnitError

# Objective name -> (result column, direction). ``throughput_per_watt`` is tokens/s/W for
# transformer workloads (work items per second per watt in general).
OBJECTIVES: dict[str, tuple[str, Literal["min", "max"]]] = {
    "latency": ("latency_s", "min"),
    "energy": ("energy_j", "min"),
    "area": ("area_mm2", "min"),
    "edp": ("edp_j_s", "min"),
    "power": ("power_w", "min"),
    "throughput": ("throughput_per_s", "max"),
    "throughput_per_watt": ("throughput_per_s_per_w", "max"),
}

# Constraint metric -> (result column, parser of its limit, an example limit)
CONSTRAINT_METRICS: dict[str, tuple[str, Callable[[str], float], str]] = {
    "latency": ("latency_s", units.parse_time, "30 ms"),
    "energy": ("energy_j", units.parse_energy, "50 mJ"),
    "area": ("area_mm2", units.parse_area, "600 mm2"),
    "power": ("power_w", units.parse_power, "300 W"),
}

ObjectiveName = Literal[
    "latency", "energy", "area", "edp", "power", "throughput", "throughput_per_watt"
]
ConstraintMetric = Literal["latency", "energy", "area", "power"]


class ConstraintConfig(StrictModel):
    """An upper (or lower) limit on one result metric; designs outside it are not Pareto-optimal."""

    metric: ConstraintMetric = Field(
        description="The limited metric: latency, energy, area, power."
    )
    max: float | None = Field(
        default=None, description="Upper limit with its unit, e.g. '600 mm2' for area."
    )
    min: float | None = Field(
        default=None, description="Lower limit with its unit, e.g. '5 ms' for latency."
    )

    @field_validator("max", "min", mode="before")
    @classmethod
    def _parse_limit(cls, value: object, info) -> float | None:
        if value is None:
            return None
        metric = info.data.get("metric")
        if metric not in CONSTRAINT_METRICS:
            raise ValueError("needs a valid 'metric' first")
        _, parse, example = CONSTRAINT_METRICS[metric]
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(f"write the {metric} limit with its unit, e.g. '{example}'")
        try:
            parsed = parse(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if not 0 <= parsed < float("inf"):
            raise ValueError(f"'{value}' must be non-negative and finite")
        return parsed

    @model_validator(mode="after")
    def _has_a_limit(self) -> ConstraintConfig:
        if self.max is None and self.min is None:
            raise ValueError("a constraint needs 'max' or 'min'")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError("'min' is above 'max'")
        return self

    @property
    def column(self) -> str:
        """The result column the constraint applies to."""
        return CONSTRAINT_METRICS[self.metric][0]


class SearchConfig(StrictModel):
    """How the design space of the ``sweep:`` blocks is explored."""

    strategy: Literal["grid", "random", "nsga2"] = Field(
        default="grid",
        description="grid: every combination; random: 'budget' distinct samples; nsga2: "
        "multi-objective evolutionary search (NSGA-II) spending 'budget' evaluations.",
    )
    budget: PositiveInt | None = Field(
        default=None,
        description="Design points to evaluate (random, nsga2; required there). Capped at the "
        "size of the space.",
    )
    seed: Annotated[int, Field(ge=0, lt=2**63)] = Field(
        default=0, description="Seed of the sampler; the same seed gives the same points."
    )
    objectives: list[ObjectiveName] = Field(
        default_factory=lambda: ["latency", "energy", "area"],
        min_length=1,
        description="Objectives of the Pareto front (and of nsga2's selection).",
    )
    constraints: list[ConstraintConfig] = Field(
        default_factory=list, description="Limits a design must meet to count as Pareto-optimal."
    )
    population: Annotated[int, Field(ge=4, le=100_000)] = Field(
        default=24, description="nsga2: designs kept from one generation to the next."
    )
    mutation: Fraction = Field(
        default=0.2, description="nsga2: probability that a child's swept value is redrawn."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.strategy != "grid" and self.budget is None:
            raise ValueError(f"strategy '{self.strategy}' needs a 'budget' (design points)")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives are repeated: {self.objectives}")
        return self

    def objective_columns(self) -> tuple[list[str], list[str]]:
        """Result columns of the objectives, and those of them that are maximised."""
        columns = [OBJECTIVES[name][0] for name in self.objectives]
        maximize = [OBJECTIVES[name][0] for name in self.objectives if OBJECTIVES[name][1] == "max"]
        return columns, maximize
