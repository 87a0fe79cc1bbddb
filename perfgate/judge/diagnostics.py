"""Warnings about what a run saw: a noisy machine, a load scenario at or past a model's
capacity, a peak RSS that could not be reset after loading, a model whose memory grows
block after block. They go into every report; they never change the verdict."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from perfgate.formatting import format_bytes
from perfgate.metrics.base import DEFAULT_MEMORY_FLOOR
from perfgate.metrics.memory import PEAK_INCLUDES_LOADING, peak_includes_loading
from perfgate.measurements import LoadSeries, Series
from perfgate.results import SIDES
from perfgate.stats import drift_between_blocks

NOISY_DRIFT = 0.10
SHORTFALL = 0.85  # served under this share of the offered rate: the model did not keep up
SATURATED_UTILIZATION = 0.97  # an M/D/1 queue 97 % busy already waits ~16 service times on average
LEAK_MIN_BLOCKS = 8
LEAK_RISING = 0.75  # the share of blocks after which RSS must have grown


def run_warnings(
    series: tuple[Series, ...],
    loads: tuple[LoadSeries, ...],
    memory: Mapping[str, Mapping[str, Any]],
    rss_after_blocks: Mapping[str, Sequence[int]] | None = None,
    memory_floor: float = DEFAULT_MEMORY_FLOOR,
) -> tuple[str, ...]:
    return (*_drift(series), *_saturation(loads), *_memory(memory), *_leaks(rss_after_blocks or {}, memory_floor))


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
            # hardly lowers it, while the queue, and so every percentile, keeps growing. And
            # a few Poisson episodes at 90 % load serve 5-10 % under the offered rate by chance
            # alone, so only a larger shortfall counts.
            if achieved < SHORTFALL * offered or utilization > SATURATED_UTILIZATION:
                warnings.append(
                    f"load {load.scenario.label}: the {side} needs {utilization:.0%} of the time to serve "
                    f"{offered:g} samples/s (it served {achieved:.0f}/s); at or past its capacity its queue grows "
                    f"with the episode, so its latencies under load grow with the episode's length"
                )
    return warnings


def _memory(memory: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [f"memory.peak_rss: {PEAK_INCLUDES_LOADING}"] if peak_includes_loading(memory) else []


def leak_per_block(readings: Sequence[int], floor: float = DEFAULT_MEMORY_FLOOR) -> float | None:
    """Bytes a model's RSS grows by per block, where it looks like a leak; else None.

    Only the second half of the readings counts, after the allocator and the framework's
    caches have settled. A leak grows the RSS after nearly every block (LEAK_RISING of
    them) and, over that half, by at least ``floor``: one large allocation that stays is
    a single step, and an allocator that returns memory and takes it again goes down too.
    """
    if len(readings) < LEAK_MIN_BLOCKS:
        return None
    settled = np.asarray(readings[len(readings) // 2 :], dtype=np.float64)
    growth = settled[-1] - settled[0]
    rising = float(np.mean(np.diff(settled) > 0))
    if growth < floor or rising < LEAK_RISING:
        return None
    return growth / (len(settled) - 1)


def _leaks(rss_after_blocks: Mapping[str, Sequence[int]], floor: float) -> list[str]:
    warnings = []
    for side in SIDES:
        readings = rss_after_blocks.get(side, ())
        per_block = leak_per_block(readings, floor)
        if per_block is not None:
            settled = len(readings) - len(readings) // 2
            warnings.append(
                f"memory: the {side}'s RSS grew after nearly every block, by about {format_bytes(per_block)} a block "
                f"({format_bytes(per_block * (settled - 1))} over its last {settled} blocks); the model may leak memory "
                f"on every call"
            )
    return warnings
