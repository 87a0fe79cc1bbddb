"""The command line: a thin face over perfgate.compare.

Exit codes: 0 pass (and inconclusive, with a warning, unless --fail-on-inconclusive),
1 regression, 2 usage error, 3 runtime error, 4 inconclusive with --fail-on-inconclusive.
Errors are one line on stderr; --debug adds the traceback and the worker's log. Exit 1
means a regression and nothing else: a report that cannot be written (to --json or to
stdout) is exit 3.

Over 400 lines because compare's ~45 options are declared here, each with its help, and
the small commands (report, run, merge) beside it; what they do lives in the modules they
are passed to (cli_config, baseline_compare, merge; calibrate has its own cli_calibrate).
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import click

from perfgate import __version__
from perfgate.backends.paths import shown
from perfgate.errors import (
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    EXIT_REGRESSION,
    EXIT_RUNTIME,
    EXIT_USAGE,
    Interrupted,
    PerfgateError,
    PerfgateRuntimeError,
    ReportPathError,
    UsageError,
)
from perfgate.cli_calibrate import calibrate_command
from perfgate.cli_errors import command_errors, exit_code, message, say, signals_interrupt, tolerant_stderr
from perfgate.cli_io import StdoutFailed, config_files, emit, refuse_overwriting_inputs, stdout_failed
from perfgate.report import FORMATS, render
from perfgate.report.json import dumps, read_report, write_report
from perfgate.report.text import printable
from perfgate.results import Report, Verdict

if TYPE_CHECKING:
    from perfgate.config import CompareConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="perfgate")
def cli() -> None:
    """perfgate: block slow ML models before they ship.

    Times a candidate and a reference model in one run, interleaved, and decides pass,
    fail or inconclusive from a confidence interval of their latency ratio.
    """


@cli.command()
@click.option(
    "--reference", "--reference-path", "-r", "reference", metavar="MODEL",
    help="The model to compare against (e.g. main's build): a model file, a SavedModel, or a directory holding one model file. "
    "Without the three model options, the config file's comparisons run.",
)  # fmt: skip
@click.option("--candidate", "--model-path", "-c", "candidate", metavar="MODEL", help="The model under test (as --reference).")
@click.option(
    "--data", "--dataset", "-d", "data", default=None, metavar="PARQUET",
    help="Parquet file whose rows feed both models: a path or a URI (s3://bucket/key.parquet, gs://, hdfs://).",
)  # fmt: skip
@click.option(
    "--config", "config_path", default=None, metavar="PATH",
    help="Config file (default: perfgate.toml here, else pyproject.toml's [tool.perfgate]); flags override it.",
)  # fmt: skip
@click.option("--only", "only", multiple=True, metavar="NAME", help="Run only this comparison of the config file; repeatable.")
@click.option(
    "--reference-data", default=None, metavar="PARQUET",
    help="Data drift: the reference's own rows instead of --data's; with --candidate-data the report compares the data, not the models.",
)  # fmt: skip
@click.option("--candidate-data", default=None, metavar="PARQUET", help="As --reference-data, for the candidate.")
@click.option(
    "--baseline", "baseline", default=None, metavar="PATH",
    help="Compare the candidate against a stored baseline (perfgate run --save) instead of a --reference; "
    "weaker than a same-run comparison.",
)  # fmt: skip
@click.option("--allow-env-mismatch", is_flag=True, help="With --baseline: compare even where the environment differs from the baseline's.")
@click.option(
    "--input", "inputs", multiple=True, metavar="[NAME=]COLS",
    help="Feed model input NAME from COLS: a comma list of columns or globs ('features=f*'); COLS alone "
    "feeds a model's only input. Inputs without one take the column of their own name.",
)  # fmt: skip
@click.option(
    "--reference-input", "reference_inputs", multiple=True, metavar="[NAME=]COLS",
    help="As --input, for the reference model only (where the two models name their inputs differently).",
)  # fmt: skip
@click.option("--candidate-input", "candidate_inputs", multiple=True, metavar="[NAME=]COLS", help="As --reference-input, for the candidate.")
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
    "cold_start:+50%, load.p99:+20%, outputs.cosine:>=0.99.",
)  # fmt: skip
@click.option(
    "--time-budget", type=float, default=60.0, show_default=True, metavar="SECONDS",
    help="Longest time to measure before an undecided check is inconclusive.",
)  # fmt: skip
@click.option(
    "--call-timeout", type=float, default=60.0, show_default=True, metavar="SECONDS",
    help="A model whose first call takes longer, or any later step 50x its expected time plus this, is taken to hang; "
    "starting and loading may take 10x this. At least 0.001.",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for row sampling, block order and the bootstrap.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads, equal for both models.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Use N rows drawn at random (with --seed) instead of all.")
@click.option("--pad-value", type=float, default=0.0, show_default=True, help="Padding for variable-length list columns.")
@click.option("--allow-nonfinite", is_flag=True, help="Time NaN and infinite feature values instead of refusing the data.")
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
    "--cold-starts", type=click.IntRange(min=0), default=None, metavar="K",
    help="Fresh worker starts per model beyond the measuring worker's own, each timed from process start to "
    "the first inference's end (default: 3 with a cold_start budget, else 0).",
)  # fmt: skip
@click.option(
    "--instances", type=click.IntRange(min=1, max=8), default=None, metavar="K",
    help="Worker processes per model, block pairs taking turns (default: 2 for a budget within 10% of no change, else 1).",
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
    "--output-rows", type=click.IntRange(min=0), default=256, show_default=True, metavar="N",
    help="Compare both models' outputs on N rows of the first batch size, untimed (0: do not).",
)  # fmt: skip
@click.option(
    "--reference-backend", default=None, metavar="NAME",
    help="onnxruntime, torch, tensorflow, tflite or package.module:Class (default: from the path).",
)  # fmt: skip
@click.option("--candidate-backend", default=None, metavar="NAME", help="As --reference-backend, for the candidate.")
@click.option(
    "--reference-python", default=None, metavar="PATH",
    help="Run the reference's worker with this Python (another virtual environment's bin/python, other framework versions).",
)  # fmt: skip
@click.option("--candidate-python", default=None, metavar="PATH", help="As --reference-python, for the candidate.")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Also write the full report as JSON here.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format on stdout.")
@click.option("--markdown", "markdown_path", default=None, metavar="PATH", help="Also write the report as Markdown (a job summary, a PR comment).")
@click.option("--junit", "junit_path", default=None, metavar="PATH", help="Also write the report as JUnit XML, one test case per gated check.")
@click.option("--html", "html_path", default=None, metavar="PATH", help="Also write the report as a self-contained HTML page with charts.")
@click.option("--fail-on-inconclusive", is_flag=True, help="Exit 4 instead of 0 when the result is inconclusive.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks and worker logs on errors.")
@command_errors(lambda name, value: _flag(name, value), lambda *failure: _error_reports(*failure))
def compare(
    reference: str | None,
    candidate: str | None,
    data: str | None,
    config_path: str | None,
    only: Sequence[str],
    reference_data: str | None,
    candidate_data: str | None,
    baseline: str | None,
    allow_env_mismatch: bool,
    inputs: Sequence[str],
    reference_inputs: Sequence[str],
    candidate_inputs: Sequence[str],
    batch_sizes: Sequence[int],
    max_latency_increase: str,
    budgets: Sequence[str],
    time_budget: float,
    call_timeout: float,
    seed: int,
    threads: int,
    rows: int | None,
    pad_value: float,
    allow_nonfinite: bool,
    confidence: float,
    device: str,
    include_transfers: bool,
    signature: str | None,
    cold_starts: int | None,
    instances: int | None,
    concurrency: Sequence[int],
    rates: Sequence[float],
    size_column: str | None,
    memory_floor: str,
    output_rows: int,
    reference_backend: str | None,
    candidate_backend: str | None,
    reference_python: str | None,
    candidate_python: str | None,
    json_path: str | None,
    fmt: str,
    markdown_path: str | None,
    junit_path: str | None,
    html_path: str | None,
    fail_on_inconclusive: bool,
    quiet: bool,
    debug: bool,
) -> int:
    """Compare a candidate model against a reference on a Parquet dataset, or run the
    comparisons of a config file (see docs/cli.md, "Config files")."""
    from perfgate import cli_config
    from perfgate.pipeline import run_comparison
    from perfgate.progress import on_stderr

    if baseline is not None or allow_env_mismatch:
        progress = None if quiet else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
        return _compare_to_baseline(click.get_current_context(), progress)
    options = dict(
        reference=reference, candidate=candidate, data=data,
        inputs=inputs, reference_inputs=reference_inputs, candidate_inputs=candidate_inputs,
        batch_sizes=batch_sizes, max_latency_increase=max_latency_increase,
        budgets=budgets, time_budget_s=time_budget, seed=seed, threads=threads, rows=rows,
        pad_value=pad_value, confidence=confidence,
        reference_backend=reference_backend, candidate_backend=candidate_backend,
        device=device, include_transfers=include_transfers, signature=signature,
        cold_starts=cold_starts, concurrency=concurrency, rates=rates, size_column=size_column,
        memory_floor=memory_floor, allow_nonfinite=allow_nonfinite, output_rows=output_rows,
        call_timeout_s=call_timeout, instances=instances,
        reference_python=reference_python, candidate_python=candidate_python,
        reference_data=reference_data, candidate_data=candidate_data,
    )  # fmt: skip
    outputs = {"markdown": markdown_path, "junit": junit_path, "html": html_path}
    paths = {"json": json_path, **outputs}
    given_models = {side: (options[side], options[f"{side}_backend"]) for side in ("reference", "candidate")}
    try:
        refuse_overwriting_inputs(_report_paths(json_path, outputs), given_models, {**_data_files(options), **config_files(config_path)})
    except UsageError as exc:
        return _fail(exc, None, None, {}, fmt, debug)  # the report would replace an input: write none
    try:
        runs, _, notes = cli_config.plan(click.get_current_context(), config_path, only, options, _flag)
        cli_config.check_outputs(fmt, runs)
    except (PerfgateError, Exception) as exc:  # noqa: B014 (a usage error before anything runs)
        return _fail(exc, None, json_path, outputs, fmt, debug)
    several = len(runs) > 1
    try:
        for run in runs:  # every report path of every comparison, before the first one measures
            named = {key: cli_config.report_path(path, run.name, several) for key, path in paths.items()}
            models = {side: (getattr(run.config, side), getattr(run.config, f"{side}_backend")) for side in ("reference", "candidate")}
            files = {**_data_files(vars(run.config)), **config_files(config_path)}
            refuse_overwriting_inputs(_report_paths(named.pop("json"), named), models, files)
    except UsageError as exc:
        return _fail(exc, None, None, {}, fmt, debug)
    for note in notes:
        click.echo(f"perfgate: warning: {printable(note)}", err=True)

    def run_one(config: CompareConfig, named: Mapping[str, str | None], name: str) -> tuple[Report | None, int]:
        prefix = f"[{name}] " if several else ""
        progress = None if quiet else (lambda message: click.echo(f"perfgate: {prefix}{printable(message)}", err=True))
        json_out, files = named["json"], {key: named[key] for key in outputs}
        try:
            for warning in config.warnings():
                click.echo(f"perfgate: warning: {prefix}{printable(warning)}", err=True)
            with signals_interrupt(), on_stderr(progress) as shown:
                report = run_comparison(config, progress=shown)
        except (PerfgateError, Exception, Interrupted) as exc:  # noqa: B014 (PerfgateError first for readers)
            return None, _fail(exc, config, json_out, files, fmt, debug)
        _write_json(report, json_out, debug)
        _write_outputs(report, files, debug)
        return report, _verdict_exit(report, fail_on_inconclusive, _inconclusive_advice(report))

    def show(name: str, report: Report, index: int, count: int) -> None:
        if count > 1:
            gap = "\n" if index > 1 else ""
            emit(f"{gap}## {name}\n" if fmt == "markdown" else f"{gap}== {name} ({index} of {count}) ==")
        emit(render(report, fmt), nl=fmt == "json")

    return cli_config.run_all(runs, paths, run_one, show)


def _data_files(options: Mapping[str, Any]) -> dict[str, str | None]:
    """A comparison's data files by role, as the guard against overwriting inputs names them."""
    return {"data": options.get("data"), "reference data": options.get("reference_data"), "candidate data": options.get("candidate_data")}


def _compare_to_baseline(ctx: click.Context, progress: Callable[[str], None] | None) -> int:
    """compare --baseline: the candidate measured now against a stored baseline
    (perfgate.baseline_compare), its report written as a same-run comparison's is."""
    from perfgate.baseline_compare import compare_with_baseline, options_from

    params = ctx.params
    outputs = {"markdown": params["markdown_path"], "junit": params["junit_path"], "html": params["html_path"]}
    models = {"candidate": (params["candidate"], params["candidate_backend"])}
    files = {"baseline": params["baseline"], "data": params["data"] or _baseline_data(params["baseline"]),
             **config_files(params["config_path"])}  # fmt: skip
    try:
        refuse_overwriting_inputs(_report_paths(params["json_path"], outputs), models, files)
    except UsageError as exc:
        return _fail(exc, None, None, {}, params["fmt"], params["debug"])  # the report would replace an input: write none
    try:
        given = {name for name in params if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
        with signals_interrupt():
            report = compare_with_baseline(**options_from(params, given), progress=progress)
    except (PerfgateError, Exception, Interrupted) as exc:  # noqa: B014
        return _fail(exc, None, params["json_path"], outputs, params["fmt"], params["debug"])
    _write_json(report, params["json_path"], params["debug"])
    _write_outputs(report, outputs, params["debug"])
    emit(render(report, params["fmt"]), nl=params["fmt"] == "json")
    return _verdict_exit(report, params["fail_on_inconclusive"], _inconclusive_advice(report))


def _baseline_data(path: str | None) -> str | None:
    """The data file a baseline names (compare --baseline without --data reads it), or
    None where the baseline cannot be read (the comparison says why)."""
    from perfgate.baseline import read_baseline

    try:
        return read_baseline(path).data.path if path else None
    except (PerfgateError, Exception):  # noqa: B014
        return None


def _fail(
    exc: BaseException, config: CompareConfig | None, json_path: str | None, outputs: dict[str, str | None], fmt: str, debug: bool
) -> int:
    """An error's report (to --json, the other report files and, with a machine-readable
    --format, stdout), its one line, its exit code."""
    if json_path is not None or fmt != "text" or any(outputs.values()):
        from perfgate.pipeline import error_report

        report = error_report(exc, config, message=message(exc, _flag))
        _write_json(report, json_path, debug)
        _write_outputs(report, outputs, debug)
    say(exc, _flag, debug)
    if fmt != "text":
        emit(render(report, fmt), nl=fmt == "json")
    return exit_code(exc)


def _error_reports(exc: BaseException, text: str, code: int, params: dict[str, Any]) -> None:
    """What a command that failed outside its own handling writes: the error's JSON report
    to --json/--output and its other report files, where it was asked for them."""
    from perfgate.pipeline import error_report

    if isinstance(exc, ReportPathError):
        return  # never over an input, nor where no report can go
    report = error_report(exc, None, message=text)
    for key in ("json_path", "output"):
        if params.get(key):
            write_report(report, params[key])
    from perfgate.report.files import write_atomically

    for fmt in ("markdown", "junit", "html"):
        if params.get(f"{fmt}_path"):
            write_atomically(params[f"{fmt}_path"], render(report, fmt))


def _report_paths(json_path: str | None, outputs: dict[str, str | None]) -> dict[str, str | None]:
    """Every report file asked for, by its flag."""
    return {"--json": json_path, **{f"--{fmt}": path for fmt, path in outputs.items()}}


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
@command_errors(lambda name, value: _flag(name, value))
def report_command(
    path: str, fmt: str, budgets: Sequence[str], max_latency_increase: str | None, fail_on_inconclusive: bool, debug: bool
) -> int:
    """Render a saved JSON report again, or judge its samples again with other budgets;
    exits with the verdict's code, as compare does."""
    from perfgate.rejudge import judge_again
    from perfgate.report.intact import damaged

    report = read_report(path)
    rejudged = bool(budgets) or max_latency_increase is not None
    with damaged(f"report {path!r}"):  # a report that reads but cannot be judged or shown is damaged, not a bug
        if rejudged:
            report = judge_again(report, budgets, max_latency_increase=max_latency_increase)
        text = render(report, fmt)
    emit(text, nl=fmt == "json")
    return _verdict_exit(report, fail_on_inconclusive, _SAVED_ADVICE)


@cli.command("run")
@click.option("--model", "-m", "model", required=True, metavar="MODEL", help="The model to measure, as compare's --candidate.")
@click.option("--data", "--dataset", "-d", "data", required=True, metavar="PARQUET", help="Parquet file whose rows feed it.")
@click.option("--input", "inputs", multiple=True, metavar="[NAME=]COLS", help="As compare's --input.")
@click.option("--batch-size", "batch_sizes", type=click.IntRange(min=1), multiple=True, default=(1,), show_default=True,
              help="Rows per call; repeat for several batch sizes.")  # fmt: skip
@click.option("--time-budget", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="Longest time to measure, shared between the batch sizes.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for row sampling.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Use N rows drawn at random (with --seed) instead of all.")
@click.option("--pad-value", type=float, default=0.0, show_default=True, help="Padding for variable-length list columns.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help="cpu, cuda or cuda:N.")
@click.option("--backend", default=None, metavar="NAME", help="As compare's --candidate-backend.")
@click.option("--save", "save_path", default=None, metavar="PATH",
              help="Store the samples and the environment's fingerprint here, a baseline for compare --baseline.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks and worker logs on errors.")
@command_errors(lambda name, value: _flag(name, value))
def run_command(
    model: str, data: str, inputs: Sequence[str], batch_sizes: Sequence[int], time_budget: float, seed: int, threads: int,
    rows: int | None, pad_value: float, device: str, backend: str | None, save_path: str | None, quiet: bool, debug: bool,
) -> int:  # fmt: skip
    """Measure one model on its own; with --save, store it as a baseline that
    'perfgate compare --candidate C --baseline PATH' compares against later."""
    from perfgate.baseline import write_baseline
    from perfgate.baseline_compare import describe, measure_baseline
    from perfgate.config import check_common_options

    progress = None if quiet else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
    check_common_options(time_budget_s=time_budget, seed=seed, threads=threads, rows=rows, pad_value=pad_value)
    refuse_overwriting_inputs({"--save": save_path}, {"model": (model, backend)}, {"data": data})
    stored = measure_baseline(model, data, inputs=inputs, batch_sizes=batch_sizes, rows=rows, seed=seed,
                              threads=threads, device=device, backend=backend, time_budget_s=time_budget,
                              pad_value=pad_value, progress=progress)  # fmt: skip
    if save_path is not None:
        try:
            write_baseline(stored, save_path)
        except OSError as exc:
            raise PerfgateRuntimeError(f"cannot write the baseline to {shown(save_path)} (--save): {exc.strerror or exc}") from None
    emit(describe(stored) + (f"saved as a baseline: {save_path}" if save_path else ""))
    return EXIT_PASS


@cli.command("merge")
@click.argument("paths", metavar="REPORT.json...", nargs=-1, required=True)
@click.option("--output", "-o", "output", default=None, metavar="PATH", help="Write the merged report as JSON here.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format on stdout.")
@click.option("--markdown", "markdown_path", default=None, metavar="PATH", help="Also write the merged report as Markdown.")
@click.option("--junit", "junit_path", default=None, metavar="PATH", help="Also write it as JUnit XML, one test suite per part.")
@click.option("--html", "html_path", default=None, metavar="PATH", help="Also write it as a self-contained HTML page.")
@click.option("--fail-on-inconclusive", is_flag=True, help="Exit 4 instead of 0 when the merged verdict is inconclusive.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@command_errors(lambda name, value: _flag(name, value))
def merge_command(
    paths: Sequence[str], output: str | None, fmt: str, markdown_path: str | None, junit_path: str | None,
    html_path: str | None, fail_on_inconclusive: bool, debug: bool,
) -> int:  # fmt: skip
    """Merge the JSON reports of a CI matrix (one job per device or shard) into one report:
    its verdict is the worst of the parts', and a missing or errored part is an error (exit 3)."""
    from perfgate.merge import merge
    from perfgate.report.intact import damaged

    outputs = {"markdown": markdown_path, "junit": junit_path, "html": html_path}
    parts = {f"part {index}": path for index, path in enumerate(paths, 1)}
    refuse_overwriting_inputs({**_report_paths(None, outputs), "--output": output}, {}, parts)
    report = merge(paths)
    if report.verdict is Verdict.ERROR:
        click.echo(f"perfgate: error: {printable(report.reason)}", err=True)
    with damaged("the merged report"):
        rendered = {fmt_: render(report, fmt_) for fmt_ in {fmt, *(key for key, path in outputs.items() if path)}}
    _write_json(report, output, debug)
    _write_outputs(report, outputs, debug, rendered)
    emit(rendered[fmt], nl=fmt == "json")
    return _verdict_exit(report, fail_on_inconclusive, _SAVED_ADVICE)


cli.add_command(calibrate_command)


def _verdict_exit(report: Report, fail_on_inconclusive: bool, advice: str) -> int:
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


ERROR_EXIT_CODES = (EXIT_USAGE, EXIT_RUNTIME, 130, 143)  # what an error report may say it exited with

_SAVED_ADVICE = (
    "A saved report's samples cannot be measured further: run the comparison again with a longer "
    "--time-budget or on a quieter machine, or pass --fail-on-inconclusive."
)


def _inconclusive_advice(report: Report) -> str:
    """What would resolve an inconclusive run: more time only where time ran out."""
    run, settings = report.run, report.settings
    if run is not None and settings is not None and run.stopped_because == "time budget":
        return (f"It measured for its whole --time-budget ({settings.time_budget_s:g} s): give it more, "
                "run on a quieter machine, or pass --fail-on-inconclusive.")  # fmt: skip
    return "Run on a quieter machine, or pass --fail-on-inconclusive."


def _write_json(report: Report, path: str | None, debug: bool) -> None:
    if path is None:
        return
    try:
        write_report(report, path)
    except OSError as exc:
        click.echo(printable(f"perfgate: error: cannot write the JSON report to {shown(path)}: {exc.strerror or exc}"), err=True)
        if debug:
            traceback.print_exc()
        sys.exit(EXIT_RUNTIME)


def _write_outputs(report: Report, paths: dict[str, str | None], debug: bool, rendered: Mapping[str, str] | None = None) -> None:
    """--markdown, --junit, --html: each written atomically; a failure is a runtime error (exit 3)."""
    from perfgate.report.files import write_atomically

    for fmt, path in paths.items():
        if path is None:
            continue
        try:
            write_atomically(path, rendered[fmt] if rendered and fmt in rendered else render(report, fmt))
        except OSError as exc:
            click.echo(printable(f"perfgate: error: cannot write the {fmt} report to {path!r} (--{fmt}): {exc.strerror or exc}"), err=True)
            if debug:
                traceback.print_exc()
            sys.exit(EXIT_RUNTIME)


def _flag(name: str, value: str | None) -> str:
    """An option's API keyword as compare's flag ('time_budget_s' -> '--time-budget')."""
    flags = {param.name: next(o for o in param.opts if o.startswith("--")) for param in compare.params if param.opts}
    flag = flags.get(_API_TO_PARAM.get(name, name), f"--{name.replace('_', '-')}")
    return flag if value is None else f"{flag} {value}"


_API_TO_PARAM = {"time_budget_s": "time_budget", "call_timeout_s": "call_timeout"}  # where the keyword and the click parameter differ


def _parse_error(exc: click.exceptions.UsageError, args: Sequence[str]) -> int:
    """A command-line error click found before the command ran: one line, and for compare
    the error report that --json and --format json still ask for."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    error = UsageError(f"{exc.format_message()}{where}")
    raw = _raw_compare_options(args)
    models = {"reference": (raw.get("reference") or "", None), "candidate": (raw.get("candidate") or "", None)}
    try:
        refuse_overwriting_inputs({"--json": raw.get("json_path")}, models, {"data": raw.get("data")})
    except UsageError as refusal:
        return _fail(refusal, None, None, {}, _known_format(raw.get("fmt")), False)
    return _fail(error, None, raw.get("json_path"), {}, _known_format(raw.get("fmt")), False)


def _known_format(fmt: str | None) -> str:
    """A --format click refused is no format to write the error's report in."""
    return fmt if fmt in FORMATS else "text"


def _raw_compare_options(args: Sequence[str]) -> dict[str, str]:
    """compare's options as written, unconverted and unchecked, with unknown ones skipped:
    what a command line click refused still says about where its report goes."""
    if not args or args[0] != "compare":
        return {}
    parser = compare.make_parser(click.Context(compare, info_name="compare", resilient_parsing=True))
    parser.ignore_unknown_options = True
    try:
        options, _, _ = parser.parse_args(list(args[1:]))
    except click.exceptions.UsageError:  # an option without its value: nothing to go on
        return {}
    return {key: value for key, value in options.items() if isinstance(value, str)}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(argv) if argv is not None else sys.argv[1:]
    saved_stderr = sys.stderr
    tolerant_stderr()  # a message that cannot be written never changes the exit code
    try:
        code = _main(args)
    finally:
        sys.stderr = saved_stderr
    sys.exit(code or 0)


def _main(args: list[str]) -> int:
    if sys.stdout is None:  # started with stdout closed (>&-): no report could be shown
        click.echo("perfgate: error: stdout is closed: nothing can take the report (redirect it to /dev/null instead)", err=True)
        return EXIT_RUNTIME
    try:
        try:
            code = cli.main(args=args, prog_name="perfgate", standalone_mode=False)
        except click.exceptions.NoArgsIsHelpError as exc:
            emit(exc.ctx.get_help() if exc.ctx else str(exc))
            code = EXIT_USAGE
        except click.exceptions.UsageError as exc:
            code = _parse_error(exc, args)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("perfgate: interrupted", err=True)
            code = 130
        sys.stdout.flush()
    except StdoutFailed as exc:
        code = stdout_failed(str(exc))
    except OSError as exc:  # click's own output (--help, --version): the commands catch their errors
        code = stdout_failed(exc.strerror or str(exc))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_RUNTIME
    except Exception as exc:  # noqa: BLE001 (never Python's exit 1, which means a regression)
        say(exc, _flag)
        code = EXIT_RUNTIME
    return code


if __name__ == "__main__":
    main()
