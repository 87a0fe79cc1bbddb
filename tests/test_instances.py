"""Instance effects: each model in several worker processes, the processes' disagreement in
the interval. Fake backends in virtual time: a process's own slowness is what the test says."""

import numpy as np
import pytest

from fakes import FakeClock, in_process_factory, lognormal
from perfgate.config import CompareConfig
from perfgate.errors import UsageError
from perfgate.pipeline import run_comparison
from perfgate.results import Verdict
from perfgate.stats import ratio_interval, with_instance_variation

MS = 1e6


def blocks(rng, median, pairs, calls=20, sigma=0.05):
    return [median * rng.lognormal(0.0, sigma, calls) for _ in range(pairs)]


def test_instances_that_agree_leave_the_interval_as_it_is_and_ones_that_disagree_widen_it():
    rng = np.random.default_rng(1)
    instances = [i % 2 for i in range(40)]
    # agreeing processes: DerSimonian-Laird's tau^2 is zero unless their ratios differ by more
    # than their own noise, which with 2 instances happens by chance in about a third of runs
    inflation = []
    for _ in range(60):
        reference, agreeing = blocks(rng, 1.0, 40), blocks(rng, 1.0, 40)
        overall = ratio_interval(reference, agreeing, 0.5, 0.99, resamples=300)
        same = with_instance_variation(overall, reference, agreeing, instances, 0.5, resamples=300)
        inflation.append(same.se_log / overall.se_log)
    assert min(inflation) == pytest.approx(1.0) and np.median(inflation) == pytest.approx(1.0)
    assert np.quantile(inflation, 0.9) < 2.0
    reference, agreeing = blocks(rng, 1.0, 40), blocks(rng, 1.0, 40)
    # the candidate's second process is 8 % slower than its first: the same models, other layouts
    disagreeing = [block * (1.08 if i % 2 else 1.0) for i, block in enumerate(agreeing)]
    overall = ratio_interval(reference, disagreeing, 0.5, 0.99)
    wide = with_instance_variation(overall, reference, disagreeing, instances, 0.5)
    assert wide.estimate == overall.estimate
    assert wide.se_log > 3 * overall.se_log and wide.low < overall.low and wide.high > overall.high
    assert wide.low < 1.0 < wide.high  # an 8 % process effect is not evidence of a slower model
    # one instance: nothing to add
    assert with_instance_variation(overall, reference, disagreeing, [0] * 40, 0.5) == overall


def test_an_instance_pair_with_one_block_pair_adds_the_instances_whole_spread():
    rng = np.random.default_rng(2)
    reference, candidate = blocks(rng, 1.0, 3), blocks(rng, 1.0, 3)
    candidate[1] = candidate[1] * 1.2
    overall = ratio_interval(reference, candidate, 0.5, 0.99)
    widened = with_instance_variation(overall, reference, candidate, [0, 1, 0], 0.5)
    assert widened.se_log > overall.se_log


def run(data, latencies, **options):
    clock = FakeClock()
    made = {}
    options.setdefault("time_budget_s", 20.0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", cold_starts=0, **options,
    )  # fmt: skip
    factory = in_process_factory(clock, latencies, made=made)
    return run_comparison(config, worker_factory=factory, clock=clock.seconds), made


def test_block_pairs_take_turns_over_the_instances(feature_table_path):
    report, made = run(feature_table_path, {"reference": lognormal(1 * MS), "candidate": lognormal(1 * MS)}, instances=3)
    assert sorted(made) == sorted(
        ["reference", "candidate", "reference-instance-2", "candidate-instance-2", "reference-instance-3", "candidate-instance-3"]
    )
    (series,) = report.series
    assert series.instances == tuple(i % 3 for i in range(series.pairs))
    assert report.settings.instances == 3


def test_a_tight_budget_runs_two_processes_per_model_by_default():
    def instances(**options):
        return CompareConfig.from_options("r.onnx", "c.onnx", "d.parquet", **options).worker_instances

    assert instances() == 1  # 15 %
    assert instances(max_latency_increase="10%") == 2
    assert instances(budgets=["latency.p99:+5%"]) == 2
    assert instances(budgets=["throughput:-8%"]) == 2
    assert instances(budgets=["memory.peak_rss:+5%"]) == 1  # not a timing: no instance effect to average
    assert instances(max_latency_increase="10%", instances=1) == 1
    with pytest.raises(UsageError, match="instances must be a whole number from 1 to 8"):
        instances(instances=0)


def test_a_slow_process_of_the_same_model_fails_a_tight_budget_with_one_instance_but_not_with_two(feature_table_path):
    # The same model; the candidate's first process landed badly (8 % slower), its second did not.
    latencies = {
        "reference": lognormal(1 * MS, 0.05),
        "candidate": lambda rng, clock, feed: 1.08 * MS * rng.lognormal(0.0, 0.05),
        "candidate-instance-2": lognormal(1 * MS, 0.05),
    }
    one, _ = run(feature_table_path, latencies, budgets=["latency.p50:+5%"], instances=1)
    assert one.verdict is Verdict.FAIL and one.reason.startswith("latency.p50")  # the wrong fail instance effects cause
    # with two, the processes' disagreement is in the interval: no fail; at this noise the +5 %
    # budget is more than the time budget can resolve, so the run measures to its end and the
    # check is inconclusive, saying so, with the interval holding "no change"
    two, _ = run(feature_table_path, latencies, budgets=["latency.p50:+5%"], instances=2)
    p50 = next(check for check in two.checks if check.metric == "latency.p50")
    assert two.verdict is Verdict.INCONCLUSIVE and two.run.stopped_because == "time budget"
    assert p50.verdict is Verdict.INCONCLUSIVE and p50.ci[0] < 1.0 < p50.ci[1]
    assert "--budget latency.p50:+" in p50.reason and "would resolve it" in p50.reason
