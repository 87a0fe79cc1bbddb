"""The whole comparison (data, workers, interleaving, stopping, checks, verdict) on fake
backends in virtual time: latencies are exactly what the test says, nothing is timed."""

import numpy as np
import pytest

from fakes import FakeClock, drifting, in_process_factory, lognormal
from perfgate.config import CompareConfig
from perfgate.engine.pipeline import run_comparison
from perfgate.results import Verdict

MS = 1e6  # ns


def run(data, reference, candidate, *, made=None, **options):
    clock = FakeClock()
    options.setdefault("time_budget_s", 20.0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data),
        inputs={"x": "f*"}, reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        **options,
    )  # fmt: skip
    factory = in_process_factory(
        clock, {"reference": reference, "candidate": candidate}, made=made, seed=options.get("seed", 0)
    )
    report = run_comparison(config, worker_factory=factory, clock=clock.seconds)
    return report, clock


def gated(report):
    """The gated timing checks (the outputs' NaN guard is always gated too)."""
    return [check for check in report.checks if check.verdict is not Verdict.INFO and check.metric.family != "outputs"]


def test_an_a_a_pair_passes_soon_after_p95_has_its_samples(feature_table_path):
    report, _ = run(feature_table_path, lognormal(1 * MS), lognormal(1 * MS))
    assert report.verdict is Verdict.PASS and report.run.stopped_because == "decided"
    assert report.warnings == ()
    (series,) = report.series
    p95 = next(check for check in gated(report) if check.metric == "latency.p95")
    # looks grow by 1.5x: the pass comes soon after p95 has the 90 calls it needs
    assert 90 <= p95.n_reference <= 2 * 90 and series.pairs * series.calls_per_block == p95.n_reference
    assert all(abs(check.ratio - 1) < 0.1 for check in gated(report))


def test_a_2x_slower_candidate_fails_on_p50_before_p95_has_its_samples(feature_table_path):
    report, _ = run(feature_table_path, lognormal(1 * MS), lognormal(2 * MS))
    assert report.verdict is Verdict.FAIL
    assert report.reason.startswith("latency.p50")
    p50 = next(check for check in gated(report) if check.metric == "latency.p50")
    p95 = next(check for check in report.checks if check.metric == "latency.p95")
    assert p50.verdict is Verdict.FAIL and p50.ratio == pytest.approx(2.0, rel=0.05) and p50.ci[0] > 1.15
    assert p95.n_reference < 90 and p95.verdict is Verdict.INCONCLUSIVE  # the early fail did not wait for it


def test_a_pass_still_needs_every_check(feature_table_path):
    # p50 is decided within budget at once; the pass waits for p95's 90 samples
    report, _ = run(feature_table_path, lognormal(1 * MS, 0.01), lognormal(1 * MS, 0.01))
    assert report.verdict is Verdict.PASS
    assert all(check.n_reference >= 90 for check in gated(report))


def test_a_candidate_right_at_the_budget_is_inconclusive_when_time_runs_out(feature_table_path):
    report, _ = run(feature_table_path, lognormal(1 * MS, 0.2), lognormal(1.15 * MS, 0.2), time_budget_s=10.0)
    assert report.verdict is Verdict.INCONCLUSIVE
    assert report.run.stopped_because == "time budget"
    assert 10.0 <= report.run.measure_seconds < 10.5
    assert report.run.looks >= 3
    assert "straddles the +15% budget" in report.reason and "--time-budget 10" in report.reason


def test_a_small_real_regression_needs_longer_than_a_large_one(feature_table_path):
    fast, _ = run(feature_table_path, lognormal(1 * MS, 0.3), lognormal(3 * MS, 0.3))
    slow, _ = run(feature_table_path, lognormal(1 * MS, 0.3), lognormal(1.2 * MS, 0.3))
    assert fast.verdict is Verdict.FAIL and slow.verdict is Verdict.FAIL
    assert slow.run.looks > fast.run.looks
    assert fast.run.measure_seconds < slow.run.measure_seconds


def test_a_heavy_model_is_decided_on_p50_and_says_up_front_that_p95_is_not_gated(feature_table_path):
    # one second a call: 20 s of measuring gives ~10 calls a model, p95 needs 90
    lines = []
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(feature_table_path), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", time_budget_s=20.0,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": lognormal(1000 * MS, 0.01), "candidate": lognormal(1000 * MS, 0.01)})
    report = run_comparison(config, worker_factory=factory, clock=clock.seconds, progress=lines.append)
    assert report.verdict is Verdict.PASS
    p95 = next(check for check in report.checks if check.metric == "latency.p95")
    assert p95.verdict is Verdict.INFO and p95.budget is None
    assert "latency.p95:+15%" not in report.settings.budgets
    (note,) = [w for w in report.warnings if w.startswith("latency.p95 needs 90 calls per model")]
    assert "reported for information, not gated" in note and "--time-budget" in note
    assert lines.index(note) < next(i for i, line in enumerate(lines) if line.startswith("look 1"))  # before measuring


def test_an_explicit_p95_budget_the_time_budget_cannot_decide_is_said_up_front(feature_table_path):
    report, _ = run(feature_table_path, lognormal(1000 * MS, 0.01), lognormal(1000 * MS, 0.01), time_budget_s=20.0,
                    budgets=["latency.p95:+15%"])  # fmt: skip
    p95 = next(check for check in report.checks if check.metric == "latency.p95")
    assert report.verdict is Verdict.INCONCLUSIVE
    assert p95.verdict is Verdict.INCONCLUSIVE
    assert p95.reason.startswith("insufficient samples:") and p95.reason.endswith("latency.p95 needs 90")
    (note,) = [w for w in report.warnings if w.startswith("latency.p95 needs 90 calls per model")]
    assert "cannot be decided in time" in note
    wanted = float(note.rsplit("--time-budget ", 1)[1].split()[0])
    assert 225 <= wanted <= 260  # 90 rounds of two 1 s calls, with a quarter more


def test_drift_shared_by_both_models_cancels_out(feature_table_path):
    # the machine slows down to half speed and back every 2 s, for both models alike
    aa, _ = run(feature_table_path, drifting(lognormal(1 * MS)), drifting(lognormal(1 * MS)))
    assert aa.verdict is Verdict.PASS
    regressed, _ = run(feature_table_path, drifting(lognormal(1 * MS)), drifting(lognormal(1.5 * MS)))
    assert regressed.verdict is Verdict.FAIL
    low, high = regressed.checks[0].ci
    assert 1.15 < low <= 1.5 <= high  # decided early, on few pairs: the interval holds the true ratio


def test_a_regression_at_one_batch_size_fails_and_names_it(feature_table_path):
    def reference(rng, clock, feed):
        return 1 * MS * feed["x"].shape[0] ** 0.5 * rng.lognormal(0, 0.1)

    def candidate(rng, clock, feed):
        slower = 2.0 if feed["x"].shape[0] == 8 else 1.0
        return slower * reference(rng, clock, feed)

    report, _ = run(feature_table_path, reference, candidate, batch_sizes=(1, 8))
    assert report.verdict is Verdict.FAIL
    assert "at batch 8" in report.reason
    by_batch = {(c.metric, c.batch_size): c.verdict for c in gated(report)}
    assert by_batch[("latency.p50", 8)] is Verdict.FAIL
    assert by_batch[("latency.p50", 1)] is not Verdict.FAIL


def test_blocks_interleave_in_balanced_order_over_the_same_rows(feature_table_path):
    made = {}
    report, _ = run(feature_table_path, lognormal(1 * MS), lognormal(1.05 * MS), made=made, seed=5)
    series = report.series[0]
    assert len(series.reference) == len(series.candidate) == series.pairs >= 8
    # ABBA / BAAB quads: every two consecutive pairs have one of each order
    for i in range(0, series.pairs - 1, 2):
        assert {series.first[i], series.first[i + 1]} == {"reference", "candidate"}
    assert series.starts[1] == (series.starts[0] + series.calls_per_block) % series.batches
    # both models saw the same rows in the same order in every timed call
    timed = series.pairs * series.calls_per_block  # latency blocks (no throughput windows on a CPU without their budget)
    assert made["reference"].seen[-timed:] == made["candidate"].seen[-timed:]
    # synchronize ends every timed latency call
    assert made["reference"].calls == made["reference"].synchronized


def test_the_same_seed_gives_the_same_report(feature_table_path):
    first, _ = run(feature_table_path, lognormal(1 * MS, 0.3), lognormal(1.1 * MS, 0.3), seed=3)
    second, _ = run(feature_table_path, lognormal(1 * MS, 0.3), lognormal(1.1 * MS, 0.3), seed=3)
    assert first.checks == second.checks
    assert [np.array_equal(a, b) for a, b in zip(first.series[0].reference, second.series[0].reference)]


def test_a_required_speed_up_end_to_end(feature_table_path):
    quicker, _ = run(feature_table_path, lognormal(1 * MS), lognormal(0.6 * MS), max_latency_increase="-20%")
    assert quicker.verdict is Verdict.PASS
    same, _ = run(feature_table_path, lognormal(1 * MS), lognormal(1 * MS), max_latency_increase="-20%")
    assert same.verdict is Verdict.FAIL


def test_the_report_carries_settings_samples_and_warnings(feature_table_path):
    report, _ = run(feature_table_path, lognormal(1 * MS), lognormal(1 * MS), batch_sizes=(1, 64), rows=150, seed=2)
    assert report.data.rows_used == 150 and report.data.rows_total == 200
    assert report.settings.batch_sizes == (1, 64)
    assert report.reference.inputs[0].columns == ("f0", "f1", "f2", "f3")
    assert any("the last 22 rows do not fill a batch" in warning for warning in report.warnings)
    for series in report.series:
        assert sum(len(block) for block in series.reference) == series.pairs * series.calls_per_block


def test_error_rates_over_many_seeded_runs(feature_table_path):
    """The gate's promise: at most alpha (5 %) wrong verdicts, checks and looks included.

    A true ratio exactly on the budget is the hardest case for a false fail: by
    construction at most alpha / 2 of such runs may fail (measured: 3 of 200). An A/A
    pair must never fail, and a 1.3x regression must be caught.
    """

    def verdicts(ratio):
        counts = {verdict: 0 for verdict in Verdict}
        for seed in range(40):
            report, _ = run(
                feature_table_path, lognormal(1 * MS, 0.3), lognormal(ratio * MS, 0.3), seed=seed, time_budget_s=4.0,
                cold_starts=0,
            )
            counts[report.verdict] += 1
        return counts

    assert verdicts(1.0)[Verdict.FAIL] == 0
    assert verdicts(1.15)[Verdict.FAIL] <= 3  # binomial(40, 0.025): P(more than 3) < 2 %
    assert verdicts(1.3)[Verdict.FAIL] == 40


@pytest.mark.parametrize("named, ending", [((), "would gate it"), (("latency.p95:+15%",), "would decide it")])
def test_what_the_time_budget_cannot_decide_is_said_in_the_words_of_the_face_that_asked(named, ending):
    import ast

    from perfgate.judge.budgets import build_budgets
    from perfgate.engine.pacing import pace_budgets
    from perfgate.judge.resolution import python_words
    from perfgate.engine.runner import Pace

    # one second a call on each model, one call a block: 20 s give about 8 calls, p95 needs 90
    # (90 rounds of 2 s, a quarter more, rounded up to 30 s: 240)
    pace = Pace(2.0, {1: 1}, {1: {"reference": 1000 * MS, "candidate": 1000 * MS}})
    budgets = build_budgets(None, named)
    _, (flags,) = pace_budgets(budgets, pace, 20.0)
    _, (python,) = pace_budgets(budgets, pace, 20.0, python_words)
    assert "--time-budget 20 gives about" in flags and flags.endswith(f"--time-budget 240 {ending}")
    assert "time_budget_s=20 gives about" in python and python.endswith(f"time_budget_s=240 {ending}")
    keyword = python.rsplit("; ", 1)[1].removesuffix(f" {ending}")
    assert ast.literal_eval(ast.parse(f"f({keyword})", mode="eval").body.keywords[0].value) == 240
