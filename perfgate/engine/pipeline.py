"""compare(): the one engine behind every face. This module only sequences the steps:

    Parquet rows -> one worker per model (load both at once) -> feed -> outputs compared ->
    cold starts -> interleaved measurement until decided -> memory -> checks -> verdict -> Report

Errors are raised as PerfgateError subclasses; ``error_report`` turns one into a Report
with verdict "error" for the faces that must still write one.
"""

from __future__ import annotations

import contextlib
import datetime
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from perfgate import __version__
from perfgate.backends import model_file, require_model, resolve_backend_name
from perfgate.backends.headers import expand_headers
from perfgate.judge.budgets import Budget
from perfgate.judge.checks import Evaluation, Observations, evaluate, overall, where, with_mann_whitney
from perfgate.engine.cold_starts import WorkerFactory, own_cold_starts, run_cold_starts
from perfgate.config import CompareConfig
from perfgate.data.data_sources import open_sides
from perfgate.judge.diagnostics import run_warnings
from perfgate.engine.environment import capture
from perfgate.errors import Interrupted, PerfgateError
from perfgate.engine.feed import feed, stages
from perfgate.engine.generation import (
    GenerationPlan, Prepared, hardware_warnings, measure_generations, set_prompts,
)  # fmt: skip
from perfgate.data.prompts import describe_prompts, read_prompts
from perfgate.formatting import format_change, format_seconds
from perfgate.metrics import family_of
from perfgate.metrics.memory import with_instances
from perfgate.judge.noise import noise_levels
from perfgate.engine.outputs import compare_outputs
from perfgate.results import SIDES, ErrorInfo, ModelReport, Report, RunSummary, Verdict
from perfgate.engine.pacing import pace_budgets
from perfgate.engine.runner import Measurement, MeasurementPlan, Pace, measure_interleaved
from perfgate.engine.progress import Status, deciding_check, show_status
from perfgate.judge.resolution import Words, explain_unresolved, flag_words, python_words
from perfgate.sizes import analyze
from perfgate.specs import ModelSpec
from perfgate.worker.interpreter import (
    Interpreter, check_interpreters, environment_warnings, framework_versions, python_of, report_pythons, worker_sys_path,
)  # fmt: skip
from perfgate.worker.process import SubprocessWorker, Worker, worker_cpus
from perfgate.worker.protocol import SETUP_TIMEOUT_S, LoadModel, LoadRequest, ModelInfo, ReadMemory, Timeout, load_limit
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S

Progress = Callable[[str], None]


def compare(reference: str, candidate: str, data: str | None = None, *, progress: Progress | None = None, **options: Any) -> Report:
    """Compare two models on a Parquet dataset; see CompareConfig.from_options for the options.

    >>> report = compare("ref.onnx", "cand.onnx", "data.parquet", inputs=["features=f*"])
    >>> report.verdict
    <Verdict.PASS: 'pass'>
    """
    config = CompareConfig.from_options(reference, candidate, data, **options)
    return run_comparison(config, progress=progress, words=python_words)


def run_comparison(
    config: CompareConfig,
    *,
    progress: Progress | None = None,
    worker_factory: WorkerFactory | None = None,
    clock: Callable[[], float] = time.monotonic,
    plan_overrides: Mapping[str, Any] | None = None,
    calibrating: bool = False,
    words: Words = flag_words,
) -> Report:
    """Run one comparison. ``worker_factory``, ``clock`` and ``plan_overrides`` exist for
    tests and benchmarks (fake backends in-process, virtual time, smaller blocks);
    ``calibrating`` measures for the whole time budget, never stopping early (perfgate.engine.calibration);
    ``words``: how the report names an option it suggests (the time budget or a budget that
    would decide a check): the command line's flags, or ``perfgate.judge.resolution.python_words``."""
    say = progress or (lambda message: None)
    started = clock()
    environment = capture()
    data, measuring, judging = config.data, config.measuring, config.judging
    sides = open_sides(data, config.models)
    # a generative model's prompts: a missing or wrong column is said before any model loads
    prompts = read_prompts(sides, data.prompt_column) if measuring.generates else None
    models = _resolve(config.models)
    paths = {model.role: model.file for model in models}
    interpreters = {model.role: model.interpreter for model in models}
    factory = worker_factory or (lambda role, log_dir: SubprocessWorker(role, log_dir, python_of(role, interpreters)))
    cpus = worker_cpus(measuring.threads)

    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        instances: list[dict[str, Worker]] = []
        started_at: dict[str, float] = {}
        starting = clock()
        for index in range(config.worker_instances):
            instances.append({model.role: factory(_role(model.role, index), log_dir) for model in models})
            for side, worker in instances[-1].items():
                cleanup.callback(worker.close)
                if index == 0:
                    started_at[side] = clock()
                worker.start(measuring.threads)  # unpinned until loaded: all import and load on every core
        workers = instances[0]
        show_status(progress, Status("loading", clock() - started))
        each = f"{measuring.threads} thread(s) each" + (f", {len(instances)} processes each" if len(instances) > 1 else "")
        say(f"loading models ({' / '.join(model.backend for model in models)} on {measuring.device}, {each})")
        requests = {
            model.role: LoadRequest(
                model.backend, model.file, measuring.backend_options(), worker_sys_path(model.interpreter), cpus,
                headers=model.headers, call_timeout_s=measuring.call_timeout_s,
            )
            for model in models
        }  # fmt: skip
        infos, loaded_s, more_infos = _load(instances, requests, clock, started_at, measuring.call_timeout_s)
        started_s = clock() - starting
        fed, outputs, cold_starts, answers = None, None, {}, None
        if measuring.generates:
            show_status(progress, Status("outputs", clock() - started))
            prepared = _prepare_generations(instances, sides, prompts, config, say)
            observed = Observations(series=(), memory_floor=judging.memory_floor)
            say(f"{describe_prompts_read(prepared)}; measuring for up to {measuring.time_budget_s:g} s")
            measurement, stopped, budgets, pacing_notes = _measure(
                instances, {}, config, observed, clock, say, plan_overrides, calibrating, words, prepared=prepared
            )
            answers = measurement.answers
        else:
            fed = feed(workers, infos, sides, data, config.models, measuring.batch_sizes, paths, clock, more_instances=instances[1:])
            # before measuring: models whose answers cannot be compared, or a broken reference, fail fast
            show_status(progress, Status("outputs", clock() - started))
            if config.compares_outputs:
                outputs = compare_outputs(workers, fed.batches, data, measuring, sides.selections["reference"], paths, say, clock)
            show_status(progress, Status("cold starts", clock() - started))
            cold_starts = run_cold_starts(
                config.fresh_cold_starts, factory, log_dir, requests, fed.first_feeds, measuring.threads, cpus, clock, say,
                call_timeout_s=measuring.call_timeout_s,
                started_s=started_s,
                own=own_cold_starts(workers, measuring.batch_sizes[0], loaded_s, call_timeout_s=measuring.call_timeout_s),
            )  # fmt: skip
            say(f"{sides.describe()}; measuring for up to {measuring.time_budget_s:g} s")
            observed = Observations(
                series=(), cold_starts={side: tuple(r.total_seconds for r in records) for side, records in cold_starts.items()},
                sizes=fed.sizes, size_column=data.size_column, memory_floor=judging.memory_floor, outputs=outputs,
            )  # fmt: skip
            measurement, stopped, budgets, pacing_notes = _measure(
                instances, fed.batches, config, observed, clock, say, plan_overrides, calibrating, words
            )
        # every instance's reading: an allocator's leftovers inflate one process, not the model (metrics/memory.py)
        memory = {
            side: with_instances([
                {**_load_memory(info[side]), **instance[side].call(ReadMemory(), timeout=SETUP_TIMEOUT_S)}
                for info, instance in zip([infos, *more_infos], instances)
            ])
            for side in SIDES
        }  # fmt: skip

    if config.served:  # the client's own memory says nothing of the served models
        memory = {}
    observed = replace(
        observed, series=measurement.series, loads=measurement.loads, memory=memory, generations=measurement.generations,
        answers=measurement.answers,
    )  # fmt: skip
    evaluation = with_mann_whitney(
        evaluate(observed, budgets, alpha=1.0 - judging.confidence, look=measurement.look, seed=data.seed),
        observed, 1.0 - judging.confidence,
    )  # fmt: skip
    checks = explain_unresolved(evaluation.checks, measurement.measure_seconds, measuring.time_budget_s, words,
                                instances=config.worker_instances)
    verdict, reason = overall(checks)
    if verdict is Verdict.INCONCLUSIVE:
        reason += f"; after {measurement.measure_seconds:.1f} s of measuring ({words('time_budget_s', f'{measuring.time_budget_s:g}')})"
    pythons = report_pythons(interpreters)
    reported = {}
    for model in models:
        info, side = infos[model.role], model.role
        reported[side] = ModelReport(
            model.file, info.backend, fed.inputs[side] if fed else (), info.load_seconds, info.cpus, memory.get(side, {}), info.setup_seconds,
            pythons[side],
        )  # fmt: skip
    return Report(
        verdict=verdict,
        reason=reason,
        reference=reported["reference"],
        candidate=reported["candidate"],
        data=sides.report(data.seed),
        settings=replace(config.settings(), budgets=tuple(str(budget) for budget in budgets if budget.gated)),
        environment=replace(environment, frameworks=framework_versions(reported)),
        run=RunSummary(measurement.look, measurement.measure_seconds, clock() - started, stopped),
        checks=checks,
        series=measurement.series,
        loads=measurement.loads,
        cold_starts=cold_starts,
        stages=stages(fed, measurement.series, sides.selections["reference"].count) if fed else (),
        sizes=tuple(analyze(s, fed.sizes[s.batch_size], data.size_column) for s in measurement.series if s.batch_size in fed.sizes)
        if fed else (),
        outputs=outputs,
        generations=measurement.generations,
        answers=answers,
        warnings=config.warnings()
        + pacing_notes
        + (fed.warnings if fed else ())
        + run_warnings(measurement.series, measurement.loads, memory, measurement.rss_after_blocks, judging.memory_floor)
        + environment_warnings(reported)
        + hardware_warnings({side: model.backend.details for side, model in reported.items()}),
        noise=noise_levels(measurement.series),
        perfgate_version=__version__,
        created=_now(),
    )


@dataclass(frozen=True)
class _Model:
    """One side of the comparison, resolved once before any worker starts."""

    spec: ModelSpec
    file: str  # the model file its path names (a folder's one model file)
    backend: str  # the backend's registered name, as asked or picked from the file
    interpreter: Interpreter  # the Python that runs its workers
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # an endpoint's, expanded (secrets)

    @property
    def role(self) -> str:
        return self.spec.role


def _resolve(specs: Sequence[ModelSpec]) -> tuple[_Model, ...]:
    """Each model's file, backend and interpreter; each step for both models before the
    next, so that of two faults the same one is said first whichever side has it."""
    for spec in specs:
        require_model(spec.path, spec.backend, spec.role)
    files = [model_file(spec.path, spec.backend) for spec in specs]
    backends = [resolve_backend_name(file, spec.backend) for spec, file in zip(specs, files)]
    # before any process starts: each side's framework, in the interpreter that will run it
    interpreters = check_interpreters(
        {spec.role: spec.python for spec in specs}, {spec.role: backend for spec, backend in zip(specs, backends)}
    )
    headers = [expand_headers(spec.headers, spec.role) for spec in specs]  # an unset variable: said before any worker starts
    return tuple(
        _Model(spec, file, backend, interpreters[spec.role], expanded)
        for spec, file, backend, expanded in zip(specs, files, backends, headers)
    )


def _role(side: str, instance: int) -> str:
    return side if instance == 0 else f"{side}-instance-{instance + 1}"


def _load(
    instances: Sequence[Mapping[str, Worker]],
    requests: Mapping[str, LoadRequest],
    clock: Callable[[], float],
    started_at: Mapping[str, float],
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> tuple[dict[str, ModelInfo], dict[str, float], list[dict[str, ModelInfo]]]:
    """Load both models, in every instance, at once: what the first instance of each says;
    per model the seconds from its first worker's start to its load's answer (by ``clock``:
    its own cold start's first part); what the further instances say. Each may take
    ``load_limit(call_timeout_s)``."""
    calls = {side: LoadModel(requests[side]) for side in SIDES}
    limit = Timeout((load_limit(call_timeout_s),), by_call_timeout=True)
    for workers in instances:
        for side in SIDES:
            workers[side].begin(calls[side])
    first = instances[0]
    infos, loaded_s = {}, {}
    for side in _in_order_of_answer(first, limit.limit(0)):
        infos[side] = first[side].finish(calls[side], limit)
        loaded_s[side] = clock() - started_at[side]
    more = [{side: workers[side].finish(calls[side], limit) for side in SIDES} for workers in instances[1:]]
    return infos, loaded_s, more


def _in_order_of_answer(workers: Mapping[str, Worker], limit_s: float, poll_s: float = 0.005) -> Iterator[str]:
    """The sides in the order their calls in flight answer, so that each answer's time is
    read when it comes, not after the other model's; past ``limit_s`` of polling, the
    rest in order (``finish`` then bounds each)."""
    pending = list(SIDES)
    polling_since = time.monotonic()
    while len(pending) > 1 and time.monotonic() - polling_since < limit_s:
        side = next((side for side in pending if workers[side].ready(poll_s)), None)
        if side is not None:
            pending.remove(side)
            yield side
    yield from pending


def _measure(
    instances: Sequence[Mapping[str, Worker]],
    batches: Mapping[int, int],
    config: CompareConfig,
    observed: Observations,
    clock: Callable[[], float],
    say: Progress,
    plan_overrides: Mapping[str, Any] | None,
    calibrating: bool = False,
    words: Words = flag_words,
    prepared: Prepared | None = None,
) -> tuple[Measurement, str, tuple[Budget, ...], tuple[str, ...]]:
    """Measure until every gated check is decided or one fails (memory aside: it is read at
    the end), or, ``calibrating``, for the whole time budget. Also returns the budgets as
    paced (defaults the time budget cannot decide set aside) and what pacing had to say.

    A budget below what the time budget can resolve on this machine is not stopped early:
    refusing it as a usage error made the exit code depend on the machine's load (a 1.16x
    pair at a +5 % budget beside a bursty neighbour failed in 4 runs of 6 and was refused
    in 2, after 7-8 s of 60, its estimate already past the budget). It measures on; a
    failure the rest of the time budget can still decide, it decides, and otherwise the
    check ends inconclusive, saying what would resolve it (perfgate.judge.resolution)."""
    measuring, judging, seed = config.measuring, config.judging, config.data.seed
    paced: dict[str, tuple] = {"budgets": judging.budgets, "notes": ()}

    def on_pace(pace: Pace) -> None:
        paced["budgets"], paced["notes"] = pace_budgets(judging.budgets, pace, float(measuring.time_budget_s), words)
        for note in paced["notes"]:
            say(note)

    def on_look(measurement: Measurement) -> bool:
        looked = replace(
            observed, series=measurement.series, loads=measurement.loads, generations=measurement.generations,
            answers=measurement.answers,
        )  # fmt: skip
        evaluation = evaluate(
            looked, paced["budgets"], alpha=1.0 - judging.confidence, look=measurement.look, seed=seed,
            gated_only=True,
        )  # fmt: skip
        say(_look_line(measurement, evaluation))
        deciding = deciding_check(evaluation.checks, where)
        show_status(say, Status("measuring", measurement.measure_seconds, measuring.time_budget_s, deciding))
        return evaluation.decided and not calibrating

    if prepared is not None:  # generate mode: request pairs, no pacing (a request's pace is the model's own)
        plan = GenerationPlan(
            measuring.max_new_tokens, float(measuring.time_budget_s), seed, measuring.chat, call_timeout_s=measuring.call_timeout_s,
            loads=measuring.loads, **(plan_overrides or {}),
        )  # fmt: skip
        measurement, stopped = measure_generations(instances, prepared, plan, on_look, clock=clock, progress=say)
        return measurement, stopped, judging.budgets, ()
    plan = MeasurementPlan(
        batch_sizes=measuring.batch_sizes,
        time_budget_s=float(measuring.time_budget_s),
        seed=seed,
        loads=measuring.loads,
        call_timeout_s=measuring.call_timeout_s,
        **{"windows": _wants_windows(config), **(plan_overrides or {})},
    )
    measurement, stopped = measure_interleaved(instances, plan, batches, on_look, clock=clock, progress=say, on_pace=on_pace)
    return measurement, stopped, paced["budgets"], paced["notes"]


def _prepare_generations(
    instances: Sequence[Mapping[str, Worker]], sides: Any, prompts: Mapping[str, Sequence[Any]], config: CompareConfig, say: Progress
) -> Prepared:
    """Generate mode's feed: every worker gets its prompts (each model tokenizes text its own
    way; one too long for a model's context is refused)."""
    measuring = config.measuring
    plan = GenerationPlan(measuring.max_new_tokens, chat=measuring.chat, seed=config.data.seed, call_timeout_s=measuring.call_timeout_s)
    prepared = set_prompts(instances, prompts, plan)
    say(f"{describe_prompts(prompts)} from {sides.describe()}")
    return prepared


def describe_prompts_read(prepared: Prepared) -> str:
    lengths = [length for length in prepared.lengths.get("reference", ()) if length is not None]
    shown = f", {min(lengths)} to {max(lengths)} tokens (reference)" if lengths else ""
    return f"{prepared.count} prompts{shown}"


def _wants_windows(config: CompareConfig) -> bool:
    """Throughput windows of their own only where they measure something the latency blocks
    do not: on a GPU, where synchronising after every call keeps the device from overlapping
    calls, or where a budget's family ``needs_windows`` (throughput). On a CPU a block's calls already run back
    to back, so its summed durations are a window's time (metrics/throughput.py)."""
    return config.measuring.on_gpu or any(family_of(budget.metric).needs_windows for budget in config.judging.budgets)


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
    pairs = sum(series.pairs for series in (*measurement.series, *measurement.generations))
    return f"look {measurement.look} ({pairs} {'request' if measurement.generations else 'block'} pairs, {format_seconds(measurement.measure_seconds)}): " + "; ".join(parts)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
