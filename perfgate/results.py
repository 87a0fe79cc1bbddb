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
from perfgate.worker import LoadEpisode

SCHEMA_VERSION = 2
# Schema history: bump on any change a reader has to know about, and say what changed.
#   1 (2026-11-22) first version: verdict, compared, settings, environment, run, checks,
#                  series with raw samples per block pair, warnings, error.
#   2 (2026-11-22) checks: max_ratio became limit (a lower bound for higher-is-better
#                  metrics), with unit, scenario, higher_is_better, absolute_limit, and
#                  budget null with verdict "info" for metrics reported without a budget;
#                  batch_size null for per-model metrics. series: throughput windows.
#                  New: loads, cold_starts, stages, sizes; compared.<side>.memory.


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    INFO = "info"  # a check measured and reported without a budget; never part of the verdict


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
    # per side, per block pair: ns of a throughput window of calls_per_block calls back to back
    windows: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def blocks(self, side: str) -> tuple[np.ndarray, ...]:
        return self.reference if side == "reference" else self.candidate

    def samples(self, side: str) -> np.ndarray:
        blocks = self.blocks(side)
        return np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class LoadScenario:
    """Latency under load: ``clients`` closed-loop clients, or Poisson arrivals at ``rate``/s."""

    kind: str  # "closed" or "open"
    clients: int = 1
    rate: float = 0.0

    @property
    def label(self) -> str:
        return f"concurrency {self.clients}" if self.kind == "closed" else f"rate {self.rate:g}/s"


@dataclass(frozen=True)
class LoadSeries:
    """The load episodes of one scenario. Episode pair i ran the same arrivals (``seeds[i]``)
    on both models, ``first[i]`` first; per episode, per request: queueing and service ns."""

    scenario: LoadScenario
    batch_size: int
    requests: int  # per episode
    reference: tuple[LoadEpisode, ...]
    candidate: tuple[LoadEpisode, ...]
    first: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def episodes(self, side: str) -> tuple[LoadEpisode, ...]:
        return self.reference if side == "reference" else self.candidate

    def latencies(self, side: str) -> tuple[np.ndarray, ...]:
        """Per episode: each request's queueing plus service ns."""
        return tuple(np.add(e.queue_ns, e.service_ns, dtype=np.int64) for e in self.episodes(side))

    def part(self, side: str, which: str) -> np.ndarray:
        """All requests' "queue_ns" or "service_ns"."""
        return np.concatenate([np.asarray(getattr(e, which), dtype=np.int64) for e in self.episodes(side)])

    def offered_load(self, side: str) -> float | None:
        """Open loop: arrival rate x mean service time, the share of time the model must serve
        to keep up (1 or more: it cannot). None for a closed loop, which is always busy."""
        if self.scenario.kind != "open":
            return None
        return self.scenario.rate * float(np.mean(self.part(side, "service_ns"))) / 1e9

    def throughput(self, side: str) -> float:
        """Achieved samples per second over all episodes."""
        episodes = self.episodes(side)
        seconds = sum(e.duration_ns for e in episodes) / 1e9
        return len(episodes) * self.requests * self.batch_size / seconds if seconds else 0.0


@dataclass(frozen=True)
class Check:
    """One metric at one place (a batch size, a load scenario, or the model as a whole),
    against its budget, or reported for information where it has none."""

    metric: str
    batch_size: int | None  # None for per-model metrics (memory, cold start)
    verdict: Verdict
    reason: str
    reference: float | None  # the metric's value, in ``unit``
    candidate: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    ci_level: float | None
    n_reference: int
    n_candidate: int
    blocks: int
    unit: str = "ns"  # ns, samples/s, bytes, ns/<size column>
    scenario: str = ""  # "concurrency 4", "rate 500/s", the size column, or ""
    higher_is_better: bool = False
    budget: str | None = None  # "+15%"; None: reported only
    limit: float | None = None  # the ratio bound (upper, or lower where higher is better)
    absolute_limit: float | None = None  # memory: the allowed increase in bytes
    mann_whitney_p: float | None = None
    mann_whitney_note: str = ""


@dataclass(frozen=True)
class ModelReport:
    path: str
    backend: BackendInfo
    inputs: tuple[PreparedInput, ...]
    load_seconds: float
    cpus: tuple[int, ...] = ()  # the CPUs the worker was pinned to
    # bytes: peak_rss (while inferring), rss, load_rss (loading the model), framework_rss
    # (importing the framework), device peaks where the framework gives them; and
    # peak_includes_load where the kernel did not let the peak be reset after loading
    memory: Mapping[str, Any] = field(default_factory=dict)
    setup_seconds: float = 0.0


@dataclass(frozen=True)
class ColdStartRecord:
    """One fresh worker, from starting the process to the end of its first inference."""

    total_seconds: float  # by the parent's clock
    setup_seconds: float  # importing and configuring the framework
    load_seconds: float
    prepare_seconds: float
    first_call_seconds: float

    @property
    def process_seconds(self) -> float:
        """Starting the interpreter and perfgate's worker, and talking to it."""
        return self.total_seconds - self.setup_seconds - self.load_seconds - self.prepare_seconds - self.first_call_seconds


@dataclass(frozen=True)
class Stages:
    """Where a batch's time goes, per model: seconds per batch."""

    batch_size: int
    read: float  # reading the rows from Parquet (once, for both models)
    tensors: Mapping[str, float]  # columns -> the model's tensors (stacking, padding, casting)
    backend: Mapping[str, float]  # the backend's prepare (framework tensors, device copies)
    model: Mapping[str, float]  # the model call (p50)


@dataclass(frozen=True)
class SizeBucket:
    low: float
    high: float
    calls: Mapping[str, int]
    p50: Mapping[str, float]  # ns
    p95: Mapping[str, float]


@dataclass(frozen=True)
class SizeAnalysis:
    """Latency against input size at one batch size: per-bucket percentiles and fitted lines."""

    batch_size: int
    column: str
    buckets: tuple[SizeBucket, ...]
    slope: Mapping[str, float]  # ns per unit of the size column
    intercept: Mapping[str, float]


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
    cold_starts: int = 0
    loads: tuple[str, ...] = ()  # "concurrency 4", "rate 500/s"
    size_column: str | None = None
    memory_floor: float = 0.0  # bytes


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
    loads: tuple[LoadSeries, ...] = ()
    cold_starts: Mapping[str, tuple[ColdStartRecord, ...]] = field(default_factory=dict)
    stages: tuple[Stages, ...] = ()
    sizes: tuple[SizeAnalysis, ...] = ()
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
            "stages": _plain(self.stages),
            "sizes": _plain(self.sizes),
            "cold_starts": {side: [_cold_start_dict(r) for r in records] for side, records in self.cold_starts.items()},
            "loads": [_load_dict(load) for load in self.loads],
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
            loads=tuple(_load_from(item) for item in data.get("loads", ())),
            cold_starts={
                side: tuple(_build(ColdStartRecord, {k: v for k, v in r.items() if k != "process_seconds"}) for r in records)
                for side, records in (data.get("cold_starts") or {}).items()
            },
            stages=tuple(_build(Stages, item) for item in data.get("stages", ())),
            sizes=tuple(_size_from(item) for item in data.get("sizes", ())),
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
    return data


def _series_dict(series: Series) -> dict[str, Any]:
    def side(name: str) -> dict[str, Any]:
        return {
            "summary": summarize(series.samples(name)),
            "samples_ns": _plain(series.blocks(name)),
            "windows_ns": list(series.windows.get(name, ())),
        }

    return {
        "batch_size": series.batch_size,
        "calls_per_block": series.calls_per_block,
        "batches": series.batches,
        "pairs": [{"start": start, "first": first} for start, first in zip(series.starts, series.first)],
        "warmup": _plain(series.warmup),
        "reference": side("reference"),
        "candidate": side("candidate"),
    }


def _load_dict(load: LoadSeries) -> dict[str, Any]:
    def side(name: str) -> dict[str, Any]:
        episodes = load.episodes(name)
        return {
            "latency": summarize(_concatenate(load.latencies(name))),
            "queue": summarize(load.part(name, "queue_ns")) if episodes else {"n": 0},
            "service": summarize(load.part(name, "service_ns")) if episodes else {"n": 0},
            "throughput": load.throughput(name),
            "episodes": _plain(episodes),
        }

    return {
        "scenario": _plain(load.scenario),
        "label": load.scenario.label,
        "batch_size": load.batch_size,
        "requests": load.requests,
        "pairs": [{"seed": seed, "first": first} for seed, first in zip(load.seeds, load.first)],
        "reference": side("reference"),
        "candidate": side("candidate"),
    }


def _cold_start_dict(record: ColdStartRecord) -> dict[str, Any]:
    return {**_plain(record), "process_seconds": record.process_seconds}


def _concatenate(blocks: tuple[np.ndarray, ...]) -> np.ndarray:
    return np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int64)


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
        dict(data.get("memory") or {}),
        data.get("setup_seconds", 0.0),
    )


def _settings_from(data: Mapping[str, Any] | None) -> Settings | None:
    if data is None:
        return None
    values = dict(data)
    values["batch_sizes"] = tuple(values["batch_sizes"])
    values["budgets"] = tuple(values["budgets"])
    values["loads"] = tuple(values.get("loads", ()))
    return _build(Settings, values)


def _check_from(data: Mapping[str, Any]) -> Check:
    values = dict(data)
    values["verdict"] = Verdict(values["verdict"])
    values["ci"] = None if values.get("ci") is None else tuple(values["ci"])
    return _build(Check, values)


def _load_from(data: Mapping[str, Any]) -> LoadSeries:
    def episodes(side: str) -> tuple[LoadEpisode, ...]:
        return tuple(
            LoadEpisode(tuple(item["queue_ns"]), tuple(item["service_ns"]), item["duration_ns"])
            for item in data[side]["episodes"]
        )

    pairs = data.get("pairs", ())
    return LoadSeries(
        scenario=_build(LoadScenario, data["scenario"]),
        batch_size=data["batch_size"],
        requests=data["requests"],
        reference=episodes("reference"),
        candidate=episodes("candidate"),
        first=tuple(pair["first"] for pair in pairs),
        seeds=tuple(pair["seed"] for pair in pairs),
    )


def _size_from(data: Mapping[str, Any]) -> SizeAnalysis:
    return SizeAnalysis(
        batch_size=data["batch_size"],
        column=data["column"],
        buckets=tuple(_build(SizeBucket, bucket) for bucket in data["buckets"]),
        slope=dict(data["slope"]),
        intercept=dict(data["intercept"]),
    )


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
        windows={side: tuple(data[side].get("windows_ns", ())) for side in ("reference", "candidate")},
    )
