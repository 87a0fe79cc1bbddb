"""The worker's side: its state (one loaded model, its prepared batches) and the loop
that answers the parent's calls.

``WorkerCore`` runs inside the worker process or, for tests and the overhead benchmark,
in the caller's process (see ``process.InProcessWorker``). ``serve`` dispatches each
message by its type to the core method that answers it.

A worker process never outlives its parent: on Linux the kernel kills it when the parent
dies, however it dies (``die_with_parent``). A watchdog thread polling the parent would
not do: a model hung in native code that holds the GIL never lets such a thread run, and
its wake-ups would land inside timed calls. SIGINT is the parent's to handle: a Ctrl-C in
a terminal reaches the whole process group, and the parent stops its workers itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.backends.base import Backend, BackendOptions, GenerativeBackend
from perfgate.backends.paths import framework_path, printable, shown
from perfgate.errors import PerfgateError, UsageError, WorkerError, first_line
from perfgate.memory import ProcMemory
from perfgate.worker.protocol import (
    BlockMemory,
    Call,
    StartPhases,
    FirstInference,
    LoadEpisode,
    LoadModel,
    LoadPlan,
    LoadRequest,
    ModelInfo,
    OwnColdStart,
    ReadMemory,
    RequestTiming,
    RunBlock,
    RunGenerations,
    RunLoad,
    RunOutputs,
    RunRequestLoad,
    RunRequests,
    RunWindow,
    SetFeeds,
    SetPrompts,
    Shutdown,
    WarmUp,
    WarmUpModel,
)
from perfgate.worker.timing import (
    Clock,
    WaitUntil,
    request_timing,
    serve_requests,
    serve_episode,
    time_calls,
    time_requests,
    time_window,
    wait_until,
)


class WorkerCore:
    """The worker's state and calls; runs inside the worker process or, for tests and
    the overhead benchmark, in the caller's process."""

    def __init__(
        self,
        clock: Clock = time.perf_counter_ns,
        backend_factory: Callable[[str, BackendOptions], Backend] | None = None,
        memory: Any = None,
        wait: WaitUntil | None = None,
        own_process: bool = False,
    ) -> None:
        self._clock = clock
        self._own_process = own_process  # a worker process of its own, whose threads it may pin
        self._backend_factory = backend_factory
        self._memory = memory or ProcMemory()
        self._wait = wait or (lambda deadline: wait_until(deadline, clock))
        self._backend: Backend | None = None
        self._feeds: dict[int, list[Any]] = {}
        self._prompts: list[Any] = []  # a generative model's prompts, prepared (SetPrompts)
        self._shapes: dict[int, list[tuple]] = {}
        self._path = ""
        self._peak_reset: bool | None = None  # None until the first warm-up resets it
        self._rss_after_blocks: list[int] = []
        # this worker's own cold start, phase by phase (seconds): setup, load, first prepare, first call
        self._setup_s = self._load_s = 0.0
        self._first_prepare_s: float | None = None
        self._first_call_s: float | None = None
        # called with a phase's index as a call of several phases enters it (see Call.phases)
        self.enter_phase: Callable[[int], None] = lambda index: None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise WorkerError("the worker has no model loaded")
        return self._backend

    def load(self, request: LoadRequest) -> ModelInfo:
        for entry in request.sys_path:
            if entry not in sys.path:
                sys.path.append(entry)
        if self._backend_factory is not None:
            backend = self._backend_factory(request.backend, request.options)
        else:
            from perfgate.backends import load_backend_class

            backend = load_backend_class(request.backend)(request.options)
        if request.headers:  # a served model's (backends/headers.py); other backends send no HTTP
            if not hasattr(backend, "headers"):
                raise UsageError(f"the {backend.name} backend sends no HTTP requests: headers are for served models")
            backend.headers = request.headers
        if request.call_timeout_s is not None and hasattr(backend, "read_timeout_s"):
            backend.read_timeout_s = request.call_timeout_s
        bare = self._memory.read().rss
        began = self._clock()
        backend.setup()
        set_up = self._clock()
        framework = self._memory.read().rss
        _load_by_native_name(backend, request.path)
        loaded_at = self._clock()
        self._memory.release_free()  # loading's freed temporaries are not the model's (memory.py)
        loaded = self._memory.read().rss
        if request.pin_after_load is not None and self._own_process:
            _pin_every_thread(request.pin_after_load)
        self._backend = backend
        self._path = request.path
        self._setup_s, self._load_s = (set_up - began) / 1e9, (loaded_at - set_up) / 1e9
        return ModelInfo(
            inputs=backend.describe_inputs(),
            backend=backend.info(),
            load_seconds=(loaded_at - set_up) / 1e9,
            pid=os.getpid(),
            cpus=_own_cpus(),
            setup_seconds=(set_up - began) / 1e9,
            framework_rss=_difference(framework, bare),
            load_rss=_difference(loaded, framework),
        )

    def set_feeds(self, batch_size: int, feeds: Sequence[Mapping[str, np.ndarray]]) -> float:
        """Prepare the batches in the backend's own form; returns the seconds that took."""
        backend = self.backend
        began = self._clock()
        prepared = []
        for feed in feeds:
            prepared.append(backend.prepare(feed))
            if self._first_prepare_s is None:
                self._first_prepare_s = (self._clock() - began) / 1e9
        self._feeds[batch_size] = prepared
        seconds = (self._clock() - began) / 1e9
        self._shapes[batch_size] = [tuple(sorted((k, v.shape) for k, v in feed.items())) for feed in feeds]
        return seconds

    def warm_up(self, batch_size: int, min_calls: int, min_seconds: float, max_seconds: float) -> WarmUp:
        """Run until at least ``min_calls`` calls and ``min_seconds`` have passed and every
        distinct input shape has run once, or ``max_seconds`` have passed."""
        feeds, shapes = self._feeds_for(batch_size), self._shapes[batch_size]
        backend = self.backend
        if self._peak_reset is None:  # the peak RSS covers inference: warm-up and measurement
            self._memory.release_free()  # from what the model holds, not what loading left free
            self._peak_reset = self._memory.reset_peak()
        all_shapes = set(shapes)
        seen: set[tuple] = set()
        durations: list[int] = []
        began = self._clock()
        index = 0
        while True:
            durations.extend(
                self._timed(lambda: time_calls(backend.run, backend.synchronize, feeds, index, 1, self._clock))
            )
            if len(durations) == 1:
                self._note_first_call(durations[0])
                self.enter_phase(1)  # the first call has returned: the rest of the warm-up
            seen.add(shapes[index])
            index = (index + 1) % len(feeds)
            elapsed = (self._clock() - began) / 1e9
            if len(durations) >= min_calls and elapsed >= min_seconds and seen == all_shapes:
                break
            if elapsed >= max_seconds:
                break
        steady = durations[len(durations) // 2 :]
        backend.reset_peak_memory()  # the last warm-up's reset starts the measured high-water mark
        return WarmUp(len(durations), (self._clock() - began) / 1e9, float(np.median(steady)), len(seen))

    def run_block(self, batch_size: int, start: int, count: int) -> list[int]:
        backend = self.backend
        durations = self._timed(
            lambda: time_calls(backend.run, backend.synchronize, self._feeds_for(batch_size), start, count, self._clock)
        )
        rss = self._memory.resident()  # after the clock has stopped: a few microseconds, untimed
        if rss is not None:
            self._rss_after_blocks.append(rss)
        return durations

    def set_prompts(self, prompts: Sequence[str | Sequence[int]], chat: bool = False, max_new_tokens: int = 0) -> tuple[int | None, ...]:
        """Prepare a generative model's prompts (a text or token ids each); returns each
        one's length in tokens where the backend knows it."""
        backend = self._generative()
        prepared = [backend.prepare_prompt(prompt, chat=chat) for prompt in prompts]
        lengths = tuple(backend.prompt_length(prompt) for prompt in prepared)
        context = backend.context_length()
        if context is not None:
            for index, length in enumerate(lengths):
                if length is not None and length + max_new_tokens > context:
                    raise UsageError(
                        f"prompt {index} has {length} tokens and {max_new_tokens} to generate: it needs "
                        f"{length + max_new_tokens} positions, more than the model's context of {context}"
                    )
        self._prompts = prepared
        if self._peak_reset is None:  # the peak RSS covers generation (the KV cache), not loading
            self._memory.release_free()
            self._peak_reset = self._memory.reset_peak()
            backend.reset_peak_memory()
        return lengths

    def run_requests(self, prompts: Sequence[int], max_new_tokens: int) -> list[RequestTiming]:
        """One timed request per prompt index, each for exactly ``max_new_tokens`` new tokens."""
        generations = self._generate(prompts, max_new_tokens)
        rss = self._memory.resident()  # after the last request's clock reading, untimed
        if rss is not None:
            self._rss_after_blocks.append(rss)
        return [request_timing(index, generation) for index, generation in zip(prompts, generations)]

    def run_request_load(self, prompts: Sequence[int], max_new_tokens: int, plan: LoadPlan) -> list[RequestTiming]:
        """A served model's requests under load (``serve_requests``), in the order sent."""
        backend = self._generative()
        if not backend.concurrent_requests:
            raise UsageError(
                f"the {backend.name} backend runs one request at a time in its worker: latency under load "
                f"({'--concurrency' if plan.kind == 'closed' else '--rate'}) is measured against served models"
            )
        prepared = [self._prompt(index) for index in prompts]
        served = self._timed(lambda: serve_requests(backend.generate_timed, prepared, max_new_tokens, plan, self._clock, self._wait))
        return [request_timing(prompts[position], generation) for position, generation in served]

    def generations(self, prompts: Sequence[int], max_new_tokens: int) -> list[tuple[int, ...] | str]:
        """The new token ids for each prompt index (a served model's text, where it gives no
        ids); untimed, to compare two models' answers."""
        return [
            generation.output_text if generation.output_text is not None and not generation.output_ids else generation.output_ids
            for generation in self._generate(prompts, max_new_tokens)
        ]

    def _generate(self, prompts: Sequence[int], max_new_tokens: int) -> list[Any]:
        backend = self._generative()
        if max_new_tokens < 1:
            raise UsageError(f"max_new_tokens {max_new_tokens}: a request needs at least 1 new token")
        prepared = [self._prompt(index) for index in prompts]
        generations = self._timed(lambda: time_requests(backend.generate_timed, prepared, max_new_tokens, self._clock))
        for index, generation in zip(prompts, generations):
            if not generation.token_ns:
                raise WorkerError(f"model {self._path!r} gave no new token for prompt {index}")
        return generations

    def _generative(self) -> GenerativeBackend:
        backend = self.backend
        if not isinstance(backend, GenerativeBackend):
            raise UsageError(
                f"model {self._path!r} is not a generative model: the {backend.name} backend is timed per batch, not per request"
            )
        return backend

    def _prompt(self, index: int) -> Any:
        if not 0 <= index < len(self._prompts):
            raise WorkerError(f"the worker has no prompt {index} ({len(self._prompts)} prompts handed)")
        return self._prompts[index]

    def block_memory(self) -> tuple[int, ...]:
        return tuple(self._rss_after_blocks)

    def run_window(self, batch_size: int, start: int, count: int) -> int:
        backend, feeds = self.backend, self._feeds_for(batch_size)
        return self._timed(lambda: time_window(backend.run, backend.synchronize, feeds, start, count, self._clock))

    def run_load(self, batch_size: int, start: int, plan: LoadPlan) -> LoadEpisode:
        backend, feeds = self.backend, self._feeds_for(batch_size)
        return self._timed(
            lambda: serve_episode(backend.run, backend.synchronize, feeds, start, plan, self._clock, self._wait)
        )

    def outputs(self, batch_size: int, batches: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """The outputs of the prepared batches at ``batches``, as host arrays; untimed."""
        backend, feeds = self.backend, self._feeds_for(batch_size)

        def run_each() -> list[dict[str, np.ndarray]]:
            found = []
            for index in batches:
                began = self._clock()
                outputs = backend.run(feeds[index])
                backend.synchronize()
                self._note_first_call(self._clock() - began)
                found.append(backend.outputs_to_numpy(outputs, feeds[index]))
            return found

        return self._timed(run_each)

    def memory(self) -> dict[str, Any]:
        """Peak RSS since the first warm-up (or since the start, where it cannot be reset),
        RSS now, and the backend's device peaks."""
        reading = self._memory.read()
        return {
            "peak_rss": reading.peak,
            "rss": reading.rss,
            "peak_includes_load": not self._peak_reset,
            **self.backend.peak_memory(),
        }

    def cold_start(self, request: LoadRequest, feed: Mapping[str, np.ndarray]) -> StartPhases:
        """Load the model and run its first inference, in a fresh worker (phases by this clock)."""
        info = self.load(request)
        self.enter_phase(1)  # loaded: the first call
        began = self._clock()
        prepared = self.backend.prepare(feed)
        prepared_at = self._clock()
        self._timed(lambda: time_calls(self.backend.run, self.backend.synchronize, [prepared], 0, 1, self._clock))
        done = self._clock()
        return StartPhases(info.setup_seconds, info.load_seconds, (prepared_at - began) / 1e9, (done - prepared_at) / 1e9)

    def own_cold_start(self, batch_size: int) -> StartPhases:
        """This worker's own start, phase by phase; its first call is made now if none was."""
        if self._first_call_s is None:
            backend, feeds = self.backend, self._feeds_for(batch_size)
            self._note_first_call(self._timed(lambda: time_calls(backend.run, backend.synchronize, feeds, 0, 1, self._clock))[0])
        return StartPhases(self._setup_s, self._load_s, self._first_prepare_s or 0.0, self._first_call_s or 0.0)

    def _note_first_call(self, duration_ns: float) -> None:
        if self._first_call_s is None:
            self._first_call_s = duration_ns / 1e9

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _feeds_for(self, batch_size: int) -> list[Any]:
        feeds = self._feeds.get(batch_size)
        if not feeds:
            raise WorkerError(f"the worker has no batches of size {batch_size}")
        return feeds

    def _timed(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except PerfgateError:
            raise
        except Exception as exc:
            raise WorkerError(f"model {self._path!r} failed while running: {first_line(exc)}") from exc


def _load_by_native_name(backend: Backend, path: str) -> None:
    """``backend.load(path)``, through a symlink where the frameworks cannot take the name
    (see perfgate/backends/paths.py); an error names the user's file, not the symlink."""
    native = framework_path(path)
    try:
        backend.load(native)
    except PerfgateError as exc:
        if native == path:
            raise
        named = exc.template.replace(repr(native), shown(path)).replace(native, printable(path))
        raise type(exc)(named, details=exc.details) from exc


def _difference(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _pin_every_thread(cpus: tuple[int, ...]) -> None:
    """Pin every thread of this process, those the framework has started included (threads
    started later inherit it from theirs). Linux names them in /proc/self/task; elsewhere
    only the calling thread is pinned."""
    if not hasattr(os, "sched_setaffinity"):
        return
    try:
        threads = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, cpus)
        except OSError:
            pass  # a thread that has ended; the report records the CPUs the worker really has


def _own_cpus() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()


_ANSWERS: dict[type[Call], Callable[[WorkerCore, Any], Any]] = {
    LoadModel: lambda core, call: core.load(call.request),
    SetFeeds: lambda core, call: core.set_feeds(call.batch_size, call.feeds),
    WarmUpModel: lambda core, call: core.warm_up(call.batch_size, call.min_calls, call.min_seconds, call.max_seconds),
    RunBlock: lambda core, call: core.run_block(call.batch_size, call.start, call.count),
    RunWindow: lambda core, call: core.run_window(call.batch_size, call.start, call.count),
    RunLoad: lambda core, call: core.run_load(call.batch_size, call.start, call.plan),
    RunOutputs: lambda core, call: core.outputs(call.batch_size, call.batches),
    SetPrompts: lambda core, call: core.set_prompts(call.prompts, call.chat, call.max_new_tokens),
    RunRequests: lambda core, call: core.run_requests(call.prompts, call.max_new_tokens),
    RunRequestLoad: lambda core, call: core.run_request_load(call.prompts, call.max_new_tokens, call.plan),
    RunGenerations: lambda core, call: core.generations(call.prompts, call.max_new_tokens),
    ReadMemory: lambda core, call: core.memory(),
    BlockMemory: lambda core, call: core.block_memory(),
    FirstInference: lambda core, call: core.cold_start(call.request, call.feed),
    OwnColdStart: lambda core, call: core.own_cold_start(call.batch_size),
    Shutdown: lambda core, call: core.close(),
}


def answer(core: WorkerCore, call: Call) -> Any:
    """What ``core`` answers to ``call``."""
    respond = _ANSWERS.get(type(call))
    if respond is None:
        raise WorkerError(f"unknown worker call {type(call).__name__}")
    return respond(core, call)


def serve(conn: Connection, core: WorkerCore) -> None:
    """Answer calls until Shutdown or until the parent goes away."""
    core.enter_phase = lambda index: conn.send(("phase", index))
    while True:
        try:
            call = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", answer(core, call)))
        except PerfgateError as exc:
            conn.send(("error", type(exc).__name__, exc.message, traceback.format_exc()))
        except Exception as exc:  # a framework's own error: report it, the parent decides
            conn.send(("error", "WorkerError", f"{type(exc).__name__}: {first_line(exc)}", traceback.format_exc()))
        if isinstance(call, Shutdown):
            return


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m perfgate.worker FD PARENT_PID``"""
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(int(args[1]))
    conn = Connection(int(args[0]))
    try:
        serve(conn, WorkerCore(own_process=True))
    finally:
        conn.close()
    # Shut down and answered: nothing is left to do but the interpreter's teardown, which
    # for torch and transformers took 1.27 s of the parent's wait (onnxruntime: 0.07 s)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def libc_prctl() -> Callable[..., int] | None:
    """libc's prctl (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent_pid: int, prctl: Callable[..., int] | None = None) -> None:
    """Have the kernel send this process SIGKILL when its parent dies, even by SIGKILL
    (Linux: prctl(PR_SET_PDEATHSIG)). The parent is the thread that started the process;
    perfgate starts and closes its workers (and probes) within one call, in one thread.
    Elsewhere an idle worker still ends when its pipe closes, and a busy one when its call
    returns. ``prctl``: looked up beforehand (``libc_prctl``) where this runs between fork
    and exec (a subprocess's preexec_fn), where loading a library could wait forever on a
    lock that another of the parent's threads held at the fork; the message is written
    with os.write for the same reason."""
    prctl = prctl or libc_prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the kernel was told to watch it
        os.write(2, f"perfgate: its parent process (pid {parent_pid}) has gone\n".encode())
        os._exit(1)
