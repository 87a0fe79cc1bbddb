"""The report as JSON text: ``dumps`` writes it, ``loads`` / ``read_report`` read it back
and check it is an intact perfgate report, ``write_report`` replaces a report file in one
step, so a reader never sees half of one. ``to_dict`` and ``from_dict`` (the report as
plain JSON values and back, both directions side by side so that what is written and
what is read cannot drift apart) are ``perfgate.report.json_dicts``'.

The JSON is the one on-disk form of a report (``schema_version`` in perfgate.results says
what changed when). Metric names are written as strings and parsed back through the
metric registry, so a check read from disk carries the same structured metric as one
just judged.

Standard JSON has no NaN or infinity, and a report may hold them (``--pad-value nan``, a
ratio over a zero). They are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the convention of protobuf's JSON mapping, which strict parsers accept
and jq or JavaScript read without error) and read back as floats wherever the report
holds a number; ``null`` would have lost which one it was, and where it had been.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from perfgate.backends.paths import bytes_escaped
from perfgate.errors import DataError
from perfgate.report.files import write_atomically
from perfgate.report.intact import DamagedReport, check_intact, other_file, why
from perfgate.report.json_dicts import from_dict, to_dict
from perfgate.results import Report

# the JSON form's public names, both directions: to_dict and from_dict too (json_dicts'), which dumps and loads build on
__all__ = ["dumps", "from_dict", "loads", "read_report", "to_dict", "write_report"]


def dumps(report: Report) -> str:
    """Indented, except that the outputs compared (with their row numbers) and each series
    (the raw samples: a batch size's, or generate mode's requests) are one compact line each."""
    data = _named_non_finite(to_dict(report))
    series, outputs = data.pop("series"), data.pop("outputs")
    generations = data.pop("generations")
    parts = data.pop("parts", None)
    head = json.dumps(data, indent=1, allow_nan=False)
    compact = json.dumps(outputs, separators=(",", ":"), allow_nan=False)
    lines = ",\n".join("  " + json.dumps(item, separators=(",", ":"), allow_nan=False) for item in series)
    requests = ",\n".join("  " + json.dumps(item, separators=(",", ":"), allow_nan=False) for item in generations)
    # a merged report: each part (a whole report, samples and all) one compact line
    merged = ",\n".join("  " + json.dumps(item, separators=(",", ":"), allow_nan=False) for item in parts or ())
    tail = f',\n "parts": [\n{merged}\n ]' if parts else ""
    return (
        head[: -len("\n}")]
        + f',\n "outputs": {compact},\n "series": ['
        + (f"\n{lines}\n ]" if lines else "]")
        + ',\n "generations": ['
        + (f"\n{requests}\n ]" if requests else "]")
        + tail
        + "\n}"
    )


def loads(text: str, *, source: str = "report", file: str = "FILE") -> Report:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"cannot read {source}: {why(exc)}") from None
    other = other_file(data, file)
    if other:
        raise DataError(f"cannot read {source}: {other}")
    if not isinstance(data, Mapping):
        raise DataError(f"cannot read {source}: not a perfgate report (a JSON {type(data).__name__}, not an object)")
    try:
        report = from_dict(data)
        check_intact(report)
    except DamagedReport as exc:
        raise DataError(f"cannot read {source}: a damaged report: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise DataError(f"cannot read {source}: not a perfgate report ({why(exc)})") from None
    return report


def read_report(path: str | Path) -> Report:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise DataError(f"cannot read report {str(path)!r}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read report {str(path)!r}: {exc}") from None
    return loads(text, source=f"report {str(path)!r}", file=str(path))


def write_report(report: Report, path: str | Path) -> None:
    """Write ``report`` to ``path`` atomically (see ``report.files``)."""
    write_atomically(path, dumps(report) + "\n")


# --- writing ---------------------------------------------------------------------------------


def _named_non_finite(value: Any) -> Any:
    """``value`` as JSON can hold it: non-finite numbers by name, and text as valid UTF-8."""
    if isinstance(value, str) and not value.isascii():
        return bytes_escaped(value)  # json.dumps would write \\udcNN, which no strict UTF-8 reader takes
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _named_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_named_non_finite(item) for item in value]
    return value
