"""The noise floor and the smallest change a comparison can detect (its minimum detectable effect).

A statistical check's interval is ``log(ratio) ± t · se`` (perfgate.stats): ``se`` is the
standard error of log(ratio) over the block pairs measured. It shrinks as 1/√pairs, so the
standard error after N pairs is projected from the one after n as ``se · √(n / N)``.

The smallest change the check detects, with 80 % power, is

    MDE = exp((z_(1+level)/2 + z_0.80) · se) − 1

at the check's interval level: a true change of that size puts the whole interval beyond
"no change" in 4 runs of 5 and, the same way round, a true "no change" keeps the interval
within a budget of that size in 4 runs of 5.

A budget smaller than the MDE at the end of the time budget is not one this run can
resolve: an identical candidate passes in fewer than 4 runs of 5, one over the budget fails
in fewer than 4 of 5, and inside the interval's half-width, ``z_(1+level)/2 · se``, in
fewer than half (a coin flip). That is the machine's noise, not a mistake in what the user
wrote, so it is never a usage error: the run measures on to its time budget (a failure it
can still decide, it decides), and a check left undecided says, in its reason, the change
this run detects and the time budget or the budget that would resolve it
(``explain_unresolved``), in the words of the face that asked (``flag_words`` for the
command line and the reports it writes, ``python_words`` for the Python API and pytest).
The level is the last look's.

The noise of a check is the spread of one block pair's log ratio: ``se · √pairs``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from perfgate.detectable import POWER, _t, _z, detectable_log, detectable_ratio  # noqa: F401 (this module's vocabulary)
from perfgate.metrics import family_of
from perfgate.results import Check, Verdict


def check_se(check: Check) -> float | None:
    """A check's standard error of log(ratio), read back from its interval (so that it
    works on a saved report too); None for a check without a ratio interval."""
    if check.ci is None or check.ci_level is None or check.blocks < 2 or check.ratio is None:
        return None
    low, high = check.ci
    if not (low > 0 and high > 0 and 0 < check.ci_level < 1):
        return None
    half_width = (math.log(high) - math.log(low)) / 2.0
    return half_width / _t(check.ci_level, check.blocks)


@dataclass(frozen=True)
class Resolution:
    """One check's noise and the smallest change it can detect after ``pairs`` block pairs."""

    check: Check
    pairs: int  # block pairs the projection is for
    noise: float  # the standard deviation of one block pair's log ratio
    se_log: float  # projected to ``pairs``
    detectable: float  # a ratio, in the direction that would hurt (see detectable_ratio)

    @property
    def change(self) -> float:
        """The MDE as a positive fraction (0.042 for ±4.2 %)."""
        return abs(self.detectable - 1.0) if not self.check.higher_is_better else 1.0 / self.detectable - 1.0

    @property
    def half_width(self) -> float:
        """The interval's half-width (log scale) after ``pairs`` block pairs."""
        return _z(0.5 + self.check.ci_level / 2.0) * self.se_log

    @property
    def resolvable(self) -> bool | None:
        """Whether the check's budget is at least the MDE; None without a budget."""
        margin = self._margin()
        return None if margin is None else margin >= abs(math.log(self.detectable))

    @property
    def coin_flip(self) -> bool:
        """The budget is inside the interval's half-width, even where the noise is as low as
        its estimate allows (the low end of its 95 % interval, from the block pairs measured):
        no better than a coin flip, and not because a few block pairs misjudged the noise."""
        from scipy.stats import chi2

        margin = self._margin()
        if margin is None:
            return False
        freedom = max(self.check.blocks - 1, 1)
        optimistic = math.sqrt(freedom / float(chi2.ppf(0.975, freedom)))
        return margin < self.half_width * optimistic

    def _margin(self) -> float | None:
        if self.check.limit is None or self.check.budget is None or self.check.limit <= 0:
            return None
        return -math.log(self.check.limit) if self.check.higher_is_better else math.log(self.check.limit)


def resolution(check: Check, pairs: int | None = None) -> Resolution | None:
    """``check``'s resolution after ``pairs`` block pairs (default: those it has)."""

    se = check_se(check)
    if se is None or not family_of(check).resolvable_by_noise:
        return None
    target = max(pairs or check.blocks, 1)
    projected = se * math.sqrt(check.blocks / target)
    detectable = detectable_ratio(projected, check.ci_level, higher_is_better=check.higher_is_better)
    if detectable is None:
        return None
    return Resolution(check, target, se * math.sqrt(check.blocks), projected, detectable)


def pairs_in_budget(pairs: int, measure_seconds: float, time_budget_s: float) -> int:
    """How many block pairs the whole time budget allows, at the pace measured so far."""
    if measure_seconds <= 0:
        return pairs
    return max(pairs, int(pairs * time_budget_s / measure_seconds))


Words = Callable[[str, str], str]  # (option's keyword in the Python API, its value) -> how a face writes it


def flag_words(name: str, value: str) -> str:
    """An option as the command line writes it: ``--time-budget 130``, ``--budget latency.p95:+8%``;
    a report's words, like its other warnings."""
    return f"{_FLAGS.get(name, '--' + name.replace('_', '-'))} {value}"


def python_words(name: str, value: str) -> str:
    """An option as a Python keyword argument that runs as written: ``time_budget_s=130``,
    ``budgets=["latency.p95:+8%"]`` (a list: the keyword takes several)."""
    if name in _LIST_KEYWORDS:
        return f"{name}=[{json.dumps(value)}]"
    try:
        float(value)
    except ValueError:
        return f"{name}={json.dumps(value)}"
    return f"{name}={value}"


_FLAGS = {"time_budget_s": "--time-budget", "budgets": "--budget"}
_LIST_KEYWORDS = ("budgets",)


def unresolved(check: Check, measure_seconds: float, time_budget_s: float) -> Resolution | None:
    """The resolution of an undecided check whose budget is below the change the whole time
    budget can detect (at the noise measured so far), or None: decided, no budget, no
    interval, or a budget the time budget resolves."""
    if check.verdict is not Verdict.INCONCLUSIVE:
        return None
    found = resolution(check, pairs_in_budget(check.blocks, measure_seconds, time_budget_s))
    if found is None or found.resolvable is not False:
        return None
    # a budget at or past "no change" (latency:-10%) is no matter of noise: an identical
    # model fails it once the interval clears it, however long that takes
    return found if (found._margin() or 0.0) > 0 else None


def explain_unresolved(
    checks: Iterable[Check], measure_seconds: float, time_budget_s: float, words: Words = flag_words, *, instances: int = 1
) -> tuple[Check, ...]:
    """``checks`` with each unresolved one's reason saying the change this run can detect
    and what would resolve it, in ``words`` (flag_words, python_words). A budget below the
    noise is the machine's doing, not a mistake in what was written: the run measured on to
    its time budget, and such a check is inconclusive, its samples kept, never a usage error.
    With several worker processes per model (``instances``), the reason also says that the
    processes' own differences are in the interval, which more time does not shrink."""
    explained = []
    for check in checks:
        found = unresolved(check, measure_seconds, time_budget_s)
        if found is not None:
            hint = resolve_hint(found, time_budget_s, words)
            if instances > 1 and family_of(check).sensitive_to_instances:
                hint += processes_hint(instances, words)
            check = replace(check, reason=f"{check.reason}; {hint}")
        explained.append(check)
    return tuple(explained)


MAX_INSTANCES = 8  # --instances' upper bound (perfgate.config)


def processes_hint(instances: int, words: Words = flag_words) -> str:
    """Why time alone may not resolve a check whose interval holds the processes' differences
    (``perfgate.stats.with_instance_variation``: that part shrinks with more processes, as
    1/sqrt(K) with Student's t on K - 1 degrees of freedom, not with more block pairs)."""
    more = f": {words('instances', str(MAX_INSTANCES))} narrows that part" if instances < MAX_INSTANCES else ""
    return (f"; the interval also holds how much the {instances} worker processes per model differ from each other "
            f"(about 2 % each on a busy 2-vCPU runner), which more time does not shrink{more}")


def resolve_hint(found: Resolution, time_budget_s: float, words: Words = flag_words) -> str:
    """At this noise, the change ``time_budget_s`` of measuring detects, and the longer time
    budget or wider budget that would resolve the check's budget."""
    check = found.check
    sign = "-" if check.higher_is_better else "+"
    # in the budget's own terms: a throughput drop is 1 - ratio (at most 100 %), not 1/ratio - 1
    change = abs(found.detectable - 1.0)
    longer = words("time_budget_s", str(math.ceil(time_budget_s * _budget_factor(found))))
    wider = math.ceil(change * 100)
    # a drop of 100 % or more is no budget (nothing could meet it): then only time resolves it
    either = f"{longer} or {words('budgets', f'{check.metric}:{sign}{wider}%')}" if sign == "+" or wider < 100 else longer
    return (
        f"at the noise measured ({_percent(found.noise)} per block pair), {time_budget_s:g} s of measuring detects "
        f"a change of {sign}{_percent(change)} 4 times in 5, more than the {check.budget} budget: "
        f"{either} would resolve it, or a quieter machine"
    )


def _budget_factor(found: Resolution) -> float:
    """How many times longer the time budget must be for the MDE to reach the check's budget
    (the standard error falls as 1/√time)."""
    margin = abs(math.log(found.check.limit))
    return (abs(math.log(found.detectable)) / margin) ** 2 if margin > 0 else math.inf


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"

