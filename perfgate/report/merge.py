"""merge(): the JSON reports of a CI matrix (one job per device, or per shard of models)
combined into one report and one verdict.

The verdict is the worst of the parts' (error > fail > inconclusive > pass). A part that
is missing, that cannot be read, or whose own verdict is "error" makes the merged verdict
"error" (exit 3): a matrix job that died before writing its report must never let the
merge pass. The parts are kept whole (samples included), each under a name: its file's
name, or as much of its path as tells it apart from the other parts.
"""

from __future__ import annotations

import datetime
import os
from pathlib import PurePath
from typing import Sequence

from perfgate import __version__
from perfgate.errors import EXIT_RUNTIME, DataError, UsageError
from perfgate.report.files import same_file
from perfgate.report.json import read_report
from perfgate.results import ErrorInfo, Report, ReportPart, Verdict

# worst first: the merged verdict is the first of these that any part has
_SEVERITY = (Verdict.ERROR, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS)
_SAID = {Verdict.ERROR: "could not be judged", Verdict.FAIL: "failed", Verdict.INCONCLUSIVE: "were inconclusive"}


def merge(paths: Sequence[str | os.PathLike]) -> Report:
    """One report of the reports at ``paths``; a part that cannot be read is a part with
    verdict "error" that says why (so that the merged report can still be written)."""
    given = [os.fspath(path) for path in paths]
    if not given:
        raise UsageError("merge needs at least one REPORT.json")
    for index, path in enumerate(given):
        twin = next((other for other in given[:index] if same_file(path, other)), None)
        if twin is not None:
            said = f"report {path!r} is" if twin == path else f"reports {twin!r} and {path!r} are the same file,"
            raise UsageError(f"{said} given twice: each part of a merge is one CI job's report")
    names = part_names(given)
    parts = tuple(ReportPart(name, _read_part(path)) for name, path in zip(names, given))
    return merged(parts)


def merged(parts: Sequence[ReportPart]) -> Report:
    """The report of ``parts``: the worst verdict, and a reason that names the parts that decided it."""
    kinds = [_kind(part.report.verdict) for part in parts]
    worst = min(kinds, key=_SEVERITY.index)
    deciding = [part for part, kind in zip(parts, kinds) if kind is worst]
    if worst is Verdict.PASS:
        reason = f"all {len(parts)} part{'s' if len(parts) != 1 else ''} passed"
    else:
        named = "; ".join(f"{part.name}: {part.report.reason}" for part in deciding[:3])
        more = f"; and {len(deciding) - 3} more" if len(deciding) > 3 else ""
        reason = f"{len(deciding)} of {len(parts)} parts {_SAID[worst]} ({named}{more})"
    error = ErrorInfo("PartError", reason, EXIT_RUNTIME) if worst is Verdict.ERROR else None
    return Report(
        verdict=worst, reason=reason, reference=None, candidate=None, data=None, settings=None, environment=None,
        run=None, error=error, perfgate_version=__version__, created=_now(), parts=tuple(parts),
    )  # fmt: skip


def _kind(verdict: Verdict) -> Verdict:
    """A part's verdict as the merge counts it: one outside the four (info) decides nothing, so it is an error."""
    return verdict if verdict in _SEVERITY else Verdict.ERROR


def part_names(paths: Sequence[str]) -> list[str]:
    """Each path's shortest tail of components (without ``.json``) that no other path
    shares: ``reports/cpu.json`` and ``reports/gpu.json`` are "cpu" and "gpu";
    ``perfgate-cpu/report.json`` and ``perfgate-gpu/report.json`` keep their folders."""
    split = [PurePath(path).with_suffix("").parts if path.endswith(".json") else PurePath(path).parts for path in paths]
    names = []
    for index, components in enumerate(split):
        for length in range(1, len(components) + 1):
            tail = components[-length:]
            if all(other[-length:] != tail for other_index, other in enumerate(split) if other_index != index):
                break
        names.append("/".join(tail))
    return names


def _read_part(path: str) -> Report:
    try:
        return read_report(path)
    except DataError as exc:
        message = f"{exc.message}: a part that is missing or unreadable is an error, never a pass"
        error = ErrorInfo(type(exc).__name__, message, exc.exit_code)
        return Report(verdict=Verdict.ERROR, reason=message, reference=None, candidate=None, data=None, settings=None,
                      environment=None, run=None, error=error, perfgate_version=__version__, created=_now())  # fmt: skip


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
