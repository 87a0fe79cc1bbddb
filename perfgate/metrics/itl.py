"""itl.pNN and itl.mean: a generative model's inter-token latency, the time between two
consecutive new tokens (each decode step), every gap of every request; gated by default
at p50 and p95 in generate mode. A request's gaps stay together in its block (see
perfgate/metrics/requests.py), so the interval is on requests, not on pooled tokens."""

from __future__ import annotations

from perfgate.metrics.base import Scope
from perfgate.metrics.requests import RequestQuantiles


class InterTokenLatency(RequestQuantiles):
    name = "itl"
    forms = "itl.p50, itl.p95, itl.pNN, itl.mean"
    order = 11
    values = staticmethod(lambda request: request.gaps_ns)
    reported = ("itl.p50", "itl.p95")

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        return ("itl.p50", "itl.p95") if scope.generate else ()


FAMILY = InterTokenLatency()
