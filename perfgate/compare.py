"""compare(): the one engine behind the CLI (and every other face).

Parquet -> rows -> one worker per model -> inputs -> cold starts -> interleaved
measurement (latency blocks, throughput windows, load episodes) -> memory -> checks ->
verdict -> Report. Errors are raised as PerfgateError subclasses; ``error_report`` turns
one into a Report with verdict "error" for the faces that must still write one.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from perfgate import __version__
from perfgate.backends import require_framework, resolve_backend_name
from perfgate.backends.base import BackendOptions, check_device
from perfgate.budgets import Budget, build_budgets, parse_memory_size
from perfgate.checks import DEFAULT_MEMORY_FLOOR, Evaluation, Observations, evaluate, min_samples, where, with_mann_whitney
from perfgate.dataset import ParquetDataset, RowSelection
from perfgate.environment import capture
from perfgate.errors import PerfgateError, UsageError
from perfgate.formatting import format_change
from perfgate.inputs import PreparedInput, build_batches, check_input_names, parse_input_options, resolve_bindings
from perfgate.results import (
    ColdStartRecord,
    DataReport,
    ErrorInfo,
    LoadScenario,
    ModelReport,
    Report,
    RunSummary,
    Settings,
    Stages,
    Verdict,
)
from perfgate.runner import SIDES, Measurement, MeasurementPlan, measure
from perfgate.sizes import analyze, size_lookup
from perfgate.stats import drift_between_blocks
from perfgate.worker import LOAD_TIMEOUT_S, SETUP_TIMEOUT_S, LoadRequest, ModelInfo, SubprocessWorker, worker_cpus

NOISY_DRIFT = 0.10
SATURATED_UTILIZATION = 0.97  # an M/D/1 queue 97 % busy already waits ~16 service times on average
DEFAULT_COLD_STARTS = 3

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
    cold_starts: int = DEFAULT_COLD_STARTS
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    size_column: str | None = None
    memory_floor: float = DEFAULT_MEMORY_FLOOR  # bytes

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
        if not isinstance(self.cold_starts, int) or self.cold_starts < 0:
            raise UsageError(f"--cold-starts must be 0 or more, got {self.cold_starts!r}")
        if any(not isinstance(n, int) or n < 1 for n in self.concurrency):
            raise UsageError(f"--concurrency must be at least 1, got {list(self.concurrency)}")
        if any(not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0) for r in self.rates):
            raise UsageError(f"--rate must be a positive number of requests per second, got {list(self.rates)}")
        if not self.budgets:
            raise UsageError("at least one budget is needed")
        self._check_budgets_have_measurements()

    def _check_budgets_have_measurements(self) -> None:
        for budget in self.budgets:
            metric = budget.metric
            if metric.family == "throughput" and metric.batch_size is not None and metric.batch_size not in self.batch_sizes:
                raise UsageError(f"budget {budget}: batch {metric.batch_size} is not measured (add --batch-size {metric.batch_size})")
            if metric.family == "load" and not self.loads:
                raise UsageError(f"budget {budget}: latency under load needs --concurrency N or --rate QPS")
            if metric.family == "latency_slope" and self.size_column is None:
                raise UsageError(f"budget {budget}: a latency slope needs --size-column COL")
            if metric.family == "cold_start" and self.cold_starts < 2:
                raise UsageError(f"budget {budget}: a cold-start budget needs --cold-starts 2 or more")
            if metric.name == "memory.gpu_peak" and not self.device.startswith("cuda"):
                raise UsageError(f"budget {budget}: GPU memory needs --device cuda")

    @property
    def loads(self) -> tuple[LoadScenario, ...]:
        return tuple(LoadScenario("closed", clients=n) for n in self.concurrency) + tuple(
            LoadScenario("open", rate=float(r)) for r in self.rates
        )

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
        memory_floor: str | float | None = None,
        concurrency: Iterable[int] = (),
        rates: Iterable[float] = (),
        size_column: str | None = None,
        **options: Any,
    ) -> "CompareConfig":
        """Parse the options as a user writes them (``'features=f*'``, ``'latency.p95:+10%'``,
        ``memory_floor='8MiB'``); the other options are CompareConfig's fields."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
        parsed_inputs = dict(inputs) if isinstance(inputs, Mapping) else parse_input_options(inputs)
        concurrency, rates = tuple(concurrency), tuple(rates)
        floor = DEFAULT_MEMORY_FLOOR if memory_floor is None else parse_memory_size(memory_floor, option="--memory-floor")
        return cls(
            reference=str(reference),
            candidate=str(candidate),
            data=str(data),
            inputs=parsed_inputs,
            batch_sizes=tuple(batch_sizes),
            budgets=build_budgets(max_latency_increase, budgets, load=bool(concurrency or rates), sizes=size_column is not None),
            concurrency=concurrency,
            rates=rates,
            size_column=size_column,
            memory_floor=floor,
            **options,
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
            cold_starts=self.cold_starts,
            loads=tuple(scenario.label for scenario in self.loads),
            size_column=self.size_column,
            memory_floor=self.memory_floor,
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
    cpus = worker_cpus(config.threads)

    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        workers = {}
        for side in SIDES:
            workers[side] = factory(side, log_dir)
            cleanup.callback(workers[side].close)
            workers[side].start(config.threads, cpus)
        say(
            f"loading models ({backends['reference']} / {backends['candidate']} on {config.device}, "
            f"{config.threads} thread(s) each)"
        )
        requests = {side: LoadRequest(backends[side], paths[side], config.backend_options(), tuple(sys.path)) for side in SIDES}
        infos = _load(workers, requests)
        fed = _feed(workers, infos, dataset, selection, config, paths, clock)
        cold_starts = _cold_starts(factory, log_dir, requests, fed.first_feeds, config, cpus, clock, say)
        say(f"data {config.data}: {selection.count} of {dataset.num_rows} rows; measuring for up to {config.time_budget_s:g} s")
        observed = Observations(
            series=(), cold_starts={side: tuple(r.total_seconds for r in records) for side, records in cold_starts.items()},
            sizes=fed.sizes, size_column=config.size_column, memory_floor=config.memory_floor,
        )  # fmt: skip
        measurement, stopped = _measure(workers, fed.batches, config, observed, clock, say, plan_overrides)
        memory = {side: {**_load_memory(infos[side]), **workers[side].call("memory", timeout=SETUP_TIMEOUT_S)} for side in SIDES}

    observed = replace(observed, series=measurement.series, loads=measurement.loads, memory=memory)
    alpha = 1.0 - config.confidence
    evaluation = evaluate(observed, config.budgets, alpha=alpha, look=measurement.look, seed=config.seed)
    evaluation = with_mann_whitney(evaluation, observed, alpha)
    reason = evaluation.reason
    if evaluation.verdict is Verdict.INCONCLUSIVE:
        reason += f"; after {measurement.measure_seconds:.1f} s of measuring (--time-budget {config.time_budget_s:g})"
    models = {
        side: ModelReport(
            paths[side], infos[side].backend, fed.inputs[side], infos[side].load_seconds, infos[side].cpus,
            memory[side], infos[side].setup_seconds,
        )  # fmt: skip
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
        loads=measurement.loads,
        cold_starts=cold_starts,
        stages=_stages(fed, measurement, selection.count),
        sizes=tuple(analyze(s, fed.sizes[s.batch_size], config.size_column) for s in measurement.series if s.batch_size in fed.sizes),
        warnings=fed.warnings + _warnings(measurement, memory),
        perfgate_version=__version__,
        created=_now(),
    )


@dataclass(frozen=True)
class _Fed:
    inputs: Mapping[str, tuple[PreparedInput, ...]]  # per model
    batches: Mapping[int, int]  # batch size -> how many batches each worker holds
    warnings: tuple[str, ...]
    first_feeds: Mapping[str, dict]  # per model: the first batch of the first batch size (for cold starts)
    read_seconds: float  # reading the chosen rows from Parquet, once for both models
    tensor_seconds: Mapping[tuple[str, int], float]  # (model, batch size) -> building its batches
    backend_seconds: Mapping[tuple[str, int], float]  # (model, batch size) -> the backend's prepare
    sizes: Mapping[int, np.ndarray] = field(default_factory=dict)


def _load(workers: Mapping[str, Any], requests: Mapping[str, LoadRequest]) -> dict[str, ModelInfo]:
    """Load both models at once, each in its worker."""
    for side in SIDES:
        workers[side].begin("load", requests[side])
    return {side: workers[side].finish("load", LOAD_TIMEOUT_S) for side in SIDES}


def _feed(
    workers: Mapping[str, Any],
    infos: Mapping[str, ModelInfo],
    dataset: ParquetDataset,
    selection: RowSelection,
    config: CompareConfig,
    paths: Mapping[str, str],
    clock: Callable[[], float],
) -> _Fed:
    """Map columns to each model's inputs, read the rows once, send each worker its batches."""
    check_input_names(config.inputs, {side: infos[side].inputs for side in SIDES})
    labels = {side: f"{side} {paths[side]}" for side in SIDES}
    bindings = {side: resolve_bindings(infos[side].inputs, dataset.schema, config.inputs, model=labels[side]) for side in SIDES}
    columns = [name for side in SIDES for binding in bindings[side] for name in binding.columns]
    began = clock()
    table = dataset.read(columns + ([config.size_column] if config.size_column in dataset.column_names else []), selection)
    read_seconds = clock() - began
    inputs: dict[str, tuple[PreparedInput, ...]] = {}
    batches: dict[int, int] = {}
    tensor_seconds: dict[tuple[str, int], float] = {}
    backend_seconds: dict[tuple[str, int], float] = {}
    first_feeds: dict[str, dict] = {}
    warnings = []
    if config.rows is not None and config.rows > dataset.num_rows:
        warnings.append(f"--rows {config.rows} is more than the {dataset.num_rows} rows in the data; all rows are used")
    for batch_size in config.batch_sizes:
        for position, side in enumerate(SIDES):
            build = functools.partial(
                build_batches, table, bindings[side], infos[side].inputs, batch_size, pad_value=config.pad_value, model=labels[side]
            )
            if position == 0:
                # Untimed: the first build of a batch size pays for fresh memory pages, which the
                # builds after it reuse, so timing it would charge the reference for going first.
                build()
            began = clock()
            prepared = build()
            tensor_seconds[(side, batch_size)] = clock() - began
            backend_seconds[(side, batch_size)] = workers[side].call(
                "set_feeds", batch_size, list(prepared.feeds), timeout=SETUP_TIMEOUT_S
            )
            inputs.setdefault(side, prepared.inputs)
            first_feeds.setdefault(side, prepared.feeds[0])
        batches[batch_size] = len(prepared.feeds)
        if prepared.dropped_rows:
            warnings.append(f"batch {batch_size}: the last {prepared.dropped_rows} rows do not fill a batch and are not used")
    sizes = size_lookup(table, config.size_column, config.batch_sizes)
    return _Fed(inputs, batches, tuple(warnings), first_feeds, read_seconds, tensor_seconds, backend_seconds, sizes)


def _cold_starts(
    factory: WorkerFactory,
    log_dir: str,
    requests: Mapping[str, LoadRequest],
    first_feeds: Mapping[str, dict],
    config: CompareConfig,
    cpus: tuple[int, ...] | None,
    clock: Callable[[], float],
    say: Progress,
) -> dict[str, tuple[ColdStartRecord, ...]]:
    """``config.cold_starts`` fresh workers per model, in ABBA order: process start to the end
    of the first inference, each timed by this process's clock."""
    records: dict[str, list[ColdStartRecord]] = {side: [] for side in SIDES}
    if config.cold_starts == 0:
        return {}
    for index in range(config.cold_starts):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for side in order:
            worker = factory(f"{side}-cold-start-{index + 1}", log_dir)
            began = clock()
            try:
                worker.start(config.threads, cpus)
                phases = worker.call("cold_start", requests[side], first_feeds[side], timeout=LOAD_TIMEOUT_S)
                ended = clock()
            finally:
                worker.close()
            records[side].append(
                ColdStartRecord(ended - began, phases.setup_seconds, phases.load_seconds, phases.prepare_seconds, phases.first_call_seconds)
            )
    say(
        "cold start (process start to first inference, mean of "
        f"{config.cold_starts}): reference {np.mean([r.total_seconds for r in records['reference']]):.2f} s, "
        f"candidate {np.mean([r.total_seconds for r in records['candidate']]):.2f} s"
    )
    return {side: tuple(values) for side, values in records.items()}


def _measure(
    workers: Mapping[str, Any],
    batches: Mapping[int, int],
    config: CompareConfig,
    observed: Observations,
    clock: Callable[[], float],
    say: Progress,
    plan_overrides: Mapping[str, Any] | None,
) -> tuple[Measurement, str]:
    """Measure until every gated check is decided (memory aside: it is read at the end)."""
    alpha = 1.0 - config.confidence

    def on_look(measurement: Measurement) -> bool:
        looked = replace(observed, series=measurement.series, loads=measurement.loads)
        evaluation = evaluate(looked, config.budgets, alpha=alpha, look=measurement.look, seed=config.seed, gated_only=True)
        say(_look_line(measurement, evaluation))
        return evaluation.decided

    plan = MeasurementPlan(
        batch_sizes=config.batch_sizes,
        time_budget_s=float(config.time_budget_s),
        seed=config.seed,
        min_samples=min_samples(config.budgets),
        loads=config.loads,
        **(plan_overrides or {}),
    )
    return measure(workers, plan, batches, on_look, clock=clock, progress=say)


def _load_memory(info: ModelInfo) -> dict[str, Any]:
    return {"load_rss": info.load_rss, "framework_rss": info.framework_rss}


def _stages(fed: _Fed, measurement: Measurement, rows: int) -> tuple[Stages, ...]:
    stages = []
    for series in measurement.series:
        count = fed.batches[series.batch_size]
        batch = series.batch_size
        stages.append(
            Stages(
                batch_size=batch,
                read=fed.read_seconds * batch / max(rows, 1),
                tensors={side: fed.tensor_seconds[(side, batch)] / count for side in SIDES},
                backend={side: fed.backend_seconds[(side, batch)] / count for side in SIDES},
                model={side: float(np.median(series.samples(side))) / 1e9 for side in SIDES},
            )
        )
    return tuple(stages)


def _warnings(measurement: Measurement, memory: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    warnings = []
    for series in measurement.series:
        drift = drift_between_blocks(series.reference)
        if drift is not None and drift > NOISY_DRIFT:
            warnings.append(
                f"batch {series.batch_size}: the reference's latency drifted by about {drift:.0%} between "
                f"blocks, beyond its call-to-call spread; the machine is noisy, so decisions take longer"
            )
    for load in measurement.loads:
        if load.scenario.kind == "open":
            offered = load.scenario.rate * load.batch_size
            for side in SIDES:
                achieved, utilization = load.throughput(side), load.offered_load(side)
                # Achieved throughput alone misses saturation: in a short episode a growing backlog
                # hardly lowers it, while the queue, and so every percentile, keeps growing.
                if achieved < 0.95 * offered or utilization > SATURATED_UTILIZATION:
                    warnings.append(
                        f"load {load.scenario.label}: the {side} needs {utilization:.0%} of the time to serve "
                        f"{offered:g} samples/s (it served {achieved:.0f}/s); at or past its capacity its queue grows "
                        f"with the episode, so its latencies under load grow with the episode's length"
                    )
    if any(readings.get("peak_includes_load") for readings in memory.values()):
        warnings.append("memory.peak_rss includes loading: the kernel did not let perfgate reset the peak after loading")
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


def _look_line(measurement: Measurement, evaluation: Evaluation) -> str:
    parts = []
    for check in evaluation.checks:
        if check.verdict is Verdict.INFO:
            continue
        if check.ci is None:
            parts.append(f"{where(check)} {check.verdict.value}")
        else:
            parts.append(
                f"{where(check)} {format_change(check.ratio, 1)} "
                f"[{format_change(check.ci[0], 1)}, {format_change(check.ci[1], 1)}] {check.verdict.value}"
            )
    pairs = sum(series.pairs for series in measurement.series)
    return f"look {measurement.look} ({pairs} block pairs, {measurement.measure_seconds:.1f} s): " + "; ".join(parts)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
