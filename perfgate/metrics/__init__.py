"""Metric families, registered by name.

    base.py        Budget, Observations, the Family interface, the verdict rule
    latency.py     latency.pNN, latency.mean           per batch size
    throughput.py  throughput, throughput.batchN       per batch size
    load.py        load.pNN, load.mean                 per load scenario
    slope.py       latency_slope                       per batch size, with a size column
    memory.py      memory.peak_rss, .load_rss, .gpu_peak   per model
    cold_start.py  cold_start                          per model
    outputs.py     outputs.cosine, .max_abs_diff, …    per model output, thresholds on the value;
                   outputs.token_agreement             a generative model's greedy answers
    ttft.py        ttft.pNN, ttft.mean                 generate mode: time to first token, per request
    itl.py         itl.pNN, itl.mean                   generate mode: inter-token latency
    e2e.py         e2e.pNN, e2e.mean                   generate mode: a whole request
    tokens_per_s.py  tokens_per_s                      generate mode: decode throughput
    prefill_slope.py prefill_slope                     generate mode: TTFT against prompt length
    requests.py    what the generate-mode families share

A family of your own is a ``Family`` subclass registered with ``register_family``; from
then on its metrics parse, take budgets, are judged and rendered like the built-in ones.
The built-in families are imported when first needed.
"""

from __future__ import annotations

import importlib

from perfgate.errors import BudgetError
from perfgate.metrics.base import Budget, Family, Observations, Scope, Slot
from perfgate.results import Check, Metric

__all__ = ["Budget", "Family", "Metric", "Observations", "Scope", "Slot", "families", "family_of",
           "metric_forms", "parse_metric", "register_family", "unregister_family"]  # fmt: skip

BUILTIN_FAMILIES = {
    "latency": "perfgate.metrics.latency",
    "throughput": "perfgate.metrics.throughput",
    "load": "perfgate.metrics.load",
    "latency_slope": "perfgate.metrics.slope",
    "memory": "perfgate.metrics.memory",
    "cold_start": "perfgate.metrics.cold_start",
    "outputs": "perfgate.metrics.outputs",
    "ttft": "perfgate.metrics.ttft",
    "itl": "perfgate.metrics.itl",
    "e2e": "perfgate.metrics.e2e",
    "tokens_per_s": "perfgate.metrics.tokens_per_s",
    "prefill_slope": "perfgate.metrics.prefill_slope",
}
_registered: dict[str, Family] = {}
_UNREGISTERED = Family()


def register_family(family: Family) -> Family:
    """Add ``family`` (or replace the one of its name); returns it."""
    if not getattr(family, "name", "") or not getattr(family, "forms", ""):
        raise TypeError(f"{type(family).__name__} needs a name and forms to be registered")
    _registered[family.name] = family
    return family


def unregister_family(name: str) -> None:
    _registered.pop(name, None)


def families() -> list[Family]:
    """Every family, built-in ones first imported, in report order."""
    for name, module in BUILTIN_FAMILIES.items():
        if name not in _registered:
            _registered[name] = importlib.import_module(module).FAMILY
    return sorted(_registered.values(), key=lambda family: family.order)


def family_of(metric: Metric | Check) -> Family:
    """The family that judges ``metric`` (or a check's metric)."""
    target = metric.metric if isinstance(metric, Check) else metric
    if not isinstance(target, Metric):  # a name, as in a Check built by hand
        try:
            target = parse_metric(target)
        except BudgetError:
            return _UNREGISTERED
    name = target.family
    for family in families():
        if family.name == name:
            return family
    return _UNREGISTERED  # a saved report's metric of a family not registered here: shown, not judged


def metric_forms() -> str:
    return ", ".join(family.forms for family in families())


def parse_metric(text: str) -> Metric:
    name = text.strip()
    for family in families():
        metric = family.parse(name)
        if metric is not None:
            return metric
    raise BudgetError(f"unknown metric {text!r}; known metrics: {metric_forms()}")
