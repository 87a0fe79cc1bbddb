"""What a comparison found, as plain immutable dataclasses.

A report holds what was compared, the settings, the environment, the checks with their
verdicts, and the raw samples (in ns, block by block) from which the checks were
computed, so that a saved report can be rendered again, or judged again with other
budgets, later. What was measured (the samples, load episodes, cold starts, noise, sizes,
outputs) is ``perfgate.measurements``; this module holds the rest, with ``SCHEMA_VERSION``
and its history, so that a schema change is made and read here. It sits at the bottom of
the house with ``perfgate.measurements``, the one module of perfgate's it imports, so
that every other module (the worker protocol included) can build on it. The JSON form
lives in ``perfgate.report.json``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from perfgate.measurements import (
    ColdStartRecord,
    GenerationSeries,
    GenerationsCompared,
    LoadSeries,
    Noise,
    OutputsCompared,
    Series,
    SizeAnalysis,
    Stages,
)

SCHEMA_VERSION = 6
READABLE_SCHEMA_VERSIONS = (2, 3, 4, 5, 6)
# Schema history: bump on any change a reader has to know about, and say what changed.
#   1 (2026-11-22) first version: verdict, compared, settings, environment, run, checks,
#                  series with raw samples per block pair, warnings, error.
#   2 (2026-11-22) checks: max_ratio became limit (a lower bound for higher-is-better
#                  metrics), with unit, scenario, higher_is_better, absolute_limit, and
#                  budget null with verdict "info" for metrics reported without a budget;
#                  batch_size null for per-model metrics. series: throughput windows.
#                  New: loads, cold_starts, stages, sizes; compared.<side>.memory.
#   3 (2026-11-22) sizes: batch_totals (each batch's total of the size column), so that
#                  a saved report's latency_slope can be judged again. Version 2 reports
#                  are still read; their slope cannot be judged again.
#   4 (2026-11-22) outputs: both models' outputs compared on the same rows (which rows,
#                  and per output the differences, cosine, top-1 agreement and NaN/Inf
#                  counts); settings.output_rows; checks of the outputs family, whose
#                  budgets are thresholds on a value (">=0.99"), their bound in limit;
#                  outputs.nonfinite_inputs (NaN/Inf fed on purpose: NaN/Inf outputs are info).
#                  Version 2 and 3 reports are still read; they hold no outputs.
#   5 (2026-11-23) series.pairs[].instance: which worker instance of each model ran the
#                  pair (several per model: --instances), settings.instances. Older
#                  reports: one instance, all pairs instance 0.
#                  compared.<side>.python: the interpreter a side's worker ran under
#                  (executable, version, prefix), where --reference-python/--candidate-python
#                  named one; environment.frameworks: "1.20.1 (reference) vs 1.32.0 (candidate)"
#                  where the two sides ran one framework at two versions. Older reports: {}.
#                  data drift: compared.data.compares ("models", or "data" where each model
#                  read its own file), compared.data.candidate_path and candidate_rows_total;
#                  settings.reference_data and candidate_data. Older reports read as "models".
#                  parts: a merged report (``perfgate merge``) holds each CI job's report
#                  as a named part, and the worst of their verdicts; a single report has
#                  none. Earlier reports are still read.
#                  checks: detectable, the smallest change a statistical check's samples
#                  detect (80 % power, at its ci_level), as a ratio; null where there is no
#                  interval. Older reports are still read; their checks have none.
#                  cold_starts: each model's first record is its measuring worker's own
#                  start (measuring_worker: true; process start to loaded by the parent's
#                  clock, then its first batch's preparation and its first call), fresh
#                  workers' records after it. series: windows empty where none were
#                  measured (a CPU without a throughput budget): throughput is read from
#                  the latency blocks' sums. Older reports are read as they are.
#                  noise: per batch size, how noisy the run was (the spread of each model's
#                  block medians, of the pairs' log-ratios, and each model's drift between
#                  blocks). Older reports are still read; they hold no noise.
#   6 (2026-12-07) generate mode (generative models, timed per request): generations, per
#                  request block pairs, each request's prompt index, ttft_ns, gaps_ns,
#                  e2e_ns, tokens, prompt_tokens and counted_by (with each pair's prompts,
#                  first and instance, and each model's warm-up seconds per request);
#                  answers, both models' greedy answers compared (exact per prompt, first
#                  difference, lengths, unit); settings.task, max_new_tokens, prompt_column
#                  and chat. A generate-mode report holds no series. Each generations
#                  entry's scenario (null, or a served model's load scenario, with its
#                  label) says where it was measured. Older reports are still read: task
#                  "infer", no generations, no answers.

SIDES = ("reference", "candidate")


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    INFO = "info"  # a check measured and reported without a budget; never part of the verdict


class Metric(str):
    """A metric's name as budgets and reports write it (``latency.p95``), carrying what
    the name means: its family, its quantile (latency and load; None is the mean), the
    batch size it is pinned to (``throughput.batch32``) and its direction.

    It is a ``str`` so that a metric compares, hashes and serializes as its name; the
    family module that parsed it (see ``perfgate.metrics``) gives it its meaning.
    """

    family: str
    quantile: float | None
    batch_size: int | None
    higher_is_better: bool

    def __new__(
        cls,
        name: str,
        family: str,
        quantile: float | None = None,
        batch_size: int | None = None,
        higher_is_better: bool = False,
    ) -> "Metric":
        self = super().__new__(cls, name)
        self.__dict__.update(family=family, quantile=quantile, batch_size=batch_size, higher_is_better=higher_is_better)
        return self

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Metric cannot be changed")

    def __reduce__(self) -> tuple:
        return (Metric, (self.name, self.family, self.quantile, self.batch_size, self.higher_is_better))

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, family={self.family!r})"


@dataclass(frozen=True)
class Environment:
    """What machine a comparison ran on: enough to tell two runs' conditions apart."""

    os: str
    kernel: str
    machine: str
    cpu: str
    logical_cpus: int
    usable_cpus: int
    memory_gib: float | None
    python: str
    ci: str | None  # the CI service, when one is detected
    packages: Mapping[str, str] = field(default_factory=dict)
    frameworks: Mapping[str, str] = field(default_factory=dict)  # as the workers report them


@dataclass(frozen=True)
class BackendInfo:
    """What a loaded backend reports about itself, for the report."""

    backend: str
    framework: str
    framework_version: str
    device: str
    threads: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedInput:
    """What a model input was fed, for the report."""

    input: str
    columns: tuple[str, ...]
    rule: str
    column_types: tuple[str, ...]
    dtype: str
    row_shape: tuple[int | None, ...] | None  # None where padding makes the length vary by batch
    padded: bool


@dataclass(frozen=True)
class Check:
    """One metric at one place (a batch size, a load scenario, or the model as a whole),
    against its budget, or reported for information where it has none."""

    metric: Metric
    batch_size: int | None  # None for per-model metrics (memory, cold start)
    verdict: Verdict
    reason: str
    reference: float | None  # the metric's value, in ``unit``
    candidate: float | None
    ratio: float | None
    ci: tuple[float, float] | None
    ci_level: float | None
    n_reference: int
    n_candidate: int
    blocks: int
    unit: str = "ns"  # ns, samples/s, bytes, ns/<size column>
    scenario: str = ""  # "concurrency 4", "rate 500/s", the size column, or ""
    higher_is_better: bool = False
    budget: str | None = None  # "+15%"; None: reported only
    limit: float | None = None  # the ratio bound (upper, or lower where higher is better); outputs: the threshold
    absolute_limit: float | None = None  # memory: the allowed increase in bytes
    mann_whitney_p: float | None = None
    mann_whitney_note: str = ""
    # the smallest change these samples detect with 80 % power at ci_level, as a ratio in the
    # direction that hurts (1.042: +4.2 %; higher-is-better: 0.96); see perfgate/judge/resolution.py
    detectable: float | None = None


@dataclass(frozen=True)
class ModelReport:
    path: str
    backend: BackendInfo
    inputs: tuple[PreparedInput, ...]
    load_seconds: float
    cpus: tuple[int, ...] = ()  # the CPUs the worker was pinned to
    # bytes: peak_rss (while inferring), rss, load_rss (loading the model), framework_rss
    # (importing the framework), device peaks where the framework gives them; and
    # peak_includes_load where the kernel did not let the peak be reset after loading
    memory: Mapping[str, Any] = field(default_factory=dict)
    setup_seconds: float = 0.0
    # the Python the worker ran under (executable, version, prefix: its environment), for
    # both sides where --reference-python or --candidate-python named one; empty otherwise
    python: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DataReport:
    path: str  # both models' rows; with data drift, the reference's
    rows_total: int
    rows_used: int  # per model
    seed: int
    compares: str = "models"  # "data": the same rows count from two files (data drift), so any change is the data's
    candidate_path: str | None = None  # data drift: the candidate's own file
    candidate_rows_total: int | None = None


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...]
    budgets: tuple[str, ...]
    time_budget_s: float
    confidence: float
    seed: int
    threads: int
    rows: int | None
    pad_value: float
    inputs: Mapping[str, str]
    device: str = "cpu"
    include_transfers: bool = False
    signature: str | None = None
    cold_starts: int = 0
    loads: tuple[str, ...] = ()  # "concurrency 4", "rate 500/s"
    size_column: str | None = None
    memory_floor: float = 0.0  # bytes
    output_rows: int = 0  # rows whose outputs are compared (0: none)
    instances: int = 1  # worker processes per model
    reference_data: str | None = None  # data drift: each model's own file (None: both read compared.data.path)
    candidate_data: str | None = None
    task: str = "infer"  # "generate": generative models, timed per request
    max_new_tokens: int | None = None  # generate mode: new tokens per request
    prompt_column: str | None = None  # generate mode
    chat: bool = False


@dataclass(frozen=True)
class RunSummary:
    looks: int
    measure_seconds: float
    total_seconds: float
    stopped_because: str  # "decided" or "time budget"


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    reason: str
    reference: ModelReport | None
    candidate: ModelReport | None
    data: DataReport | None
    settings: Settings | None
    environment: Environment | None
    run: RunSummary | None
    checks: tuple[Check, ...] = ()
    series: tuple[Series, ...] = ()
    loads: tuple[LoadSeries, ...] = ()
    cold_starts: Mapping[str, tuple[ColdStartRecord, ...]] = field(default_factory=dict)
    stages: tuple[Stages, ...] = ()
    sizes: tuple[SizeAnalysis, ...] = ()
    outputs: OutputsCompared | None = None
    generations: tuple[GenerationSeries, ...] = ()  # generate mode: the requests (series holds none)
    answers: GenerationsCompared | None = None  # generate mode: both models' greedy answers compared
    warnings: tuple[str, ...] = ()
    noise: tuple[Noise, ...] = ()
    error: ErrorInfo | None = None
    perfgate_version: str = ""
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    # a merged report: each part's own report, named; its verdict is the worst of theirs
    parts: tuple["ReportPart", ...] = ()


@dataclass(frozen=True)
class ReportPart:
    """One CI job's report in a merged report, by the name the merge gave it (its file's
    name, or as much of its path as tells it apart from the others)."""

    name: str
    report: Report
