"""ttft.pNN and ttft.mean: a generative model's time to first token, from handing it the
prompt to its first new token (the prefill and the first token's choice), one sample per
request; gated by default at p50 and p95 in generate mode."""

from __future__ import annotations

from perfgate.metrics.base import Scope
from perfgate.metrics.requests import RequestQuantiles


class TimeToFirstToken(RequestQuantiles):
    name = "ttft"
    forms = "ttft.p50, ttft.p95, ttft.pNN, ttft.mean"
    order = 10
    one_sample_per_call = False
    values = staticmethod(lambda request: (request.ttft_ns,))
    reported = ("ttft.p50", "ttft.p95")

    def default_metrics(self, scope: Scope) -> tuple[str, ...]:
        return ("ttft.p50", "ttft.p95") if scope.generate else ()


FAMILY = TimeToFirstToken()
