"""The one writer of report files (--json, --markdown, --junit, --html, merge's --output),
the error's report, and a verdict's exit code."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, Mapping

import click

from perfgate.backends.paths import shown
from perfgate.cli.errors import exit_code, message, say
from perfgate.cli.io import emit
from perfgate.errors import EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_REGRESSION, EXIT_RUNTIME, EXIT_USAGE, ReportPathError
from perfgate.options import all_options, report_paths, spell_for
from perfgate.report import render
from perfgate.report.text import printable
from perfgate.results import Report, Verdict

if TYPE_CHECKING:
    from perfgate.config import CompareConfig

ERROR_EXIT_CODES = (EXIT_USAGE, EXIT_RUNTIME, 130, 143)  # what an error report may say it exited with


def write_reports(
    report: Report, paths: Mapping[str, str | None], debug: bool, rendered: Mapping[str, str] | None = None, strict: bool = True
) -> None:
    """Each report file asked for (``paths``: flag -> path), in its flag's format, written
    atomically. A failure is a runtime error: said in one line, exit 3 (``strict``), or
    raised (an error's report, where the first error is the one to say)."""
    from perfgate.report.files import write_atomically
    from perfgate.report.json import write_report

    formats = {option.flag: option.report for option in all_options() if option.report}
    for flag, path in paths.items():
        if path is None:
            continue
        fmt = formats[flag]
        try:
            if fmt == "json":
                write_report(report, path)
            else:
                write_atomically(path, rendered[fmt] if rendered and fmt in rendered else render(report, fmt))
        except OSError as exc:
            if not strict:
                raise
            what = "the JSON report" if fmt == "json" else f"the {fmt} report"
            where = "" if fmt == "json" else f" ({flag})"
            click.echo(printable(f"perfgate: error: cannot write {what} to {shown(path)}{where}: {exc.strerror or exc}"), err=True)
            if debug:
                traceback.print_exc()
            sys.exit(EXIT_RUNTIME)


def fail(exc: BaseException, config: CompareConfig | None, paths: Mapping[str, str | None], fmt: str, debug: bool) -> int:
    """An error's report (to the report files asked for and, with a machine-readable
    --format, stdout), its one line, its exit code."""
    spell = spell_for("compare")
    if fmt != "text" or any(paths.values()):
        from perfgate.engine.pipeline import error_report

        report = error_report(exc, config, message=message(exc, spell))
        write_reports(report, paths, debug)
    say(exc, spell, debug)
    if fmt != "text":
        emit(render(report, fmt), nl=fmt == "json")
    return exit_code(exc)


def error_reports(command: str) -> Any:
    """``command``'s handler of a failure outside its own handling: the error's report to
    the report files it was asked for."""

    def write(exc: BaseException, text: str, code: int, params: dict[str, Any]) -> None:
        from perfgate.engine.pipeline import error_report

        if isinstance(exc, ReportPathError):
            return  # never over an input, nor where no report can go
        write_reports(error_report(exc, None, message=text), report_paths(command, params), bool(params.get("debug")), strict=False)

    return write


def verdict_exit(report: Report, fail_on_inconclusive: bool, advice: str) -> int:
    """The exit code of a verdict: 0 pass (and inconclusive, with a warning and ``advice``),
    1 fail, 4 inconclusive with --fail-on-inconclusive. A report of an error is an error
    whatever its file says: its stored code where that is an error's (2, 3, 130, 143),
    else 3, never 0 or 1 (a tampered or damaged report must not pass a gate)."""
    if report.verdict is Verdict.ERROR:
        stored = report.error.exit_code if report.error is not None else None
        return stored if stored in ERROR_EXIT_CODES else EXIT_RUNTIME
    if report.verdict is Verdict.INCONCLUSIVE:
        if fail_on_inconclusive:
            click.echo("perfgate: INCONCLUSIVE, and --fail-on-inconclusive is set: failing the build", err=True)
            return EXIT_INCONCLUSIVE
        click.echo(f"perfgate: WARNING: INCONCLUSIVE: the build passes, but no verdict was reached. {advice}", err=True)
    return EXIT_REGRESSION if report.verdict is Verdict.FAIL else EXIT_PASS


SAVED_ADVICE = (
    "A saved report's samples cannot be measured further: run the comparison again with a longer "
    "--time-budget or on a quieter machine, or pass --fail-on-inconclusive."
)


def inconclusive_advice(report: Report) -> str:
    """What would resolve an inconclusive run: more time only where time ran out."""
    run, settings = report.run, report.settings
    if run is not None and settings is not None and run.stopped_because == "time budget":
        return (f"It measured for its whole --time-budget ({settings.time_budget_s:g} s): give it more, "
                "run on a quieter machine, or pass --fail-on-inconclusive.")  # fmt: skip
    return "Run on a quieter machine, or pass --fail-on-inconclusive."
