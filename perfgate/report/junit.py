"""The report as JUnit XML, for CI systems that show test results (GitLab, Jenkins,
Azure Pipelines, GitHub's test reporters).

One test suite per report (per part of a merged report), one test case per gated check: a failed check carries a ``<failure>`` with its reason,
an inconclusive one is ``<skipped>`` (it does not fail the build unless the gate is told
to); information-only metrics are properties of the suite. A comparison that could not
be carried out is one test case with an ``<error>``. ElementTree escapes markup; names
also lose the control characters XML 1.0 cannot hold at all.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from perfgate.report import generation
from perfgate.report.parts import leaves
from perfgate.report.summary import (
    DATA_DRIFT, change, data_files, gated, informational, interval, place, python_label, safe, value, where,
)
from perfgate.results import Check, Report, Verdict


def render_junit(report: Report) -> str:
    """One test suite, or for a merged report one per part (named after it)."""
    root = ET.Element("testsuites", {"name": "perfgate"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for name, part in leaves(report):
        for key, count in _suite(root, part, name).items():
            totals[key] += count
        seconds += part.run.total_seconds if part.run is not None else 0.0
    root.attrib.update({key: str(count) for key, count in totals.items()}, time=f"{seconds:.3f}" if seconds else "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(root: ET.Element, report: Report, part: str) -> dict[str, int]:
    checks = gated(report)
    failures = sum(check.verdict is Verdict.FAIL for check in checks)
    skipped = sum(check.verdict is Verdict.INCONCLUSIVE for check in checks)
    errors = int(report.verdict is Verdict.ERROR)
    seconds = f"{report.run.total_seconds:.3f}" if report.run is not None else "0"
    counts = {"tests": len(checks) + errors, "failures": failures, "errors": errors, "skipped": skipped}
    name = _suite_name(report) + (f" [part {part}]" if part else "")
    attributes = {key: str(count) for key, count in counts.items()}
    suite = ET.SubElement(root, "testsuite", {"name": _text(name), **attributes, "time": seconds, "timestamp": report.created})
    properties = ET.SubElement(suite, "properties")
    for key, text in ([("part", part)] if part else []) + _properties(report):
        ET.SubElement(properties, "property", {"name": _text(key), "value": _text(text)})
    for check in checks:
        _case(suite, check)
    if report.verdict is Verdict.ERROR:
        case = ET.SubElement(suite, "testcase", {"classname": "perfgate", "name": "comparison", "time": "0"})
        error = report.error
        message = error.message if error is not None else report.reason
        kind = error.type if error is not None else "error"
        ET.SubElement(case, "error", {"message": _text(message), "type": _text(kind)}).text = _text(message)
    return counts


def _suite_name(report: Report) -> str:
    if report.reference is None or report.candidate is None:
        return "perfgate"
    return f"perfgate: {report.candidate.path} vs {report.reference.path}"


def _case(suite: ET.Element, check: Check) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": _text(f"perfgate.{check.metric.split('.')[0]}"),
                                             "name": _text(where(check)), "time": "0"})  # fmt: skip
    if check.verdict is Verdict.FAIL:
        failure = ET.SubElement(case, "failure", {"message": _text(f"{where(check)}: {check.reason}"), "type": "regression"})
        failure.text = _text(_detail(check))
    elif check.verdict is Verdict.INCONCLUSIVE:
        ET.SubElement(case, "skipped", {"message": _text(f"inconclusive: {where(check)}: {check.reason}")})
    else:
        ET.SubElement(case, "system-out").text = _text(_detail(check))


def _detail(check: Check) -> str:
    return (
        f"{where(check)}: reference {value(check, check.reference)}, candidate {value(check, check.candidate)}, "
        f"change {change(check)} (interval {interval(check)}), budget {check.budget or '-'}: {check.reason}"
    )


def _properties(report: Report) -> list[tuple[str, str]]:
    items = [("verdict", report.verdict.value), ("reason", report.reason)]
    for side in ("reference", "candidate"):
        model = getattr(report, side)
        if model is not None:
            items.append((side, f"{model.path} ({model.backend.framework} {model.backend.framework_version} on {model.backend.device})"))
            if model.python:
                items.append((f"{side} python", python_label(model)))
    if report.data is not None:
        items.extend((role, f"{path} ({report.data.rows_used} of {total} rows)") for role, path, total in data_files(report.data))
        if report.data.compares == "data":
            items.append(("compares", DATA_DRIFT))
    for series, sides in generation.facts(report):
        items.append(("generation", generation.heading(series)))
        items.extend((f"generation {facts.side}", facts.sentence) for facts in sides)
    if report.answers is not None:
        items.append(("answers", generation.answers_text(report.answers)))
    if generation.endpoint_note(report):
        items.append(("note", generation.endpoint_note(report)))
    for check in informational(report):
        at = place(check)
        items.append((f"info: {check.metric}" + (f" at {at}" if at else ""),
                      f"{value(check, check.reference)} -> {value(check, check.candidate)} ({change(check)})"))  # fmt: skip
    items.extend((f"warning {index}", warning) for index, warning in enumerate(report.warnings, 1))
    items.append(("perfgate", report.perfgate_version))
    return items


def _text(text: object) -> str:
    # tabs and newlines are legal in XML, but a name holding one is not one line any more
    return safe(text)
