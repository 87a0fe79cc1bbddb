"""``perfgate report``, ``run`` and ``merge``: each hands its options to the module that
does the work (rejudge, baseline_compare, merge) and its report to the one writer."""

from __future__ import annotations

from typing import Any

import click

from perfgate.backends.paths import shown
from perfgate.cli.io import emit, refuse_overwriting_inputs
from perfgate.cli.params import build
from perfgate.cli.reports import SAVED_ADVICE, error_reports, verdict_exit, write_reports
from perfgate.errors import EXIT_PASS, PerfgateRuntimeError
from perfgate.options import options_for, report_paths
from perfgate.report import render
from perfgate.report.json import read_report
from perfgate.report.text import printable
from perfgate.results import Verdict


def _report(path: str, **params: Any) -> int:
    """Render a saved JSON report again, or judge its samples again with other budgets;
    exits with the verdict's code, as compare does."""
    from perfgate.judge.rejudge import judge_again
    from perfgate.report.intact import damaged

    fmt, budgets, max_latency_increase = params["fmt"], params["budgets"], params["max_latency_increase"]
    report = read_report(path)
    with damaged(f"report {shown(path)}"):  # a report that reads but cannot be judged or shown is damaged, not a bug
        if budgets or max_latency_increase is not None:
            report = judge_again(report, budgets, max_latency_increase=max_latency_increase)
        text = render(report, fmt)
    emit(text, nl=fmt == "json")
    return verdict_exit(report, params["fail_on_inconclusive"], SAVED_ADVICE)


def _run(**params: Any) -> int:
    """Measure one model on its own; with --save, store it as a baseline that
    'perfgate compare --candidate C --baseline PATH' compares against later."""
    from perfgate.engine.baseline import write_baseline
    from perfgate.engine.baseline_compare import describe, measure_baseline
    from perfgate.config import check_common_options

    model, data, backend, save_path = params["model"], params["data"], params["backend"], params["save_path"]
    progress = None if params["quiet"] else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
    measured = {option.name: params[option.name] for option in options_for("run")
                if not option.face and option.name not in ("model", "data", "save_path")}  # fmt: skip
    check_common_options(**{name: measured[name] for name in ("time_budget_s", "seed", "threads", "rows", "pad_value", "call_timeout_s")})
    refuse_overwriting_inputs({"--save": save_path}, {"model": (model, backend)}, {"data": data})
    stored = measure_baseline(model, data, progress=progress, **measured)
    if save_path is not None:
        try:
            write_baseline(stored, save_path)
        except OSError as exc:
            raise PerfgateRuntimeError(f"cannot write the baseline to {save_path!r} (--save): {exc.strerror or exc}") from None
    emit(describe(stored) + (f"saved as a baseline: {save_path}" if save_path else ""))
    return EXIT_PASS


def _merge(paths: tuple[str, ...], **params: Any) -> int:
    """Merge the JSON reports of a CI matrix (one job per device or shard) into one report:
    its verdict is the worst of the parts', and a missing or errored part is an error (exit 3)."""
    from perfgate.report.merge import merge
    from perfgate.report.intact import damaged

    fmt = params["fmt"]
    files = report_paths("merge", params)
    parts = {f"part {index}": path for index, path in enumerate(paths, 1)}
    refuse_overwriting_inputs({**{flag: path for flag, path in files.items() if flag != "--output"}, "--output": files["--output"]},
                              {}, parts)  # fmt: skip
    report = merge(paths)
    if report.verdict is Verdict.ERROR:
        click.echo(f"perfgate: error: {printable(report.reason)}", err=True)
    asked = {option.report for option in options_for("merge") if option.report not in (None, "json") and params.get(option.name)}
    with damaged("the merged report"):
        rendered = {each: render(report, each) for each in {fmt, *asked}}
    write_reports(report, files, params["debug"], rendered)
    emit(rendered[fmt], nl=fmt == "json")
    return verdict_exit(report, params["fail_on_inconclusive"], SAVED_ADVICE)


def report_command() -> click.Command:
    return build("report", _report, arguments=[click.Argument(["path"], metavar="REPORT.json")])


def run_command() -> click.Command:
    return build("run", _run)


def merge_command() -> click.Command:
    return build("merge", _merge, error_reports("merge"), arguments=[click.Argument(["paths"], metavar="REPORT.json...", nargs=-1, required=True)])
