"""A report as plain JSON values (dicts, lists, strings, numbers) and back: ``to_dict`` and
``from_dict``, both directions for every part of the report side by side, so that what
is written and what is read cannot drift apart. ``perfgate.report.json`` turns them into
JSON text and back.

Metric names are written as strings and parsed back through the metric registry, so a
check read from disk carries the same structured metric as one just judged. The names of
non-finite floats (``"NaN"``, ``"Infinity"``, ``"-Infinity"``, which the JSON text holds
in their place) are read back as floats only in the fields that hold numbers.
"""

from __future__ import annotations

import enum
import functools
import math
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from perfgate.errors import BudgetError, DataError
from perfgate.measurements import (
    ColdStartRecord,
    GenerationSeries,
    GenerationsCompared,
    LoadEpisode,
    LoadScenario,
    LoadSeries,
    Noise,
    OutputDifference,
    OutputsCompared,
    RequestTiming,
    Series,
    SizeAnalysis,
    SizeBucket,
    Stages,
    WarmUpSummary,
    concatenated,
)
from perfgate.metrics import parse_metric
from perfgate.results import (
    READABLE_SCHEMA_VERSIONS,
    SIDES,
    BackendInfo,
    Check,
    DataReport,
    Environment,
    ErrorInfo,
    Metric,
    ModelReport,
    PreparedInput,
    Report,
    ReportPart,
    RunSummary,
    Settings,
    Verdict,
)

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "schema_version": report.schema_version,
        "tool": {"name": "perfgate", "version": report.perfgate_version},
        "created": report.created,
        "verdict": report.verdict.value,
        "reason": report.reason,
        "error": _plain(report.error),
        "compared": {
            "reference": _plain(report.reference),
            "candidate": _plain(report.candidate),
            "data": _plain(report.data),
        },
        "settings": _plain(report.settings),
        "environment": _plain(report.environment),
        "run": _plain(report.run),
        "checks": [_check_dict(check) for check in report.checks],
        "stages": _plain(report.stages),
        "sizes": _plain(report.sizes),
        "outputs": _plain(report.outputs),
        "cold_starts": {side: [_cold_start_dict(r) for r in records] for side, records in report.cold_starts.items()},
        "loads": [_load_dict(load) for load in report.loads],
        "series": [_series_dict(series) for series in report.series],
        "generations": [_generations_dict(generations) for generations in report.generations],
        "answers": _plain(report.answers),
        "warnings": list(report.warnings),
        "noise": _plain(report.noise),
        **({"parts": [{"name": part.name, "report": to_dict(part.report)} for part in report.parts]} if report.parts else {}),
    }


def from_dict(data: Mapping[str, Any]) -> Report:
    version = data.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
        raise DataError(f"report schema_version {version!r} is not one this perfgate reads ({readable})")
    compared = data.get("compared") or {}
    return Report(
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
        outputs=_outputs_from(data.get("outputs")),
        generations=tuple(_generations_from(item) for item in data.get("generations", ())),
        answers=_answers_from(data.get("answers")),
        warnings=tuple(data.get("warnings", ())),
        noise=tuple(_build(Noise, item) for item in data.get("noise", ())),
        error=_build(ErrorInfo, data.get("error")),
        perfgate_version=(data.get("tool") or {}).get("version", ""),
        created=data.get("created", ""),
        schema_version=version,
        parts=tuple(ReportPart(str(item["name"]), from_dict(item["report"])) for item in data.get("parts", ())),
    )


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


# --- writing ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return str(value) if isinstance(value, Metric) else value
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value):
        # a transient field travels between processes, never into a report (RequestTiming.answer)
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value) if not item.metadata.get("transient")}
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
        "pairs": [
            {"start": start, "first": first, "instance": instance}
            for start, first, instance in zip(series.starts, series.first, series.instances or (0,) * series.pairs)
        ],
        "warmup": _plain(series.warmup),
        "reference": side("reference"),
        "candidate": side("candidate"),
    }


def _load_dict(load: LoadSeries) -> dict[str, Any]:
    def side(name: str) -> dict[str, Any]:
        return {
            "latency": summarize(concatenated(load.latencies(name))),
            "queue": summarize(load.part(name, "queue_ns")),
            "service": summarize(load.part(name, "service_ns")),
            "throughput": load.throughput(name),
            "episodes": _plain(load.episodes(name)),
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


def _generations_dict(generations: GenerationSeries) -> dict[str, Any]:
    def side(name: str) -> dict[str, Any]:
        requests = generations.requests(name)
        gaps = [gap for request in requests for gap in request.gaps_ns]
        return {
            "counted_by": generations.counted_by(name),
            "ttft": summarize(np.asarray([request.ttft_ns for request in requests], dtype=np.int64)),
            "itl": summarize(np.asarray(gaps, dtype=np.int64)),
            "e2e": summarize(np.asarray([request.e2e_ns for request in requests], dtype=np.int64)),
            "requests": _plain(generations.blocks(name)),
        }

    return {
        "max_new_tokens": generations.max_new_tokens,
        "prompt_count": generations.prompt_count,
        # null: one request at a time; else a served model's load scenario (--concurrency, --rate)
        "scenario": None if generations.scenario is None else _plain(generations.scenario),
        "label": generations.label,
        "pairs": [
            {"prompts": list(prompts), "first": first, "instance": instance}
            for prompts, first, instance in zip(
                generations.prompts, generations.first, generations.instances or (0,) * generations.pairs
            )
        ],
        "warmup_s": _plain(generations.warmup_s),
        "reference": side("reference"),
        "candidate": side("candidate"),
    }


def _cold_start_dict(record: ColdStartRecord) -> dict[str, Any]:
    return {**_plain(record), "process_seconds": record.process_seconds}


# --- reading ---------------------------------------------------------------------------------


def _build(cls: type, data: Mapping[str, Any] | None) -> Any:
    if data is None:
        return None
    numeric = _numeric_fields(cls)
    names = {item.name for item in fields(cls)}
    return cls(**{key: _numbers(value) if key in numeric else value for key, value in data.items() if key in names})


@functools.cache
def _numeric_fields(cls: type) -> frozenset[str]:
    """The fields of ``cls`` that hold floats (alone, optional, or in a tuple or mapping):
    only there does "NaN" mean a number rather than, say, a column called NaN."""
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items() if _mentions_float(hint))


def _mentions_float(hint: Any) -> bool:
    return hint is float or any(_mentions_float(argument) for argument in typing.get_args(hint))


def _numbers(value: Any) -> Any:
    """``value`` with the names of non-finite floats turned back into floats."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_numbers(item) for item in value)
    if isinstance(value, Mapping):
        return {key: _numbers(item) for key, item in value.items()}
    return value


def _metric_from(name: str) -> Metric:
    try:
        return parse_metric(name)
    except BudgetError:
        return Metric(name, "")  # a family this perfgate does not know: kept, never judged again


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
            row_shape=None if item["row_shape"] is None else tuple(item["row_shape"]),
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
        dict(data.get("python") or {}),
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
    values["metric"] = _metric_from(values["metric"])
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
        slope=_numbers(dict(data["slope"])),
        intercept=_numbers(dict(data["intercept"])),
        batch_totals=_numbers(tuple(data.get("batch_totals", ()))),
    )


def _outputs_from(data: Mapping[str, Any] | None) -> OutputsCompared | None:
    if data is None:
        return None

    def difference(item: Mapping[str, Any]) -> OutputDifference:
        values = dict(item)
        values["row_shape"] = tuple(values["row_shape"])
        return _build(OutputDifference, values)

    return OutputsCompared(
        batch_size=data["batch_size"],
        batches=tuple(data["batches"]),
        rows=tuple(data["rows"]),
        seed=data["seed"],
        total_batches=data["total_batches"],
        outputs=tuple(difference(item) for item in data["outputs"]),
        note=data.get("note", ""),
        nonfinite_inputs=data.get("nonfinite_inputs", False),
    )


def _generations_from(data: Mapping[str, Any]) -> GenerationSeries:
    def blocks(side: str) -> tuple[tuple[RequestTiming, ...], ...]:
        return tuple(
            tuple(_build(RequestTiming, {**request, "gaps_ns": tuple(request["gaps_ns"])}) for request in block)
            for block in data[side]["requests"]
        )

    pairs = data.get("pairs", ())
    return GenerationSeries(
        max_new_tokens=data["max_new_tokens"],
        prompt_count=data["prompt_count"],
        reference=blocks("reference"),
        candidate=blocks("candidate"),
        prompts=tuple(tuple(pair["prompts"]) for pair in pairs),
        first=tuple(pair["first"] for pair in pairs),
        instances=_instances(pair.get("instance", 0) for pair in pairs),
        warmup_s=_numbers(dict(data.get("warmup_s") or {})),
        scenario=None if not data.get("scenario") else _build(LoadScenario, data["scenario"]),
    )


def _answers_from(data: Mapping[str, Any] | None) -> GenerationsCompared | None:
    if data is None:
        return None
    return GenerationsCompared(
        prompts=tuple(data["prompts"]),
        max_new_tokens=data["max_new_tokens"],
        exact=tuple(data["exact"]),
        first_difference=tuple(data["first_difference"]),
        lengths={side: tuple(lengths) for side, lengths in data["lengths"].items()},
        unit=data.get("unit", "tokens"),
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
        windows={side: tuple(data[side]["windows_ns"]) for side in SIDES if data[side].get("windows_ns")},  # none measured: {}
        instances=_instances(pair.get("instance", 0) for pair in pairs),
    )


def _instances(indices: Iterable[int]) -> tuple[int, ...]:
    """Each pair's worker instance; () when all ran in one (as every report before version 5)."""
    found = tuple(int(index) for index in indices)
    return found if any(found) else ()
