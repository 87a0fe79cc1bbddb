"""The report as GitHub-flavoured Markdown, for a job summary and a pull-request comment.

The verdict comes first, with its symbol and the deciding check; then a table of the
gated checks; then warnings; then, folded in ``<details>``, the information-only metrics,
how it was decided, the settings and the environment. GitHub refuses a comment over
65,536 characters and a step summary over 1 MiB: a report that would be longer loses its
folded sections first, then its passing rows, then rows from the end; never the verdict.

Every name that comes from the user (paths, columns, inputs, metric labels, warnings) is
written through ``md``: each character that could open Markdown or HTML syntax becomes a
numeric character reference, which GitHub shows as the character and never interprets.
"""

from __future__ import annotations

import re

from perfgate.formatting import format_seconds
from perfgate.report import generation, parts
from perfgate.report.summary import (
    DATA_DRIFT,
    SYMBOLS,
    change,
    data_files,
    detectable,
    gated,
    informational,
    interval,
    level,
    needs_note,
    noise_text,
    note,
    place,
    python_label,
    safe,
    shorten,
    tally,
    value,
    verdict_word,
)
from perfgate.results import SIDES, Check, ModelReport, Report, Settings, Verdict

# GitHub's comment limit is 65,536 characters; leave room for the marker the action adds
MAX_CHARS = 60_000
_UNSAFE = re.compile(r"[&<>|\\`*_\[\]~$!]")
# a mention is found in the rendered text, where character references are already decoded
_MENTION = "@\N{WORD JOINER}"
_HEADERS = ("", "metric", "at", "reference", "candidate", "change", "interval", "budget", "detectable", "verdict")
_ALIGN = (":---:", "---", "---", "---:", "---:", "---:", "---", "---:", "---:", "---")


def md(text: object) -> str:
    """``text`` as inert Markdown: no emphasis, link, code, table cell, HTML tag, mention or math."""
    escaped = _UNSAFE.sub(lambda match: f"&#{ord(match.group())};", safe(text))
    return escaped.replace("@", _MENTION)


def render_markdown(report: Report, *, max_chars: int = MAX_CHARS) -> str:
    if report.parts:
        return parts.markdown(report, render_markdown, md, max_chars)
    head = _headline(report)
    compared = _join(_compared(report), _generation(report)).strip()
    notes: list[str] = []
    rows = [_row(check, notes) for check in gated(report)]
    warnings = _warnings(report)
    # the information-only table numbers its notes on from the gated table's
    folded = [_info(report, len(notes)), _decided(report), _settings(report), _environment(report)]
    folded = [part for part in folded if part]
    # shed the least needed parts first until the whole fits
    while True:
        text = _join(head, compared, _table(rows, notes), warnings, *folded)
        if len(text) <= max_chars or not folded:
            break
        folded.pop()
    if len(text) > max_chars:
        text = _fit_rows(report, head, compared, warnings, max_chars)
    return text


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part) + "\n"


def _headline(report: Report) -> str:
    verdict = report.verdict
    title = f"## {SYMBOLS[verdict]} perfgate: {verdict_word(verdict)}"
    if verdict is Verdict.ERROR:
        code = f" (exit {report.error.exit_code})" if report.error is not None else ""
        message = report.error.message if report.error is not None else report.reason
        return f"{title}\n\n**The comparison could not be carried out{code}:** {md(shorten(message, 2000))}"
    return f"{title}\n\n**{md(tally(report))}.** {md(shorten(report.reason, 2000))}"


def _compared(report: Report) -> str:
    if report.reference is None or report.candidate is None:
        return ""
    lines = [f"**{role}** <code>{md(shorten(model.path, 300))}</code> {md(_model_facts(model))}"
             for role, model in (("reference", report.reference), ("candidate", report.candidate))]  # fmt: skip
    if report.data is not None:
        data = report.data
        lines.extend(f"**{role}** <code>{md(shorten(path, 300))}</code> ({data.rows_used} of {total} rows)" for role, path, total in data_files(data))
        if data.compares == "data":
            lines.append(f"**{md(DATA_DRIFT.capitalize())}.**")
    return "<br>\n".join(lines)


def _generation(report: Report) -> str:
    """Generate mode: a small table of each model's requests, the answers' agreement and,
    for a served model, whose clock timed it."""
    lines = []
    for series, sides in generation.facts(report):
        lines.append(f"**Generation:** {md(generation.heading(series))}")
        lines.append("")
        lines.append("| | " + " | ".join(generation.HEADERS) + " |")
        lines.append("|---|" + "---:|" * 2 + "---|---|" + "---:|" * 3)
        lines.extend(f"| {facts.side} | " + " | ".join(md(cell) for cell in facts.cells) + " |" for facts in sides)
        lines.append("")
    if report.answers is not None:
        agreement = generation.answers_text(report.answers)
        lines.append(md(agreement[:1].upper() + agreement[1:]) + ".")
    note = generation.endpoint_note(report)
    if note:
        lines.append(("<br>\n" if report.answers is not None else "") + f"**Note:** {md(note)}.")
    return "\n".join(lines).strip()


def _model_facts(model: ModelReport) -> str:
    backend = model.backend
    threads = f"{backend.threads} thread{'s' if backend.threads != 1 else ''}"
    python = f", {python_label(model)}" if model.python else ""
    return f"({backend.framework} {backend.framework_version} on {backend.device}, {threads}{python})"


def _row(check: Check, notes: list[str]) -> list[str]:
    """A gated check's cells; one without an interval gets a numbered note in ``notes`` saying why."""
    ci = interval(check)
    if ci != "-" and check.verdict is not Verdict.INFO:
        ci = f"{ci} ({level(check)})"
    ci = _note_mark(check, notes) or ci
    change_text = change(check)
    if check.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        change_text = f"**{md(change_text)}**"
    else:
        change_text = md(change_text)
    return [
        SYMBOLS[check.verdict],
        md(shorten(str(check.metric), 200)),
        md(shorten(place(check), 200)),
        md(value(check, check.reference)),
        md(value(check, check.candidate)),
        change_text,
        md(ci),
        md(check.budget or "-"),
        md(detectable(check)),
        verdict_word(check.verdict),
    ]


def _note_mark(check: Check, notes: list[str]) -> str:
    """'see [2]' with the check's note added to ``notes``, or '' for a check that needs none."""
    if not needs_note(check):
        return ""
    notes.append(shorten(note(check), 500))
    return f"see [{len(notes)}]"


def _notes(notes: list[str], start: int = 0) -> str:
    """The numbered notes under a table, one line each, visible (the text report's footnotes)."""
    return "<br>\n".join(md(f"[{number}] {text}") for number, text in enumerate(notes[start:], start + 1))


def _table(rows: list[list[str]], notes: list[str], cut: str = "") -> str:
    if not rows and not cut:
        return ""
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "|".join(_ALIGN) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    for part in (_notes(notes), cut):
        if part:
            lines.append("")
            lines.append(part)
    return "\n".join(lines)


def _fit_rows(report: Report, head: str, compared: str, warnings: str, max_chars: int) -> str:
    """The table cut to fit: the checks that are not passing first, then as many rows as fit."""
    checks = gated(report)
    kept = [check for check in checks if check.verdict is not Verdict.PASS] or checks
    for extra in (warnings, ""):
        for part in (compared, ""):
            base = _join(head, part, extra)
            rows, notes, used = [], [], len(base) + 400  # the header, the note and separators
            for check in kept:
                noted = len(notes)
                row = _row(check, notes)
                size = sum(len(cell) for cell in row) + 3 * len(row) + 2
                size += sum(len(md(f"[{noted + 1}] {text}")) + 5 for text in notes[noted:])
                if used + size > max_chars:
                    del notes[noted:]
                    break
                rows.append(row)
                used += size
            if rows or not kept:
                shown = len(rows)
                cut = (f"<sub>{len(checks) - shown} of {len(checks)} gated checks are not shown here, to stay within "
                       "GitHub's size limits; the full report has them all.</sub>")  # fmt: skip
                return _join(head, part, _table(rows, notes, cut), extra)
    return shorten(head, max_chars - 1) + "\n"


def _warnings(report: Report) -> str:
    if not report.warnings:
        return ""
    lines = ["> [!WARNING]"] + [f"> - {md(shorten(warning, 1000))}" for warning in report.warnings[:20]]
    if len(report.warnings) > 20:
        lines.append(f"> - and {len(report.warnings) - 20} more")
    return "\n".join(lines)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


def _info(report: Report, noted: int) -> str:
    """The metrics without a budget; their notes are numbered on from the ``noted`` notes above."""
    checks = informational(report)
    if not checks:
        return ""
    lines = ["| metric | at | reference | candidate | change | interval |", "|---|---|---:|---:|---:|---|"]
    notes = [""] * noted
    for check in checks:
        ci = _note_mark(check, notes) or interval(check)
        lines.append(f"| {md(shorten(str(check.metric), 200))} | {md(shorten(place(check), 200))} | "
                     f"{md(value(check, check.reference))} | {md(value(check, check.candidate))} | "
                     f"{md(change(check))} | {md(ci)} |")  # fmt: skip
    if len(notes) > noted:
        lines += ["", _notes(notes, noted)]
    body = "\n".join(lines) + "\n\nMeasured without a budget: these never fail the gate; give one a budget (`--budget METRIC:LIMIT`) to gate it."
    return _details(f"Information only ({len(checks)} metrics without a budget)", body)


def _decided(report: Report) -> str:
    if report.run is None:
        return ""
    run = report.run
    pairs = ", ".join([f"batch {s.batch_size}: {s.pairs} block pairs of {s.calls_per_block} calls" for s in report.series]
                      + ([generation.run_text(report)] if report.generations else []))
    stop = "it stopped when every check was decided" if run.stopped_because == "decided" else "it stopped when the time budget was spent"
    levels = sorted({level(check) for check in gated(report) if check.ci_level is not None})
    confidence = report.settings.confidence if report.settings is not None else None
    lines = [
        f"Both models ran in the same job, interleaved block by block ({md(pairs) or 'no latency series'}), "
        f"for {format_seconds(run.measure_seconds)} of measuring in {run.looks} look{'s' if run.looks != 1 else ''}; {stop}.",
        "",
        "Each change is the candidate's value over the reference's, with a paired block-bootstrap interval"
        + (f" at {', '.join(levels)}" if levels else "")
        + (f" (the gate's {confidence:.0%} confidence split over its checks and looks)" if confidence else "")
        + ". A check **fails** when its whole interval is past its budget, **passes** when all of it is within, "
        "and is **inconclusive** when the interval straddles the budget.",
    ]
    if report.noise:
        lines += ["", "Noise: " + "; ".join(md(noise_text(noise)) for noise in report.noise) + "."]
    undecided = [check for check in gated(report) if check.verdict is Verdict.INCONCLUSIVE]
    if undecided:
        lines.append("")
        lines.append("Inconclusive: give the gate more `--time-budget`, run it on a quieter machine, or relax the budget.")
    return _details("How it was decided", "\n".join(lines))


def _settings(report: Report) -> str:
    settings = report.settings
    if settings is None:
        return ""
    items = [
        ("budgets", ", ".join(settings.budgets) or "-"),
        *_generate_settings(settings),
        ("batch sizes", ", ".join(map(str, settings.batch_sizes)) or "-"),
        ("time budget", f"{settings.time_budget_s:g} s"),
        ("confidence", f"{settings.confidence:g}"),
        ("seed", str(settings.seed)),
        ("threads", str(settings.threads)),
        ("device", settings.device),
        ("inputs", "; ".join(f"{name} = {columns}" for name, columns in settings.inputs.items()) or "by name"),
    ]
    if settings.loads:
        items.append(("under load", ", ".join(settings.loads)))
    if settings.size_column:
        items.append(("size column", settings.size_column))
    for side in SIDES:
        model = getattr(report, side)
        if model is not None:
            items.extend((f"{side} input {item.input}", f"{', '.join(item.columns)} ({item.dtype})") for item in model.inputs)
    return _details("Settings", _pairs(items))


def _generate_settings(settings: Settings) -> list[tuple[str, str]]:
    if settings.task != "generate":
        return []
    return [("task", settings.task), ("max new tokens", str(settings.max_new_tokens)),
            ("prompt column", settings.prompt_column or "-"), ("chat template", "yes" if settings.chat else "no")]  # fmt: skip


def _environment(report: Report) -> str:
    env = report.environment
    if env is None:
        return ""
    items = [
        ("machine", f"{env.os} {env.kernel} {env.machine}"),
        ("CPU", f"{env.cpu} ({env.usable_cpus} of {env.logical_cpus} logical CPUs usable)"),
        ("memory", f"{env.memory_gib:.1f} GiB" if env.memory_gib else "-"),
        ("Python", env.python),
        ("CI", env.ci or "-"),
    ]
    items.extend((name, version) for name, version in {**env.packages, **env.frameworks}.items())
    return _details("Environment", _pairs(items))


def _pairs(items: list[tuple[str, str]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines.extend(f"| {md(shorten(name, 200))} | {md(shorten(text, 500))} |" for name, text in items)
    return "\n".join(lines)
