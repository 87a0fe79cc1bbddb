"""A merged report (``perfgate merge``) in every format: first the merged verdict and a
table of the parts (each one's name, verdict and reason), then each part as its own
report, rendered by the same renderer under its name.

The renderers call in here when a report has parts; they pass themselves in, so that this
module needs none of them (and a merge of merged reports renders part within part).
"""

from __future__ import annotations

from typing import Callable

from perfgate.report.summary import SYMBOLS, safe, shorten, tally, verdict_word
from perfgate.results import Report, Verdict

Renderer = Callable[[Report], str]


def leaves(report: Report, prefix: str = "") -> list[tuple[str, Report]]:
    """Every single (unmerged) report inside ``report``, named by its path of part names;
    a single report is its own one leaf, named ``prefix``."""
    if not report.parts:
        return [(prefix, report)]
    found: list[tuple[str, Report]] = []
    for part in report.parts:
        found.extend(leaves(part.report, f"{prefix}/{part.name}" if prefix else part.name))
    return found


def summary_line(report: Report) -> str:
    """A part's verdict in one phrase: its checks' tally, or what went wrong."""
    if report.verdict is Verdict.ERROR:
        return "error: " + (report.error.message if report.error is not None else report.reason)
    return tally(report) if not report.parts else f"{len(report.parts)} parts"


def text(report: Report, render_part: Renderer) -> str:
    width = max(len(safe(part.name)) for part in report.parts)
    lines = [f"perfgate: merged report of {len(report.parts)} part{'s' if len(report.parts) != 1 else ''}"]
    lines.extend(f"  {safe(part.name):<{width}}  {verdict_word(part.report.verdict):<12}  {safe(summary_line(part.report))}"
                 for part in report.parts)  # fmt: skip
    for part in report.parts:
        lines.append("")
        lines.append(f"== part {safe(part.name)}: {verdict_word(part.report.verdict)} ==")
        lines.extend("  " + line if line else "" for line in render_part(part.report).rstrip("\n").split("\n"))
    lines.append("")
    lines.append(f"{verdict_word(report.verdict)}: {safe(report.reason)}")
    lines.extend(f"warning: {safe(warning)}" for warning in report.warnings)
    return "\n".join(lines) + "\n"


def markdown(report: Report, render_part: Callable[..., str], md: Callable[[object], str], max_chars: int) -> str:
    """The merged verdict and the parts' table always; then each part's own report, in
    an equal share of what is left of ``max_chars`` (a part that has too little room keeps
    its heading and reason)."""
    verdict = report.verdict
    head = f"## {SYMBOLS[verdict]} perfgate: {verdict_word(verdict)}\n\n**{len(report.parts)} parts merged.** {md(shorten(report.reason, 2000))}"
    rows = ["| | part | verdict | checks |", "|:---:|---|---|---|"]
    rows.extend(f"| {SYMBOLS[part.report.verdict]} | {md(shorten(part.name, 200))} | {verdict_word(part.report.verdict)} | "
                f"{md(shorten(summary_line(part.report), 500))} |" for part in report.parts)  # fmt: skip
    top = f"{head}\n\n" + "\n".join(rows) + "\n"
    share = max(0, (max_chars - len(top)) // len(report.parts) - 2)
    sections = [top]
    for part in report.parts:
        title = f"### {SYMBOLS[part.report.verdict]} {md(shorten(part.name, 200))}: {verdict_word(part.report.verdict)}"
        body = render_part(part.report, max_chars=max(share - len(title) - 1, 1))
        # the part's own headline ("## ... perfgate: PASS") gives way to the part's name
        body = body.split("\n", 1)[1].lstrip("\n") if body.startswith("## ") and "\n" in body else ""
        section = f"{title}\n\n{body}" if body and len(title) + len(body) + 3 <= share else f"{title}\n\n{md(shorten(part.report.reason, 300))}\n"
        sections.append(section)
    return "\n".join(sections)


def html_body(report: Report, body_of: Renderer, esc: Callable[[object], str]) -> str:
    """The parts' table, then each part's sections (``body_of``) in a section of its own."""
    rows = "".join(
        f'<tr class="{_css(part.report.verdict)}"><td>{esc(part.name)}</td><td><span class="pill {_css(part.report.verdict)}">'
        f"{esc(verdict_word(part.report.verdict))}</span></td><td>{esc(summary_line(part.report))}</td></tr>"
        for part in report.parts
    )
    table = (f'<section><h2>Parts</h2><div class="scroll"><table class="checks"><thead><tr><th>part</th><th>verdict</th>'
             f"<th>checks</th></tr></thead><tbody>{rows}</tbody></table></div></section>")  # fmt: skip
    sections = [table]
    for part in report.parts:
        sections.append(f'<section class="part"><h2>Part {esc(part.name)}: {esc(verdict_word(part.report.verdict))}</h2>\n'
                        f"{body_of(part.report)}\n</section>")  # fmt: skip
    return "\n".join(sections)


def _css(verdict: Verdict) -> str:
    return {Verdict.FAIL: "fail", Verdict.PASS: "pass", Verdict.INCONCLUSIVE: "inconclusive"}.get(verdict, "fail")
