"""The measuring loop: blocks of timed calls, sized from a warm-up, each step bounded by
the call limit, round after round until the caller has what it needs or the time budget
is spent.

A comparison (``perfgate.engine.runner``) runs it with two sides, the reference and the
candidate, each in its worker process; ``perfgate.measure`` (``perfgate.engine.single``) with one
side: a saved model in its worker, or a Python callable in this process. Whatever runs a
side is a ``Timer``; ``Blocks`` runs the sides' blocks (and throughput windows) over the
same batches and moves on; ``until_stopped`` repeats rounds of them. ``BlockRules`` sizes
the blocks and gives every step its limit, from ``call_limit``: nothing else in the
measuring decides how long a model may take.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from perfgate.worker.process import Worker
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S, RunBlock, RunWindow, Timeout, WarmUp, WarmUpModel, call_limit
from perfgate.worker.timing import time_calls, time_window

Limit = float | Timeout


@dataclass(frozen=True)
class BlockRules:
    """How many calls make a block, and how long each step of a side may take."""

    target_block_s: float
    max_calls_per_block: int
    warmup_min_calls: int
    warmup_min_s: float
    warmup_max_s: float
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # every limit follows from it; a hang's error names it

    def calls_per_block(self, typical_ns: float) -> int:
        """About ``target_block_s`` of calls that take ``typical_ns`` each."""
        return int(min(self.max_calls_per_block, max(1, round(self.target_block_s * 1e9 / max(typical_ns, 1.0)))))

    def warm_up_limit(self) -> Limit:
        """The first call, of unknown length, may take the call timeout; the rest of the
        warm-up, which stops at ``warmup_max_s`` once its last call returns, that much more."""
        return self._limit((call_limit(self.call_timeout_s), self.warmup_max_s + call_limit(self.call_timeout_s)))

    def step_limit(self, expected_s: float) -> Limit:
        """A step expected to take ``expected_s`` (a block, a window, a load episode)."""
        return self._limit((call_limit(self.call_timeout_s, expected_s),))

    def _limit(self, seconds: tuple[float, ...]) -> Limit:
        return Timeout(seconds, by_call_timeout=True)


class Timer(Protocol):
    """One side's timing loops (``limit``: how long the step may take, where it can be stopped)."""

    def warm_up(self, rules: BlockRules) -> WarmUp: ...

    def block(self, start: int, count: int, limit: Limit) -> list[int]: ...

    def window(self, start: int, count: int, limit: Limit) -> int: ...


class WorkerTimer:
    """A model's timing loops, run by its worker process."""

    def __init__(self, worker: Worker, batch_size: int) -> None:
        self.worker, self.batch_size = worker, batch_size

    def warm_up(self, rules: BlockRules) -> WarmUp:
        call = WarmUpModel(self.batch_size, rules.warmup_min_calls, rules.warmup_min_s, rules.warmup_max_s)
        return self.worker.call(call, timeout=rules.warm_up_limit())

    def block(self, start: int, count: int, limit: Limit) -> list[int]:
        return self.worker.call(RunBlock(self.batch_size, start, count), timeout=limit)

    def window(self, start: int, count: int, limit: Limit) -> int:
        return self.worker.call(RunWindow(self.batch_size, start, count), timeout=limit)


class CallTimer:
    """The same timing loops, run on a callable in this process: ``fn(row)`` per call.
    Nothing can stop a call in this process from outside, so the limits do not apply."""

    def __init__(self, fn: Callable[[Any], Any], rows: Sequence[Any]) -> None:
        self.fn, self.rows = fn, rows

    def warm_up(self, rules: BlockRules) -> WarmUp:
        durations: list[int] = []
        began = time.perf_counter_ns()
        while True:
            durations.extend(self.block(len(durations) % len(self.rows), 1, 0.0))
            elapsed = (time.perf_counter_ns() - began) / 1e9
            enough = len(durations) >= rules.warmup_min_calls and elapsed >= rules.warmup_min_s
            if enough or elapsed >= rules.warmup_max_s:
                break
        typical = float(np.median(durations[len(durations) // 2 :]))
        return WarmUp(len(durations), elapsed, typical, 1)

    def block(self, start: int, count: int, limit: Limit) -> list[int]:
        return time_calls(self.fn, _nothing, self.rows, start, count, time.perf_counter_ns)

    def window(self, start: int, count: int, limit: Limit) -> int:
        return time_window(self.fn, _nothing, self.rows, start, count, time.perf_counter_ns)


def _nothing() -> None:
    """A callable's work is done when it returns: nothing to synchronize."""


@dataclass(frozen=True)
class Timed:
    """One round of blocks: where in the batches it began, each side's ns per call, and
    (where windows are measured) each side's window."""

    start: int
    durations: Mapping[str, np.ndarray]
    windows: Mapping[str, int]


class Blocks:
    """Blocks of calls at one batch size. The slowest side's typical call (``slowest_ns``,
    from the warm-up) fixes how many calls make a block, so that every side runs the same
    batches, and each step's limit. A round runs each side's block over the same batches,
    in ``order``, then, with ``windows``, each side's throughput window over them again;
    the next round starts where this one ended."""

    def __init__(self, rules: BlockRules, slowest_ns: float, batches: int, *, windows: bool = True) -> None:
        self.calls = rules.calls_per_block(slowest_ns)
        self.limit = rules.step_limit(self.calls * slowest_ns / 1e9)
        self.batches = batches
        self.windows = windows
        self._cursor = 0

    def run(self, timers: Mapping[str, Timer], order: Sequence[str]) -> Timed:
        start = self._cursor
        durations = {side: np.asarray(timers[side].block(start, self.calls, self.limit), dtype=np.int64) for side in order}
        windows = {side: int(timers[side].window(start, self.calls, self.limit)) for side in order} if self.windows else {}
        self._cursor = (start + self.calls) % self.batches
        return Timed(start, durations, windows)


def until_stopped(
    one_round: Callable[[int], None],
    stop: Callable[[int, bool, float], str | None],
    *,
    time_budget_s: float,
    clock: Callable[[], float],
) -> tuple[str, float]:
    """Rounds (``one_round`` hears how many ran before it) until ``stop`` says why (it hears, after each round, how many have run,
    whether the time budget is spent and the seconds since the first), or the time budget
    is spent: "time budget". Returns why, and the seconds measured."""
    rounds, began = 0, clock()
    while True:
        one_round(rounds)
        rounds += 1
        elapsed = clock() - began
        out_of_time = elapsed >= time_budget_s
        reason = stop(rounds, out_of_time, elapsed)
        if reason is None and out_of_time:
            reason = "time budget"
        if reason is not None:
            return reason, clock() - began
