"""Renderers: one module per output format, each a function of a Report.

    json.py   the on-disk form (and reading it back)
    text.py   the terminal report
"""

from __future__ import annotations

from perfgate.report.json import dumps
from perfgate.report.text import render_text
from perfgate.results import Report

RENDERERS = {"text": render_text, "json": dumps}
FORMATS = tuple(RENDERERS)


def render(report: Report, fmt: str) -> str:
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderer(report)
