"""CompareConfig: everything a comparison needs, validated, in the Python API's words.

Errors name options by their keyword here (``time_budget_s``, ``include_transfers``)
through ``perfgate.errors.option``; the command line shows the same errors with its own
flag names. Budgets that nothing in the comparison would measure are refused by their
family (see ``perfgate.budgets.check_measured``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from perfgate.backends.base import BackendOptions, check_device
from perfgate.budgets import Budget, build_budgets, check_measured, parse_memory_size
from perfgate.errors import UsageError, option
from perfgate.inputs import input_options
from perfgate.metrics import Scope, family_of
from perfgate.metrics.base import DEFAULT_MEMORY_FLOOR
from perfgate.measurements import LoadScenario
from perfgate.results import SIDES, Settings
from perfgate.runner import MIN_EPISODE_REQUESTS
from perfgate.worker.interpreter import locate
from perfgate.worker.protocol import DEFAULT_CALL_TIMEOUT_S, LOAD_FACTOR, MIN_CALL_TIMEOUT_S

DEFAULT_COLD_STARTS = 3  # fresh starts per model where a cold_start budget asks and --cold-starts is not given
DEFAULT_OUTPUT_ROWS = 256  # rows whose outputs both models compute, untimed, to compare their answers
# A budget this close to "no change" (a ratio limit within 10 % of 1) is as fine as the
# differences between two processes of the same model (memory layout, CPU placement), so
# by default each model then runs in this many worker instances.
TIGHT_BUDGET_MARGIN = 0.10
TIGHT_BUDGET_INSTANCES = 2


@dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison needs, validated. Build it with ``from_options``."""

    reference: str
    candidate: str
    data: str | None  # the rows for both models, unless a side has its own (data drift)
    inputs: Mapping[str, str] = field(default_factory=dict)
    reference_inputs: Mapping[str, str] = field(default_factory=dict)  # this model's only: --reference-input
    candidate_inputs: Mapping[str, str] = field(default_factory=dict)
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
    cold_starts: int | None = None  # fresh starts beyond each measuring worker's own; None: as the budgets need
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    size_column: str | None = None
    memory_floor: float = DEFAULT_MEMORY_FLOOR  # bytes
    allow_nonfinite: bool = False  # feed NaN and infinite values instead of refusing them
    output_rows: int = DEFAULT_OUTPUT_ROWS
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # a model call running longer is taken to hang
    instances: int | None = None  # worker processes per model; None: 2 for a tight budget, else 1
    reference_python: str | None = None  # another environment's interpreter runs this side's worker
    candidate_python: str | None = None
    reference_data: str | None = None  # this side's own rows instead of data's: data drift
    candidate_data: str | None = None

    def __post_init__(self) -> None:
        check_device(self.device)
        for side in ("reference", "candidate"):
            if getattr(self, f"{side}_python") is not None:
                locate(getattr(self, f"{side}_python"), f"{side}_python")
        if self.include_transfers and not self.on_gpu:
            raise UsageError(f"{option('include_transfers')} times host<->device copies, so it needs {option('device', 'cuda')}")
        if not self.batch_sizes or any(not _whole(b) or b < 1 for b in self.batch_sizes):
            raise UsageError(f"{option('batch_sizes')} must be whole numbers of at least 1, got {list(self.batch_sizes)}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise UsageError(f"a batch size is given twice: {list(self.batch_sizes)}")
        check_common_options(
            time_budget_s=self.time_budget_s, seed=self.seed, call_timeout_s=self.call_timeout_s, threads=self.threads,
            rows=self.rows, confidence=self.confidence,
        )  # fmt: skip
        if self.cold_starts is not None and (not _whole(self.cold_starts) or self.cold_starts < 0):
            raise UsageError(f"{option('cold_starts')} must be 0 or more, got {self.cold_starts!r}")
        if any(not _whole(n) or n < 1 for n in self.concurrency):
            raise UsageError(f"{option('concurrency')} must be at least 1, got {list(self.concurrency)}")
        if any(not (_number(r) and r > 0) for r in self.rates):
            raise UsageError(f"{option('rates')} must be a positive number of requests per second, got {list(self.rates)}")
        check_common_options(pad_value=self.pad_value, allow_nonfinite=self.allow_nonfinite)
        self._check_rates_fit_the_time_budget()
        if self.instances is not None and (not _whole(self.instances) or not 1 <= self.instances <= 8):
            raise UsageError(f"{option('instances')} must be a whole number from 1 to 8, got {self.instances!r}")
        if not _whole(self.output_rows) or self.output_rows < 0:
            raise UsageError(f"{option('output_rows')} must be 0 or more, got {self.output_rows!r}")
        if not self.budgets:
            raise UsageError("at least one budget is needed")
        self._check_data_sources()
        check_measured(self.budgets, self.scope)

    def _check_data_sources(self) -> None:
        """Usage errors for data options that cannot go together (CompareConfig calls this)."""
        for side in SIDES:
            if not self.data_for(side):
                raise UsageError(f"no data for the {side} model: pass {option('data', 'PARQUET')} or {option(f'{side}_data', 'PARQUET')}")
        if not self.data_drift:
            return
        drift = f"with {option('reference_data')} and {option('candidate_data')} the models read different files"
        if self.size_column is not None:
            raise UsageError(f"{option('size_column', self.size_column)} lines both models' calls up on the same rows; {drift}")
        for budget in self.budgets:
            if family_of(budget.metric).needs_same_rows:
                raise UsageError(f"budget {budget}: {budget.metric.family} are compared on the same rows; {drift}")

    def _check_rates_fit_the_time_budget(self) -> None:
        # each model serves at least one episode of MIN_EPISODE_REQUESTS arrivals; slower
        # than that, the run would overshoot its time budget (or wait for days) before deciding
        lowest = 2 * MIN_EPISODE_REQUESTS / self.time_budget_s
        for rate in self.rates:
            if rate < lowest:
                episode_s = MIN_EPISODE_REQUESTS / rate
                raise UsageError(
                    f"{option('rates', f'{rate:g}')} is too slow for {option('time_budget_s', f'{self.time_budget_s:g}')}: "
                    f"a load episode of {MIN_EPISODE_REQUESTS} requests per model takes {episode_s:.3g} s at that rate; "
                    f"use a rate of at least {lowest:.3g} requests per second, or a longer time budget"
                )

    def warnings(self) -> tuple[str, ...]:
        """What these settings do to the measurement on this machine: not errors, but worth
        saying before the run and in its report."""
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.threads > usable:
            return (
                f"{self.threads} threads per model, but this process may use only {usable} CPU(s): the threads "
                f"take turns on the cores, so the timings include that contention (use at most {usable})",
            )
        return ()

    @property
    def worker_instances(self) -> int:
        """Worker processes per model: as asked, else 2 where a gated ratio budget is within
        TIGHT_BUDGET_MARGIN of no change, else 1."""
        if self.instances is not None:
            return self.instances
        tight = any(
            budget.threshold is None and budget.absolute_bytes is None and budget.limit is not None
            and family_of(budget.metric).sensitive_to_instances
            and abs(budget.limit - 1.0) <= TIGHT_BUDGET_MARGIN + 1e-12
            for budget in self.budgets
        )  # fmt: skip
        return TIGHT_BUDGET_INSTANCES if tight else 1

    @property
    def on_gpu(self) -> bool:
        return self.backend_options().on_gpu

    @property
    def fresh_cold_starts(self) -> int:
        """Fresh worker starts per model: as given, or enough to decide a cold_start budget."""
        if self.cold_starts is not None:
            return self.cold_starts
        return DEFAULT_COLD_STARTS if any(family_of(budget.metric).needs_cold_starts for budget in self.budgets) else 0

    @property
    def scope(self) -> Scope:
        outputs = self.output_rows > 0 and not self.data_drift
        # cold start samples per model: the measuring worker's own start and the fresh ones
        samples = 1 + self.fresh_cold_starts
        return Scope(self.batch_sizes, bool(self.loads), self.size_column, samples, self.on_gpu, outputs)

    def data_for(self, side: str) -> str:
        """The Parquet file (a path or a URI) whose rows feed ``side``'s model."""
        return getattr(self, f"{side}_data") or self.data

    @property
    def data_drift(self) -> bool:
        """Each model reads its own file: the comparison is of the data, not of the models."""
        return self.data_for("reference") != self.data_for("candidate")

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
        data: str | None = None,
        *,
        inputs: Mapping[str, str] | Iterable[str] = (),
        reference_inputs: Mapping[str, str] | Iterable[str] = (),
        candidate_inputs: Mapping[str, str] | Iterable[str] = (),
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
        concurrency, rates = tuple(concurrency), tuple(rates)
        floor = DEFAULT_MEMORY_FLOOR if memory_floor is None else parse_memory_size(memory_floor, option_name="memory_floor")
        return cls(
            reference=str(reference),
            candidate=str(candidate),
            data=None if data is None else str(data),
            inputs=input_options(inputs, "inputs"),
            reference_inputs=input_options(reference_inputs, "reference_inputs"),
            candidate_inputs=input_options(candidate_inputs, "candidate_inputs"),
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
            cold_starts=self.fresh_cold_starts,
            loads=tuple(scenario.label for scenario in self.loads),
            size_column=self.size_column,
            memory_floor=self.memory_floor,
            output_rows=0 if self.data_drift else self.output_rows,
            instances=self.worker_instances,
            reference_data=self.data_for("reference") if self.data_drift else None,
            candidate_data=self.data_for("candidate") if self.data_drift else None,
        )


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
