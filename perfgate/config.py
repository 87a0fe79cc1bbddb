"""CompareConfig: everything a comparison needs, validated, in the Python API's words.

It is made of parts (``perfgate.specs``): the two models, each a ``ModelSpec``, the data,
the measuring and the judging; the pipeline and the modules below it take the part they
read. ``from_options`` takes the options as every face writes them (``reference_backend=``,
``candidate_python=``...), one keyword per option of perfgate/options/table.py.

Errors name options by their keyword here (``time_budget_s``, ``include_transfers``)
through ``perfgate.errors.option``; the command line shows the same errors with its own
flag names. Budgets that nothing in the comparison would measure are refused by their
family (see ``perfgate.judge.budgets.check_measured``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from perfgate.backends import is_generative, is_url
from perfgate.backends.base import check_device
from perfgate.judge.budgets import Budget, build_budgets, check_measured, parse_memory_size
from perfgate.errors import UsageError, option
from perfgate.data.inputs import input_options
from perfgate.metrics import Scope, family_of
from perfgate.metrics.base import DEFAULT_MEMORY_FLOOR
from perfgate.judge.resolution import MAX_INSTANCES
from perfgate.results import Settings
from perfgate.specs import MIN_EPISODE_REQUESTS, TASKS, DataSpec, JudgingSpec, MeasuringSpec, ModelSpec
from perfgate.worker.interpreter import locate
from perfgate.worker.protocol import LOAD_FACTOR, MIN_CALL_TIMEOUT_S

DEFAULT_COLD_STARTS = 3  # fresh starts per model where a cold_start budget asks and --cold-starts is not given
# A budget this close to "no change" (a ratio limit within 10 % of 1) is as fine as the
# differences between two processes of the same model (memory layout, CPU placement), so
# by default each model then runs in this many worker instances. 4, not 2: the instance pairs'
# spread is the interval's (stats.with_instance_variation, Student's t with K - 1 degrees of
# freedom); with 2 its t at 99 % is 64 and a 2x slower model stayed inconclusive, with 4 it
# is 5.8, and a ~3 % process effect leaves an A/A interval about +-7 % wide.
TIGHT_BUDGET_MARGIN = 0.10
TIGHT_BUDGET_INSTANCES = 4

# from_options' keywords that are a part's field as they are (the others it parses first)
_PLAIN_KEYWORDS = {
    "data": ("rows", "seed", "pad_value", "allow_nonfinite", "output_rows", "prompt_column"),
    "measuring": ("time_budget_s", "threads", "device", "include_transfers", "signature", "cold_starts", "call_timeout_s", "instances",
                  "max_new_tokens", "chat"),
    "judging": ("confidence",),
}


@dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison needs, validated. Build it with ``from_options``."""

    reference: ModelSpec
    candidate: ModelSpec
    data: DataSpec
    measuring: MeasuringSpec = field(default_factory=MeasuringSpec)
    judging: JudgingSpec = field(default_factory=JudgingSpec)

    def __post_init__(self) -> None:
        data, measuring = self.data, self.measuring
        check_device(measuring.device)
        for model in self.models:
            if model.python is not None:
                locate(model.python, model.option("python"))
        if measuring.include_transfers and not measuring.on_gpu:
            raise UsageError(f"{option('include_transfers')} times host<->device copies, so it needs {option('device', 'cuda')}")
        if not measuring.batch_sizes or any(not _whole(b) or b < 1 for b in measuring.batch_sizes):
            raise UsageError(f"{option('batch_sizes')} must be whole numbers of at least 1, got {list(measuring.batch_sizes)}")
        if len(set(measuring.batch_sizes)) != len(measuring.batch_sizes):
            raise UsageError(f"a batch size is given twice: {list(measuring.batch_sizes)}")
        check_common_options(
            time_budget_s=measuring.time_budget_s, seed=data.seed, call_timeout_s=measuring.call_timeout_s,
            threads=measuring.threads, rows=data.rows, confidence=self.judging.confidence,
        )  # fmt: skip
        if measuring.cold_starts is not None and (not _whole(measuring.cold_starts) or measuring.cold_starts < 0):
            raise UsageError(f"{option('cold_starts')} must be 0 or more, got {measuring.cold_starts!r}")
        if any(not _whole(n) or n < 1 for n in measuring.concurrency):
            raise UsageError(f"{option('concurrency')} must be at least 1, got {list(measuring.concurrency)}")
        if any(not (_number(r) and r > 0) for r in measuring.rates):
            raise UsageError(f"{option('rates')} must be a positive number of requests per second, got {list(measuring.rates)}")
        check_common_options(pad_value=data.pad_value, allow_nonfinite=data.allow_nonfinite)
        self._check_rates_fit_the_time_budget()
        if measuring.instances is not None and (not _whole(measuring.instances) or not 1 <= measuring.instances <= MAX_INSTANCES):
            raise UsageError(f"{option('instances')} must be a whole number from 1 to {MAX_INSTANCES}, got {measuring.instances!r}")
        if not _whole(data.output_rows) or data.output_rows < 0:
            raise UsageError(f"{option('output_rows')} must be 0 or more, got {data.output_rows!r}")
        if not self.judging.budgets:
            raise UsageError("at least one budget is needed")
        self._check_data_sources()
        if measuring.generates:
            self._check_generate_mode()
        check_measured(self.judging.budgets, self.scope)

    @property
    def models(self) -> tuple[ModelSpec, ModelSpec]:
        """The reference and the candidate, in that order (results.SIDES')."""
        return self.reference, self.candidate

    def _check_data_sources(self) -> None:
        """Usage errors for data options that cannot go together (CompareConfig calls this)."""
        for model in self.models:
            if not self.data.file_for(model):
                raise UsageError(
                    f"no data for the {model.role} model: pass {option('data', 'PARQUET')} or {option(model.option('data'), 'PARQUET')}"
                )
        if not self.data_drift:
            return
        drift = f"with {option('reference_data')} and {option('candidate_data')} the models read different files"
        if self.data.size_column is not None:
            raise UsageError(f"{option('size_column', self.data.size_column)} lines both models' calls up on the same rows; {drift}")
        for budget in self.judging.budgets:
            if family_of(budget.metric).needs_same_rows:
                raise UsageError(f"budget {budget}: {budget.metric.family} are compared on the same rows; {drift}")

    def _check_generate_mode(self) -> None:
        """What generate mode does not take: each of these options shapes one-shot calls."""
        data, measuring = self.data, self.measuring
        if not _whole(measuring.max_new_tokens) or measuring.max_new_tokens < 1:
            raise UsageError(f"{option('max_new_tokens')} must be at least 1, got {measuring.max_new_tokens!r}")
        if not isinstance(data.prompt_column, str) or not data.prompt_column:
            raise UsageError(f"{option('prompt_column')} must name a column, got {data.prompt_column!r}")
        task = option("task", "generate")
        if (measuring.concurrency or measuring.rates) and not self.served:
            load = option("concurrency" if measuring.concurrency else "rates")
            raise UsageError(
                f"{load} measures latency under load against served models (http(s):// endpoints); a local generative "
                f"model answers one request at a time in its worker"
            )
        one_shot = {
            "batch_sizes": measuring.batch_sizes != (1,),
            "size_column": data.size_column is not None,
            "cold_starts": bool(measuring.cold_starts),
            "include_transfers": measuring.include_transfers,
            "signature": measuring.signature is not None,
            "inputs": bool(data.inputs) or any(model.inputs for model in self.models),
        }
        for name, given in one_shot.items():
            if given:
                raise UsageError(
                    f"{option(name)} shapes one-shot calls; with {task} each request is one prompt from "
                    f"{option('prompt_column', data.prompt_column)}"
                )

    def _check_rates_fit_the_time_budget(self) -> None:
        # each model serves at least one episode of MIN_EPISODE_REQUESTS arrivals; slower
        # than that, the run would overshoot its time budget (or wait for days) before deciding
        time_budget_s = self.measuring.time_budget_s
        lowest = 2 * MIN_EPISODE_REQUESTS / time_budget_s
        for rate in self.measuring.rates:
            if rate < lowest:
                episode_s = MIN_EPISODE_REQUESTS / rate
                raise UsageError(
                    f"{option('rates', f'{rate:g}')} is too slow for {option('time_budget_s', f'{time_budget_s:g}')}: "
                    f"a load episode of {MIN_EPISODE_REQUESTS} requests per model takes {episode_s:.3g} s at that rate; "
                    f"use a rate of at least {lowest:.3g} requests per second, or a longer time budget"
                )

    def warnings(self) -> tuple[str, ...]:
        """What these settings do to the measurement on this machine: not errors, but worth
        saying before the run and in its report."""
        threads = self.measuring.threads
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if threads > usable:
            return (
                f"{threads} threads per model, but this process may use only {usable} CPU(s): the threads "
                f"take turns on the cores, so the timings include that contention (use at most {usable})",
            )
        return ()

    @property
    def worker_instances(self) -> int:
        """Worker processes per model: as asked, else 2 where a gated ratio budget is within
        TIGHT_BUDGET_MARGIN of no change, else 1."""
        if self.measuring.instances is not None:
            return self.measuring.instances
        tight = any(
            budget.threshold is None and budget.absolute_bytes is None and budget.limit is not None
            and family_of(budget.metric).sensitive_to_instances
            and abs(budget.limit - 1.0) <= TIGHT_BUDGET_MARGIN + 1e-12
            for budget in self.judging.budgets
        )  # fmt: skip
        return TIGHT_BUDGET_INSTANCES if tight else 1

    @property
    def fresh_cold_starts(self) -> int:
        """Fresh worker starts per model: as given, or enough to decide a cold_start budget."""
        if self.measuring.cold_starts is not None:
            return self.measuring.cold_starts
        return DEFAULT_COLD_STARTS if any(family_of(budget.metric).needs_cold_starts for budget in self.judging.budgets) else 0

    @property
    def compares_outputs(self) -> bool:
        """Both models' answers are compared: rows are asked for, and both read the same ones."""
        return self.data.output_rows > 0 and not self.data_drift

    @property
    def scope(self) -> Scope:
        # cold start samples per model: the measuring worker's own start and the fresh ones
        samples = 1 + self.fresh_cold_starts
        measuring = self.measuring
        return Scope(measuring.batch_sizes, bool(measuring.loads), self.data.size_column, samples, measuring.on_gpu, self.compares_outputs,
                     measuring.generates, self.served)  # fmt: skip

    @property
    def served(self) -> bool:
        """Both models are endpoints: timed from this client, their memory unseen."""
        return all(is_url(model.path) for model in self.models)

    @property
    def data_drift(self) -> bool:
        """Each model reads its own file: the comparison is of the data, not of the models."""
        return self.data.file_for(self.reference) != self.data.file_for(self.candidate)

    @classmethod
    def from_options(
        cls,
        reference: str,
        candidate: str,
        data: str | None = None,
        *,
        inputs: Mapping[str, str] | Iterable[str] = (),
        reference_inputs: Mapping[str, str] | Iterable[str] = (),
        candidate_inputs: Mapping[str, str] | Iterable[str] = (),
        reference_backend: str | None = None,
        candidate_backend: str | None = None,
        reference_python: str | None = None,
        candidate_python: str | None = None,
        reference_data: str | None = None,
        candidate_data: str | None = None,
        batch_sizes: Iterable[int] = (1,),
        max_latency_increase: str | float | None = None,
        budgets: Iterable[str | Budget] = (),
        memory_floor: str | float | None = None,
        concurrency: Iterable[int] = (),
        rates: Iterable[float] = (),
        size_column: str | None = None,
        task: str | None = None,
        reference_headers: Iterable[str] = (),
        candidate_headers: Iterable[str] = (),
        **options: Any,
    ) -> "CompareConfig":
        """Parse the options as a user writes them (``'features=f*'``, ``'latency.p95:+10%'``,
        ``memory_floor='8MiB'``); the other options are the parts' fields of the same name
        (``seed``, ``time_budget_s``, ``confidence``...)."""
        plain = {name: part for part, names in _PLAIN_KEYWORDS.items() for name in names}
        unknown = set(options) - set(plain)
        if unknown:
            raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
        given = {part: {name: value for name, value in options.items() if plain[name] == part} for part in _PLAIN_KEYWORDS}
        concurrency, rates = tuple(concurrency), tuple(rates)
        floor = DEFAULT_MEMORY_FLOOR if memory_floor is None else parse_memory_size(memory_floor, option_name="memory_floor")
        shared_inputs = input_options(inputs, "inputs")
        models = (
            ModelSpec("reference", str(reference), reference_backend, reference_python, reference_data,
                      input_options(reference_inputs, "reference_inputs"), _header_lines(reference_headers, "reference_headers")),
            ModelSpec("candidate", str(candidate), candidate_backend, candidate_python, candidate_data,
                      input_options(candidate_inputs, "candidate_inputs"), _header_lines(candidate_headers, "candidate_headers")),
        )  # fmt: skip
        task = resolve_task(task, models)
        scope = Scope(loads=bool(concurrency or rates), size_column=None if size_column is None else "", generate=task == "generate")
        judged = build_budgets(max_latency_increase, budgets, scope=scope)
        return cls(
            *models,
            data=DataSpec(None if data is None else str(data), shared_inputs, size_column=size_column, **given["data"]),
            measuring=MeasuringSpec(tuple(batch_sizes), concurrency=concurrency, rates=rates, task=task, **given["measuring"]),
            judging=JudgingSpec(judged, memory_floor=floor, **given["judging"]),
        )

    def settings(self) -> Settings:
        data, measuring = self.data, self.measuring
        return Settings(
            batch_sizes=() if measuring.generates else measuring.batch_sizes,
            budgets=tuple(str(budget) for budget in self.judging.budgets),
            time_budget_s=float(measuring.time_budget_s),
            confidence=self.judging.confidence,
            seed=data.seed,
            threads=measuring.threads,
            rows=data.rows,
            pad_value=data.pad_value,
            inputs=dict(data.inputs),
            device=measuring.device,
            include_transfers=measuring.include_transfers,
            signature=measuring.signature,
            cold_starts=self.fresh_cold_starts,
            loads=tuple(scenario.label for scenario in measuring.loads),
            size_column=data.size_column,
            memory_floor=self.judging.memory_floor,
            output_rows=0 if self.data_drift else data.output_rows,
            instances=self.worker_instances,
            reference_data=data.file_for(self.reference) if self.data_drift else None,
            candidate_data=data.file_for(self.candidate) if self.data_drift else None,
            **({"task": "generate", "max_new_tokens": measuring.max_new_tokens, "prompt_column": data.prompt_column,
                "chat": measuring.chat} if measuring.generates else {}),
        )


def resolve_task(task: str | None, models: Iterable[ModelSpec]) -> str:
    """The task as asked, checked against the models; or told from them: generate where
    every model is generative, infer where none is."""
    if task is not None and task not in TASKS:
        raise UsageError(f"{option('task')} must be one of {', '.join(TASKS)}, got {task!r}")
    models = tuple(models)
    kinds = {model.role: is_generative(model.path, model.backend) for model in models}
    # a path that is not there tells nothing: loading says it is missing (exit 3), whatever the task
    missing = {model.role for model in models if kinds[model.role] is None and model.backend is None}
    if task is None:
        generative = [role for role, kind in kinds.items() if kind]
        if not generative:
            return "infer"
        if len(generative) + len(missing) == len(kinds):
            return "generate"
        other = next(model for model in models if not kinds[model.role])
        unknown = kinds[other.role] is None
        raise UsageError(
            f"the {generative[0]} is a generative model and the {other.role} {'may be one' if unknown else 'is not'} "
            f"({other.path!r}); {'pass ' + option('task', 'generate') + ' where it is' if unknown else 'compare two of a kind'}"
        )
    for model in models:
        kind = kinds[model.role]
        if task == "generate" and kind is False:
            raise UsageError(
                f"{option('task', 'generate')}: the {model.role} ({model.path!r}) is not a generative model: a Hugging Face "
                f"causal LM directory, an ONNX Runtime GenAI folder or an http(s):// endpoint"
            )
        if task == "infer" and kind:
            raise UsageError(
                f"{option('task', 'infer')}: the {model.role} ({model.path!r}) is a generative model, timed per request: "
                f"use {option('task', 'generate')}"
            )
    return task


def _header_lines(lines: Iterable[str] | str, name: str) -> tuple[str, ...]:
    if isinstance(lines, str):
        lines = (lines,)
    lines = tuple(lines)
    if not all(isinstance(line, str) for line in lines):
        raise UsageError(f"{option(name)} takes 'Name: value' strings")
    return lines


def check_common_options(**given: Any) -> None:
    """The options that several commands share (compare, run, calibrate, measure), checked
    one way whichever command takes them: each keyword given is checked, in the API's words."""
    if "time_budget_s" in given:
        check_time_budget(given["time_budget_s"])
    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "seed": (lambda v: _whole(v) and v >= 0, "a whole number of 0 or more"),
        "call_timeout_s": (lambda v: _number(v) and v > 0, "a positive number of seconds"),
        "threads": (lambda v: _whole(v) and v >= 1, "at least 1"),
        "rows": (lambda v: v is None or (_whole(v) and v >= 1), "at least 1"),
        "confidence": (lambda v: _number(v) and 0.5 <= v < 1.0, "at least 0.5 and below 1"),
    }
    for name, value in given.items():
        if name in checks:
            valid, expected = checks[name]
            if not valid(value):
                raise UsageError(f"{option(name)} must be {expected}, got {value!r}")
    if "call_timeout_s" in given and given["call_timeout_s"] < MIN_CALL_TIMEOUT_S:  # see MIN_CALL_TIMEOUT_S: nothing could be measured
        raise UsageError(
            f"{option('call_timeout_s')} must be at least {MIN_CALL_TIMEOUT_S:g} s, got {given['call_timeout_s']!r}: under it "
            f"no worker could start and load (which may take {LOAD_FACTOR}x {option('call_timeout_s')}), let alone answer a call"
        )
    if "pad_value" in given and not (_number(given["pad_value"]) or given.get("allow_nonfinite")):
        raise UsageError(f"{option('pad_value')} must be a finite number, got {given['pad_value']!r} (or pass {option('allow_nonfinite')})")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The longest time budget taken: a week. No CI job runs longer (GitHub's self-hosted runners
# stop a job at 5 days, its hosted ones at 6 hours), and a larger number is a typo or a
# "forever" that would overflow the arithmetic sizing blocks and deadlines (1e308 did:
# OverflowError, float infinity to integer).
MAX_TIME_BUDGET_S = 7 * 24 * 3600.0


def check_time_budget(value: Any) -> None:
    """UsageError unless ``value`` is a time budget in seconds: a finite number above 0 and
    at most MAX_TIME_BUDGET_S. Every face's time budget (compare, run, calibrate) comes here."""
    if not (_number(value) and value > 0):
        raise UsageError(f"{option('time_budget_s')} must be a positive number of seconds, got {value!r}")
    if value > MAX_TIME_BUDGET_S:
        raise UsageError(
            f"{option('time_budget_s')} must be at most {MAX_TIME_BUDGET_S:.0f} seconds (a week), got {value:g}"
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
