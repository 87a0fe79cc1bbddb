"""The decision rule on hand-made samples with exact answers."""

import numpy as np
import pytest

from perfgate.budgets import build_budgets, parse_budget
from perfgate.checks import check_level, decide, evaluate, min_samples, overall
from perfgate.results import Check, Series, Verdict


def series(reference_ns, candidate_ns, pairs=8, per_block=20, batch_size=1):
    return Series(
        batch_size=batch_size,
        calls_per_block=per_block,
        batches=100,
        reference=tuple(np.full(per_block, reference_ns, dtype=np.int64) for _ in range(pairs)),
        candidate=tuple(np.full(per_block, candidate_ns, dtype=np.int64) for _ in range(pairs)),
        starts=tuple(range(pairs)),
        first=tuple("reference" if i % 2 == 0 else "candidate" for i in range(pairs)),
    )


P50 = parse_budget("latency.p50:+15%")


@pytest.mark.parametrize(
    "candidate_ns, verdict",
    [(1140, Verdict.PASS), (1150, Verdict.PASS), (1160, Verdict.FAIL), (500, Verdict.PASS)],
)
def test_boundaries_of_the_budget(candidate_ns, verdict):
    # constant samples: the interval has zero width, so the ratio alone decides; the
    # budget is inclusive ("at or below 1.15 passes")
    check = decide(series(1000, candidate_ns), P50, level=0.99)
    assert check.verdict is verdict
    assert check.ratio == pytest.approx(candidate_ns / 1000)
    assert check.ci == pytest.approx((candidate_ns / 1000, candidate_ns / 1000))


def test_an_interval_that_straddles_the_budget_is_inconclusive():
    rng = np.random.default_rng(0)
    reference = tuple(rng.lognormal(np.log(1000), 0.3, 10) for _ in range(4))
    candidate = tuple(block * 1.15 * rng.lognormal(0, 0.3, 10) for block in reference)
    noisy = Series(1, 10, 10, reference, candidate, (0, 1, 2, 3), ("reference",) * 4)
    check = decide(noisy, P50, level=0.99)
    assert check.verdict is Verdict.INCONCLUSIVE
    assert check.ci[0] < 1.15 < check.ci[1]
    assert "straddles the +15% budget" in check.reason


def test_a_required_speed_up():
    faster = parse_budget("latency.p50:-10%")
    assert decide(series(1000, 700), faster, level=0.99).verdict is Verdict.PASS
    assert decide(series(1000, 1000), faster, level=0.99).verdict is Verdict.FAIL


def test_tail_percentiles_need_enough_samples():
    p99 = parse_budget("latency.p99:+15%")
    few = decide(series(1000, 3000, pairs=8, per_block=50), p99, level=0.99)  # 400 < 459
    assert few.verdict is Verdict.INCONCLUSIVE
    assert few.reason == "insufficient samples: 400 per model, latency.p99 needs 459"
    assert few.ratio is None and few.ci is None
    enough = decide(series(1000, 3000, pairs=10, per_block=50), p99, level=0.99)
    assert enough.verdict is Verdict.FAIL
    assert min_samples(build_budgets(None, ["latency.p99:+20%"])) == 459


def test_unusable_samples_are_never_significant():
    broken = series(1000, 5000)
    broken = Series(1, 20, 100, broken.reference, broken.candidate[:-1], broken.starts, broken.first)
    check = decide(broken, P50, level=0.99)
    assert check.verdict is Verdict.INCONCLUSIVE
    assert "unpaired blocks" in check.reason
    zero = series(1000, 0)
    assert decide(zero, P50, level=0.99).verdict is Verdict.INCONCLUSIVE


def test_levels_spend_alpha_over_checks_and_looks():
    assert check_level(0.05, look=1, checks=2) == pytest.approx(1 - 0.05 / 2 / 2)
    assert check_level(0.05, look=3, checks=4) == pytest.approx(1 - 0.05 / 8 / 4)
    # the whole sequence of looks spends at most alpha
    assert sum(1 - check_level(0.05, look, 1) for look in range(1, 60)) < 0.05


def test_evaluate_builds_every_metric_at_every_batch_size():
    evaluation = evaluate([series(1000, 1000), series(2000, 2100, batch_size=8)], build_budgets(), alpha=0.05, look=1)
    assert [(c.metric, c.batch_size) for c in evaluation.checks] == [
        ("latency.p50", 1), ("latency.p95", 1), ("latency.p50", 8), ("latency.p95", 8),
    ]  # fmt: skip
    assert evaluation.verdict is Verdict.PASS and evaluation.decided
    assert [c.ci_level for c in evaluation.checks] == [pytest.approx(1 - 0.05 / 2 / 4)] * 4


def make_check(verdict, low=1.0):
    return Check("latency.p50", 1, "+15%", 1.15, verdict, verdict.value, 1.0, 1.0, 1.0, (low, low), 0.99, 10, 10, 2)


def test_the_verdict_is_fail_if_any_fails_inconclusive_if_any_undecided_else_pass():
    assert overall([make_check(Verdict.PASS), make_check(Verdict.PASS)])[0] is Verdict.PASS
    assert overall([make_check(Verdict.PASS), make_check(Verdict.INCONCLUSIVE)])[0] is Verdict.INCONCLUSIVE
    verdict, reason = overall([make_check(Verdict.INCONCLUSIVE), make_check(Verdict.FAIL, 2.0), make_check(Verdict.PASS)])
    assert verdict is Verdict.FAIL and reason.startswith("latency.p50 at batch 1:")
    assert overall([])[0] is Verdict.ERROR
