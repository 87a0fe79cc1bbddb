"""Renderers: one module per output format, each a function of a Report.

    json.py              the on-disk form (and reading it back, checked intact)
    json_dicts.py        the report as plain JSON values and back (to_dict, from_dict)
    text.py              the terminal report
    markdown.py          a job summary or a pull-request comment
    junit.py             JUnit XML: one test case per gated check
    html.py              a self-contained page with charts (plots.py, drawn by svg.py)
    bencher.py           Bencher Metric Format JSON
    benchmark_action.py  github-action-benchmark's customSmallerIsBetter / customBiggerIsBetter
    summary.py           what they all say the same way (worst first, symbols, safe text)
    files.py             writing rendered reports to files, atomically
"""

from __future__ import annotations

from perfgate.report.bencher import render_bencher
from perfgate.report.benchmark_action import render_bigger_is_better, render_smaller_is_better
from perfgate.report.html import render_html
from perfgate.report.json import dumps
from perfgate.report.junit import render_junit
from perfgate.report.markdown import render_markdown
from perfgate.report.text import render_text
from perfgate.results import Report

RENDERERS = {
    "text": render_text,
    "json": dumps,
    "markdown": render_markdown,
    "junit": render_junit,
    "html": render_html,
    "bencher": render_bencher,
    "customSmallerIsBetter": render_smaller_is_better,
    "customBiggerIsBetter": render_bigger_is_better,
}
FORMATS = tuple(RENDERERS)


def render(report: Report, fmt: str) -> str:
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderer(report)
