"""Statistics on seeded synthetic samples whose answers are known."""

import math

import numpy as np
import pytest

from perfgate.stats import (
    UnusableSamples,
    drift_between_blocks,
    mann_whitney,
    min_samples_for_quantile,
    min_two_sided_p,
    quantile_interval,
    ratio_interval,
)


def blocks(rng, pairs, per_block, median_ns, ratio=1.0, sigma=0.2, drift=0.0):
    """Block pairs of lognormal latencies; each pair shares a drift factor."""
    reference, candidate = [], []
    for _ in range(pairs):
        shared = math.exp(rng.normal(0.0, drift))
        reference.append(shared * rng.lognormal(math.log(median_ns), sigma, per_block))
        candidate.append(shared * ratio * rng.lognormal(math.log(median_ns), sigma, per_block))
    return reference, candidate


def test_min_samples_match_loadgen():
    # MLPerf LoadGen: p90 needs 44 queries, p99 needs 459 (99 % confidence)
    assert min_samples_for_quantile(0.90) == 44
    assert min_samples_for_quantile(0.99) == 459
    assert min_samples_for_quantile(0.95) == 90
    assert min_samples_for_quantile(0.50) == 7
    assert min_samples_for_quantile(None) == 2


def test_exactly_scaled_candidate_gives_the_exact_ratio_and_a_zero_width_interval():
    rng = np.random.default_rng(1)
    reference = [rng.lognormal(11, 0.3, 50) for _ in range(10)]
    candidate = [block * 2.0 for block in reference]
    for q in (0.5, 0.95, None):
        interval = ratio_interval(reference, candidate, q, 0.95, seed=3)
        assert interval.estimate == pytest.approx(2.0)
        assert interval.low == pytest.approx(2.0, rel=1e-9)
        assert interval.high == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("q", [0.5, 0.95, None])
def test_95_percent_interval_covers_the_true_ratio_about_95_percent_of_the_time(q):
    hits = 0
    trials = 200
    for seed in range(trials):
        reference, candidate = blocks(np.random.default_rng(seed), 20, 40, 1e5, ratio=1.3)
        interval = ratio_interval(reference, candidate, q, 0.95, seed=seed)
        hits += interval.low <= 1.3 <= interval.high
    # binomial(200, 0.95): 0.90 and 0.99 are more than 3 standard deviations away
    assert 0.90 <= hits / trials <= 0.99


def test_pairing_cancels_drift_shared_by_a_block_pair():
    rng = np.random.default_rng(7)
    reference, candidate = blocks(rng, 30, 40, 1e5, ratio=1.2, drift=0.3)
    paired = ratio_interval(reference, candidate, 0.5, 0.95, seed=1)
    # the same samples with the pairs broken: candidate blocks matched to other reference blocks
    shuffled = [candidate[i] for i in np.random.default_rng(0).permutation(len(candidate))]
    unpaired = ratio_interval(reference, shuffled, 0.5, 0.95, seed=1)
    assert paired.low <= 1.2 <= paired.high
    assert unpaired.low <= 1.2 <= unpaired.high
    # log-widths: measured 0.054 paired against 0.33 with the pairs broken
    assert math.log(paired.high / paired.low) < 0.3 * math.log(unpaired.high / unpaired.low)


def test_higher_level_gives_a_wider_interval_and_more_pairs_a_narrower_one():
    reference, candidate = blocks(np.random.default_rng(2), 40, 30, 1e5, ratio=1.1)
    narrow = ratio_interval(reference, candidate, 0.5, 0.90, seed=0)
    wide = ratio_interval(reference, candidate, 0.5, 0.999, seed=0)
    assert wide.low < narrow.low and wide.high > narrow.high
    every_pair = ratio_interval(reference, candidate, 0.5, 0.95, seed=0)
    few_pairs = ratio_interval(reference[:8], candidate[:8], 0.5, 0.95, seed=0)
    assert few_pairs.high / few_pairs.low > every_pair.high / every_pair.low


def test_interval_is_deterministic_for_a_seed():
    reference, candidate = blocks(np.random.default_rng(4), 12, 20, 1e5)
    first = ratio_interval(reference, candidate, 0.95, 0.95, seed=11)
    second = ratio_interval(reference, candidate, 0.95, 0.95, seed=11)
    assert first == second


@pytest.mark.parametrize(
    "reference, candidate, message",
    [
        ([np.ones(5)], [np.ones(5)], "at least 2 block pairs"),  # n = 1 pair
        ([np.ones(5)] * 3, [np.ones(5)] * 2, "unpaired blocks"),  # unequal counts
        ([np.ones(5), np.array([1.0, np.nan])], [np.ones(5)] * 2, "NaN"),
        ([np.ones(5)] * 2, [np.ones(5), np.array([1.0, 0.0])], "zero or negative"),
        ([np.ones(5), np.array([])], [np.ones(5)] * 2, "empty block"),
    ],
)
def test_degenerate_samples_are_never_significant(reference, candidate, message):
    with pytest.raises(UnusableSamples, match=message):
        ratio_interval(reference, candidate, 0.5, 0.95)


def test_mann_whitney_reports_p_only_where_reachable():
    assert min_two_sided_p(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert min_two_sided_p(10, 10) == pytest.approx(2 / 184756)

    small = mann_whitney(np.array([1.0, 2, 3]), np.array([10.0, 11, 12]), alpha=0.05)
    assert small.p_value is None
    assert "unreachable" in small.note and small.p_min == pytest.approx(0.1)

    separated = mann_whitney(np.arange(10.0), np.arange(10.0) + 100, alpha=0.05)
    assert separated.p_value == pytest.approx(2 / 184756, rel=1e-6)  # the exact test's extreme

    same = mann_whitney(np.random.default_rng(0).normal(size=200), np.random.default_rng(1).normal(size=200))
    assert same.p_value > 0.01


def test_mann_whitney_on_degenerate_samples():
    identical = mann_whitney(np.full(30, 5.0), np.full(30, 5.0))
    assert identical.p_value is None or identical.p_value == pytest.approx(1.0)
    assert mann_whitney(np.array([1.0]), np.array([1.0, 2.0])).p_value is None
    nan = mann_whitney(np.array([1.0, np.nan, 3]), np.array([1.0, 2.0, 3]))
    assert nan.p_value is None and "NaN" in nan.note
    # unequal sample counts are fine for the test itself (pyperf's t-test raised here)
    assert mann_whitney(np.arange(20.0), np.arange(35.0) + 100).p_value < 1e-6


def test_drift_between_blocks_separates_machine_drift_from_call_to_call_spread():
    rng = np.random.default_rng(0)
    spread_only = [rng.lognormal(10, 0.5, 20) for _ in range(200)]  # wide, but steady
    assert drift_between_blocks(spread_only) < 0.03
    drifting = [rng.lognormal(10 + rng.normal(0, 0.2), 0.05, 20) for _ in range(200)]  # 20 % drift
    assert drift_between_blocks(drifting) == pytest.approx(0.2, abs=0.03)
    assert drift_between_blocks([np.ones(1)] * 10) is None  # one call per block: cannot tell
    assert drift_between_blocks([np.ones(5)] * 2) is None


# --- one model's quantile, for absolute budgets ------------------------------------------------


def one_model_blocks(rng, count, per_block, median_ns, sigma, drift=0.0):
    """Lognormal latencies whose blocks share a drift factor: log x = log m + d + e, with
    d ~ N(0, drift) per block and e ~ N(0, sigma) per call, so every x is lognormal with
    log-sd sqrt(sigma² + drift²), and its quantiles are known."""
    return [median_ns * math.exp(rng.normal(0.0, drift)) * rng.lognormal(0.0, sigma, per_block) for _ in range(count)]


def true_quantile(median_ns, log_sd, q):
    from scipy.stats import norm

    return median_ns * math.exp(log_sd**2 / 2) if q is None else median_ns * math.exp(log_sd * norm.ppf(q))


def test_quantile_interval_of_constant_samples_is_exact():
    blocks = [np.full(30, 2_000.0) for _ in range(5)]
    for q in (0.5, 0.99, None):
        interval = quantile_interval(blocks, q, 0.95)
        assert interval.estimate == pytest.approx(2_000.0)
        assert interval.low == pytest.approx(2_000.0, rel=1e-9) and interval.high == pytest.approx(2_000.0, rel=1e-9)
        assert interval.blocks == 5


@pytest.mark.parametrize("q", [0.5, 0.95, None])
def test_95_percent_quantile_interval_covers_the_true_quantile_about_95_percent_of_the_time(q):
    truth = true_quantile(1e5, 0.3, q)
    trials = 100
    hits = 0
    for seed in range(trials):
        interval = quantile_interval(one_model_blocks(np.random.default_rng(seed), 20, 50, 1e5, 0.3), q, 0.95, seed=seed)
        hits += interval.low <= truth <= interval.high
    # a tail quantile's bootstrap covers a little under its level with 1000 samples (0.9 for p95 here)
    assert 0.86 <= hits / trials <= 0.99


def test_resampling_blocks_covers_the_truth_where_drift_is_shared_within_blocks_and_calls_alone_would_not():
    truth = true_quantile(1e5, math.sqrt(0.1**2 + 0.3**2), 0.5)
    block_hits = 0
    for seed in range(100):
        blocks = one_model_blocks(np.random.default_rng(seed), 12, 25, 1e5, 0.1, drift=0.3)
        interval = quantile_interval(blocks, 0.5, 0.95, seed=seed)
        block_hits += interval.low <= truth <= interval.high
    assert block_hits >= 86
    # the same samples as if every call were independent: far too narrow an interval
    blocks = one_model_blocks(np.random.default_rng(5), 12, 25, 1e5, 0.1, drift=0.3)
    by_block = quantile_interval(blocks, 0.5, 0.95)
    by_call = quantile_interval([np.array([x]) for x in np.concatenate(blocks)], 0.5, 0.95)
    assert by_block.high / by_block.low > 1.3 * (by_call.high / by_call.low)


def test_quantile_interval_narrows_with_more_blocks_and_widens_with_the_level():
    rng = np.random.default_rng(2)
    blocks = one_model_blocks(rng, 40, 30, 1e5, 0.3)
    few, many = quantile_interval(blocks[:8], 0.95, 0.95), quantile_interval(blocks, 0.95, 0.95)
    assert many.high / many.low < few.high / few.low
    assert quantile_interval(blocks, 0.95, 0.999).high > many.high
    assert quantile_interval(blocks, 0.95, 0.95, seed=4) == quantile_interval(blocks, 0.95, 0.95, seed=4)


@pytest.mark.parametrize(
    "blocks, message",
    [
        ([np.ones(10)], "at least 2 blocks"),
        ([np.ones(10), np.array([1.0, np.nan])], "NaN"),
        ([np.ones(10), np.array([])], "empty block"),
        ([np.ones(10), np.zeros(3)], "zero or negative"),
    ],
)
def test_unusable_samples_give_no_quantile_interval(blocks, message):
    with pytest.raises(UnusableSamples, match=message):
        quantile_interval(blocks, 0.5, 0.95)
