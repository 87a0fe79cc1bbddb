"""Measurement in interleaved blocks, until the checks decide or the time budget is spent.

For each batch size: both workers warm up (per input shape), the slower model's typical
call fixes how many calls make a block (about ``target_block_s``), then block pairs run
one after the other. A block pair is the same batches run on the reference and on the
candidate, back to back; which model goes first follows balanced, seeded ABBA / BAAB
quads, so that neither is always the one to find caches cold or the machine busy. Each
block pair of latencies is followed, in the same order, by a pair of throughput windows
over the same batches (calls back to back, timed as one).

Each load scenario adds, per round, a pair of load episodes: the same arrivals (the same
seed) served by each model in turn, which makes their latencies under load comparable
pair by pair.

After a first look at ``first_look_pairs`` pairs (or more, where the tail quantiles need
more samples) and then whenever the count has grown by ``look_growth``, the caller's
``on_look`` sees everything measured so far and says whether to stop. The measurement
also stops when the time budget (the measuring phase, after loading and warm-up) is
spent, with one last look at everything measured.

No wait for a worker is open-ended: a model's first call, at each batch size, may take
``call_timeout_s``; the rest of the warm-up its maximum plus that; every later step 50
times what the warm-up's typical call says it should take, plus the call timeout (see
``call_limit``). The worker reads its RSS after each block (outside the clock), and the
last measurement carries those readings, for the leak warning.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.formatting import format_duration
from perfgate.results import SIDES, LoadScenario, LoadSeries, Series, WarmUpSummary
from perfgate.worker.process import Worker
from perfgate.worker.protocol import (
    DEFAULT_CALL_TIMEOUT_S,
    SETUP_TIMEOUT_S,
    BlockMemory,
    LoadPlan,
    RunBlock,
    RunLoad,
    RunWindow,
    Timeout,
    WarmUp,
    WarmUpModel,
    call_limit,
)

MIN_EPISODE_REQUESTS = 20  # a load episode shorter than this says little about queueing


@dataclass(frozen=True)
class MeasurementPlan:
    batch_sizes: tuple[int, ...]
    time_budget_s: float = 60.0
    seed: int = 0
    min_samples: int = 90  # per model and batch size before the first look
    first_look_pairs: int = 8
    look_growth: float = 1.5
    # 2 ms, not 10: with a bursty neighbour, 10 ms blocks left a 15 us model's p95 A/A
    # verdict taking up to 13.6 s (p95 9.9 s), 2 ms ones 2.8 s (1.9 s), at the same
    # coverage (docs/decision-quality.md, benchmarks/decision_quality.py)
    target_block_s: float = 0.002
    max_calls_per_block: int = 1000
    warmup_min_calls: int = 10
    warmup_min_s: float = 0.2
    warmup_max_s: float = 30.0
    loads: tuple[LoadScenario, ...] = ()
    target_episode_s: float = 0.25  # a load episode's length, at the model's typical service time
    max_episode_requests: int = 5000
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S


@dataclass(frozen=True)
class Measurement:
    series: tuple[Series, ...]
    look: int
    measure_seconds: float
    final: bool  # the time budget is spent: this look decides whatever it can
    loads: tuple[LoadSeries, ...] = ()
    rss_after_blocks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # per model, in bytes (the last look)


Progress = Callable[[str], None]


def measure(
    workers: Mapping[str, Worker],
    plan: MeasurementPlan,
    batches: Mapping[int, int],
    on_look: Callable[[Measurement], bool],
    *,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
) -> tuple[Measurement, str]:
    """Measure until ``on_look`` returns True or the time budget is spent.

    ``workers`` maps "reference" and "candidate" to workers whose feeds are set;
    ``batches[bs]`` is how many distinct batches each holds for batch size ``bs``.
    Returns the last look and why it stopped ("decided" or "time budget").
    """
    say = progress or (lambda message: None)
    rng = np.random.default_rng(plan.seed)
    builders = {}
    for batch_size in plan.batch_sizes:
        warmups = _warm_up(workers, plan, batch_size, rng)
        slowest_ns = max(warmup.typical_ns for warmup in warmups.values())
        calls = int(min(plan.max_calls_per_block, max(1, round(plan.target_block_s * 1e9 / max(slowest_ns, 1.0)))))
        builders[batch_size] = _SeriesBuilder(batch_size, calls, batches[batch_size], warmups, slowest_ns, plan.call_timeout_s)
        say(
            f"warm-up batch {batch_size}: reference {format_duration(warmups['reference'].typical_ns)}/call, "
            f"candidate {format_duration(warmups['candidate'].typical_ns)}/call; {calls} calls per block"
        )
    loads = [
        _LoadBuilder(scenario, builders[plan.batch_sizes[0]], plan, seed=plan.seed * 7919 + index)
        for index, scenario in enumerate(plan.loads)
    ]
    for load in loads:
        say(f"load {load.scenario.label}: {load.requests} requests per episode at batch {load.batch_size}")

    next_look = max(
        plan.first_look_pairs,
        *(math.ceil(plan.min_samples / builder.calls_per_block) for builder in builders.values()),
        *(math.ceil(plan.min_samples / load.requests) for load in loads),
    )
    look = 0
    pairs = 0
    began = clock()
    while True:
        for batch_size in rng.permutation(plan.batch_sizes):
            builders[int(batch_size)].run_pair(workers, rng)
        for load in loads:
            load.run_pair(workers, rng)
        pairs += 1
        out_of_time = clock() - began >= plan.time_budget_s
        if pairs >= next_look or out_of_time:
            look += 1
            measurement = Measurement(
                tuple(builder.freeze() for builder in builders.values()),
                look,
                clock() - began,
                out_of_time,
                tuple(load.freeze() for load in loads),
            )
            if on_look(measurement):
                return _with_block_memory(workers, measurement), "decided"
            if out_of_time:
                return _with_block_memory(workers, measurement), "time budget"
            while next_look <= pairs:
                next_look = max(next_look + 1, math.ceil(next_look * plan.look_growth))


class _Orders:
    """Balanced ABBA / BAAB quads: every two pairs, each model goes first once."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []

    def next(self, rng: np.random.Generator) -> tuple[str, str]:
        if not self._pending:
            ab, ba = SIDES, SIDES[::-1]
            self._pending = [ab, ba] if rng.random() < 0.5 else [ba, ab]
        return self._pending.pop(0)


class _SeriesBuilder:
    def __init__(
        self, batch_size: int, calls: int, batches: int, warmups: Mapping[str, WarmUp], slowest_ns: float, call_timeout_s: float
    ):
        self.batch_size = batch_size
        self.calls_per_block = calls
        self.batches = batches
        self.slowest_ns = slowest_ns
        self.warmups = {side: WarmUpSummary(w.calls, w.seconds, w.typical_ns, w.shapes) for side, w in warmups.items()}
        self.samples: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}
        self.windows: dict[str, list[int]] = {side: [] for side in SIDES}
        self.starts: list[int] = []
        self.first: list[str] = []
        self._orders = _Orders()
        self._cursor = 0
        self.timeout = Timeout((call_limit(call_timeout_s, calls * slowest_ns / 1e9),), by_call_timeout=True)

    def run_pair(self, workers: Mapping[str, Worker], rng: np.random.Generator) -> None:
        order = self._orders.next(rng)
        start = self._cursor
        for side in order:
            durations = workers[side].call(RunBlock(self.batch_size, start, self.calls_per_block), timeout=self.timeout)
            self.samples[side].append(np.asarray(durations, dtype=np.int64))
        for side in order:
            window = workers[side].call(RunWindow(self.batch_size, start, self.calls_per_block), timeout=self.timeout)
            self.windows[side].append(int(window))
        self.starts.append(start)
        self.first.append(order[0])
        self._cursor = (start + self.calls_per_block) % self.batches

    def freeze(self) -> Series:
        return Series(
            batch_size=self.batch_size,
            calls_per_block=self.calls_per_block,
            batches=self.batches,
            reference=tuple(self.samples["reference"]),
            candidate=tuple(self.samples["candidate"]),
            starts=tuple(self.starts),
            first=tuple(self.first),
            warmup=dict(self.warmups),
            windows={side: tuple(values) for side, values in self.windows.items()},
        )


class _LoadBuilder:
    def __init__(self, scenario: LoadScenario, latency: _SeriesBuilder, plan: MeasurementPlan, seed: int):
        self.scenario = scenario
        self.batch_size = latency.batch_size
        self.batches = latency.batches
        service_s = max(latency.slowest_ns, 1.0) / 1e9
        if scenario.kind == "closed":
            wanted = max(5 * scenario.clients, plan.target_episode_s / service_s)
        else:
            wanted = scenario.rate * plan.target_episode_s
        self.requests = int(min(plan.max_episode_requests, max(MIN_EPISODE_REQUESTS, round(wanted))))
        self.seed = seed
        self.episodes: dict[str, list[Any]] = {side: [] for side in SIDES}
        self.first: list[str] = []
        self.seeds: list[int] = []
        self._orders = _Orders()
        expected_s = self.requests * service_s + (self.requests / scenario.rate if scenario.kind == "open" else 0.0)
        self.timeout = Timeout((call_limit(plan.call_timeout_s, expected_s),), by_call_timeout=True)

    def run_pair(self, workers: Mapping[str, Worker], rng: np.random.Generator) -> None:
        seed = self.seed * 1_000_003 + len(self.seeds)
        episode_plan = self._plan(seed)
        order = self._orders.next(rng)
        start = (len(self.seeds) * self.requests) % self.batches
        for side in order:
            self.episodes[side].append(
                workers[side].call(RunLoad(self.batch_size, start, episode_plan), timeout=self.timeout)
            )
        self.first.append(order[0])
        self.seeds.append(seed)

    def _plan(self, seed: int) -> LoadPlan:
        if self.scenario.kind == "closed":
            return LoadPlan("closed", self.requests, clients=self.scenario.clients)
        gaps = np.random.default_rng(seed).exponential(1e9 / self.scenario.rate, self.requests)
        return LoadPlan("open", self.requests, arrivals_ns=tuple(int(t) for t in np.cumsum(gaps)))

    def freeze(self) -> LoadSeries:
        return LoadSeries(
            scenario=self.scenario,
            batch_size=self.batch_size,
            requests=self.requests,
            reference=tuple(self.episodes["reference"]),
            candidate=tuple(self.episodes["candidate"]),
            first=tuple(self.first),
            seeds=tuple(self.seeds),
        )


def _warm_up(workers: Mapping[str, Worker], plan: MeasurementPlan, batch_size: int, rng: np.random.Generator) -> dict[str, WarmUp]:
    order: Sequence[str] = SIDES if rng.random() < 0.5 else SIDES[::-1]
    # the first call, of unknown length, then the rest: it stops at warmup_max_s, once its last call returns
    timeout = Timeout((plan.call_timeout_s, plan.warmup_max_s + plan.call_timeout_s), by_call_timeout=True)
    return {
        side: workers[side].call(
            WarmUpModel(batch_size, plan.warmup_min_calls, plan.warmup_min_s, plan.warmup_max_s), timeout=timeout
        )
        for side in order
    }


def _with_block_memory(workers: Mapping[str, Worker], measurement: Measurement) -> Measurement:
    readings = {side: tuple(workers[side].call(BlockMemory(), timeout=SETUP_TIMEOUT_S)) for side in SIDES}
    return replace(measurement, rss_after_blocks=readings)
