"""Where the faces write, and what they never do there: a report never replaces one of the
comparison's inputs, and stdout that takes nothing is an error of its own (exit 3), never
mistaken for the verdict's exit code."""

from __future__ import annotations

import os
import sys
from types import MappingProxyType
from typing import Mapping

import click

from perfgate.backends.paths import shown
from perfgate.backends import model_file
from perfgate.errors import EXIT_RUNTIME, PerfgateError, PerfgateRuntimeError, ReportPathError
from perfgate.report.files import check_writable, is_special, same_file


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
    reports: Mapping[str, str | None],
    models: Mapping[str, tuple[str | None, str | None]] = MappingProxyType({}),
    files: Mapping[str, str | None] = MappingProxyType({}),
) -> None:
    """The one check every command makes before it measures or writes anything: a usage
    error when a report path (``reports``: flag -> path) names a file the command reads
    (``models``: role -> (path, backend), resolved to the model file, a SavedModel's
    directory guarded whole; ``files``: role -> path, such as the data, a config file, a
    baseline, the reports a merge reads), through symlinks, hard links and other
    spellings; when two report flags name the same file; or when a report path cannot
    take a report at all (a directory, a folder that is a file, no write permission).
    Checked before measuring, so that no run is measured and then thrown away."""
    chosen = {flag: path for flag, path in reports.items() if path is not None}
    if not chosen:
        return
    inputs = {role: path for role, path in files.items() if path}
    for role, (path, backend) in models.items():
        if not path:
            continue
        try:
            inputs[role] = model_file(path, backend)
        except (PerfgateError, OSError, ValueError):  # not resolvable: the comparison says why; the path itself is guarded
            inputs[role] = path
    seen: dict[str, str] = {}
    for flag, report_path in chosen.items():
        for role, path in inputs.items():
            where = _overlap(report_path, path)
            if where:
                raise ReportPathError(f"{flag} {shown(report_path)} {where} the {role} {shown(path)}: the report would replace it; write it elsewhere")
        for other_flag, other_path in seen.items():
            if _overlap(report_path, other_path) == "is" and not is_special(report_path):
                raise ReportPathError(f"{flag} {shown(report_path)} is the file {other_flag} writes too: give each report its own path")
        seen[flag] = report_path
        why = check_writable(report_path)
        if why is not None:  # the machine's say, not the user's words: exit 3, as a failed write would be
            raise PerfgateRuntimeError(f"cannot write the {_KINDS.get(flag, 'report')} to {shown(report_path)} ({flag}): {why}")


_KINDS = {"--json": "JSON report", "--markdown": "markdown report", "--junit": "junit report", "--html": "html report",
          "--save": "baseline", "--output": "merged report"}  # fmt: skip


def config_files(explicit: str | None) -> dict[str, str]:
    """The config files a command may read (--config, else perfgate.toml and pyproject.toml
    here), by role, for ``refuse_overwriting_inputs``: a report over either would destroy
    the project's settings even when its perfgate table is elsewhere."""
    from perfgate.configfile import FILE_NAME, PYPROJECT

    found = {"config file": explicit} if explicit else {}
    for name in (FILE_NAME, PYPROJECT):
        if os.path.exists(name):
            found[f"config file {name}"] = name
    return found


def _overlap(report_path: str, input_path: str) -> str | None:
    """How ``report_path`` meets ``input_path``: "is" (the same file), "is inside" (a
    directory's, such as a SavedModel's files), or None."""
    try:
        report, real = os.path.realpath(report_path), os.path.realpath(input_path)
    except (OSError, ValueError):
        return None
    if report == real or same_file(report, real):
        return "is"
    try:
        if os.path.isdir(real) and os.path.commonpath([real, report]) == real:
            return "is inside"
    except ValueError:  # one relative, one absolute: cannot happen after realpath, but never a crash
        return None
    return None
