"""perfgate: a CI performance-regression gate for ML models.

It times a candidate and a reference model in the same run, interleaved, decides on a
confidence interval of their ratio against a budget, and says pass, fail or
inconclusive with its evidence. ``import perfgate`` imports no ML framework: each model
runs in a worker process that imports only its own. The names below are imported when
first used, so that a worker process starts without the parent's machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

# the one place the version is written: pyproject.toml reads it (dynamic) when a package is built
__version__ = "0.1.0"

_EXPORTS = {
    "Budget": "perfgate.judge.budgets",
    "Metric": "perfgate.judge.budgets",
    "build_budgets": "perfgate.judge.budgets",
    "parse_budget": "perfgate.judge.budgets",
    "CompareConfig": "perfgate.config",
    "calibrate": "perfgate.engine.calibration",
    "compare": "perfgate.engine.pipeline",
    "error_report": "perfgate.engine.pipeline",
    "run_comparison": "perfgate.engine.pipeline",
    "judge_again": "perfgate.judge.rejudge",
    "measure": "perfgate.engine.single",
    "MeasureResult": "perfgate.engine.single",
    "GenerationResult": "perfgate.engine.single_generation",
    "Family": "perfgate.metrics",
    "register_family": "perfgate.metrics",
    "BackendUnavailableError": "perfgate.errors",
    "BudgetError": "perfgate.errors",
    "ColumnMappingError": "perfgate.errors",
    "DataError": "perfgate.errors",
    "InputCastError": "perfgate.errors",
    "ModelLoadError": "perfgate.errors",
    "PerfgateError": "perfgate.errors",
    "PerfgateRuntimeError": "perfgate.errors",
    "UsageError": "perfgate.errors",
    "WorkerError": "perfgate.errors",
    "Check": "perfgate.results",
    "Report": "perfgate.results",
    "Verdict": "perfgate.results",
    "read_report": "perfgate.report.json",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
