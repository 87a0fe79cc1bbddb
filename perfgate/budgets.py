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
LOAD_DEFAULT_METRICS = ("load.p50", "load.p99")  # with --concurrency or --rate
SLOPE_DEFAULT_METRICS = ("latency_slope",)  # with --size-column
MAX_RATIO_FORM = 10.0

LIMIT_FORMS = "15%, +15%, -10% (a change in percent) or 1.15 (a ratio candidate/reference, 1 to 10)"
METRIC_FORMS = (
    "latency.p50, latency.p95, latency.pNN, latency.mean, throughput, throughput.batchN, "
    "memory.peak_rss, memory.load_rss, memory.gpu_peak, cold_start, load.pNN, load.mean, latency_slope"
)

_QUANTILE = re.compile(r"^(latency|load)\.p(\d{1,2}(?:\.\d+)?)$")
_THROUGHPUT = re.compile(r"^throughput(?:\.batch(\d+))?$")
_BYTES = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)$")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "KiB": 2**10, "MB": 1e6, "MiB": 2**20, "GB": 1e9, "GiB": 2**30}
MEMORY_METRICS = ("memory.peak_rss", "memory.load_rss", "memory.gpu_peak")


@dataclass(frozen=True)
class Metric:
    """A measured quantity and how to compare it.

    ``family`` says where it comes from: latency and throughput are per batch size, load
    per load scenario, latency_slope per batch size with --size-column, memory and
    cold_start per model.
    """

    name: str
    family: str  # latency | throughput | memory | cold_start | load | latency_slope
    quantile: float | None = None  # latency and load: None is the mean
    batch_size: int | None = None  # throughput.batchN only
    higher_is_better: bool = False

    @property
    def statistic(self) -> str:
        return "mean" if self.quantile is None else "quantile"


@dataclass(frozen=True)
class Budget:
    """A limit on metric(candidate) / metric(reference) (``limit``), or for memory on the
    increase in bytes (``absolute_bytes``)."""

    metric: Metric
    limit: float | None  # the ratio bound: an upper bound, or a lower bound for higher-is-better metrics
    absolute_bytes: float | None = None

    @property
    def limit_text(self) -> str:
        if self.absolute_bytes is not None:
            return f"+{self.absolute_bytes / 2**20:g}MiB"
        return format_change(self.limit)

    @property
    def max_ratio(self) -> float:
        """The limit as the largest allowed ratio (lower-is-better metrics)."""
        return self.limit

    def __str__(self) -> str:
        return f"{self.metric.name}:{self.limit_text}"


def parse_metric(text: str) -> Metric:
    name = text.strip()
    if name in ("latency.mean", "load.mean"):
        return Metric(name, name.split(".")[0], None)
    match = _QUANTILE.match(name)
    if match:
        percent = float(match.group(2))
        if 0.0 < percent < 100.0:
            return Metric(name, match.group(1), percent / 100.0)
    match = _THROUGHPUT.match(name)
    if match:
        batch = int(match.group(1)) if match.group(1) else None
        if batch is None or batch >= 1:
            return Metric(name, "throughput", batch_size=batch, higher_is_better=True)
    if name in MEMORY_METRICS:
        return Metric(name, "memory")
    if name in ("cold_start", "latency_slope"):
        return Metric(name, name)
    raise BudgetError(f"unknown metric {text!r}; known metrics: {METRIC_FORMS}")


def parse_limit(value: str | float, *, option: str = "budget") -> float:
    """The ratio bound that ``value`` allows on a lower-is-better metric."""
    if isinstance(value, bool):
        raise BudgetError(f"{option}: {value!r} is not a limit; accepted forms: {LIMIT_FORMS}")
    if isinstance(value, (int, float)):
        return _checked_ratio(float(value), str(value), option)
    text = value.strip()
    if text.endswith("%"):
        return _percent(text, option)
    return _checked_ratio(_parse_number(text, text, option), text, option)


def parse_budget(text: str) -> Budget:
    """``'latency.p95:+10%'`` -> Budget(latency.p95, 1.10); ``'memory.peak_rss:+50MB'``."""
    metric_text, sep, limit_text = text.partition(":")
    if not sep or not metric_text.strip() or not limit_text.strip():
        raise BudgetError(
            f"cannot parse budget {text!r}: expected METRIC:LIMIT such as latency.p95:+10% "
            f"(metrics: {METRIC_FORMS}; limits: {LIMIT_FORMS})"
        )
    metric = parse_metric(metric_text)
    option = f"budget {text!r}"
    limit = limit_text.strip()
    if metric.family == "memory":
        absolute = _BYTES.match(limit)
        if absolute:
            return Budget(metric, None, float(absolute.group(1)) * _UNITS[absolute.group(2)])
    if metric.higher_is_better:
        if not limit.endswith("%"):
            raise BudgetError(f"{option}: write {metric.name} budgets as a percentage, e.g. {metric.name}:-10%")
        return Budget(metric, _percent(limit, option))
    return Budget(metric, parse_limit(limit, option=option))


def parse_memory_size(value: str | float, *, option: str) -> float:
    """``'5MiB'``, ``'8MB'``, ``'1GiB'`` or a number of bytes -> bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise BudgetError(f"{option}: {value!r} is not a size")
        return float(value)
    match = _BYTES.match(str(value).strip())
    if not match:
        raise BudgetError(f"{option}: cannot read {value!r}; write a size such as 5MiB, 8MB or 1GiB")
    return float(match.group(1)) * _UNITS[match.group(2)]


def build_budgets(
    max_latency_increase: str | float | None = None,
    budgets: Iterable[str | Budget] = (),
    *,
    load: bool = False,
    sizes: bool = False,
) -> tuple[Budget, ...]:
    """The gated checks of a comparison.

    ``max_latency_increase`` (default 15 %) applies to latency.p50 and latency.p95, and,
    when their scenarios are asked for, to load.p50 and load.p99 (``load``) and to
    latency_slope (``sizes``); each extra budget replaces the one for its metric or adds
    one. Metrics without a budget are still measured and reported.
    """
    default_limit = parse_limit(
        DEFAULT_MAX_LATENCY_INCREASE if max_latency_increase is None else max_latency_increase,
        option="--max-latency-increase",
    )
    names = DEFAULT_METRICS + (LOAD_DEFAULT_METRICS if load else ()) + (SLOPE_DEFAULT_METRICS if sizes else ())
    chosen = {name: Budget(parse_metric(name), default_limit) for name in names}
    given: set[str] = set()
    for item in budgets:
        budget = item if isinstance(item, Budget) else parse_budget(item)
        if budget.metric.name in given:
            raise BudgetError(f"budget for {budget.metric.name} is given twice")
        given.add(budget.metric.name)
        chosen[budget.metric.name] = budget
    return tuple(sorted(chosen.values(), key=_metric_order))


_FAMILY_ORDER = {"latency": 0, "throughput": 1, "load": 2, "latency_slope": 3, "memory": 4, "cold_start": 5}


def _metric_order(budget: Budget) -> tuple[int, float, str]:
    quantile = budget.metric.quantile
    return (_FAMILY_ORDER[budget.metric.family], 2.0 if quantile is None else quantile, budget.metric.name)


def _percent(text: str, option: str) -> float:
    number = _parse_number(text[:-1], text, option)
    ratio = 1.0 + number / 100.0
    if ratio <= 0.0:
        raise BudgetError(f"{option}: {text!r} is a change of -100% or more, which no candidate can meet")
    return ratio


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
