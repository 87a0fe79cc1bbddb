"""The noise floor and the smallest change a comparison can detect (its minimum detectable effect).

A statistical check's interval is ``log(ratio) ± t · se`` (perfgate.stats): ``se`` is the
standard error of log(ratio) over the block pairs measured. It shrinks as 1/√pairs, so the
standard error after N pairs is projected from the one after n as ``se · √(n / N)``.

The smallest change the check detects, with 80 % power, is

    MDE = exp((z_(1+level)/2 + z_0.80) · se) − 1

at the check's interval level: a true change of that size puts the whole interval beyond
"no change" in 4 runs of 5 and, the same way round, a true "no change" keeps the interval
within a budget of that size in 4 runs of 5.

A budget smaller than the interval's half-width at the end of the time budget,
``z_(1+level)/2 · se``, gives coin-flip verdicts at best: a candidate identical to its
reference passes in fewer than half of the runs, one over the budget fails in fewer than
half. ``refuse_unresolvable`` turns that into a usage error (saying the MDE, and the budget
or time budget that would do), once ``MIN_NOISE_PAIRS`` block pairs have said how noisy the
run is (judged on the low end of the noise's own 95 % interval, so that a few block pairs'
rough estimate refuses nothing by mistake), unless a failure is already decided (a clear
regression fails against any budget). A budget between that half-width and the MDE is not
refused: it is decided, less often. The level is the current look's; later looks' are
stricter, so the projection errs on the side of refusing less.

The noise of a check is the spread of one block pair's log ratio: ``se · √pairs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Iterable

from perfgate.errors import UsageError, option
from perfgate.results import Check, Verdict

POWER = 0.80
MIN_NOISE_PAIRS = 10  # fewer block pairs say too little about the noise to refuse a budget on it


def _z(probability: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(probability))


def _t(level: float, blocks: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2.0, df=blocks - 1))


def detectable_log(se_log: float, level: float, power: float = POWER) -> float:
    """The smallest |log(ratio)| detected with ``power`` by an interval of ``level``."""
    return (_z(0.5 + level / 2.0) + _z(power)) * se_log


def detectable_ratio(se_log: float, level: float, *, higher_is_better: bool = False) -> float | None:
    """The MDE as a ratio in the direction that would hurt: 1.042 (slower), or 0.96 for
    a higher-is-better metric (less throughput); None where the standard error is unusable."""
    if not (math.isfinite(se_log) and se_log >= 0 and 0 < level < 1):
        return None
    change = detectable_log(se_log, level)
    return math.exp(-change if higher_is_better else change)


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
    if se is None or check.metric.family == "outputs":
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


def refuse_unresolvable(
    checks: Iterable[Check],
    measure_seconds: float,
    time_budget_s: float,
    *,
    chosen: Collection[str] | None = None,
    describe: Callable[[Check], str] = str,
) -> None:
    """Raise UsageError where an undecided gated check's budget is inside the interval the
    time budget can reach (a coin flip); silent while a failure is decided or the noise is
    unknown. ``chosen``: the metric names whose budgets may be refused (None: all);
    ``describe``: a check's place in words ("latency.p95 at batch 1", perfgate.checks.where)."""
    checks = [check for check in checks if check.verdict is not Verdict.INFO]
    if any(check.verdict is Verdict.FAIL for check in checks):
        return
    for check in checks:
        if chosen is not None and check.metric.name not in chosen:
            continue
        if check.verdict is not Verdict.INCONCLUSIVE or check.blocks < MIN_NOISE_PAIRS:
            continue
        found = resolution(check, pairs_in_budget(check.blocks, measure_seconds, time_budget_s))
        if found is None or not found.coin_flip or _fail_within_reach(check, found):
            continue
        where = describe(check)
        sign = "-" if check.higher_is_better else "+"
        longer = time_budget_s * _budget_factor(found)
        raise UsageError(
            f"the {check.budget} budget of {where} is below what this run can resolve: with the noise measured "
            f"({_percent(found.noise)} per block pair), {time_budget_s:g} s of measuring narrows its interval to "
            f"±{_percent(math.expm1(found.half_width))} at best and detects a change of {_percent(found.change)} "
            f"4 times in 5; give it a wider budget "
            f"({option('budgets', f'{check.metric}:{sign}{_ceil_percent(found.change)}')}) or a longer time budget "
            f"({option('time_budget_s', f'{math.ceil(longer):d}')}), or measure on a quieter machine"
        )


def _fail_within_reach(check: Check, found: Resolution) -> bool:
    """The estimate is so far past the budget that the interval at the end of the time
    budget would clear it: a failure the run can still decide is no coin flip."""
    if check.ratio is None or check.ratio <= 0 or check.limit is None or check.limit <= 0:
        return False
    past = math.log(check.ratio) - math.log(check.limit)
    return (-past if check.higher_is_better else past) > found.half_width


def _budget_factor(found: Resolution) -> float:
    """How many times longer the time budget must be for the MDE to reach the check's budget
    (the standard error falls as 1/√time)."""
    margin = abs(math.log(found.check.limit))
    return (abs(math.log(found.detectable)) / margin) ** 2 if margin > 0 else math.inf


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


def _ceil_percent(fraction: float) -> str:
    return f"{math.ceil(fraction * 100):d}%"
