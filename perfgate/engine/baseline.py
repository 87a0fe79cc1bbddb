"""Stored baselines: one model measured on its own (``perfgate run --save``), its raw
samples kept in a file with the environment they were measured in, to be compared later
against a candidate measured then (``perfgate compare --baseline``, see ``baseline_compare``).

The fingerprint is what must be the same for two measurements taken at different times to
be comparable at all: the CPU model and how many CPUs the process could use, the GPU and
its driver, the OS, Python, the framework and its version, the threads and the device.
The data is held to more than that: the rows themselves (their SHA-256) must be the same,
or the comparison is refused.

The file is JSON, with its own ``schema_version`` (history below); the model's facts are
written as a report writes them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from perfgate import __version__
from perfgate.data.dataset import ParquetDataset
from perfgate.errors import DataError, UsageError
from perfgate.results import BackendInfo, Environment, ModelReport

BASELINE_SCHEMA_VERSION = 1
# Schema history: bump on any change a reader has to know about, and say what changed.
#   1 (2026-11-23) first version: model, data (path, rows, seed, sha256 of the rows used),
#                  fingerprint, settings, and per batch size the blocks of ns per call, the
#                  throughput windows and the memory read after them.
KIND = "perfgate-baseline"


@dataclass(frozen=True)
class DataIdentity:
    """Which rows a measurement fed: the file, how many of its rows with which seed, and their hash."""

    path: str
    rows_total: int
    rows_used: int
    rows: int | None  # --rows as given (None: all)
    seed: int
    sha256: str


@dataclass(frozen=True)
class Measured:
    """One batch size of a stored baseline (as ``single.MeasureResult`` holds it)."""

    batch_size: int
    calls_per_block: int
    blocks: tuple[np.ndarray, ...]
    windows: tuple[int, ...]
    memory: Mapping[str, Any]


@dataclass(frozen=True)
class Baseline:
    path: str  # where it was read from ("" when just measured)
    created: str
    perfgate_version: str
    model: ModelReport
    data: DataIdentity
    fingerprint: Mapping[str, str]
    settings: Mapping[str, Any]  # threads, device, inputs, pad_value, time_budget_s, confidence, backend
    measured: tuple[Measured, ...]
    environment: Environment | None = None


def data_identity(path: str, rows: int | None, seed: int) -> DataIdentity:
    """The rows ``rows``/``seed`` select from ``path``, hashed column by column (names,
    types and values, in Arrow's IPC form), so that a comparison can refuse other data."""
    import pyarrow as pa

    dataset = ParquetDataset(path)
    selection = dataset.select_rows(rows, seed)
    table = dataset.read(list(dataset.column_names), selection).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    return DataIdentity(dataset.path, dataset.num_rows, selection.count, rows, seed, digest)


def fingerprint(environment: Environment, backend: BackendInfo) -> dict[str, str]:
    """What must match for two measurements of different days to be compared (see the module's doc)."""
    gpu = backend.details.get("gpu") or {}
    return {
        "cpu": environment.cpu,
        "cpus": f"{environment.usable_cpus} usable of {environment.logical_cpus}",
        "gpu": str(gpu.get("name") or "none"),
        "gpu driver": str(gpu.get("driver") or "none"),
        "cuda": str(backend.details.get("cuda_version") or "none"),
        "os": f"{environment.os} {environment.machine}",
        "python": environment.python,
        "framework": f"{backend.framework} {backend.framework_version}",
        "device": backend.device,
        "threads": str(backend.threads),
    }


def differences(baseline: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """'threads 2 (baseline) vs 1 (now)' for each key whose value differs."""
    keys = list(baseline) + [key for key in now if key not in baseline]
    return [f"{key} {baseline.get(key, 'unknown')!r} (baseline) vs {now.get(key, 'unknown')!r} (now)"
            for key in keys if baseline.get(key) != now.get(key)]  # fmt: skip


def write_baseline(baseline: Baseline, path: str | os.PathLike) -> None:
    from perfgate.report.files import write_atomically
    from perfgate.report.json_dicts import _plain  # a model written as a report writes it

    data = {
        "kind": KIND,
        "schema_version": BASELINE_SCHEMA_VERSION,
        "created": baseline.created,
        "tool": {"name": "perfgate", "version": baseline.perfgate_version},
        "model": _plain(baseline.model),
        "data": _plain(baseline.data),
        "fingerprint": dict(baseline.fingerprint),
        "settings": _plain(baseline.settings),
        "environment": _plain(baseline.environment),
        "measured": [
            {"batch_size": m.batch_size, "calls_per_block": m.calls_per_block, "windows": list(m.windows),
             "memory": _plain(m.memory), "blocks": [block.tolist() for block in m.blocks]}
            for m in baseline.measured
        ],  # fmt: skip
    }
    write_atomically(path, json.dumps(data, indent=1) + "\n")


def read_baseline(path: str | os.PathLike) -> Baseline:
    """A stored baseline; a file that is missing, not JSON, not a baseline, or of another
    schema version is a clear error naming it (--baseline)."""
    where = f"--baseline {os.fspath(path)!r}"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot read it as a baseline: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise UsageError(f"{where}: not a perfgate baseline (write one with 'perfgate run --model M --data D --save PATH')")
    version = data.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise UsageError(f"{where}: baseline schema_version {version!r} is not the one this perfgate reads "
                         f"({BASELINE_SCHEMA_VERSION}); save the baseline again with this perfgate")  # fmt: skip
    try:
        return _baseline_from(data, os.fspath(path))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where}: a damaged baseline ({type(exc).__name__}: {exc})") from None


def _baseline_from(data: Mapping[str, Any], path: str) -> Baseline:
    from perfgate.report.json_dicts import _build, _model_from  # read as a report reads them

    measured = tuple(
        Measured(int(item["batch_size"]), int(item["calls_per_block"]),
                 tuple(np.asarray(block, dtype=np.int64) for block in item["blocks"]),
                 tuple(int(window) for window in item["windows"]), dict(item.get("memory") or {}))
        for item in data["measured"]
    )  # fmt: skip
    if not measured or any(len(m.blocks) < 2 for m in measured):
        raise ValueError("it holds no measurement of at least 2 blocks")
    for m in measured:  # a zeroed or negated baseline once compared "inconclusive", exit 0: it is damaged
        if any(block.size == 0 or int(block.min()) <= 0 for block in m.blocks) or any(w <= 0 for w in m.windows):
            raise ValueError(f"batch {m.batch_size}: its samples are empty or hold zero or negative durations")
    return Baseline(
        path=path,
        created=str(data.get("created", "")),
        perfgate_version=str((data.get("tool") or {}).get("version", "")),
        model=_model_from(data["model"]),
        data=DataIdentity(**data["data"]),
        fingerprint={str(key): str(value) for key, value in data["fingerprint"].items()},
        settings=dict(data["settings"]),
        measured=measured,
        environment=_build(Environment, data.get("environment")),
    )


def save_measurements(
    results: Sequence[Any], identity: DataIdentity, environment: Environment, settings: Mapping[str, Any]
) -> Baseline:
    """A Baseline of ``single.measure`` results, one per batch size, of the same model."""
    first = results[0]
    model = ModelReport(first.target, first.backend, first.inputs, 0.0, memory=dict(first.memory or {}))
    environment = Environment(**{**environment.__dict__, "frameworks": {first.backend.framework: first.backend.framework_version}})
    return Baseline(
        path="", created=now(), perfgate_version=__version__, model=model, data=identity,
        fingerprint=fingerprint(environment, first.backend), settings=dict(settings), environment=environment,
        measured=tuple(Measured(r.batch_size, r.calls_per_block, r.blocks, r.windows, dict(r.memory or {})) for r in results),
    )  # fmt: skip


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
