"""Warnings about what a run saw: a noisy machine, a load scenario at or past a model's
capacity, a peak RSS that could not be reset after loading. They go into every report;
they never change the verdict."""

from __future__ import annotations

from typing import Any, Mapping

from perfgate.metrics.memory import PEAK_INCLUDES_LOADING, peak_includes_loading
from perfgate.results import SIDES, LoadSeries, Series
from perfgate.stats import drift_between_blocks

NOISY_DRIFT = 0.10
SATURATED_UTILIZATION = 0.97  # an M/D/1 queue 97 % busy already waits ~16 service times on average


def run_warnings(
    series: tuple[Series, ...], loads: tuple[LoadSeries, ...], memory: Mapping[str, Mapping[str, Any]]
) -> tuple[str, ...]:
    return (*_drift(series), *_saturation(loads), *_memory(memory))


def _drift(series: tuple[Series, ...]) -> list[str]:
    warnings = []
    for one in series:
        drift = drift_between_blocks(one.reference)
        if drift is not None and drift > NOISY_DRIFT:
            warnings.append(
                f"batch {one.batch_size}: the reference's latency drifted by about {drift:.0%} between "
                f"blocks, beyond its call-to-call spread; the machine is noisy, so decisions take longer"
            )
    return warnings


def _saturation(loads: tuple[LoadSeries, ...]) -> list[str]:
    warnings = []
    for load in loads:
        if load.scenario.kind != "open":
            continue
        offered = load.scenario.rate * load.batch_size
        for side in SIDES:
            achieved, utilization = load.throughput(side), load.offered_load(side)
            # Achieved throughput alone misses saturation: in a short episode a growing backlog
            # hardly lowers it, while the queue, and so every percentile, keeps growing.
            if achieved < 0.95 * offered or utilization > SATURATED_UTILIZATION:
                warnings.append(
                    f"load {load.scenario.label}: the {side} needs {utilization:.0%} of the time to serve "
                    f"{offered:g} samples/s (it served {achieved:.0f}/s); at or past its capacity its queue grows "
                    f"with the episode, so its latencies under load grow with the episode's length"
                )
    return warnings


def _memory(memory: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [f"memory.peak_rss: {PEAK_INCLUDES_LOADING}"] if peak_includes_loading(memory) else []
