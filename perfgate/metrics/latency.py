"""latency.pNN and latency.mean: one call's latency at each batch size, from the
interleaved blocks; gated by default at p50 and p95."""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, at_batch, bind, quantile_check
from perfgate.results import Check, Metric, Series
from perfgate.stats import min_samples_for_quantile



def parse_quantile_metric(family: str, name: str) -> Metric | None:
    """``<family>.pNN`` (0 < NN < 100) or ``<family>.mean``."""
    if name == f"{family}.mean":
        return Metric(name, family, None)
    match = re.match(rf"^{re.escape(family)}\.p(\d{{1,2}}(?:\.\d+)?)$", name)
    if match and 0.0 < float(match.group(1)) < 100.0:
        return Metric(name, family, float(match.group(1)) / 100.0)
    return None


class Latency(Family):
    name = "latency"
    forms = "latency.p50, latency.p95, latency.pNN, latency.mean"
    order = 0

    def parse(self, name: str) -> Metric | None:
        return parse_quantile_metric("latency", name)

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        return ("latency.p50", "latency.p95")

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


def _check(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    return quantile_check(
        metric, series.reference, series.candidate, budget, level, seed,
        place=dict(batch_size=series.batch_size), blocks=series.pairs, instances=series.instances,
    )  # fmt: skip


FAMILY = Latency()
