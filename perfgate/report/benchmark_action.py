"""github-action-benchmark's custom formats: ``customSmallerIsBetter`` (latency, memory,
cold start, slopes) and ``customBiggerIsBetter`` (throughput), one file each, as that
action's ``tool`` input names them.

Each check whose direction matches is one entry, named as the reports name it, holding
the candidate's value in the check's unit; ``range`` is the interval of the change and
``extra`` the reference's value, the change, the budget and the verdict, which that
action shows beside the number.
"""

from __future__ import annotations

import json

from perfgate.report.summary import change, interval, measured, safe, value, where
from perfgate.results import Report


def render_smaller_is_better(report: Report) -> str:
    return _entries(report, higher_is_better=False)


def render_bigger_is_better(report: Report) -> str:
    return _entries(report, higher_is_better=True)


def _entries(report: Report, *, higher_is_better: bool) -> str:
    entries = []
    for check in measured(report):
        if check.higher_is_better is not higher_is_better:
            continue
        entry = {"name": safe(where(check)), "unit": check.unit, "value": float(check.candidate)}
        if check.ci is not None:
            entry["range"] = interval(check)
        entry["extra"] = safe(
            f"reference {value(check, check.reference)}, change {change(check)}, "
            f"budget {check.budget or 'none'}, verdict {check.verdict.value}"
        )
        entries.append(entry)
    return json.dumps(entries, indent=1, allow_nan=False) + "\n"
