"""Human units for absolute budgets: durations (``"20ms"``, ``"1.5 s"``, ``"300us"``),
sizes (``"300MB"``, ``"256MiB"``) and rates (``"100/s"``, ``"2.5k/s"``).

A bare number is refused rather than guessed at: ``p95=20`` could mean 20 ms or 20 s.
Each value parses into a frozen object that keeps the text as written, so that messages
quote the budget in the user's own words.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from perfgate.errors import UsageError
from perfgate.metrics.memory import parse_bytes

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(rf"^{_NUMBER}\s*(ns|us|µs|μs|ms|s)$")
_DURATION_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}
_RATE = re.compile(rf"^{_NUMBER}\s*([kM]?)\s*(?:samples\s*)?/\s*s$")
_RATE_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6}


@dataclass(frozen=True)
class Duration:
    ns: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Size:
    bytes: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Rate:
    per_second: float  # samples per second
    text: str

    def __str__(self) -> str:
        return self.text


def parse_duration(value: Any, name: str) -> Duration:
    """``'20ms'``, ``'1.5 s'``, ``'300us'``, ``'850ns'`` -> Duration; ``name`` is the argument's."""
    if isinstance(value, Duration):
        return value
    text = _text(value, name, "a duration", "'20ms', '1.5s' or '300us'")
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"{name}={value!r}: cannot read a duration; write one such as '20ms', '1.5s' or '300us'")
    return Duration(_positive(float(match.group(1)) * _DURATION_UNITS[match.group(2)], name, value), text)


def parse_size(value: Any, name: str) -> Size:
    """``'300MB'``, ``'256MiB'``, ``'1.5GB'`` -> Size (decimal and binary units)."""
    if isinstance(value, Size):
        return value
    text = _text(value, name, "a size", "'300MB' or '256MiB'")
    found = None if text.startswith("+") else parse_bytes(text)
    if found is None:
        raise UsageError(f"{name}={value!r}: cannot read a size; write one such as '300MB', '256MiB' or '1.5GB'")
    return Size(_positive(found, name, value), text)


def parse_rate(value: Any, name: str) -> Rate:
    """``'100/s'``, ``'2.5k/s'``, ``'100 samples/s'`` -> Rate."""
    if isinstance(value, Rate):
        return value
    text = _text(value, name, "a rate", "'100/s' or '2.5k/s'")
    match = _RATE.match(text)
    if match is None:
        raise UsageError(f"{name}={value!r}: cannot read a rate; write one such as '100/s' or '2.5k/s' (samples per second)")
    return Rate(_positive(float(match.group(1)) * _RATE_PREFIXES[match.group(2)], name, value), text)


def _text(value: Any, name: str, kind: str, example: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise UsageError(f"{name}={value!r}: write {kind} with its unit, such as {example}")
    if not isinstance(value, str):
        raise UsageError(f"{name}={value!r}: expected {kind} as text, such as {example}")
    return value.strip()


def _positive(amount: float, name: str, value: Any) -> float:
    if not (math.isfinite(amount) and amount > 0):
        raise UsageError(f"{name}={value!r}: must be more than zero")
    return amount
