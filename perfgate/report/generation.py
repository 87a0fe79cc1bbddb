"""What every format says of a generate-mode report's requests, alike: per model the
requests measured, the new tokens each produced and who counted them, the prompts'
lengths, the median time to first token and between tokens, tokens per second; how far
the two models' greedy answers agree; and, where a side is a served model, that its times
are the client's. The checks say whether these moved; this says what they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfgate.formatting import format_duration, format_value
from perfgate.measurements import GenerationSeries, GenerationsCompared
from perfgate.metrics.tokens_per_s import seconds_per_token
from perfgate.results import SIDES, ModelReport, Report
from perfgate.stats import statistic

ENDPOINT_NOTE = "endpoints are timed from this client: network and server load included, on whatever hardware serves them"
# GenerationSeries.counted_by's words: a served model's tokens are its own count, or its chunks
COUNTED_BY = {"model": "the model", "usage": "the server's usage", "chunks": "streamed chunks"}


@dataclass(frozen=True)
class SideFacts:
    """One model's requests in one generate-mode series, as the reports show them."""

    side: str
    requests: int
    new_tokens: str  # per request: "8", or "5 to 8" where they differ
    counted_by: str  # "the model", "the server's usage", "streamed chunks"
    prompt_tokens: str  # the prompts' lengths in tokens: "7 to 25", or "-" where not known
    ttft_p50: float | None  # ns
    itl_p50: float | None  # ns; None where every request made one token
    tokens_per_s: float | None  # decode tokens per second, as the tokens_per_s check has it

    @property
    def cells(self) -> list[str]:
        """The values in the order of ``HEADERS``' columns after the side's name."""
        rate = format_value(self.tokens_per_s, "tokens/s") if self.tokens_per_s is not None else "-"
        return [str(self.requests), self.new_tokens, self.counted_by, self.prompt_tokens,
                _duration(self.ttft_p50), _duration(self.itl_p50), rate]  # fmt: skip

    @property
    def sentence(self) -> str:
        """'8 requests, 8 new tokens each (counted by the model), prompts of 7 to 25 tokens,
        TTFT p50 3.01 ms, ITL p50 1.23 ms, 361 tokens/s'."""
        requests, tokens, counted, prompts, ttft, itl, rate = self.cells
        prompt = f", prompts of {prompts} tokens" if prompts != "-" else ""
        return (f"{requests} requests, {tokens} new tokens each (counted by {counted}){prompt}, "
                f"TTFT p50 {ttft}, ITL p50 {itl}, {rate}")  # fmt: skip


HEADERS = ("requests", "new tokens", "counted by", "prompt tokens", "TTFT p50", "ITL p50", "tokens/s")


def side_facts(series: GenerationSeries, side: str) -> SideFacts:
    requests = series.requests(side)
    ttft = np.asarray([request.ttft_ns for request in requests], dtype=np.int64)
    gaps = np.asarray([gap for request in requests for gap in request.gaps_ns], dtype=np.int64)
    per_token = seconds_per_token(series, side) if series.pairs else np.empty(0)
    rate = 1e9 / float(per_token.mean()) if per_token.size and not np.isnan(per_token).any() and per_token.mean() > 0 else None
    counted = ", ".join(COUNTED_BY.get(way, way) for way in series.counted_by(side).split(", "))
    known = [request.prompt_tokens for request in requests if request.prompt_tokens > 0]
    return SideFacts(
        side=side,
        requests=len(requests),
        new_tokens=_span([request.tokens for request in requests]),
        counted_by=counted,
        prompt_tokens=_span(known),
        ttft_p50=statistic(ttft, 0.5) if ttft.size else None,
        itl_p50=statistic(gaps, 0.5) if gaps.size else None,
        tokens_per_s=rate,
    )


def facts(report: Report) -> list[tuple[GenerationSeries, list[SideFacts]]]:
    """Each generate-mode series (one per comparison) with both models' facts."""
    return [(series, [side_facts(series, side) for side in SIDES]) for series in report.generations]


def heading(series: GenerationSeries) -> str:
    """'8 request pairs, 8 new tokens asked of each request, from 28 prompts'; a served
    model's load scenario: 'concurrency 4: 6 episode pairs of 16 requests, ...'."""
    if series.scenario is not None:
        requests = len(series.reference[0]) if series.reference else 0
        episodes = f"{series.pairs} episode pair{'s' if series.pairs != 1 else ''} of {requests} requests"
        return f"{series.label}: {episodes}, {series.max_new_tokens} new tokens asked of each request, from {series.prompt_count} prompts"
    pairs = f"{series.pairs} request pair{'s' if series.pairs != 1 else ''}"
    return f"{pairs}, {series.max_new_tokens} new tokens asked of each request, from {series.prompt_count} prompts"


def answers_text(answers: GenerationsCompared) -> str:
    """'greedy answers: 25% of 28 prompts alike token for token (8 new tokens each); the
    others share their first 2.4 tokens on average' (positions count from 0: a first
    difference at 0 shares none)."""
    unit = answers.unit[:-1] if answers.unit.endswith("s") else answers.unit
    count = len(answers.exact)
    text = (f"greedy answers: {answers.agreement * 100:.4g}% of {count} prompt{'s' if count != 1 else ''} alike "
            f"{unit} for {unit} ({answers.max_new_tokens} new tokens each)")  # fmt: skip
    differing = answers.mean_first_difference
    if differing is not None:
        text += f"; the others share their first {differing:.3g} {answers.unit} on average"
    return text


def is_endpoint(model: ModelReport | None) -> bool:
    """A served model, timed over the network (the openai backend, an http(s):// path)."""
    if model is None:
        return False
    return model.backend.backend == "openai" or model.path.lower().startswith(("http://", "https://"))


def endpoint_note(report: Report) -> str:
    """The note a report with a served model on either side carries; '' where none."""
    return ENDPOINT_NOTE if any(is_endpoint(getattr(report, side)) for side in SIDES) else ""


def run_text(report: Report) -> str:
    """What was measured, for a run line: '8 request pairs of 8 new tokens'."""
    return ", ".join(
        f"{s.pairs} request pair{'s' if s.pairs != 1 else ''} of {s.max_new_tokens} new tokens" if s.scenario is None
        else f"{s.pairs} episode pair{'s' if s.pairs != 1 else ''} at {s.label}"
        for s in report.generations
    )


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low} to {high}"


def _duration(ns: float | None) -> str:
    return "-" if ns is None else format_duration(ns)
