"""The session's summary table (one row per metric of every measurement) and the full
records that ``--perfgate-json`` writes."""

from __future__ import annotations

from typing import Any, Sequence

COLUMNS = ("test", "measured", "metric", "value", "CI", "budget", "verdict")


def summary_lines(summaries: Sequence[dict]) -> list[str]:
    """The table, then one line of counts. ``summaries`` are the plugin's ``perfgate``
    user properties, decoded: test, measured, verdict, asserted, note, rows."""
    table = []
    for summary in summaries:
        verdict_note = " (not asserted)" if _unasserted(summary) else ""
        rows = summary.get("rows") or [{}]
        for index, row in enumerate(rows):
            verdict = row.get("verdict", summary.get("verdict", ""))
            shown = "FAIL" if verdict == "fail" else verdict
            table.append((
                summary.get("test", "") if index == 0 else "",
                summary.get("measured", "") if index == 0 else "",
                row.get("metric", ""), row.get("value", ""), row.get("ci", ""), row.get("budget", "") or "-",
                shown + (verdict_note if verdict != "info" else ""),
            ))  # fmt: skip
    widths = [max(len(str(cell)) for cell in column) for column in zip(COLUMNS, *table)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in (COLUMNS, *table)]
    counts: dict[str, int] = {}
    for summary in summaries:
        counts[summary.get("verdict", "")] = counts.get(summary.get("verdict", ""), 0) + 1
    told = ", ".join(f"{counts[name]} {word}" for name, word in _COUNTED if counts.get(name))
    unasserted = sum(1 for summary in summaries if _unasserted(summary))
    told += f" ({unasserted} not asserted)" if unasserted else ""
    lines.append(f"perfgate: {len(summaries)} measurement{'s' if len(summaries) != 1 else ''}: {told}")
    return lines


def unasserted_budgets(summaries: Sequence[dict]) -> int:
    """How many budgets were judged and not asserted (absolute ones, beside other xdist workers)."""
    return sum(1 for summary in summaries if _unasserted(summary) for row in summary.get("rows") or () if row.get("verdict") != "info")


def _unasserted(summary: dict) -> bool:
    # only a measurement goes unasserted (its note says why); a comparison's note says it
    # was made beside other xdist workers, and it is asserted all the same
    return summary.get("kind") == "measure" and bool(summary.get("note")) and not summary.get("asserted")


_COUNTED = (("pass", "passed"), ("fail", "failed"), ("inconclusive", "inconclusive"), ("info", "without budgets"))


def row_text(row: dict, asserted: bool = True) -> str:
    """One summary row as a readable JUnit property: '32 us (CI 24.5 us .. 41.9 us); budget 1s: pass'."""
    ci = f" (CI {row['ci']})" if row.get("ci") else ""
    budget = f"; budget {row['budget']}" if row.get("budget") else ""
    note = " (not asserted)" if not asserted and row["verdict"] != "info" else ""
    return f"{row['value']}{ci}{budget}: {row['verdict']}{note}"


def full_record(test: str, entry: Any) -> dict[str, Any]:
    """A measurement for --perfgate-json: a comparison's whole report, or a single
    measurement with its raw samples and its checks, both in the report's conventions."""
    record = {"test": test, "kind": entry.kind, "measured": entry.label, "verdict": entry.verdict,
              "asserted": entry.asserted, "note": entry.note}  # fmt: skip
    if entry.kind == "compare":
        from perfgate.report.json_dicts import to_dict

        record["report"] = to_dict(entry.value)
    else:
        from perfgate.report.single import limit_checks_to_list, measurement_to_dict

        record["checks"] = limit_checks_to_list(entry.checks)
        # a generative model's requests are not a one-shot model's calls: it writes its own
        generative = entry.value.kind == "generate"
        record["measurement"] = entry.value.to_dict() if generative else measurement_to_dict(entry.value)
    return record
