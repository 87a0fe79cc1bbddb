"""Immutable results of a comparison, and their JSON form.

A report holds what was compared, the settings, the environment, the checks with their
verdicts, and the raw samples (in ns, block by block) from which the checks were
computed, so that a saved report can be rendered again, or re-analysed, later.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from perfgate.backends.base import BackendInfo
from perfgate.environment import Environment
from perfgate.errors import DataError
from perfgate.inputs import PreparedInput

SCHEMA_VERSION = 1
# Schema history: bump on any change a reader has to know about, and say what changed.
#   1 (2026-11-22) first version: verdict, compared, settings, environment, run, checks,
#                  series with raw samples per block pair, warnings, error.


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class WarmUpSummary:
    calls: int
    seconds: float
    typical_ns: float
    shapes: int


@dataclass(frozen=True)
class Series:
    """The samples of one batch size. Block pair i is ``reference[i]`` and ``candidate[i]``:
    the same ``calls_per_block`` batches from ``starts[i]`` on, run back to back, the model
    named in ``first[i]`` first."""

    batch_size: int
    calls_per_block: int
    batches: int
    reference: tuple[np.ndarray, ...]
    candidate: tuple[np.ndarray, ...]
    starts: tuple[int, ...]
    first: tuple[str, ...]  # "reference" or "candidate"
    warmup: Mapping[str, WarmUpSummary] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def samples(self, side: str) -> np.ndarray:
        blocks = self.reference if side == "reference" else self.candidate
        return np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Check:
    """One metric at one batch size against its budget."""

    metric: str
    batch_size: int
    budget: str  # "+15%"
    max_ratio: float
    verdict: Verdict
    reason: str
    reference: float | None  # the metric's value, ns
    candidate: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    ci_level: float | None
    n_reference: int
    n_candidate: int
    blocks: int
    mann_whitney_p: float | None = None
    mann_whitney_note: str = ""


@dataclass(frozen=True)
class ModelReport:
    path: str
    backend: BackendInfo
    inputs: tuple[PreparedInput, ...]
    load_seconds: float
    cpus: tuple[int, ...] = ()  # the CPUs the worker was pinned to
    peak_memory: Mapping[str, int] = field(default_factory=dict)  # device high-water marks while measuring


@dataclass(frozen=True)
class DataReport:
    path: str
    rows_total: int
    rows_used: int
    seed: int


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...]
    budgets: tuple[str, ...]
    time_budget_s: float
    confidence: float
    seed: int
    threads: int
    rows: int | None
    pad_value: float
    inputs: Mapping[str, str]
    device: str = "cpu"
    include_transfers: bool = False
    signature: str | None = None


@dataclass(frozen=True)
class RunSummary:
    looks: int
    measure_seconds: float
    total_seconds: float
    stopped_because: str  # "decided" or "time budget"


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    reason: str
    reference: ModelReport | None
    candidate: ModelReport | None
    data: DataReport | None
    settings: Settings | None
    environment: Environment | None
    run: RunSummary | None
    checks: tuple[Check, ...] = ()
    series: tuple[Series, ...] = ()
    warnings: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    perfgate_version: str = ""
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "tool": {"name": "perfgate", "version": self.perfgate_version},
            "created": self.created,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "error": _plain(self.error),
            "compared": {
                "reference": _plain(self.reference),
                "candidate": _plain(self.candidate),
                "data": _plain(self.data),
            },
            "settings": _plain(self.settings),
            "environment": _plain(self.environment),
            "run": _plain(self.run),
            "checks": [_check_dict(check) for check in self.checks],
            "series": [_series_dict(series) for series in self.series],
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        """Indented, except that each series (the raw samples) is one compact line."""
        data = self.to_dict()
        series = data.pop("series")
        head = json.dumps(data, indent=1, allow_nan=False)
        lines = ",\n".join("  " + json.dumps(item, separators=(",", ":"), allow_nan=False) for item in series)
        return head[: -len("\n}")] + ',\n "series": [' + (f"\n{lines}\n ]" if lines else "]") + "\n}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Report":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DataError(f"report schema_version {version!r} is not one this perfgate reads ({SCHEMA_VERSION})")
        compared = data.get("compared") or {}
        return cls(
            verdict=Verdict(data["verdict"]),
            reason=data.get("reason", ""),
            reference=_model_from(compared.get("reference")),
            candidate=_model_from(compared.get("candidate")),
            data=_build(DataReport, compared.get("data")),
            settings=_settings_from(data.get("settings")),
            environment=_build(Environment, data.get("environment")),
            run=_build(RunSummary, data.get("run")),
            checks=tuple(_check_from(item) for item in data.get("checks", ())),
            series=tuple(_series_from(item) for item in data.get("series", ())),
            warnings=tuple(data.get("warnings", ())),
            error=_build(ErrorInfo, data.get("error")),
            perfgate_version=(data.get("tool") or {}).get("version", ""),
            created=data.get("created", ""),
            schema_version=version,
        )


def read_report(path: str | Path) -> Report:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"cannot read report {str(path)!r}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read report {str(path)!r}: {exc}") from None
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"cannot read report {str(path)!r}: not a perfgate report ({type(exc).__name__}: {exc})") from None


def summarize(samples: np.ndarray) -> dict[str, float | int]:
    if samples.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.quantile(samples, [0.5, 0.95, 0.99])
    return {
        "n": int(samples.size),
        "min": float(samples.min()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(samples.max()),
        "mean": float(samples.mean()),
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    raise TypeError(f"cannot write {type(value).__name__} to a report")


def _check_dict(check: Check) -> dict[str, Any]:
    data = _plain(check)
    data["change"] = None if check.ratio is None else check.ratio - 1.0
    data["unit"] = "ns"
    return data


def _series_dict(series: Series) -> dict[str, Any]:
    return {
        "batch_size": series.batch_size,
        "calls_per_block": series.calls_per_block,
        "batches": series.batches,
        "pairs": [{"start": start, "first": first} for start, first in zip(series.starts, series.first)],
        "warmup": _plain(series.warmup),
        "reference": {"summary": summarize(series.samples("reference")), "samples_ns": _plain(series.reference)},
        "candidate": {"summary": summarize(series.samples("candidate")), "samples_ns": _plain(series.candidate)},
    }


def _build(cls: type, data: Mapping[str, Any] | None) -> Any:
    if data is None:
        return None
    names = {item.name for item in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def _model_from(data: Mapping[str, Any] | None) -> ModelReport | None:
    if data is None:
        return None
    inputs = tuple(
        PreparedInput(
            input=item["input"],
            columns=tuple(item["columns"]),
            rule=item["rule"],
            column_types=tuple(item["column_types"]),
            dtype=item["dtype"],
            row_shape=tuple(item["row_shape"]),
            padded=item["padded"],
        )
        for item in data.get("inputs", ())
    )
    return ModelReport(
        data["path"],
        _build(BackendInfo, data["backend"]),
        inputs,
        data["load_seconds"],
        tuple(data.get("cpus", ())),
        dict(data.get("peak_memory") or {}),
    )


def _settings_from(data: Mapping[str, Any] | None) -> Settings | None:
    if data is None:
        return None
    values = dict(data)
    values["batch_sizes"] = tuple(values["batch_sizes"])
    values["budgets"] = tuple(values["budgets"])
    return _build(Settings, values)


def _check_from(data: Mapping[str, Any]) -> Check:
    values = dict(data)
    values["verdict"] = Verdict(values["verdict"])
    values["ci"] = None if values.get("ci") is None else tuple(values["ci"])
    return _build(Check, values)


def _series_from(data: Mapping[str, Any]) -> Series:
    pairs = data.get("pairs", ())
    return Series(
        batch_size=data["batch_size"],
        calls_per_block=data["calls_per_block"],
        batches=data["batches"],
        reference=tuple(np.asarray(block, dtype=np.int64) for block in data["reference"]["samples_ns"]),
        candidate=tuple(np.asarray(block, dtype=np.int64) for block in data["candidate"]["samples_ns"]),
        starts=tuple(pair["start"] for pair in pairs),
        first=tuple(pair["first"] for pair in pairs),
        warmup={side: _build(WarmUpSummary, item) for side, item in (data.get("warmup") or {}).items()},
    )
