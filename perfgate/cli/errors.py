"""Every command's failures, whatever raised them, as one line on stderr and an exit code.

Exit 1 means a measured regression and nothing else, so nothing that goes wrong may
escape as Python's own exit 1 (an uncaught exception): perfgate's errors keep their codes
(2 usage, 3 runtime), an interrupt is 130/143, and anything else — the OS's (a disk that
is full, a name too long), a loader's, a bug's — is exit 3, in one line.

``command_errors`` wraps a click command: SIGINT and SIGTERM interrupt it (its workers
are stopped on the way out), and the exception it ends with is said in one line and
handed to the command's ``on_error`` (which writes the error report asked for).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import traceback
from typing import Any, Callable, Iterator

import click

from perfgate.cli.io import StdoutFailed
from perfgate.errors import EXIT_RUNTIME, STOP_SIGNALS, Interrupted, PerfgateError, Spelling, api_words, stop_signals_handled_by
from perfgate.report.text import printable

ErrorHandler = Callable[[BaseException, str, int, dict[str, Any]], None]  # exc, message, exit code, the command's params


def exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, (PerfgateError, Interrupted)) else EXIT_RUNTIME


def message(exc: BaseException, spell: Spelling = api_words) -> str:
    """The error in the command line's words (``spell``: an option's API name -> its flag)."""
    if isinstance(exc, PerfgateError):
        return exc.in_words(spell)
    if isinstance(exc, Interrupted):
        return exc.message
    if isinstance(exc, OSError):  # the OS said no to a file or stream the user named
        where = f": {os.fsdecode(exc.filename)!r}" if exc.filename is not None else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    if isinstance(exc, RecursionError):
        return "a structure nested too deeply to read (a damaged or hostile file)"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"internal error: {type(exc).__name__}: {exc}"


def say(exc: BaseException, spell: Spelling = api_words, debug: bool = False) -> None:
    """The error's one line on stderr (and, with --debug, its traceback and any worker log)."""
    text = message(exc, spell)
    if text.startswith("internal error"):
        click.echo(printable(f"perfgate: {text} (rerun with --debug for the traceback)"), err=True)
    else:
        click.echo(printable(f"perfgate: error: {text}"), err=True)
    if debug:
        traceback.print_exception(exc)
        if isinstance(exc, PerfgateError) and exc.details:
            click.echo(exc.details, err=True)


def command_errors(spell: Spelling, on_error: ErrorHandler | None = None) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a click command: signals interrupt it, and whatever it raises ends as one
    line and an exit code (``on_error`` first writes the reports the command was asked for)."""

    def decorate(command: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(command)
        def run(**params: Any) -> int:
            try:
                with signals_interrupt():
                    return command(**params)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit, StdoutFailed):
                raise  # click's own, and stdout's failure: main() says those
            except BaseException as exc:  # noqa: B902 (every failure has an exit code, never Python's 1)
                code = exit_code(exc)
                if on_error is not None:
                    with contextlib.suppress(Exception):  # the report is a courtesy; the exit code is the contract
                        on_error(exc, message(exc, spell), code, params)
                say(exc, spell, bool(params.get("debug")))
                return code

        return run

    return decorate


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM (a CI runner's cancel or timeout) raise Interrupted, so that the
    run unwinds: its workers are stopped, and the error report is written. A second signal
    while that happens (a moment) is ignored, so that it completes."""

    def interrupt(signum: int, frame: object) -> None:
        for name in STOP_SIGNALS:
            signal.signal(name, signal.SIG_IGN)
        raise Interrupted(signum)

    with stop_signals_handled_by(interrupt):
        yield


class TolerantStream:
    """stderr that never raises: a message that cannot be written (stderr on a full disk,
    a closed pipe) is lost, and the exit code still says what happened. Once a write
    fails, the descriptor is pointed at /dev/null so that the interpreter's last flush
    cannot fail either (which would turn any exit code into 120)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._give_up()
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def _give_up(self) -> None:
        self.failed = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        with contextlib.suppress(Exception):
            self._stream = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tolerant_stderr() -> None:
    """Put a TolerantStream in place of sys.stderr (None when the descriptor was closed: /dev/null)."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    elif not isinstance(sys.stderr, TolerantStream):
        sys.stderr = TolerantStream(sys.stderr)
