"""Measurement in interleaved blocks, until the checks decide or the time budget is spent.

For each batch size: both workers warm up (per input shape), the slower model's typical
call fixes how many calls make a block (about ``target_block_s``), then block pairs run
one after the other. A block pair is the same batches run on the reference and on the
candidate, back to back; which model goes first follows balanced, seeded ABBA / BAAB
quads, so that neither is always the one to find caches cold or the machine busy.

After a first look at ``first_look_pairs`` pairs (or more, where the tail quantiles need
more samples) and then whenever the count has grown by ``look_growth``, the caller's
``on_look`` sees everything measured so far and says whether to stop. The measurement
also stops when the time budget (the measuring phase, after loading and warm-up) is
spent, with one last look at everything measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from perfgate.formatting import format_duration
from perfgate.results import Series, WarmUpSummary
from perfgate.worker import WarmUp

SIDES = ("reference", "candidate")


class Worker(Protocol):
    role: str

    def call(self, method: str, *args: Any, timeout: float) -> Any: ...


@dataclass(frozen=True)
class MeasurementPlan:
    batch_sizes: tuple[int, ...]
    time_budget_s: float = 60.0
    seed: int = 0
    min_samples: int = 90  # per model and batch size before the first look
    first_look_pairs: int = 8
    look_growth: float = 1.5
    target_block_s: float = 0.01
    max_calls_per_block: int = 1000
    warmup_min_calls: int = 10
    warmup_min_s: float = 0.2
    warmup_max_s: float = 30.0


@dataclass(frozen=True)
class Measurement:
    series: tuple[Series, ...]
    look: int
    measure_seconds: float
    final: bool  # the time budget is spent: this look decides whatever it can


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
        builders[batch_size] = _SeriesBuilder(batch_size, calls, batches[batch_size], warmups, slowest_ns)
        say(
            f"warm-up batch {batch_size}: reference {format_duration(warmups['reference'].typical_ns)}/call, "
            f"candidate {format_duration(warmups['candidate'].typical_ns)}/call; {calls} calls per block"
        )

    next_look = max(
        plan.first_look_pairs,
        *(math.ceil(plan.min_samples / builder.calls_per_block) for builder in builders.values()),
    )
    look = 0
    pairs = 0
    began = clock()
    while True:
        for batch_size in rng.permutation(plan.batch_sizes):
            builders[int(batch_size)].run_pair(workers, rng)
        pairs += 1
        out_of_time = clock() - began >= plan.time_budget_s
        if pairs >= next_look or out_of_time:
            look += 1
            measurement = Measurement(
                tuple(builder.freeze() for builder in builders.values()), look, clock() - began, out_of_time
            )
            if on_look(measurement):
                return measurement, "decided"
            if out_of_time:
                return measurement, "time budget"
            while next_look <= pairs:
                next_look = max(next_look + 1, math.ceil(next_look * plan.look_growth))


class _SeriesBuilder:
    def __init__(self, batch_size: int, calls: int, batches: int, warmups: Mapping[str, WarmUp], slowest_ns: float):
        self.batch_size = batch_size
        self.calls_per_block = calls
        self.batches = batches
        self.warmups = {side: WarmUpSummary(w.calls, w.seconds, w.typical_ns, w.shapes) for side, w in warmups.items()}
        self.samples: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}
        self.starts: list[int] = []
        self.first: list[str] = []
        self._orders: list[tuple[str, str]] = []
        self._cursor = 0
        # generous: a block that takes 50x longer than its warm-up calls did is a hung model
        self.timeout = 60.0 + 50.0 * calls * slowest_ns / 1e9

    def run_pair(self, workers: Mapping[str, Worker], rng: np.random.Generator) -> None:
        if not self._orders:
            ab, ba = SIDES, SIDES[::-1]
            self._orders = [ab, ba] if rng.random() < 0.5 else [ba, ab]
        order = self._orders.pop(0)
        start = self._cursor
        for side in order:
            durations = workers[side].call("run_block", self.batch_size, start, self.calls_per_block, timeout=self.timeout)
            self.samples[side].append(np.asarray(durations, dtype=np.int64))
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
        )


def _warm_up(workers: Mapping[str, Worker], plan: MeasurementPlan, batch_size: int, rng: np.random.Generator) -> dict[str, WarmUp]:
    order: Sequence[str] = SIDES if rng.random() < 0.5 else SIDES[::-1]
    timeout = plan.warmup_max_s + 120.0
    return {
        side: workers[side].call(
            "warm_up", batch_size, plan.warmup_min_calls, plan.warmup_min_s, plan.warmup_max_s, timeout=timeout
        )
        for side in order
    }

