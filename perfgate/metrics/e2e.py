"""e2e.pNN and e2e.mean: a generative model's whole request, from handing it the prompt
to the call's return with every new token; reported at p50 and p95 in generate mode,
gated where a budget names it (e2e.p95:+10%)."""

from __future__ import annotations

from perfgate.metrics.requests import RequestQuantiles


class EndToEnd(RequestQuantiles):
    name = "e2e"
    forms = "e2e.p50, e2e.p95, e2e.pNN, e2e.mean"
    order = 12
    values = staticmethod(lambda request: (request.e2e_ns,))
    reported = ("e2e.p50", "e2e.p95")


FAMILY = EndToEnd()
