"""compare(): the one engine behind every face. This module only sequences the steps:

    Parquet rows -> one worker per model (load both at once) -> feed -> outputs compared ->
    cold starts -> interleaved measurement until decided -> memory -> checks -> verdict -> Report

Errors are raised as PerfgateError subclasses; ``error_report`` turns one into a Report
with verdict "error" for the faces that must still write one.
"""

from __future__ import annotations

import contextlib
import datetime
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from perfgate import __version__
from perfgate.backends import model_file, require_framework, resolve_backend_name
from perfgate.checks import Evaluation, Observations, evaluate, min_samples, where, with_mann_whitney
from perfgate.cold_starts import WorkerFactory, run_cold_starts
from perfgate.config import CompareConfig
from perfgate.dataset import ParquetDataset
from perfgate.diagnostics import run_warnings
from perfgate.environment import capture
from perfgate.errors import Interrupted, PerfgateError
from perfgate.feed import feed, stages
from perfgate.formatting import format_change
from perfgate.noise import noise_levels
from perfgate.outputs import compare_outputs
from perfgate.results import SIDES, DataReport, ErrorInfo, ModelReport, Report, RunSummary, Verdict
from perfgate.runner import Measurement, MeasurementPlan, measure
from perfgate.sizes import analyze
from perfgate.worker.process import SubprocessWorker, Worker, worker_cpus
from perfgate.worker.protocol import LOAD_TIMEOUT_S, SETUP_TIMEOUT_S, LoadModel, LoadRequest, ModelInfo, ReadMemory

Progress = Callable[[str], None]


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
    requested = {"reference": config.reference_backend, "candidate": config.candidate_backend}
    paths = {side: model_file(getattr(config, side), requested[side]) for side in SIDES}
    backends = {side: resolve_backend_name(paths[side], requested[side]) for side in SIDES}
    for name in set(backends.values()):
        require_framework(name)  # before any process starts
    factory = worker_factory or (lambda role, log_dir: SubprocessWorker(role, log_dir))
    cpus = worker_cpus(config.threads)

    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        workers = {}
        starting = clock()
        for side in SIDES:
            workers[side] = factory(side, log_dir)
            cleanup.callback(workers[side].close)
            workers[side].start(config.threads, cpus)
        say(f"loading models ({backends['reference']} / {backends['candidate']} on {config.device}, {config.threads} thread(s) each)")
        requests = {side: LoadRequest(backends[side], paths[side], config.backend_options(), tuple(sys.path)) for side in SIDES}
        infos = _load(workers, requests)
        started_s = clock() - starting
        fed = feed(workers, infos, dataset, selection, config, paths, clock)
        # before measuring: models whose answers cannot be compared, or a broken reference, fail fast
        outputs = compare_outputs(workers, fed.batches, config, selection, paths, say)
        cold_starts = run_cold_starts(
            config.cold_starts, factory, log_dir, requests, fed.first_feeds, config.threads, cpus, clock, say,
            call_timeout_s=config.call_timeout_s,
            started_s=started_s,
        )  # fmt: skip
        say(f"data {config.data}: {selection.count} of {dataset.num_rows} rows; measuring for up to {config.time_budget_s:g} s")
        observed = Observations(
            series=(), cold_starts={side: tuple(r.total_seconds for r in records) for side, records in cold_starts.items()},
            sizes=fed.sizes, size_column=config.size_column, memory_floor=config.memory_floor, outputs=outputs,
        )  # fmt: skip
        measurement, stopped = _measure(workers, fed.batches, config, observed, clock, say, plan_overrides)
        memory = {side: {**_load_memory(infos[side]), **workers[side].call(ReadMemory(), timeout=SETUP_TIMEOUT_S)} for side in SIDES}

    observed = replace(observed, series=measurement.series, loads=measurement.loads, memory=memory)
    evaluation = with_mann_whitney(
        evaluate(observed, config.budgets, alpha=1.0 - config.confidence, look=measurement.look, seed=config.seed),
        observed, 1.0 - config.confidence,
    )  # fmt: skip
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
        stages=stages(fed, measurement.series, selection.count),
        sizes=tuple(analyze(s, fed.sizes[s.batch_size], config.size_column) for s in measurement.series if s.batch_size in fed.sizes),
        outputs=outputs,
        warnings=config.warnings()
        + fed.warnings
        + run_warnings(measurement.series, measurement.loads, memory, measurement.rss_after_blocks, config.memory_floor),
        noise=noise_levels(measurement.series),
        perfgate_version=__version__,
        created=_now(),
    )


def _load(workers: Mapping[str, Worker], requests: Mapping[str, LoadRequest]) -> dict[str, ModelInfo]:
    """Load both models at once, each in its worker."""
    calls = {side: LoadModel(requests[side]) for side in SIDES}
    for side in SIDES:
        workers[side].begin(calls[side])
    return {side: workers[side].finish(calls[side], LOAD_TIMEOUT_S) for side in SIDES}


def _measure(
    workers: Mapping[str, Worker],
    batches: Mapping[int, int],
    config: CompareConfig,
    observed: Observations,
    clock: Callable[[], float],
    say: Progress,
    plan_overrides: Mapping[str, Any] | None,
) -> tuple[Measurement, str]:
    """Measure until every gated check is decided (memory aside: it is read at the end)."""

    def on_look(measurement: Measurement) -> bool:
        looked = replace(observed, series=measurement.series, loads=measurement.loads)
        evaluation = evaluate(
            looked, config.budgets, alpha=1.0 - config.confidence, look=measurement.look, seed=config.seed, gated_only=True
        )
        say(_look_line(measurement, evaluation))
        return evaluation.decided

    plan = MeasurementPlan(
        batch_sizes=config.batch_sizes,
        time_budget_s=float(config.time_budget_s),
        seed=config.seed,
        min_samples=min_samples(config.budgets),
        loads=config.loads,
        call_timeout_s=config.call_timeout_s,
        **(plan_overrides or {}),
    )
    return measure(workers, plan, batches, on_look, clock=clock, progress=say)


def _load_memory(info: ModelInfo) -> dict[str, Any]:
    return {"load_rss": info.load_rss, "framework_rss": info.framework_rss}


def error_report(error: BaseException, config: CompareConfig | None = None, *, message: str | None = None) -> Report:
    """A Report with verdict "error" for a comparison that could not be carried out
    (``message``: the error as the face showed it, where it differs from the API's words)."""
    known = isinstance(error, (PerfgateError, Interrupted))
    if message is None:
        message = error.message if known else f"internal error: {type(error).__name__}: {error}"
    exit_code = error.exit_code if known else 3
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
