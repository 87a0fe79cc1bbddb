"""The HTML report: one self-contained page (no script, nothing fetched), with the figures
a comparison's measurements call for, every name escaped; and, where Chromium is
installed, the page as a browser renders it at desktop and phone widths."""

import dataclasses
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

import report_samples as samples
from perfgate.report.html import render_html
from perfgate.report.svg import nice_ticks
from perfgate.results import Verdict


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    return samples.failed_run(tmp_path_factory.mktemp("html"))


class Elements(HTMLParser):
    """Every start tag with its attributes; fails on nothing, records everything."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(page):
    parser = Elements()
    parser.feed(page)
    return parser.tags


def test_the_page_loads_nothing_and_runs_nothing(failed):
    page = render_html(failed)
    tags = elements(page)
    assert not [tag for tag, _ in tags if tag in ("script", "link", "img", "iframe", "object", "embed")]
    for _, attrs in tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), name
            if name in ("src", "href"):
                raise AssertionError(f"{name}={value}")
    assert not re.search(r"url\((?!#)", page)  # no CSS fetch; url(#clip) references the page itself
    assert "default-src 'none'" in page


def test_the_page_has_the_figures_the_measurements_call_for(failed):
    page = render_html(failed)
    titles = re.findall(r"<figcaption><strong>([^<]+)</strong>", page)
    for expected in ("Latency distribution, batch 1", "Latency histogram, batch 4", "Latency across blocks, batch 1",
                     "Throughput", "Memory", "Cold start", "Where a batch&#x27;s time goes", "Latency against n, batch 1",
                     "Under load: rate 200/s"):  # fmt: skip
        assert expected in titles, (expected, titles)
    assert page.count('<svg class="strip"') == sum(check.ci is not None for check in failed.checks)
    assert '<header class="banner fail">' in page
    bare = dataclasses.replace(failed, series=(), loads=(), sizes=(), stages=(), cold_starts={})
    assert "Latency distribution" not in render_html(bare) and "Under load" not in render_html(bare)


def test_every_name_is_escaped(failed):
    page = render_html(samples.hostile(failed))
    assert samples.HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;|" in page
    assert not [tag for tag, _ in elements(page) if tag == "img"]


def test_an_error_report_is_a_page_too():
    page = render_html(samples.errored())
    assert '<header class="banner error">' in page and "could not be carried out (exit 3)" in page
    assert "<img" not in page


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 7.3) == [0, 2, 4, 6, 8]
    for low, high in ((103_000, 697_000), (0.004, 0.0093), (-3.5, 12.25), (1e9, 1.02e9)):
        ticks = nice_ticks(low, high)
        steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
        assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 7 and len(steps) == 1
        mantissa = f"{steps.pop():.3e}".split("e")[0]
        assert mantissa in ("1.000", "2.000", "2.500", "5.000"), (low, high, ticks)
    assert nice_ticks(5, 5) == nice_ticks(5, 10)  # a flat range still gets an axis


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_chromium_renders_the_page_at_desktop_and_phone_widths(failed, tmp_path, width):
    page = tmp_path / "report.html"
    page.write_text(render_html(samples.hostile(failed)))
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},2400"]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser's own parse: the hostile name is text, not an element
    assert "<img" not in dom.stdout and "&lt;img src=x onerror=alert(1)&gt;|" in dom.stdout
    assert dom.stdout.count("<svg") >= 10
    shot = tmp_path / f"report-{width}.png"
    subprocess.run(base + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (width, 2400)
    assert len(data) > 50_000  # charts and tables drawn, not a blank page


def test_inconclusive_and_passing_pages_say_so(failed):
    check = samples.one_check(Verdict.INCONCLUSIVE)
    page = render_html(dataclasses.replace(failed, checks=(check,), verdict=Verdict.INCONCLUSIVE, reason="1 of 1 checks undecided"))
    assert '<header class="banner inconclusive">' in page and "1 inconclusive" in page
    assert '<span class="pill inconclusive">INCONCLUSIVE</span>' in page


def test_why_a_check_has_no_interval_is_on_the_page_not_only_in_a_tooltip(failed):
    page = render_html(samples.with_undecided(failed))
    row = re.search(r'<tr class="inconclusive"[^>]*><td class="metric">latency\.p99</td>.*?</tr>', page).group()
    assert '<td class="interval"><span>see [1]</span></td>' in row
    shown = re.sub(r'title="[^"]*"', "", page)  # what a reader sees without hovering
    footnotes = re.search(r'<ul class="footnotes">(.*?)</ul>', shown).group(1)
    items = re.findall(r"<li>(.*?)</li>", footnotes)
    assert items[0] == f"[1] latency.p99 batch 1: {samples.UNDECIDED}"
    assert [item.split("]")[0] for item in items] == [f"[{n}" for n in range(1, len(items) + 1)]
    assert "[5] cold_start: one start per model: no interval" in items


def test_notes_on_the_page_are_escaped(failed):
    page = render_html(samples.with_undecided(failed, reason=samples.HOSTILE))
    assert "<img" not in page and "[1] latency.p99 batch 1: &lt;img src=x onerror=alert(1)&gt;|</li>" in page
    assert not [tag for tag, _ in elements(page) if tag == "img"]


def charts(page):
    """Each chart's SVG: (title, width, height, markup)."""
    found = re.findall(r'<svg class="chart" viewBox="0 0 (\d+) (\d+)"[^>]*><title>([^<]*)</title>(.*?)</svg>', page)
    return [(title, int(width), int(height), body) for width, height, title, body in found]


def numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def test_every_curve_stays_within_its_plot_area_and_an_edge_is_drawn_whole(failed):
    from perfgate.report.svg import BOTTOM, LEFT, RIGHT, TOP

    lined = [chart for chart in charts(render_html(failed)) if "<polyline" in chart[3]]
    assert len(lined) >= 8  # CDFs, histograms, blocks, sizes, load
    for title, width, height, body in lined:
        right, bottom = width - RIGHT, height - BOTTOM
        drawn = re.findall(r'<(?:polyline|polygon)[^>]* points="([^"]*)"', body)
        drawn += [f"{x},{y}" for x, y in re.findall(r'<circle[^>]* cx="([^"]*)" cy="([^"]*)"', body)]
        for points in drawn:
            values = numbers(points)
            for x, y in zip(values[::2], values[1::2]):
                assert LEFT <= x <= right and TOP <= y <= bottom, (title, x, y)
        # the clip lets a line on the frame's edge (a CDF at 100 %) show its whole stroke and markers
        x, y, w, h = numbers(re.search(r"<clipPath[^>]*><rect ([^/]*)/>", body).group(1))
        assert x <= LEFT - 3 and y <= TOP - 3 and x + w >= right + 3 and y + h >= bottom + 3, title


def test_a_cdf_without_stalls_reaches_100_percent_inside_the_frame():
    import numpy as np

    from perfgate.report.plots import cdf
    from perfgate.report.svg import RIGHT, TOP, WIDTH

    rng = np.random.default_rng(0)
    # 32 calls at batch 32, more than a decade apart: a log axis, framed by the data alone
    few = {"reference": rng.normal(50e3, 4e3, 32), "candidate": rng.normal(600e3, 20e3, 32)}
    body = cdf("few calls", few)
    ends = [numbers(points)[-2:] for points in re.findall(r'<polyline[^>]* points="([^"]*)"', body)]
    assert len(ends) == 2 and all(y == TOP and x <= WIDTH - RIGHT for x, y in ends), ends
    assert "98th percentile" not in body
    stalled = {side: np.append(values, values.max() * 20) for side, values in few.items()}  # one 20x stall each
    body = cdf("a stall", stalled)
    assert "up to the slower model&#x27;s 98th percentile" in body  # the frame leaves the stall out, and says so


def value_labels(body):
    from perfgate.report.svg import VALUE_FONT

    boxes = []
    for x, y, text in re.findall(r'<text class="value" x="([^"]*)" y="([^"]*)"[^>]*>([^<]*)</text>', body):
        half = len(text) * 0.6 * VALUE_FONT / 2  # this test's own estimate of a sans-serif text's width
        boxes.append((text, float(x) - half, float(y) - VALUE_FONT, float(x) + half, float(y) + 2))
    return boxes


def bars(body):
    found = re.findall(r'<rect class="[^"]* bar" x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"', body)
    return [tuple(float(value) for value in attrs) for attrs in found]


@pytest.mark.parametrize("memory", [
    {"peak_rss": 63.3, "load_rss": 10.0, "framework_rss": 19.3},  # the 63.3 MiB beside 63.7 MiB
    {"peak_rss": 63.3, "load_rss": 63.1, "framework_rss": 63.2, "gpu_peak_allocated_bytes": 63.4},  # four groups, all level
    {"peak_rss": 1.5, "load_rss": 900.0, "framework_rss": 0.7},
])  # fmt: skip
def test_values_over_bars_never_overlap_each_other_or_other_bars(failed, memory):
    from perfgate.report.svg import TOP

    def side(model, extra):
        return dataclasses.replace(model, memory={key: (mib + extra) * 2**20 for key, mib in memory.items()})

    report = dataclasses.replace(failed, reference=side(failed.reference, 0.0), candidate=side(failed.candidate, 0.4))
    page = render_html(report)
    for title, width, height, body in charts(page):
        if title not in ("Memory", "Throughput"):
            continue
        labels, rects = value_labels(body), bars(body)
        assert len(labels) == len(rects) >= 2, title
        for index, (text, left, top, right, bottom) in enumerate(labels):
            assert 0 <= left and right <= width and top >= TOP - 0.5, (title, text)
            for other in labels[index + 1:]:
                assert right <= other[1] or other[3] <= left or bottom <= other[2] or other[4] <= top, (title, text, other[0])
            for position, (x, y, w, h) in enumerate(rects):
                if position != index:  # a value may not sit on another bar
                    assert right <= x or x + w <= left or bottom <= y, (title, text, position)
