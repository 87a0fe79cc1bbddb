"""Small SVG charts drawn here, so that the HTML report needs no script and no network.

Lines (CDFs, histograms as steps, per-block medians, fitted lines), grouped bars,
stacked horizontal bars, and the strip that shows one check's interval against its
budget. Legends are the page's (HTML wraps on a phone). Colours come from CSS classes (``ref``, ``cand``, ``seg0``..), so the page's
stylesheet themes every chart, dark mode included. Every text is escaped with ``esc``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from perfgate.report.summary import safe

Format = Callable[[float], str]
WIDTH, HEIGHT = 440, 250
LEFT, RIGHT, TOP, BOTTOM = 62, 26, 24, 38
# the clip reaches this far past the plot area, so that a line on its edge (a CDF at 100 %)
# or a marker at its end (the first block pair) is drawn whole: a marker's radius and more
EDGE = 4
# a value over a bar: `svg .value{font-size:11px}` in the page; a sans-serif digit is 0.55 em
# wide, "M" 0.83 em, so 0.62 em a character errs wide ("63.3 MiB": 50 px drawn, 55 estimated)
VALUE_FONT = 11
CHAR_EM = 0.62
Box = tuple[float, float, float, float]  # left, top, right, bottom
Point = tuple[float, float]


def esc(text: object) -> str:
    return html.escape(safe(text), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values from below ``low`` to above ``high``: 0, 200, 400 … or 0.5, 1, 1.5 …"""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude)
    start = math.floor(low / step + 1e-9) * step
    ticks = [start]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(start + len(ticks) * step)
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2, 5 times the powers of ten between ``low`` and ``high`` (both positive), with
    ``low`` and ``high`` themselves as the frame's ends."""
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1) for m in (1, 2, 5)]
    inside = [tick for tick in ticks if low <= tick <= high]
    powers = [tick for tick in inside if f"{tick:.0e}".startswith("1")]
    if high / low >= 100 and len(powers) >= 2:
        inside = powers  # several decades: 1 us, 10 us, 100 us read at a glance
    elif len(inside) > 7:
        inside = [tick for tick in inside if f"{tick:.0e}".startswith(("1", "5"))]
    return [low] + inside + [high]


@dataclass(frozen=True)
class Axis:
    label: str
    fmt: Format
    low: float
    high: float
    from_zero: bool = False
    log: bool = False  # for values spanning decades (a model 10x slower, a stalled machine's tail)

    def ticks(self) -> list[float]:
        if self.log and 0 < self.low < self.high:
            return log_ticks(self.low, self.high)
        return nice_ticks(0.0 if self.from_zero else self.low, self.high)

    def position(self, value: float) -> float:
        """``value`` where the axis places it: itself, or its logarithm on a log axis."""
        if self.log and 0 < self.low < self.high:
            return math.log10(max(value, self.low * 1e-3))
        return value


@dataclass
class Line:
    label: str
    css: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False
    fill: bool = False  # shade the area under the line
    markers: bool = False
    band: Sequence[tuple[float, float, float]] = field(default_factory=tuple)  # (x, low, high)


class _Frame:
    def __init__(self, x: Axis, y: Axis, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.xticks, self.yticks = x.ticks(), y.ticks()
        self.x0, self.x1 = x.position(self.xticks[0]), x.position(self.xticks[-1])
        self.y0, self.y1 = self.yticks[0], self.yticks[-1]
        self.x_axis, self.y_axis = x, y
        # the frame's ends on a log axis are the data's, not ticks: label only the round ones
        self.labelled = self.xticks[1:-1] if x.log and len(self.xticks) > 3 else self.xticks

    def px(self, x: float) -> float:
        return LEFT + (self.x_axis.position(x) - self.x0) / (self.x1 - self.x0) * (self.width - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return self.height - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (self.height - TOP - BOTTOM)

    def plot_area(self) -> Box:
        return (LEFT, TOP, self.width - RIGHT, self.height - BOTTOM)

    def axes(self, clip: str, x_ticks: bool = True) -> list[str]:
        out = [f'<clipPath id="{clip}"><rect x="{LEFT - EDGE}" y="{TOP - EDGE}" width="{self.width - LEFT - RIGHT + 2 * EDGE}" '
               f'height="{self.height - TOP - BOTTOM + 2 * EDGE}"/></clipPath>']  # fmt: skip
        bottom, top = self.height - BOTTOM, TOP
        for tick in self.yticks:
            y = _n(self.py(tick))
            out.append(f'<line class="grid" x1="{LEFT}" x2="{self.width - RIGHT}" y1="{y}" y2="{y}"/>')
            out.append(f'<text class="tick" x="{LEFT - 6}" y="{y}" text-anchor="end" dy="0.32em">{esc(self.y_axis.fmt(tick))}</text>')
        for tick in self.labelled if x_ticks else ():
            x = _n(self.px(tick))
            out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/>')
            out.append(f'<text class="tick" x="{x}" y="{bottom + 15}" text-anchor="middle">{esc(self.x_axis.fmt(tick))}</text>')
        out.append(f'<line class="axis" x1="{LEFT}" x2="{self.width - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
        out.append(f'<text class="label" x="{(LEFT + self.width - RIGHT) / 2:.0f}" y="{self.height - 4}" '
                   f'text-anchor="middle">{esc(self.x_axis.label)}</text>')  # fmt: skip
        out.append(f'<text class="label" x="{LEFT}" y="{TOP - 12}" text-anchor="start">{esc(self.y_axis.label)}</text>')
        return out


_clips = iter(range(1, 1 << 30))


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>{"".join(body)}</svg>')  # fmt: skip


def _inside(point: Point, box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _segment_in(a: Point, b: Point, box: Box) -> tuple[Point, Point] | None:
    """The part of segment ``a``-``b`` inside ``box`` (Liang-Barsky), or None."""
    (x0, y0), (dx, dy) = a, (b[0] - a[0], b[1] - a[1])
    enter, leave = 0.0, 1.0
    for step, room in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        if step == 0:
            if room < 0:
                return None
            continue
        t = room / step
        if step < 0:
            enter = max(enter, t)
        else:
            leave = min(leave, t)
    if enter > leave:
        return None
    # the ends themselves where they are inside: a run's points join exactly
    start = a if enter == 0.0 else (x0 + enter * dx, y0 + enter * dy)
    end = b if leave == 1.0 else (x0 + leave * dx, y0 + leave * dy)
    return start, end


def clip_polyline(points: Sequence[Point], box: Box) -> list[list[Point]]:
    """The runs of a polyline inside ``box``: a curve that leaves the frame (a CDF past the
    slower model's 98th percentile) ends on its edge instead of running off the plot."""
    if len(points) == 1:
        return [list(points)] if _inside(points[0], box) else []
    runs: list[list[Point]] = []
    for a, b in zip(points, points[1:]):
        part = _segment_in(a, b, box)
        if part is None:
            continue
        start, end = part
        if runs and runs[-1][-1] == start:
            runs[-1].append(end)
        else:
            runs.append([start, end])
    return runs


def clip_polygon(points: Sequence[Point], box: Box) -> list[Point]:
    """A filled shape cut to ``box`` (Sutherland-Hodgman, one edge of the box at a time)."""
    edges = ((0, box[0], 1), (0, box[2], -1), (1, box[1], 1), (1, box[3], -1))  # (axis, bound, keep side)
    shape = list(points)
    for axis, bound, side in edges:
        kept: list[Point] = []
        for index, current in enumerate(shape):
            previous = shape[index - 1]
            now_in, before_in = (current[axis] - bound) * side >= 0, (previous[axis] - bound) * side >= 0
            if now_in != before_in:
                t = (bound - previous[axis]) / (current[axis] - previous[axis])
                kept.append((previous[0] + t * (current[0] - previous[0]), previous[1] + t * (current[1] - previous[1])))
            if now_in:
                kept.append(current)
        shape = kept
    return shape


def _points(points: Sequence[Point]) -> str:
    return " ".join(f"{_n(x)},{_n(y)}" for x, y in points)


def line_chart(title: str, lines: Sequence[Line], x: Axis, y: Axis, *, vlines: Sequence[tuple[float, str, str]] = ()) -> str:
    """Lines over a frame, cut to its plot area; ``vlines`` are (x, css, label) markers such as a budget."""
    frame = _Frame(x, y)
    area = frame.plot_area()
    clip = f"clip{next(_clips)}"
    body = frame.axes(clip)
    plotted = [f'<g clip-path="url(#{clip})">']
    for line in lines:
        if line.band:
            outline = [(frame.px(px), frame.py(high)) for px, _, high in line.band]
            outline += [(frame.px(px), frame.py(low)) for px, low, _ in reversed(line.band)]
            band = clip_polygon(outline, area)
            if band:
                plotted.append(f'<polygon class="{line.css} band" points="{_points(band)}"/>')
        drawn = [(frame.px(px), frame.py(py)) for px, py in line.points]
        if line.fill and drawn:
            base = frame.py(frame.y0)
            shaded = clip_polygon([(drawn[0][0], base), *drawn, (drawn[-1][0], base)], area)
            if shaded:
                plotted.append(f'<polygon class="{line.css} area" points="{_points(shaded)}"/>')
        dash = " dashed" if line.dashed else ""
        plotted.extend(f'<polyline class="{line.css} stroke{dash}" points="{_points(run)}"><title>{esc(line.label)}</title></polyline>'
                       for run in clip_polyline(drawn, area))  # fmt: skip
        if line.markers:
            plotted.extend(f'<circle class="{line.css} dot" cx="{_n(cx)}" cy="{_n(cy)}" r="3">'
                           f'<title>{esc(line.label)}: {esc(x.fmt(px))}, {esc(y.fmt(py))}</title></circle>'
                           for (px, py), (cx, cy) in zip(line.points, drawn) if _inside((cx, cy), area))  # fmt: skip
    for at, css, label in vlines:
        if not area[0] <= frame.px(at) <= area[2]:
            continue
        px = _n(frame.px(at))
        plotted.append(f'<line class="{css}" x1="{px}" x2="{px}" y1="{TOP}" y2="{frame.height - BOTTOM}"><title>{esc(label)}</title></line>')
    plotted.append("</g>")
    return _svg(title, frame.width, frame.height, body + plotted)


def text_box(text: str, x: float, baseline: float, font: float = VALUE_FONT) -> Box:
    """Where ``text``, centred on ``x``, is drawn (estimated wide): left, top, right, bottom."""
    half = len(text) * CHAR_EM * font / 2
    return (x - half, baseline - font, x + half, baseline + 0.25 * font)


def _overlap(a: Box, b: Box, gap: float = 1.0) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _value_labels(bars: list[tuple[Box, float, str]]) -> list[tuple[float, float, str]]:
    """(x, baseline, text) for each bar's value over it, raised a line at a time until it
    clears every other label and bar: side by side, "63.3 MiB" is wider than its bar."""
    placed: list[Box] = []
    labels: dict[int, tuple[float, float, str]] = {}
    # the tallest bar's value first: it stays on its bar, and the shorter ones rise past it
    for index in sorted(range(len(bars)), key=lambda i: bars[i][0][1]):
        box, x, text = bars[index]
        obstacles = [other for position, (other, _, _) in enumerate(bars) if position != index]
        baseline = box[1] - 4
        while any(_overlap(text_box(text, x, baseline), other) for other in placed + obstacles):
            baseline -= VALUE_FONT + 2
        placed.append(text_box(text, x, baseline))
        labels[index] = (x, baseline, text)
    return [labels[index] for index in range(len(bars))]


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]], y: Axis) -> str:
    """Grouped vertical bars: one group per category, one bar per series, values on top,
    the axis raised until every value fits within the plot area."""
    high = y.high
    for _ in range(12):
        frame = _Frame(Axis("", str, 0.0, 1.0), Axis(y.label, y.fmt, 0.0, high, from_zero=True))
        bars = _bars(frame, categories, series, y.fmt)
        labels = _value_labels([(box, x, text) for box, x, text, _, _ in bars])
        if all(text_box(text, x, baseline)[1] >= TOP for x, baseline, text in labels):
            break
        high = frame.y1 * 1.2
    body = frame.axes(f"clip{next(_clips)}", x_ticks=False)  # the categories name the groups
    group = (frame.width - LEFT - RIGHT) / max(len(categories), 1)
    for index, category in enumerate(categories):
        center = LEFT + group * (index + 0.5)
        body.append(f'<text class="tick" x="{_n(center)}" y="{frame.height - BOTTOM + 15}" text-anchor="middle">{esc(category)}</text>')
    for (left, top, right, bottom), _, text, css, tooltip in bars:
        body.append(f'<rect class="{css} bar" x="{_n(left)}" y="{_n(top)}" width="{_n(right - left)}" height="{_n(bottom - top)}">'
                    f"<title>{esc(tooltip)}</title></rect>")  # fmt: skip
    body.extend(f'<text class="value" x="{_n(x)}" y="{_n(baseline)}" text-anchor="middle">{esc(text)}</text>' for x, baseline, text in labels)
    body.append(f'<line class="axis" x1="{LEFT}" x2="{frame.width - RIGHT}" y1="{frame.height - BOTTOM}" y2="{frame.height - BOTTOM}"/>')
    return _svg(title, frame.width, frame.height, body)


def _bars(frame: _Frame, categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]],
          fmt: Format) -> list[tuple[Box, float, str, str, str]]:  # fmt: skip
    """Each bar: its rectangle, its centre, its value's text, its CSS class and its tooltip."""
    group = (frame.width - LEFT - RIGHT) / max(len(categories), 1)
    # as wide as the widest value where the groups leave room, so that values sit on their own bars
    widest = max((text_box(fmt(v), 0.0, 0.0)[2] * 2 for _, _, values in series for v in values if v is not None), default=0.0)
    bar = min(max(42.0, widest + 4), group * 0.9 / max(len(series), 1))
    bars = []
    for index, category in enumerate(categories):
        start = LEFT + group * (index + 0.5) - bar * len(series) / 2
        for position, (label, css, values) in enumerate(series):
            number = values[index]
            if number is None:
                continue
            x, top = start + position * bar, frame.py(number)
            box = (x + 1, top, x + bar - 1, frame.height - BOTTOM)
            bars.append((box, x + bar / 2, fmt(number), css, f"{label}, {category}: {fmt(number)}"))
    return bars


def stacked_bars(title: str, rows: Sequence[tuple[str, Sequence[float]]], segments: Sequence[str], fmt: Format) -> str:
    """Horizontal bars split into segments (the parts of a total), one bar per row."""
    row_height, label_width, value_width = 26, 130, 56
    height = 10 + row_height * len(rows) + 34
    total = max((sum(values) for _, values in rows), default=0.0) or 1.0
    ticks = nice_ticks(0.0, total, 4)
    scale = (WIDTH - label_width - value_width) / ticks[-1]
    body = []
    for tick in ticks:
        x = _n(label_width + tick * scale)
        body.append(f'<line class="grid" x1="{x}" x2="{x}" y1="6" y2="{height - 30}"/>')
        body.append(f'<text class="tick" x="{x}" y="{height - 16}" text-anchor="middle">{esc(fmt(tick))}</text>')
    for index, (label, values) in enumerate(rows):
        y = 10 + index * row_height
        body.append(f'<text class="tick" x="{label_width - 8}" y="{y + 9}" text-anchor="end" dy="0.32em">{esc(label)}</text>')
        x = float(label_width)
        for part, number in enumerate(values):
            width = max(number, 0.0) * scale
            body.append(f'<rect class="seg{part} bar" x="{_n(x)}" y="{y}" width="{_n(width)}" height="18">'
                        f'<title>{esc(label)}: {esc(segments[part])} {esc(fmt(number))}</title></rect>')  # fmt: skip
            x += width
        body.append(f'<text class="value" x="{_n(x + 4)}" y="{y + 9}" dy="0.32em">{esc(fmt(sum(values)))}</text>')
    return _svg(title, WIDTH, height, body)


def interval_strip(low: float, high: float, estimate: float | None, limit: float | None, css: str, title: str) -> str:
    """One check's interval (as ratios) against its budget and against no change, on a log
    scale framed around all three, so that over or within the budget is seen at a glance."""
    width, height, pad = 140, 22, 8
    points = [value for value in (low, high, estimate, limit, 1.0) if value is not None and value > 0]
    if not points:
        return ""
    lo, hi = math.log(min(points)), math.log(max(points))
    span = (hi - lo) or 0.1
    lo, hi = lo - 0.15 * span, hi + 0.15 * span

    def px(ratio: float) -> str:
        return _n(pad + (math.log(ratio) - lo) / (hi - lo) * (width - 2 * pad))

    body = [f'<line class="axis" x1="{pad}" x2="{width - pad}" y1="{height / 2}" y2="{height / 2}"/>',
            f'<line class="zero" x1="{px(1.0)}" x2="{px(1.0)}" y1="3" y2="{height - 3}"/>']  # fmt: skip
    if limit is not None and limit > 0:
        body.append(f'<line class="budget" x1="{px(limit)}" x2="{px(limit)}" y1="1" y2="{height - 1}"/>')
    if low > 0 and high > 0:
        body.append(f'<rect class="{css} ci" x="{px(low)}" y="{height / 2 - 5}" width="{_n(max(float(px(high)) - float(px(low)), 6))}" '
                    f'height="10" rx="3"/>')  # fmt: skip
    if estimate is not None and estimate > 0:
        body.append(f'<line class="est" x1="{px(estimate)}" x2="{px(estimate)}" y1="{height / 2 - 4}" y2="{height / 2 + 4}"/>')
    return (f'<svg class="strip" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>{"".join(body)}</svg>')  # fmt: skip
