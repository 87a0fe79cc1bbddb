"""measure(): one saved model, or one Python callable, timed on its own, for budgets in
absolute terms ("p95 under 20 ms on this machine"; see ``perfgate.judge.absolute``).

A saved model runs in one worker process, as each model of a comparison does: load it,
feed it the Parquet rows as batches, then measure it on the measuring loop of a
comparison (``perfgate.engine.blocks``), with one side: warm it up, then run blocks of calls,
each followed by a throughput window over the same batches, until there are enough
samples for the tail (p99 needs 459) and at least ``SinglePlan.min_blocks`` blocks, or
until the time budget is spent; then read the worker's peak RSS. Its steps have a
comparison's limits, from the same ``call_timeout_s`` (``--call-timeout``).

A callable (a ``predict()`` with its pre- and post-processing) runs in this process, on
the same loop and timing loops: ``fn(row)`` once per call, the garbage collector paused,
nothing inside the clock but the call. It shares the process with everything else, so it
has no memory isolation (and no peak RSS), it holds the GIL against the process's other
threads, nothing can stop it when it hangs, and it finds whatever state earlier code left
(imports, caches, warm pages).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from perfgate.judge.absolute import Judgement, judge_limits, parse_absolute_budgets
from perfgate.backends import require_framework, require_model, resolve_backend_name
from perfgate.backends.base import BackendOptions, check_device
from perfgate.engine.blocks import Blocks, BlockRules, CallTimer, Timer, WorkerTimer, until_stopped
from perfgate.data.dataset import ParquetDataset
from perfgate.config import check_common_options, resolve_task
from perfgate.engine.single_generation import GenerationPlan, GenerationResult, measure_generative
from perfgate.data.inputs import shown
from perfgate.specs import ModelSpec
from perfgate.errors import UsageError, option
from perfgate.data.batches import build_batches
from perfgate.data.inputs import bind_inputs, expand_columns, parse_input_options
from perfgate.measurements import WarmUpSummary, concatenated
from perfgate.results import BackendInfo, PreparedInput, Verdict
from perfgate.worker.process import SubprocessWorker, Worker, worker_cpus
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S, SETUP_TIMEOUT_S, LoadModel, LoadRequest, ReadMemory, SetFeeds, Timeout, load_limit

Progress = Callable[[str], None]
WorkerFactory = Callable[[str, str], Worker]


@dataclass(frozen=True)
class SinglePlan:
    time_budget_s: float = 10.0
    min_samples: int = 459  # the p99's (perfgate.stats.min_samples_for_quantile)
    min_blocks: int = 20
    target_block_s: float = 0.01
    max_calls_per_block: int = 1000
    warmup_min_calls: int = 10
    warmup_min_s: float = 0.2
    warmup_max_s: float = 30.0
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S

    @property
    def rules(self) -> BlockRules:
        # a comparison's limits, from the same call timeout
        return BlockRules(self.target_block_s, self.max_calls_per_block, self.warmup_min_calls, self.warmup_min_s,
                          self.warmup_max_s, self.call_timeout_s)  # fmt: skip


@dataclass(frozen=True)
class MeasureResult:
    """What ``measure`` found; ``assert_within(p95="20ms")`` judges it against budgets."""

    target: str  # the model's path, or the callable's name
    kind: str  # "model" or "callable"
    batch_size: int
    rows: int  # rows (or given inputs) the calls cycled through
    calls_per_block: int
    blocks: tuple[np.ndarray, ...]  # ns per call, block by block
    windows: tuple[int, ...]  # ns per throughput window of calls_per_block calls back to back
    memory: Mapping[str, Any] | None  # a model's peak_rss, rss, load_rss, ...; None for a callable
    warmup: WarmUpSummary
    measure_seconds: float
    total_seconds: float
    stopped_because: str  # "enough samples" or "time budget"
    confidence: float = 0.95
    seed: int = 0
    time_budget_s: float = 10.0
    backend: BackendInfo | None = None
    inputs: tuple[PreparedInput, ...] = ()
    data: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.target}()" if self.kind == "callable" else f"{self.target} at batch {self.batch_size}"

    @property
    def samples(self) -> np.ndarray:
        return concatenated(self.blocks)

    @property
    def samples_per_window(self) -> int:
        return self.calls_per_block * self.batch_size

    def latency(self, q: float | None) -> float:
        """The q-quantile of one call's latency in ns (the mean for None)."""
        samples = self.samples
        return float(np.mean(samples)) if q is None else float(np.quantile(samples, q))

    @property
    def p50(self) -> float:
        return self.latency(0.5)

    @property
    def p95(self) -> float:
        return self.latency(0.95)

    @property
    def p99(self) -> float:
        return self.latency(0.99)

    @property
    def throughput(self) -> float | None:
        """Samples per second over the throughput windows."""
        if not self.windows:
            return None
        return self.samples_per_window * 1e9 / float(np.mean(self.windows))

    @property
    def peak_rss(self) -> int | None:
        return None if self.memory is None else self.memory.get("peak_rss")

    def judge(self, **budgets: Any) -> Judgement:
        """Each budget (``p95="20ms"``, ``peak_rss="300MB"``, ``throughput="100/s"``) decided
        on a confidence interval; see ``perfgate.judge.absolute``."""
        return judge_limits(self, parse_absolute_budgets(budgets), confidence=self.confidence, seed=self.seed)

    def assert_within(self, *, strict: bool = False, **budgets: Any) -> Judgement:
        """``judge``, raising AssertionError when a budget fails (and when one is
        undecided, with ``strict``); returns the judgement otherwise."""
        judgement = self.judge(**budgets)
        if judgement.verdict is Verdict.FAIL or (strict and judgement.verdict is Verdict.INCONCLUSIVE):
            raise AssertionError(f"{self.label}: {judgement.reason}")
        return judgement


def measure(
    target: str | os.PathLike | Callable[[Any], Any],
    data: str | os.PathLike | None = None,
    *,
    inputs: Mapping[str, str] | Iterable[str] = (),
    rows: str | os.PathLike | Sequence[Any] | None = None,
    columns: Sequence[str] | None = None,
    batch_size: int = 1,
    max_rows: int | None = None,
    backend: str | None = None,
    device: str = "cpu",
    threads: int = 1,
    time_budget_s: float = 10.0,
    confidence: float = 0.95,
    seed: int = 0,
    pad_value: float = 0.0,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    task: str | None = None,
    prompt_column: str | None = None,
    max_new_tokens: int | None = None,
    chat: bool = False,
    headers: Sequence[str] | str = (),
    progress: Progress | None = None,
    worker_factory: WorkerFactory | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> MeasureResult | GenerationResult:
    """Time one saved model on the rows of ``data`` (a Parquet file), or one callable.

    >>> perfgate.measure("model.onnx", "eval.parquet", inputs={"features": "f*"}).assert_within(p95="20ms")
    >>> perfgate.measure(predict, rows="eval.parquet").assert_within(p95="50ms")

    A callable is called as ``fn(row)``: with each row of a Parquet file as a dict of
    column values (``rows="eval.parquet"``, ``columns=["f*"]`` to choose columns), or with
    each item of a sequence (``rows=[...]``). ``max_rows`` draws that many rows with
    ``seed``. A call longer than ``call_timeout_s`` (a later one, 50× its expected time
    plus that) is taken to hang, and loading may take 10× it, as in a comparison.
    ``worker_factory`` and ``clock`` exist for tests (fake backends, virtual time).

    A generative model (a causal LM's directory, an ONNX Runtime GenAI folder, an
    http(s):// endpoint; or ``task="generate"``) is timed request by request on the text
    or token ids of ``prompt_column`` ("prompt"), each request for ``max_new_tokens`` (64)
    new tokens, ``chat`` through its chat template, ``headers`` ('Name: ${VAR}') sent to
    an endpoint; it returns a ``GenerationResult``:

    >>> perfgate.measure("models/llm", "prompts.parquet", max_new_tokens=32).assert_within(ttft_p95="200ms")
    """
    check_common_options(time_budget_s=time_budget_s, confidence=confidence, seed=seed, call_timeout_s=call_timeout_s)
    plan = SinglePlan(time_budget_s=float(time_budget_s), call_timeout_s=float(call_timeout_s))
    say = progress or (lambda message: None)
    settings = {"time_budget_s": float(time_budget_s), "confidence": confidence, "seed": seed, "max_rows": max_rows,
                "call_timeout_s": float(call_timeout_s)}  # fmt: skip
    if callable(target) and not isinstance(target, (str, os.PathLike)):
        _refuse_model_options(data=data, inputs=inputs, backend=backend, device=device, threads=threads, batch_size=batch_size)
        return _measure_callable(target, rows, columns, max_rows, seed, plan, settings, clock, say)
    if rows is not None or columns is not None:
        raise UsageError(f"{option('rows')} and {option('columns')} feed a Python callable; a saved model reads "
                         f"{option('data')} (a Parquet file) through {option('inputs')}")  # fmt: skip
    if data is None:
        raise UsageError(f"measuring a saved model needs {option('data')}: the Parquet file whose rows feed it")
    check_device(device)
    for name, value in (("batch_size", batch_size), ("threads", threads)):
        if not _whole(value) or value < 1:
            raise UsageError(f"{option(name)} must be a whole number of at least 1, got {value!r}")
    generative = dict(prompt_column=prompt_column, max_new_tokens=max_new_tokens, chat=chat, headers=headers)
    if resolve_task(task, [ModelSpec("model", os.fspath(target), backend)]) == "generate":
        _refuse_one_shot_options(inputs=inputs, batch_size=batch_size, pad_value=pad_value)
        return _measure_generative(os.fspath(target), os.fspath(data), backend, BackendOptions(device, threads), max_rows,
                                   seed, plan, settings, generative, worker_factory, clock, say)  # fmt: skip
    for name, value in generative.items():
        if value not in (None, False, ()):
            raise UsageError(f"{option(name)} applies to a generative model ({option('task', 'generate')}); "
                             f"{shown(os.fspath(target))} is timed call by call")  # fmt: skip
    parsed_inputs = dict(inputs) if isinstance(inputs, Mapping) else parse_input_options(inputs)
    settings.update(batch_size=batch_size, device=device, threads=threads, inputs=parsed_inputs)
    return _measure_model(
        os.fspath(target), os.fspath(data), parsed_inputs, batch_size, max_rows, backend, BackendOptions(device, threads),
        seed, pad_value, plan, settings, worker_factory, clock, say,
    )  # fmt: skip


def _measure_generative(
    path: str, data: str, backend: str | None, options: BackendOptions, max_rows: int | None, seed: int,
    plan: SinglePlan, settings: dict, generative: Mapping[str, Any], worker_factory: WorkerFactory | None,
    clock: Callable[[], float], say: Progress,
) -> GenerationResult:  # fmt: skip
    max_new_tokens = 64 if generative["max_new_tokens"] is None else generative["max_new_tokens"]
    if not _whole(max_new_tokens) or max_new_tokens < 1:
        raise UsageError(f"{option('max_new_tokens')} must be a whole number of at least 1, got {max_new_tokens!r}")
    column = "prompt" if generative["prompt_column"] is None else generative["prompt_column"]
    if not isinstance(column, str) or not column:
        raise UsageError(f"{option('prompt_column')} must name a column, got {column!r}")
    if not isinstance(generative["chat"], bool):
        raise UsageError(f"{option('chat')} must be True or False, got {generative['chat']!r}")
    headers = (generative["headers"],) if isinstance(generative["headers"], str) else tuple(generative["headers"])
    _row_count(max_rows)
    settings.update(task="generate", device=options.device, threads=options.threads, prompt_column=column,
                    max_new_tokens=max_new_tokens, chat=generative["chat"])  # fmt: skip
    generation = GenerationPlan(max_new_tokens, time_budget_s=plan.time_budget_s, chat=generative["chat"], seed=seed,
                                call_timeout_s=plan.call_timeout_s)  # fmt: skip
    return measure_generative(
        path, data, backend=backend, options=options, prompt_column=column, headers=headers, max_rows=max_rows,
        plan=generation, judging=_judging(settings), worker_factory=worker_factory, clock=clock, say=say,
    )  # fmt: skip


def _measure_model(
    path: str, data: str, inputs: Mapping[str, str], batch_size: int, max_rows: int | None, backend: str | None,
    options: BackendOptions, seed: int, pad_value: float, plan: SinglePlan, settings: dict,
    worker_factory: WorkerFactory | None, clock: Callable[[], float], say: Progress,
) -> MeasureResult:  # fmt: skip
    began = clock()
    dataset = ParquetDataset(data)
    selection = dataset.select_rows(_row_count(max_rows), seed)
    require_model(path, backend, "model")
    name = resolve_backend_name(path, backend)
    require_framework(name)
    factory = worker_factory or (lambda role, log_dir: SubprocessWorker(role, log_dir))
    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        worker = factory("model", log_dir)
        cleanup.callback(worker.close)
        worker.start(options.threads, worker_cpus(options.threads))
        say(f"loading {path} ({name} on {options.device}, {options.threads} thread(s))")
        info = worker.call(LoadModel(LoadRequest(name, path, options, tuple(sys.path))), timeout=Timeout((load_limit(plan.call_timeout_s),), by_call_timeout=True))
        bindings = bind_inputs({"model": info.inputs}, dataset.schema, inputs, {}, labels={"model": path})["model"]
        table = dataset.read([column for binding in bindings for column in binding.columns], selection)
        prepared = build_batches(table, bindings, info.inputs, batch_size, pad_value=pad_value, model=path)
        worker.call(SetFeeds(batch_size, list(prepared.feeds)), timeout=SETUP_TIMEOUT_S)
        sampled = _sample(WorkerTimer(worker, batch_size), len(prepared.feeds), plan, clock, say)
        memory = {"load_rss": info.load_rss, "framework_rss": info.framework_rss,
                  **worker.call(ReadMemory(), timeout=SETUP_TIMEOUT_S)}  # fmt: skip
    return MeasureResult(
        target=path, kind="model", batch_size=batch_size, rows=selection.count, memory=memory,
        total_seconds=clock() - began, backend=info.backend, inputs=prepared.inputs, data=data,
        **sampled, **_judging(settings),
    )  # fmt: skip


def _measure_callable(
    fn: Callable[[Any], Any], rows: Any, columns: Sequence[str] | None, max_rows: int | None, seed: int,
    plan: SinglePlan, settings: dict, clock: Callable[[], float], say: Progress,
) -> MeasureResult:  # fmt: skip
    began = clock()
    fed, source = _callable_rows(rows, columns, max_rows, seed)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    say(f"timing {name}() in this process on {len(fed)} rows")
    sampled = _sample(CallTimer(fn, fed), len(fed), plan, clock, say)
    return MeasureResult(
        target=name, kind="callable", batch_size=1, rows=len(fed), memory=None, total_seconds=clock() - began,
        data=source, **sampled, **_judging(settings),
    )  # fmt: skip


def _sample(timer: Timer, batches: int, plan: SinglePlan, clock: Callable[[], float], say: Progress) -> dict[str, Any]:
    """Blocks of calls, each followed by a throughput window over the same rows, until
    there are enough samples and blocks, or the time budget is spent."""
    warm = timer.warm_up(plan.rules)
    blocks = Blocks(plan.rules, warm.typical_ns, batches)
    say(f"warm-up: {warm.calls} calls, {warm.typical_ns / 1e3:.3g} us/call; {blocks.calls} calls per block")
    durations: list[np.ndarray] = []
    windows: list[int] = []

    def one_round(_: int) -> None:
        timed = blocks.run({"model": timer}, ("model",))
        durations.append(timed.durations["model"])
        windows.append(timed.windows["model"])

    def enough(rounds: int, out_of_time: bool, elapsed: float) -> str | None:
        return "enough samples" if rounds >= plan.min_blocks and rounds * blocks.calls >= plan.min_samples else None

    stopped, seconds = until_stopped(one_round, enough, time_budget_s=plan.time_budget_s, clock=clock)
    return dict(
        calls_per_block=blocks.calls, blocks=tuple(durations), windows=tuple(windows), stopped_because=stopped,
        warmup=WarmUpSummary(warm.calls, warm.seconds, warm.typical_ns, warm.shapes), measure_seconds=seconds,
    )  # fmt: skip


def _callable_rows(rows: Any, columns: Sequence[str] | None, max_rows: int | None, seed: int) -> tuple[list[Any], str | None]:
    """The rows a callable is called with, and the Parquet file they came from (if any)."""
    if rows is None:
        raise UsageError(f"a callable needs {option('rows')}: a Parquet file (each row a dict) or a sequence of inputs")
    if isinstance(rows, (str, os.PathLike)):
        dataset = ParquetDataset(os.fspath(rows))
        chosen = list(dataset.column_names)
        if columns is not None:
            pattern = ",".join(columns) if not isinstance(columns, str) else columns
            chosen = list(expand_columns(pattern, dataset.column_names, option=f"columns={list(columns)!r}"))
        table = dataset.read(chosen, dataset.select_rows(_row_count(max_rows), seed))
        return table.to_pylist(), dataset.path
    if columns is not None:
        raise UsageError(f"{option('columns')} chooses the columns of a Parquet file; {option('rows')} is a sequence here")
    given = list(rows)
    if not given:
        raise UsageError(f"{option('rows')} is empty: a callable needs at least one input")
    count = _row_count(max_rows)
    if count is not None and count < len(given):
        picked = np.sort(np.random.default_rng(seed).choice(len(given), size=count, replace=False))
        given = [given[int(index)] for index in picked]
    return given, None


def _refuse_model_options(**given: Any) -> None:
    defaults = {"data": None, "inputs": (), "backend": None, "device": "cpu", "threads": 1, "batch_size": 1}
    for name, value in given.items():
        if value != defaults[name] and not (name == "inputs" and not value):
            raise UsageError(
                f"{option(name)} applies to a saved model; a callable is called in this process with one row "
                f"at a time from {option('rows')}"
            )


def _refuse_one_shot_options(**given: Any) -> None:
    defaults = {"inputs": (), "batch_size": 1, "pad_value": 0.0}
    for name, value in given.items():
        if value != defaults[name] and not (name == "inputs" and not value):
            raise UsageError(f"{option(name)} applies to a model timed call by call; a generative model is timed "
                             f"request by request on {option('prompt_column')}")  # fmt: skip


def _judging(settings: Mapping[str, Any]) -> dict[str, Any]:
    return dict(confidence=settings["confidence"], seed=settings["seed"], time_budget_s=settings["time_budget_s"],
                settings=dict(settings))  # fmt: skip


def _row_count(max_rows: Any) -> int | None:
    if max_rows is not None and (not _whole(max_rows) or max_rows < 1):
        raise UsageError(f"{option('max_rows')} must be at least 1, got {max_rows!r}")
    return max_rows


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
