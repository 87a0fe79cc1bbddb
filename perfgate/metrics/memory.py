"""memory.peak_rss, memory.load_rss, memory.gpu_peak: per model, nearly deterministic, so
decided without a test: a change fails its budget only when it is beyond both the budget
and an absolute floor (``memory_floor``, a few MiB: allocator noise never fails a build).
Budgets are relative (``+10%``) or absolute (``+64MiB``).

A side may hold several readings of a metric, one per worker instance of its model
(``peak_rss_instances``, from ``with_instances``). Each side is then judged by its lowest
reading: what an allocator keeps after freeing (memory the model no longer uses) only
ever adds to RSS, so a reading that came out high on one instance says nothing about the
model, while a real increase raises every instance, the lowest too."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from perfgate.errors import option
from perfgate.formatting import format_bytes, format_change
from perfgate.metrics.base import PER_MODEL, Budget, Family, Observations, Scope, Slot, bind, budget_fields, undecided
from perfgate.results import SIDES, Check, Metric, Verdict

# metric -> the reading's key in a worker's memory report
READINGS = {"memory.peak_rss": "peak_rss", "memory.load_rss": "load_rss", "memory.gpu_peak": "gpu_peak_allocated_bytes"}
PEAK_INCLUDES_LOADING = "the peak includes loading (the kernel did not allow resetting it)"

_BYTES = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)$")
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "KiB": 2**10, "MB": 1e6, "MiB": 2**20, "GB": 1e9, "GiB": 2**30}


def parse_bytes(text: str) -> float | None:
    """``'+50MB'``, ``'64MiB'`` -> bytes; None when ``text`` is not a size."""
    match = _BYTES.match(text.strip())
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]


class Memory(Family):
    name = "memory"
    forms = "memory.peak_rss, memory.load_rss, memory.gpu_peak"
    order = 4
    statistical = False

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name) if name in READINGS else None

    def parse_budget(self, metric: Metric, limit: str, option_text: str) -> Budget:
        absolute = parse_bytes(limit)
        if absolute is not None:
            return Budget(metric, None, absolute)
        return super().parse_budget(metric, limit, option_text)

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        if scope.served:
            return "a served model's memory is its server's, which an endpoint does not report; perfgate sees only its own client"
        if metric.name == "memory.gpu_peak" and not scope.on_gpu:
            return f"GPU memory needs {option('device', 'cuda')}"
        return None

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        if not observations.memory:
            return []
        slots = []
        for name in READINGS:
            measured = any(_value(observations.memory.get(side, {}), name) is not None for side in SIDES)
            if measured or name in budgets:
                metric = self.parse(name)
                judge = bind(_check, observations.memory, metric, observations.memory_floor)
                slots.append(Slot(metric, budgets.get(name), judge, PER_MODEL))
        return slots


def peak_includes_loading(memory: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(readings.get("peak_includes_load") for readings in memory.values())


def with_instances(instances: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One side's memory from the readings of each of its worker instances (the first one
    the measuring worker): each reading's lowest value under its own key, which the report
    shows and the check decides on, and every instance's value under ``KEY_instances``."""
    combined = dict(instances[0])
    for key in READINGS.values():
        values = [reading.get(key) for reading in instances]
        known = [value for value in values if value is not None]
        if known:
            combined[key] = min(known)
            combined[f"{key}_instances"] = values
    combined["peak_includes_load"] = any(reading.get("peak_includes_load") for reading in instances)
    return combined


def _readings(readings: Mapping[str, Any], name: str) -> list[float]:
    key = READINGS[name]
    values = readings.get(f"{key}_instances")
    if values is None:
        values = [readings.get(key)]
    return [float(value) for value in values if value is not None]


def _value(readings: Mapping[str, Any], name: str) -> float | None:
    values = _readings(readings, name)
    return min(values) if values else None


def _spread(memory: Mapping[str, Mapping[str, Any]], name: str, floor: float) -> str:
    """Where a side's readings differ by more than the floor: say so, and that its lowest decided."""
    notes = []
    for side in SIDES:
        values = _readings(memory.get(side, {}), name)
        if len(values) > 1 and max(values) - min(values) > floor:
            notes.append(f"{side} {format_bytes(min(values))}..{format_bytes(max(values))}")
    if not notes:
        return ""
    return f"; readings over instances vary ({', '.join(notes)}): each side's lowest decides"


def _check(memory: Mapping[str, Mapping[str, Any]], metric: Metric, floor: float, *, budget, level, seed) -> Check:
    reference = _value(memory.get("reference", {}), metric.name)
    candidate = _value(memory.get("candidate", {}), metric.name)
    counts = {side: max(1, len(_readings(memory.get(side, {}), metric.name))) for side in SIDES}
    common = dict(metric=metric, batch_size=None, unit="bytes", n_reference=counts["reference"],
                  n_candidate=counts["candidate"], blocks=0, **budget_fields(budget))  # fmt: skip
    caveat = f"; {PEAK_INCLUDES_LOADING}" if metric.name == "memory.peak_rss" and peak_includes_loading(memory) else ""
    caveat += _spread(memory, metric.name, floor)
    if reference is None or candidate is None:
        return undecided(common, budget, f"{metric.name} is not measured here{caveat}")
    change = candidate - reference
    ratio = candidate / reference if reference else None
    described = f"{'+' if change >= 0 else '-'}{format_bytes(abs(change))}" + (f" ({format_change(ratio, 1)})" if ratio else "")
    values = dict(reference=float(reference), candidate=float(candidate), ratio=ratio, ci=None, ci_level=None)
    if budget is None:
        return Check(verdict=Verdict.INFO, reason=f"{described}{caveat}", **values, **common)
    if budget.absolute_bytes is not None:
        allowed = max(budget.absolute_bytes, floor)
    else:
        relative = (budget.limit - 1.0) * reference
        allowed = max(relative, floor) if budget.limit >= 1.0 else relative + floor
    within = f"the {budget.limit_text} budget (floor {format_bytes(floor)})"
    if change > allowed:
        return Check(verdict=Verdict.FAIL, reason=f"{described}, over {within}{caveat}", **values, **common)
    return Check(verdict=Verdict.PASS, reason=f"{described}, within {within}{caveat}", **values, **common)


FAMILY = Memory()
