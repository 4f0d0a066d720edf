"""Malformed machine files give one clear error naming the file, the line, the field, what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import load_machine, machine_from_text
from archsim.errors import ConfigError

BASE = (Path(__file__).parents[1] / "data" / "machines" / "tiny_pim.yaml").read_text()

ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
)

# (case, file text, expected field path or None, fragments the message must contain, line or None)
CASES = [
    ("not yaml", BASE.replace("channels: 16", "channels: [16"), None, ["not valid YAML"], 13),
    ("unknown top-level key", BASE + "colour: red\n", "colour", ["unknown field", "devices"], 23),
    (
        "misspelt device key",
        BASE.replace("channels: 16", "channels: 16\n    chanels: 4"),
        "devices.0.chanels",
        ["unknown field", "banks_per_channel"],
        13,
    ),
    (
        "quantity without unit",
        BASE.replace('internal_bandwidth: "8 TB/s"', "internal_bandwidth: 8"),
        "devices.0.internal_bandwidth",
        ["no unit", "TB/s"],
        15,
    ),
    (
        "unit of the wrong dimension",
        BASE.replace('clock: "1 GHz"', 'clock: "1 GB"'),
        "devices.0.clock",
        ["not a frequency", "GHz"],
        8,
    ),
    (
        "negative size",
        BASE.replace('size: "16 GiB"', 'size: "-16 GiB"'),
        "devices.0.dram.size",
        ["positive"],
        17,
    ),
    (
        "zero count",
        BASE.replace("banks_per_channel: 16", "banks_per_channel: 0"),
        "devices.0.banks_per_channel",
        ["greater than 0"],
        13,
    ),
    (
        "unknown device kind",
        BASE.replace("kind: pim", "kind: tpu"),
        "devices.0.kind",
        ["'tpu'", "'gpu'", "'npu'", "'pim'", "'fpga'"],
        None,
    ),
    (
        "missing field",
        BASE.replace("    channels: 16\n", ""),
        "devices.0.channels",
        ["missing"],
        None,
    ),
    (
        "unknown dtype",
        BASE.replace('bf16: "0.5 pJ"', 'bf17: "0.5 pJ"'),
        "devices.0.mac_energy.bf17",
        ["bf16", "fp8"],
        10,
    ),
    (
        "future schema version",
        BASE.replace("schema_version: 1", "schema_version: 7"),
        "schema_version",
        ["1"],
        2,
    ),
    ("top level is a list", "- a\n- b\n", None, ["mapping"], None),
    ("empty file", "", None, ["empty"], None),
    (
        "text where a count goes",
        BASE.replace("channels: 16", "channels: sixteen"),
        "devices.0.channels",
        ["integer"],
        12,
    ),
    ("alias bomb", ALIAS_BOMB, None, ["aliases"], None),
    (
        "infinite area",
        BASE.replace('area: "20 mm2"', 'area: "inf mm2"'),
        "devices.0.area",
        ["number"],
        22,
    ),
    (
        "energy written as a time",
        BASE.replace('vector_op_energy: "0.2 pJ"', 'vector_op_energy: "0.2 ns"'),
        "devices.0.vector_op_energy",
        ["not an energy", "pJ"],
        11,
    ),
    (
        "two devices with one name",
        BASE + BASE[BASE.index("  - kind") :],
        None,
        ["unique", "pim"],
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "field", "fragments", "line"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_machine_file_names_file_field_and_line(case, text, field, fragments, line):
    with pytest.raises(ConfigError) as caught:
        machine_from_text(text, "bad.yaml")
    error = caught.value
    message = str(error)
    assert message.startswith("bad.yaml"), message
    assert "\n" not in message
    assert error.field == field, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if line is not None:
        assert error.line == line, message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_machine(tmp_path / "absent.yaml")


def test_valid_file_parses_units_into_si():
    machine = machine_from_text(BASE, "tiny.yaml").config
    pim = machine.devices[0]
    assert pim.clock_hz == 1e9
    assert pim.dram.size_bytes == 16 * 2**30
    assert pim.internal_bw_bytes_per_s == 8e12
    assert pim.dram.latency_s == pytest.approx(100e-9)
    assert pim.mac_energy_j[next(iter(pim.mac_energy_j))] == pytest.approx(0.5e-12)


def test_models_are_frozen():
    machine = machine_from_text(BASE, "tiny.yaml").config
    with pytest.raises(Exception, match="frozen"):
        machine.devices[0].channels = 3  # type: ignore[misc]
