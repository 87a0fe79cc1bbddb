"""The command line: a thin face over perfgate.compare.

Exit codes: 0 pass (and inconclusive, with a warning, unless --fail-on-inconclusive),
1 regression, 2 usage error, 3 runtime error, 4 inconclusive with --fail-on-inconclusive.
Errors are one line on stderr; --debug adds the traceback and the worker's log.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Sequence

import click

from perfgate import __version__
from perfgate.errors import (
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    EXIT_REGRESSION,
    EXIT_RUNTIME,
    EXIT_USAGE,
    Interrupted,
    PerfgateError,
)
from perfgate.report import FORMATS, render
from perfgate.report.json import dumps, read_report
from perfgate.results import Report, Verdict


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="perfgate")
def cli() -> None:
    """perfgate: block slow ML models before they ship.

    Times a candidate and a reference model in one run, interleaved, and decides pass,
    fail or inconclusive from a confidence interval of their latency ratio.
    """


@cli.command()
@click.option("--reference", "-r", required=True, metavar="MODEL", help="The model to compare against (e.g. main's build).")
@click.option("--candidate", "-c", required=True, metavar="MODEL", help="The model under test.")
@click.option("--data", "-d", required=True, metavar="PARQUET", help="Parquet file whose rows feed both models.")
@click.option(
    "--input", "inputs", multiple=True, metavar="NAME=COLS",
    help="Feed model input NAME from COLS: a comma list of columns or globs ('features=f*'). "
    "Inputs without one take the column of their own name.",
)  # fmt: skip
@click.option(
    "--batch-size", "batch_sizes", type=click.IntRange(min=1), multiple=True, default=(1,), show_default=True,
    help="Rows per call; repeat for several batch sizes.",
)  # fmt: skip
@click.option(
    "--max-latency-increase", default="15%", show_default=True, metavar="LIMIT",
    help="Budget for latency.p50 and latency.p95: 15%, +15% or the ratio 1.15.",
)  # fmt: skip
@click.option(
    "--budget", "budgets", multiple=True, metavar="METRIC:LIMIT",
    help="Add or override a budget, e.g. latency.p95:+10%, throughput:-10%, memory.peak_rss:+10%, "
    "cold_start:+50%, load.p99:+20%.",
)  # fmt: skip
@click.option(
    "--time-budget", type=float, default=60.0, show_default=True, metavar="SECONDS",
    help="Longest time to measure before an undecided check is inconclusive.",
)  # fmt: skip
@click.option(
    "--call-timeout", type=float, default=60.0, show_default=True, metavar="SECONDS",
    help="A model whose first call takes longer, or any later step 50x its expected time plus this, is taken to hang.",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for row sampling, block order and the bootstrap.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads, equal for both models.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Use N rows drawn at random (with --seed) instead of all.")
@click.option("--pad-value", type=float, default=0.0, show_default=True, help="Padding for variable-length list columns.")
@click.option(
    "--confidence", type=float, default=0.95, show_default=True,
    help="1 - the gate's total false-pass/false-fail rate over all checks and looks.",
)  # fmt: skip
@click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE",
    help="cpu, cuda or cuda:N, for both models; never falls back to the CPU.",
)  # fmt: skip
@click.option(
    "--include-transfers", is_flag=True,
    help="On a GPU, time the host-to-device input copies and device-to-host output copies too.",
)  # fmt: skip
@click.option("--signature", default=None, metavar="NAME", help="SavedModel/TFLite signature (default: serving_default).")
@click.option(
    "--cold-starts", type=click.IntRange(min=0), default=3, show_default=True, metavar="K",
    help="Fresh worker starts per model, timed from process start to the first inference's end (0: none).",
)  # fmt: skip
@click.option(
    "--concurrency", "concurrency", type=click.IntRange(min=1), multiple=True, metavar="N",
    help="Latency under load: N clients in a closed loop; repeatable.",
)  # fmt: skip
@click.option(
    "--rate", "rates", type=click.FloatRange(min=0, min_open=True), multiple=True, metavar="QPS",
    help="Latency under load: Poisson arrivals at QPS requests per second; repeatable.",
)  # fmt: skip
@click.option("--size-column", default=None, metavar="COL", help="Latency against input size: a column such as a token count.")
@click.option(
    "--memory-floor", default="5MiB", show_default=True, metavar="SIZE",
    help="Memory changes smaller than this never fail a memory budget.",
)  # fmt: skip
@click.option(
    "--reference-backend", default=None, metavar="NAME",
    help="onnxruntime, torch, tensorflow, tflite or package.module:Class (default: from the path).",
)  # fmt: skip
@click.option("--candidate-backend", default=None, metavar="NAME", help="As --reference-backend, for the candidate.")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Also write the full report as JSON here.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format on stdout.")
@click.option("--fail-on-inconclusive", is_flag=True, help="Exit 4 instead of 0 when the result is inconclusive.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks and worker logs on errors.")
def compare(
    reference: str,
    candidate: str,
    data: str,
    inputs: Sequence[str],
    batch_sizes: Sequence[int],
    max_latency_increase: str,
    budgets: Sequence[str],
    time_budget: float,
    call_timeout: float,
    seed: int,
    threads: int,
    rows: int | None,
    pad_value: float,
    confidence: float,
    device: str,
    include_transfers: bool,
    signature: str | None,
    cold_starts: int,
    concurrency: Sequence[int],
    rates: Sequence[float],
    size_column: str | None,
    memory_floor: str,
    reference_backend: str | None,
    candidate_backend: str | None,
    json_path: str | None,
    fmt: str,
    fail_on_inconclusive: bool,
    quiet: bool,
    debug: bool,
) -> int:
    """Compare a candidate model against a reference on a Parquet dataset."""
    from perfgate.config import CompareConfig
    from perfgate.pipeline import error_report, run_comparison

    progress = None if quiet else (lambda message: click.echo(f"perfgate: {message}", err=True))
    config = None
    try:
        config = CompareConfig.from_options(
            reference, candidate, data,
            inputs=inputs, batch_sizes=batch_sizes, max_latency_increase=max_latency_increase,
            budgets=budgets, time_budget_s=time_budget, seed=seed, threads=threads, rows=rows,
            pad_value=pad_value, confidence=confidence,
            reference_backend=reference_backend, candidate_backend=candidate_backend,
            device=device, include_transfers=include_transfers, signature=signature,
            cold_starts=cold_starts, concurrency=concurrency, rates=rates, size_column=size_column,
            memory_floor=memory_floor, call_timeout_s=call_timeout,
        )  # fmt: skip
        with _signals_interrupt():
            report = run_comparison(config, progress=progress)
    except (PerfgateError, Exception, Interrupted) as exc:  # noqa: B014 (PerfgateError first for readers)
        report = error_report(exc, config, message=_in_cli_words(exc))
        _write_json(report, json_path, debug)
        if fmt == "json":
            click.echo(dumps(report))
        _say_error(exc, debug)
        return exc.exit_code if isinstance(exc, (PerfgateError, Interrupted)) else EXIT_RUNTIME

    _write_json(report, json_path, debug)
    click.echo(render(report, fmt), nl=fmt == "json")
    return _verdict_exit(report, fail_on_inconclusive)


@cli.command("report")
@click.argument("path", metavar="REPORT.json")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--budget", "budgets", multiple=True, metavar="METRIC:LIMIT",
    help="Judge the saved samples again with this budget (replaces the report's budget for that metric, or adds one).",
)  # fmt: skip
@click.option(
    "--max-latency-increase", default=None, metavar="LIMIT",
    help="Judge again with the default budgets at this limit instead of the report's own.",
)  # fmt: skip
@click.option("--fail-on-inconclusive", is_flag=True, help="Exit 4 instead of 0 when the verdict is inconclusive.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def report_command(
    path: str, fmt: str, budgets: Sequence[str], max_latency_increase: str | None, fail_on_inconclusive: bool, debug: bool
) -> int:
    """Render a saved JSON report again, or judge its samples again with other budgets;
    exits with the verdict's code, as compare does."""
    from perfgate.rejudge import judge_again

    try:
        report = read_report(path)
        if budgets or max_latency_increase is not None:
            report = judge_again(report, budgets, max_latency_increase=max_latency_increase)
    except PerfgateError as exc:
        _say_error(exc, debug)
        return exc.exit_code
    click.echo(render(report, fmt), nl=fmt == "json")
    return _verdict_exit(report, fail_on_inconclusive)


def _verdict_exit(report: Report, fail_on_inconclusive: bool) -> int:
    """The exit code of a verdict: 0 pass (and inconclusive, with a warning), 1 fail, 4
    inconclusive with --fail-on-inconclusive; a report of an error keeps its error's code."""
    if report.verdict is Verdict.ERROR:
        return report.error.exit_code if report.error is not None else EXIT_RUNTIME
    if report.verdict is Verdict.INCONCLUSIVE:
        if fail_on_inconclusive:
            click.echo("perfgate: INCONCLUSIVE, and --fail-on-inconclusive is set: failing the build", err=True)
            return EXIT_INCONCLUSIVE
        click.echo(
            "perfgate: WARNING: INCONCLUSIVE: the build passes, but no verdict was reached. "
            "Give it more --time-budget, run on a quieter machine, or pass --fail-on-inconclusive.",
            err=True,
        )
    return EXIT_REGRESSION if report.verdict is Verdict.FAIL else EXIT_PASS


def _write_json(report: Report, path: str | None, debug: bool) -> None:
    if path is None:
        return
    try:
        Path(path).write_text(dumps(report) + "\n")
    except OSError as exc:
        click.echo(f"perfgate: error: cannot write the JSON report to {path!r}: {exc.strerror or exc}", err=True)
        if debug:
            traceback.print_exc()
        sys.exit(EXIT_RUNTIME)


def _flag(name: str, value: str | None) -> str:
    """An option's API keyword as compare's flag ('time_budget_s' -> '--time-budget')."""
    flags = {param.name: max(param.opts, key=len) for param in compare.params if param.opts}
    flag = flags.get(_API_TO_PARAM.get(name, name), f"--{name.replace('_', '-')}")
    return flag if value is None else f"{flag} {value}"


_API_TO_PARAM = {"time_budget_s": "time_budget", "call_timeout_s": "call_timeout"}  # where the keyword and the click parameter differ


@contextlib.contextmanager
def _signals_interrupt():
    """SIGINT and SIGTERM (a CI runner's cancel or timeout) raise Interrupted, so that the
    run unwinds: its workers are stopped, and the error report is written. A second signal
    while that happens (a moment) is ignored, so that it completes."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {name: signal.signal(name, interrupt) for name in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def _in_cli_words(exc: BaseException) -> str:
    if isinstance(exc, PerfgateError):
        return exc.in_words(_flag)
    if isinstance(exc, Interrupted):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"


def _say_error(exc: BaseException, debug: bool) -> None:
    if isinstance(exc, Interrupted):
        click.echo(f"perfgate: error: {exc.message}", err=True)
    elif isinstance(exc, PerfgateError):
        click.echo(f"perfgate: error: {_in_cli_words(exc)}", err=True)
        if debug:
            traceback.print_exception(exc)
            if exc.details:
                click.echo(exc.details, err=True)
    else:
        click.echo(f"perfgate: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        if debug:
            traceback.print_exception(exc)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="perfgate", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        code = EXIT_USAGE
    except click.exceptions.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"perfgate: error: {exc.format_message()}{where}", err=True)
        code = EXIT_USAGE
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("perfgate: interrupted", err=True)
        code = 130
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
