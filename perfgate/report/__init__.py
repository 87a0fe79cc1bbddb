"""Renderers: one per output format, each a function of a Report."""

from __future__ import annotations

from perfgate.report.text import render_text
from perfgate.results import Report

FORMATS = ("text", "json")


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "text":
        return render_text(report)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
