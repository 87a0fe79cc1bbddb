"""The terminal report: what was compared, a table of checks, the verdict, and where the
time and memory go (a generative model's requests, memory, cold start, stages, load,
latency against input size)."""

from __future__ import annotations


import numpy as np

from perfgate.backends.paths import printable
from perfgate.formatting import format_bytes, format_change, format_duration, format_rate, format_seconds
from perfgate.data.inputs import describe_binding, describe_pairing
from perfgate.metrics import family_of
from perfgate.report import generation, parts
from perfgate.report.summary import DATA_DRIFT, cold_start_samples, data_files, detectable, needs_note, noise_text, note, python_label
from perfgate.measurements import concatenated
from perfgate.results import SIDES, Check, ModelReport, Report, Verdict

_HEADERS = ("metric", "at", "reference", "candidate", "change", "CI", "budget", "detectable", "verdict", "MWU p")


def render_text(report: Report) -> str:
    if report.parts:
        return printable_lines(parts.text(report, render_text))
    lines = _header(report)
    if report.checks:
        lines.append("")
        lines.extend(_table(report.checks))
    for section in (_generation, _outputs, _memory, _cold_starts, _stages, _loads, _sizes):
        part = section(report)
        if part:
            lines.append("")
            lines.extend(part)
    lines.append("")
    lines.append(f"{report.verdict.value.upper()}: {report.reason}")
    if report.run is not None:
        lines.append(_run_line(report))
    lines.extend(f"noise: {noise_text(noise)}" for noise in report.noise)
    lines.extend(f"warning: {warning}" for warning in report.warnings)
    # paths, columns and messages come from the user: each line stays one line, and inert
    return "\n".join(printable(line) for line in lines) + "\n"


def printable_lines(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


def _header(report: Report) -> list[str]:
    lines = []
    if report.reference is not None and report.candidate is not None:
        lines.append(f"perfgate: reference {report.reference.path} vs candidate {report.candidate.path}")
        lines.extend(_model_lines("reference", report.reference))
        lines.extend(_model_lines("candidate", report.candidate))
        pairing = describe_pairing(report.reference.inputs, report.candidate.inputs)
        if pairing:
            lines.append(f"  inputs (reference | candidate): {pairing}")
    if report.data is not None:
        data = report.data
        if data.compares == "data":
            lines.append(f"  {DATA_DRIFT}")
        for role, path, total in data_files(data):
            rows = f"{data.rows_used} of {total} rows" + (f", seed {data.seed}" if data.rows_used < total else "")
            lines.append(f"  {role}: {path} ({rows})")
    return lines


def _model_lines(role: str, model: ModelReport) -> list[str]:
    backend = model.backend
    threads = f"{backend.threads} thread{'s' if backend.threads != 1 else ''}"
    pinned = f", CPU{'s' if len(model.cpus) > 1 else ''} {','.join(map(str, model.cpus))}" if model.cpus else ""
    form = backend.details.get("format")
    kind = f" ({form})" if form else ""
    device = _device(backend.device, backend.details)
    lines = [f"  {role}: {backend.framework} {backend.framework_version}{kind} on {device}, {threads}{pinned}"]
    if model.python:
        lines.append(f"    {python_label(model)}")
    lines.extend(f"    {describe_binding(item)}" for item in model.inputs)
    return lines


def _device(device: str, details: dict) -> str:
    """'cuda:0 (NVIDIA H100, driver 550.54, CUDA 12.4, transfers not timed)' or 'cpu'."""
    gpu = details.get("gpu") or {}
    facts = [gpu.get("name"), gpu.get("driver") and f"driver {gpu['driver']}"]
    facts.append(details.get("cuda_version") and f"CUDA {details['cuda_version']}")
    if "include_transfers" in details:
        facts.append("transfers timed" if details["include_transfers"] else "transfers not timed")
    facts = [fact for fact in facts if fact]
    return f"{device} ({', '.join(facts)})" if facts else device


def _table(checks: tuple[Check, ...]) -> list[str]:
    levels = sorted({check.ci_level for check in checks if check.ci_level is not None and check.verdict is not Verdict.INFO})
    headers = list(_HEADERS)
    headers[5] = f"CI ({_percent(levels[0])})" if len(levels) == 1 else "CI"
    notes: list[str] = []
    rows = [headers] + [_row(check, show_level=len(levels) > 1, notes=notes) for check in checks]
    return _columns(rows, right={2, 3, 4, 7}) + [f"  [{index}] {note}" for index, note in enumerate(notes, 1)]


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out


def _row(check: Check, show_level: bool, notes: list[str]) -> list[str]:
    """A check's cells; a check without an interval that was not decided gets a numbered note."""
    change = "-" if check.ratio is None else format_change(check.ratio, 1)
    if check.ci is None:
        interval = "-"
        # a check decided without a test (memory, outputs) says all it has in its own row
        if needs_note(check):
            notes.append(note(check))
            interval = f"see [{len(notes)}]"
    else:
        interval = f"{format_change(check.ci[0], 1)} .. {format_change(check.ci[1], 1)}"
        if show_level and check.ci_level is not None and check.verdict is not Verdict.INFO:
            interval += f" ({_percent(check.ci_level)})"
    if check.unit == "bytes" and check.reference is not None and check.candidate is not None:
        difference = check.candidate - check.reference
        interval = f"{'+' if difference >= 0 else '-'}{format_bytes(abs(difference))}"
    family = family_of(check)
    return [
        str(check.metric),
        family.place(check),
        family.format_value(check.reference, check),
        family.format_value(check.candidate, check),
        change,
        interval,
        check.budget or "-",
        detectable(check),
        check.verdict.value.upper() if check.verdict is not Verdict.INFO else "info",
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


def _generation(report: Report) -> list[str]:
    """Generate mode: per model what its requests were and how fast, the greedy answers'
    agreement, and where a side is served over the network, whose clock timed it."""
    lines = []
    for series, sides in generation.facts(report):
        lines.append(f"generation: {generation.heading(series)}")
        rows = [["", *generation.HEADERS]] + [[f"  {facts.side}", *facts.cells] for facts in sides]
        lines.extend(_columns(rows, right={1, 2, 5, 6, 7}))
    if report.answers is not None:
        lines.append(f"  {generation.answers_text(report.answers)}")
    note = generation.endpoint_note(report)
    if note:
        lines.append(f"  note: {note}")
    return lines


def _outputs(report: Report) -> list[str]:
    """Which rows the outputs were compared on, and which output was paired with which."""
    compared = report.outputs
    if compared is None:
        return []
    total = report.data.rows_used if report.data is not None else None
    of_total = f" of {total}" if total is not None else ""
    batches = len(compared.batches)
    drawn = "all of them" if batches == compared.total_batches else f"drawn with seed {compared.seed}"
    lines = [
        f"outputs compared on {len(compared.rows)}{of_total} rows: {batches} of {compared.total_batches} batches "
        f"of batch size {compared.batch_size}, {drawn} (row numbers in the JSON report), untimed"
    ]
    for difference in compared.outputs:
        shape = "x".join("?" if dim is None else str(dim) for dim in difference.row_shape) or "1"
        names = (
            f"output {difference.reference_output}"
            if difference.reference_output == difference.candidate_output
            else f"reference output {difference.reference_output} with candidate output {difference.candidate_output}"
        )
        lines.append(f"  {names}: {shape} values per row")
    if compared.note:
        lines.append(f"  {compared.note}")
    return lines


def _memory(report: Report) -> list[str]:
    models = {side: getattr(report, side) for side in SIDES}
    if not all(model is not None and model.memory for model in models.values()):
        return []
    rows = [["memory", "peak RSS", "model load", "framework", "GPU peak"]]
    for side, model in models.items():
        memory = model.memory
        gpu = memory.get("gpu_peak_allocated_bytes")
        rows.append([side, format_bytes(memory.get("peak_rss")), format_bytes(memory.get("load_rss")),
                     format_bytes(memory.get("framework_rss")), format_bytes(gpu) if gpu is not None else "-"])  # fmt: skip
    return _columns(rows, right={1, 2, 3, 4})


def _cold_starts(report: Report) -> list[str]:
    if not report.cold_starts:
        return []
    rows = [[f"cold start ({cold_start_samples(report)})", "total", "process", "framework", "load", "first call"]]
    for side in SIDES:
        records = report.cold_starts.get(side, ())
        if not records:
            continue

        def mean(values):
            return sum(values) / len(values) * 1e9

        rows.append([side, format_duration(mean([r.total_seconds for r in records])),
                     format_duration(mean([r.process_seconds for r in records])),
                     format_duration(mean([r.setup_seconds for r in records])),
                     format_duration(mean([r.load_seconds for r in records])),
                     format_duration(mean([r.first_call_seconds + r.prepare_seconds for r in records]))])  # fmt: skip
    return _columns(rows, right={1, 2, 3, 4, 5})


def _stages(report: Report) -> list[str]:
    if not report.stages:
        return []
    rows = [["stages, per batch", "read Parquet", "to tensors", "backend prepare", "model p50"]]
    for stage in report.stages:
        for side in SIDES:
            rows.append([f"batch {stage.batch_size} {side}", format_duration(stage.read * 1e9),
                         format_duration(stage.tensors[side] * 1e9), format_duration(stage.backend[side] * 1e9),
                         format_duration(stage.model[side] * 1e9)])  # fmt: skip
    return _columns(rows, right={1, 2, 3, 4})


def _loads(report: Report) -> list[str]:
    if not report.loads:
        return []
    rows = [["under load", "p50", "p99", "queue p99", "service p99", "served", "busy"]]
    for load in report.loads:
        for side in SIDES:
            latency = concatenated(load.latencies(side))
            if latency.size == 0:
                continue
            queue, service = load.part(side, "queue_ns"), load.part(side, "service_ns")
            rows.append([f"{load.scenario.label} {side}", format_duration(float(np.quantile(latency, 0.5))),
                         format_duration(float(np.quantile(latency, 0.99))), format_duration(float(np.quantile(queue, 0.99))),
                         format_duration(float(np.quantile(service, 0.99))), format_rate(load.throughput(side)),
                         _busy(load.offered_load(side))])  # fmt: skip
    return _columns(rows, right={1, 2, 3, 4, 5, 6})


def _busy(offered_load: float | None) -> str:
    # a closed loop is always busy by construction: the share says nothing there
    return "-" if offered_load is None else f"{offered_load:.0%}"


def _sizes(report: Report) -> list[str]:
    lines = []
    for analysis in report.sizes:
        rows = [[f"batch {analysis.batch_size} by {analysis.column}", "calls", "reference p50", "p95", "candidate p50", "p95"]]
        for bucket in analysis.buckets:
            rows.append([f"{bucket.low:g} to {bucket.high:g}", str(bucket.calls["reference"]),
                         format_duration(bucket.p50["reference"]), format_duration(bucket.p95["reference"]),
                         format_duration(bucket.p50["candidate"]), format_duration(bucket.p95["candidate"])])  # fmt: skip
        lines.extend(_columns(rows, right={1, 2, 3, 4, 5}))
        slopes = ", ".join(
            f"{side} {format_duration(analysis.intercept[side])} + {format_duration(analysis.slope[side])}/{analysis.column}"
            for side in SIDES
        )
        lines.append(f"  fitted: {slopes}")
    return lines


def _run_line(report: Report) -> str:
    run = report.run
    pairs = ", ".join(
        [f"batch {s.batch_size}: {s.pairs} block pairs x {s.calls_per_block} calls" for s in report.series]
        + ([generation.run_text(report)] if report.generations else [])
    )
    looks = f"{run.looks} look{'s' if run.looks != 1 else ''}"
    stop = "stopped when decided" if run.stopped_because == "decided" else "time budget spent"
    return (
        f"measured {pairs} per model in {format_seconds(run.measure_seconds)} ({looks}, {stop}); "
        f"{format_seconds(run.total_seconds)} in all"
    )
