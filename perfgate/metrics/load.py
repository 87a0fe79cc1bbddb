"""load.pNN and load.mean: latency under load (queueing plus service) per load scenario,
from paired episodes of the same arrivals; gated by default at p50 and p99 when a
scenario is asked for."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from perfgate.errors import option
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, at_load, bind, quantile_check
from perfgate.metrics.latency import parse_quantile_metric
from perfgate.measurements import LoadSeries, concatenated
from perfgate.results import Check, Metric
from perfgate.metrics.requests import one_shot_only
from perfgate.stats import min_samples_for_quantile


class Load(Family):
    name = "load"
    forms = "load.pNN, load.mean"
    order = 2
    sensitive_to_instances = True

    def parse(self, name: str) -> Metric | None:
        return parse_quantile_metric("load", name)

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        # generate mode's load scenarios are judged by ttft, itl, e2e and tokens_per_s at each scenario
        return ("load.p50", "load.p99") if scope.loads and not scope.generate else ()

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if scope.generate:
            return one_shot_only(metric, scope)
        return None if scope.loads else f"latency under load needs {option('concurrency', 'N')} or {option('rates', 'QPS')}"

    def min_samples(self, metric: Metric) -> int:
        return min_samples_for_quantile(metric.quantile)

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        ours = [budget for budget in budgets.values() if budget.metric.family == self.name]
        return [
            Slot(budget.metric, budget, bind(_check, load, budget.metric), at_load(index))
            for index, load in enumerate(observations.loads)
            for budget in ours
        ]

    def place(self, check: Check) -> str:
        return check.scenario

    def test_samples(self, check: Check, observations: Observations) -> tuple[np.ndarray, np.ndarray] | None:
        for load in observations.loads:
            if (load.batch_size, load.scenario.label) == (check.batch_size, check.scenario):
                return concatenated(load.latencies("reference")), concatenated(load.latencies("candidate"))
        return None


def _check(load: LoadSeries, metric: Metric, *, budget, level, seed) -> Check:
    return quantile_check(
        metric, load.latencies("reference"), load.latencies("candidate"), budget, level, seed,
        place=dict(batch_size=load.batch_size, scenario=load.scenario.label), blocks=load.pairs,
    )  # fmt: skip


FAMILY = Load()
