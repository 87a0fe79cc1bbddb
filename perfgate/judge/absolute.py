"""Budgets in absolute terms for one model or callable: "p95 under 20 ms", "peak RSS
under 300 MB", "at least 100 samples/s" (``perfgate.measure(...).assert_within``).

They are decided as the relative budgets of a comparison are, on a confidence interval
of the measured value itself (``perfgate.stats.quantile_interval``), never on a point
estimate:

* fail          when the whole interval is on the wrong side of the budget (the lower
                bound of p95 above it; for throughput, the upper bound below it),
* pass          when the whole interval is within it (the budget itself included),
* inconclusive  when the interval straddles the budget, or there are too few samples for
                the quantile (p95 needs 90, p99 459).

Peak RSS is nearly deterministic, as in a comparison: the reading against the budget,
without an interval. The error rate is split over one call's statistical budgets
(Bonferroni): with two of them at 95 % confidence, each interval is at 97.5 %.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from perfgate.errors import UsageError
from perfgate.formatting import format_value
from perfgate.results import Verdict
from perfgate.stats import UnusableSamples, min_samples_for_quantile, quantile_interval
from perfgate.judge.units import parse_duration, parse_rate, parse_size

BUDGET_NAMES = "p50, p95, p99 (any pNN, p99_9 for 99.9 %), mean, peak_rss, throughput"
_QUANTILE = re.compile(r"^p(\d{1,2})(?:_(\d+))?$")
PEAK_RSS_OF_A_CALLABLE = (
    "peak_rss is not measured for a Python callable: it runs in the test's own process, whose memory "
    "holds everything else that process has done; measure a saved model for memory"
)


@dataclass(frozen=True)
class AbsoluteBudget:
    name: str  # as written: "p95", "peak_rss", "throughput"
    metric: str  # as reports name it: "latency.p95", "memory.peak_rss", "throughput"
    quantile: float | None  # latency only; None is the mean
    limit: float  # in ``unit``: ns, bytes or samples/s
    text: str  # the limit as written: "20ms"
    unit: str
    higher_is_better: bool = False

    def __str__(self) -> str:
        return f"{self.name}={self.text}"


@dataclass(frozen=True)
class LimitCheck:
    """One measured value against its absolute budget."""

    metric: str
    verdict: Verdict
    reason: str
    value: float | None  # in ``unit``
    ci: tuple[float, float] | None
    ci_level: float | None
    unit: str
    budget: str  # "20ms"
    limit: float
    samples: int
    blocks: int
    higher_is_better: bool = False

    @property
    def line(self) -> str:
        """'latency.p95 44.8 us: at least 42 us (97.5% CI 42 us to 47.1 us), over the 1ns budget'."""
        return f"{self.metric} {format_value(self.value, self.unit)}: {self.reason}"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict  # pass, fail or inconclusive
    reason: str
    checks: tuple[LimitCheck, ...]


class Measured(Protocol):
    """What judging needs of a measurement (``perfgate.engine.single.MeasureResult``)."""

    blocks: tuple[np.ndarray, ...]  # ns per call, block by block
    windows: tuple[int, ...]  # ns per throughput window
    samples_per_window: int
    memory: Mapping[str, Any] | None  # None: not measured (a callable)


def is_budget_name(name: str) -> bool:
    """Whether ``name`` names an absolute budget (``p95``, ``peak_rss``, …)."""
    match = _QUANTILE.match(name)
    return name in ("peak_rss", "throughput", "mean") or bool(match and 0 < int(match.group(1)) < 100)


def parse_absolute_budgets(budgets: Mapping[str, Any]) -> tuple[AbsoluteBudget, ...]:
    """``{'p95': '20ms', 'peak_rss': '300MB'}`` -> budgets; a usage error names a bad one."""
    return tuple(parse_absolute_budget(name, value) for name, value in budgets.items())


def parse_absolute_budget(name: str, value: Any) -> AbsoluteBudget:
    if name == "peak_rss":
        size = parse_size(value, name)
        return AbsoluteBudget(name, "memory.peak_rss", None, size.bytes, size.text, "bytes")
    if name == "throughput":
        rate = parse_rate(value, name)
        return AbsoluteBudget(name, "throughput", None, rate.per_second, rate.text, "samples/s", higher_is_better=True)
    if name == "mean":
        duration = parse_duration(value, name)
        return AbsoluteBudget(name, "latency.mean", None, duration.ns, duration.text, "ns")
    match = _QUANTILE.match(name)
    if match and is_budget_name(name):
        percent = f"{match.group(1)}.{match.group(2)}" if match.group(2) else match.group(1)
        duration = parse_duration(value, name)
        return AbsoluteBudget(name, f"latency.p{percent}", float(percent) / 100.0, duration.ns, duration.text, "ns")
    raise UsageError(f"unknown budget {name!r}; budgets: {BUDGET_NAMES}")


def judge_limits(measured: Measured, budgets: Sequence[AbsoluteBudget], *, confidence: float, seed: int = 0) -> Judgement:
    """Each budget's check and the verdict over them."""
    if not budgets:
        raise UsageError(f"no budget given; give one or more of {BUDGET_NAMES}, such as p95='20ms'")
    if measured.memory is None and any(budget.metric == "memory.peak_rss" for budget in budgets):
        raise UsageError(PEAK_RSS_OF_A_CALLABLE)
    return judge_pairs([(measured, budget) for budget in budgets], confidence=confidence, seed=seed)


def judge_pairs(pairs: Sequence[tuple[Measured, AbsoluteBudget]], *, confidence: float, seed: int = 0) -> Judgement:
    """Each budget on its own measured values (a generative model's TTFT, gaps, ...), the
    error rate split over the statistical ones, and the verdict over them."""
    statistical = sum(1 for _, budget in pairs if budget.unit != "bytes")
    level = 1.0 - (1.0 - confidence) / max(1, statistical)
    checks = tuple(_check(measured, budget, level, seed) for measured, budget in pairs)
    failed = [check for check in checks if check.verdict is Verdict.FAIL]
    undecided = [check for check in checks if check.verdict is Verdict.INCONCLUSIVE]
    if failed:
        return Judgement(Verdict.FAIL, "; ".join(check.line for check in failed), checks)
    if undecided:
        return Judgement(Verdict.INCONCLUSIVE, "; ".join(check.line for check in undecided), checks)
    return Judgement(Verdict.PASS, f"all {len(checks)} within budget", checks)


def _check(measured: Measured, budget: AbsoluteBudget, level: float, seed: int) -> LimitCheck:
    if budget.unit == "bytes":
        return _memory_check(measured.memory or {}, budget)
    if budget.unit == "samples/s":
        blocks = [np.asarray([window]) for window in measured.windows]
        samples, q = len(measured.windows), None
    else:
        blocks, q = list(measured.blocks), budget.quantile
        samples = sum(block.size for block in blocks)
    common = dict(metric=budget.metric, unit=budget.unit, budget=budget.text, limit=budget.limit, samples=samples,
                  blocks=len(blocks), higher_is_better=budget.higher_is_better)  # fmt: skip
    needed = min_samples_for_quantile(q)
    if samples < needed:
        reason = f"insufficient samples: {samples}, {budget.metric} needs {needed}; give it more time"
        return LimitCheck(verdict=Verdict.INCONCLUSIVE, reason=reason, value=None, ci=None, ci_level=None, **common)
    try:
        interval = quantile_interval(blocks, q, level, seed=seed)
    except UnusableSamples as exc:
        return LimitCheck(verdict=Verdict.INCONCLUSIVE, reason=f"unusable samples: {exc}", value=None, ci=None,
                          ci_level=None, **common)  # fmt: skip
    value, low, high = interval.estimate, interval.low, interval.high
    if budget.higher_is_better:  # a rate: samples per window over the window's mean time
        per_window = measured.samples_per_window * 1e9
        value, low, high = per_window / value, per_window / high, per_window / low
    return _decided(common, budget, value, (low, high), level)


def _decided(common: dict, budget: AbsoluteBudget, value: float, ci: tuple[float, float], level: float) -> LimitCheck:
    low, high = ci
    span = f"{_percent(level)} CI {format_value(low, budget.unit)} to {format_value(high, budget.unit)}"
    text = budget.text
    if not budget.higher_is_better:
        if low > budget.limit:
            verdict, reason = Verdict.FAIL, f"at least {format_value(low, budget.unit)} ({span}), over the {text} budget"
        elif high <= budget.limit:
            verdict, reason = Verdict.PASS, f"at most {format_value(high, budget.unit)} ({span}), within the {text} budget"
        else:
            verdict, reason = Verdict.INCONCLUSIVE, f"{span} straddles the {text} budget"
    elif high < budget.limit:
        verdict, reason = Verdict.FAIL, f"at most {format_value(high, budget.unit)} ({span}), under the {text} budget"
    elif low >= budget.limit:
        verdict, reason = Verdict.PASS, f"at least {format_value(low, budget.unit)} ({span}), within the {text} budget"
    else:
        verdict, reason = Verdict.INCONCLUSIVE, f"{span} straddles the {text} budget"
    return LimitCheck(verdict=verdict, reason=reason, value=value, ci=(low, high), ci_level=level, **common)


def _memory_check(memory: Mapping[str, Any], budget: AbsoluteBudget) -> LimitCheck:
    peak = memory.get("peak_rss")
    common = dict(metric=budget.metric, unit="bytes", budget=budget.text, limit=budget.limit, samples=1, blocks=0,
                  ci=None, ci_level=None)  # fmt: skip
    if peak is None:
        return LimitCheck(verdict=Verdict.INCONCLUSIVE, reason="peak RSS is not measured on this platform", value=None, **common)
    caveat = "; the peak includes loading the model (the kernel did not allow resetting it)" if memory.get("peak_includes_load") else ""
    if peak > budget.limit:
        return LimitCheck(verdict=Verdict.FAIL, reason=f"over the {budget.text} budget{caveat}", value=float(peak), **common)
    return LimitCheck(verdict=Verdict.PASS, reason=f"within the {budget.text} budget{caveat}", value=float(peak), **common)


def _percent(level: float) -> str:
    return f"{level * 100:.4g}%"
