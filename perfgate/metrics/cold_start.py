"""cold_start: process start to the end of the first inference, per model: each measuring
worker's own start (always), and fresh workers started in ABBA order where a cold_start
budget asks for them or ``--cold-starts K`` is given.

With the measuring workers' own starts alone (one sample a model, no interval) the check
is information only: each model's start while both load side by side."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from perfgate.errors import option
from perfgate.metrics.base import PER_MODEL, Budget, Family, Observations, Scope, Slot, bind, budget_fields, decided, undecided
from perfgate.results import Check, Metric
from perfgate.metrics.requests import one_shot_only
from perfgate.stats import UnusableSamples, ratio_interval


class ColdStart(Family):
    name = "cold_start"
    tracked_as = "cold-start"
    forms = "cold_start"
    order = 5
    needs_cold_starts = True

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name) if name == "cold_start" else None

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if scope.generate:
            return one_shot_only(metric, scope)
        if scope.cold_starts < 2:  # samples: an interval needs more than the measuring worker's own
            return f"a cold-start budget needs {option('cold_starts', 1)} or more (fresh starts beyond the measuring worker's own)"
        return None

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        if not observations.cold_starts:
            return []
        metric = self.parse("cold_start")
        return [Slot(metric, budgets.get(metric.name), bind(_check, metric, observations.cold_starts), PER_MODEL)]


def _check(metric: Metric, cold_starts: Mapping[str, Sequence[float]], *, budget, level, seed) -> Check:
    reference = np.asarray(cold_starts.get("reference", ()), dtype=np.float64) * 1e9
    candidate = np.asarray(cold_starts.get("candidate", ()), dtype=np.float64) * 1e9
    common = dict(metric=metric, batch_size=None, unit="ns", n_reference=int(reference.size),
                  n_candidate=int(candidate.size), blocks=int(min(reference.size, candidate.size)),
                  **budget_fields(budget))  # fmt: skip
    values = (float(reference.mean()), float(candidate.mean())) if reference.size and candidate.size else None
    if min(reference.size, candidate.size) == 1:
        reason = "one start per model, the measuring worker's own start: no interval; --cold-starts 1 or more adds fresh ones"
        return undecided(common, budget, reason, values=values)
    try:
        interval = ratio_interval([v[None] for v in reference], [v[None] for v in candidate], None, level, seed=seed)
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}", values=values)
    return decided(common, budget, interval, (float(reference.mean()), float(candidate.mean())), higher_is_better=False)


FAMILY = ColdStart()
