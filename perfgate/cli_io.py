"""Where the faces write, and what they never do there: a report never replaces one of the
comparison's inputs, and stdout that takes nothing is an error of its own (exit 3), never
mistaken for the verdict's exit code."""

from __future__ import annotations

import os
import sys
from typing import Mapping

import click

from perfgate.backends import model_file
from perfgate.errors import EXIT_RUNTIME, PerfgateError, UsageError


class StdoutFailed(Exception):
    """stdout could not take the report (a full disk, a closed pipe): exit 3, never the verdict's code."""


def emit(text: str, nl: bool = True) -> None:
    try:
        click.echo(text, nl=nl)
        sys.stdout.flush()
    except OSError as exc:
        raise StdoutFailed(exc.strerror or str(exc)) from exc


def stdout_failed(reason: str) -> int:
    """Say so in one line, and give the exit code (3)."""
    click.echo(f"perfgate: error: cannot write to stdout: {reason}", err=True)
    # stdout is gone: point it at /dev/null so that the interpreter's last flush cannot fail too
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_RUNTIME


def refuse_overwriting_inputs(
    reports: Mapping[str, str | None], models: Mapping[str, tuple[str, str | None]], data: str | Mapping[str, str | None]
) -> None:
    """A usage error when a report path (``reports``: flag -> path) names a file that is one
    of the comparison's inputs (the data, a model file, or a file inside a SavedModel),
    through symlinks and model directories; ``data``: the data file, or role -> file."""
    chosen = {flag: path for flag, path in reports.items() if path is not None}
    if not chosen:
        return
    inputs = dict(data) if isinstance(data, Mapping) else {"data": data}
    for side, (path, backend) in models.items():
        try:
            inputs[side] = model_file(path, backend)
        except PerfgateError:  # not resolvable: the comparison says why; the directory itself is guarded
            inputs[side] = path
    for flag, report_path in chosen.items():
        report = os.path.realpath(report_path)
        for role, path in inputs.items():
            if not path:
                continue
            real = os.path.realpath(path)
            if report == real or _same_file(report, real):
                where = "is"
            elif os.path.isdir(real) and os.path.commonpath([real, report]) == real:
                where = "is inside"  # a SavedModel's files
            else:
                continue
            raise UsageError(f"{flag} {report_path!r} {where} the {role} {path!r}: the report would replace it; write it elsewhere")


def _same_file(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
