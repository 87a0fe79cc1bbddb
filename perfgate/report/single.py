"""One model's (or callable's) measurement as JSON, in the report's conventions: values
in ns, bytes and samples/s, raw samples block by block, checks with their verdict,
reason, value, interval and budget. The pytest plugin's ``--perfgate-json`` writes it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

from perfgate.report.json_dicts import summarize


def measurement_to_dict(result: Any) -> dict[str, Any]:
    """A ``perfgate.MeasureResult`` as plain JSON values."""
    return {
        "target": result.target,
        "kind": result.kind,
        "data": result.data,
        "batch_size": result.batch_size,
        "rows": result.rows,
        "settings": dict(result.settings),
        "backend": None if result.backend is None else asdict(result.backend),
        "inputs": [asdict(item) for item in result.inputs],
        "memory": None if result.memory is None else dict(result.memory),
        "run": {
            "measure_seconds": result.measure_seconds,
            "total_seconds": result.total_seconds,
            "stopped_because": result.stopped_because,
        },
        "warmup": asdict(result.warmup),
        "latency": summarize(result.samples),
        "throughput": result.throughput,
        "calls_per_block": result.calls_per_block,
        "samples_ns": [block.tolist() for block in result.blocks],
        "windows_ns": list(result.windows),
    }


def limit_checks_to_list(checks: Sequence[Any]) -> list[dict[str, Any]]:
    """``perfgate.judge.absolute.LimitCheck`` objects as plain JSON values."""
    return [
        {**asdict(check), "verdict": check.verdict.value, "ci": None if check.ci is None else list(check.ci)}
        for check in checks
    ]
