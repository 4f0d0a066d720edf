"""Quantities with units, parsed once at the edge into SI floats.

YAML files say ``"3.35 TB/s"``, ``"1.98 GHz"``, ``"50 MiB"``; these helpers turn such strings
into plain floats in SI base units (bytes, bytes/s, Hz, s, J, mm^2, FLOP/s). Decimal prefixes
(k, M, G, T, P) are powers of 1000 and binary prefixes (Ki, Mi, Gi, Ti) powers of 1024, as in the
datasheets. A bare number is accepted only where the dimension is dimensionless.
"""

from __future__ import annotations

import re

from archsim.errors import UnitError

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_SMALL = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}

_NUMBER = r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(r"^\s*" + _NUMBER + r"\s*(?P<unit>\S*(?:\s*/\s*\S+)?)\s*$")


def _split(text: str) -> tuple[float, str]:
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"'{text}' is not a number followed by a unit")
    return float(match.group("num")), match.group("unit").replace(" ", "")


def _scaled(
    text: str, base_units: dict[str, float], prefixes: dict[str, float], what: str, example: str
) -> float:
    value, unit = _split(text)
    for base, base_scale in base_units.items():
        if unit.endswith(base):
            prefix = unit[: len(unit) - len(base)]
            if prefix in prefixes:
                return value * prefixes[prefix] * base_scale
    units = ", ".join(sorted({p + b for b in base_units for p in prefixes if p in _COMMON}))
    raise UnitError(f"'{text}' is not {what}; write e.g. '{example}' (units: {units})")


_COMMON = {"", "k", "M", "G", "T", "Ki", "Mi", "Gi", "m", "u", "n", "p"}


def parse_bytes(text: str) -> float:
    """``"50 MiB"`` -> 52428800.0; ``"80 GB"`` -> 8e10; also ``b`` for bits."""
    prefixes = {**_DECIMAL, **_BINARY}
    try:
        return _scaled(text, {"B": 1.0}, prefixes, "a size", "50 MiB")
    except UnitError:
        return _scaled(text, {"b": 0.125}, prefixes, "a size in bytes (B) or bits (b)", "50 MiB")


def parse_bandwidth(text: str) -> float:
    """``"3.35 TB/s"`` -> 3.35e12 bytes/s; ``"900 GB/s"``; ``"64 Gb/s"`` (bits)."""
    value, unit = _split(text)
    if "/" not in unit or unit.split("/")[1] != "s":
        raise UnitError(f"'{text}' is not a bandwidth; write e.g. '3.35 TB/s' or '64 GiB/s'")
    return value * parse_bytes("1 " + unit.split("/")[0])


def parse_frequency(text: str) -> float:
    """``"1.98 GHz"`` -> 1.98e9 Hz."""
    return _scaled(text, {"Hz": 1.0}, _DECIMAL, "a frequency", "1.98 GHz")


def parse_time(text: str) -> float:
    """``"4.5 us"`` -> 4.5e-6 s; ``"30 ns"``; ``"1 ms"``."""
    return _scaled(text, {"s": 1.0}, _SMALL, "a time", "4 us")


def parse_energy(text: str) -> float:
    """``"0.9 pJ"`` -> 9e-13 J."""
    return _scaled(text, {"J": 1.0}, {**_SMALL, **_DECIMAL}, "an energy", "0.4 pJ")


def parse_power(text: str) -> float:
    """``"700 W"`` -> 700.0 W."""
    return _scaled(text, {"W": 1.0}, {**_SMALL, **_DECIMAL}, "a power", "700 W")


def parse_area(text: str) -> float:
    """``"814 mm2"`` -> 814.0 mm^2; ``"0.05 mm^2"``; ``"1 cm2"``."""
    value, unit = _split(text)
    scale = {"mm2": 1.0, "mm^2": 1.0, "um2": 1e-6, "um^2": 1e-6, "cm2": 100.0, "cm^2": 100.0}
    if unit not in scale:
        raise UnitError(f"'{text}' is not an area; write e.g. '814 mm2' or '0.5 mm^2'")
    return value * scale[unit]


def parse_flops(text: str) -> float:
    """``"989 TFLOP/s"`` or ``"989 TFLOPS"`` -> 9.89e14 operations per second."""
    value, unit = _split(text)
    for suffix in ("FLOP/s", "FLOPS", "OP/s", "OPS"):
        if unit.endswith(suffix):
            prefix = unit[: len(unit) - len(suffix)]
            if prefix in _DECIMAL:
                return value * _DECIMAL[prefix]
    raise UnitError(f"'{text}' is not a throughput; write e.g. '989 TFLOP/s' or '2 POPS'")
