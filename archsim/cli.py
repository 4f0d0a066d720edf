"""The ``archsim`` command: parse arguments, call the library, print. Errors in the input print one
line on stderr and exit with code 2."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path

import click

from archsim.errors import ArchsimError

HW_PACKAGE = "archsim.hwconfigs"
WORKLOAD_PACKAGE = "archsim.workloads"


class _Cli(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ArchsimError as exc:
            click.echo(f"archsim: error: {exc}", err=True)
            ctx.exit(2)


def _load(hw: str, workload: str):
    from archsim.config import load_machine, load_workload
    from archsim.shipped import resolve

    return load_machine(resolve(hw, HW_PACKAGE)), load_workload(resolve(workload, WORKLOAD_PACKAGE))


def _format_option(help_text: str):
    """``--format table|json``: every command that prints results offers both."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help=help_text,
    )


def _out_dir_option(default: str, help_text: str):
    """``-o/--out DIR``: where a command writes its files."""
    return click.option(
        "-o",
        "--out",
        "out_dir",
        default=default,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help_text,
    )


def _command_line() -> str:
    return "archsim " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archsim")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def cli(verbose: bool) -> None:
    """Simulate ML workloads on accelerator designs and explore their design space."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.argument("hw")
@click.argument("workload")
@_out_dir_option("out", "Directory for the results.")
@click.option(
    "-j",
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes (default: all cores).",
)
@click.option("--mapper", default=None, help="Mapper to use instead of the machine file's.")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: a process pool; dask: a Dask LocalCluster of --jobs workers.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Join a running Dask cluster (e.g. tcp://10.0.0.5:8786) instead of starting one.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Reuse the finished points of OUT/points.jsonl (after a crash); recompute the rest.",
)
def sweep(
    hw: str,
    workload: str,
    out_dir: Path,
    jobs: int | None,
    mapper: str | None,
    no_progress: bool,
    executor: str,
    scheduler: str | None,
    resume: bool,
) -> None:
    """Explore the design space of HW's (and WORKLOAD's) sweep block; write results, plots, report.

    HW's optional search block picks the strategy (grid, random, nsga2), budget, seed, objectives
    and constraints; without one every combination runs.
    """
    from archsim.dse.sweep import run_sweep

    machine_file, workload_file = _load(hw, workload)
    jobs = jobs or os.cpu_count() or 1
    outcome = run_sweep(
        machine_file,
        workload_file,
        out_dir,
        jobs=jobs,
        mapper_name=mapper,
        progress=not no_progress and sys.stderr.isatty(),
        command=_command_line(),
        executor="dask" if executor == "dask" else "local",
        scheduler=scheduler,
        resume=resume,
    )
    table = outcome.table
    feasible = table[table["feasible"]]
    click.echo(
        f"{len(table)} design points ({len(feasible)} feasible, "
        f"{int(table['pareto'].sum())} Pareto-optimal) in {outcome.wall_time_s:.1f} s"
    )
    if resume:
        click.echo(
            f"resumed: {outcome.reused_points} points reused, "
            f"{outcome.corrupted_records} damaged record(s) recomputed"
        )
    if len(feasible):
        best = feasible.loc[feasible["edp_j_s"].idxmin()]
        params = ", ".join(f"{p}={best[p]}" for p in outcome.params)
        click.echo(
            f"lowest EDP: point {int(best['point'])} ({params or 'base design'}): "
            f"{best['latency_s'] * 1e3:.3f} ms, {best['throughput_per_s']:.4g} "
            f"{best['throughput_unit']}, {best['energy_j'] * 1e3:.3f} mJ, "
            f"{best['area_mm2']:.0f} mm2, {best['dominant_bound']}-bound"
        )
    for path in (
        outcome.files.results,
        outcome.files.pareto_png,
        outcome.files.parallel_png,
        outcome.files.report_md,
        outcome.files.report_html,
        outcome.files.manifest,
    ):
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("hw")
@click.argument("workload")
@_format_option("Per-op table for people or JSON for scripts.")
@_out_dir_option("out", "Where the roofline plot goes.")
@click.option("--mapper", default=None, help="Mapper to use instead of the machine file's.")
def simulate(hw: str, workload: str, fmt: str, out_dir: Path, mapper: str | None) -> None:
    """Simulate one design point (the files' base values; sweep blocks are not expanded)."""
    from archsim.pipeline import run_point
    from archsim.report.single import roofline_for, simulate_json, simulate_table

    machine_file, workload_file = _load(hw, workload)
    outcome = run_point(machine_file.config, workload_file.config, mapper)
    if outcome.result is None:
        raise ArchsimError(f"design cannot run the workload: {outcome.infeasible_reason}")
    plot = roofline_for(outcome.result, machine_file.config, out_dir / "roofline.png")
    if fmt == "json":
        click.echo(json.dumps(simulate_json(outcome), indent=2))
    else:
        click.echo(simulate_table(outcome))
        click.echo(f"wrote {plot}")


@cli.command("map")
@click.argument("hw")
@click.argument("workload")
@click.option(
    "--mapper",
    default=None,
    help="Mapper to use instead of the workload's or machine file's (cosma, lru, belady plan "
    "the scratchpad).",
)
@_out_dir_option("out", "Where occupancy.png goes.")
def map_command(hw: str, workload: str, mapper: str | None, out_dir: Path) -> None:
    """Print WORKLOAD's schedule on HW step by step and plot scratchpad occupancy over time."""
    from archsim.hw.machine import Machine
    from archsim.mappers import Infeasible, get_mapper
    from archsim.mappers.memory_plan import MemoryProblem
    from archsim.report.occupancy import occupancy_plot, plan_steps, schedule_text
    from archsim.workloads import lower

    machine_file, workload_file = _load(hw, workload)
    name = mapper or workload_file.config.mapper or machine_file.config.mapper
    graph = lower(workload_file.config)
    schedule = get_mapper(name).map(graph, Machine.from_config(machine_file.config))
    if isinstance(schedule, Infeasible):
        raise ArchsimError(f"design cannot run the workload: {schedule.reason}")
    plan = schedule.memory_plan
    if plan is None:
        for step, entry in enumerate(schedule.entries):
            click.echo(f"{step:>4}  {entry.op.name:<20} {entry.device}")
        click.echo(
            f"mapper '{name}' keeps no scratchpad plan; --mapper cosma, lru or belady plan one"
        )
        return
    problem = MemoryProblem.from_graph(graph, plan.capacity_bytes)
    click.echo(schedule_text(schedule, plan_steps(schedule, problem)))
    title = f"{graph.name} on {machine_file.config.name} ({name})"
    click.echo(f"wrote {occupancy_plot(plan, out_dir / 'occupancy.png', title)}")


@cli.command("list")
def list_files() -> None:
    """The shipped machines and workloads, one line each."""
    from archsim.shipped import shipped_files

    for title, package in (("machines", HW_PACKAGE), ("workloads", WORKLOAD_PACKAGE)):
        click.echo(f"{title}:")
        for shipped in shipped_files(package):
            click.echo(f"  {shipped.name:<24} {shipped.description}")


@cli.command()
@click.argument("workload")
@click.option("--ops", "show_ops", is_flag=True, help="Also print every op.")
def show(workload: str, show_ops: bool) -> None:
    """Print the operator graph summary of WORKLOAD."""
    from archsim.config import load_workload
    from archsim.report.single import graph_summary_text
    from archsim.shipped import resolve
    from archsim.workloads import lower

    workload_file = load_workload(resolve(workload, WORKLOAD_PACKAGE))
    click.echo(graph_summary_text(lower(workload_file.config), show_ops))


@cli.command()
@click.argument("which", type=click.Choice(["machine", "workload"]))
@click.option(
    "-o",
    "--out",
    "out_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def schema(which: str, out_file: Path | None) -> None:
    """JSON Schema of machine or workload files, for editors."""
    from archsim.config.schema import json_schema

    text = json.dumps(json_schema(which), indent=2)
    if out_file is None:
        click.echo(text)
    else:
        out_file.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {out_file}")


@cli.command()
@click.argument("measured", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hw", required=True, help="Machine file (or shipped machine name) to predict with.")
@click.option(
    "--device",
    "device_name",
    default=None,
    help="Device of the machine to predict with (default: its first device).",
)
@_out_dir_option("out", "Directory for the scatter plot and the report.")
@_format_option("Per-family table for people or JSON for scripts.")
@click.option(
    "--host-launch-us",
    default=None,
    type=click.FloatRange(min=0.0),
    help=(
        "Host time per eager kernel launch (us), for eager multi-kernel rows; default: the "
        "hwconfig's host_launch (the output also names the launch_host_rate of a facts.csv "
        "beside MEASURED, for comparison); 0: GPU time only."
    ),
)
def validate(
    measured: Path,
    hw: str,
    device_name: str | None,
    out_dir: Path,
    fmt: str,
    host_launch_us: float | None,
) -> None:
    """Compare predicted with MEASURED kernel times (a measured CSV or a profiler trace)."""
    from archsim.config import load_machine
    from archsim.hw.machine import Machine
    from archsim.shipped import resolve
    from archsim.validate.predict import select_device
    from archsim.validate.report import (
        dumps,
        validate,
        validation_json,
        validation_table,
        write_validation_report,
    )

    machine_file = load_machine(resolve(hw, HW_PACKAGE))
    device = select_device(Machine.from_config(machine_file.config), device_name)
    host_launch_s = None if host_launch_us is None else host_launch_us * 1e-6
    result = validate(measured, device, host_launch_s=host_launch_s)
    files = write_validation_report(result, out_dir, _command_line())
    if fmt == "json":
        click.echo(dumps(validation_json(result)))
    else:
        click.echo(validation_table(result))
        for path in (files.scatter_png, files.report_md, files.report_html):
            click.echo(f"wrote {path}")


@cli.command()
@click.argument("measured", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--hw", required=True, help="Machine file (or shipped machine name) to fit.")
@click.option(
    "--device",
    "device_name",
    default=None,
    help="Device of the machine to predict with (default: its first device).",
)
@click.option(
    "--params",
    "param_paths",
    multiple=True,
    help="Dotted path of a field to fit, e.g. devices.h100.efficiency.tensor; repeat it or "
    "separate paths by commas (default: the device's efficiency numbers and kernel_launch).",
)
@_out_dir_option("out", "Directory for <hw>.calibrated.yaml.")
@_format_option("Summary table for people or JSON for scripts.")
@click.option(
    "--max-evals",
    default=400,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most machine evaluations the search may use.",
)
@click.option(
    "--host-launch-us",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Host time per eager kernel launch (us), for eager multi-kernel rows; 0: GPU time only.",
)
def calibrate(
    measured: Path,
    hw: str,
    device_name: str | None,
    param_paths: tuple[str, ...],
    out_dir: Path,
    fmt: str,
    max_evals: int,
    host_launch_us: float,
) -> None:
    """Fit HW's efficiency parameters to MEASURED kernel times; write <hw>.calibrated.yaml.

    Every fifth compared row is held out of the fit and reported separately.
    """
    from archsim.config import load_machine
    from archsim.shipped import resolve
    from archsim.validate.calibrate import (
        calibrate,
        calibration_json,
        calibration_table,
        write_calibrated,
    )
    from archsim.validate.report import dumps

    machine_file = load_machine(resolve(hw, HW_PACKAGE))
    paths = [p.strip() for given in param_paths for p in given.split(",") if p.strip()]
    result = calibrate(
        measured,
        machine_file,
        param_paths=paths or None,
        device_name=device_name,
        host_launch_s=host_launch_us * 1e-6,
        max_evals=max_evals,
    )
    output = write_calibrated(result, out_dir)
    if fmt == "json":
        click.echo(dumps(calibration_json(result, output)))
    else:
        click.echo(calibration_table(result))
        click.echo(f"wrote {output}")


@cli.command()
@click.argument("name")
@_format_option("Metric table for people or JSON for scripts.")
@_out_dir_option("reports/reproductions", "Where NAME.md (and its figures) go.")
def reproduce(name: str, fmt: str, out_dir: Path) -> None:
    """Reproduce a paper's result from archsim's models; write out/NAME.md and print the metrics."""
    from archsim.report.document import to_markdown
    from archsim.reproduce import run_reproduction

    reproduction = run_reproduction(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / f"{name}.md"
    report_path.write_text(to_markdown(reproduction.report), encoding="utf-8")
    for file_name, data in reproduction.extra_files.items():
        (out_dir / file_name).write_bytes(data)
    if fmt == "json":
        click.echo(json.dumps(reproduction.to_json(), indent=2, allow_nan=False))
        return
    for metric_name, m in reproduction.metrics.items():
        verdict = "ok" if m.within_tolerance else "OUT OF TOLERANCE"
        click.echo(
            f"{metric_name:<40} paper {m.paper:>10.4g} {m.unit:<10} archsim {m.archsim:>10.4g} "
            f"({m.relative_error:+.1%}, tolerance ±{m.tolerance:.0%}) {verdict}"
        )
    click.echo(f"wrote {report_path}")


def main() -> None:
    cli(prog_name="archsim")


if __name__ == "__main__":
    main()
