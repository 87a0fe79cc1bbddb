"""measure() for a generative model (``task="generate"``, or told from the model): one
model's requests timed on their own, for budgets in absolute terms ("TTFT p95 under
200 ms on this machine").

The model runs in one worker process, as each model of a comparison does: load it, hand
it the prompts (``SetPrompts``: text through the model's own tokenizer, a prompt too long
for its context refused there), warm it up on two requests, then time one request per
block, the prompts going round in a seeded order so that each is asked as often as any
other, until there are enough requests for the tail (p99 needs 459) and 20 blocks, or the
time budget is spent; then read the worker's peak RSS. Each request asks for exactly
``max_new_tokens`` new tokens, greedily, as in a comparison (``perfgate.engine.generation``).

Budgets: ``ttft_p95="200ms"``, ``itl_p50="5ms"``, ``e2e_p99="1s"`` (any pNN or mean of
each), ``tokens_per_s="100/s"`` (decode tokens over their gaps, per request; higher is
better) and ``peak_rss``, decided on the value's own interval as ``perfgate.judge.absolute``
decides a one-shot model's. Intervals resample whole requests: a request's inter-token
gaps move together, so they are never taken as independent samples.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.backends import require_framework, require_model, resolve_backend_name
from perfgate.backends.base import BackendOptions
from perfgate.backends.headers import expand_headers
from perfgate.data.data_sources import Sides
from perfgate.data.dataset import ParquetDataset
from perfgate.data.prompts import describe_prompts, read_prompts
from perfgate.engine.blocks import until_stopped
from perfgate.engine.generation import WARMUP_REQUESTS
from perfgate.errors import BudgetError, UsageError
from perfgate.formatting import format_duration
from perfgate.judge.absolute import AbsoluteBudget, Judgement, is_budget_name, judge_pairs, parse_absolute_budget
from perfgate.judge.units import parse_rate
from perfgate.measurements import RequestTiming
from perfgate.metrics import Family, Metric, Scope, family_of, parse_metric
from perfgate.results import SIDES, BackendInfo, Verdict
from perfgate.worker.process import SubprocessWorker, Worker, worker_cpus
from perfgate.worker.protocol import (
    SETUP_TIMEOUT_S, LoadModel, LoadRequest, ReadMemory, RunRequests, SetPrompts, Timeout, load_limit, requests_timeout,
)  # fmt: skip

Progress = Callable[[str], None]
WorkerFactory = Callable[[str, str], Worker]

BUDGET_NAMES = "ttft_p95, itl_p50, e2e_p99 (any pNN or mean of ttft, itl, e2e), tokens_per_s, peak_rss"
# a budget's keyword as a metric's name: ttft_p95 -> ttft.p95, itl_mean -> itl.mean
_KEYWORD = re.compile(r"^(.+?)_(p\d+(?:\.\d+)?|mean)$")


def request_family(name: str) -> tuple[Family, Metric] | None:
    """The generate-mode family (and metric) a budget keyword names (``ttft_p95``,
    ``tokens_per_s``), or None: each family says itself whether it reads requests."""
    match = _KEYWORD.match(name)
    try:
        metric = parse_metric(f"{match.group(1)}.{match.group(2)}" if match else name)
    except BudgetError:
        return None
    family = family_of(metric)
    generative = family.unmeasured(metric, Scope(generate=True)) is None and family.unmeasured(metric, Scope()) is not None
    return (family, metric) if generative and family.reads_requests else None


def is_generation_budget_name(name: str) -> bool:
    """A budget keyword for a generative model, or one whose family is (``ttft_peak``: the
    family's own error says what it takes)."""
    prefix = name.split("_", 1)[0]
    return name == "peak_rss" or request_family(name) is not None or request_family(f"{prefix}_mean") is not None


def _values(name: str) -> Callable[[RequestTiming], Sequence[float]]:
    """What a family (``ttft``, ``itl``, ``e2e``) reads of one request, in ns."""
    return request_family(f"{name}_mean")[0].request_values


@dataclass(frozen=True)
class GenerationPlan:
    max_new_tokens: int
    time_budget_s: float = 10.0
    chat: bool = False
    seed: int = 0
    min_requests: int = 459  # p99 of TTFT and e2e (one value per request)
    min_blocks: int = 20
    warmup_requests: int = WARMUP_REQUESTS
    call_timeout_s: float = 60.0


@dataclass(frozen=True)
class GenerationResult:
    """What ``measure(..., task="generate")`` found: one request per block, each a
    ``RequestTiming``; ``assert_within(ttft_p95="200ms")`` judges it against budgets."""

    target: str
    max_new_tokens: int
    prompts: int  # prompts read (each request one of them)
    blocks: tuple[tuple[RequestTiming, ...], ...]
    memory: Mapping[str, Any] | None
    warmup_s: float  # the last warm-up request's seconds
    measure_seconds: float
    total_seconds: float
    stopped_because: str  # "enough samples" or "time budget"
    confidence: float = 0.95
    seed: int = 0
    time_budget_s: float = 10.0
    backend: BackendInfo | None = None
    data: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "generate"

    @property
    def label(self) -> str:
        return f"{self.target} ({self.max_new_tokens} new tokens)"

    @property
    def requests(self) -> tuple[RequestTiming, ...]:
        return tuple(request for block in self.blocks for request in block)

    def values(self, family: str) -> np.ndarray:
        """Every request's ``ttft``, ``itl`` (its gaps) or ``e2e`` values, in ns."""
        values = _values(family)
        return np.asarray([value for request in self.requests for value in values(request)], dtype=np.float64)

    def ttft(self, q: float | None = 0.5) -> float:
        return _quantile(self.values("ttft"), q)

    def itl(self, q: float | None = 0.5) -> float:
        return _quantile(self.values("itl"), q)

    def e2e(self, q: float | None = 0.5) -> float:
        return _quantile(self.values("e2e"), q)

    @property
    def tokens_per_s(self) -> float | None:
        """Decode tokens (after the first) per second, over all requests."""
        tokens = sum(max(request.tokens - 1, 0) for request in self.requests)
        spent = sum(sum(request.gaps_ns) for request in self.requests)
        return tokens * 1e9 / spent if tokens and spent else None

    @property
    def peak_rss(self) -> int | None:
        return None if self.memory is None else self.memory.get("peak_rss")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as ``perfgate.report.single`` writes a one-shot measurement."""
        return {
            "target": self.target, "kind": self.kind, "data": self.data, "prompts": self.prompts,
            "max_new_tokens": self.max_new_tokens, "settings": dict(self.settings),
            "backend": None if self.backend is None else asdict(self.backend),
            "memory": None if self.memory is None else dict(self.memory),
            "run": {"measure_seconds": self.measure_seconds, "total_seconds": self.total_seconds,
                    "stopped_because": self.stopped_because, "warmup_s": self.warmup_s},
            "requests": [[{name: value for name, value in asdict(request).items() if name != "answer"} for request in block]
                         for block in self.blocks],  # fmt: skip
        }  # fmt: skip

    def judge(self, **budgets: Any) -> Judgement:
        """Each budget (``ttft_p95="200ms"``, ``itl_p50="5ms"``, ``tokens_per_s="100/s"``,
        ``peak_rss="1GB"``) decided on a confidence interval."""
        if not budgets:
            raise UsageError(f"no budget given; give one or more of {BUDGET_NAMES}, such as ttft_p95='200ms'")
        pairs = [self._budget(name, value) for name, value in budgets.items()]
        return judge_pairs(pairs, confidence=self.confidence, seed=self.seed)

    def assert_within(self, *, strict: bool = False, **budgets: Any) -> Judgement:
        """``judge``, raising AssertionError when a budget fails (and when one is
        undecided, with ``strict``); returns the judgement otherwise."""
        judgement = self.judge(**budgets)
        if judgement.verdict is Verdict.FAIL or (strict and judgement.verdict is Verdict.INCONCLUSIVE):
            raise AssertionError(f"{self.label}: {judgement.reason}")
        return judgement

    def _budget(self, name: str, value: Any) -> tuple[_Requests, AbsoluteBudget]:
        family, budget = parse_generation_budget(name, value)
        if family is None:  # peak_rss
            return _Requests([], self.memory), budget
        if budget.higher_is_better:
            # a rate (tokens_per_s): per request its ns per decode token, whose mean inverted is the rate
            per_request = [list(family.request_values(request)) for request in self.requests]
            return _Requests([values for values in per_request if values], self.memory), budget
        blocks = [[value for request in block for value in family.request_values(request)] for block in self.blocks]
        return _Requests(blocks, self.memory), budget


def parse_generation_budget(name: str, value: Any) -> tuple[Family | None, AbsoluteBudget]:
    """``ttft_p95="200ms"`` -> (the ttft family, its budget); ``tokens_per_s="50/s"`` a rate;
    ``peak_rss`` (None, its budget); a UsageError in the words the caller wrote."""
    if name == "peak_rss":
        return None, parse_absolute_budget(name, value)
    found = request_family(name)
    if found is None:
        raise UsageError(f"unknown budget {name!r} for a generative model; budgets: {BUDGET_NAMES}")
    family, metric = found
    if metric.higher_is_better:
        rate = parse_rate(value.replace("tokens", "") if isinstance(value, str) else value, name)
        return family, AbsoluteBudget(name, name, None, rate.per_second, str(value).strip(), "tokens/s", higher_is_better=True)
    rest = name[len(family.name) + 1 :]  # p95, mean
    try:
        latency = parse_absolute_budget(rest, value)
    except UsageError as exc:  # ttft_p95=..., not p95=...
        raise UsageError(exc.message.replace(f"{rest}=", f"{name}=")) from None
    return family, replace(latency, name=name, metric=str(metric))


@dataclass(frozen=True)
class _Requests:
    """One family's values in blocks, as ``perfgate.judge.absolute`` judges them."""

    values: Sequence[Sequence[float]]
    memory: Mapping[str, Any] | None
    samples_per_window: int = 1
    windows: tuple[int, ...] = ()

    @property
    def blocks(self) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(block, dtype=np.float64) for block in self.values if len(block))


def measure_generative(
    path: str, data: str, *, backend: str | None, options: BackendOptions, prompt_column: str, headers: Sequence[str],
    max_rows: int | None, plan: GenerationPlan, judging: dict,
    worker_factory: WorkerFactory | None, clock: Callable[[], float], say: Progress,
) -> GenerationResult:  # fmt: skip
    began = clock()
    dataset = ParquetDataset(data)
    selection = dataset.select_rows(max_rows, plan.seed)
    prompts = read_prompts(Sides({side: dataset for side in SIDES}, {side: selection for side in SIDES}, False, ()), prompt_column)
    require_model(path, backend, "model")
    name = resolve_backend_name(path, backend)
    require_framework(name)
    expanded = expand_headers(headers, "model") if headers else ()
    factory = worker_factory or (lambda role, log_dir: SubprocessWorker(role, log_dir))
    with tempfile.TemporaryDirectory(prefix="perfgate-") as log_dir, contextlib.ExitStack() as cleanup:
        worker = factory("model", log_dir)
        cleanup.callback(worker.close)
        worker.start(options.threads, worker_cpus(options.threads))
        say(f"loading {path} ({name} on {options.device}, {options.threads} thread(s))")
        request = LoadRequest(name, path, options, tuple(sys.path), headers=expanded, call_timeout_s=plan.call_timeout_s)
        info = worker.call(LoadModel(request), timeout=Timeout((load_limit(plan.call_timeout_s),), by_call_timeout=True))
        handed = prompts["reference"]
        worker.call(SetPrompts(tuple(handed), chat=plan.chat, max_new_tokens=plan.max_new_tokens), timeout=SETUP_TIMEOUT_S)
        say(f"{describe_prompts(prompts)} from {data}; measuring for up to {plan.time_budget_s:g} s")
        sampled = _sample(worker, len(handed), plan, clock, say)
        memory = {"load_rss": info.load_rss, "framework_rss": info.framework_rss,
                  **worker.call(ReadMemory(), timeout=SETUP_TIMEOUT_S)}  # fmt: skip
    return GenerationResult(
        target=path, max_new_tokens=plan.max_new_tokens, prompts=len(handed), memory=memory,
        total_seconds=clock() - began, backend=info.backend, data=data, **sampled, **judging,
    )  # fmt: skip


def _sample(worker: Worker, prompt_count: int, plan: GenerationPlan, clock: Callable[[], float], say: Progress) -> dict[str, Any]:
    """Warm-up, then one request per block until there are enough of them, or the time
    budget is spent."""
    rng = np.random.default_rng(plan.seed)
    warm_limit = requests_timeout(plan.call_timeout_s, plan.warmup_requests)
    warm = worker.call(RunRequests((0,) * plan.warmup_requests, plan.max_new_tokens), timeout=warm_limit)
    typical_s = warm[-1].e2e_ns / 1e9
    say(f"warm-up: {format_duration(typical_s * 1e9)}/request ({plan.max_new_tokens} new tokens)")
    blocks: list[tuple[RequestTiming, ...]] = []
    cycle: list[int] = []

    def one_round(_: int) -> None:
        if not cycle:  # every prompt once per cycle, in a fresh seeded order
            cycle.extend(int(index) for index in rng.permutation(prompt_count))
        limit = requests_timeout(plan.call_timeout_s, 1, typical_s)
        timings = worker.call(RunRequests((cycle.pop(),), plan.max_new_tokens), timeout=limit)
        blocks.append(tuple(replace(timing, answer=None) for timing in timings))  # no other model's to compare with

    def enough(rounds: int, out_of_time: bool, elapsed: float) -> str | None:
        return "enough samples" if rounds >= max(plan.min_blocks, plan.min_requests) else None

    stopped, seconds = until_stopped(one_round, enough, time_budget_s=plan.time_budget_s, clock=clock)
    return dict(blocks=tuple(blocks), warmup_s=typical_s, stopped_because=stopped, measure_seconds=seconds)


def _quantile(values: np.ndarray, q: float | None) -> float:
    if not values.size:
        return float("nan")
    return float(np.mean(values)) if q is None else float(np.quantile(values, q))

