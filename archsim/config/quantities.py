"""Pydantic field types for quantities written with units in YAML.

``Bytes``, ``BytesPerSecond``, ``Hertz`` ... accept a string such as ``"50 MiB"`` and store a float
in SI base units. A bare number is refused: a value without a unit is the commonest silent error in
machine files (is ``bandwidth: 900`` GB/s or GiB/s?).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel as _BaseModel
from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer

from archsim import units
from archsim.errors import UnitError

# Past these magnitudes a value is a typo (or hostile), not a design: products of a few such
# values would overflow float64 deep inside a model instead of failing here with the field named.
MAX_QUANTITY = 1e30
MAX_COUNT = 2**53  # the largest integer a float64 holds exactly


def _quantity(parse: Callable[[str], float], example: str) -> BeforeValidator:
    def validate(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a quantity such as '{example}', got {value!r}")
        if not isinstance(value, str):
            raise ValueError(f"{value!r} has no unit; write it with one, e.g. '{example}'")
        try:
            parsed = parse(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        if not parsed > 0 or parsed == float("inf"):
            raise ValueError(f"'{value}' must be positive and finite")
        if parsed > MAX_QUANTITY:
            raise ValueError(
                f"'{value}' is beyond any real hardware (at most {MAX_QUANTITY:g} in SI units)"
            )
        return parsed

    return BeforeValidator(validate)


def _non_negative_quantity(parse: Callable[[str], float], example: str) -> BeforeValidator:
    positive = _quantity(parse, example).func

    def validate(value: object) -> float:
        if isinstance(value, str) and value.strip().startswith("0") and parse(value) == 0.0:
            return 0.0
        return positive(value)

    return BeforeValidator(validate)


_AS_FLOAT = PlainSerializer(float, return_type=float)

Bytes = Annotated[float, _quantity(units.parse_bytes, "50 MiB"), _AS_FLOAT]
BytesPerSecond = Annotated[float, _quantity(units.parse_bandwidth, "3.35 TB/s"), _AS_FLOAT]
Hertz = Annotated[float, _quantity(units.parse_frequency, "1.98 GHz"), _AS_FLOAT]
Seconds = Annotated[float, _non_negative_quantity(units.parse_time, "4 us"), _AS_FLOAT]
Joules = Annotated[float, _non_negative_quantity(units.parse_energy, "0.4 pJ"), _AS_FLOAT]
Watts = Annotated[float, _non_negative_quantity(units.parse_power, "700 W"), _AS_FLOAT]
SquareMM = Annotated[float, _non_negative_quantity(units.parse_area, "814 mm2"), _AS_FLOAT]
FlopsPerSecond = Annotated[float, _quantity(units.parse_flops, "989 TFLOP/s"), _AS_FLOAT]

PositiveInt = Annotated[int, Field(gt=0, le=MAX_COUNT)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


class StrictModel(_BaseModel):
    """Frozen, closed model: unknown keys are errors, fields are set once."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=False)
