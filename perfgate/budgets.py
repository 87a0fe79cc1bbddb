"""Budgets: how much worse the candidate may be than the reference, per metric.

A budget bounds the ratio candidate / reference of one metric. Its limit is written

* as a change in percent: ``15%`` or ``+15%`` (up to 15 % slower), ``-10%`` (at least
  10 % faster: "did the optimisation pay off?");
* or as a ratio: ``1.15`` (the form many pipelines already use), between 1 and 10.

``--budget`` takes ``METRIC:LIMIT``, e.g. ``latency.p95:+10%``. A bare number below 1
(``0.15``) or above 10 (``15``) is refused rather than guessed at: it is most often a
percentage written without its ``%``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from perfgate.errors import BudgetError
from perfgate.formatting import format_change

DEFAULT_MAX_LATENCY_INCREASE = "15%"
DEFAULT_METRICS = ("latency.p50", "latency.p95")
MAX_RATIO_FORM = 10.0

LIMIT_FORMS = "15%, +15%, -10% (a change in percent) or 1.15 (a ratio candidate/reference, 1 to 10)"
METRIC_FORMS = "latency.p50, latency.p90, latency.p95, latency.p99, latency.pNN, latency.mean"

_QUANTILE_METRIC = re.compile(r"^latency\.p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class Metric:
    """A statistic of the per-call latency samples; lower is better."""

    name: str
    quantile: float | None  # None: the mean

    @property
    def statistic(self) -> str:
        return "mean" if self.quantile is None else "quantile"


@dataclass(frozen=True)
class Budget:
    """The candidate passes this budget when ``metric(candidate) / metric(reference) <= max_ratio``."""

    metric: Metric
    max_ratio: float

    @property
    def limit_text(self) -> str:
        return format_change(self.max_ratio)

    def __str__(self) -> str:
        return f"{self.metric.name}:{self.limit_text}"


def parse_metric(text: str) -> Metric:
    name = text.strip()
    if name == "latency.mean":
        return Metric(name, None)
    match = _QUANTILE_METRIC.match(name)
    if match:
        percent = float(match.group(1))
        if 0.0 < percent < 100.0:
            return Metric(name, percent / 100.0)
    raise BudgetError(f"unknown metric {text!r}; known metrics: {METRIC_FORMS}")


def parse_limit(value: str | float, *, option: str = "budget") -> float:
    """The maximum ratio candidate/reference that ``value`` allows."""
    if isinstance(value, bool):
        raise BudgetError(f"{option}: {value!r} is not a limit; accepted forms: {LIMIT_FORMS}")
    if isinstance(value, (int, float)):
        return _checked_ratio(float(value), str(value), option)
    text = value.strip()
    if text.endswith("%"):
        number = _parse_number(text[:-1], text, option)
        ratio = 1.0 + number / 100.0
        if ratio <= 0.0:
            raise BudgetError(f"{option}: {text!r} would need the candidate to take no time at all")
        return ratio
    return _checked_ratio(_parse_number(text, text, option), text, option)


def parse_budget(text: str) -> Budget:
    """``'latency.p95:+10%'`` -> Budget(latency.p95, 1.10)."""
    metric_text, sep, limit_text = text.partition(":")
    if not sep or not metric_text.strip() or not limit_text.strip():
        raise BudgetError(
            f"cannot parse budget {text!r}: expected METRIC:LIMIT such as latency.p95:+10% "
            f"(metrics: {METRIC_FORMS}; limits: {LIMIT_FORMS})"
        )
    return Budget(parse_metric(metric_text), parse_limit(limit_text, option=f"budget {text!r}"))


def build_budgets(
    max_latency_increase: str | float | None = None,
    budgets: Iterable[str | Budget] = (),
) -> tuple[Budget, ...]:
    """The checks a comparison decides on.

    ``max_latency_increase`` (default 15 %) applies to latency.p50 and latency.p95;
    each extra budget replaces the one for its metric or adds a metric.
    """
    default_limit = parse_limit(
        DEFAULT_MAX_LATENCY_INCREASE if max_latency_increase is None else max_latency_increase,
        option="--max-latency-increase",
    )
    chosen = {name: Budget(parse_metric(name), default_limit) for name in DEFAULT_METRICS}
    given: set[str] = set()
    for item in budgets:
        budget = item if isinstance(item, Budget) else parse_budget(item)
        if budget.metric.name in given:
            raise BudgetError(f"budget for {budget.metric.name} is given twice")
        given.add(budget.metric.name)
        chosen[budget.metric.name] = budget
    return tuple(sorted(chosen.values(), key=_metric_order))


def _metric_order(budget: Budget) -> tuple[float, str]:
    quantile = budget.metric.quantile
    return (2.0 if quantile is None else quantile, budget.metric.name)


def _parse_number(number_text: str, whole: str, option: str) -> float:
    try:
        number = float(number_text.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise BudgetError(f"{option}: cannot read {whole!r}; accepted forms: {LIMIT_FORMS}")
    return number


def _checked_ratio(ratio: float, text: str, option: str) -> float:
    if not math.isfinite(ratio):
        raise BudgetError(f"{option}: cannot read {text!r}; accepted forms: {LIMIT_FORMS}")
    if ratio < 1.0:
        raise BudgetError(
            f"{option}: {text!r} is ambiguous as a ratio; write a percentage "
            f"(15% for up to 15% slower, -10% to require a 10% speed-up) or a ratio such as 1.15"
        )
    if ratio > MAX_RATIO_FORM:
        raise BudgetError(
            f"{option}: {text!r} would allow a {ratio:g}x slowdown; if you meant a percentage "
            f"write {text}% (accepted forms: {LIMIT_FORMS})"
        )
    return ratio
