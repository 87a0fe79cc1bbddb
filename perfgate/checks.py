"""From samples and budgets to checks and a verdict.

A check is one metric at one batch size. Its ratio candidate / reference gets a
confidence interval (stats.ratio_interval), and against a budget with limit L:

* fail          when the whole interval is above L,
* pass          when the whole interval is at or below L,
* inconclusive  otherwise, or when there are too few samples for the metric (p95 needs
                90 per model, p99 459), or when the samples cannot be used (NaN,
                unpaired blocks, n = 1): such samples are never "significant".

The gate's error rate is controlled as a whole: with m checks, the interval at look k
has level 1 - alpha * 2**-k / m, so over all checks and all looks, however many there
are, the chance of any wrong pass or fail is at most alpha (Bonferroni over checks, an
alpha-spending sequence over looks). Measuring until decided is therefore safe.

The verdict is fail if any check fails, inconclusive if any check is undecided, else pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from perfgate.budgets import Budget
from perfgate.formatting import format_change
from perfgate.results import Check, Series, Verdict
from perfgate.stats import (
    UnusableSamples,
    mann_whitney,
    min_samples_for_quantile,
    ratio_interval,
    statistic,
)


@dataclass(frozen=True)
class Evaluation:
    checks: tuple[Check, ...]
    verdict: Verdict
    reason: str

    @property
    def decided(self) -> bool:
        return self.verdict in (Verdict.PASS, Verdict.FAIL)


def check_level(alpha: float, look: int, checks: int) -> float:
    """The confidence level of each check's interval at ``look`` (1-based)."""
    return 1.0 - alpha * 0.5**look / max(1, checks)


def min_samples(budgets: Sequence[Budget]) -> int:
    """Samples per model and batch size before every budget's metric can be decided."""
    return max(min_samples_for_quantile(budget.metric.quantile) for budget in budgets)


def evaluate(
    series: Sequence[Series],
    budgets: Sequence[Budget],
    *,
    alpha: float,
    look: int,
    seed: int = 0,
    with_mann_whitney: bool = False,
) -> Evaluation:
    level = check_level(alpha, look, len(series) * len(budgets))
    checks = tuple(
        decide(one, budget, level=level, seed=seed, mann_whitney_alpha=alpha if with_mann_whitney else None)
        for one in series
        for budget in budgets
    )
    verdict, reason = overall(checks)
    return Evaluation(checks, verdict, reason)


def decide(
    series: Series,
    budget: Budget,
    *,
    level: float,
    seed: int = 0,
    mann_whitney_alpha: float | None = None,
) -> Check:
    q = budget.metric.quantile
    reference, candidate = series.samples("reference"), series.samples("candidate")
    n_reference, n_candidate = int(reference.size), int(candidate.size)
    common = dict(
        metric=budget.metric.name,
        batch_size=series.batch_size,
        budget=budget.limit_text,
        max_ratio=budget.max_ratio,
        n_reference=n_reference,
        n_candidate=n_candidate,
        blocks=series.pairs,
    )
    if mann_whitney_alpha is not None:
        test = mann_whitney(reference, candidate, mann_whitney_alpha)
        common.update(mann_whitney_p=test.p_value, mann_whitney_note=test.note)

    needed = min_samples_for_quantile(q)
    if min(n_reference, n_candidate) < needed:
        return Check(
            verdict=Verdict.INCONCLUSIVE,
            reason=f"insufficient samples: {min(n_reference, n_candidate)} per model, {budget.metric.name} needs {needed}",
            reference=None, candidate=None, ratio=None, ci=None, ci_level=None, **common,
        )  # fmt: skip
    try:
        interval = ratio_interval(series.reference, series.candidate, q, level, seed=seed)
    except UnusableSamples as exc:
        return Check(
            verdict=Verdict.INCONCLUSIVE, reason=f"unusable samples: {exc}",
            reference=None, candidate=None, ratio=None, ci=None, ci_level=None, **common,
        )  # fmt: skip

    low, high = interval.low, interval.high
    limit = budget.max_ratio
    span = f"{format_change(low, 1)} to {format_change(high, 1)}"
    if low > limit:
        verdict, reason = Verdict.FAIL, f"at least {format_change(low, 1)} (CI {span}), over the {budget.limit_text} budget"
    elif high <= limit:
        verdict, reason = Verdict.PASS, f"at most {format_change(high, 1)} (CI {span}), within the {budget.limit_text} budget"
    else:
        verdict, reason = Verdict.INCONCLUSIVE, f"CI {span} straddles the {budget.limit_text} budget"
    return Check(
        verdict=verdict,
        reason=reason,
        reference=statistic(reference, q),
        candidate=statistic(candidate, q),
        ratio=interval.estimate,
        ci=(low, high),
        ci_level=level,
        **common,
    )


def overall(checks: Sequence[Check]) -> tuple[Verdict, str]:
    if not checks:
        return Verdict.ERROR, "no checks to decide"
    failed = [check for check in checks if check.verdict is Verdict.FAIL]
    if failed:
        worst = max(failed, key=lambda check: check.ci[0] / check.max_ratio if check.ci else 0.0)
        return Verdict.FAIL, f"{_where(worst)}: {worst.reason}"
    undecided = [check for check in checks if check.verdict is not Verdict.PASS]
    if undecided:
        listed = "; ".join(f"{_where(check)}: {check.reason}" for check in undecided[:3])
        more = f"; and {len(undecided) - 3} more" if len(undecided) > 3 else ""
        return Verdict.INCONCLUSIVE, f"{len(undecided)} of {len(checks)} checks undecided ({listed}{more})"
    return Verdict.PASS, f"all {len(checks)} checks within budget"


def _where(check: Check) -> str:
    return f"{check.metric} at batch {check.batch_size}"
