"""What every rendered report says the same way: which checks decide the verdict and
which are worst, the verdict's symbol and words, a check's cells, and text made safe.

The Markdown, HTML and XML renderers and the GitHub Action all read a report through
these, so that a comment, a page and an annotation never disagree about which check is
the worst or how a change is written.
"""

from __future__ import annotations

import math
import unicodedata

from perfgate.backends.paths import bytes_escaped
from perfgate.formatting import format_bytes, format_change
from perfgate.metrics import family_of
from perfgate.measurements import Noise
from perfgate.results import Check, DataReport, ModelReport, Report, Verdict

SYMBOLS = {
    Verdict.PASS: "✅",
    Verdict.FAIL: "❌",
    Verdict.INCONCLUSIVE: "⚠️",
    Verdict.ERROR: "💥",
    Verdict.INFO: "ℹ️",
}
DATA_DRIFT = "data drift: each model read its own file, so this compares the data, not the models"


def data_files(data: DataReport) -> list[tuple[str, str, int]]:
    """(role, path, rows in the file): ``data`` for the file both models read, else each
    model's own (``reference data``, ``candidate data``)."""
    if data.compares != "data":
        return [("data", data.path, data.rows_total)]
    return [("reference data", data.path, data.rows_total),
            ("candidate data", data.candidate_path or "", data.candidate_rows_total or 0)]  # fmt: skip


_RANK = {Verdict.ERROR: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 2, Verdict.PASS: 3, Verdict.INFO: 4}


def python_label(model: ModelReport) -> str:
    """'Python 3.11.7, /venvs/ort-1.20/bin/python' where a side's interpreter was recorded
    (--reference-python/--candidate-python); '' otherwise."""
    python = model.python
    return f"Python {python.get('version', '?')}, {python.get('executable', '?')}" if python else ""


def gated(report: Report) -> list[Check]:
    """The checks with a budget: the ones that make the verdict."""
    return [check for check in report.checks if check.verdict is not Verdict.INFO]


def informational(report: Report) -> list[Check]:
    return [check for check in report.checks if check.verdict is Verdict.INFO]


def severity(check: Check) -> float:
    """How far a check's estimate stands from its budget: 1 on the limit, above 1 past it
    (for higher-is-better metrics too); -inf where there is nothing to compare."""
    ratio = check.ratio
    if ratio is not None and ratio > 0 and check.limit:
        return ratio / check.limit if not check.higher_is_better else check.limit / ratio
    if check.absolute_limit and check.reference is not None and check.candidate is not None:
        return (check.candidate - check.reference) / check.absolute_limit
    return -math.inf


def worst_first(checks: list[Check] | tuple[Check, ...]) -> list[Check]:
    """Failed checks, then inconclusive, then passed (then info); the furthest over budget first."""
    return sorted(checks, key=lambda check: (_RANK[check.verdict], -severity(check)))


def worst_ratio(report: Report) -> float | None:
    """The candidate/reference ratio of the worst gated check (None when none has one)."""
    for check in worst_first(gated(report)):
        if check.ratio is not None:
            return check.ratio
    return None


def measured(report: Report) -> list[Check]:
    """The checks with a finite value for the candidate (every one a tracker can chart)."""
    return [check for check in report.checks if check.candidate is not None and math.isfinite(check.candidate)]


def counts(report: Report) -> dict[Verdict, int]:
    found = {verdict: 0 for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS)}
    for check in gated(report):
        found[check.verdict] = found.get(check.verdict, 0) + 1
    return found


def tally(report: Report) -> str:
    """'2 of 8 checks over budget, 1 inconclusive' / 'all 8 checks within budget'."""
    found = counts(report)
    total = sum(found.values())
    if not total:
        return "no gated checks"
    parts = []
    if found[Verdict.FAIL]:
        parts.append(f"{found[Verdict.FAIL]} of {total} checks over budget")
    if found[Verdict.INCONCLUSIVE]:
        parts.append(f"{found[Verdict.INCONCLUSIVE]} inconclusive")
    if not parts:
        return f"all {total} check{'s' if total != 1 else ''} within budget"
    return ", ".join(parts)


def where(check: Check) -> str:
    return family_of(check).where(check)


def place(check: Check) -> str:
    return family_of(check).place(check)


def value(check: Check, which: float | None) -> str:
    return family_of(check).format_value(which, check)


def change(check: Check) -> str:
    if check.unit == "bytes" and check.reference is not None and check.candidate is not None:
        difference = check.candidate - check.reference
        described = f"{'+' if difference >= 0 else '-'}{format_bytes(abs(difference))}"
        return described + (f" ({format_change(check.ratio, 1)})" if check.ratio else "")
    return "-" if check.ratio is None else format_change(check.ratio, 1)


def interval(check: Check) -> str:
    if check.ci is None:
        return "-"
    return f"{format_change(check.ci[0], 1)} to {format_change(check.ci[1], 1)}"


def needs_note(check: Check) -> bool:
    """A statistical check with no interval that was left undecided or is information only
    (too few samples for its quantile, one cold start): its interval cell points to a note
    that says why, in every format, instead of a bare '-'."""
    return check.ci is None and check.verdict in (Verdict.INCONCLUSIVE, Verdict.INFO) and family_of(check).statistical


def note(check: Check) -> str:
    """'latency.p95 batch 1: insufficient samples: 81 per model, latency.p95 needs 90'."""
    named = " ".join(part for part in (str(check.metric), place(check)) if part)
    return f"{named}: {check.reason}"


def detectable(check: Check) -> str:
    """The smallest change the check's samples detect ('+4.2%'), or '-' (perfgate/judge/resolution.py)."""
    return "-" if check.detectable is None else format_change(check.detectable, 1)


def level(check: Check) -> str:
    if check.ci_level is None:
        return ""
    text = f"{check.ci_level * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def verdict_word(verdict: Verdict) -> str:
    return verdict.value if verdict is Verdict.INFO else verdict.value.upper()


def safe(text: object) -> str:
    """``text`` with control and format characters (newlines, bidirectional overrides,
    zero-width marks) replaced by U+FFFD, so that a name cannot break a line, a table row
    or an XML document, nor show other text than it holds; a file name's undecodable byte
    (a lone surrogate, PEP 383) is written ``\\xNN``, as the JSON report and messages do."""
    return "".join(
        "\N{REPLACEMENT CHARACTER}" if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")
        else char
        for char in bytes_escaped(str(text))
    )  # fmt: skip


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def cold_start_samples(report: Report) -> str:
    """Which starts a report's cold-start figures average, in words."""
    count = min((len(records) for records in report.cold_starts.values()), default=0)
    measuring = any(records and records[0].measuring_worker for records in report.cold_starts.values())
    if not measuring:
        return f"mean of {count} fresh workers"
    if count == 1:
        return "the measuring worker's own start, beside the other model's: one sample, no interval"
    return f"mean of {count}: the measuring worker's own start and {count - 1} fresh workers"


def noise_text(noise: Noise) -> str:
    """'batch 1: block medians vary by 3.1% (reference) and 3.0% (candidate), pairs' ratios
    by 1.2%; drift 2.0% and 1.9%': one batch size's noise, as every report writes it."""

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100.0 * value:.1f}%"

    sides = ("reference", "candidate")
    blocks = " and ".join(f"{percent(noise.block_spread.get(side))} ({side})" for side in sides)
    drift = " and ".join(percent(noise.drift.get(side)) for side in sides)
    return (f"batch {noise.batch_size}: block medians vary by {blocks}, the pairs' ratios by "
            f"{percent(noise.pair_spread)}; drift between blocks {drift}")  # fmt: skip
