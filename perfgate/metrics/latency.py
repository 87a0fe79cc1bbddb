"""latency.pNN and latency.mean: one call's latency at each batch size, from the
interleaved blocks; gated by default at p50 and p95."""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from perfgate.metrics.base import (
    Budget, Family, Observations, Scope, Slot, at_batch, bind, budget_fields, decided, parse_quantile_metric, quantile_check,
    undecided,
)
from perfgate.measurements import Series
from perfgate.metrics.requests import one_shot_only
from perfgate.results import Check, Metric
from perfgate.stats import UnusableSamples, min_samples_for_quantile, statistic, unpaired_interval

# reported against a stored baseline beside the budgeted ones
BASELINE_METRICS = ("latency.p50", "latency.p95", "latency.p99", "latency.mean")



class Latency(Family):
    name = "latency"
    forms = "latency.p50, latency.p95, latency.pNN, latency.mean"
    order = 0
    sensitive_to_instances = True
    one_sample_per_call = True
    judged_against_a_baseline = True

    def parse(self, name: str) -> Metric | None:
        return parse_quantile_metric("latency", name)

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        return () if scope.generate else ("latency.p50", "latency.p95")

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        return one_shot_only(metric, scope)

    def min_samples(self, metric: Metric) -> int:
        return min_samples_for_quantile(metric.quantile)

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        ours = [budget for budget in budgets.values() if budget.metric.family == self.name]
        return [
            Slot(budget.metric, budget, bind(_check, series, budget.metric), at_batch(index))
            for index, series in enumerate(observations.series)
            for budget in ours
        ]

    def test_samples(self, check: Check, observations: Observations) -> tuple[np.ndarray, np.ndarray] | None:
        for series in observations.series:
            if series.batch_size == check.batch_size:
                return series.samples("reference"), series.samples("candidate")
        return None

    def baseline_slots(self, budgets: Mapping[str, Budget], batch_size: int) -> list[tuple[Metric, Budget | None]]:
        metrics = [budget.metric for budget in budgets.values() if budget.metric.family == self.name]
        metrics += [self.parse(name) for name in BASELINE_METRICS if name not in budgets]
        metrics.sort(key=lambda metric: 2.0 if metric.quantile is None else metric.quantile)
        return [(metric, budgets.get(metric.name)) for metric in metrics]

    def judge_against_baseline(self, metric, stored, measured, budget, level, seed) -> Check:
        reference_blocks, candidate_blocks = stored.blocks, measured.blocks
        reference, candidate = np.concatenate(reference_blocks), np.concatenate(candidate_blocks)
        common = dict(metric=metric, batch_size=measured.batch_size, unit="ns", n_reference=int(reference.size),
                      n_candidate=int(candidate.size), blocks=min(len(reference_blocks), len(candidate_blocks)),
                      **budget_fields(budget))  # fmt: skip
        needed = min_samples_for_quantile(metric.quantile)
        if min(reference.size, candidate.size) < needed:
            reason = f"insufficient samples: {min(reference.size, candidate.size)} per model, {metric.name} needs {needed}"
            return undecided(common, budget, reason)
        try:
            interval = unpaired_interval(reference_blocks, candidate_blocks, metric.quantile, level, seed)
        except UnusableSamples as exc:
            return undecided(common, budget, f"unusable samples: {exc}")
        values = (statistic(reference, metric.quantile), statistic(candidate, metric.quantile))
        return decided(common, budget, interval, values, higher_is_better=False)


def _check(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    return quantile_check(
        metric, series.reference, series.candidate, budget, level, seed,
        place=dict(batch_size=series.batch_size), blocks=series.pairs, instances=series.instances,
    )  # fmt: skip


FAMILY = Latency()
