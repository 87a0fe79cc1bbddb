"""What every metric family shares: budgets, the observations they judge, the family
interface, and the rule that turns an interval and a budget into a verdict.

A family (latency, throughput, memory, cold start, load, latency slope, or one of your
own) is one module with one ``Family`` subclass that

* parses and names its metrics (``parse``: ``'latency.p95'`` -> Metric, or None when the
  name is not its own) and their limits (``parse_budget``),
* says which of its metrics are gated by default (``default_metrics``) and why a budget
  on one of them would measure nothing in a given comparison (``unmeasured``), so that
  such a budget is a usage error decided in one place,
* builds its checks from the observations (``slots``: one per metric and place, each
  with its budget or None and a ``judge`` that turns samples into a Check),
* describes a check's place ("batch 32", "concurrency 4") and formats its values,
* declares what it needs of a run (``needs_same_rows``, ``needs_cold_starts``,
  ``needs_windows``, ...): the rest of perfgate reads these through ``family_of`` and never
  tests a family's name.

Families are registered by name in ``perfgate.metrics`` (``register_family``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from perfgate.errors import BudgetError
from perfgate.formatting import format_change, format_value
from perfgate.detectable import detectable_ratio
from perfgate.measurements import GenerationSeries, GenerationsCompared, LoadSeries, OutputsCompared, Series, concatenated
from perfgate.results import Check, Metric, Verdict
from perfgate.stats import (
    RatioInterval, UnusableSamples, min_samples_for_quantile, ratio_interval, statistic, with_instance_variation,
)

DEFAULT_MEMORY_FLOOR = 5 * 2**20  # bytes
MAX_RATIO_FORM = 10.0
LIMIT_FORMS = "15%, +15%, -10% (a change in percent) or 1.15 (a ratio candidate/reference, 1 to 10)"


@dataclass(frozen=True)
class Budget:
    """A limit on metric(candidate) / metric(reference) (``limit``), for memory on the
    increase in bytes (``absolute_bytes``), or on the metric's own value (``threshold``,
    a lower bound where ``at_least``: ``outputs.cosine:>=0.99``)."""

    metric: Metric
    limit: float | None  # the ratio bound: an upper bound, or a lower bound for higher-is-better metrics
    absolute_bytes: float | None = None
    threshold: float | None = None
    at_least: bool = False
    percent: bool = field(default=False, compare=False)  # the threshold was written as a percentage
    by_default: bool = field(default=False, compare=False)  # one of the defaults, not asked for by name
    gated: bool = field(default=True, compare=False)  # False: judged for information only (see perfgate.engine.pacing)

    @property
    def limit_text(self) -> str:
        if self.threshold is not None:
            number = f"{self.threshold * 100:.12g}%" if self.percent else repr(self.threshold).removesuffix(".0")
            return (">=" if self.at_least else "<=") + number
        if self.absolute_bytes is not None:
            return f"+{self.absolute_bytes / 2**20:g}MiB"
        return format_change(self.limit)

    @property
    def bound(self) -> float | None:
        """The number a check is held to: the threshold, else the ratio bound."""
        return self.threshold if self.threshold is not None else self.limit

    def __str__(self) -> str:
        return f"{self.metric.name}:{self.limit_text}"


@dataclass(frozen=True)
class Scope:
    """What a comparison is set to measure, as far as budgets care."""

    batch_sizes: tuple[int, ...] = (1,)
    loads: bool = False  # any --concurrency or --rate scenario
    size_column: str | None = None
    cold_starts: int = 0  # cold start samples per model (the measuring worker's own and fresh ones)
    on_gpu: bool = False
    outputs: bool = False  # both models' outputs are compared
    generate: bool = False  # generative models, timed per request (--task generate)
    served: bool = False  # both models are endpoints: measured from a client, on machines perfgate does not see


@dataclass(frozen=True)
class Observations:
    """Everything a comparison measured, as the families need it."""

    series: tuple[Series, ...]
    loads: tuple[LoadSeries, ...] = ()
    cold_starts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # seconds, paired by index
    memory: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per side: peak_rss, load_rss, …
    sizes: Mapping[int, np.ndarray] = field(default_factory=dict)  # batch size -> each batch's total size
    size_column: str | None = None
    memory_floor: float = DEFAULT_MEMORY_FLOOR
    outputs: OutputsCompared | None = None  # None: outputs were not compared
    generations: tuple[GenerationSeries, ...] = ()  # generate mode: the requests, in block pairs
    answers: GenerationsCompared | None = None  # generate mode: both models' greedy answers compared


Judge = Callable[[Budget | None, float, int], Check]  # (budget, interval level, bootstrap seed) -> Check

# Where a slot stands in the report: the checks of one batch size together, then those of
# each load scenario, then the per-model ones; within a place, in family order.
PER_MODEL: tuple[int, ...] = (2,)


def at_batch(index: int) -> tuple[int, ...]:
    return (0, index)


def at_load(index: int) -> tuple[int, ...]:
    return (1, index)


@dataclass(frozen=True)
class Slot:
    """One check to make: a metric at a place, its budget (None: reported for information)."""

    metric: Metric
    budget: Budget | None
    judge: Judge
    place: tuple[int, ...] = PER_MODEL


class Family:
    """One kind of metric; subclass it, set the class attributes, override what differs."""

    name: ClassVar[str]  # the family's name, as Metric.family
    forms: ClassVar[str]  # its metric names as a user writes them, for error messages
    order: ClassVar[int] = 100  # its place among the families in reports
    statistical: ClassVar[bool] = True  # decided on an interval (its gated checks share alpha)

    # What the rest of perfgate asks of a family, so that it never tests a family's name:
    needs_same_rows: ClassVar[bool] = False
    """Its checks pair the two models' answers row by row, so both must read the same rows:
    a budget on it with data drift (``--reference-data``/``--candidate-data``) is a usage error."""

    sensitive_to_instances: ClassVar[bool] = False
    """Its ratio moves between two worker processes of the same model (memory layout, CPU
    placement) by about as much as a ratio budget within ``config.TIGHT_BUDGET_MARGIN`` of no
    change, so such a budget runs each model in several worker instances by default."""

    needs_cold_starts: ClassVar[bool] = False
    """Its samples are fresh worker starts: a budget on it starts ``config.DEFAULT_COLD_STARTS``
    fresh workers per model where ``--cold-starts`` does not say how many."""

    needs_windows: ClassVar[bool] = False
    """Its samples are throughput windows of their own (calls back to back, synchronised once):
    a budget on it has them measured beside every block pair, where otherwise, on a CPU, each
    latency block stands in for a window."""

    one_sample_per_call: ClassVar[bool] = False
    """Each call in the block pairs is one of its samples, so the warm-up's pace tells before
    measuring whether the time budget gives it ``min_samples`` (``perfgate.engine.pacing``)."""

    resolvable_by_noise: ClassVar[bool] = True
    """Its intervals narrow as block pairs add up, so the run's noise says what time budget or
    budget would resolve an undecided check (``perfgate.judge.resolution``); False for a value exact
    on the rows compared, which more time does not change."""

    tracked_as: ClassVar[str | None] = None
    """What its checks' values are called where values are tracked over time (a Bencher
    measure), where the unit does not say it: a cold start is in ns as a latency is, but
    tracking the two as one measure would mix seconds of start-up with microseconds of calls."""

    judged_against_a_baseline: ClassVar[bool] = False
    """A stored baseline (``perfgate run --save``) holds the samples it judges: its
    ``baseline_slots`` and ``judge_against_baseline`` decide it against one. Any other
    family's budget needs both models in the same run."""

    reads_requests: ClassVar[bool] = False
    """Its values are a generative model's requests' (``request_values``): ``measure()`` of
    one such model takes a budget on it (``ttft_p95="200ms"``, ``tokens_per_s="50/s"``)."""

    def request_values(self, request: Any) -> Sequence[float]:
        """Where ``reads_requests``: what this family reads of one request (a RequestTiming)."""
        return ()

    def parse(self, name: str) -> Metric | None:
        """The metric called ``name``, or None when the name is not this family's."""
        raise NotImplementedError

    def parse_budget(self, metric: Metric, limit: str, option: str) -> Budget:
        """``limit`` as written after ``METRIC:``; a percentage, or a ratio for lower-is-better metrics."""
        if metric.higher_is_better:
            if not limit.endswith("%"):
                raise BudgetError(f"{option}: write {metric.name} budgets as a percentage, e.g. {metric.name}:-10%")
            return Budget(metric, percent_ratio(limit, option))
        return Budget(metric, parse_limit(limit, option=option))

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        """Metrics gated by the default latency budget in this scope."""
        return ()

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        """Why a budget on ``metric`` would measure nothing in ``scope`` (what to add), or None."""
        return None

    def min_samples(self, metric: Metric) -> int:
        """Samples per model and place before a look can decide ``metric``."""
        return 2

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        """This family's checks on ``observations``; ``budgets`` holds every budget by metric name."""
        raise NotImplementedError

    def place(self, check: Check) -> str:
        """Where a check was measured, as the text report's "at" column says it."""
        return "" if check.batch_size is None else f"batch {check.batch_size}"

    def where(self, check: Check) -> str:
        """'latency.p95 at batch 1', 'load.p99 at concurrency 4', 'memory.peak_rss'."""
        place = self.place(check)
        return f"{check.metric} at {place}" if place else str(check.metric)

    def format_value(self, value: float | None, check: Check) -> str:
        return format_value(value, check.unit)

    def test_samples(self, check: Check, observations: Observations) -> tuple[np.ndarray, np.ndarray] | None:
        """The two samples a Mann–Whitney test compares for this check, or None for no test."""
        return None

    def baseline_slots(self, budgets: Mapping[str, Budget], batch_size: int) -> list[tuple[Metric, Budget | None]]:
        """Where ``judged_against_a_baseline``: this family's checks at ``batch_size`` against a
        stored baseline, each with its budget (None: for information); ``budgets`` by metric name."""
        return []

    def judge_against_baseline(
        self, metric: Metric, stored: Any, measured: Any, budget: Budget | None, level: float, seed: int
    ) -> Check:
        """``metric`` of ``measured`` (the candidate's measurement now, ``perfgate.engine.single``)
        against ``stored`` (the baseline's at the same batch size, ``perfgate.engine.baseline``): the
        two runs were not paired, so on an unpaired interval (``stats.unpaired_interval``)."""
        raise NotImplementedError


# --- limits ----------------------------------------------------------------------------------


def parse_limit(value: str | float, *, option: str = "budget") -> float:
    """The ratio bound that ``value`` allows on a lower-is-better metric."""
    if isinstance(value, bool):
        raise BudgetError(f"{option}: {value!r} is not a limit; accepted forms: {LIMIT_FORMS}")
    if isinstance(value, (int, float)):
        return _checked_ratio(float(value), str(value), option)
    text = value.strip()
    if text.endswith("%"):
        return percent_ratio(text, option)
    return _checked_ratio(_parse_number(text, text, option), text, option)


def percent_ratio(text: str, option: str) -> float:
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


# --- judging ---------------------------------------------------------------------------------


def budget_fields(budget: Budget | None) -> dict[str, Any]:
    if budget is None:
        return {"budget": None, "limit": None, "absolute_limit": None}
    return {"budget": budget.limit_text, "limit": budget.bound, "absolute_limit": budget.absolute_bytes}


def undecided(common: dict, budget: Budget | None, reason: str, values: tuple | None = None) -> Check:
    """A check without an interval: inconclusive where it has a budget, info where not."""
    verdict = Verdict.INFO if budget is None else Verdict.INCONCLUSIVE
    reference, candidate = values if values is not None else (None, None)
    return Check(verdict=verdict, reason=reason, reference=reference, candidate=candidate, ratio=None, ci=None,
                 ci_level=None, **common)  # fmt: skip


def decided(common: dict, budget: Budget | None, interval: RatioInterval, values: tuple, *, higher_is_better: bool) -> Check:
    """The verdict of an interval against a budget: fail when the whole interval is on the
    wrong side of the limit, pass when it is all on the right side (the limit included),
    inconclusive when it straddles it."""
    low, high = interval.low, interval.high
    span = f"{format_change(low, 1)} to {format_change(high, 1)}"
    fields = dict(reference=values[0], candidate=values[1], ratio=interval.estimate, ci=(low, high), ci_level=interval.level,
                  detectable=detectable_ratio(interval.se_log, interval.level, higher_is_better=higher_is_better))  # fmt: skip
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=f"CI {span}", **fields, **common)
    limit, text = budget.limit, budget.limit_text
    if not higher_is_better:
        if low > limit:
            verdict, reason = Verdict.FAIL, f"at least {format_change(low, 1)} (CI {span}), over the {text} budget"
        elif high <= limit:
            verdict, reason = Verdict.PASS, f"at most {format_change(high, 1)} (CI {span}), within the {text} budget"
        else:
            verdict, reason = Verdict.INCONCLUSIVE, f"CI {span} straddles the {text} budget"
    elif high < limit:
        verdict, reason = Verdict.FAIL, f"at most {format_change(high, 1)} (CI {span}), under the {text} budget"
    elif low >= limit:
        verdict, reason = Verdict.PASS, f"at least {format_change(low, 1)} (CI {span}), within the {text} budget"
    else:
        verdict, reason = Verdict.INCONCLUSIVE, f"CI {span} straddles the {text} budget"
    return Check(verdict=verdict, reason=reason, **fields, **common)


def quantile_check(
    metric: Metric,
    reference_blocks: Sequence[np.ndarray],
    candidate_blocks: Sequence[np.ndarray],
    budget: Budget | None,
    level: float,
    seed: int,
    *,
    place: Mapping[str, Any],
    blocks: int,
    instances: Sequence[int] = (),
) -> Check:
    """A quantile (or the mean) of paired blocks of latencies, decided on its ratio's interval."""
    q = metric.quantile
    reference, candidate = concatenated(reference_blocks), concatenated(candidate_blocks)
    common = dict(metric=metric, unit="ns", n_reference=int(reference.size), n_candidate=int(candidate.size),
                  blocks=blocks, **place, **budget_fields(budget))  # fmt: skip
    needed = min_samples_for_quantile(q)
    if min(reference.size, candidate.size) < needed:
        reason = f"insufficient samples: {min(reference.size, candidate.size)} per model, {metric.name} needs {needed}"
        return undecided(common, budget, reason)
    try:
        interval = ratio_interval(reference_blocks, candidate_blocks, q, level, seed=seed)
        if instances:
            interval = with_instance_variation(interval, reference_blocks, candidate_blocks, instances, q)
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    values = (statistic(reference, q), statistic(candidate, q))
    return decided(common, budget, interval, values, higher_is_better=False)


def parse_quantile_metric(family: str, name: str) -> Metric | None:
    """``<family>.pNN`` (0 < NN < 100) or ``<family>.mean``."""
    if name == f"{family}.mean":
        return Metric(name, family, None)
    match = re.match(rf"^{re.escape(family)}\.p(\d{{1,2}}(?:\.\d+)?)$", name)
    if match and 0.0 < float(match.group(1)) < 100.0:
        return Metric(name, family, float(match.group(1)) / 100.0)
    return None


def bind(function: Callable[..., Check], *args: Any) -> Judge:
    """A Judge that calls ``function(*args, budget=, level=, seed=)``."""
    return lambda budget, level, seed: function(*args, budget=budget, level=level, seed=seed)
