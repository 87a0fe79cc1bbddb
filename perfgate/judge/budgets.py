"""Budgets: how much worse the candidate may be than the reference, per metric.

A budget bounds the ratio candidate / reference of one metric. Its limit is written

* as a change in percent: ``15%`` or ``+15%`` (up to 15 % worse for a lower-is-better
  metric such as latency), ``-10%`` (at least 10 % better: "did the optimisation pay
  off?"), or for higher-is-better throughput ``-10%`` (at most 10 % less);
* or as a ratio: ``1.15`` (the form many pipelines already use), between 1 and 10,
  for lower-is-better metrics;
* for memory, also as an absolute increase: ``+50MB``, ``+64MiB``.

``--budget`` takes ``METRIC:LIMIT``, e.g. ``latency.p95:+10%``. A bare number below 1
(``0.15``) or above 10 (``15``) is refused rather than guessed at: it is most often a
percentage written without its ``%``. Which metrics exist, and how each reads its limit,
is up to its family (``perfgate.metrics``).
"""

from __future__ import annotations

import math
from typing import Iterable

from perfgate.errors import BudgetError, UsageError, option
from perfgate.metrics import Budget, Metric, Scope, families, family_of, metric_forms, parse_metric
from perfgate.metrics.base import LIMIT_FORMS, parse_limit
from perfgate.metrics.memory import parse_bytes

__all__ = ["Budget", "Metric", "build_budgets", "check_measured", "parse_budget", "parse_limit", "parse_memory_size",
           "parse_metric", "DEFAULT_LIMIT", "DEFAULT_MAX_LATENCY_INCREASE"]  # fmt: skip

DEFAULT_MAX_LATENCY_INCREASE = "15%"
DEFAULT_LIMIT = 1.15  # the ratio DEFAULT_MAX_LATENCY_INCREASE stands for


def parse_budget(text: str) -> Budget:
    """``'latency.p95:+10%'`` -> Budget(latency.p95, 1.10); ``'memory.peak_rss:+50MB'``."""
    metric_text, sep, limit_text = text.partition(":")
    if not sep or not metric_text.strip() or not limit_text.strip():
        raise BudgetError(
            f"cannot parse budget {text!r}: expected METRIC:LIMIT such as latency.p95:+10% "
            f"(metrics: {metric_forms()}; limits: {LIMIT_FORMS})"
        )
    metric = parse_metric(metric_text)
    return family_of(metric).parse_budget(metric, limit_text.strip(), f"budget {text!r}")


def parse_memory_size(value: str | float, *, option_name: str) -> float:
    """``'5MiB'``, ``'8MB'``, ``'1GiB'`` or a number of bytes -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise BudgetError(f"{option(option_name)}: {value!r} is not a size")
        return float(value)
    size = parse_bytes(str(value))
    if size is None:
        raise BudgetError(f"{option(option_name)}: cannot read {value!r}; write a size such as 5MiB, 8MB or 1GiB")
    return size


def build_budgets(
    max_latency_increase: str | float | None = None,
    budgets: Iterable[str | Budget] = (),
    *,
    load: bool = False,
    sizes: bool = False,
    scope: Scope | None = None,
) -> tuple[Budget, ...]:
    """The gated checks of a comparison.

    ``max_latency_increase`` (default 15 %) applies to every family's default metrics in
    ``scope`` (latency.p50 and latency.p95; load.p50 and load.p99 with a load scenario,
    ``load``; latency_slope with a size column, ``sizes``); each extra budget replaces the
    one for its metric or adds one. Metrics without a budget are still measured and reported.
    """
    if scope is None:
        scope = Scope(loads=load, size_column="" if sizes else None)
    default_limit = parse_limit(
        DEFAULT_MAX_LATENCY_INCREASE if max_latency_increase is None else max_latency_increase,
        option=option("max_latency_increase"),
    )
    names = [name for family in families() for name in family.default_metrics(scope)]
    chosen = {name: Budget(parse_metric(name), default_limit, by_default=True) for name in names}
    given: set[str] = set()
    for item in budgets:
        budget = item if isinstance(item, Budget) else parse_budget(item)
        if budget.metric.name in given:
            raise BudgetError(f"budget for {budget.metric.name} is given twice")
        given.add(budget.metric.name)
        chosen[budget.metric.name] = budget
    return tuple(sorted(chosen.values(), key=_metric_order))


def check_measured(budgets: Iterable[Budget], scope: Scope) -> None:
    """A usage error for the first budget on a metric that ``scope`` does not measure."""
    for budget in budgets:
        why = family_of(budget.metric).unmeasured(budget.metric, scope)
        if why is not None:
            raise UsageError(f"budget {budget}: {why}")


def _metric_order(budget: Budget) -> tuple[int, float, str]:
    quantile = budget.metric.quantile
    return (family_of(budget.metric).order, 2.0 if quantile is None else quantile, budget.metric.name)
