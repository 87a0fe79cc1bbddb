"""latency_slope: how fast latency grows with input size (``--size-column``), the ratio
of the two models' least-squares slopes, per batch size; gated by default when a size
column is given."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from perfgate.errors import option
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, at_batch, bind, budget_fields, decided, undecided
from perfgate.measurements import Series
from perfgate.results import Check, Metric
from perfgate.sizes import sized_blocks
from perfgate.metrics.requests import one_shot_only
from perfgate.stats import UnusableSamples, slope_interval


class LatencySlope(Family):
    name = "latency_slope"
    forms = "latency_slope"
    order = 3

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name) if name == "latency_slope" else None

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        return ("latency_slope",) if scope.size_column is not None else ()

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if scope.generate:
            return one_shot_only(metric, scope)
        return None if scope.size_column is not None else f"a latency slope needs {option('size_column', 'COL')}"

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        if observations.size_column is None:
            return []
        metric = self.parse("latency_slope")
        return [
            Slot(metric, budgets.get(metric.name), bind(_check, series, observations.sizes[series.batch_size], observations.size_column), at_batch(index))
            for index, series in enumerate(observations.series)
            if series.batch_size in observations.sizes
        ]


def _check(series: Series, sizes: np.ndarray, column: str, *, budget, level, seed) -> Check:
    common = dict(metric=FAMILY.parse("latency_slope"), batch_size=series.batch_size, unit=f"ns/{column}", scenario=column,
                  n_reference=sum(map(len, series.reference)), n_candidate=sum(map(len, series.candidate)),
                  blocks=series.pairs, **budget_fields(budget))  # fmt: skip
    try:
        fit = slope_interval(sized_blocks(series, sizes, "reference"), sized_blocks(series, sizes, "candidate"), level, seed=seed)
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    if fit.interval is None:
        return undecided(common, budget, fit.note, values=(fit.reference_slope, fit.candidate_slope))
    return decided(common, budget, fit.interval, (fit.reference_slope, fit.candidate_slope), higher_is_better=False)


FAMILY = LatencySlope()
