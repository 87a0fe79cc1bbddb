"""From what was measured and the budgets to checks and a verdict.

A check is one metric at one place: a batch size (latency, throughput, latency_slope),
a load scenario (load), or the model as a whole (memory, cold_start). Statistical checks
get the ratio candidate / reference with a confidence interval (stats.ratio_interval, or
stats.slope_interval for the slope), and against a budget with limit L:

* fail          when the whole interval is on the wrong side of L (above it; below it
                for higher-is-better throughput),
* pass          when the whole interval is on the right side of L (L itself included),
* inconclusive  otherwise, and when there are too few samples for the metric (p95 needs
                90 per model, p99 459), or when the samples cannot be used (NaN,
                unpaired blocks, n = 1): such samples are never "significant".

Memory is nearly deterministic, so it gets no interval and no test: its change fails a
budget when it is beyond both the budget and an absolute floor (``memory_floor``, a few
MiB: allocator noise never fails a build).

Metrics without a budget are reported with verdict "info" and never change the verdict.
The gate's error rate is controlled over its gated statistical checks: with m of them,
the interval at look k has level 1 - alpha * 2**-k / m (Bonferroni over checks, an
alpha-spending sequence over looks), so measuring until decided is safe.

The verdict is fail if any check fails, inconclusive if any gated check is undecided,
else pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.budgets import Budget, Metric, parse_metric
from perfgate.formatting import format_bytes, format_change
from perfgate.results import Check, LoadSeries, Series, Verdict
from perfgate.sizes import sized_blocks
from perfgate.stats import (
    RatioInterval,
    UnusableSamples,
    mann_whitney,
    min_samples_for_quantile,
    ratio_interval,
    slope_interval,
    statistic,
)

DEFAULT_MEMORY_FLOOR = 5 * 2**20  # bytes


@dataclass(frozen=True)
class Observations:
    """Everything a comparison measured, as the checks need it."""

    series: tuple[Series, ...]
    loads: tuple[LoadSeries, ...] = ()
    cold_starts: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # seconds, paired by index
    memory: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per side: peak_rss, load_rss, …
    sizes: Mapping[int, np.ndarray] = field(default_factory=dict)  # batch size -> each batch's total size
    size_column: str | None = None
    memory_floor: float = DEFAULT_MEMORY_FLOOR


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
    """Samples per model and batch size (or load scenario) before every budget's quantile can be decided."""
    needed = [min_samples_for_quantile(b.metric.quantile) for b in budgets if b.metric.family in ("latency", "load")]
    return max(needed, default=2)


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
    slots = _slots(observations, budgets)
    gated_statistical = sum(1 for _, budget, _ in slots if budget is not None and budget.metric.family != "memory")
    level = check_level(alpha, look, gated_statistical)
    checks = tuple(judge(budget, level, seed) for _, budget, judge in slots if budget is not None or not gated_only)
    verdict, reason = overall(checks)
    return Evaluation(checks, verdict, reason)


Judge = Callable[[Budget | None, float, int], Check]


def _slots(observations: Observations, budgets: Sequence[Budget]) -> list[tuple[Metric, Budget | None, Judge]]:
    """(metric, its budget or None, how to judge it) for every check, in report order."""
    by_name = {budget.metric.name: budget for budget in budgets}
    slots: list[tuple[Metric, Budget | None, Judge]] = []
    for series in observations.series:
        for budget in budgets:
            if budget.metric.family == "latency":
                slots.append((budget.metric, budget, _bind(_latency_check, series, budget.metric)))
        name = f"throughput.batch{series.batch_size}"
        chosen = by_name.get(name) or by_name.get("throughput")
        if series.windows:
            slots.append((parse_metric(name), chosen, _bind(_throughput_check, series, parse_metric(name))))
        if observations.size_column is not None and series.batch_size in observations.sizes:
            metric = parse_metric("latency_slope")
            sizes = observations.sizes[series.batch_size]
            slots.append((metric, by_name.get("latency_slope"), _bind(_slope_check, series, sizes, observations.size_column)))
    for load in observations.loads:
        for budget in budgets:
            if budget.metric.family == "load":
                slots.append((budget.metric, budget, _bind(_load_check, load, budget.metric)))
    if observations.memory:
        for name in ("memory.peak_rss", "memory.load_rss", "memory.gpu_peak"):
            metric = parse_metric(name)
            measured = any(_memory_value(observations.memory.get(side, {}), name) is not None for side in ("reference", "candidate"))
            if measured or name in by_name:
                slots.append((metric, by_name.get(name), _bind(_memory_check, observations.memory, metric, observations.memory_floor)))
    if observations.cold_starts:
        metric = parse_metric("cold_start")
        slots.append((metric, by_name.get("cold_start"), _bind(_cold_start_check, observations.cold_starts)))
    return slots


def _bind(function: Callable[..., Check], *args: Any) -> Judge:
    return lambda budget, level, seed: function(*args, budget=budget, level=level, seed=seed)


# --- the families ----------------------------------------------------------------------------


def _latency_check(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    return _quantile_check(
        metric, series.reference, series.candidate, budget, level, seed,
        place=dict(batch_size=series.batch_size), blocks=series.pairs,
    )  # fmt: skip


def _load_check(load: LoadSeries, metric: Metric, *, budget, level, seed) -> Check:
    return _quantile_check(
        metric, load.latencies("reference"), load.latencies("candidate"), budget, level, seed,
        place=dict(batch_size=load.batch_size, scenario=load.scenario.label), blocks=load.pairs,
    )  # fmt: skip


def _quantile_check(metric, reference_blocks, candidate_blocks, budget, level, seed, *, place, blocks) -> Check:
    q = metric.quantile
    reference = _pooled(reference_blocks)
    candidate = _pooled(candidate_blocks)
    common = dict(metric=metric.name, unit="ns", n_reference=int(reference.size), n_candidate=int(candidate.size),
                  blocks=blocks, **place, **_budget_fields(budget))  # fmt: skip
    needed = min_samples_for_quantile(q)
    if min(reference.size, candidate.size) < needed:
        reason = f"insufficient samples: {min(reference.size, candidate.size)} per model, {metric.name} needs {needed}"
        return _undecided(common, budget, reason)
    try:
        interval = ratio_interval(reference_blocks, candidate_blocks, q, level, seed=seed)
    except UnusableSamples as exc:
        return _undecided(common, budget, f"unusable samples: {exc}")
    values = (statistic(reference, q), statistic(candidate, q))
    return _decided(common, budget, interval, values, higher_is_better=False)


def _throughput_check(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    samples_per_window = series.calls_per_block * series.batch_size
    windows = {side: np.asarray(series.windows.get(side, ()), dtype=np.float64) for side in ("reference", "candidate")}
    common = dict(metric=metric.name, batch_size=series.batch_size, unit="samples/s", higher_is_better=True,
                  n_reference=int(windows["reference"].size), n_candidate=int(windows["candidate"].size),
                  blocks=series.pairs, **_budget_fields(budget))  # fmt: skip
    try:
        times = ratio_interval(
            [window[None] for window in windows["reference"]], [window[None] for window in windows["candidate"]],
            None, level, seed=seed,
        )  # fmt: skip
    except UnusableSamples as exc:
        return _undecided(common, budget, f"unusable samples: {exc}")
    # throughput ratio = 1 / window-time ratio (both ran the same calls)
    interval = RatioInterval(1 / times.estimate, 1 / times.high, 1 / times.low, times.level, times.blocks, times.se_log)
    values = tuple(samples_per_window / (windows[side].mean() / 1e9) for side in ("reference", "candidate"))
    return _decided(common, budget, interval, values, higher_is_better=True)


def _slope_check(series: Series, sizes: np.ndarray, column: str, *, budget, level, seed) -> Check:
    common = dict(metric="latency_slope", batch_size=series.batch_size, unit=f"ns/{column}", scenario=column,
                  n_reference=sum(map(len, series.reference)), n_candidate=sum(map(len, series.candidate)),
                  blocks=series.pairs, **_budget_fields(budget))  # fmt: skip
    try:
        fit = slope_interval(sized_blocks(series, sizes, "reference"), sized_blocks(series, sizes, "candidate"), level, seed=seed)
    except UnusableSamples as exc:
        return _undecided(common, budget, f"unusable samples: {exc}")
    if fit.interval is None:
        return _undecided(common, budget, fit.note, values=(fit.reference_slope, fit.candidate_slope))
    return _decided(common, budget, fit.interval, (fit.reference_slope, fit.candidate_slope), higher_is_better=False)


def _cold_start_check(cold_starts: Mapping[str, Sequence[float]], *, budget, level, seed) -> Check:
    reference = np.asarray(cold_starts.get("reference", ()), dtype=np.float64) * 1e9
    candidate = np.asarray(cold_starts.get("candidate", ()), dtype=np.float64) * 1e9
    common = dict(metric="cold_start", batch_size=None, unit="ns", n_reference=int(reference.size),
                  n_candidate=int(candidate.size), blocks=int(min(reference.size, candidate.size)),
                  **_budget_fields(budget))  # fmt: skip
    try:
        interval = ratio_interval([v[None] for v in reference], [v[None] for v in candidate], None, level, seed=seed)
    except UnusableSamples as exc:
        values = (float(reference.mean()), float(candidate.mean())) if reference.size and candidate.size else None
        return _undecided(common, budget, f"unusable samples: {exc} (--cold-starts 2 or more)", values=values)
    return _decided(common, budget, interval, (float(reference.mean()), float(candidate.mean())), higher_is_better=False)


def _memory_check(memory: Mapping[str, Mapping[str, Any]], metric: Metric, floor: float, *, budget, level, seed) -> Check:
    reference = _memory_value(memory.get("reference", {}), metric.name)
    candidate = _memory_value(memory.get("candidate", {}), metric.name)
    common = dict(metric=metric.name, batch_size=None, unit="bytes", n_reference=1, n_candidate=1, blocks=0,
                  **_budget_fields(budget))  # fmt: skip
    caveat = _memory_caveat(memory, metric.name)
    if reference is None or candidate is None:
        return _undecided(common, budget, f"{metric.name} is not measured here{caveat}")
    change = candidate - reference
    ratio = candidate / reference if reference else None
    described = f"{'+' if change >= 0 else '-'}{format_bytes(abs(change))}" + (f" ({format_change(ratio, 1)})" if ratio else "")
    values = dict(reference=float(reference), candidate=float(candidate), ratio=ratio, ci=None, ci_level=None)
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=f"{described}{caveat}", **values, **common)
    if budget.absolute_bytes is not None:
        allowed = max(budget.absolute_bytes, floor)
    else:
        relative = (budget.limit - 1.0) * reference
        allowed = max(relative, floor) if budget.limit >= 1.0 else relative + floor
    within = f"the {budget.limit_text} budget (floor {format_bytes(floor)})"
    if change > allowed:
        return Check(verdict=Verdict.FAIL, reason=f"{described}, over {within}{caveat}", **values, **common)
    return Check(verdict=Verdict.PASS, reason=f"{described}, within {within}{caveat}", **values, **common)


# --- shared ----------------------------------------------------------------------------------


def _budget_fields(budget: Budget | None) -> dict[str, Any]:
    if budget is None:
        return {"budget": None, "limit": None, "absolute_limit": None}
    return {"budget": budget.limit_text, "limit": budget.limit, "absolute_limit": budget.absolute_bytes}


def _undecided(common: dict, budget: Budget | None, reason: str, values: tuple | None = None) -> Check:
    verdict = Verdict.INFO if budget is None else Verdict.INCONCLUSIVE
    reference, candidate = values if values is not None else (None, None)
    return Check(verdict=verdict, reason=reason, reference=reference, candidate=candidate, ratio=None, ci=None,
                 ci_level=None, **common)  # fmt: skip


def _decided(common: dict, budget: Budget | None, interval: RatioInterval, values: tuple, *, higher_is_better: bool) -> Check:
    low, high = interval.low, interval.high
    span = f"{format_change(low, 1)} to {format_change(high, 1)}"
    fields = dict(reference=values[0], candidate=values[1], ratio=interval.estimate, ci=(low, high), ci_level=interval.level)
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


def _pooled(blocks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(blocks) if len(blocks) else np.empty(0, dtype=np.int64)


def _memory_value(readings: Mapping[str, Any], name: str) -> float | None:
    key = {"memory.peak_rss": "peak_rss", "memory.load_rss": "load_rss", "memory.gpu_peak": "gpu_peak_allocated_bytes"}[name]
    value = readings.get(key)
    return None if value is None else float(value)


def _memory_caveat(memory: Mapping[str, Mapping[str, Any]], name: str) -> str:
    if name == "memory.peak_rss" and any(memory.get(side, {}).get("peak_includes_load") for side in memory):
        return "; the peak includes loading (the kernel did not allow resetting it)"
    return ""


def with_mann_whitney(evaluation: Evaluation, observations: Observations, alpha: float) -> Evaluation:
    """The evaluation with Mann–Whitney p-values on its latency and load checks (cheap to skip at looks)."""
    tests = {}
    for series in observations.series:
        tests[(series.batch_size, "")] = (series.samples("reference"), series.samples("candidate"))
    for load in observations.loads:
        tests[(load.batch_size, load.scenario.label)] = (_pooled(load.latencies("reference")), _pooled(load.latencies("candidate")))
    results = {key: mann_whitney(reference, candidate, alpha) for key, (reference, candidate) in tests.items()}
    checks = []
    for check in evaluation.checks:
        family = check.metric.split(".")[0]
        key = (check.batch_size, check.scenario if family == "load" else "")
        if family in ("latency", "load") and key in results:
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
    if check.metric.startswith("load."):
        return f"{check.metric} at {check.scenario}"
    if check.batch_size is None or check.metric.startswith("throughput."):
        return check.metric
    return f"{check.metric} at batch {check.batch_size}"

