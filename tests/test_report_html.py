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
