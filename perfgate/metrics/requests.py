"""What the generative families share (ttft, itl, e2e, tokens_per_s): each takes the
request block pairs of a ``GenerationSeries`` and reads what it needs of each request.

A request's inter-token gaps are correlated (the same prompt, the same KV cache, the same
moment of the machine), so no interval treats them as independent samples: the bootstrap
resamples whole blocks of requests (``stats.ratio_interval``), the same prompts on both
models, and a block's gaps travel together. docs/deciding.md says why.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from perfgate.errors import option
from perfgate.measurements import GenerationSeries, RequestTiming
from perfgate.metrics.base import (
    Budget, Family, Observations, Scope, Slot, at_batch, at_load, bind, parse_quantile_metric, quantile_check,
)
from perfgate.results import Check, Metric
from perfgate.stats import min_samples_for_quantile

Values = Callable[[RequestTiming], Sequence[int]]


def one_shot_only(metric: Metric, scope: Scope) -> str | None:
    """Why a one-shot family's budget measures nothing in generate mode, or None."""
    if scope.generate:
        return (f"{metric.name} times one-shot calls; a generative model ({option('task', 'generate')}) is gated on "
                f"ttft, itl, e2e and tokens_per_s")  # fmt: skip
    return None


def generate_only(metric: Metric, scope: Scope) -> str | None:
    if not scope.generate:
        return f"{metric.name} times a generative model's requests; it needs {option('task', 'generate')}"
    return None


def place_of(series: GenerationSeries, index: int) -> tuple[int, ...]:
    """One request at a time first, then each load scenario, as for one-shot models."""
    return at_batch(index) if series.scenario is None else at_load(index)


def blocks_of(series: GenerationSeries, side: str, values: Values) -> list[np.ndarray]:
    """Per block of requests, the values each request gives, in one array."""
    return [
        np.asarray([value for request in block for value in values(request)], dtype=np.int64) for block in series.blocks(side)
    ]


class RequestQuantiles(Family):
    """A quantile (or the mean) of a per-request value, judged on blocks of requests."""

    values: Values
    reads_requests = True
    sensitive_to_instances = True
    needs_same_rows = True  # both models answer the same prompts, pair by pair

    def parse(self, name: str) -> Metric | None:
        return parse_quantile_metric(self.name, name)

    def request_values(self, request: RequestTiming) -> Sequence[int]:
        return self.values(request)

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        return generate_only(metric, scope)

    def min_samples(self, metric: Metric) -> int:
        return min_samples_for_quantile(metric.quantile)

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        ours = [budget for budget in budgets.values() if budget.metric.family == self.name]
        metrics = [(budget.metric, budget) for budget in ours]
        shown = {metric for metric, _ in metrics}
        metrics += [(self.parse(name), None) for name in self.reported if name not in shown]
        return [
            Slot(metric, budget, bind(self._check, series, metric), place_of(series, index))
            for index, series in enumerate(observations.generations)
            for metric, budget in metrics
        ]

    reported: tuple[str, ...] = ()  # shown for information where no budget names them

    def place(self, check: Check) -> str:
        return check.scenario

    def test_samples(self, check: Check, observations: Observations) -> tuple[np.ndarray, np.ndarray] | None:
        for series in observations.generations:
            if series.label == check.scenario:
                return tuple(np.concatenate(blocks_of(series, side, self.values)) for side in ("reference", "candidate"))
        return None

    def _check(self, series: GenerationSeries, metric: Metric, *, budget, level, seed) -> Check:
        pick = self.values
        return quantile_check(
            metric, blocks_of(series, "reference", pick), blocks_of(series, "candidate", pick), budget, level, seed,
            place={"batch_size": None, "scenario": series.label}, blocks=series.pairs,
            instances=series.instances,
        )  # fmt: skip
