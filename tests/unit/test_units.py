import pytest

from archsim import units
from archsim.errors import UnitError


@pytest.mark.parametrize(
    ("text", "parse", "expected"),
    [
        ("50 MiB", units.parse_bytes, 50 * 2**20),
        ("80 GB", units.parse_bytes, 80e9),
        ("512 Kib", units.parse_bytes, 512 * 1024 / 8),
        ("3.35 TB/s", units.parse_bandwidth, 3.35e12),
        ("64 GiB/s", units.parse_bandwidth, 64 * 2**30),
        ("1.98 GHz", units.parse_frequency, 1.98e9),
        ("940MHz", units.parse_frequency, 940e6),
        ("4.5 us", units.parse_time, 4.5e-6),
        ("30 ns", units.parse_time, 30e-9),
        ("0.4 pJ", units.parse_energy, 0.4e-12),
        ("700 W", units.parse_power, 700.0),
        ("814 mm2", units.parse_area, 814.0),
        ("120 um^2", units.parse_area, 120e-6),
        ("989 TFLOP/s", units.parse_flops, 989e12),
        ("2 POPS", units.parse_flops, 2e15),
        ("1e3 MHz", units.parse_frequency, 1e9),
    ],
)
def test_parse_quantities(text, parse, expected):
    assert parse(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        ("fast", units.parse_frequency),
        ("3 GB", units.parse_frequency),
        ("3 TB", units.parse_bandwidth),
        ("3 XB/s", units.parse_bandwidth),
        ("10 m2", units.parse_area),
        ("1 GHz", units.parse_time),
    ],
)
def test_wrong_units_are_refused(text, parse):
    with pytest.raises(UnitError):
        parse(text)
