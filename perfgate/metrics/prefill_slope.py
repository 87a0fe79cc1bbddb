"""prefill_slope: how fast a generative model's time to first token grows with the
prompt's length, the ratio of the two models' least-squares slopes (ns per prompt token),
as latency_slope does for an input size column. Reported in generate mode, gated where a
budget names it (``prefill_slope:+20%``). Each model's prompt length is its own
tokenizer's count; where its prompts are all alike in length there is no slope to fit,
and the check says so."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from perfgate.measurements import GenerationSeries
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, bind, budget_fields, decided, undecided
from perfgate.metrics.requests import generate_only, place_of
from perfgate.results import Check, Metric
from perfgate.stats import UnusableSamples, slope_interval

NAME = "prefill_slope"


class PrefillSlope(Family):
    name = NAME
    forms = NAME
    order = 14
    needs_same_rows = True

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name) if name == NAME else None

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        return generate_only(metric, scope)

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        metric = self.parse(NAME)
        return [
            Slot(metric, budgets.get(NAME), bind(_check, series, metric), place_of(series, index))
            for index, series in enumerate(observations.generations)
            if series.scenario is None  # under load, queueing muddles what prefill costs
        ]

    def place(self, check: Check) -> str:
        return check.scenario


def prompt_blocks(series: GenerationSeries, side: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per block: its requests' prompt lengths and their TTFTs."""
    return [
        (np.asarray([r.prompt_tokens for r in block], dtype=np.float64), np.asarray([r.ttft_ns for r in block], dtype=np.float64))
        for block in series.blocks(side)
    ]


def _check(series: GenerationSeries, metric: Metric, *, budget, level, seed) -> Check:
    requests = sum(len(block) for block in series.reference)
    common = dict(metric=metric, batch_size=None, unit="ns/token", scenario=series.label, n_reference=requests,
                  n_candidate=requests, blocks=series.pairs, **budget_fields(budget))  # fmt: skip
    blocks = {side: prompt_blocks(series, side) for side in ("reference", "candidate")}
    lengths = np.concatenate([sizes for sizes, _ in blocks["reference"]]) if blocks["reference"] else np.empty(0)
    if lengths.size and (np.ptp(lengths) == 0 or not lengths.all()):
        why = "the prompts are all one length" if lengths.all() else "the prompts' lengths are not known (a served model that gave no usage)"
        return undecided(common, budget, f"{why}: no slope to fit")
    try:
        fit = slope_interval(blocks["reference"], blocks["candidate"], level, seed=seed)
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    if fit.interval is None:
        return undecided(common, budget, fit.note.replace("latency", "time to first token").replace("size", "prompt length"),
                         values=(fit.reference_slope, fit.candidate_slope))  # fmt: skip
    return decided(common, budget, fit.interval, (fit.reference_slope, fit.candidate_slope), higher_is_better=False)


FAMILY = PrefillSlope()
