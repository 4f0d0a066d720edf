"""One validation report over every measured file of a directory: ``reports/validation/<hw>.md``.

Run ``python -m archsim.validate.build_report --hw hwconfigs/h100.yaml --data tests/data/h100 -o
reports/validation --also hwconfigs/h100.yaml tests/data/h100_holdout --also hwconfigs/h200.yaml
tests/data/h200``; each ``--also`` pair adds a family table (hold-out shapes, another GPU).
Every CSV (and profiler trace) in ``--data`` is validated with the same
device; trace rows are reported as ``trace_<family>`` so that per-kernel errors stay apart from
the CSV families. Eager multi-kernel rows take the machine file's ``host_launch``; the report
names it and, where the measured set keeps a ``facts.csv``, its host's bare launch time
(:func:`archsim.validate.report.host_launch_for` says why that one is not applied).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from archsim.config import load_machine
from archsim.hw.machine import Machine
from archsim.report.document import Code, Document, Heading, Image, Paragraph, Table, to_markdown
from archsim.validate.metrics import family_metrics, worst_rows
from archsim.validate.plot import scatter_plot
from archsim.validate.predict import select_device
from archsim.validate.readers import FACTS_FILE
from archsim.validate.report import _described, host_launch_for, is_trace_file, validate

# What the model misses, per family, for the worst-rows table (README sections of the data).
MISSES = {
    "sparse24": "cuSPARSELt's default algorithm (one fixed tile) speeds up from M=16 to M=256 "
    "and slows again at M=512, a per-shape kernel behaviour one tile does not follow",
    "moe_grouped": "host-bound rows (64 experts, T <= 32) vary up to 35 % run to run (README "
    "section 6); the op list of the routing and bookkeeping steps is approximated",
    "moe_naive": "host-bound; run-to-run variation 10-30 % (README section 6)",
    "attention_decode": "split count and combine cost of the backend's split-KV heuristic are "
    "approximated",
    "attention_prefill": "efficient attention uses 64-wide tiles, modelled with the 128 tile",
    "layer_eager": "torch dispatch costs more host time per op than a bare launch",
    "bmm": "small batched GEMVs are latency-bound below one wave",
    "trace_elementwise": "non-vectorized (strided) ATen elementwise kernels issue one 2-byte load "
    "per element and run below the bandwidth share",
}


# Files of a measured directory that hold no kernel timings (device properties).
_NOT_MEASURED = frozenset({"device_facts.json"})


def _validate_dir(hw: Path, data: Path) -> tuple[str, pd.DataFrame, pd.DataFrame, str]:
    """Validate every measured file under ``data`` on ``hw``.

    Returns the device name, the compared rows, their descriptions and a sentence saying which
    host launch time the eager rows were predicted with.
    """
    machine = load_machine(hw)
    device = select_device(Machine.from_config(machine.config), None)
    host_s, host_source = host_launch_for(data / FACTS_FILE, device)
    host_note = (
        f"Host launch time for eager multi-kernel rows: {host_s * 1e6:.2f} µs (from "
        f"{host_source.replace('config', f'{hw} host_launch', 1)})."
    )
    frames = []
    for path in sorted(data.iterdir()):
        if path.name in _NOT_MEASURED or not (path.suffix == ".csv" or is_trace_file(path)):
            continue
        result = validate(path, device)
        rows = result.compared.copy()
        described = _described(rows, result.kind)
        described["source"] = path.name
        if result.kind == "trace":
            described["family"] = "trace_" + described["family"].astype(str)
        rows["family"] = described["family"]
        rows["measured_us"] = described["measured µs"]
        frames.append((rows, described))
    compared = pd.concat(
        [f[0][["family", "measured_us", "predicted_us", "ape_pct"]] for f in frames]
    )
    described = pd.concat([f[1] for f in frames])
    return machine.config.name, compared, described, host_note


def _family_table(compared: pd.DataFrame) -> Table:
    table = family_metrics(compared).rename(
        columns={
            "median_ape": "median APE %",
            "p90_ape": "p90 APE %",
            "within_10pct": "within 10 %",
        }
    )
    return Table(table.round(3))


def build(
    hw: Path,
    data: Path,
    out_dir: Path,
    command: str,
    also: tuple[tuple[Path, Path], ...] = (),
) -> Path:
    """Validate every measured file under ``data`` on ``hw``; write ``<hw name>.md`` and a PNG.

    Each ``(hw, data)`` pair of ``also`` (a hold-out set, another GPU) adds its own family table.
    """
    name, compared, described, host_note = _validate_dir(hw, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = scatter_plot(compared, out_dir / f"{name}_scatter.png", f"{name}: predicted vs measured")
    doc = Document(f"GPU model validation: {name}")
    doc.add(Code(command))
    doc.add(
        Paragraph(
            f"Measured files: {data}. APE is |predicted - measured| / measured in percent; "
            "'within 10 %' is the share of rows with APE <= 10 %. Eager 2:4 sparse rows are "
            "skipped (host-side dispatch, README section 3); layer_eager rows include host "
            "dispatch time and are reported apart from the CUDA-graph layer rows. " + host_note
        )
    )
    doc.add(Heading("Error by family"))
    doc.add(_family_table(compared))
    doc.add(Image(png.name, "predicted vs measured"))
    doc.add(Heading("Worst ten rows"))
    worst = worst_rows(described.rename(columns={"APE %": "ape_pct"})).copy()
    worst["what the model misses"] = worst["family"].map(MISSES).fillna("")
    doc.add(Table(worst.round(1)))
    for other_hw, other_data in also:
        other_name, other_compared, _, other_host_note = _validate_dir(other_hw, other_data)
        doc.add(Heading(f"Error by family: {other_data} on {other_name}"))
        doc.add(
            Paragraph(
                f"Measured files: {other_data} (shapes absent from {data}; "
                f"tests/data/README_measurements.md), predicted with {other_hw} unchanged. "
                + other_host_note
            )
        )
        doc.add(_family_table(other_compared))
    report = out_dir / f"{name}.md"
    report.write_text(to_markdown(doc), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=Path, required=True, help="machine file")
    parser.add_argument("--data", type=Path, required=True, help="directory of measured files")
    parser.add_argument("-o", "--out", type=Path, default=Path("reports/validation"))
    parser.add_argument(
        "--also",
        nargs=2,
        type=Path,
        action="append",
        default=[],
        metavar=("HW", "DATA"),
        help="another machine file and measured directory to tabulate (repeatable)",
    )
    args = parser.parse_args(argv)
    also = tuple((hw, data) for hw, data in args.also)
    extra = "".join(f" --also {hw} {data}" for hw, data in also)
    command = (
        f"python -m archsim.validate.build_report --hw {args.hw} --data {args.data} "
        f"-o {args.out}{extra}"
    )
    print(build(args.hw, args.data, args.out, command, also))


if __name__ == "__main__":
    main()
