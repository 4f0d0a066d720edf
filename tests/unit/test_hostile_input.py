"""Malformed and hostile input files: a clear one-line ``ConfigError`` (exit code 2 from the CLI),
never a traceback; a valid but absurd design becomes a result row with its reason."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsim.config import load_workload, machine_from_text, workload_from_text
from archsim.config.loader import MachineFile
from archsim.dse.evaluate import evaluate_points
from archsim.dse.space import expand_grid
from archsim.errors import ConfigError

DATA = Path(__file__).parents[1] / "data"
MACHINE = DATA / "machines" / "tiny_fpga.yaml"
NPU = DATA / "machines" / "npu_search.yaml"
WORKLOAD = DATA / "workloads" / "tiny_gemms.yaml"

UNITS = [
    "B",
    "KiB",
    "MiB",
    "GB",
    "TB/s",
    "GB/s",
    "MHz",
    "GHz",
    "ns",
    "us",
    "pJ",
    "W",
    "mm2",
    "XB",
    "",
]

junk_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.0, 1e308, 1e-308, 2**63, 2**53 + 1]),
)
junk_quantities = st.builds(
    lambda number, unit, space: f"{number}{space}{unit}",
    st.one_of(junk_numbers, st.text(max_size=4)),
    st.sampled_from(UNITS),
    st.sampled_from(["", " ", "  "]),
)
junk = st.one_of(
    junk_numbers,
    junk_quantities,
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value of a parsed YAML document."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw, source: Path) -> str:
    """The YAML of ``source`` with one to three hostile edits."""
    doc = yaml.safe_load(source.read_text())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        action = draw(st.sampled_from(["replace", "delete", "unknown_key", "replace"]))
        if action == "replace":
            parent[path[-1]] = draw(junk)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
    return yaml.safe_dump(doc, allow_unicode=True)


def _check_one_line(exc: ConfigError, source: str) -> None:
    message = str(exc)
    assert message.startswith(source) and "\n" not in message and "Traceback" not in message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(MACHINE))
def test_mutated_machine_files_fail_cleanly_or_run(text):
    try:
        machine = machine_from_text(text, "hostile.yaml")
    except ConfigError as exc:
        _check_one_line(exc, "hostile.yaml")
        return
    _every_point_gives_a_row(machine)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(WORKLOAD))
def test_mutated_workload_files_fail_cleanly(text):
    try:
        workload_from_text(text, "hostile.yaml")
    except ConfigError as exc:
        _check_one_line(exc, "hostile.yaml")


def _every_point_gives_a_row(machine: MachineFile) -> None:
    try:
        points = expand_grid(machine, load_workload(WORKLOAD))
    except ConfigError as exc:  # a swept value the schema refuses, or a sweep path now missing
        _check_one_line(exc, "hostile.yaml")
        return
    rows = evaluate_points(points[:2], None)
    for row in rows:
        if row["feasible"]:
            assert 0 < row["latency_s"] < math.inf and 0 < row["energy_j"] < math.inf
        else:
            assert row["reason"]


ALIAS_BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
schema_version: 1
"""


def _hostile_files() -> dict[str, str]:
    text = MACHINE.read_text()
    return {
        "alias_bomb": ALIAS_BOMB,
        "wrong_type": text.replace("dsp_count: 4096", "dsp_count: many"),
        "unknown_key": text.replace("dsp_count: 4096", "dsp_count: 4096\n    dsp_cout: 2"),
        "unit_does_not_parse": text.replace('"460 GB/s"', '"460 GB per s"'),
        "zero_size": text.replace('size: "8 GiB"', 'size: "0 GiB"'),
        "negative_count": text.replace("dsp_count: 4096", "dsp_count: -4096"),
        "absurd_magnitude": text.replace('"460 GB/s"', '"1e300 TB/s"'),
        "absurd_count": text.replace("dsp_count: 4096", "dsp_count: 1e300"),
        "bad_search": text + "search: {strategy: random}\n",
        "not_a_mapping": "- just\n- a list\n",
        "binary": "\x00\x01\x02",
    }


@pytest.mark.parametrize("name", sorted(_hostile_files()))
def test_hostile_files_name_the_problem(name, tmp_path):
    with pytest.raises(ConfigError) as caught:
        machine_from_text(_hostile_files()[name], "hostile.yaml")
    _check_one_line(caught.value, "hostile.yaml")


def test_cli_answers_hostile_files_with_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from archsim.cli import cli

    runner = CliRunner()
    for name, text in _hostile_files().items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        done = runner.invoke(cli, ["sweep", str(path), str(WORKLOAD), "-o", str(tmp_path / "o")])
        assert done.exit_code == 2, (name, done.output)
        lines = done.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("archsim: error:"), (name, done.output)
        assert done.exception is None or isinstance(done.exception, SystemExit), name


def test_a_design_that_cannot_fit_is_a_row_with_the_reason():
    text = NPU.read_text().replace('size: "32 GiB"', 'size: "1 MiB"')
    text = text[: text.index("sweep:")]
    machine = machine_from_text(text, "small.yaml")
    rows = evaluate_points(expand_grid(machine, load_workload(WORKLOAD)), None)
    assert rows and all(not r["feasible"] for r in rows)
    assert all("memory" in r["reason"] and "GiB" in r["reason"] for r in rows)


def test_source_document_is_not_modified_by_mutation():
    doc = yaml.safe_load(MACHINE.read_text())
    before = copy.deepcopy(doc)
    _paths(doc)
    assert doc == before
