"""The smallest change an interval detects (its minimum detectable effect), from the
standard error of a log ratio: the statistics that the metric families and
perfgate/judge/resolution.py share (see resolution.py for what it means for a budget).
Low in the house: it imports nothing of perfgate's, so that the families can use it
while resolution.py reads what the families declare."""

from __future__ import annotations

import math

POWER = 0.80


def _z(probability: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(probability))


def _t(level: float, blocks: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2.0, df=blocks - 1))


def detectable_log(se_log: float, level: float, power: float = POWER) -> float:
    """The smallest |log(ratio)| detected with ``power`` by an interval of ``level``."""
    return (_z(0.5 + level / 2.0) + _z(power)) * se_log


def detectable_ratio(se_log: float, level: float, *, higher_is_better: bool = False) -> float | None:
    """The MDE as a ratio in the direction that would hurt: 1.042 (slower), or 0.96 for
    a higher-is-better metric (less throughput); None where the standard error is unusable."""
    if not (math.isfinite(se_log) and se_log >= 0 and 0 < level < 1):
        return None
    change = detectable_log(se_log, level)
    return math.exp(-change if higher_is_better else change)
