"""From what was measured and the budgets to checks and a verdict, over every metric family.

A check is one metric at one place: a batch size (latency, throughput, latency_slope),
a load scenario (load), or the model as a whole (memory, cold_start). Each family builds
its checks (``perfgate.metrics``); statistical checks get the ratio candidate / reference
with a confidence interval, and against a budget with limit L:

* fail          when the whole interval is on the wrong side of L (above it; below it
                for higher-is-better throughput),
* pass          when the whole interval is on the right side of L (L itself included),
* inconclusive  otherwise, and when there are too few samples for the metric (p95 needs
                90 per model, p99 459), or when the samples cannot be used (NaN,
                unpaired blocks, n = 1): such samples are never "significant".

Memory is nearly deterministic, so it gets no interval and no test (see metrics/memory.py).
Metrics without a budget are reported with verdict "info" and never change the verdict.
The gate's error rate is controlled over its gated statistical checks: with m of them,
the interval at look k has level 1 - alpha * (6 / pi**2) / k**2 / m (Bonferroni over
checks; over looks an alpha-spending sequence whose terms sum to alpha), so measuring
until decided is safe however many looks it takes. Looks start after a few block pairs
and grow geometrically, so a run of n pairs has about log(n) looks: 1/k**2 keeps the
late looks' intervals far narrower than a halving sequence would (look 12 spends
alpha/237 instead of alpha/4096).

A look can fail the gate as soon as any gated check fails, even while others still lack
the samples they need (latency.p95 needs 90 per model); a pass needs every check.

The verdict is fail if any check fails, inconclusive if any gated check is undecided,
else pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

from perfgate.metrics import families, family_of
from perfgate.metrics.base import DEFAULT_MEMORY_FLOOR, Budget, Observations
from perfgate.results import Check, Verdict
from perfgate.stats import mann_whitney

__all__ = ["DEFAULT_MEMORY_FLOOR", "Evaluation", "Observations", "check_level", "evaluate", "min_samples", "overall",
           "where", "with_mann_whitney"]  # fmt: skip


_SPENDING = 6.0 / math.pi**2  # sum over k >= 1 of 1/k**2 is pi**2/6


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
    return 1.0 - alpha * _SPENDING / look**2 / max(1, checks)


def min_samples(budgets: Sequence[Budget]) -> int:
    """Samples per model and place before every budget's metric can be decided."""
    return max((family_of(budget.metric).min_samples(budget.metric) for budget in budgets), default=2)


def evaluate(
    observations: Observations,
    budgets: Sequence[Budget],
    *,
    alpha: float,
    look: int,
    seed: int = 0,
    gated_only: bool = False,
) -> Evaluation:
    """Every check the observations allow: the budgeted ones, and the rest for information
    (left out with ``gated_only``: a look needs only what can decide the verdict)."""
    by_name = {budget.metric.name: budget for budget in budgets}
    ordered = sorted(
        ((slot, family) for family in families() for slot in family.slots(observations, by_name)),
        key=lambda pair: (pair[0].place, pair[1].order),
    )
    gated = [(slot, family, _gated(slot.budget)) for slot, family in ordered]
    gated_statistical = sum(1 for _, family, budget in gated if budget is not None and family.statistical)
    level = check_level(alpha, look, gated_statistical)
    checks = tuple(slot.judge(budget, level, seed) for slot, _, budget in gated if budget is not None or not gated_only)
    verdict, reason = overall(checks)
    return Evaluation(checks, verdict, reason)


def _gated(budget: Budget | None) -> Budget | None:
    """The budget a check is held to: none for a budget set aside as information only."""
    return budget if budget is not None and budget.gated else None


def with_mann_whitney(evaluation: Evaluation, observations: Observations, alpha: float) -> Evaluation:
    """The evaluation with Mann–Whitney p-values where a family gives samples to test
    (latency and load); cheap to leave out of the looks."""
    results = {}
    checks = []
    for check in evaluation.checks:
        key = (check.metric.family, check.batch_size, check.scenario)
        if key not in results:
            samples = family_of(check).test_samples(check, observations)
            results[key] = None if samples is None else mann_whitney(*samples, alpha)
        if results[key] is not None:
            check = replace(check, mann_whitney_p=results[key].p_value, mann_whitney_note=results[key].note)
        checks.append(check)
    return replace(evaluation, checks=tuple(checks))


def overall(checks: Sequence[Check]) -> tuple[Verdict, str]:
    gated = [check for check in checks if check.verdict is not Verdict.INFO]
    if not gated:
        return Verdict.ERROR, "no checks to decide"
    failed = [check for check in gated if check.verdict is Verdict.FAIL]
    if failed:
        return Verdict.FAIL, f"{where(failed[0])}: {failed[0].reason}"
    undecided = [check for check in gated if check.verdict is not Verdict.PASS]
    if undecided:
        listed = "; ".join(f"{where(check)}: {check.reason}" for check in undecided[:3])
        more = f"; and {len(undecided) - 3} more" if len(undecided) > 3 else ""
        return Verdict.INCONCLUSIVE, f"{len(undecided)} of {len(gated)} checks undecided ({listed}{more})"
    return Verdict.PASS, f"all {len(gated)} checks within budget"


def where(check: Check) -> str:
    """'latency.p95 at batch 1', 'load.p99 at concurrency 4', 'memory.peak_rss'."""
    return family_of(check).where(check)
