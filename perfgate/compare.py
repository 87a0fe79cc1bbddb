"""compare(): the one engine behind the CLI (and every other face).

Parquet -> rows -> one worker per model -> inputs -> interleaved measurement -> checks ->
verdict -> Report. Errors are raised as PerfgateError subclasses; ``error_report`` turns
one into a Report with verdict "error" for the faces that must still write one.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from perfgate import __version__
from perfgate.backends import require_framework, resolve_backend_name
from perfgate.backends.base import BackendOptions, check_device
from perfgate.budgets import Budget, build_budgets
from perfgate.checks import Evaluation, evaluate, min_samples
from perfgate.dataset import ParquetDataset, RowSelection
from perfgate.environment import capture
from perfgate.errors import PerfgateError, UsageError
from perfgate.formatting import format_change
from perfgate.inputs import PreparedInput, build_batches, check_input_names, parse_input_options, resolve_bindings
from perfgate.results import (
    DataReport,
    ErrorInfo,
    ModelReport,
    Report,
    RunSummary,
    Settings,
    Verdict,
)
from perfgate.runner import SIDES, Measurement, MeasurementPlan, measure
from perfgate.stats import drift_between_blocks, mann_whitney
from perfgate.worker import LOAD_TIMEOUT_S, SETUP_TIMEOUT_S, LoadRequest, ModelInfo, SubprocessWorker, worker_cpus

NOISY_DRIFT = 0.10

Progress = Callable[[str], None]
WorkerFactory = Callable[[str, str], Any]  # (role, log_dir) -> worker


@dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison needs, validated. Build it with ``from_options``."""

    reference: str
    candidate: str
    data: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    batch_sizes: tuple[int, ...] = (1,)
    budgets: tuple[Budget, ...] = field(default_factory=build_budgets)
    time_budget_s: float = 60.0
    seed: int = 0
    threads: int = 1
    rows: int | None = None
    pad_value: float = 0.0
    confidence: float = 0.95
    reference_backend: str | None = None
    candidate_backend: str | None = None
    device: str = "cpu"
    include_transfers: bool = False
    signature: str | None = None

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.include_transfers and not self.device.startswith("cuda"):
            raise UsageError("--include-transfers times host<->device copies, so it needs --device cuda")
        if not self.batch_sizes or any(not isinstance(b, int) or b < 1 for b in self.batch_sizes):
            raise UsageError(f"batch sizes must be whole numbers of at least 1, got {list(self.batch_sizes)}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise UsageError(f"a batch size is given twice: {list(self.batch_sizes)}")
        if not (isinstance(self.time_budget_s, (int, float)) and math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise UsageError(f"--time-budget must be a positive number of seconds, got {self.time_budget_s!r}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads!r}")
        if self.rows is not None and (not isinstance(self.rows, int) or self.rows < 1):
            raise UsageError(f"--rows must be at least 1, got {self.rows!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"--confidence must be at least 0.5 and below 1, got {self.confidence!r}")
        if not self.budgets:
            raise UsageError("at least one budget is needed")

    @classmethod
    def from_options(
        cls,
        reference: str,
        candidate: str,
        data: str,
        *,
        inputs: Mapping[str, str] | Iterable[str] = (),
        batch_sizes: Iterable[int] = (1,),
        max_latency_increase: str | float | None = None,
        budgets: Iterable[str | Budget] = (),
        time_budget_s: float = 60.0,
        seed: int = 0,
        threads: int = 1,
        rows: int | None = None,
        pad_value: float = 0.0,
        confidence: float = 0.95,
        reference_backend: str | None = None,
        candidate_backend: str | None = None,
        device: str = "cpu",
        include_transfers: bool = False,
        signature: str | None = None,
    ) -> "CompareConfig":
        """Parse the options as a user writes them (``'features=f*'``, ``'latency.p95:+10%'``)."""
        parsed_inputs = dict(inputs) if isinstance(inputs, Mapping) else parse_input_options(inputs)
        return cls(
            reference=str(reference),
            candidate=str(candidate),
            data=str(data),
            inputs=parsed_inputs,
            batch_sizes=tuple(batch_sizes),
            budgets=build_budgets(max_latency_increase, budgets),
            time_budget_s=time_budget_s,
            seed=seed,
            threads=threads,
            rows=rows,
            pad_value=pad_value,
            confidence=confidence,
            reference_backend=reference_backend,
            candidate_backend=candidate_backend,
            device=device,
            include_transfers=include_transfers,
            signature=signature,
        )

    def backend_options(self) -> BackendOptions:
        return BackendOptions(self.device, self.threads, self.include_transfers, self.signature)

    def settings(self) -> Settings:
        return Settings(
            batch_sizes=self.batch_sizes,
            budgets=tuple(str(budget) for budget in self.budgets),
            time_budget_s=float(self.time_budget_s),
            confidence=self.confidence,
            seed=self.seed,
            threads=self.threads,
            rows=self.rows,
            pad_value=self.pad_value,
            inputs=dict(self.inputs),
            device=self.device,
            include_transfers=self.include_transfers,
            signature=self.signature,
        )


def compare(reference: str, candidate: str, data: str, *, progress: Progress | None = None, **options: Any) -> Report:
    """Compare two models on a Parquet dataset; see CompareConfig.from_options for the options.

    >>> report = compare("ref.onnx", "cand.onnx", "data.parquet", inputs=["features=f*"])
    >>> report.verdict
    <Verdict.PASS: 'pass'>
    """
    return run_comparison(CompareConfig.from_options(reference, candidate, data, **options), progress=progress)


def run_comparison(
    config: CompareConfig,
    *,
    progress: Progress | None = None,
    worker_factory: WorkerFactory | None = None,
    clock: Callable[[], float] = time.monotonic,
    plan_overrides: Mapping[str, Any] | None = None,
) -> Report:
    """Run one comparison. ``worker_factory``, ``clock`` and ``plan_overrides`` exist for
    tests and benchmarks (fake backends in-process, virtual time, smaller blocks)."""
    say = progress or (lambda message: None)
    started = clock()
    environment = capture()
    dataset = ParquetDataset(config.data)
    selection = dataset.select_rows(config.rows, config.seed)
    paths = {"reference": config.reference, "candidate": config.candidate}
    requested = {"reference": config.reference_backend, "candidate": config.candidate_backend}
    backends = {side: resolve_backend_name(paths[side], requested[side]) for side in SIDES}
    for name in set(backends.values()):
        require_framework(name)  # before any process starts
    factory = worker_factory or (lambda role, log_dir: SubprocessWorker(role, log_dir))

    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        workers = {}
        cpus = worker_cpus(config.threads)
        for side in SIDES:
            workers[side] = factory(side, log_dir)
            cleanup.callback(workers[side].close)
            workers[side].start(config.threads, cpus)
        say(
            f"loading models ({backends['reference']} / {backends['candidate']} on {config.device}, "
            f"{config.threads} thread(s) each)"
        )
        infos = _load(workers, backends, paths, config.backend_options())
        fed = _feed(workers, infos, dataset, selection, config, paths)
        say(f"data {config.data}: {selection.count} of {dataset.num_rows} rows; measuring for up to {config.time_budget_s:g} s")
        measurement, stopped, evaluation = _measure(workers, fed.batches, config, clock, say, plan_overrides)
        peaks = {side: workers[side].call("peak_memory", timeout=SETUP_TIMEOUT_S) for side in SIDES}

    reason = evaluation.reason
    if evaluation.verdict is Verdict.INCONCLUSIVE:
        reason += f"; after {measurement.measure_seconds:.1f} s of measuring (--time-budget {config.time_budget_s:g})"
    models = {
        side: ModelReport(
            paths[side], infos[side].backend, fed.inputs[side], infos[side].load_seconds, infos[side].cpus, peaks[side]
        )
        for side in SIDES
    }
    return Report(
        verdict=evaluation.verdict,
        reason=reason,
        reference=models["reference"],
        candidate=models["candidate"],
        data=DataReport(config.data, dataset.num_rows, selection.count, config.seed),
        settings=config.settings(),
        environment=replace(
            environment, frameworks={infos[side].backend.framework: infos[side].backend.framework_version for side in SIDES}
        ),
        run=RunSummary(measurement.look, measurement.measure_seconds, clock() - started, stopped),
        checks=evaluation.checks,
        series=measurement.series,
        warnings=fed.warnings + _drift_warnings(measurement),
        perfgate_version=__version__,
        created=_now(),
    )


@dataclass(frozen=True)
class _Fed:
    inputs: Mapping[str, tuple[PreparedInput, ...]]  # per model
    batches: Mapping[int, int]  # batch size -> how many batches each worker holds
    warnings: tuple[str, ...]


def _load(
    workers: Mapping[str, Any], backends: Mapping[str, str], paths: Mapping[str, str], options: BackendOptions
) -> dict[str, ModelInfo]:
    """Load both models at once, each in its worker."""
    for side in SIDES:
        workers[side].begin("load", LoadRequest(backends[side], paths[side], options, tuple(sys.path)))
    return {side: workers[side].finish("load", LOAD_TIMEOUT_S) for side in SIDES}


def _feed(
    workers: Mapping[str, Any],
    infos: Mapping[str, ModelInfo],
    dataset: ParquetDataset,
    selection: RowSelection,
    config: CompareConfig,
    paths: Mapping[str, str],
) -> _Fed:
    """Map columns to each model's inputs, read the rows once, send each worker its batches."""
    check_input_names(config.inputs, {side: infos[side].inputs for side in SIDES})
    labels = {side: f"{side} {paths[side]}" for side in SIDES}
    bindings = {side: resolve_bindings(infos[side].inputs, dataset.schema, config.inputs, model=labels[side]) for side in SIDES}
    table = dataset.read([name for side in SIDES for binding in bindings[side] for name in binding.columns], selection)
    inputs: dict[str, tuple[PreparedInput, ...]] = {}
    batches: dict[int, int] = {}
    warnings = []
    if config.rows is not None and config.rows > dataset.num_rows:
        warnings.append(f"--rows {config.rows} is more than the {dataset.num_rows} rows in the data; all rows are used")
    for batch_size in config.batch_sizes:
        for side in SIDES:
            prepared = build_batches(
                table, bindings[side], infos[side].inputs, batch_size, pad_value=config.pad_value, model=labels[side]
            )
            workers[side].call("set_feeds", batch_size, list(prepared.feeds), timeout=SETUP_TIMEOUT_S)
            inputs.setdefault(side, prepared.inputs)
        batches[batch_size] = len(prepared.feeds)
        if prepared.dropped_rows:
            warnings.append(f"batch {batch_size}: the last {prepared.dropped_rows} rows do not fill a batch and are not used")
    return _Fed(inputs, batches, tuple(warnings))


def _measure(
    workers: Mapping[str, Any],
    batches: Mapping[int, int],
    config: CompareConfig,
    clock: Callable[[], float],
    say: Progress,
    plan_overrides: Mapping[str, Any] | None,
) -> tuple[Measurement, str, Evaluation]:
    """Measure until decided or out of time; the last look's evaluation, with Mann-Whitney added."""
    alpha = 1.0 - config.confidence
    looks: list[Evaluation] = []

    def on_look(measurement: Measurement) -> bool:
        evaluation = evaluate(measurement.series, config.budgets, alpha=alpha, look=measurement.look, seed=config.seed)
        looks.append(evaluation)
        say(_look_line(measurement, evaluation))
        return evaluation.decided

    plan = MeasurementPlan(
        batch_sizes=config.batch_sizes,
        time_budget_s=float(config.time_budget_s),
        seed=config.seed,
        min_samples=min_samples(config.budgets),
        **(plan_overrides or {}),
    )
    measurement, stopped = measure(workers, plan, batches, on_look, clock=clock, progress=say)
    return measurement, stopped, _with_mann_whitney(looks[-1], measurement, alpha)


def _drift_warnings(measurement: Measurement) -> tuple[str, ...]:
    warnings = []
    for series in measurement.series:
        drift = drift_between_blocks(series.reference)
        if drift is not None and drift > NOISY_DRIFT:
            warnings.append(
                f"batch {series.batch_size}: the reference's latency drifted by about {drift:.0%} between "
                f"blocks, beyond its call-to-call spread; the machine is noisy, so decisions take longer"
            )
    return tuple(warnings)


def error_report(error: BaseException, config: CompareConfig | None = None) -> Report:
    """A Report with verdict "error" for a comparison that could not be carried out."""
    message = error.message if isinstance(error, PerfgateError) else f"internal error: {type(error).__name__}: {error}"
    exit_code = error.exit_code if isinstance(error, PerfgateError) else 3
    return Report(
        verdict=Verdict.ERROR,
        reason=message,
        reference=None,
        candidate=None,
        data=None,
        settings=config.settings() if config else None,
        environment=capture(),
        run=None,
        error=ErrorInfo(type(error).__name__, message, exit_code),
        perfgate_version=__version__,
        created=_now(),
    )


def _with_mann_whitney(evaluation: Evaluation, measurement: Measurement, alpha: float) -> Evaluation:
    tests = {
        series.batch_size: mann_whitney(series.samples("reference"), series.samples("candidate"), alpha)
        for series in measurement.series
    }
    checks = tuple(
        replace(check, mann_whitney_p=tests[check.batch_size].p_value, mann_whitney_note=tests[check.batch_size].note)
        for check in evaluation.checks
    )
    return replace(evaluation, checks=checks)


def _look_line(measurement: Measurement, evaluation: Evaluation) -> str:
    parts = []
    for check in evaluation.checks:
        if check.ci is None:
            parts.append(f"{check.metric}@{check.batch_size} {check.verdict.value}")
        else:
            parts.append(
                f"{check.metric}@{check.batch_size} {format_change(check.ratio, 1)} "
                f"[{format_change(check.ci[0], 1)}, {format_change(check.ci[1], 1)}] {check.verdict.value}"
            )
    pairs = sum(series.pairs for series in measurement.series)
    return f"look {measurement.look} ({pairs} block pairs, {measurement.measure_seconds:.1f} s): " + "; ".join(parts)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
