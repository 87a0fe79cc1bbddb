"""What the parent and a worker process say to each other: one message type per call,
and the answers.

This module sits just above ``perfgate.results`` and ``perfgate.measurements`` and imports
nothing else of perfgate's that could import it back, so results, the runner and the core
can all use its types.
Each call is a frozen dataclass; ``name`` is how errors name it ("the worker died during
'run_block'"), and ``phases`` how a hang names where it stopped. The worker answers
("ok", value) or ("error", class name, message, traceback); a call of several phases
announces each phase after the first with ("phase", index), so that the parent can give
each its own time limit (a cold start: loading, then the first call). See
``perfgate.worker.core.serve``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from perfgate.backends.base import BackendOptions
from perfgate.measurements import LoadEpisode, RequestTiming
from perfgate.results import BackendInfo
from perfgate.tensors import TensorSpec

__all__ = [
    "LoadEpisode", "LoadRequest", "ModelInfo", "LoadPlan", "StartPhases", "WarmUp", "Call",
    "LoadModel", "SetFeeds", "WarmUpModel", "RunBlock", "RunWindow", "RunLoad", "ReadMemory",
    "FirstInference", "OwnColdStart", "RunOutputs", "BlockMemory", "Shutdown", "Timeout", "call_limit", "load_limit",
    "RequestTiming", "SetPrompts", "RunRequests", "RunRequestLoad", "RunGenerations", "requests_timeout",
]  # fmt: skip

SETUP_TIMEOUT_S = 300.0
DEFAULT_CALL_TIMEOUT_S = 60.0
HANG_FACTOR = 50  # a step that takes 50 times what it is expected to take is a hung model
# Loading does what no call does: a fresh interpreter's start and imports (numpy alone took
# 0.12-0.16 s here), the framework's import and setup (seconds for TensorFlow), reading and
# optimising the model; so it may take 10 call timeouts: the default's 600 s, as before the
# call timeout bounded it, and a user who lowers --call-timeout to end hangs sooner gets
# loading bounded too (a model path that blocks, a backend stuck in its load).
LOAD_FACTOR = 10
# Under 1 ms of call timeout the load limit (10 ms) is shorter than any Python's own start
# (30 ms here for `python -c pass`), so no worker could ever answer; and an answer's trip
# through the pipe alone took up to 0.3 ms here. Such a limit measures nothing: refused.
MIN_CALL_TIMEOUT_S = 0.001


def load_limit(call_timeout_s: float) -> float:
    """How long starting a worker and loading its model may take (LOAD_FACTOR call timeouts)."""
    return LOAD_FACTOR * call_timeout_s


LOAD_TIMEOUT_S = load_limit(DEFAULT_CALL_TIMEOUT_S)  # where no call timeout is given (measure)


def call_limit(call_timeout_s: float, expected_s: float = 0.0) -> float:
    """How long a step of model calls may take: 50 times what it is expected to take, plus
    the call timeout. Where nothing is known yet (a model's first call) that is the call
    timeout alone; a hang in a short step ends in about the call timeout, and slow but
    steady work (a long load episode) is never cut."""
    return call_timeout_s + HANG_FACTOR * expected_s


@dataclass(frozen=True)
class Timeout:
    """How long the parent waits for each phase of a call (``Call.phases``; the last limit
    serves the phases after it) before it takes the model to hang and stops its worker.
    ``by_call_timeout``: the limits follow from --call-timeout, which the error then names."""

    seconds: tuple[float, ...]
    by_call_timeout: bool = False

    def limit(self, phase: int) -> float:
        return self.seconds[min(phase, len(self.seconds) - 1)]


def requests_timeout(call_timeout_s: float, requests: int, expected_request_s: float | None = None) -> Timeout:
    """How long ``requests`` generation requests in a row may take: ``call_limit`` of what they
    are expected to take; where nothing is known of the model's speed yet (its first
    requests), each request gets the call timeout."""
    if expected_request_s is None:
        seconds = call_timeout_s * max(requests, 1)
    else:
        seconds = call_limit(call_timeout_s, requests * expected_request_s)
    return Timeout((seconds,), by_call_timeout=True)


@dataclass(frozen=True)
class LoadRequest:
    backend: str  # built-in name or "module:Class"
    path: str
    options: BackendOptions
    sys_path: tuple[str, ...] = ()
    # the CPUs the worker pins all its threads to once loaded (None: as it was started): two
    # workers starting at once import and load on every core, and time on the same ones
    pin_after_load: tuple[int, ...] | None = None
    # a served model's HTTP headers, expanded in the parent (backends/headers.py): secrets,
    # so never in a repr (a log line or an error that shows the request)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # --call-timeout: a served model's stream that sends nothing this long has stalled
    call_timeout_s: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    inputs: tuple[TensorSpec, ...]
    backend: BackendInfo
    load_seconds: float
    pid: int
    cpus: tuple[int, ...]  # the CPUs the worker may run on, as it sees them
    setup_seconds: float = 0.0  # importing and configuring the framework
    framework_rss: int | None = None  # bytes the framework's import and setup took
    load_rss: int | None = None  # bytes loading the model took


@dataclass(frozen=True)
class LoadPlan:
    """One load episode: ``requests`` requests of one batch each, served one at a time in
    arrival order. Closed loop: ``clients`` clients, each sending its next request when
    its last one completes. Open loop: requests arrive at ``arrivals_ns`` (offsets from
    the episode's start), whatever the server is doing."""

    kind: str  # "closed" or "open"
    requests: int
    clients: int = 1
    arrivals_ns: tuple[int, ...] = ()


@dataclass(frozen=True)
class StartPhases:
    """Phases of one fresh worker's first inference, in seconds, by the worker's clock."""

    setup_seconds: float
    load_seconds: float
    prepare_seconds: float
    first_call_seconds: float


@dataclass(frozen=True)
class WarmUp:
    calls: int
    seconds: float
    typical_ns: float  # median of the second half of the warm-up calls
    shapes: int  # distinct input shapes run


# --- the calls -------------------------------------------------------------------------------


class Call:
    """A message the parent sends; the worker answers it with the result named beside it."""

    name: ClassVar[str]
    phases: ClassVar[tuple[str, ...]]  # "... gave no answer within 2 s during <phase>"


@dataclass(frozen=True)
class LoadModel(Call):
    """-> ModelInfo: import the framework, load the model."""

    name: ClassVar[str] = "load"
    phases: ClassVar[tuple[str, ...]] = ("loading",)
    request: LoadRequest


@dataclass(frozen=True)
class SetFeeds(Call):
    """-> float: prepare these batches in the backend's own form; the seconds it took."""

    name: ClassVar[str] = "set_feeds"
    phases: ClassVar[tuple[str, ...]] = ("the preparation of its batches",)
    batch_size: int
    feeds: Sequence[Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class WarmUpModel(Call):
    """-> WarmUp: run until ``min_calls`` and ``min_seconds`` and every shape, or ``max_seconds``.
    The first call is a phase of its own: nothing is known of the model's speed before it."""

    name: ClassVar[str] = "warm_up"
    phases: ClassVar[tuple[str, ...]] = ("its first call (warm-up)", "warm-up")
    batch_size: int
    min_calls: int
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class RunBlock(Call):
    """-> list[int]: ns of each of ``count`` calls from batch ``start`` on."""

    name: ClassVar[str] = "run_block"
    phases: ClassVar[tuple[str, ...]] = ("a block of timed calls",)
    batch_size: int
    start: int
    count: int


@dataclass(frozen=True)
class RunWindow(Call):
    """-> int: ns of ``count`` calls back to back, synchronized once."""

    name: ClassVar[str] = "run_window"
    phases: ClassVar[tuple[str, ...]] = ("a throughput window",)
    batch_size: int
    start: int
    count: int


@dataclass(frozen=True)
class RunLoad(Call):
    """-> LoadEpisode: serve one load episode."""

    name: ClassVar[str] = "run_load"
    phases: ClassVar[tuple[str, ...]] = ("a load episode",)
    batch_size: int
    start: int
    plan: LoadPlan


@dataclass(frozen=True)
class RunOutputs(Call):
    """-> list[dict[str, np.ndarray]]: per batch index in ``batches``, the model's outputs
    by name as host arrays; untimed, to compare the two models' answers."""

    name: ClassVar[str] = "run_outputs"
    phases: ClassVar[tuple[str, ...]] = ("its first calls (comparing outputs)",)
    batch_size: int
    batches: tuple[int, ...]


@dataclass(frozen=True)
class SetPrompts(Call):
    """-> tuple[int | None, ...]: a generative model's prompts (a text, tokenized by the
    model's own tokenizer, with its chat template where ``chat``; or token ids) in the
    backend's own form, replacing any handed before; each prompt's length in tokens where
    the backend knows it. A prompt that leaves no room for ``max_new_tokens`` in the
    model's context is a UsageError."""

    name: ClassVar[str] = "set_prompts"
    phases: ClassVar[tuple[str, ...]] = ("the preparation of its prompts",)
    prompts: tuple[str | tuple[int, ...], ...]
    chat: bool = False
    max_new_tokens: int = 0


@dataclass(frozen=True)
class RunRequests(Call):
    """-> list[RequestTiming]: one request per index in ``prompts`` (of those SetPrompts
    handed), one after another, each for exactly ``max_new_tokens`` new tokens, greedily.
    Its limit: ``requests_timeout``."""

    name: ClassVar[str] = "run_requests"
    phases: ClassVar[tuple[str, ...]] = ("a block of generation requests",)
    prompts: tuple[int, ...]
    max_new_tokens: int


@dataclass(frozen=True)
class RunRequestLoad(Call):
    """-> list[RequestTiming]: a served model's requests under load (``plan``: a closed loop
    of ``clients`` requests in flight, or arrivals at ``arrivals_ns``), one per index in
    ``prompts``, each for ``max_new_tokens`` new tokens; in the order they were sent. Its
    limit: ``requests_timeout`` of the episode's expected time."""

    name: ClassVar[str] = "run_request_load"
    phases: ClassVar[tuple[str, ...]] = ("a load episode of generation requests",)
    prompts: tuple[int, ...]
    max_new_tokens: int
    plan: LoadPlan


@dataclass(frozen=True)
class RunGenerations(Call):
    """-> list[tuple[int, ...] | str]: per index in ``prompts``, the new token ids of exactly
    ``max_new_tokens``, greedily (a served model's text, where it gives no ids); untimed,
    to compare the two models' answers."""

    name: ClassVar[str] = "run_generations"
    phases: ClassVar[tuple[str, ...]] = ("its generations (comparing outputs)",)
    prompts: tuple[int, ...]
    max_new_tokens: int


@dataclass(frozen=True)
class ReadMemory(Call):
    """-> dict: peak RSS since the first warm-up, RSS now, the backend's device peaks."""

    name: ClassVar[str] = "memory"
    phases: ClassVar[tuple[str, ...]] = ("the reading of its memory",)


@dataclass(frozen=True)
class FirstInference(Call):
    """-> StartPhases: in a fresh worker, load the model and run its first inference."""

    name: ClassVar[str] = "cold_start"
    phases: ClassVar[tuple[str, ...]] = ("a cold start's loading", "a cold start's first call")
    request: LoadRequest
    feed: Mapping[str, Any]


@dataclass(frozen=True)
class OwnColdStart(Call):
    """-> StartPhases: the phases of this worker's own start, by its clock: its framework's
    setup and its model's load, the preparation of its first batch, and its first call on
    real inputs; where it has made no call yet, that first call is made now, on the first
    batch of ``batch_size``."""

    name: ClassVar[str] = "first_call"
    phases: ClassVar[tuple[str, ...]] = ("its first call",)
    batch_size: int


@dataclass(frozen=True)
class BlockMemory(Call):
    """-> tuple[int, ...]: the RSS in bytes after each timed block so far, in order (empty
    where RSS cannot be read); a model whose memory grows block after block leaks."""

    name: ClassVar[str] = "block_memory"
    phases: ClassVar[tuple[str, ...]] = ("the reading of its memory",)


@dataclass(frozen=True)
class Shutdown(Call):
    """-> None: release the model; the worker exits after answering."""

    name: ClassVar[str] = "close"
    phases: ClassVar[tuple[str, ...]] = ("shutdown",)
