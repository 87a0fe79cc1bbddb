"""Fake clocks and backends: latency under the test's control, no real timing.

In-process, ``FakeBackend.run`` advances a ``FakeClock`` that both the worker's timing
loop and the runner's time budget read, so a whole comparison runs in virtual time.
The crashing/hanging/failing backends are for the subprocess error paths: the worker
imports them by ``fakes:ClassName`` (the parent's sys.path, which holds tests/, is sent
to the worker).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable

import numpy as np

from perfgate.backends.base import Backend, BackendInfo, BackendOptions, Generation, GenerativeBackend
from perfgate.errors import ModelLoadError
from perfgate.tensors import TensorSpec
from perfgate.worker import InProcessWorker, WorkerCore

FEATURES = 4


class FakeClock:
    """Virtual time in ns; ``ns`` for the worker's timing loop, ``seconds`` for the runner."""

    def __init__(self) -> None:
        self.now = 0

    def ns(self) -> int:
        return self.now

    def seconds(self) -> float:
        return self.now / 1e9

    def advance(self, ns: float) -> None:
        self.now += int(round(ns))

    def advance_to(self, ns: int) -> None:
        self.now = max(self.now, int(ns))


Latency = Callable[[np.random.Generator, "FakeClock", Any], float]


def lognormal(median_ns: float, sigma: float = 0.1) -> Latency:
    def draw(rng: np.random.Generator, clock: FakeClock, feed: Any) -> float:
        return median_ns * rng.lognormal(0.0, sigma)

    return draw


def drifting(base: Latency, period_s: float = 2.0, amplitude: float = 1.0) -> Latency:
    """``base`` times a slow drift shared by everything on the machine (up to 1 + amplitude)."""

    def draw(rng: np.random.Generator, clock: FakeClock, feed: Any) -> float:
        phase = (clock.seconds() % period_s) / period_s
        return base(rng, clock, feed) * (1.0 + amplitude * abs(2.0 * phase - 1.0))

    return draw


Outputs = Callable[[dict], Any]  # a batch's feed -> what the model returns


def scores(feed: dict) -> dict[str, np.ndarray]:
    """The fake model's answer: its first input's values as class scores, one row per row."""
    first = np.asarray(next(iter(feed.values())), dtype=np.float64)
    return {"scores": first.reshape(first.shape[0], -1)}


class FakeBackend(Backend):
    """A model whose call takes ``latency(rng, clock, feed)`` ns of virtual time and
    returns ``outputs(feed)`` (by default ``scores``)."""

    name = "fake"

    def __init__(self, options: BackendOptions, clock: FakeClock, latency: Latency, seed: int = 0,
                 inputs: tuple[TensorSpec, ...] = (TensorSpec("x", "float32", (None, FEATURES)),),
                 load_ns: float = 0.0, memory: "FakeMemory | None" = None, model_bytes: int = 0,
                 outputs: "Outputs | None" = None, leak_bytes: int = 0, started_ns: int | None = None) -> None:  # fmt: skip
        super().__init__(options)
        self.started_ns = started_ns  # when its worker started: loading runs from then, beside the other model's
        self.outputs = outputs or scores
        self.leak_bytes = leak_bytes  # what each call allocates and never frees
        self.load_ns = load_ns
        self.memory = memory
        self.model_bytes = model_bytes
        self.clock = clock
        self.latency = latency
        self.rng = np.random.default_rng(seed)
        self.inputs = inputs
        self.calls = 0
        self.synchronized = 0
        self.seen: list[float] = []  # the first value of every batch run, in order

    def load(self, path: str) -> None:
        if path.endswith("missing.fake"):
            raise ModelLoadError(f"cannot load model {path!r}: no such file")
        if self.started_ns is None:
            self.clock.advance(self.load_ns)
        else:
            self.clock.advance_to(self.started_ns + self.load_ns)
        if self.memory is not None:
            self.memory.allocate(self.model_bytes)

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return self.inputs

    def run(self, prepared: Any) -> Any:
        self.calls += 1
        self.seen.append(float(next(iter(prepared.values())).flat[0]))
        self.clock.advance(self.latency(self.rng, self.clock, prepared))
        if self.leak_bytes and self.memory is not None:
            self.memory.allocate(self.leak_bytes)
        return self.outputs(prepared)

    def synchronize(self) -> None:
        self.synchronized += 1

    def info(self) -> BackendInfo:
        return BackendInfo("fake", "fake", "0", "cpu", self.options.threads)


class FakeMemory:
    """RSS in virtual bytes: what loaded models allocate, plus transient peaks."""

    def __init__(self, base: int = 50 * 2**20, resettable: bool = True) -> None:
        self.rss = base
        self.peak = base
        self.resettable = resettable
        self.released = 0  # release_free calls

    def allocate(self, count: int) -> None:
        self.rss += count
        self.peak = max(self.peak, self.rss)

    def spike(self, count: int) -> None:
        self.peak = max(self.peak, self.rss + count)

    def resident(self) -> int:
        return self.rss

    def read(self):
        from perfgate.memory import MemoryReading

        return MemoryReading(self.rss, self.peak)

    def release_free(self) -> bool:
        self.released += 1
        return True

    def reset_peak(self) -> bool:
        if self.resettable:
            self.peak = self.rss
        return self.resettable


def in_process_factory(
    clock: FakeClock,
    latencies: dict[str, Latency],
    made: dict | None = None,
    seed: int = 0,
    per_role: dict[str, dict] | None = None,
    memory_resettable: bool = True,
    **backend_kwargs: Any,
):
    """A worker_factory for run_comparison: in-process workers on fake backends (collected
    in ``made`` by role, for the test to inspect); ``seed`` varies their latency draws;
    ``per_role`` gives one model's backend its own keyword arguments (load_ns, model_bytes);
    ``memory_resettable`` False plays a kernel that does not let the peak RSS be reset.
    Cold-start workers ("reference-cold-start-1") and further instances ("candidate-instance-2")
    get their model's settings and a memory of their own; ``latencies`` may name a role to
    give that worker its own latency, and each instance draws its own. A worker's load runs
    from the moment it was made, and its calls run when their answer is asked for, so two
    workers made at once load side by side in virtual time (as two processes on two cores
    would): each is loaded at its own load_ns."""

    def make(role: str, log_dir: str) -> InProcessWorker:
        side = role.split("-")[0]
        made_at = clock.now
        instance = int(role.rsplit("-", 1)[1]) if "-instance-" in role else 1
        backend_seed = 2 * seed + (1 if side == "reference" else 2) + 1000 * (instance - 1)
        latency = latencies.get(role, latencies[side])
        memory = FakeMemory(resettable=memory_resettable)
        own = {**backend_kwargs, **(per_role or {}).get(side, {})}

        def backend(name: str, options: BackendOptions) -> Backend:
            fake = FakeBackend(options, clock, latency, seed=backend_seed, memory=memory, started_ns=made_at, **own)
            if made is not None:
                made[role] = fake
            return fake

        return AnsweringLate(role, WorkerCore(clock=clock.ns, backend_factory=backend, memory=memory, wait=clock.advance_to))

    return make


class AnsweringLate(InProcessWorker):
    """An in-process worker that does a call's work when its answer is asked for (``finish``),
    not when it is sent: what a subprocess does in between is not done in turn with the other's."""

    def begin(self, call: Any) -> None:
        self._sent = call

    def finish(self, call: Any, timeout: Any = 0.0) -> Any:
        super().begin(self._sent)
        return super().finish(call, timeout)


# --- backends for the subprocess error paths (real time, real processes) ---------------


class _TinyBackend(Backend):
    name = "tiny"

    def load(self, path: str) -> None:
        pass

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("features", "float32", (None, 16)),)

    def run(self, prepared: Any) -> Any:
        return None

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "none", "0", "cpu", self.options.threads)


class CrashingBackend(_TinyBackend):
    """Dies like a segfaulting native library on its first timed call."""

    def run(self, prepared: Any) -> Any:
        os._exit(7)


class CrashOnLoadBackend(_TinyBackend):
    def load(self, path: str) -> None:
        os._exit(9)


class TinyBackend(_TinyBackend):
    """Answers every call at once: the healthy side of a comparison with a broken model."""


class SegfaultingBackend(_TinyBackend):
    """Dies by SIGSEGV on its first call, as a native library with a bad pointer does."""

    def run(self, prepared: Any) -> Any:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the test's directory
        os.kill(os.getpid(), signal.SIGSEGV)


class KilledBackend(_TinyBackend):
    """Killed by SIGKILL on its first call, as by the kernel's out-of-memory killer."""

    def run(self, prepared: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)


class HangingBackend(_TinyBackend):
    def run(self, prepared: Any) -> Any:
        time.sleep(3600)


class HangOnLoadBackend(_TinyBackend):
    """A worker still loading its model, for as long as a test cares to wait."""

    def load(self, path: str) -> None:
        time.sleep(3600)


class FailingBackend(_TinyBackend):
    """Raises like a framework rejecting its input."""

    def run(self, prepared: Any) -> Any:
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions\nsecond line")


class HangingGenerator(GenerativeBackend):
    """A generative model whose requests never end."""

    name = "hanging-generator"

    def load(self, path: str) -> None:
        pass

    def prepare_prompt(self, ids: Any, *, chat: bool = False) -> Any:
        return ids

    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        time.sleep(3600)
        raise AssertionError("unreachable: the parent stops the worker")

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "none", "0", "cpu", self.options.threads)


class NotABackend:
    pass


# --- generative models in virtual time ------------------------------------------------------


class FakeGenerator(GenerativeBackend):
    """A generative model in virtual time: a prefill of ``prefill_ns`` plus ``per_prompt_token_ns``
    per prompt token, then ``token_ns`` per new token, each drawn lognormal (``sigma``);
    its answer to a prompt is the prompt's ids shifted by ``shift``. Text prompts are their
    characters' code points."""

    name = "fake-generator"

    def __init__(self, options: BackendOptions, clock: FakeClock | None = None, *, prefill_ns: float = 2e6,
                 per_prompt_token_ns: float = 1e4, token_ns: float = 1e6, sigma: float = 0.05, seed: int = 0,
                 shift: int = 0, context: int | None = None) -> None:  # fmt: skip
        super().__init__(options)
        self.clock = clock or FakeClock()
        self.prefill_ns, self.per_prompt_token_ns, self.token_ns = prefill_ns, per_prompt_token_ns, token_ns
        self.sigma, self.shift, self.context = sigma, shift, context
        self.rng = np.random.default_rng(seed)

    def load(self, path: str) -> None:
        pass

    def prepare_prompt(self, prompt: Any, *, chat: bool = False) -> Any:
        return tuple(ord(c) for c in prompt) if isinstance(prompt, str) else tuple(int(t) for t in prompt)

    def prompt_length(self, prepared: Any) -> int:
        return len(prepared)

    def context_length(self) -> int | None:
        return self.context

    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        started = clock()
        draw = lambda ns: ns * self.rng.lognormal(0.0, self.sigma)  # noqa: E731
        self.clock.advance(draw(self.prefill_ns + self.per_prompt_token_ns * len(prompt)))
        stamps = []
        for index in range(max_new_tokens):
            if index:
                self.clock.advance(draw(self.token_ns))
            stamps.append(clock())
        answer = tuple((prompt[index % len(prompt)] + self.shift) % 1000 for index in range(max_new_tokens))
        return Generation(started, tuple(stamps), clock(), answer, prompt_tokens=len(prompt))

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "none", "0", "cpu", self.options.threads)


def generating_factory(clock: FakeClock, settings: dict[str, dict], seed: int = 0):
    """A worker_factory for run_comparison in generate mode: each side's FakeGenerator with
    its ``settings`` (token_ns, prefill_ns, shift...), each instance drawing its own."""

    def make(role: str, log_dir: str) -> InProcessWorker:
        side = role.split("-")[0]
        instance = int(role.rsplit("-", 1)[1]) if "-instance-" in role else 1
        own_seed = 2 * seed + (1 if side == "reference" else 2) + 1000 * (instance - 1)
        memory = FakeMemory()

        def backend(name: str, options: BackendOptions) -> Backend:
            return FakeGenerator(options, clock, seed=own_seed, **settings[side])

        return AnsweringLate(role, WorkerCore(clock=clock.ns, backend_factory=backend, memory=memory, wait=clock.advance_to))

    return make
