"""archsim.validate.calibrate: fitting hwconfig parameters to measured times, and the CLI.

The measured rows are synthetic: predicted by a machine whose ``efficiency.tensor`` is 0.6 and
``efficiency.hbm`` 0.7, so the fit has a known answer. The fit starts from a file that says 0.9
for both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from archsim.cli import cli
from archsim.config import load_machine, machine_from_text
from archsim.errors import ArchsimError
from archsim.hw.machine import Machine
from archsim.validate.calibrate import (
    HOLDOUT_EVERY,
    FittedParameter,
    calibrate,
    calibrated_yaml,
    calibration_json,
    default_parameter_paths,
    nelder_mead,
    resolve_parameter,
)
from archsim.validate.predict import predict_row
from archsim.validate.readers import read_measured_csv

TRUE_TENSOR, TRUE_HBM = 0.6, 0.7
START = 0.9

MACHINE = """\
# A small GPU for calibration tests (numbers are test values, not a product).
schema_version: 1
name: testgpu
devices:
  - kind: gpu
    name: g
    clock: "1.5 GHz"                 # test value
    static_power: "50 W"
    sm_count: 32
    tensor_throughput:
      bf16: "200 TFLOP/s"            # test value
    vector_throughput: "20 TFLOP/s"
    mac_energy:
      bf16: "0.3 pJ"
    vector_op_energy: "0.9 pJ"
    hbm: {size: "16 GB", bandwidth: "1 TB/s", latency: "0.5 us",
          read_energy_per_byte: "31 pJ", write_energy_per_byte: "31 pJ"}
    l2: {size: "32 MiB", bandwidth: "4 TB/s", latency: "0.2 us",
         read_energy_per_byte: "5 pJ", write_energy_per_byte: "5 pJ"}
    shared_memory_per_sm: "227 KiB"
    kernel_launch: "4 us"            # test value
    tile_shapes:
      - {m: 128, n: 128}
      - {m: 64, n: 128, efficiency: 0.9}  # test value
    efficiency:
      tensor: TENSOR                 # start of the fit
      hbm: HBM                       # start of the fit
      l2: 0.8                        # held
      vector: 0.6
    die_area: "300 mm2"
    tdp: "300 W"
"""

# Compute-bound squares and wide GEMMs pin efficiency.tensor; skinny GEMMs over large weights
# (many thread blocks, so every SM streams) pin efficiency.hbm.
SHAPES = [
    *[(s, s, s) for s in (1024, 2048, 3072, 4096, 6144, 8192)],
    *[(m, 8192, 4096) for m in (256, 512, 1024, 2048, 4096)],
    *[(m, n, 8192) for m in (1, 2, 4, 8, 16, 32) for n in (8192, 16384)],
    (1, 28672, 4096),
    (8, 28672, 4096),
]


def _machine_text(tensor: float, hbm: float) -> str:
    return MACHINE.replace("TENSOR", str(tensor)).replace("HBM", str(hbm))


def _write_measured(path: Path) -> Path:
    """Rows in the measured-CSV schema, timed by the truth machine through the validate path."""
    frame = pd.DataFrame.from_records(
        [
            {"op": "gemm_xWt", "impl": "torch.matmul", "dtype": "bf16", "M": m, "N": n, "K": k}
            | {"status": "ok", "median_us": 1.0}
            for m, n, k in SHAPES
        ]
    )
    frame.to_csv(path, index=False)
    truth = machine_from_text(_machine_text(TRUE_TENSOR, TRUE_HBM)).config
    device = Machine.from_config(truth).devices["g"]
    for row in read_measured_csv(path).lowered:
        frame.loc[row.index, "median_us"] = predict_row(row, device).latency_s * 1e6
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """(measured CSV, machine file starting at 0.9/0.9)."""
    root = tmp_path_factory.mktemp("calibrate")
    machine = root / "testgpu.yaml"
    machine.write_text(_machine_text(START, START), encoding="utf-8")
    return _write_measured(root / "measured.csv"), machine


@pytest.fixture(scope="module")
def fit(files):
    measured, machine = files
    return calibrate(
        measured,
        load_machine(machine),
        param_paths=["devices.g.efficiency.tensor", "devices.g.efficiency.hbm"],
        max_evals=150,
    )


def _param(result, path: str) -> FittedParameter:
    return next(f for f in result.parameters if f.parameter.path == path)


# --- the fit -------------------------------------------------------------------------------------


def test_fit_recovers_the_efficiencies_that_produced_the_measurements(fit):
    tensor = _param(fit, "devices.g.efficiency.tensor")
    hbm = _param(fit, "devices.g.efficiency.hbm")
    assert tensor.parameter.before_si == START and hbm.parameter.before_si == START
    assert tensor.after_si == pytest.approx(TRUE_TENSOR, rel=0.01)
    assert hbm.after_si == pytest.approx(TRUE_HBM, rel=0.01)


def test_fit_drops_the_error_below_one_percent_on_fitted_and_held_out_rows(fit):
    for split in ("fit", "holdout"):
        rows = fit.split(split)
        assert rows["ape_before_pct"].median() > 10.0  # 0.9 vs 0.6/0.7 is far off
        assert rows["ape_after_pct"].median() < 1.0
        assert fit.objective[split]["after"] < 1.0 < fit.objective[split]["before"]
    assert fit.improved


def test_every_fifth_compared_row_is_held_out(fit):
    assert len(fit.rows) == len(SHAPES)
    held = fit.rows["split"].to_numpy() == "holdout"
    expected = np.arange(len(SHAPES)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    np.testing.assert_array_equal(held, expected)


def test_fit_is_deterministic(files, fit):
    measured, machine = files
    again = calibrate(
        measured,
        load_machine(machine),
        param_paths=["devices.g.efficiency.tensor", "devices.g.efficiency.hbm"],
        max_evals=150,
    )
    assert [f.after_text for f in again.parameters] == [f.after_text for f in fit.parameters]
    assert again.evaluations == fit.evaluations


def test_parameters_no_row_depends_on_are_held(files):
    measured, machine = files
    result = calibrate(
        measured,
        load_machine(machine),
        param_paths=["devices.g.efficiency.tensor", "devices.g.efficiency.vector"],
        max_evals=40,
    )
    vector = _param(result, "devices.g.efficiency.vector")
    assert not vector.fitted
    assert vector.after_text == vector.parameter.before_text == "0.6"
    assert _param(result, "devices.g.efficiency.tensor").fitted


# --- the calibrated file -------------------------------------------------------------------------


def test_calibrated_yaml_differs_only_on_the_fitted_lines(files, fit, tmp_path):
    _, machine = files
    original = machine.read_text(encoding="utf-8").splitlines(keepends=True)
    written = fit.calibrated_text.splitlines(keepends=True)
    assert len(written) == len(original)
    changed = [i for i, (a, b) in enumerate(zip(original, written, strict=True)) if a != b]
    assert [original[i].split(":")[0].strip() for i in changed] == ["tensor", "hbm"]
    for i in changed:
        assert "# fitted by archsim calibrate on measured.csv (" in written[i]
        assert "was 0.9" in written[i]
    path = tmp_path / "testgpu.calibrated.yaml"
    path.write_text(fit.calibrated_text, encoding="utf-8")
    efficiency = load_machine(path).config.devices[0].efficiency
    assert efficiency.tensor == _param(fit, "devices.g.efficiency.tensor").after_si
    assert efficiency.hbm == _param(fit, "devices.g.efficiency.hbm").after_si


def test_quantities_and_flow_values_are_rewritten_in_place(files):
    _, machine = files
    machine_file = load_machine(machine)
    launch = resolve_parameter(machine_file, "devices.g.kernel_launch")
    tile = resolve_parameter(machine_file, "devices.g.tile_shapes.1.efficiency")
    assert (launch.unit, launch.before_si) == ("us", pytest.approx(4e-6))
    text = calibrated_yaml(
        machine_file,
        [
            FittedParameter(launch, 5.25e-6, launch.text(5.25e-6, 3), True),
            FittedParameter(tile, 0.85, tile.text(0.85, 3), True),
        ],
        "fitted here",
    )
    lines = text.splitlines()
    # quotes, flow braces and the comment column are kept
    assert '    kernel_launch: "5.25 us"         # fitted here; was 4 us' in lines
    assert "      - {m: 64, n: 128, efficiency: 0.85}  # fitted here; was 0.9" in lines
    assert machine_from_text(text).config.devices[0].kernel_launch_s == pytest.approx(5.25e-6)


# --- parameters ----------------------------------------------------------------------------------


def test_default_parameters_are_the_efficiency_numbers_and_kernel_launch(files):
    _, machine = files
    assert default_parameter_paths(load_machine(machine), None) == [
        "devices.g.efficiency.tensor",
        "devices.g.efficiency.hbm",
        "devices.g.efficiency.l2",
        "devices.g.efficiency.vector",
        "devices.g.kernel_launch",
    ]


def test_fraction_fields_are_bounded_by_one(files):
    _, machine = files
    tensor = resolve_parameter(load_machine(machine), "devices.0.efficiency.tensor")
    assert tensor.upper == 1.0 and tensor.lower > 0


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("devices.g.efficiency.tensr", "no field 'tensr'"),
        ("devices.gpu0.efficiency.tensor", "'gpu0' is neither an index"),
        ("devices.g.sm_count", "only real-valued fields"),
        ("devices.g.efficiency", "group of fields"),
        ("devices.g.name", "only real-valued fields"),
    ],
)
def test_bad_parameter_paths_are_refused_by_name(files, path, why):
    measured, machine = files
    with pytest.raises(ArchsimError, match=f"'{path}'.*{why}"):
        calibrate(measured, load_machine(machine), param_paths=[path], max_evals=5)


# --- the search ----------------------------------------------------------------------------------


def test_nelder_mead_finds_a_minimum_and_stays_inside_bounds():
    def bowl(x: np.ndarray) -> float:
        return float((x[0] - 0.3) ** 2 + (x[1] - 2.0) ** 2)

    lower, upper = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    result = nelder_mead(bowl, np.array([-0.5, 0.0]), lower, upper, max_evals=300)
    # the unconstrained minimum (0.3, 2.0) lies outside: the best point sits on the bound
    assert result.x[0] == pytest.approx(0.3, abs=1e-3)
    assert result.x[1] == 1.0
    assert result.converged and result.evaluations <= 300


# --- the command ---------------------------------------------------------------------------------


def _reject_nan(token: str) -> float:
    raise AssertionError(f"JSON carries {token}")


def test_cli_calibrate_json(files, tmp_path):
    measured, machine = files
    out = tmp_path / "out"
    args = ["--hw", str(machine), "-o", str(out), "--format", "json", "--max-evals", "60"]
    result = CliRunner().invoke(cli, ["calibrate", str(measured), *args])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout, parse_constant=_reject_nan)
    assert set(body["params"]) == set(default_parameter_paths(load_machine(machine), None))
    launch = body["params"]["devices.g.kernel_launch"]
    assert launch["before"] == pytest.approx(4e-6) and launch["before_text"] == "4 us"
    assert launch["after_text"].endswith(" us")
    assert body["params"]["devices.g.efficiency.vector"]["fitted"] is False
    assert body["objective"]["after"] < body["objective"]["before"]
    assert body["holdout"]["objective"]["after"] < body["holdout"]["objective"]["before"]
    assert set(body["families"]) == {"gemm", "gemm_skinny"}
    assert body["families"]["gemm"]["after"]["n"] + body["holdout"]["families"]["gemm"]["after"][
        "n"
    ] == sum(1 for m, _, _ in SHAPES if m >= 64)
    assert body["rows"]["holdout"] == len(SHAPES) // HOLDOUT_EVERY
    assert body["evaluations"] <= 60
    output = Path(body["output"])
    assert output == out / "testgpu.calibrated.yaml"
    assert load_machine(output).config.devices[0].efficiency.tensor < START


def test_cli_calibrate_bad_param_exits_2_naming_it(files, tmp_path):
    measured, machine = files
    params = "devices.g.efficiency.tensor,devices.g.efficiency.bogus"
    args = ["--hw", str(machine), "-o", str(tmp_path), "--params", params]
    result = CliRunner().invoke(cli, ["calibrate", str(measured), *args])
    assert result.exit_code == 2
    assert "devices.g.efficiency.bogus" in result.stderr
    assert not (tmp_path / "testgpu.calibrated.yaml").exists()


def test_calibration_json_has_no_nan_when_a_split_is_empty(files, tmp_path):
    measured, machine = files
    few = tmp_path / "few.csv"
    pd.read_csv(measured).head(3).to_csv(few, index=False)  # under 5 rows: nothing held out
    result = calibrate(
        few, load_machine(machine), param_paths=["devices.g.efficiency.tensor"], max_evals=10
    )
    body = calibration_json(result, None)
    assert body["holdout"]["objective"] == {"before": None, "after": None}
    assert body["holdout"]["overall"]["after"]["median_ape"] is None
    text = json.dumps(body, allow_nan=False)
    assert not math.isnan(json.loads(text)["objective"]["before"])
