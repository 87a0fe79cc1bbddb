"""throughput and throughput.batchN: samples per second over windows of calls run back to
back and synchronized once (LoadGen's Offline scenario), per batch size; higher is
better. ``throughput`` budgets every batch size, ``throughput.batchN`` one.

Windows of their own are measured only where they differ from the latency blocks (on a
GPU, or for a throughput budget, which ``needs_windows``: see ``pipeline._wants_windows``). Elsewhere each latency
block is the window: its calls ran back to back on the same batches, and on a CPU the
synchronisation after each call is a no-op, so the block's summed durations are the
window's time (less the clock readings between calls, the same few ns for both models)."""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from perfgate.errors import option
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot, at_batch, bind, budget_fields, decided, undecided
from perfgate.measurements import Series
from perfgate.metrics.requests import one_shot_only
from perfgate.results import SIDES, Check, Metric
from perfgate.stats import RatioInterval, UnusableSamples, ratio_interval, unpaired_interval

_NAME = re.compile(r"^throughput(?:\.batch(\d+))?$")


class Throughput(Family):
    name = "throughput"
    forms = "throughput, throughput.batchN"
    order = 1
    sensitive_to_instances = True
    needs_windows = True
    judged_against_a_baseline = True

    def parse(self, name: str) -> Metric | None:
        match = _NAME.match(name)
        if not match:
            return None
        batch = int(match.group(1)) if match.group(1) else None
        if batch is not None and batch < 1:
            return None
        return Metric(name, self.name, batch_size=batch, higher_is_better=True)

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if scope.generate:
            return one_shot_only(metric, scope)
        if metric.batch_size is not None and metric.batch_size not in scope.batch_sizes:
            return f"batch {metric.batch_size} is not measured (add {option('batch_sizes', metric.batch_size)})"
        return None

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        slots = []
        for index, series in enumerate(observations.series):
            if series.pairs:
                metric = Metric(f"throughput.batch{series.batch_size}", self.name, batch_size=series.batch_size, higher_is_better=True)
                budget = budgets.get(metric.name) or budgets.get("throughput")
                slots.append(Slot(metric, budget, bind(_check, series, metric), at_batch(index)))
        return slots

    def where(self, check: Check) -> str:
        return str(check.metric)  # the batch size is in the metric's name

    def baseline_slots(self, budgets: Mapping[str, Budget], batch_size: int) -> list[tuple[Metric, Budget | None]]:
        metric = self.parse(f"throughput.batch{batch_size}")
        return [(metric, budgets.get(metric.name) or budgets.get("throughput"))]

    def judge_against_baseline(self, metric, stored, measured, budget, level, seed) -> Check:
        """Samples per second of each run's throughput windows, each window one block."""
        rates = {side: np.array([m.calls_per_block * m.batch_size * 1e9 / w for w in m.windows], dtype=np.float64)
                 for side, m in (("reference", stored), ("candidate", measured))}  # fmt: skip
        common = dict(metric=metric, batch_size=measured.batch_size, unit="samples/s", higher_is_better=True,
                      n_reference=int(rates["reference"].size), n_candidate=int(rates["candidate"].size),
                      blocks=min(rates["reference"].size, rates["candidate"].size), **budget_fields(budget))  # fmt: skip
        try:
            interval = unpaired_interval([r[None] for r in rates["reference"]], [r[None] for r in rates["candidate"]],
                                         None, level, seed)  # fmt: skip
        except UnusableSamples as exc:
            return undecided(common, budget, f"unusable samples: {exc}")
        values = (float(rates["reference"].mean()), float(rates["candidate"].mean()))
        return decided(common, budget, interval, values, higher_is_better=True)


def _check(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    samples_per_window = series.calls_per_block * series.batch_size
    windows = {side: _window_times(series, side) for side in SIDES}
    common = dict(metric=metric, batch_size=series.batch_size, unit="samples/s", higher_is_better=True,
                  n_reference=int(windows["reference"].size), n_candidate=int(windows["candidate"].size),
                  blocks=series.pairs, **budget_fields(budget))  # fmt: skip
    try:
        times = ratio_interval(
            [window[None] for window in windows["reference"]], [window[None] for window in windows["candidate"]],
            None, level, seed=seed,
        )  # fmt: skip
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    # throughput ratio = 1 / window-time ratio (both ran the same calls)
    interval = RatioInterval(1 / times.estimate, 1 / times.high, 1 / times.low, times.level, times.blocks, times.se_log)
    values = tuple(samples_per_window / (windows[side].mean() / 1e9) for side in SIDES)
    return decided(common, budget, interval, values, higher_is_better=True)


def _window_times(series: Series, side: str) -> np.ndarray:
    """ns per window: the measured windows, or else each latency block's summed durations."""
    if series.windows:
        return np.asarray(series.windows.get(side, ()), dtype=np.float64)
    return np.asarray([block.sum() for block in series.blocks(side)], dtype=np.float64)


FAMILY = Throughput()
