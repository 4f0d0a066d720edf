"""Predicted vs measured: compare a measured CSV or profiler trace with a device model, and report.

``validate(path, device)`` reads either input, predicts every row it can lower and returns a
:class:`Validation`; ``validation_json``, ``validation_table`` and ``write_validation_report``
turn it into the CLI's JSON, its text table and the files (scatter plot, Markdown, HTML).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from archsim.hw.base import DeviceModel
from archsim.report.document import (
    Code,
    Document,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from archsim.validate.metrics import (
    absolute_percentage_error,
    family_metrics,
    overall_metrics,
    worst_rows,
)
from archsim.validate.plot import scatter_plot
from archsim.validate.predict import KernelContext, predict_ops, predict_row
from archsim.validate.readers import facts_beside, read_host_launch_s, read_measured_csv
from archsim.validate.trace import ProfilerTrace, read_trace

SCATTER_FILE = "validation_scatter.png"
REPORT_FILE = "report.md"
HTML_FILE = "report.html"

# Columns that describe a CSV row's case in the report (those that are empty are left out).
_CASE_COLUMNS = (
    "op",
    "impl",
    "dtype",
    "M",
    "N",
    "K",
    "B",
    "H",
    "H_kv",
    "S_q",
    "S_kv",
    "E",
    "topk",
    "T",
    "graph",
    "l2_flush",
)


@dataclass(frozen=True)
class Validation:
    """The comparison of one measured file with one device model.

    Attributes
    ----------
    kind:
        ``csv`` or ``trace``.
    source:
        The measured file.
    device:
        ``name (kind)`` of the device model.
    rows:
        One row per input row (CSV) or GPU event (trace): the input's columns, then ``family``,
        ``measured_us``, ``predicted_us`` (None when not predicted), ``skip_reason`` (None when
        predicted) and ``ape_pct`` (absolute % error; for traces on each op group's principal
        kernel, against the group's summed time ``group_measured_us``).
    families:
        Per family: ``n``, ``median_ape``, ``p90_ape`` (percent) and ``within_10pct`` (share).
    overall:
        The same statistics over every compared row.
    iterations:
        Traces only: per iteration the GPU busy time (``measured_us``), the predicted time of the
        lowered ops (``predicted_us``) and the busy time those ops cover (``covered_measured_us``).
    host_launch_s:
        Host time per eager kernel launch used for eager multi-kernel rows, seconds (None for
        traces, which are priced as kernel time only).
    host_launch_source:
        Where ``host_launch_s`` came from: the command line, the measured set's ``facts.csv``, or
        the device config.
    """

    kind: str
    source: str
    device: str
    rows: pd.DataFrame
    families: pd.DataFrame
    overall: dict[str, float | int | None]
    iterations: pd.DataFrame = field(default_factory=pd.DataFrame)
    host_launch_s: float | None = None
    host_launch_source: str = ""

    @property
    def compared(self) -> pd.DataFrame:
        return self.rows[self.rows["ape_pct"].notna()]

    @property
    def skipped(self) -> pd.DataFrame:
        return self.rows[self.rows["skip_reason"].notna()]

    def total(self) -> dict[str, float | None]:
        """Traces: mean per-iteration busy and predicted time, microseconds."""
        if self.iterations.empty:
            return {"measured_us": None, "predicted_us": None, "covered_measured_us": None}
        means = self.iterations[["measured_us", "predicted_us", "covered_measured_us"]].mean()
        return {name: float(value) for name, value in means.items()}


def is_trace_file(path: Path) -> bool:
    """Profiler traces are ``.json`` or ``.json.gz``; everything else is read as a CSV."""
    return path.name.endswith((".json", ".json.gz"))


def validate(path: Path, device: DeviceModel, *, host_launch_s: float | None = None) -> Validation:
    """Compare the measured file ``path`` with ``device``'s predictions.

    Parameters
    ----------
    path:
        A measured CSV (``shared/data/gpu`` schema) or a ``torch.profiler`` Chrome trace.
    device:
        The device model to predict with.
    host_launch_s:
        Host time per eager kernel launch in seconds, applied to eager multi-kernel CSV rows
        (see :func:`archsim.validate.predict.predict_ops`); 0 predicts GPU time only. None takes
        the host's own figure from :func:`host_launch_for`.
    """
    if is_trace_file(path):
        return validate_trace(read_trace(path), device)
    return validate_csv(path, device, host_launch_s=host_launch_s)


def host_launch_for(
    path: Path, device: DeviceModel, host_launch_s: float | None = None
) -> tuple[float, str]:
    """The host launch time to predict the eager rows of ``path`` with, and where it came from.

    An explicit ``host_launch_s`` wins; otherwise the device config's ``host_launch``. When the
    measured set keeps a ``facts.csv`` beside ``path``, its ``launch_host_rate`` row (bare
    ``add_`` launches of the measuring host) is named in the source for comparison but not
    applied: on the H100 hold-out set its 6.56 µs makes the eager MoE rows 11 points worse than
    the config's 11.2 µs (that host runs the loops slower, not faster), so the bare launch rate
    does not carry over to allocating, synchronizing eager ops. Pass it as ``host_launch_s``
    (``--host-launch-us``) to apply it.

    Returns
    -------
    tuple of (float, str)
        Seconds per launch and its source.
    """
    if host_launch_s is not None:
        return host_launch_s, "given"
    configured = float(getattr(device, "host_launch_s", 0.0))
    facts = facts_beside(path)
    measured = read_host_launch_s(facts) if facts is not None else None
    if measured is None:
        return configured, "config"
    return configured, f"config; {facts} measured {measured * 1e6:.2f} µs per bare launch"


def validate_csv(
    path: Path, device: DeviceModel, *, host_launch_s: float | None = None
) -> Validation:
    """Predict every lowerable row of a measured CSV on ``device``.

    ``host_launch_s`` as in :func:`validate`: None takes :func:`host_launch_for`'s figure.
    """
    host_launch_s, host_source = host_launch_for(path, device, host_launch_s)
    table = read_measured_csv(path)
    rows = table.frame.copy()
    rows["family"] = None
    rows["measured_us"] = pd.to_numeric(rows["median_us"], errors="coerce")
    rows["predicted_us"] = np.nan
    rows["skip_reason"] = None
    for skipped in table.skipped:
        rows.at[skipped.index, "family"] = skipped.family
        rows.at[skipped.index, "skip_reason"] = skipped.reason
    for lowered in table.lowered:
        rows.at[lowered.index, "family"] = lowered.family
        prediction = predict_row(lowered, device, host_launch_s=host_launch_s)
        if prediction.latency_s is None:
            rows.at[lowered.index, "skip_reason"] = prediction.reason
        else:
            rows.at[lowered.index, "predicted_us"] = prediction.latency_s * 1e6
    rows["ape_pct"] = absolute_percentage_error(rows["measured_us"], rows["predicted_us"])
    return _finish(
        "csv", table.source, device, rows, host_launch_s=host_launch_s, host_source=host_source
    )


def validate_trace(trace: ProfilerTrace, device: DeviceModel) -> Validation:
    """Predict each aten op call of a profiler trace on ``device``; one row per GPU event."""
    records = [
        {
            "iteration": k.iteration,
            "kernel_name": k.kernel_name,
            "kind": k.kind,
            "aten_op": k.aten_op,
            "aten_input_shapes": k.aten_input_shapes,
            "aten_input_types": k.aten_input_types,
            "layer_step": k.layer_step,
            "correlation": k.correlation,
            "ts_us": k.ts_us,
            "family": None,
            "measured_us": k.measured_us,
            "predicted_us": np.nan,
            "group_measured_us": np.nan,
            "attributed_to": None,
            "skip_reason": (
                None if k.group >= 0 else f"no lowerable aten op encloses the launch ({k.aten_op})"
            ),
        }
        for k in trace.kernels
    ]
    rows = pd.DataFrame.from_records(records)
    first_of_iteration: set[int] = set()
    seen: set[str | None] = set()
    for position, kernel in enumerate(trace.kernels):
        if kernel.kind == "kernel" and kernel.iteration not in seen:
            seen.add(kernel.iteration)
            first_of_iteration.add(position)
    for group in trace.groups:
        principal = trace.kernels[group.principal]
        group_us = sum(trace.kernels[m].measured_us for m in group.members)
        for member in group.members:
            rows.at[member, "family"] = group.family
            if member != group.principal:
                # helper kernels (split-K reduce, workspace memset) are part of the op's prediction
                rows.at[member, "attributed_to"] = principal.correlation
        rows.at[group.principal, "group_measured_us"] = group_us
        if group.reason:
            for member in group.members:
                rows.at[member, "skip_reason"] = group.reason
            continue
        # profiler durations are kernel execution only; a layer's kernels run back to back, so
        # a streaming kernel finds the activations the previous kernel wrote in L2, except the
        # first kernel of an iteration: it reads the iteration's input, which no kernel of the
        # iteration wrote (a profiled loop feeds each call the same input tensor)
        opens_iteration = group.principal in first_of_iteration
        context = KernelContext(kernel_only=True, activations_in_l2=not opens_iteration)
        prediction = predict_ops(group.ops, device, context=context)
        if prediction.latency_s is None:
            for member in group.members:
                rows.at[member, "skip_reason"] = prediction.reason
        else:
            rows.at[group.principal, "predicted_us"] = prediction.latency_s * 1e6
    rows["ape_pct"] = absolute_percentage_error(rows["group_measured_us"], rows["predicted_us"])
    iterations = _iteration_totals(rows, trace)
    return _finish("trace", trace.source, device, rows, iterations)


def _iteration_totals(rows: pd.DataFrame, trace: ProfilerTrace) -> pd.DataFrame:
    busy = trace.busy_us_by_iteration()
    records = []
    for name in trace.iterations:
        mine = rows[rows["iteration"] == name]
        predicted = mine["predicted_us"].notna()
        covered = mine["group_measured_us"].where(predicted).sum()
        records.append(
            {
                "iteration": name,
                "measured_us": busy[name],
                "predicted_us": float(mine["predicted_us"].sum()),
                "covered_measured_us": float(covered),
                "kernels": int((mine["kind"] == "kernel").sum()),
                "gpu_events": len(mine),
            }
        )
    return pd.DataFrame.from_records(records)


def _finish(
    kind: str,
    source: str,
    device: DeviceModel,
    rows: pd.DataFrame,
    iterations: pd.DataFrame | None = None,
    *,
    host_launch_s: float | None = None,
    host_source: str = "",
) -> Validation:
    compared = rows[rows["ape_pct"].notna()]
    return Validation(
        kind=kind,
        source=source,
        device=f"{device.name} ({device.kind})",
        rows=rows,
        families=family_metrics(compared),
        overall=overall_metrics(compared),
        iterations=iterations if iterations is not None else pd.DataFrame(),
        host_launch_s=host_launch_s,
        host_launch_source=host_source,
    )


# --- outputs -----------------------------------------------------------------------------------


def validation_json(result: Validation) -> dict[str, object]:
    """The ``--format json`` body; NaN and infinities become null.

    ``{"rows": [...], "families": {name: {n, median_ape, p90_ape, within_10pct}},
    "overall": {...}}``; for CSVs also ``"host_launch": {"us", "source"}``, for traces
    ``"total"`` and ``"iterations"``.
    """
    rows = result.rows.drop(columns=["ape_pct"])
    body: dict[str, object] = {
        "rows": [_clean(r) for r in rows.to_dict(orient="records")],
        "families": {
            r["family"]: _clean({k: v for k, v in r.items() if k != "family"})
            for r in result.families.to_dict(orient="records")
        },
        "overall": _clean(result.overall),
    }
    if result.host_launch_s is not None:
        body["host_launch"] = {
            "us": result.host_launch_s * 1e6,
            "source": result.host_launch_source,
        }
    if result.kind == "trace":
        total = result.total()
        body["total"] = _clean(
            {"measured_us": total["measured_us"], "predicted_us": total["predicted_us"]}
        )
        body["iterations"] = [_clean(r) for r in result.iterations.to_dict(orient="records")]
    return body


def dumps(body: dict[str, object]) -> str:
    """JSON text that refuses NaN (every missing value must already be None)."""
    return json.dumps(body, indent=2, allow_nan=False)


def validation_table(result: Validation) -> str:
    """Plain-text summary for the terminal: the family table, totals and skip reasons."""
    lines = [
        f"{result.source} on {result.device}: {len(result.compared)} compared, "
        f"{len(result.skipped)} skipped",
    ]
    if result.host_launch_s is not None:
        lines.append(_host_launch_line(result))
    lines += [
        "",
        f"{'family':<20} {'n':>5} {'median APE %':>13} {'p90 APE %':>10} {'within 10 %':>12}",
    ]
    summary = result.families.to_dict(orient="records")
    summary.append({"family": "overall", **result.overall})
    for r in summary:
        lines.append(
            f"{r['family']:<20} {r['n']:>5} {_num(r['median_ape'], '.1f'):>13} "
            f"{_num(r['p90_ape'], '.1f'):>10} {_num(r['within_10pct'], '.0%'):>12}"
        )
    if not result.iterations.empty:
        lines += ["", "per iteration (GPU busy time, µs):"]
        for r in result.iterations.to_dict(orient="records"):
            lines.append(
                f"  {r['iteration']:<12} measured {r['measured_us']:9.1f}  predicted "
                f"{r['predicted_us']:9.1f}  ({r['kernels']} kernels, {r['gpu_events']} GPU events)"
            )
    reasons = _skip_reasons(result)
    if len(reasons):
        lines += ["", "skipped:"]
        lines += [f"  {r.count:>4} x {r.reason}" for r in reasons.itertuples(index=False)]
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportFiles:
    scatter_png: Path
    report_md: Path
    report_html: Path


def write_validation_report(result: Validation, out_dir: Path, command: str) -> ReportFiles:
    """Write the scatter plot, ``report.md`` and ``report.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"Validation: {Path(result.source).name} on {result.device}"
    scatter = scatter_plot(result.compared, out_dir / SCATTER_FILE, title)
    doc = Document(title)
    doc.add(Code(command))
    doc.add(
        Paragraph(
            f"{len(result.compared)} rows compared, {len(result.skipped)} skipped. APE is "
            "|predicted - measured| / measured in percent; 'within 10 %' is the share of rows "
            "with APE <= 10 %."
            + (f" {_host_launch_line(result)}." if result.host_launch_s is not None else "")
        )
    )
    doc.add(Heading("Error by family"))
    summary = result.families.copy()
    summary.loc[len(summary)] = {"family": "overall", **result.overall}
    doc.add(
        Table(
            summary.rename(
                columns={
                    "median_ape": "median APE %",
                    "p90_ape": "p90 APE %",
                    "within_10pct": "within 10 %",
                }
            )
        )
    )
    if not result.iterations.empty:
        doc.add(Heading("Per iteration (GPU busy time, µs)"))
        doc.add(Table(result.iterations))
    doc.add(Image(scatter.name, "predicted vs measured"))
    doc.add(Heading("Worst ten rows"))
    doc.add(Table(_described(worst_rows(result.compared), result.kind)))
    reasons = _skip_reasons(result)
    if len(reasons):
        doc.add(Heading("Skipped rows"))
        doc.add(Table(reasons))
    md = out_dir / REPORT_FILE
    md.write_text(to_markdown(doc), encoding="utf-8")
    page = out_dir / HTML_FILE
    page.write_text(to_html(doc), encoding="utf-8")
    return ReportFiles(scatter, md, page)


def _described(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    if kind == "trace":
        case = rows["aten_op"].astype(str) + " " + rows["aten_input_shapes"].astype(str)
        measured = rows["group_measured_us"]
    else:
        case = rows.apply(_case, axis=1)
        measured = rows["measured_us"]
    return pd.DataFrame(
        {
            "family": rows["family"],
            "case": case,
            "measured µs": measured,
            "predicted µs": rows["predicted_us"],
            "APE %": rows["ape_pct"],
        }
    )


def _case(row: pd.Series) -> str:
    parts = []
    for column in _CASE_COLUMNS:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts.append(str(value) if column in ("op", "impl", "dtype") else f"{column}={value}")
    return " ".join(parts)


def _skip_reasons(result: Validation) -> pd.DataFrame:
    skipped = result.skipped
    if skipped.empty:
        return pd.DataFrame(columns=["reason", "count"])
    counts = skipped["skip_reason"].value_counts()
    return pd.DataFrame({"reason": counts.index.astype(str), "count": counts.to_numpy()})[
        ["count", "reason"]
    ]


def _host_launch_line(result: Validation) -> str:
    assert result.host_launch_s is not None
    return (
        f"Host launch time for eager multi-kernel rows: {result.host_launch_s * 1e6:.2f} µs "
        f"(from {result.host_launch_source})"
    )


def _num(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _clean(record: dict[str, object]) -> dict[str, object]:
    return {str(k): _plain(v) for k, v in record.items()}


def _plain(value: object) -> object:
    # numpy scalars to Python, and every missing value (NaN, NaT, inf) to None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
