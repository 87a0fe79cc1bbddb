"""The ``perfgate`` fixture: ``measure`` and ``compare`` inside a test, and their
assertions, which fail the test itself with the numbers.

Each measurement becomes an ``Entry``: what was measured, each judgement of it, and the
rows the session's summary table shows. The plugin (``pytest_plugin``) publishes a
test's entries as user properties when the test's call ends, so that they reach JUnit XML
and, under pytest-xdist, the controller.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import pytest

from perfgate.errors import PerfgateError, UsageError

NOT_ASSERTED_UNDER_XDIST = (
    "not asserted: an absolute budget, timed while other pytest-xdist workers ran tests on the same cores "
    "(--perfgate-xdist assert asserts it)"
)

ASSERTED_UNDER_XDIST = "timed while other pytest-xdist workers ran tests on the same cores; asserted (--perfgate-xdist assert)"


class PerfgateWarning(UserWarning):
    """A budget perfgate could not decide: the test passes, with this warning."""


@dataclass(frozen=True)
class Options:
    """The plugin's settings, from the command line or the ini file."""

    time_budget_s: float = 10.0
    device: str = "cpu"
    threads: int = 1
    strict: bool = False
    assert_absolute_under_xdist: bool = False  # --perfgate-xdist assert
    xdist_workers_beside: int = 0  # the other pytest-xdist workers running tests while this one measures
    config: str = ""  # --perfgate-config, from the rootdir; empty: found there
    rootdir: str = "."
    given: tuple[str, ...] = ()  # the options above given on pytest's command line: they override the config file

    def compare_defaults(self) -> dict[str, Any]:
        return {"time_budget_s": self.time_budget_s, "device": self.device, "threads": self.threads}

    def asserting(self, kind: str) -> bool:
        """Whether a judgement of a ``kind`` measurement fails its test. Beside other xdist
        workers an absolute budget times this machine under their load, so it is asserted
        only when asked; a comparison interleaves its two models, so that load hits both
        and the comparison is asserted as anywhere else."""
        return kind == "compare" or not self.xdist_workers_beside or self.assert_absolute_under_xdist


def xdist_note(workers_beside: int) -> str:
    """What a comparison made beside other pytest-xdist workers says of them."""
    others = f"{workers_beside} other pytest-xdist worker{'s' if workers_beside != 1 else ''}"
    return (f"measured while {others} ran tests on the same cores; asserted, as the two models are "
            f"interleaved and that load hit both")  # fmt: skip


@dataclass
class Entry:
    """One measurement of a test, and every judgement of it."""

    kind: str  # "measure" or "compare"
    label: str
    value: Any  # the MeasureResult, or the Report as last judged
    original: Any = None  # the Report as the comparison judged it
    rows: list[dict] = field(default_factory=list)  # the summary table's rows, of the last judgement
    checks: tuple = ()  # a measurement's last judged LimitChecks
    verdicts: list[str] = field(default_factory=list)  # each judgement's verdict
    asserted: bool = False
    note: str = ""

    @property
    def unasserted(self) -> bool:
        """Judged and not asserted: an absolute budget beside other xdist workers (the note says so)."""
        return self.kind == "measure" and bool(self.note) and not self.asserted

    @property
    def verdict(self) -> str:
        for verdict in ("fail", "inconclusive", "pass"):
            if verdict in self.verdicts:
                return verdict
        return self.value.verdict.value if self.kind == "compare" else "info"


class Perfgate:
    """The fixture: ``perfgate.measure(...)``, ``perfgate.compare(...)`` and ``perfgate.compare_configured(NAME)``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.entries: list[Entry] = []

    def __repr__(self) -> str:
        return "<perfgate fixture>"

    def measure(self, target: Any, data: str | os.PathLike | None = None, **options: Any) -> "MeasuredResult":
        """One saved model on the rows of ``data``, or a callable on ``rows``; see ``perfgate.measure``."""
        __tracebackhide__ = True
        from perfgate.engine.single import measure

        defaults: dict[str, Any] = {"time_budget_s": self.options.time_budget_s}
        if isinstance(target, (str, os.PathLike)) or not callable(target):
            defaults.update(device=self.options.device, threads=self.options.threads)
        result = _run(lambda: measure(target, data, **{**defaults, **options}))
        if result.kind == "callable":
            label = result.label
        elif result.kind == "generate":
            label = f"{os.path.basename(result.target)} ({result.max_new_tokens} new tokens)"
        else:
            label = f"{os.path.basename(result.target)} at batch {result.batch_size}"
        entry = Entry("measure", label, result, rows=_measured_rows(result))
        self.entries.append(entry)
        return MeasuredResult(result, entry, self.options)

    def compare(self, reference: Any, candidate: Any, data: Any, **options: Any) -> "ComparedResult":
        """The comparison the command line makes, with the same Report; see ``perfgate.compare``."""
        __tracebackhide__ = True
        from perfgate.engine.pipeline import compare

        defaults = self.options.compare_defaults()
        report = _run(lambda: compare(os.fspath(reference), os.fspath(candidate), os.fspath(data), **{**defaults, **options}))
        return self._compared(f"{os.path.basename(report.reference.path)} vs {os.path.basename(report.candidate.path)}", report)

    def compare_configured(self, name: str, **options: Any) -> "ComparedResult":
        """The config file's comparison ``name`` (``perfgate compare --only NAME``). Layers,
        each over the one before: the plugin's options (ini or default), the file, the
        plugin's options given on pytest's command line, ``options`` (CompareConfig keywords)."""
        __tracebackhide__ = True
        from perfgate.engine.pipeline import run_comparison
        from perfgate.judge.resolution import python_words

        config = _run(lambda: configured(self.options, name, options))
        return self._compared(name, _run(lambda: run_comparison(config, words=python_words)))

    def _compared(self, label: str, report: Any) -> "ComparedResult":
        note = xdist_note(self.options.xdist_workers_beside) if self.options.xdist_workers_beside else ""
        if note:  # in the report itself, so that its JSON and every rendering of it say so
            report = replace(report, warnings=(*report.warnings, note))
        entry = Entry("compare", label, report, original=report, rows=_report_rows(report), note=note)
        self.entries.append(entry)
        return ComparedResult(report, entry, self.options)


def configured(options: Options, name: str, overrides: dict[str, Any]) -> Any:
    """The CompareConfig of the config file's comparison ``name``, as the plugin runs it."""
    from perfgate.configfile import find

    file, _ = find(options.config or None, options.rootdir)
    if file is None:
        raise UsageError(f"no config file for compare_configured({name!r}): perfgate.toml, or [tool.perfgate] in pyproject.toml, in {options.rootdir}, or --perfgate-config PATH")
    (comparison,) = file.select([name])
    defaults = options.compare_defaults()
    given = {key: value for key, value in defaults.items() if key.removesuffix("_s") in options.given}
    return file.build(comparison, {**given, **overrides}, fallback=defaults)


class MeasuredResult:
    """A ``perfgate.MeasureResult`` (its attributes: ``p95``, ``throughput``, ``peak_rss``,
    ``blocks``, …) whose ``assert_within`` fails the test."""

    def __init__(self, result: Any, entry: Entry, options: Options) -> None:
        self.result, self._entry, self._options = result, entry, options

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def __repr__(self) -> str:
        return f"<perfgate measurement of {self.result.label}>"

    def assert_within(self, **budgets: Any) -> Any:
        """Fail the test when a budget is exceeded: ``p50``/``p95``/``p99``/``mean`` ("20ms"),
        ``peak_rss`` ("300MB"), ``throughput`` ("100/s"); a generative model's ``ttft_p95``,
        ``itl_p50``, ``e2e_p99`` ("200ms"), ``tokens_per_s`` ("100/s"). Returns the judgement."""
        __tracebackhide__ = True
        judgement, failure = judge_measurement(self._entry, self._options, budgets)
        if failure:
            pytest.fail(failure)
        return judgement


class ComparedResult:
    """The Report of a comparison (its attributes: ``verdict``, ``checks``, …), whose
    ``assert_no_regression`` fails the test."""

    def __init__(self, report: Any, entry: Entry, options: Options) -> None:
        self.report, self._entry, self._options = report, entry, options

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)

    def __repr__(self) -> str:
        return f"<perfgate comparison {self._entry.label}: {self.report.verdict.value}>"

    def assert_no_regression(self, max_latency_increase: str | float | None = None, budgets: Iterable[str] | str = ()) -> Any:
        """Fail the test when the candidate regressed: on the comparison's own budgets, or
        judged again on ``max_latency_increase`` and ``budgets`` (``'latency.p99:+25%'``).
        Returns the report as judged."""
        __tracebackhide__ = True
        report, failure = judge_comparison(self._entry, self._options, max_latency_increase, budgets)
        if failure:
            pytest.fail(failure)
        return report


def judge_measurement(entry: Entry, options: Options, budgets: dict[str, Any]) -> tuple[Any, str | None]:
    """A measurement judged on absolute budgets: the judgement, and the failure's message."""
    __tracebackhide__ = True
    result = entry.value
    judgement = _run(lambda: result.judge(**budgets))
    entry.rows, entry.checks = [_limit_row(check) for check in judgement.checks], judgement.checks
    verdict = judgement.verdict.value
    chosen = [check for check in judgement.checks if check.verdict.value == verdict]
    headline = _headline([_limit_text(check) for check in chosen], verdict, entry.label, judgement.reason)
    lines = [f"{result.label} is {'over budget' if verdict == 'fail' else 'undecided'}:", *(f"  {check.line}" for check in chosen)]
    return judgement, _conclude(entry, verdict, headline, judgement.reason, lines, options)


def judge_comparison(
    entry: Entry, options: Options, max_latency_increase: str | float | None, budgets: Iterable[str] | str
) -> tuple[Any, str | None]:
    """A comparison judged on its own budgets, or again on others: the report as judged,
    and the failure's message."""
    __tracebackhide__ = True
    report = original = entry.original
    if max_latency_increase is not None or budgets:
        from perfgate.judge.rejudge import judge_again
        from perfgate.judge.resolution import python_words

        given = [budgets] if isinstance(budgets, str) else list(budgets)
        report = _run(lambda: judge_again(original, given, max_latency_increase=max_latency_increase, words=python_words))
    entry.value, entry.rows = report, _report_rows(report)
    verdict = report.verdict.value
    chosen = [check for check in report.checks if check.verdict.value == verdict]
    compared = f"{os.path.basename(report.candidate.path)} against {os.path.basename(report.reference.path)}"
    headline = _headline([_compared_text(check) for check in chosen], verdict, compared, report.reason)
    result = "regressed against" if verdict == "fail" else "is undecided against"
    lines = [f"{report.candidate.path} {result} {report.reference.path}:", *(f"  {line}" for line in _check_lines(chosen))]
    if entry.note:
        lines.append(f"  ({entry.note})")
    return report, _conclude(entry, verdict, headline, report.reason, lines, options)


def _conclude(entry: Entry, verdict: str, headline: str, reason: str, lines: Sequence[str], options: Options) -> str | None:
    """Record a judgement; the failure's message for a failed one (an undecided one under
    strict); a warning for an undecided one. The message's first line is the one pytest's
    short summary (``-ra``) and most CI pages show: the metric, its change or value, and
    the budget; the lines after it give every check concerned with its reason."""
    entry.verdicts.append(verdict)
    if not options.asserting(entry.kind):
        entry.note = NOT_ASSERTED_UNDER_XDIST
        if verdict == "fail" or (verdict == "inconclusive" and options.strict):
            # a warning, so that pytest's last line ("3 passed, 1 warning") and its warnings
            # summary show what a green run would otherwise hide
            warnings.warn(PerfgateWarning(f"perfgate: NOT asserted beside other pytest-xdist workers, and would fail: "
                                          f"{headline} (--perfgate-xdist assert asserts it)"), stacklevel=4)  # fmt: skip
        return None
    entry.asserted = True
    if entry.kind == "measure" and options.xdist_workers_beside:
        entry.note = ASSERTED_UNDER_XDIST
    details = "\n".join(lines)
    if verdict == "fail":
        return f"perfgate: {headline}\n{details}"
    if verdict == "inconclusive":
        if options.strict:
            return f"perfgate: inconclusive, and --perfgate-strict fails it: {headline}\n{details}"
        warnings.warn(PerfgateWarning(f"perfgate: inconclusive, passed: {entry.label}: {reason}"), stacklevel=4)
    return None


def _headline(texts: Sequence[str], verdict: str, measured: str, reason: str) -> str:
    """'latency.p95 at batch 1 +38.2% over budget +15% (CI +30.1% .. +47%), and 1 more over
    budget; new.onnx against prod.onnx': the first check concerned, how many others, what
    was measured last (a narrow terminal cuts the line from its end)."""
    if not texts:
        return f"{reason}; {measured}"
    more = len(texts) - 1
    counted = f", and {more} more {'over budget' if verdict == 'fail' else 'undecided'}" if more > 0 else ""
    return f"{texts[0]}{counted}; {measured}"


def _against(verdict: str, budget: str, higher_is_better: bool) -> str:
    if verdict == "fail":
        return f"{'under' if higher_is_better else 'over'} budget {budget}"
    if verdict == "inconclusive":
        return f"undecided against budget {budget}"
    return f"within budget {budget}"


def _limit_text(check: Any) -> str:
    """'latency.p95 = 3.1 ms over budget 2ms (CI 2.9 ms .. 3.4 ms)'."""
    from perfgate.formatting import format_value

    against = _against(check.verdict.value, check.budget, check.higher_is_better)
    if check.value is None:
        return f"{check.metric} {against}: {check.reason}"
    ci = "" if check.ci is None else f" (CI {format_value(check.ci[0], check.unit)} .. {format_value(check.ci[1], check.unit)})"
    return f"{check.metric} = {format_value(check.value, check.unit)} {against}{ci}"


def _compared_text(check: Any) -> str:
    """'latency.p95 at batch 1 +38.2% over budget +15% (CI +30.1% .. +47%)'."""
    from perfgate.formatting import format_change
    from perfgate.report.summary import change, value, where

    against = _against(check.verdict.value, check.budget or "", check.higher_is_better)
    shown = change(check)
    if shown == "-":  # no ratio: a value against a threshold (the outputs' differences), or nothing measured
        if check.candidate is None:
            return f"{where(check)} {against}: {check.reason}"
        shown = f"= {value(check, check.candidate)}"
    ci = "" if check.ci is None or check.ratio is None else f" (CI {format_change(check.ci[0], 1)} .. {format_change(check.ci[1], 1)})"
    return f"{where(check)} {shown} {against}{ci}"


def _run(action: Callable[[], Any]) -> Any:
    """``action()``; a perfgate error fails the test with its one-line message, not with a
    traceback through perfgate."""
    __tracebackhide__ = True
    try:
        return action()
    except PerfgateError as exc:
        error = exc
    kind = "usage error" if isinstance(error, UsageError) else "error"
    pytest.fail(f"perfgate: {kind}: {error.message}", pytrace=True)


# --- the summary table's rows: plain strings, so that they travel as JSON -------------------


def _row(metric: str, value: str, ci: str, budget: str, verdict: str) -> dict[str, str]:
    return {"metric": metric, "value": value, "ci": ci, "budget": budget, "verdict": verdict}


def _limit_row(check: Any) -> dict[str, str]:
    from perfgate.formatting import format_value

    ci = "" if check.ci is None else f"{format_value(check.ci[0], check.unit)} .. {format_value(check.ci[1], check.unit)}"
    return _row(check.metric, format_value(check.value, check.unit), ci, check.budget, check.verdict.value)


def _measured_rows(result: Any) -> list[dict[str, str]]:
    """A measurement without a budget: its values, for information."""
    from perfgate.formatting import format_bytes, format_duration, format_rate

    if result.kind == "generate":  # a generative model: its requests' numbers
        rows = [_row(f"{family}.p{q}", format_duration(getattr(result, family)(q / 100)), "", "", "info")
                for family in ("ttft", "itl", "e2e") for q in (50, 95)]  # fmt: skip
        rate = result.tokens_per_s
        rows.append(_row("tokens_per_s", "-" if rate is None else f"{rate:.3g} tokens/s", "", "", "info"))
        if result.peak_rss is not None:
            rows.append(_row("memory.peak_rss", format_bytes(result.peak_rss), "", "", "info"))
        return rows
    rows = [_row(f"latency.p{q}", format_duration(result.latency(q / 100)), "", "", "info") for q in (50, 95, 99)]
    rows.append(_row("throughput", format_rate(result.throughput), "", "", "info"))
    if result.peak_rss is not None:
        rows.append(_row("memory.peak_rss", format_bytes(result.peak_rss), "", "", "info"))
    return rows


def _report_rows(report: Any) -> list[dict[str, str]]:
    from perfgate.judge.checks import where
    from perfgate.formatting import format_change

    rows = []
    for check in report.checks:
        value = "-" if check.ratio is None else format_change(check.ratio, 1)
        ci = "" if check.ci is None else f"{format_change(check.ci[0], 1)} .. {format_change(check.ci[1], 1)}"
        rows.append(_row(where(check), value, ci, check.budget or "", check.verdict.value))
    return rows


def _check_lines(checks: Sequence[Any]) -> list[str]:
    from perfgate.judge.checks import where
    from perfgate.metrics import family_of

    lines = []
    for check in checks:
        family = family_of(check)
        values = f"{family.format_value(check.reference, check)} -> {family.format_value(check.candidate, check)}"
        lines.append(f"{where(check)}: {values}: {check.reason}")
    return lines
