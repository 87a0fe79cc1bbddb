"""tokens_per_s: a generative model's decode throughput, the new tokens after the first
over the time they took (the prefill is TTFT's), per block of requests; higher is better.
Reported in generate mode, gated where a budget names it (``tokens_per_s:-10%``: at most
10 % fewer tokens per second). The tokens are the model's count, or a served model's
(its streamed usage, else its chunks: the report says which)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from perfgate.measurements import GenerationSeries
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, bind, budget_fields, decided, undecided
from perfgate.metrics.requests import generate_only, place_of
from perfgate.results import SIDES, Check, Metric
from perfgate.stats import RatioInterval, UnusableSamples, ratio_interval

NAME = "tokens_per_s"


class TokensPerSecond(Family):
    name = NAME
    forms = NAME
    order = 13
    sensitive_to_instances = True
    needs_same_rows = True
    reads_requests = True

    def request_values(self, request) -> tuple[float, ...]:
        """One request's ns per decode token (none for a one-token request): the rate's inverse."""
        return (sum(request.gaps_ns) / (request.tokens - 1),) if request.tokens > 1 else ()

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name, higher_is_better=True) if name == NAME else None

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        return generate_only(metric, scope)

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        metric = self.parse(NAME)
        return [
            Slot(metric, budgets.get(NAME), bind(_check, series, metric), place_of(series, index))
            for index, series in enumerate(observations.generations)
        ]

    def place(self, check: Check) -> str:
        return check.scenario


def seconds_per_token(series: GenerationSeries, side: str) -> np.ndarray:
    """Per block: its decode time over its decode tokens, in ns (NaN for a block of
    one-token requests, which decode nothing)."""
    per_block = []
    for block in series.blocks(side):
        tokens = sum(max(request.tokens - 1, 0) for request in block)
        spent = sum(sum(request.gaps_ns) for request in block)
        per_block.append(spent / tokens if tokens else np.nan)
    return np.asarray(per_block, dtype=np.float64)


def _check(series: GenerationSeries, metric: Metric, *, budget, level, seed) -> Check:
    per_token = {side: seconds_per_token(series, side) for side in SIDES}
    common = dict(metric=metric, batch_size=None, unit="tokens/s", higher_is_better=True, scenario=series.label,
                  n_reference=int(per_token["reference"].size), n_candidate=int(per_token["candidate"].size),
                  blocks=series.pairs, **budget_fields(budget))  # fmt: skip
    if any(np.isnan(values).any() for values in per_token.values()):
        return undecided(common, budget, "requests of one new token decode nothing: ask for at least 2 new tokens")
    try:
        times = ratio_interval(
            [value[None] for value in per_token["reference"]], [value[None] for value in per_token["candidate"]],
            None, level, seed=seed,
        )  # fmt: skip
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    # tokens per second = 1 / time per token: the ratio and its interval inverted
    interval = RatioInterval(1 / times.estimate, 1 / times.high, 1 / times.low, times.level, times.blocks, times.se_log)
    values = tuple(1e9 / per_token[side].mean() for side in SIDES)
    return decided(common, budget, interval, values, higher_is_better=True)


FAMILY = TokensPerSecond()
