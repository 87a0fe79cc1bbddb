"""Progress a person can follow: a structured status beside the plain progress lines.

The engine reports progress to a ``Callable[[str], None]`` of plain lines (what a CI log
shows, unchanged). Where that callable also has a ``status`` method, the engine gives it a
``Status`` at each phase's start and at each look (``show_status``); ``LiveStatus`` is
such a callable for a terminal: one line, redrawn in place, under the plain lines that
matter to a person. ``rich`` is imported only when a live line is drawn, so that
``import perfgate`` stays light.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

from perfgate.formatting import format_change
from perfgate.results import Check, Verdict

PHASES = ("loading", "outputs", "cold starts", "warm-up", "measuring")


@dataclass(frozen=True)
class Status:
    phase: str  # one of PHASES
    elapsed_s: float  # in the phase ("measuring": of the time budget), at the moment it was sent
    time_budget_s: float | None = None  # the measuring phase's limit
    deciding: str | None = None  # the check the verdict waits on, and where its interval is


def show_status(progress: Any, status: Status) -> None:
    """Give ``status`` to ``progress`` where it takes one (plain callables are left alone)."""
    take = getattr(progress, "status", None)
    if take is not None:
        take(status)


def deciding_check(checks: Sequence[Check], where: Callable[[Check], str]) -> str | None:
    """The check the verdict waits on, in words: a failed one; else the undecided one whose
    interval reaches farthest past its budget; else the passed one nearest its budget.
    'latency.p95 at batch 1 +4.1 % [-2.0 %, +10.3 %] vs +15 %'."""
    gated = [check for check in checks if check.verdict is not Verdict.INFO]
    if not gated:
        return None
    failed = [check for check in gated if check.verdict is Verdict.FAIL]
    undecided = [check for check in gated if check.verdict is Verdict.INCONCLUSIVE]
    if failed:
        chosen = failed[0]
    elif undecided:
        chosen = max(undecided, key=_past_budget)
    else:  # all passed: the closest call among those with an interval
        chosen = max(gated, key=lambda check: -math.inf if check.ci is None else _past_budget(check))
    return f"{where(chosen)} {_interval_words(chosen)}"


def _past_budget(check: Check) -> float:
    """How far (log scale) the check's interval reaches past its limit; no interval: farthest."""
    if check.ci is None or check.limit is None or check.limit <= 0 or min(check.ci) <= 0:
        return math.inf
    if check.higher_is_better:
        return math.log(check.limit) - math.log(check.ci[0])
    return math.log(check.ci[1]) - math.log(check.limit)


def _interval_words(check: Check) -> str:
    budget = f" vs {check.budget}" if check.budget else ""
    if check.ci is None or check.ratio is None:
        return f"{check.verdict.value}{budget}"
    low, high = check.ci
    return f"{format_change(check.ratio, 1)} [{format_change(low, 1)}, {format_change(high, 1)}]{budget}"


def status_line(status: Status, elapsed_s: float | None = None) -> str:
    """'measuring 12.3 s / 60 s · latency.p95 at batch 1 +4.1 % [-2.0 %, +10.3 %] vs +15 %'."""
    elapsed = status.elapsed_s if elapsed_s is None else elapsed_s
    spent = f"{elapsed:.1f} s" + (f" / {status.time_budget_s:g} s" if status.time_budget_s is not None else "")
    return f"{status.phase} {spent}" + (f" · {status.deciding}" if status.deciding else "")


class LiveStatus:
    """A progress callable for a terminal: plain lines printed above one live status line.

    The line's clock keeps running between updates (from ``clock``, wall time by default),
    so that a long phase still shows time passing. Use it as a context manager: the live
    line is drawn on entry and left in place, as the last state, on exit.
    """

    def __init__(self, console: Any = None, *, clock: Callable[[], float] = time.monotonic, auto_refresh: bool = True):
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text = Text
        self.console = console if console is not None else Console(stderr=True)
        self._clock = clock
        self._status: Status | None = None
        self._received = clock()
        self._live = Live(
            get_renderable=self._renderable, console=self.console, refresh_per_second=8, transient=False, redirect_stdout=False,
            auto_refresh=auto_refresh,
        )  # fmt: skip

    def __enter__(self) -> LiveStatus:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def __call__(self, message: str) -> None:
        if message.startswith("look "):  # the live line shows each look; the log keeps the rest
            return
        self.console.print(self._text(f"perfgate: {message}"), soft_wrap=True)

    def status(self, status: Status) -> None:
        if self._status is not None and self._status.phase == status.phase:
            # a look's time is read before it is judged: within a phase, the clock never goes back
            status = replace(status, elapsed_s=max(status.elapsed_s, self._elapsed()))
        self._status = status
        self._received = self._clock()
        self._live.refresh()

    def line(self) -> str:
        """The live line as it reads now ('' before the first status)."""
        if self._status is None:
            return ""
        return "perfgate: " + status_line(self._status, self._elapsed())

    def _elapsed(self) -> float:
        return self._status.elapsed_s + (self._clock() - self._received)

    def _renderable(self) -> Any:
        return self._text(self.line(), no_wrap=True, overflow="ellipsis")


@contextlib.contextmanager
def on_stderr(plain: Callable[[str], None] | None) -> Iterator[Callable[[str], None] | None]:
    """The progress for a face writing to stderr: a live line where stderr is a terminal,
    else ``plain`` (today's lines, for CI logs); None (--quiet) stays None."""
    if plain is None or not _is_terminal(sys.stderr):
        yield plain
        return
    with LiveStatus() as live:
        yield live


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False
