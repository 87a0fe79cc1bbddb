"""What a report file must hold before it is judged or shown, and what other files
perfgate writes are when they are given as a report: a tampered, truncated or foreign file
is one line naming it (exit 3), never a verdict, a traceback or Python's exit 1."""

from __future__ import annotations

import contextlib
import json
import shlex
from typing import Any, Iterator

from perfgate.errors import DataError
from perfgate.results import SIDES, Report, Verdict


class DamagedReport(ValueError):
    """A report that parses but whose contents cannot be true (see ``check_intact``)."""


def check_intact(report: Report) -> None:
    """What a report must hold to be judged or shown: a verdict's numbers are numbers, an
    interval is two of them, and a measured comparison's samples are there and are
    positive durations. A tampered or truncated report is an error, never a verdict: a
    report whose samples were zeroed once re-judged "inconclusive", exit 0."""
    for check in report.checks:
        for name in ("reference", "candidate", "ratio", "ci_level", "limit", "absolute_limit", "mann_whitney_p", "detectable"):
            value = getattr(check, name)
            if value is not None and not _is_number(value):
                raise DamagedReport(f"check {check.metric}: {name} is {value!r}, not a number")
        if check.ci is not None and (len(check.ci) != 2 or not all(_is_number(bound) for bound in check.ci)):
            raise DamagedReport(f"check {check.metric}: its interval is {check.ci!r}, not two numbers")
        for name in ("n_reference", "n_candidate", "blocks"):
            if not isinstance(getattr(check, name), int) or isinstance(getattr(check, name), bool):
                raise DamagedReport(f"check {check.metric}: {name} is {getattr(check, name)!r}, not a whole number")
    if report.error is not None and not (isinstance(report.error.exit_code, int) and not isinstance(report.error.exit_code, bool)):
        raise DamagedReport(f"its error's exit_code is {report.error.exit_code!r}, not a whole number")
    if report.error is not None and report.verdict is not Verdict.ERROR:  # which is true? neither can pass a gate
        raise DamagedReport(f"its verdict is {report.verdict.value}, yet it carries an error ({report.error.type})")
    measured = report.verdict is not Verdict.ERROR and report.run is not None and not report.parts
    if measured and not report.series and not report.generations:
        raise DamagedReport("a measured comparison with no samples (its series are missing)")
    for index, generations in enumerate(report.generations):
        for side in SIDES:
            _check_requests(generations.blocks(side), f"generations {index}: the {side}'s requests", measured)
    for series in report.series:
        for side in SIDES:
            blocks = getattr(series, side)
            if measured and (not blocks or any(block.size == 0 for block in blocks)):
                raise DamagedReport(f"batch {series.batch_size}: the {side}'s samples are missing or empty")
            if any(block.size and int(block.min()) <= 0 for block in blocks):
                raise DamagedReport(f"batch {series.batch_size}: the {side}'s samples hold zero or negative durations")
    for part in report.parts:
        check_intact(part.report)


def _check_requests(blocks: tuple, named: str, measured: bool) -> None:
    """A generative model's requests: there, whole numbers, with positive times to the first
    token and to the end and no negative gap (a served model's gaps are between its streamed
    chunks, so their count need not be its counted tokens less one)."""
    if measured and (not blocks or any(not block for block in blocks)):
        raise DamagedReport(f"{named} are missing or empty")
    for block in blocks:
        for request in block:
            whole = (request.ttft_ns, request.e2e_ns, request.tokens, *request.gaps_ns)
            if not all(isinstance(value, int) and not isinstance(value, bool) for value in whole):
                raise DamagedReport(f"{named} hold a time or count that is not a whole number")
            if request.ttft_ns <= 0 or request.e2e_ns <= 0 or any(gap < 0 for gap in request.gaps_ns):
                raise DamagedReport(f"{named} hold zero or negative durations")


@contextlib.contextmanager
def damaged(source: str) -> Iterator[None]:
    """A report that read but cannot be judged or shown is damaged: one line naming it
    (exit 3), never a traceback, never Python's exit 1."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError, ZeroDivisionError, OverflowError) as exc:
        raise DataError(f"{source} is damaged and cannot be shown: {why(exc)}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, json.JSONDecodeError) else str(exc)


def other_file(data: Any, file: str) -> str | None:
    """What another file perfgate writes is, and how to read it; None for anything else.
    A user hands these to ``perfgate report`` by mistake: a KeyError on 'verdict' or a
    schema version said nothing of which file it was."""
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "pytest-session":
        records = [item for item in data.get("measurements") or () if isinstance(item, dict)]
        comparisons = [index for index, item in enumerate(records) if isinstance(item.get("report"), dict)]
        counted = {0: "no comparison", 1: "1 comparison"}.get(len(comparisons), f"{len(comparisons)} comparisons")
        held = f"{len(records)} measurement{'s' if len(records) != 1 else ''} ({counted})"
        if not comparisons:
            return f"it is the pytest plugin's --perfgate-json record of {held}, not a comparison report; read it as JSON"
        return (f"it is the pytest plugin's --perfgate-json record of {held}, not a comparison report; each comparison's "
                f"report is its measurement's \"report\", which perfgate report reads once saved on its own: "
                f"jq '.measurements[{comparisons[0]}].report' {shlex.quote(file)} > report.json")  # fmt: skip
    if data.get("kind") == "perfgate-baseline":
        return ("it is a stored baseline (perfgate run --save), not a comparison report; "
                f"compare a model against it with perfgate compare --candidate MODEL --baseline {shlex.quote(file)}")  # fmt: skip
    if {"model", "measure_seconds", "not_estimated"} <= data.keys() and "verdict" not in data:
        return "it is perfgate calibrate's JSON (a model's noise and detectable change), not a comparison report; read it as JSON"
    return None
