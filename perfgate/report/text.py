"""The terminal report: what was compared, a table of checks, and the verdict."""

from __future__ import annotations

from perfgate.formatting import format_change, format_duration
from perfgate.inputs import describe_binding
from perfgate.results import Check, ModelReport, Report, Verdict

_HEADERS = ("metric", "batch", "reference", "candidate", "change", "CI", "budget", "verdict", "MWU p")


def render_text(report: Report) -> str:
    lines = _header(report)
    if report.checks:
        lines.append("")
        lines.extend(_table(report.checks))
    lines.append("")
    lines.append(f"{report.verdict.value.upper()}: {report.reason}")
    if report.run is not None:
        lines.append(_run_line(report))
    lines.extend(f"warning: {warning}" for warning in report.warnings)
    return "\n".join(lines) + "\n"


def _header(report: Report) -> list[str]:
    lines = []
    if report.reference is not None and report.candidate is not None:
        lines.append(f"perfgate: reference {report.reference.path} vs candidate {report.candidate.path}")
        lines.extend(_model_lines("reference", report.reference))
        lines.extend(_model_lines("candidate", report.candidate))
    if report.data is not None:
        data = report.data
        rows = f"{data.rows_used} of {data.rows_total} rows" + (f", seed {data.seed}" if data.rows_used < data.rows_total else "")
        lines.append(f"  data: {data.path} ({rows})")
    return lines


def _model_lines(role: str, model: ModelReport) -> list[str]:
    backend = model.backend
    threads = f"{backend.threads} thread{'s' if backend.threads != 1 else ''}"
    pinned = f", CPU{'s' if len(model.cpus) > 1 else ''} {','.join(map(str, model.cpus))}" if model.cpus else ""
    form = backend.details.get("format")
    kind = f" ({form})" if form else ""
    lines = [f"  {role}: {backend.framework} {backend.framework_version}{kind} on {_device(backend.device, backend.details)}, {threads}{pinned}"]
    lines.extend(f"    {describe_binding(item)}" for item in model.inputs)
    if model.peak_memory:
        peaks = ", ".join(f"{name.replace('_bytes', '').replace('_', ' ')} {value / 2**20:.1f} MiB" for name, value in model.peak_memory.items())
        lines.append(f"    {peaks}")
    return lines


def _device(device: str, details: dict) -> str:
    """'cuda:0 (NVIDIA H100, driver 550.54, CUDA 12.4, transfers timed)' or 'cpu'."""
    gpu = details.get("gpu") or {}
    facts = [gpu.get("name"), gpu.get("driver") and f"driver {gpu['driver']}"]
    facts.append(details.get("cuda_version") and f"CUDA {details['cuda_version']}")
    if "include_transfers" in details:
        facts.append("transfers timed" if details["include_transfers"] else "transfers not timed")
    facts = [fact for fact in facts if fact]
    return f"{device} ({', '.join(facts)})" if facts else device


def _table(checks: tuple[Check, ...]) -> list[str]:
    levels = sorted({check.ci_level for check in checks if check.ci_level is not None})
    ci_header = f"CI ({_percent(levels[0])})" if len(levels) == 1 else "CI"
    headers = list(_HEADERS)
    headers[5] = ci_header
    rows = [headers] + [_row(check, show_level=len(levels) > 1) for check in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
    right = {1, 2, 3, 4}
    out = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out


def _row(check: Check, show_level: bool) -> list[str]:
    change = "-" if check.ratio is None else format_change(check.ratio, 1)
    if check.ci is None:
        interval = check.reason if check.verdict is Verdict.INCONCLUSIVE else "-"
    else:
        interval = f"{format_change(check.ci[0], 1)} .. {format_change(check.ci[1], 1)}"
        if show_level and check.ci_level is not None:
            interval += f" ({_percent(check.ci_level)})"
    return [
        check.metric,
        str(check.batch_size),
        format_duration(check.reference),
        format_duration(check.candidate),
        change,
        interval,
        check.budget,
        check.verdict.value.upper(),
        _p_value(check),
    ]


def _p_value(check: Check) -> str:
    if check.mann_whitney_p is None:
        return "n/a" if check.mann_whitney_note else ""
    if check.mann_whitney_p < 1e-4:
        return "<1e-4"
    return f"{check.mann_whitney_p:.2g}"


def _percent(level: float) -> str:
    text = f"{level * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _run_line(report: Report) -> str:
    run = report.run
    pairs = ", ".join(
        f"batch {s.batch_size}: {s.pairs} block pairs x {s.calls_per_block} calls" for s in report.series
    )
    looks = f"{run.looks} look{'s' if run.looks != 1 else ''}"
    stop = "stopped when decided" if run.stopped_because == "decided" else "time budget spent"
    return (
        f"measured {pairs} per model in {run.measure_seconds:.1f} s ({looks}, {stop}); "
        f"{run.total_seconds:.1f} s in all"
    )
