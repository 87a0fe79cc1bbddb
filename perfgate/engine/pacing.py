"""What the time budget can decide, said before measuring.

After the warm-up the pace is known: how long a round of block pairs takes and how many
calls a block holds. A check that needs more samples per model than the time budget can
give (latency.p95 needs 90: a minute at 0.3 s a call on each model) would end every run
"inconclusive", even a clean A/A pair. So, before the first block:

* a budget that is one of the defaults (latency.p95 with no budget asked for by name) is
  set aside: its check is still measured and reported, for information, and the verdict
  rests on the others (latency.p50, outputs); the run says so, with the time budget that
  would gate it;
* a budget asked for by name stays gated, and the run says up front that the time budget
  cannot decide it (unless another check fails first), with the time budget that would.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from perfgate.judge.budgets import Budget
from perfgate.formatting import format_duration
from perfgate.metrics import family_of
from perfgate.judge.resolution import Words, flag_words
from perfgate.engine.runner import Pace

MARGIN = 1.25  # the pace is the warm-up's: leave room for slower rounds and the looks


def pace_budgets(
    budgets: Sequence[Budget], pace: Pace, time_budget_s: float, words: Words = flag_words
) -> tuple[tuple[Budget, ...], tuple[str, ...]]:
    """The budgets with the unaffordable defaults set aside, and what to tell the user (the
    time budget named in ``words``: the command line's, or the Python API's)."""
    kept: list[Budget] = []
    notes: list[str] = []
    for budget in budgets:
        shortfall = _shortfall(budget, pace, time_budget_s)
        if shortfall is None:
            kept.append(budget)
            continue
        needed, given, batch_size, seconds = shortfall
        wanted = words("time_budget_s", _round_up(seconds))
        typical = " / ".join(format_duration(pace.typical_ns[batch_size][side]) for side in ("reference", "candidate"))
        why = (
            f"{budget.metric.name} needs {needed} calls per model at batch {batch_size}, and "
            f"{words('time_budget_s', f'{time_budget_s:g}')} gives about {given} at this pace ({typical} a call)"
        )
        if budget.by_default:
            kept.append(replace(budget, gated=False))
            notes.append(f"{why}: it is reported for information, not gated; {wanted} would gate it")
        else:
            kept.append(budget)
            notes.append(f"{why}: it cannot be decided in time unless another check fails first; {wanted} would decide it")
    return tuple(kept), tuple(notes)


def _shortfall(budget: Budget, pace: Pace, time_budget_s: float) -> tuple[int, int, int, float] | None:
    """(samples needed, samples the time budget gives, batch size, seconds that would do)
    for the batch size where the budget falls shortest, or None when it fits."""
    metric = budget.metric
    family = family_of(metric)
    if not family.one_sample_per_call or not budget.gated:
        return None
    needed = family.min_samples(metric)
    sizes = [metric.batch_size] if metric.batch_size in pace.calls_per_block else list(pace.calls_per_block)
    worst = None
    for batch_size in sizes:
        given = pace.samples_within(time_budget_s / MARGIN, batch_size)
        if given < needed:
            rounds = math.ceil(needed / pace.calls_per_block[batch_size])
            seconds = rounds * pace.round_seconds * MARGIN
            if worst is None or seconds > worst[3]:
                worst = (needed, given, batch_size, seconds)
    return worst


def _round_up(seconds: float) -> str:
    step = 5 if seconds < 120 else 30
    return f"{step * math.ceil(seconds / step):g}"
