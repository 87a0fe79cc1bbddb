"""A simulated CI runner for decision_quality.py: perfgate's real engine, fake models,
virtual time, and the naive rules on the same machine.

A call's duration is ``model's typical call × the machine's state now × jitter``, where
the machine's state is a function of virtual time that every model on it shares:

* quiet:     lognormal jitter only (sigma 0.10 per call);
* bursty:    a neighbour that alternates off and on periods of 0.05-0.5 s each (uniform);
             while it is on, every call takes BURST_SLOWDOWN times as long, whichever model
             runs then (a second process on the core);
* outliers:  a rare single call (OUTLIER_RATE of them) takes OUTLIER_FACTOR times as long
             (an interrupt, a page fault, a preempted time slice).

perfgate runs through ``pipeline.run_comparison`` with in-process workers on
tests/fakes.py's FakeBackend and one FakeClock, so the warm-up, the interleaved block
pairs, the throughput windows, the looks and the checks are the shipped ones. Worker start
and model load are not simulated call by call: both models load at once on two cores, so
WORKER_START_S is added once to every time to verdict (perfgate's and the naive rules').
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakes import FakeClock, in_process_factory  # noqa: E402
from perfgate.config import CompareConfig  # noqa: E402
from perfgate.engine.pipeline import run_comparison  # noqa: E402

REGIMES = ("quiet", "bursty", "outliers")
JITTER_SIGMA = 0.10
BURST_SLOWDOWN = 2.0
BURST_PERIOD_S = (0.05, 0.5)
OUTLIER_RATE = 0.003
OUTLIER_FACTOR = 10.0
WORKER_START_S = 1.4  # start a worker process and load the model, both models at once
BUDGET = 1.15
PYTEST_BENCHMARK_MAX_TIME_S = 1.0  # pytest-benchmark's default --benchmark-max-time
PYTEST_BENCHMARK_GAP_S = 30.0  # the stored reference run happened earlier, elsewhere in the machine's day
ACTION_BENCHMARK_CALLS = 200  # a single timing loop per model per CI run


class Machine:
    """The runner's state as a function of virtual time (ns), and the per-call draws."""

    def __init__(self, regime: str, seed: int, horizon_s: float = 600.0) -> None:
        if regime not in REGIMES:
            raise ValueError(f"unknown regime {regime!r}")
        self.regime = regime
        self.rng = np.random.default_rng(seed)
        self.edges: list[int] = []  # on/off switch times in ns: [off ends, on ends, off ends, ...]
        if regime == "bursty":
            lengths = self.rng.uniform(*BURST_PERIOD_S, size=int(horizon_s / BURST_PERIOD_S[0]) + 2)
            lengths[0] *= self.rng.random()  # the run starts anywhere in the neighbour's cycle
            self.edges = (np.cumsum(lengths) * 1e9).astype(np.int64).tolist()
        self._draws = np.empty(0)
        self._next = 0

    def state(self, now_ns: int) -> float:
        """How much slower than quiet a call starting at ``now_ns`` runs (jitter aside)."""
        if not self.edges:
            return 1.0
        return BURST_SLOWDOWN if bisect.bisect_right(self.edges, now_ns) % 2 == 1 else 1.0

    def _noise(self) -> float:
        if self._next >= self._draws.size:
            jitter = self.rng.lognormal(0.0, JITTER_SIGMA, 65536)
            if self.regime == "outliers":
                jitter[self.rng.random(jitter.size) < OUTLIER_RATE] *= OUTLIER_FACTOR
            self._draws, self._next = jitter, 0
        value = self._draws[self._next]
        self._next += 1
        return value

    def latency(self, typical_ns: float) -> Callable[[Any, FakeClock, Any], float]:
        """A FakeBackend latency for a model whose quiet call takes ``typical_ns``."""
        return lambda rng, clock, feed: typical_ns * self.state(clock.now) * self._noise()

    def mean_of_calls(self, typical_ns: float, start_ns: int, calls: int) -> tuple[float, int]:
        """The mean duration of ``calls`` back-to-back calls from ``start_ns``, and when they end."""
        now, total = start_ns, 0.0
        for _ in range(calls):
            duration = typical_ns * self.state(now) * self._noise()
            total += duration
            now += int(duration)
        return total / calls, now


@dataclass(frozen=True)
class Trial:
    regime: str
    ratio: float
    seed: int
    typical_ns: float
    time_budget_s: float


@dataclass(frozen=True)
class Outcome:
    perfgate: str  # pass / fail / inconclusive
    perfgate_s: float  # all in: worker start and load, warm-up, measuring
    deciding: str  # the check that decided it, or why not
    pytest_benchmark: str
    pytest_benchmark_s: float
    action_benchmark: str
    action_benchmark_s: float


def spend_alpha_over_k_squared() -> None:
    """Try the look levels the lead is moving to (alpha * 6 / (pi^2 k^2) at look k, in
    place of alpha / 2^k), in this process only."""
    import math

    from perfgate.judge import checks

    checks.check_level = lambda alpha, look, count: 1.0 - alpha * 6.0 / (math.pi**2 * look**2) / max(1, count)


def run_trial(trial: Trial, data: str, plan_overrides: Mapping[str, Any] | None = None) -> Outcome:
    """One comparison of a model against itself made ``trial.ratio`` times slower, by
    perfgate and by both naive rules, on machines of the same regime and seed."""
    typical = {"reference": trial.typical_ns, "candidate": trial.typical_ns * trial.ratio}
    machine = Machine(trial.regime, trial.seed)
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", data, inputs={"x": "f*"}, seed=trial.seed, cold_starts=0,
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        time_budget_s=trial.time_budget_s, max_latency_increase=f"{(BUDGET - 1) * 100:g}%",
    )  # fmt: skip
    factory = in_process_factory(clock, {side: machine.latency(ns) for side, ns in typical.items()}, seed=trial.seed)
    report = run_comparison(config, worker_factory=factory, clock=clock.seconds, plan_overrides=plan_overrides)
    deciding = report.reason.split(":")[0] if report.verdict.value == "fail" else report.verdict.value
    perfgate_s = WORKER_START_S + report.run.total_seconds

    # pytest-benchmark --benchmark-compare-fail=mean:15%: the reference's stored run, then
    # the candidate's run later; each calibrated to fill max_time, in calls of the quiet model
    calls = max(5, int(PYTEST_BENCHMARK_MAX_TIME_S * 1e9 / trial.typical_ns))
    naive = Machine(trial.regime, trial.seed + 1_000_003)
    reference_mean, stored_at = naive.mean_of_calls(typical["reference"], 0, calls)
    candidate_start = stored_at + int((WORKER_START_S + PYTEST_BENCHMARK_GAP_S) * 1e9)
    candidate_mean, ended = naive.mean_of_calls(typical["candidate"], candidate_start, calls)
    pytest_verdict = "fail" if candidate_mean / reference_mean > BUDGET else "pass"
    pytest_s = WORKER_START_S + (ended - candidate_start) / 1e9

    # github-action-benchmark: one number per model in one CI run (a timing loop's mean,
    # one model after the other), an alert when their ratio is over the threshold
    action = Machine(trial.regime, trial.seed + 2_000_003)
    reference_value, after_reference = action.mean_of_calls(typical["reference"], 0, ACTION_BENCHMARK_CALLS)
    candidate_value, ended = action.mean_of_calls(typical["candidate"], after_reference, ACTION_BENCHMARK_CALLS)
    action_verdict = "fail" if candidate_value / reference_value > BUDGET else "pass"
    action_s = WORKER_START_S + ended / 1e9
    return Outcome(report.verdict.value, perfgate_s, deciding, pytest_verdict, pytest_s, action_verdict, action_s)


def write_features(path: Path, rows: int = 200) -> Path:
    """The fake models' input: 4 float columns f0..f3."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"f{i}": rng.standard_normal(rows) for i in range(4)}), path)
    return path
