"""What a comparison measured, as plain immutable dataclasses: the samples of each batch
size (block pair by block pair), a generative model's requests, the load episodes, the cold starts, where a batch's time
went, the noise, latency against input size, and both models' outputs compared.

A ``Report`` (perfgate/results.py) holds them beside its verdict and checks; the worker
protocol builds on them too, so this module imports nothing of perfgate's. The JSON form
lives in ``perfgate.report.json``; a change to what is written here is a schema change
(``SCHEMA_VERSION`` and its history in perfgate/results.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


def concatenated(blocks: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """All of the blocks' samples in one array (an empty int64 array for no blocks)."""
    return np.concatenate(blocks) if len(blocks) else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class LoadEpisode:
    """One model's load episode (see the worker protocol's LoadPlan)."""

    queue_ns: tuple[int, ...]  # per request: from arrival to the start of its call
    service_ns: tuple[int, ...]  # per request: the call itself
    duration_ns: int  # from the episode's start to the last request's completion


@dataclass(frozen=True)
class RequestTiming:
    """One generation request of a generative model, in ns by its worker's clock: to its
    first new token (TTFT: the request's set-up, the prefill and the first token's choice),
    the gaps between consecutive new tokens (inter-token latency), and to the call's return
    (end to end). ``prompt``: the index of its prompt among those the worker was handed."""

    prompt: int
    ttft_ns: int
    gaps_ns: tuple[int, ...]  # tokens - 1 of them
    e2e_ns: int
    tokens: int  # new tokens produced
    prompt_tokens: int = 0  # the prompt's length in tokens (0: not known)
    counted_by: str = "model"  # "model", "usage" (a server's count) or "chunks" (one per streamed chunk)
    # the request's greedy answer (new token ids, or a served model's text), from the worker to
    # the engine, which compares the two models' (perfgate.engine.generation) and drops it
    answer: tuple[int, ...] | str | None = field(default=None, compare=False, repr=False, metadata={"transient": True})


@dataclass(frozen=True)
class GenerationSeries:
    """A generative model's requests, in block pairs: block pair i is the same prompts
    (``prompts[i]``, indices into the prompt column's rows read) requested of the reference
    and of the candidate, each for ``max_new_tokens`` new tokens, the model named in
    ``first[i]`` first; ``instances[i]`` the worker instance pair that ran it (empty: one)."""

    max_new_tokens: int
    prompt_count: int  # prompts read from the data
    reference: tuple[tuple[RequestTiming, ...], ...]
    candidate: tuple[tuple[RequestTiming, ...], ...]
    prompts: tuple[tuple[int, ...], ...]
    first: tuple[str, ...]
    instances: tuple[int, ...] = ()
    warmup_s: Mapping[str, float] = field(default_factory=dict)  # per model: a typical request's seconds in the warm-up
    # None: one request at a time; else each block is a load episode of a served model's
    # requests in flight together (--concurrency, --rate)
    scenario: LoadScenario | None = None

    @property
    def label(self) -> str:
        """Where its checks were measured: '' one request at a time, else 'concurrency 4'."""
        return "" if self.scenario is None else self.scenario.label

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def blocks(self, side: str) -> tuple[tuple[RequestTiming, ...], ...]:
        return self.reference if side == "reference" else self.candidate

    def requests(self, side: str) -> tuple[RequestTiming, ...]:
        return tuple(request for block in self.blocks(side) for request in block)

    def counted_by(self, side: str) -> str:
        """How the side's new tokens were counted ("model", "usage", "chunks", or "usage, chunks")."""
        return ", ".join(sorted({request.counted_by for request in self.requests(side)})) or "model"


@dataclass(frozen=True)
class GenerationsCompared:
    """Both models' greedy answers to the same prompts, outside the timed requests: the
    share that agree token for token, and where they first part. A served model's answer
    is text, compared character by character (``unit``)."""

    prompts: tuple[int, ...]  # indices into the prompts read
    max_new_tokens: int
    exact: tuple[bool, ...]  # per prompt: the answers are equal
    first_difference: tuple[int | None, ...]  # per prompt: position of the first differing token (None: equal)
    lengths: Mapping[str, tuple[int, ...]]  # per side, per prompt: the answer's length
    unit: str = "tokens"  # or "characters"

    @property
    def agreement(self) -> float:
        return sum(self.exact) / len(self.exact) if self.exact else 1.0

    @property
    def mean_first_difference(self) -> float | None:
        differing = [position for position in self.first_difference if position is not None]
        return sum(differing) / len(differing) if differing else None


@dataclass(frozen=True)
class WarmUpSummary:
    calls: int
    seconds: float
    typical_ns: float
    shapes: int


@dataclass(frozen=True)
class Series:
    """The samples of one batch size. Block pair i is ``reference[i]`` and ``candidate[i]``:
    the same ``calls_per_block`` batches from ``starts[i]`` on, run back to back, the model
    named in ``first[i]`` first."""

    batch_size: int
    calls_per_block: int
    batches: int
    reference: tuple[np.ndarray, ...]
    candidate: tuple[np.ndarray, ...]
    starts: tuple[int, ...]
    first: tuple[str, ...]  # "reference" or "candidate"
    warmup: Mapping[str, WarmUpSummary] = field(default_factory=dict)
    # per side, per block pair: ns of a throughput window of calls_per_block calls back to back
    windows: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # per block pair: which worker instance of each model ran it (pair i: reference and
    # candidate instance ``instances[i]``); empty when each model ran in one worker
    instances: tuple[int, ...] = ()

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def blocks(self, side: str) -> tuple[np.ndarray, ...]:
        return self.reference if side == "reference" else self.candidate

    def samples(self, side: str) -> np.ndarray:
        return concatenated(self.blocks(side))


@dataclass(frozen=True)
class LoadScenario:
    """Latency under load: ``clients`` closed-loop clients, or Poisson arrivals at ``rate``/s."""

    kind: str  # "closed" or "open"
    clients: int = 1
    rate: float = 0.0

    @property
    def label(self) -> str:
        return f"concurrency {self.clients}" if self.kind == "closed" else f"rate {self.rate:g}/s"


@dataclass(frozen=True)
class LoadSeries:
    """The load episodes of one scenario. Episode pair i ran the same arrivals (``seeds[i]``)
    on both models, ``first[i]`` first; per episode, per request: queueing and service ns."""

    scenario: LoadScenario
    batch_size: int
    requests: int  # per episode
    reference: tuple[LoadEpisode, ...]
    candidate: tuple[LoadEpisode, ...]
    first: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def pairs(self) -> int:
        return len(self.reference)

    def episodes(self, side: str) -> tuple[LoadEpisode, ...]:
        return self.reference if side == "reference" else self.candidate

    def latencies(self, side: str) -> tuple[np.ndarray, ...]:
        """Per episode: each request's queueing plus service ns."""
        return tuple(np.add(e.queue_ns, e.service_ns, dtype=np.int64) for e in self.episodes(side))

    def part(self, side: str, which: str) -> np.ndarray:
        """All requests' "queue_ns" or "service_ns"."""
        return concatenated([np.asarray(getattr(e, which), dtype=np.int64) for e in self.episodes(side)])

    def offered_load(self, side: str) -> float | None:
        """Open loop: arrival rate x mean service time, the share of time the model must serve
        to keep up (1 or more: it cannot). None for a closed loop, which is always busy."""
        if self.scenario.kind != "open":
            return None
        return self.scenario.rate * float(np.mean(self.part(side, "service_ns"))) / 1e9

    def throughput(self, side: str) -> float:
        """Achieved samples per second over all episodes."""
        episodes = self.episodes(side)
        seconds = sum(e.duration_ns for e in episodes) / 1e9
        return len(episodes) * self.requests * self.batch_size / seconds if seconds else 0.0


@dataclass(frozen=True)
class ColdStartRecord:
    """One worker, from starting the process to the end of its first inference."""

    total_seconds: float  # by the parent's clock
    setup_seconds: float  # importing and configuring the framework
    load_seconds: float
    prepare_seconds: float
    first_call_seconds: float
    # the worker that then measured (started and loading beside the other model's), not a fresh one
    measuring_worker: bool = False

    @property
    def process_seconds(self) -> float:
        """Starting the interpreter and perfgate's worker, and talking to it."""
        return self.total_seconds - self.setup_seconds - self.load_seconds - self.prepare_seconds - self.first_call_seconds


@dataclass(frozen=True)
class Stages:
    """Where a batch's time goes, per model: seconds per batch."""

    batch_size: int
    read: float  # reading the rows from Parquet (once, for both models)
    tensors: Mapping[str, float]  # columns -> the model's tensors (stacking, padding, casting)
    backend: Mapping[str, float]  # the backend's prepare (framework tensors, device copies)
    model: Mapping[str, float]  # the model call (p50)


@dataclass(frozen=True)
class Noise:
    """How noisy the machine was while one batch size was measured, from its own blocks.
    Each number is a spread on the log scale (0.05: about 5 %); None where too few blocks."""

    batch_size: int
    block_spread: Mapping[str, float | None]  # per model: the standard deviation of its blocks' log-medians
    pair_spread: float | None  # what pairing leaves: the spread of log(candidate median / reference median) per pair
    drift: Mapping[str, float | None]  # per model: block-to-block movement beyond its call-to-call spread


@dataclass(frozen=True)
class SizeBucket:
    low: float
    high: float
    calls: Mapping[str, int]
    p50: Mapping[str, float]  # ns
    p95: Mapping[str, float]


@dataclass(frozen=True)
class SizeAnalysis:
    """Latency against input size at one batch size: per-bucket percentiles and fitted lines."""

    batch_size: int
    column: str
    buckets: tuple[SizeBucket, ...]
    slope: Mapping[str, float]  # ns per unit of the size column
    intercept: Mapping[str, float]
    batch_totals: tuple[float, ...] = ()  # each batch's total of the size column, by batch index


@dataclass(frozen=True)
class OutputDifference:
    """One output of both models on the same rows, and how far apart the two are. Rows
    are the Parquet file's row numbers; differences are over the values finite in both."""

    reference_output: str
    candidate_output: str
    row_shape: tuple[int | None, ...]  # one row's shape; None where it varies between batches
    rows: int
    values: int  # values per model
    non_finite: Mapping[str, int]  # per side: NaN and Inf values
    nan: Mapping[str, int]  # per side: of those, NaN
    first_non_finite_row: Mapping[str, int | None]
    max_abs_diff: float | None = None
    max_abs_diff_row: int | None = None
    mean_abs_diff: float | None = None
    cosine: float | None = None  # each row's cosine similarity (its values as one vector), mean over rows
    cosine_min: float | None = None
    cosine_min_row: int | None = None
    # the share of argmax positions (over the last axis) that agree; None where the output
    # has no class axis (a last axis of 2 or more)
    top1_agreement: float | None = None
    top1_positions: int = 0

    @property
    def label(self) -> str:
        """The output's name, or both names where the two models name it differently."""
        if self.reference_output == self.candidate_output:
            return self.reference_output
        return f"{self.reference_output}/{self.candidate_output}"


@dataclass(frozen=True)
class OutputsCompared:
    """Both models run on the same batches, outside the timed region, and their outputs
    compared: ``batches`` of ``batch_size`` (the first batch size), drawn with ``seed``
    from the ``total_batches`` each model holds; ``rows`` are their Parquet row numbers."""

    batch_size: int
    batches: tuple[int, ...]
    rows: tuple[int, ...]
    seed: int
    total_batches: int
    outputs: tuple[OutputDifference, ...]
    note: str = ""  # outputs that could not be compared, and why
    # NaN/Inf fed on purpose (allow_nonfinite): NaN/Inf outputs are then expected, so they
    # are reported, not judged
    nonfinite_inputs: bool = False

