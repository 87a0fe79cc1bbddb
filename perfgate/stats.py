"""Statistics on latency samples that were measured in interleaved blocks.

The unit of independence is the *block pair*: one block of calls on the reference and
one on the candidate, adjacent in time and over the same rows. Noise on a shared runner
(a neighbour's job, thermal drift) comes in bursts longer than one call, so samples in a
block are not independent, but two adjacent blocks see much the same conditions. The
confidence interval of a ratio is therefore found by resampling block pairs, giving the
reference and the candidate the *same* resampling weights, so that what disturbed both
cancels in the ratio.

Every function here is deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Bins for the resampled quantiles are this much wider than the one before (0.1 %): far
# finer than any budget, and the point estimate uses the exact samples anyway.
_BIN_GROWTH = 1.001
_MAX_BINS = 4096
_EXACT_MANN_WHITNEY_MAX = 10_000  # n * m up to which the exact U distribution is used


class UnusableSamples(ValueError):
    """The samples cannot support the statistic (too few, NaN, non-positive, unpaired)."""


@dataclass(frozen=True)
class RatioInterval:
    """statistic(candidate) / statistic(reference), with a confidence interval."""

    estimate: float
    low: float
    high: float
    level: float
    blocks: int
    se_log: float  # standard error of log(ratio) from the bootstrap


@dataclass(frozen=True)
class MannWhitney:
    """Two-sided Mann–Whitney U test, reported only where its p-value can be small enough to matter."""

    p_value: float | None
    p_min: float | None  # the smallest p-value these sample counts allow
    note: str


def quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q))


def statistic(values: np.ndarray, q: float | None) -> float:
    """The q-quantile of ``values``, or their mean when ``q`` is None."""
    return float(np.mean(values)) if q is None else quantile(values, q)


def min_samples_for_quantile(q: float | None, confidence: float = 0.99) -> int:
    """The fewest samples for which a q-quantile claim means something (MLPerf LoadGen's rule).

    With n samples, the chance that all of them fall below the true q-quantile is q**n;
    a claim needs that chance under 1 - confidence: p90 needs 44, p95 90, p99 459.
    """
    if q is None:
        return 2
    tail = max(q, 1.0 - q)
    return max(2, math.ceil(math.log(1.0 - confidence) / math.log(tail)))


def ratio_interval(
    reference_blocks: Sequence[np.ndarray],
    candidate_blocks: Sequence[np.ndarray],
    q: float | None,
    level: float,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> RatioInterval:
    """Confidence interval of statistic(candidate) / statistic(reference).

    ``reference_blocks[i]`` and ``candidate_blocks[i]`` are the samples of block pair i.
    The point estimate is computed on all samples. Its spread comes from a paired block
    bootstrap: block pairs are drawn with replacement and each draw weights both models'
    blocks alike. The interval is ``log(estimate) ± t(level, pairs - 1) · se`` where se
    is the bootstrap standard error of log(ratio): a normal-theory interval on the log
    scale, widened by Student's t for few blocks, which stays usable at the small error
    rates a gate splits across many checks and looks (a percentile interval would need
    tens of thousands of resamples there).
    """
    reference = _validated_blocks(reference_blocks, "reference")
    candidate = _validated_blocks(candidate_blocks, "candidate")
    pairs = len(reference)
    if len(candidate) != pairs:
        raise UnusableSamples(f"unpaired blocks ({pairs} reference, {len(candidate)} candidate)")
    if pairs < 2:
        raise UnusableSamples(f"needs at least 2 block pairs, has {pairs}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")

    estimate = statistic(np.concatenate(candidate), q) / statistic(np.concatenate(reference), q)
    weights = _block_weights(pairs, resamples, seed)
    log_ratios = np.log(_resampled_statistic(candidate, q, weights)) - np.log(
        _resampled_statistic(reference, q, weights)
    )
    se_log = float(np.std(log_ratios, ddof=1))
    low, high = _log_interval(estimate, se_log, level, pairs)
    return RatioInterval(estimate=estimate, low=low, high=high, level=level, blocks=pairs, se_log=se_log)


def with_instance_variation(
    overall: RatioInterval, reference_blocks: Sequence[np.ndarray], candidate_blocks: Sequence[np.ndarray],
    instances: Sequence[int], q: float | None,
) -> RatioInterval:
    """``overall`` widened to what the worker instances themselves say
    (``instances[i]``: the instance pair that ran block pair i).

    Every worker process has a latency offset of its own, fixed for its life: the ~9 us
    MLP's processes differ by about 2 % (sd) on a 2-vCPU machine, so an instance pair's
    ratio is off by about 3 % however many blocks it runs, while the blocks' bootstrap sees
    0.1-0.3 %. So the instance pairs' own ratios L_k give the Hartung-Knapp interval
    ``mean(L) ± t(level, K - 1) · sd(L) / √K``, whose coverage holds whatever the process
    effects' size (sd(L) holds them and the blocks' noise). DerSimonian-Laird's estimate of
    the process variance, what this replaced, is zero whenever the few pairs happen to
    agree (half the runs with K = 2): an A/A pair then failed +0.5 % in 20-40 % of runs.

    The interval is the wider of the two (never narrower than the blocks' own), centred on
    the overall estimate; its ``se_log`` is the one that gives that width with the blocks'
    t, so that everything computed from it (the detectable change) sees the same width.
    """
    groups = sorted(set(instances))
    if len(groups) < 2:
        return overall
    logs = []
    for group in groups:
        chosen = [i for i, instance in enumerate(instances) if instance == group]
        reference = np.concatenate([np.asarray(reference_blocks[i], dtype=np.float64) for i in chosen])
        candidate = np.concatenate([np.asarray(candidate_blocks[i], dtype=np.float64) for i in chosen])
        logs.append(math.log(statistic(candidate, q) / statistic(reference, q)))
    k = len(groups)
    se_between = float(np.std(logs, ddof=1)) / math.sqrt(k)
    between_half = _t_quantile(overall.level, k - 1) * se_between
    blocks_t = _t_quantile(overall.level, overall.blocks - 1)
    if between_half <= blocks_t * overall.se_log:
        return overall
    center = math.log(overall.estimate)
    low, high = math.exp(center - between_half), math.exp(center + between_half)
    return RatioInterval(overall.estimate, low, high, overall.level, overall.blocks, between_half / blocks_t)


@dataclass(frozen=True)
class QuantileInterval:
    """statistic(samples) of one model, with a confidence interval (in the samples' unit)."""

    estimate: float
    low: float
    high: float
    level: float
    blocks: int
    se_log: float  # standard error of log(statistic) from the bootstrap


def quantile_interval(
    blocks: Sequence[np.ndarray], q: float | None, level: float, *, resamples: int = 1000, seed: int = 0
) -> QuantileInterval:
    """Confidence interval of one model's q-quantile (its mean when ``q`` is None), for
    a budget in absolute terms ("p95 under 20 ms").

    The one-sample form of ``ratio_interval``: calls within a block are correlated and
    blocks much less so, so blocks are drawn with replacement, and the interval is
    ``log(estimate) ± t(level, blocks - 1) · se`` with se the bootstrap standard error of
    log(statistic). No pairing cancels the machine's drift here, so a noisy machine gives
    a wider interval, never a narrower one.
    """
    arrays = _validated_blocks(blocks, "model")
    if len(arrays) < 2:
        raise UnusableSamples(f"needs at least 2 blocks, has {len(arrays)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, got {level}")
    estimate = statistic(np.concatenate(arrays), q)
    resampled = _resampled_statistic(arrays, q, _block_weights(len(arrays), resamples, seed))
    se_log = float(np.std(np.log(resampled), ddof=1))
    low, high = _log_interval(estimate, se_log, level, len(arrays))
    return QuantileInterval(estimate=estimate, low=low, high=high, level=level, blocks=len(arrays), se_log=se_log)


def unpaired_interval(reference_blocks, candidate_blocks, q: float | None, level: float, seed: int) -> RatioInterval:
    """statistic(candidate) / statistic(reference) of two runs that were not paired: each
    side's blocks bootstrapped on their own, se of log(ratio) = sqrt(se_ref² + se_cand²),
    ``log(ratio) ± t(level, min(blocks) - 1) · se``."""
    from scipy.stats import t as student_t

    reference = quantile_interval(reference_blocks, q, 0.5, seed=seed)
    candidate = quantile_interval(candidate_blocks, q, 0.5, seed=seed + 1)
    estimate = candidate.estimate / reference.estimate
    blocks = min(reference.blocks, candidate.blocks)
    se_log = math.hypot(reference.se_log, candidate.se_log)
    half = float(student_t.ppf(0.5 + level / 2.0, df=blocks - 1)) * se_log
    return RatioInterval(estimate, estimate * math.exp(-half), estimate * math.exp(half), level, blocks, se_log)


@dataclass(frozen=True)
class SlopeComparison:
    """Least-squares cost slopes of latency against input size, and their ratio."""

    reference_slope: float
    candidate_slope: float
    reference_intercept: float
    candidate_intercept: float
    interval: RatioInterval | None  # None when the reference's slope is not clearly positive
    note: str


def slope_interval(
    reference_blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    candidate_blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    level: float,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> SlopeComparison:
    """Fit latency = a + b * size for each model and compare b_candidate / b_reference.

    Block pair i holds (sizes, latencies) for each model. Latencies are winsorized at
    their 99th percentile, so that a few stalls cannot tilt the line. The ratio's interval
    comes from the same paired block bootstrap as every other ratio (resampled slopes are
    computed from the blocks' sums, so a resample costs one matrix product). Without a
    clearly positive reference slope (its 1st resampled percentile above zero) a ratio
    means nothing: then the interval is None and the note says why.
    """
    if len(reference_blocks) != len(candidate_blocks):
        raise UnusableSamples(f"unpaired blocks ({len(reference_blocks)} reference, {len(candidate_blocks)} candidate)")
    if len(reference_blocks) < 2:
        raise UnusableSamples(f"needs at least 2 block pairs, has {len(reference_blocks)}")
    reference_sums, candidate_sums = regression_sums(reference_blocks), regression_sums(candidate_blocks)
    ref_a, ref_b = fit_lines(reference_sums.sum(axis=0, keepdims=True))[0]
    cand_a, cand_b = fit_lines(candidate_sums.sum(axis=0, keepdims=True))[0]
    pairs = len(reference_blocks)
    weights = _block_weights(pairs, resamples, seed)
    reference_slopes = fit_lines(weights @ reference_sums)[:, 1]
    candidate_slopes = fit_lines(weights @ candidate_sums)[:, 1]
    if not (np.isfinite(ref_b) and np.all(np.isfinite(reference_slopes))) or np.quantile(reference_slopes, 0.01) <= 0.0:
        note = "the reference's latency does not clearly grow with size, so a ratio of slopes means nothing"
        return SlopeComparison(float(ref_b), float(cand_b), float(ref_a), float(cand_a), None, note)
    # a slope that does not grow is a tiny positive one: the candidate's, and the few resampled reference
    floor = 1e-9 * abs(ref_b)  # slopes at or below 0 the 1 % check lets through (their log was NaN, and the interval)
    log_ratios = np.log(np.maximum(candidate_slopes, floor)) - np.log(np.maximum(reference_slopes, floor))
    se_log = float(np.std(log_ratios, ddof=1))
    estimate = max(float(cand_b), floor) / float(ref_b)
    interval = RatioInterval(estimate, *_log_interval(estimate, se_log, level, pairs), level, pairs, se_log)
    return SlopeComparison(float(ref_b), float(cand_b), float(ref_a), float(cand_a), interval, "")


def regression_sums(blocks: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per block: n, sum x, sum y, sum x^2, sum x*y (y winsorized at its overall 99th percentile)."""
    all_y = np.concatenate([np.asarray(y, dtype=np.float64) for _, y in blocks])
    if all_y.size == 0 or not np.all(np.isfinite(all_y)):
        raise UnusableSamples("latencies are empty or not finite")
    cap = np.quantile(all_y, 0.99)
    rows = []
    for x, y in blocks:
        x = np.asarray(x, dtype=np.float64)
        y = np.minimum(np.asarray(y, dtype=np.float64), cap)
        rows.append((x.size, x.sum(), y.sum(), (x * x).sum(), (x * y).sum()))
    return np.array(rows, dtype=np.float64)


def fit_lines(totals: np.ndarray) -> np.ndarray:
    """(intercept, slope) for each row of summed (n, sx, sy, sxx, sxy)."""
    n, sx, sy, sxx, sxy = totals.T
    denominator = n * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(denominator > 0, (n * sxy - sx * sy) / denominator, np.nan)
        intercept = (sy - slope * sx) / n
    return np.stack([intercept, slope], axis=1)


def min_two_sided_p(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann–Whitney test can give: 2 / C(n+m, n)."""
    log_comb = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, 2.0 * math.exp(-log_comb))


def mann_whitney(reference: np.ndarray, candidate: np.ndarray, alpha: float = 0.05) -> MannWhitney:
    """Mann–Whitney U, two-sided; no p-value where the sample counts cannot reach ``alpha``.

    Asv's rule: with 3 samples a side the smallest possible p is 0.1, so "not significant"
    would say nothing. Samples within a block are correlated, which makes this p-value
    optimistic: perfgate reports it as evidence and never decides on it.
    """
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    n, m = reference.size, candidate.size
    if n < 2 or m < 2:
        return MannWhitney(None, None, f"needs at least 2 samples per model (has {n} and {m})")
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(candidate))):
        return MannWhitney(None, None, "samples contain NaN or infinity")
    p_min = min_two_sided_p(n, m)
    if p_min > alpha:
        return MannWhitney(
            None, p_min, f"unreachable: with {n} and {m} samples the smallest p is {p_min:.3g} > {alpha:g}"
        )
    from scipy.stats import mannwhitneyu

    # scipy's "auto" takes the normal approximation above 8 samples a side; the exact
    # distribution is cheap far beyond that, and right where it matters most
    ties = np.unique(np.concatenate([reference, candidate])).size < n + m
    method = "exact" if n * m <= _EXACT_MANN_WHITNEY_MAX and not ties else "asymptotic"
    result = mannwhitneyu(candidate, reference, alternative="two-sided", method=method)
    if not math.isfinite(result.pvalue):
        return MannWhitney(None, p_min, "undefined: every sample has the same value")
    return MannWhitney(float(result.pvalue), p_min, "")


def drift_between_blocks(blocks: Sequence[np.ndarray]) -> float | None:
    """How much latency moves from block to block beyond its call-to-call spread.

    The standard deviation of the blocks' log-medians, less what sampling alone gives a
    median of k calls (var ≈ π/2 · within-block variance / k): an estimate of the
    machine's own drift, in relative terms (0.1 = about 10 %). None with fewer than two
    calls per block or fewer than three blocks, where the two cannot be told apart.
    pyperf flags a benchmark as unstable at 10 %; interleaving and the paired bootstrap
    absorb drift, but it slows decisions down.
    """
    logs = [np.log(np.asarray(block, dtype=np.float64)) for block in blocks if len(block) >= 2]
    if len(logs) < 3 or len(logs) != len(blocks):
        return None
    medians = np.array([np.median(values) for values in logs])
    within = float(np.mean([np.var(values, ddof=1) for values in logs]))
    calls = float(np.mean([values.size for values in logs]))
    excess = float(np.var(medians, ddof=1)) - (math.pi / 2.0) * within / calls
    return math.sqrt(max(excess, 0.0))


def _block_weights(blocks: int, resamples: int, seed: int) -> np.ndarray:
    """How often each block is drawn, per resample (resamples × blocks)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=resamples).astype(np.float64)


def _log_interval(estimate: float, se_log: float, level: float, blocks: int) -> tuple[float, float]:
    """``log(estimate) ± t(level, blocks - 1) · se_log``, back on the estimate's scale."""
    half_width = _t_quantile(level, blocks - 1) * se_log
    center = math.log(estimate)
    return math.exp(center - half_width), math.exp(center + half_width)


def _t_quantile(level: float, df: int) -> float:
    """Student's t quantile of a two-sided ``level`` interval with ``df`` degrees of freedom."""
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2.0, df=df))


def _validated_blocks(blocks: Sequence[np.ndarray], side: str) -> list[np.ndarray]:
    arrays = [np.asarray(block, dtype=np.float64).ravel() for block in blocks]
    if not arrays or any(array.size == 0 for array in arrays):
        raise UnusableSamples(f"{side} has an empty block")
    for array in arrays:
        if not np.all(np.isfinite(array)):
            raise UnusableSamples(f"{side} samples contain NaN or infinity")
        if np.any(array <= 0.0):
            raise UnusableSamples(f"{side} samples contain zero or negative durations")
    return arrays


def _resampled_statistic(blocks: list[np.ndarray], q: float | None, weights: np.ndarray) -> np.ndarray:
    """The statistic of the pooled samples for each row of block weights (resamples × blocks)."""
    if q is None:
        sums = np.array([block.sum() for block in blocks])
        counts = np.array([block.size for block in blocks], dtype=np.float64)
        return (weights @ sums) / (weights @ counts)
    return _resampled_quantile(blocks, q, weights)


def _resampled_quantile(blocks: list[np.ndarray], q: float, weights: np.ndarray) -> np.ndarray:
    # A pooled quantile of any weighting of the blocks lies between the smallest and the
    # largest of the blocks' own quantiles, so only that range needs fine bins; everything
    # outside it is counted in one bin below and one above.
    per_block = np.array([np.quantile(block, q, method="inverted_cdf") for block in blocks])
    low, high = float(per_block.min()), float(per_block.max())
    if low == high:
        return np.full(weights.shape[0], low)
    bins = min(_MAX_BINS, max(1, math.ceil(math.log(high / low) / math.log(_BIN_GROWTH))))
    edges = np.geomspace(low, high, bins + 1)
    # bin 0: below low; bin i in 1..bins: [edges[i-1], edges[i]); bin bins+1: at or above high
    width = bins + 2
    flat = np.concatenate(
        [index * width + np.searchsorted(edges, block, side="right") for index, block in enumerate(blocks)]
    )
    counts = np.bincount(flat, minlength=len(blocks) * width).reshape(len(blocks), width)
    pooled = weights @ counts
    cumulative = np.cumsum(pooled, axis=1)
    target = q * cumulative[:, -1:]
    first = np.argmax(cumulative >= target * (1.0 - 1e-12), axis=1)
    centers = np.concatenate(([low], np.sqrt(edges[:-1] * edges[1:]), [high]))
    return centers[first]
