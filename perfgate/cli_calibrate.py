"""`perfgate calibrate`: a model against itself, its noise and the smallest change the
settings detect (perfgate/calibrate.py); the same exit codes as compare for errors
(2 usage, 3 runtime), 0 otherwise, also where a budget is below the noise (it says so)."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click

from perfgate.cli_errors import command_errors
from perfgate.cli_io import emit, refuse_overwriting_inputs
from perfgate.errors import EXIT_PASS, PerfgateRuntimeError, ReportPathError
from perfgate.report.text import printable

_API_TO_PARAM = {"time_budget_s": "time_budget", "reference_backend": "backend", "candidate_backend": "backend",
                 "reference": "model", "candidate": "model"}  # fmt: skip


@click.command("calibrate")
@click.option("--model", "-m", "model", required=True, metavar="MODEL", help="The model to measure against itself (as compare's --candidate).")
@click.option("--data", "--dataset", "-d", "data", required=True, metavar="PARQUET", help="Parquet file whose rows feed the model.")
@click.option("--input", "inputs", multiple=True, metavar="[NAME=]COLS", help="As compare's --input.")
@click.option("--batch-size", "batch_sizes", type=click.IntRange(min=1), multiple=True, default=(1,), show_default=True,
              help="Rows per call; repeat for several batch sizes.")  # fmt: skip
@click.option("--max-latency-increase", default="15%", show_default=True, metavar="LIMIT",
              help="The latency budget to hold the detectable change against.")  # fmt: skip
@click.option("--budget", "budgets", multiple=True, metavar="METRIC:LIMIT", help="Calibrate this metric too, against this budget (as compare's).")
@click.option("--time-budget", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to measure: the time budget compare would have.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for row sampling, block order and the bootstrap.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Use N rows drawn at random (with --seed) instead of all.")
@click.option("--confidence", type=float, default=0.95, show_default=True, help="As compare's --confidence.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help="cpu, cuda or cuda:N.")
@click.option("--backend", default=None, metavar="NAME", help="onnxruntime, torch, tensorflow, tflite or package.module:Class (default: from the path).")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Also write the calibration as JSON here.")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True, help="Output format on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks and worker logs on errors.")
@command_errors(lambda name, value: _flag(name, value), lambda *failure: _error_report(*failure))
def calibrate_command(
    model: str, data: str, inputs: Sequence[str], batch_sizes: Sequence[int], max_latency_increase: str,
    budgets: Sequence[str], time_budget: float, seed: int, threads: int, rows: int | None, confidence: float,
    device: str, backend: str | None, json_path: str | None, fmt: str, quiet: bool, debug: bool,
) -> int:  # fmt: skip
    """Measure a model against itself: per gated check, the noise and the smallest change
    the settings can detect within the time budget (a budget below it, compare leaves inconclusive)."""
    from perfgate.calibrate import calibrate, calibration_json, render_calibration
    from perfgate.progress import on_stderr

    refuse_overwriting_inputs({"--json": json_path}, {"model": (model, backend)}, {"data": data})
    plain = None if quiet else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
    with on_stderr(plain) as shown:
        calibration = calibrate(
            model, data, progress=shown, inputs=inputs, batch_sizes=batch_sizes,
            max_latency_increase=max_latency_increase, budgets=budgets, time_budget_s=time_budget, seed=seed,
            threads=threads, rows=rows, confidence=confidence, device=device, backend=backend,
        )  # fmt: skip
    text = calibration_json(calibration)
    if json_path is not None:
        _write(json_path, text + "\n")
    emit(text if fmt == "json" else render_calibration(calibration), nl=fmt == "json")
    return EXIT_PASS


def _error_report(exc: BaseException, message: str, code: int, params: dict[str, Any]) -> None:
    """An error's JSON (to --json, and to stdout with --format json), as compare's error report says it."""
    from perfgate.report.files import write_atomically

    if isinstance(exc, ReportPathError):
        return  # never over an input, nor where no report can go
    error = json.dumps({"verdict": "error", "error": {"type": type(exc).__name__, "message": message, "exit_code": code}}, indent=2)
    if params.get("fmt") == "json":
        emit(error, nl=True)
    if params.get("json_path") is not None:
        write_atomically(params["json_path"], error + "\n")


def _write(path: str, text: str) -> None:
    from perfgate.report.files import write_atomically

    try:
        write_atomically(path, text)
    except OSError as exc:
        raise PerfgateRuntimeError(f"cannot write the calibration to {path!r} (--json): {exc.strerror or exc}") from None


def _flag(name: str, value: str | None) -> str:
    """An option's API keyword as calibrate's flag, or compare's where calibrate has none."""
    flags = {param.name: next(o for o in param.opts if o.startswith("--")) for param in calibrate_command.params if param.opts}
    flag = flags.get(_API_TO_PARAM.get(name, name), f"--{name.replace('_', '-').removesuffix('-s')}")
    return flag if value is None else f"{flag} {value}"
