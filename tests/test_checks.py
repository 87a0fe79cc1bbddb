"""The decision rule on hand-made observations with exact answers."""

import math
import numpy as np
import pytest

from perfgate.judge.budgets import build_budgets, parse_budget
from perfgate.judge.checks import Observations, check_level, evaluate, min_samples, overall
from perfgate.measurements import LoadScenario, LoadSeries, Series
from perfgate.results import Check, Verdict
from perfgate.worker import LoadEpisode

MiB = 2**20


def series(reference_ns, candidate_ns, pairs=8, per_block=20, batch_size=1, windows=None):
    return Series(
        batch_size=batch_size,
        calls_per_block=per_block,
        batches=100,
        reference=tuple(np.full(per_block, reference_ns, dtype=np.int64) for _ in range(pairs)),
        candidate=tuple(np.full(per_block, candidate_ns, dtype=np.int64) for _ in range(pairs)),
        starts=tuple(range(pairs)),
        first=tuple("reference" if i % 2 == 0 else "candidate" for i in range(pairs)),
        windows=windows or {},
    )


def checks_of(observations, budgets, alpha=0.02, look=1):
    """With one gated check at look 1, alpha 0.02 gives each interval a level of 1 - 0.02 * 6 / pi**2."""
    return evaluate(observations, budgets, alpha=alpha, look=look).checks


def latency(one_series, budget_text):
    (check,) = [c for c in checks_of(Observations(series=(one_series,)), [parse_budget(budget_text)]) if c.metric.startswith("latency")]
    return check


@pytest.mark.parametrize(
    "candidate_ns, verdict",
    [(1140, Verdict.PASS), (1150, Verdict.PASS), (1160, Verdict.FAIL), (500, Verdict.PASS)],
)
def test_boundaries_of_the_budget(candidate_ns, verdict):
    # constant samples: the interval has zero width, so the ratio alone decides; the
    # budget is inclusive ("at or below 1.15 passes")
    check = latency(series(1000, candidate_ns), "latency.p50:+15%")
    assert check.verdict is verdict
    assert check.ratio == pytest.approx(candidate_ns / 1000)
    assert check.ci == pytest.approx((candidate_ns / 1000, candidate_ns / 1000))
    assert check.ci_level == pytest.approx(1 - 0.02 * 6 / math.pi**2)  # alpha 0.02 at look 1, one check


def test_an_interval_that_straddles_the_budget_is_inconclusive():
    rng = np.random.default_rng(0)
    reference = tuple(rng.lognormal(np.log(1000), 0.3, 10) for _ in range(4))
    candidate = tuple(block * 1.15 * rng.lognormal(0, 0.3, 10) for block in reference)
    noisy = Series(1, 10, 10, reference, candidate, (0, 1, 2, 3), ("reference",) * 4)
    check = latency(noisy, "latency.p50:+15%")
    assert check.verdict is Verdict.INCONCLUSIVE
    assert check.ci[0] < 1.15 < check.ci[1]
    assert "straddles the +15% budget" in check.reason


def test_a_required_speed_up():
    assert latency(series(1000, 700), "latency.p50:-10%").verdict is Verdict.PASS
    assert latency(series(1000, 1000), "latency.p50:-10%").verdict is Verdict.FAIL


def test_tail_percentiles_need_enough_samples():
    few = latency(series(1000, 3000, pairs=8, per_block=50), "latency.p99:+15%")  # 400 < 459
    assert few.verdict is Verdict.INCONCLUSIVE
    assert few.reason == "insufficient samples: 400 per model, latency.p99 needs 459"
    assert few.ratio is None and few.ci is None
    assert latency(series(1000, 3000, pairs=10, per_block=50), "latency.p99:+15%").verdict is Verdict.FAIL
    assert min_samples(build_budgets(None, ["latency.p99:+20%"])) == 459


def test_unusable_samples_are_never_significant():
    broken = series(1000, 5000)
    broken = Series(1, 20, 100, broken.reference, broken.candidate[:-1], broken.starts, broken.first)
    check = latency(broken, "latency.p50:+15%")
    assert check.verdict is Verdict.INCONCLUSIVE and "unpaired blocks" in check.reason
    assert latency(series(1000, 0), "latency.p50:+15%").verdict is Verdict.INCONCLUSIVE


def test_levels_spend_alpha_over_checks_and_looks():
    assert check_level(0.05, look=1, checks=2) == pytest.approx(1 - 0.05 * 6 / math.pi**2 / 2)
    assert check_level(0.05, look=3, checks=4) == pytest.approx(1 - 0.05 * 6 / math.pi**2 / 9 / 4)
    spent = sum(1 - check_level(0.05, look, 1) for look in range(1, 100_000))
    assert 0.0499 < spent < 0.05  # every look's share together: all of alpha, never more


def test_every_gated_metric_at_every_batch_size_and_only_gated_ones_split_alpha():
    windows = {"reference": (1000,) * 8, "candidate": (1000,) * 8}
    observed = Observations(series=(series(1000, 1000, windows=windows), series(2000, 2100, batch_size=8, windows=windows)))
    evaluation = evaluate(observed, build_budgets(), alpha=0.05, look=1)
    assert [(c.metric, c.batch_size, c.verdict) for c in evaluation.checks] == [
        ("latency.p50", 1, Verdict.PASS), ("latency.p95", 1, Verdict.PASS), ("throughput.batch1", 1, Verdict.INFO),
        ("latency.p50", 8, Verdict.PASS), ("latency.p95", 8, Verdict.PASS), ("throughput.batch8", 8, Verdict.INFO),
    ]  # fmt: skip
    assert evaluation.verdict is Verdict.PASS and evaluation.reason == "all 4 checks within budget"
    assert [c.ci_level for c in evaluation.checks if c.verdict is not Verdict.INFO] == [pytest.approx(check_level(0.05, 1, 4))] * 4
    # a look evaluates only what can decide: the same gated checks, the same verdict
    look = evaluate(observed, build_budgets(), alpha=0.05, look=1, gated_only=True)
    assert look.checks == tuple(c for c in evaluation.checks if c.verdict is not Verdict.INFO)
    assert (look.verdict, look.reason) == (evaluation.verdict, evaluation.reason)


def test_throughput_is_samples_over_window_time_and_higher_is_better():
    # batch 4, 20 calls per window: reference windows of 1 ms, candidate of 1.25 ms
    windows = {"reference": (1_000_000,) * 8, "candidate": (1_250_000,) * 8}
    observed = Observations(series=(series(1000, 1000, batch_size=4, windows=windows),))
    (check,) = [c for c in checks_of(observed, [parse_budget("latency.p50:+15%"), parse_budget("throughput:-10%")]) if c.metric.startswith("throughput")]
    assert check.metric == "throughput.batch4" and check.unit == "samples/s" and check.higher_is_better
    assert check.reference == pytest.approx(80_000) and check.candidate == pytest.approx(64_000)
    assert check.ratio == pytest.approx(0.8)
    assert check.verdict is Verdict.FAIL and "under the -10% budget" in check.reason
    (passing,) = [c for c in checks_of(observed, [parse_budget("latency.p50:+15%"), parse_budget("throughput:-25%")]) if c.metric.startswith("throughput")]
    assert passing.verdict is Verdict.PASS


def test_memory_is_decided_without_a_test_and_with_an_absolute_floor():
    def memory_check(reference, candidate, budget, floor=5 * MiB, **extra):
        readings = {"reference": {"peak_rss": reference, **extra}, "candidate": {"peak_rss": candidate, **extra}}
        observed = Observations(series=(series(1000, 1000),), memory=readings, memory_floor=floor)
        budgets = [parse_budget("latency.p50:+15%")] + ([parse_budget(budget)] if budget else [])
        (check,) = [c for c in checks_of(observed, budgets) if c.metric == "memory.peak_rss"]
        return check

    assert memory_check(100 * MiB, 104 * MiB, "memory.peak_rss:+1%").verdict is Verdict.PASS  # under the 5 MiB floor
    assert memory_check(100 * MiB, 120 * MiB, "memory.peak_rss:+10%").verdict is Verdict.FAIL
    failing = memory_check(100 * MiB, 120 * MiB, "memory.peak_rss:+10%")
    assert failing.reason == "+20 MiB (+20%), over the +10% budget (floor 5 MiB)"
    assert failing.ci is None and failing.unit == "bytes"
    assert memory_check(1000 * MiB, 1090 * MiB, "memory.peak_rss:+10%").verdict is Verdict.PASS
    assert memory_check(100 * MiB, 160 * MiB, "memory.peak_rss:+64MiB").verdict is Verdict.PASS
    assert memory_check(100 * MiB, 170 * MiB, "memory.peak_rss:+64MiB").verdict is Verdict.FAIL
    info = memory_check(100 * MiB, 170 * MiB, None)
    assert info.verdict is Verdict.INFO and info.budget is None
    loaded = memory_check(100 * MiB, 101 * MiB, None, peak_includes_load=True)
    assert "includes loading" in loaded.reason


def test_cold_start_compares_means_of_fresh_starts():
    observed = Observations(series=(series(1000, 1000),), cold_starts={"reference": (1.0, 1.1, 0.9, 1.0), "candidate": (3.0, 3.3, 2.7, 3.0)})
    budgets = [parse_budget("latency.p50:+15%"), parse_budget("cold_start:+50%")]
    (check,) = [c for c in checks_of(observed, budgets) if c.metric == "cold_start"]
    assert check.ratio == pytest.approx(3.0) and check.verdict is Verdict.FAIL
    assert check.reference == pytest.approx(1e9) and check.batch_size is None
    lone = Observations(series=(series(1000, 1000),), cold_starts={"reference": (1.0,), "candidate": (3.0,)})
    (single,) = [c for c in checks_of(lone, [parse_budget("latency.p50:+15%")]) if c.metric == "cold_start"]
    assert single.verdict is Verdict.INFO and "--cold-starts 1 or more" in single.reason


def test_load_checks_compare_queueing_plus_service():
    def episode(queue_ns, service_ns, n=200):
        return LoadEpisode((queue_ns,) * n, (service_ns,) * n, n * service_ns)

    load = LoadSeries(LoadScenario("closed", clients=4), 1, 200,
                      reference=(episode(3000, 1000),) * 4, candidate=(episode(6000, 2000),) * 4,
                      first=("reference", "candidate") * 2, seeds=(1, 2, 3, 4))  # fmt: skip
    observed = Observations(series=(series(1000, 1000),), loads=(load,))
    found = {c.metric: c for c in checks_of(observed, build_budgets(load=True)) if c.metric.startswith("load")}
    assert set(found) == {"load.p50", "load.p99"}
    assert found["load.p50"].reference == 4000 and found["load.p50"].candidate == 8000
    assert found["load.p50"].scenario == "concurrency 4" and found["load.p50"].verdict is Verdict.FAIL


def test_the_verdict_is_fail_if_any_fails_inconclusive_if_any_gated_undecided_else_pass():
    def make(verdict):
        return Check("latency.p50", 1, verdict, verdict.value, 1.0, 1.0, 1.0, (1.0, 1.0), 0.99, 10, 10, 2)

    assert overall([make(Verdict.PASS), make(Verdict.INFO)])[0] is Verdict.PASS
    assert overall([make(Verdict.PASS), make(Verdict.INCONCLUSIVE)])[0] is Verdict.INCONCLUSIVE
    verdict, reason = overall([make(Verdict.INCONCLUSIVE), make(Verdict.FAIL), make(Verdict.PASS)])
    assert verdict is Verdict.FAIL and reason.startswith("latency.p50 at batch 1:")
    assert overall([make(Verdict.INFO)])[0] is Verdict.ERROR
    assert overall([])[0] is Verdict.ERROR
