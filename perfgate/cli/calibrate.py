"""`perfgate calibrate`: a model against itself, its noise and the smallest change the
settings detect (perfgate/engine/calibration.py); the same exit codes as compare for errors
(2 usage, 3 runtime), 0 otherwise, also where a budget is below the noise (it says so)."""

from __future__ import annotations

import json
from typing import Any

import click

from perfgate.backends.paths import shown
from perfgate.cli.io import emit, refuse_overwriting_inputs
from perfgate.cli.params import build
from perfgate.errors import EXIT_PASS, PerfgateRuntimeError, ReportPathError
from perfgate.options import options_for, report_paths
from perfgate.report.text import printable


def _calibrate(**params: Any) -> int:
    """Measure a model against itself: per gated check, the noise and the smallest change
    the settings can detect within the time budget (a budget below it, compare leaves inconclusive)."""
    from perfgate.engine.calibration import calibrate, calibration_json, render_calibration
    from perfgate.engine.progress import on_stderr

    model, data, json_path, fmt = params["model"], params["data"], params["json_path"], params["fmt"]
    refuse_overwriting_inputs(report_paths("calibrate", params), {"model": (model, params["backend"])}, {"data": data})
    plain = None if params["quiet"] else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
    measured = {option.name: params[option.name] for option in options_for("calibrate") if not option.face and option.name not in ("model", "data")}
    with on_stderr(plain) as progress:
        calibration = calibrate(model, data, progress=progress, **measured)
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
        raise PerfgateRuntimeError(f"cannot write the calibration to {shown(path)} (--json): {exc.strerror or exc}") from None


def calibrate_command() -> click.Command:
    return build("calibrate", _calibrate, _error_report)
