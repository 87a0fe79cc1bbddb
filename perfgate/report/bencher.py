"""Bencher Metric Format (BMF) JSON, for ``bencher run --adapter json``.

Each check is one benchmark, named as the reports name it (``latency.p95 at batch 32``),
with two measures: the candidate's value in the check's unit (``latency`` in ns and
``throughput`` per second are Bencher's built-in measures; ``memory`` in bytes,
``cold-start``, ``latency-slope`` and ``tokens-per-second`` are created on first use), and ``ratio``, the
candidate over the reference, with the interval's bounds as ``lower_value`` and
``upper_value``. Information-only metrics are exported too: tracking them over time is
what Bencher is for.
"""

from __future__ import annotations

import json
import re

from perfgate.metrics import family_of
from perfgate.report.summary import measured, safe, where
from perfgate.results import Check, Report

_MEASURES = {"ns": "latency", "samples/s": "throughput", "bytes": "memory"}


def render_bencher(report: Report) -> str:
    benchmarks: dict[str, dict[str, dict[str, float]]] = {}
    for check in measured(report):
        measures = {_measure(check): {"value": float(check.candidate)}}
        if check.ratio is not None:
            ratio = {"value": float(check.ratio)}
            if check.ci is not None:
                ratio.update(lower_value=float(check.ci[0]), upper_value=float(check.ci[1]))
            measures["ratio"] = ratio
        benchmarks[safe(where(check))] = measures
    return json.dumps(benchmarks, indent=1, allow_nan=False) + "\n"


def _measure(check: Check) -> str:
    if family_of(check).tracked_as:
        return family_of(check).tracked_as
    if check.unit in _MEASURES:
        return _MEASURES[check.unit]
    if check.unit.startswith("ns/"):
        return "latency-slope"
    if check.unit.endswith("/s"):  # a rate of something else than samples: tokens/s is tokens-per-second
        return _slug(check.unit[:-2]) + "-per-second"
    return _slug(check.unit) or "value"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
