"""The HTML report's figures, from a Report's samples: the two models' latency
distributions overlaid (CDF and histogram) per batch size, or in generate mode their times
to first token and between tokens, latency across blocks (drift
made visible), throughput and memory side by side, cold starts and the stages of a batch,
latency against input size, and latency under load. Each figure is (title, caption, SVG).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from perfgate.formatting import format_duration, format_rate
from perfgate.report.summary import cold_start_samples
from perfgate.report.svg import Axis, Line, bar_chart, line_chart, stacked_bars
from perfgate.measurements import concatenated
from perfgate.results import SIDES, Report

CSS = {"reference": "ref", "candidate": "cand"}
CDF_POINTS = 160
HISTOGRAM_BINS = 36


class Figure(NamedTuple):
    title: str
    caption: str
    svg: str
    legend: tuple[tuple[str, str], ...] = tuple((side, css) for side, css in CSS.items())  # (label, CSS class)


def _segments(names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, f"seg{index}") for index, name in enumerate(names))


def _bytes_axis(top: float) -> tuple[float, str]:
    """The binary unit bars of up to ``top`` bytes are drawn in, so that ticks fall on round MiB."""
    return next(((2.0**power, unit) for power, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")) if top >= 2.0**power), (1.0, "B"))


def _duration(ns: float) -> str:
    return "0" if ns == 0 else format_duration(ns)


def _share(value: float) -> str:
    return f"{value:.0%}"


def _domain(samples: Sequence[np.ndarray]) -> tuple[float, float, str]:
    """From the fastest model's 0.5th percentile to the slowest one's 98th: a machine's
    rare stalls (milliseconds against microseconds) do not squash both distributions into
    a corner, and the curves end on the frame's right edge for the slowest 2 %. Where the
    slowest call is within half as much again of that, it was no stall: the frame reaches
    it and every curve ends inside (32 calls at batch 32 left the candidate's cut at 94 %)."""
    low = min(float(np.quantile(values, 0.005)) for values in samples)
    high = max(float(np.quantile(values, 0.98)) for values in samples)
    slowest = max(float(np.max(values)) for values in samples)
    cut = ", up to the slower model's 98th percentile"
    if slowest <= 1.5 * high:
        high, cut = slowest, ""
    return (low, high, cut) if high > low else (low * 0.9, low * 1.1 + 1, cut)


def _latency_axis(label: str, low: float, high: float) -> Axis:
    """A log axis where the latencies span more than a decade: both models' bodies stay visible."""
    spans = low > 0 and high / low > 10
    return Axis(label + (" (log scale)" if spans else ""), _duration, low, high, log=spans)


def cdf(title: str, samples: dict[str, np.ndarray], *, quantity: str = "latency", per: str = "calls") -> str:
    low, high, cut = _domain(list(samples.values()))
    levels = np.linspace(0.0, 1.0, CDF_POINTS + 1)
    lines = []
    for side, values in samples.items():
        quantiles = np.quantile(values, levels)
        lines.append(Line(side, CSS[side], list(zip(quantiles.tolist(), levels.tolist()))))
    return line_chart(title, lines, _latency_axis(quantity + cut, low, high), Axis(f"share of {per} at or below", _share, 0.0, 1.0))


def histogram(title: str, samples: dict[str, np.ndarray], *, quantity: str = "latency", per: str = "calls") -> str:
    low, high, cut = _domain(list(samples.values()))
    axis = _latency_axis(quantity + cut, low, high)
    edges = np.geomspace(low, high, HISTOGRAM_BINS + 1) if axis.log else np.linspace(low, high, HISTOGRAM_BINS + 1)
    lines, tallest = [], 0.0
    for side, values in samples.items():
        counts, _ = np.histogram(values, bins=edges)
        shares = counts / max(len(values), 1)
        tallest = max(tallest, float(shares.max(initial=0.0)))
        points = [(float(edges[0]), 0.0)]
        for index, share in enumerate(shares.tolist()):
            points.extend([(float(edges[index]), share), (float(edges[index + 1]), share)])
        points.append((float(edges[-1]), 0.0))
        lines.append(Line(side, CSS[side], points, fill=True))
    return line_chart(title, lines, axis,
                      Axis(f"share of {per}", _share, 0.0, min(tallest * 1.05, 1.0) or 1.0, from_zero=True))  # fmt: skip


def across_blocks(
    title: str, blocks: dict[str, Sequence[np.ndarray]], *, quantity: str = "latency", pairs: str = "block pair"
) -> str:
    lines, top = [], 0.0
    for side, side_blocks in blocks.items():
        stats = [np.quantile(block, [0.25, 0.5, 0.75]) for block in side_blocks if len(block)]
        band = [(index + 1.0, float(q[0]), float(q[2])) for index, q in enumerate(stats)]
        points = [(index + 1.0, float(q[1])) for index, q in enumerate(stats)]
        top = max([top] + [high for _, _, high in band])
        lines.append(Line(side, CSS[side], points, band=band, markers=len(points) <= 40))
    count = max((len(b) for b in blocks.values()), default=1)
    return line_chart(title, lines, Axis(pairs, lambda v: f"{v:g}", 1.0, max(count, 2.0)),
                      Axis(f"{quantity} per block: median, 25th to 75th percentile", _duration, 0.0, top * 1.05 or 1.0,
                           from_zero=True))  # fmt: skip


def latency_figures(report: Report) -> list[Figure]:
    """Per batch size: the CDF and the histogram of both models' latencies."""
    figures = []
    for series in _measured_series(report):
        samples = {side: series.samples(side) for side in SIDES}
        at = f"batch {series.batch_size}"
        medians = ", ".join(f"{side} {format_duration(float(np.median(values)))}" for side, values in samples.items())
        figures.append(Figure(f"Latency distribution, {at}",
                              f"The share of calls that finished within each latency: a curve to the right is slower (p50: {medians}).",
                              cdf(f"Latency CDF at {at}", samples)))  # fmt: skip
        figures.append(Figure(f"Latency histogram, {at}", "The shape of each model's latencies: a second hump is a slow path.",
                              histogram(f"Latency histogram at {at}", samples)))  # fmt: skip
    return figures


def drift_figures(report: Report) -> list[Figure]:
    """Per batch size: each block's median and quartiles, block pair by block pair."""
    return [
        Figure(f"Latency across blocks, batch {series.batch_size}",
               f"Each of the {series.pairs} block pairs ran both models back to back: lines that move together are the "
               "machine drifting, which the paired comparison cancels; a gap is the models.",
               across_blocks(f"Latency across blocks at batch {series.batch_size}", {side: series.blocks(side) for side in SIDES}))
        for series in _measured_series(report)
    ]  # fmt: skip


def _measured_series(report: Report) -> list:
    return [series for series in report.series if min(len(series.samples(side)) for side in SIDES) >= 2]


def throughput_and_memory(report: Report) -> list[Figure]:
    figures = []
    throughput = [check for check in report.checks if check.unit == "samples/s" and check.batch_size is not None]
    if throughput:
        top = max(max(c.reference or 0, c.candidate or 0) for c in throughput)
        svg = bar_chart("Throughput", [f"batch {c.batch_size}" for c in throughput],
                        [(side, CSS[side], [getattr(c, side) for c in throughput]) for side in SIDES],
                        Axis("samples per second", format_rate, 0.0, top * 1.12 or 1.0))  # fmt: skip
        figures.append(Figure("Throughput", "Samples per second, calls run back to back: higher is better.", svg))
    models = {side: getattr(report, side) for side in SIDES}
    if all(model is not None and model.memory for model in models.values()):
        names = [("peak_rss", "peak RSS"), ("load_rss", "model load"), ("framework_rss", "framework"),
                 ("gpu_peak_allocated_bytes", "GPU peak")]  # fmt: skip
        shown = [(key, label) for key, label in names if any(models[s].memory.get(key) is not None for s in SIDES)]
        top = max(float(models[s].memory.get(key) or 0) for s in SIDES for key, _ in shown)
        scale, unit = _bytes_axis(top)
        svg = bar_chart("Memory", [label for _, label in shown],
                        [(side, CSS[side], [_scaled(models[side].memory.get(key), scale) for key, _ in shown]) for side in SIDES],
                        Axis(unit, lambda v: f"{v:.3g} {unit}", 0.0, top / scale * 1.12 or 1.0))  # fmt: skip
        figures.append(Figure("Memory", "Resident memory of each model's worker process: lower is better.", svg))
    return figures


def _scaled(value: object, scale: float) -> float | None:
    return None if value is None else float(value) / scale


def starts_and_stages(report: Report) -> list[Figure]:
    figures = []
    if report.cold_starts and all(report.cold_starts.get(side) for side in SIDES):
        rows = []
        for side in SIDES:
            records = report.cold_starts[side]
            parts = [np.mean([max(r.process_seconds, 0.0) for r in records]), np.mean([r.setup_seconds for r in records]),
                     np.mean([r.load_seconds for r in records]),
                     np.mean([r.prepare_seconds + r.first_call_seconds for r in records])]  # fmt: skip
            rows.append((side, [float(p) * 1e9 for p in parts]))
        parts_named = ["process", "framework", "load", "first call"]
        figures.append(Figure("Cold start", f"From starting a process to its first inference's end ({cold_start_samples(report)}).",
                              stacked_bars("Cold start", rows, parts_named, _duration), _segments(parts_named)))  # fmt: skip
    if report.stages:
        rows, stage_names = [], ["read", "tensors", "prepare", "model"]
        for stage in report.stages:
            for side in SIDES:
                parts = [stage.read, stage.tensors[side], stage.backend[side], stage.model[side]]
                rows.append((f"batch {stage.batch_size} {side}", [p * 1e9 for p in parts]))
        figures.append(Figure("Where a batch's time goes", "Per batch: reading the rows, making the tensors, the backend's "
                              "preparation and the model's call (p50).",
                              stacked_bars("Stages of a batch", rows, stage_names, _duration), _segments(stage_names)))  # fmt: skip
    return figures


def size_figures(report: Report) -> list[Figure]:
    figures = []
    for analysis in report.sizes:
        buckets = [b for b in analysis.buckets if all(b.p50.get(side) is not None for side in SIDES)]
        if not buckets:
            continue
        low, high = buckets[0].low, buckets[-1].high
        lines, top = [], 0.0
        for side in SIDES:
            points = [((b.low + b.high) / 2, float(b.p50[side])) for b in buckets]
            fitted = [(x, analysis.intercept[side] + analysis.slope[side] * x) for x in (low, high)]
            top = max([top] + [y for _, y in points + fitted] + [float(b.p95[side] or 0) for b in buckets])
            lines.append(Line(f"{side} p50", CSS[side], points, markers=True))
            lines.append(Line(f"{side} fitted", CSS[side], fitted, dashed=True))
        column = analysis.column
        svg = line_chart(f"Latency against {column} at batch {analysis.batch_size}", lines,
                         Axis(f"{column} per batch", lambda v: f"{v:g}", low, high),
                         Axis("latency p50 per size bucket", _duration, 0.0, top * 1.05 or 1.0, from_zero=True))  # fmt: skip
        caption = (f"Per fifth of the calls by {column}, with the fitted lines (dashed): a steeper candidate costs more "
                   "on large inputs than the average shows.")
        figures.append(Figure(f"Latency against {column}, batch {analysis.batch_size}", caption, svg))
    return figures


def load_figures(report: Report) -> list[Figure]:
    figures = []
    for load in report.loads:
        samples = {side: concatenated(load.latencies(side)) for side in SIDES}
        if min(len(values) for values in samples.values()) < 2:
            continue
        label = load.scenario.label
        caption = "Queueing plus service, per request, with the same arrivals for both models."
        figures.append(Figure(f"Under load: {label}", caption, cdf(f"Latency under load, {label}", samples)))
    return figures


# a generative model's per-request values: (what, the caption's words, the values of one request)
_REQUEST_VALUES = (
    ("time to first token", "TTFT", "requests", lambda request: (request.ttft_ns,)),
    ("inter-token latency", "ITL", "gaps between tokens", lambda request: request.gaps_ns),
)


def generation_figures(report: Report) -> list[Figure]:
    """Generate mode: per series, the CDF and histogram of both models' times to first token
    (one per request) and inter-token gaps (every gap of every request), then each request
    pair's medians and quartiles across the run."""
    figures, drift = [], []
    for series in report.generations:
        for quantity, short, per, pick in _REQUEST_VALUES:
            blocks = {side: [np.asarray([v for r in block for v in pick(r)], dtype=np.int64) for block in series.blocks(side)]
                      for side in SIDES}  # fmt: skip
            samples = {side: concatenated(side_blocks) for side, side_blocks in blocks.items()}
            if min(len(values) for values in samples.values()) < 2:
                continue
            medians = ", ".join(f"{side} {format_duration(float(np.median(values)))}" for side, values in samples.items())
            figures.append(Figure(f"{short} distribution",
                                  f"The share of {per} within each {quantity}: a curve to the right is slower (p50: {medians}).",
                                  cdf(f"{short} CDF", samples, quantity=quantity, per=per)))  # fmt: skip
            figures.append(Figure(f"{short} histogram", f"The shape of each model's {quantity}: a second hump is a slow path.",
                                  histogram(f"{short} histogram", samples, quantity=quantity, per=per)))  # fmt: skip
            drift.append(Figure(f"{short} across request pairs",
                                f"Each of the {series.pairs} pairs asked both models the same prompt back to back: lines "
                                "that move together are the machine drifting (or the prompts' lengths); a gap is the models.",
                                across_blocks(f"{short} across request pairs", blocks, quantity=short, pairs="request pair")))  # fmt: skip
    return figures + drift
