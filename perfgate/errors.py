"""Everything perfgate raises on purpose, and the exit code each one maps to.

    PerfgateError                     exit 3 unless a subclass says otherwise
    ├── UsageError                    exit 2: the command line or the API call is wrong
    │   ├── BudgetError               a budget that does not parse or makes no sense
    │   ├── ReportPathError           a report path that names an input, or cannot take a report
    │   └── ColumnMappingError        a model input no column can feed
    │       └── InputCastError        column values the model's dtype cannot hold exactly
    └── PerfgateRuntimeError          exit 3: the comparison could not be carried out
        ├── DataError                 the Parquet file cannot be read
        ├── ModelLoadError            a model cannot be read or loaded
        ├── BackendUnavailableError   the framework is not installed (says what to pip install)
        └── WorkerError               a worker crashed, hung, or failed while running its model

    Interrupted (a KeyboardInterrupt)  exit 130 on SIGINT, 143 on SIGTERM (128 + the signal)

A regression is not an error: it is a verdict (exit 1). Every message is one line that
names the file, column or model concerned; ``details`` may carry more (a worker's log)
for ``--debug``.

An option named in a message is written with ``option()``, so that each face names it in
its own words: ``message`` says ``time_budget_s`` to a Python caller, and the command line
says ``--time-budget`` (``PerfgateError.in_words``).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from typing import Any, Callable, Iterator

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_INCONCLUSIVE = 4  # only with --fail-on-inconclusive


_OPTION = re.compile("\x1f([^\x1e\x1f]+)(?:\x1e([^\x1f]*))?\x1f")

Spelling = Callable[[str, str | None], str]  # (option's API name, example value or None) -> words


def option(name: str, value: object | None = None) -> str:
    """Option ``name`` (its keyword in the Python API), with an example value, inside an
    error message; see ``PerfgateError.in_words``."""
    return f"\x1f{name}\x1f" if value is None else f"\x1f{name}\x1e{value}\x1f"


def api_words(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"


class PerfgateError(Exception):
    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, *, details: str | None = None) -> None:
        self.template = message
        self.message = _OPTION.sub(lambda m: api_words(m.group(1), m.group(2)), message)
        super().__init__(self.message)
        self.details = details

    def in_words(self, spell: Spelling) -> str:
        """The message with each option named by ``spell`` (the command line's flags, say)."""
        return _OPTION.sub(lambda m: spell(m.group(1), m.group(2)), self.template)


class UsageError(PerfgateError):
    exit_code = EXIT_USAGE


class BudgetError(UsageError):
    pass


class ReportPathError(UsageError):
    """No report is written to the path it names (it is an input, or cannot take one)."""


class ColumnMappingError(UsageError):
    pass


class InputCastError(ColumnMappingError):
    pass


class PerfgateRuntimeError(PerfgateError):
    exit_code = EXIT_RUNTIME


class DataError(PerfgateRuntimeError):
    pass


class ModelLoadError(PerfgateRuntimeError):
    pass


class BackendUnavailableError(PerfgateRuntimeError):
    pass


class WorkerError(PerfgateRuntimeError):
    pass


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the comparison. A KeyboardInterrupt, not an Exception, so
    that no ``except Exception`` on its way up swallows it and every cleanup on the way runs."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        self.message = f"interrupted by {self.signal_name} before a verdict; the workers were stopped"
        super().__init__(self.message)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # a user's Ctrl-C, a CI runner's cancel or timeout


@contextlib.contextmanager
def stop_signals_handled_by(handler: Callable[[int, object], None]) -> Iterator[dict[int, Any] | None]:
    """SIGINT and SIGTERM go to ``handler`` while the block runs, and the handlers they had
    come back after it; yields those handlers. Only the main thread may set handlers: in
    another this does nothing and yields None."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield previous
    finally:
        for signum, earlier in previous.items():
            signal.signal(signum, earlier)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name: foreign errors
    (a framework's) are quoted this way in perfgate's one-line messages."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "") or type(exc).__name__


def error_class(name: str) -> type[PerfgateError]:
    """The class called ``name`` in this tree (workers send errors back by name)."""
    found = _BY_NAME.get(name)
    return found if found is not None else WorkerError


_BY_NAME: dict[str, type[PerfgateError]] = {
    cls.__name__: cls
    for cls in (
        PerfgateError,
        UsageError,
        BudgetError,
        ReportPathError,
        ColumnMappingError,
        InputCastError,
        PerfgateRuntimeError,
        DataError,
        ModelLoadError,
        BackendUnavailableError,
        WorkerError,
    )
}
