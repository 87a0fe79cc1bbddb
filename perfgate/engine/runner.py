"""Measurement in interleaved blocks, until the checks decide or the time budget is spent.

For each batch size: every worker warms up (per input shape), the slower model's typical
call fixes how many calls make a block (about ``target_block_s``), then block pairs run
one after the other. A block pair is the same batches run on the reference and on the
candidate, back to back; which model goes first follows balanced, seeded ABBA / BAAB
quads, so that neither is always the one to find caches cold or the machine busy. With
several worker instances per model (``instances``), block pair i runs on instance pair
i mod K, so that each process's own layout and placement is one draw among K, not the
whole comparison. Where the plan asks for ``windows`` (on a GPU, where synchronising
after every call changes throughput, or for a throughput budget), each block pair of
latencies is followed, in the same order, by a pair of throughput windows over the same
batches (calls back to back, timed as one); elsewhere a latency block's summed durations
are its window.

Each load scenario adds, per round, a pair of load episodes: the same arrivals (the same
seed) served by each model in turn, which makes their latencies under load comparable
pair by pair.

Before the first block, ``on_pace`` hears how long a round is expected to take (from the
warm-up), so that the caller can say up front what the time budget cannot decide. The
caller's ``on_look`` then sees everything measured so far after ``first_look_pairs`` pairs
and whenever the count has grown by ``look_growth``, and says whether to stop: looks come
early, so that a clear regression fails on the checks that have their samples while
others (the tail quantiles) still wait for theirs. The measurement also stops when the
time budget (the measuring phase, after loading and warm-up) is spent, with one last look
at everything measured.

No wait for a worker is open-ended: a model's first call, at each batch size, may take
``call_timeout_s``; the rest of the warm-up its maximum plus that; every later step 50
times what the warm-up's typical call says it should take, plus the call timeout (see
``perfgate.engine.blocks.BlockRules``, whose blocks, limits and rounds ``perfgate.measure`` runs
too). The worker reads its RSS after each block (outside the clock), and the
last measurement carries those readings, for the leak warning.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.engine.blocks import Blocks, BlockRules, WorkerTimer, until_stopped
from perfgate.formatting import format_duration
from perfgate.engine.progress import Status, show_status
from perfgate.measurements import GenerationSeries, GenerationsCompared, LoadScenario, LoadSeries, Series, WarmUpSummary
from perfgate.results import SIDES
from perfgate.specs import MIN_EPISODE_REQUESTS
from perfgate.worker.process import Worker
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S, SETUP_TIMEOUT_S, BlockMemory, LoadPlan, RunLoad, WarmUp



@dataclass(frozen=True)
class MeasurementPlan:
    batch_sizes: tuple[int, ...]
    time_budget_s: float = 60.0
    seed: int = 0
    # 8, not 3: a bootstrap of 3 block pairs cannot see a burst that landed on one model's
    # block (an A/A pair on a busy runner failed latency.p95 at 3 pairs, [+29 %, +69 %])
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
    windows: bool = True  # throughput windows beside every block pair (the pipeline decides; see its _wants_windows)

    @property
    def rules(self) -> BlockRules:
        return BlockRules(
            self.target_block_s, self.max_calls_per_block, self.warmup_min_calls, self.warmup_min_s, self.warmup_max_s,
            self.call_timeout_s,
        )


@dataclass(frozen=True)
class Measurement:
    series: tuple[Series, ...]
    look: int
    measure_seconds: float
    final: bool  # the time budget is spent: this look decides whatever it can
    loads: tuple[LoadSeries, ...] = ()
    rss_after_blocks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # per model, in bytes (the last look)
    generations: tuple[GenerationSeries, ...] = ()  # generate mode's requests (perfgate.engine.generation)
    answers: GenerationsCompared | None = None  # generate mode: both models' greedy answers, from the request pairs


@dataclass(frozen=True)
class Pace:
    """What the warm-up says a round of block pairs (and load episodes) will take."""

    round_seconds: float  # one block pair at every batch size, and one pair of each load episode
    calls_per_block: Mapping[int, int]  # per batch size
    typical_ns: Mapping[int, Mapping[str, float]]  # per batch size, per model: the warm-up's typical call

    def samples_within(self, seconds: float, batch_size: int) -> int:
        """Calls per model at ``batch_size`` that ``seconds`` of measuring give."""
        return int(seconds / max(self.round_seconds, 1e-9)) * self.calls_per_block[batch_size]


Progress = Callable[[str], None]


def measure_interleaved(
    instances: Sequence[Mapping[str, Worker]],
    plan: MeasurementPlan,
    batches: Mapping[int, int],
    on_look: Callable[[Measurement], bool],
    *,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
    on_pace: Callable[[Pace], None] | None = None,
) -> tuple[Measurement, str]:
    """Measure until ``on_look`` returns True or the time budget is spent.

    ``instances`` are one or more pairs of workers, each mapping "reference" and
    "candidate" to a worker whose feeds are set; ``batches[bs]`` is how many distinct
    batches each holds for batch size ``bs``. Returns the last look and why it stopped
    ("decided" or "time budget").
    """
    say = progress or (lambda message: None)
    rng = np.random.default_rng(plan.seed)
    rules = plan.rules
    builders = {}
    for batch_size in plan.batch_sizes:
        show_status(say, Status("warm-up", 0.0))
        every = [_warm_up(workers, rules, batch_size, rng) for workers in instances]
        warmups = every[0]
        slowest_ns = max(warmup.typical_ns for warmed in every for warmup in warmed.values())
        blocks = Blocks(rules, slowest_ns, batches[batch_size], windows=plan.windows)
        calls = blocks.calls
        builders[batch_size] = _SeriesBuilder(batch_size, blocks, warmups, slowest_ns)
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
    if on_pace is not None:
        on_pace(_pace(builders, loads))

    next_look = plan.first_look_pairs
    looks: list[Measurement] = []

    def one_round(pairs: int) -> None:
        instance = pairs % len(instances)
        for batch_size in rng.permutation(plan.batch_sizes):
            builders[int(batch_size)].run_pair(instances[instance], rng, instance)
        for load in loads:
            load.run_pair(instances[instance], rng)

    def look(pairs: int, out_of_time: bool, elapsed: float) -> str | None:
        nonlocal next_look
        if pairs < next_look and not out_of_time:
            return None
        looks.append(
            Measurement(
                tuple(builder.freeze() for builder in builders.values()),
                len(looks) + 1,
                elapsed,
                out_of_time,
                tuple(load.freeze() for load in loads),
            )
        )
        if on_look(looks[-1]):
            return "decided"
        next_look = look_after(next_look, pairs, plan.look_growth)
        return None

    show_status(say, Status("measuring", 0.0, plan.time_budget_s))
    stopped, _ = until_stopped(one_round, look, time_budget_s=plan.time_budget_s, clock=clock)
    return with_block_memory(instances[0], looks[-1]), stopped


def look_after(next_look: int, pairs: int, growth: float) -> int:
    """The pair count of the next look, once a look at ``pairs`` has not decided."""
    while next_look <= pairs:
        next_look = max(next_look + 1, math.ceil(next_look * growth))
    return next_look


class Orders:
    """Balanced ABBA / BAAB quads: every two pairs, each model goes first once."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []

    def next(self, rng: np.random.Generator) -> tuple[str, str]:
        if not self._pending:
            ab, ba = SIDES, SIDES[::-1]
            self._pending = [ab, ba] if rng.random() < 0.5 else [ba, ab]
        return self._pending.pop(0)


class _SeriesBuilder:
    def __init__(self, batch_size: int, blocks: Blocks, warmups: Mapping[str, WarmUp], slowest_ns: float):
        self.batch_size = batch_size
        self.blocks = blocks
        self.measures_windows = blocks.windows
        self.calls_per_block = blocks.calls
        self.batches = blocks.batches
        self.slowest_ns = slowest_ns
        self.warmups = {side: WarmUpSummary(w.calls, w.seconds, w.typical_ns, w.shapes) for side, w in warmups.items()}
        self.samples: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}
        self.windows: dict[str, list[int]] = {side: [] for side in SIDES}
        self.starts: list[int] = []
        self.first: list[str] = []
        self.instances: list[int] = []
        self._orders = Orders()

    def run_pair(self, workers: Mapping[str, Worker], rng: np.random.Generator, instance: int = 0) -> None:
        order = self._orders.next(rng)
        timed = self.blocks.run({side: WorkerTimer(workers[side], self.batch_size) for side in order}, order)
        for side in order:
            self.samples[side].append(timed.durations[side])
            if self.measures_windows:
                self.windows[side].append(timed.windows[side])
        self.starts.append(timed.start)
        self.first.append(order[0])
        self.instances.append(instance)

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
            windows={side: tuple(values) for side, values in self.windows.items()} if self.measures_windows else {},
            instances=tuple(self.instances) if any(self.instances) else (),
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
        self._orders = Orders()
        self.expected_s = self.requests * service_s + (self.requests / scenario.rate if scenario.kind == "open" else 0.0)
        self.timeout = plan.rules.step_limit(self.expected_s)

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


def _pace(builders: Mapping[int, "_SeriesBuilder"], loads: Sequence["_LoadBuilder"]) -> Pace:
    # a block pair runs each model's block once; windows, where measured, as long again
    round_ns = sum(
        builder.calls_per_block * sum(w.typical_ns for w in builder.warmups.values()) * (2 if builder.measures_windows else 1)
        for builder in builders.values()
    )
    round_ns += sum(2 * load.expected_s * 1e9 for load in loads)
    return Pace(
        round_ns / 1e9,
        {batch_size: builder.calls_per_block for batch_size, builder in builders.items()},
        {batch_size: {side: w.typical_ns for side, w in builder.warmups.items()} for batch_size, builder in builders.items()},
    )


def _warm_up(workers: Mapping[str, Worker], rules: BlockRules, batch_size: int, rng: np.random.Generator) -> dict[str, WarmUp]:
    order: Sequence[str] = SIDES if rng.random() < 0.5 else SIDES[::-1]
    return {side: WorkerTimer(workers[side], batch_size).warm_up(rules) for side in order}


def with_block_memory(workers: Mapping[str, Worker], measurement: Measurement) -> Measurement:
    readings = {side: tuple(workers[side].call(BlockMemory(), timeout=SETUP_TIMEOUT_S)) for side in SIDES}
    return replace(measurement, rss_after_blocks=readings)
