"""One model in its own process: load, take batches, warm up, time calls.

The parent drives a worker with a handful of calls (``load``, ``set_feeds``, ``warm_up``,
``run_block``, ``run_window``, ``run_load``, ``memory``, ``cold_start``, ``close``) sent
over a pipe; the worker answers each with a result or an error. A worker that dies or stops answering is a WorkerError in the parent, never a
verdict.

A worker is a fresh interpreter (``python -m perfgate.worker FD``), not a fork: its
memory holds one model only, it inherits no thread pools, and a user's script that calls
``perfgate.compare`` without a ``__main__`` guard is not re-run. Its stdout and stderr go
to a log file, so framework chatter never mixes with perfgate's output; the log's tail is
quoted when the worker fails.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from perfgate.backends.base import Backend, BackendInfo, BackendOptions
from perfgate.errors import PerfgateError, WorkerError, error_class, first_line
from perfgate.memory import ProcMemory
from perfgate.tensors import TensorSpec

Clock = Callable[[], int]
WaitUntil = Callable[[int], None]

# Environment variables that size the thread pools of numpy's BLAS, OpenMP and MKL; set
# to --threads in each worker so that neither model gets more threads than the other.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

LOAD_TIMEOUT_S = 600.0
SETUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class LoadRequest:
    backend: str  # built-in name or "module:Class"
    path: str
    options: BackendOptions
    sys_path: tuple[str, ...] = ()


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
class LoadEpisode:
    queue_ns: tuple[int, ...]  # per request: from arrival to the start of its call
    service_ns: tuple[int, ...]  # per request: the call itself
    duration_ns: int  # from the episode's start to the last request's completion


@dataclass(frozen=True)
class ColdStart:
    """Phases of one fresh worker's first inference, in seconds, by the worker's clock."""

    setup_seconds: float
    load_seconds: float
    prepare_seconds: float
    first_call_seconds: float

def worker_cpus(threads: int) -> tuple[int, ...] | None:
    """The CPUs both workers are pinned to: the last ``threads`` this process may use.

    The two workers take turns, so they can share cores; sharing the *same* cores
    matters, because the cores of a cloud VM do not run at the same speed: measured on
    a 2-vCPU runner, one model in two unpinned processes differed by up to 33 %, and by
    at most 6 % when both were pinned to one core. None where pinning is not possible
    (no sched_setaffinity, or fewer usable CPUs than threads).
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    if threads > len(usable):
        return None
    return tuple(usable[-threads:])


def _difference(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _own_cpus() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()


@dataclass(frozen=True)
class WarmUp:
    calls: int
    seconds: float
    typical_ns: float  # median of the second half of the warm-up calls
    shapes: int  # distinct input shapes run


def time_calls(
    run: Callable[[Any], Any],
    synchronize: Callable[[], None],
    feeds: Sequence[Any],
    start: int,
    count: int,
    clock: Clock,
) -> list[int]:
    """Durations in ns of ``count`` calls over ``feeds[start:]`` (wrapping around).

    Only ``run`` and ``synchronize`` are inside the clock readings. The outputs are
    released after the second reading, and the garbage collector is paused for the
    block so that a collection never lands inside a timed call.
    """
    samples = [0] * count
    size = len(feeds)
    index = start % size
    with collector_paused():
        for position in range(count):
            feed = feeds[index]
            began = clock()
            outputs = run(feed)
            synchronize()
            ended = clock()
            outputs = None  # noqa: F841 (released outside the timed region)
            samples[position] = ended - began
            index += 1
            if index == size:
                index = 0
    return samples


def time_window(
    run: Callable[[Any], Any], synchronize: Callable[[], None], feeds: Sequence[Any], start: int, count: int, clock: Clock
) -> int:
    """ns for ``count`` calls back to back, synchronized once at the end: the wall time of a
    throughput window (a GPU may overlap one call's work with the next call's launch, as
    it does in a service)."""
    size = len(feeds)
    window = [feeds[(start + position) % size] for position in range(count)]  # no indexing inside the clock
    with collector_paused():
        began = clock()
        for feed in window:
            run(feed)
        synchronize()
        return clock() - began


def serve_episode(
    run: Callable[[Any], Any],
    synchronize: Callable[[], None],
    feeds: Sequence[Any],
    start: int,
    plan: "LoadPlan",
    clock: Clock,
    wait: "WaitUntil",
) -> "LoadEpisode":
    """One load episode (see LoadPlan): the model serves the requests one at a time, in
    arrival order, so each request's time splits into queueing and service."""
    size = len(feeds)
    queue, service = [], []
    with collector_paused():
        began = clock()
        waiting = collections.deque([began] * plan.clients) if plan.kind == "closed" else None
        ended = began
        for position in range(plan.requests):
            if waiting is not None:
                arrival = waiting.popleft()
            else:
                arrival = began + plan.arrivals_ns[position]
                if clock() < arrival:
                    wait(arrival)
            feed = feeds[(start + position) % size]
            served = clock()
            outputs = run(feed)
            synchronize()
            ended = clock()
            outputs = None  # noqa: F841
            queue.append(served - arrival)
            service.append(ended - served)
            if waiting is not None:
                waiting.append(ended)  # the client sends its next request at once
    return LoadEpisode(tuple(queue), tuple(service), ended - began)


@contextlib.contextmanager
def collector_paused():
    """The garbage collector off for a timed stretch, so that no collection lands in it."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def wait_until(deadline_ns: int, clock: Clock = time.perf_counter_ns) -> None:
    """Return at ``deadline_ns``: sleep while it is far, then spin for the last stretch
    (a sleep alone wakes up to ~0.1 ms late, which would count as queueing)."""
    remaining = deadline_ns - clock()
    if remaining > 2_000_000:
        time.sleep((remaining - 1_000_000) / 1e9)
    while clock() < deadline_ns:
        pass


class WorkerCore:
    """The worker's state and calls; runs inside the worker process or, for tests and
    the overhead benchmark, in the caller's process."""

    def __init__(
        self,
        clock: Clock = time.perf_counter_ns,
        backend_factory: Callable[[str, BackendOptions], Backend] | None = None,
        memory: Any = None,
        wait: WaitUntil | None = None,
    ) -> None:
        self._clock = clock
        self._backend_factory = backend_factory
        self._memory = memory or ProcMemory()
        self._wait = wait or (lambda deadline: wait_until(deadline, clock))
        self._backend: Backend | None = None
        self._feeds: dict[int, list[Any]] = {}
        self._shapes: dict[int, list[tuple]] = {}
        self._path = ""
        self._peak_reset: bool | None = None  # None until the first warm-up resets it

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
        bare = self._memory.read().rss
        began = self._clock()
        backend.setup()
        set_up = self._clock()
        framework = self._memory.read().rss
        backend.load(request.path)
        loaded_at = self._clock()
        loaded = self._memory.read().rss
        self._backend = backend
        self._path = request.path
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
        self._feeds[batch_size] = [backend.prepare(feed) for feed in feeds]
        seconds = (self._clock() - began) / 1e9
        self._shapes[batch_size] = [tuple(sorted((k, v.shape) for k, v in feed.items())) for feed in feeds]
        return seconds

    def warm_up(self, batch_size: int, min_calls: int, min_seconds: float, max_seconds: float) -> WarmUp:
        """Run until at least ``min_calls`` calls and ``min_seconds`` have passed and every
        distinct input shape has run once, or ``max_seconds`` have passed."""
        feeds, shapes = self._feeds_for(batch_size), self._shapes[batch_size]
        backend = self.backend
        if self._peak_reset is None:  # the peak RSS covers inference: warm-up and measurement
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
        return self._timed(
            lambda: time_calls(backend.run, backend.synchronize, self._feeds_for(batch_size), start, count, self._clock)
        )

    def run_window(self, batch_size: int, start: int, count: int) -> int:
        backend, feeds = self.backend, self._feeds_for(batch_size)
        return self._timed(lambda: time_window(backend.run, backend.synchronize, feeds, start, count, self._clock))

    def run_load(self, batch_size: int, start: int, plan: LoadPlan) -> LoadEpisode:
        backend, feeds = self.backend, self._feeds_for(batch_size)
        return self._timed(
            lambda: serve_episode(backend.run, backend.synchronize, feeds, start, plan, self._clock, self._wait)
        )

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

    def cold_start(self, request: LoadRequest, feed: Mapping[str, np.ndarray]) -> ColdStart:
        """Load the model and run its first inference, in a fresh worker (phases by this clock)."""
        info = self.load(request)
        began = self._clock()
        prepared = self.backend.prepare(feed)
        prepared_at = self._clock()
        self._timed(lambda: time_calls(self.backend.run, self.backend.synchronize, [prepared], 0, 1, self._clock))
        done = self._clock()
        return ColdStart(info.setup_seconds, info.load_seconds, (prepared_at - began) / 1e9, (done - prepared_at) / 1e9)

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


class InProcessWorker:
    """A WorkerCore driven directly, with the same calls as SubprocessWorker."""

    def __init__(self, role: str, core: WorkerCore | None = None) -> None:
        self.role = role
        self.core = core or WorkerCore()
        self._pending: Any = None

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None:
        pass

    def begin(self, method: str, *args: Any) -> None:
        try:
            self._pending = ("ok", getattr(self.core, method)(*args))
        except PerfgateError as exc:
            self._pending = ("error", exc)

    def finish(self, method: str, timeout: float = 0.0) -> Any:
        status, value = self._pending
        self._pending = None
        if status == "error":
            raise type(value)(f"{self.role}: {value.message}", details=value.details) from value
        return value

    def call(self, method: str, *args: Any, timeout: float = 0.0) -> Any:
        self.begin(method, *args)
        return self.finish(method, timeout)

    def close(self) -> None:
        self.core.close()


class SubprocessWorker:
    """A worker process and the pipe to it."""

    def __init__(self, role: str, log_dir: str | Path) -> None:
        self.role = role
        self.log_path = Path(log_dir) / f"{role}-worker.log"
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None:
        parent_end, child_end = Pipe(duplex=True)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        for variable in THREAD_VARIABLES:
            env[variable] = str(threads)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "perfgate.worker", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        child_end.close()
        self._conn = parent_end
        if cpus is not None:
            # set before the interpreter has started any thread, so all of them inherit it
            try:
                os.sched_setaffinity(self._process.pid, cpus)
            except OSError:
                pass  # the report records the CPUs the worker really has

    def begin(self, method: str, *args: Any) -> None:
        try:
            self._connection().send(("call", method, args))
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            raise self._died(method) from None

    def finish(self, method: str, timeout: float) -> Any:
        conn = self._connection()
        try:
            ready = conn.poll(timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self.kill()
            raise WorkerError(f"{self.role}: the worker did not answer {method!r} within {timeout:g} s and was stopped")
        try:
            reply = conn.recv()
        except (EOFError, OSError, ConnectionResetError):
            raise self._died(method) from None
        if reply[0] == "ok":
            return reply[1]
        _, class_name, message, details = reply
        raise error_class(class_name)(f"{self.role}: {message}", details=details)

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        self.begin(method, *args)
        return self.finish(method, timeout)

    def close(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None and self._conn is not None:
            try:
                self.call("close", timeout=10.0)
            except PerfgateError:
                pass
        try:
            self._process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.kill()
        self._shut_pipe()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._shut_pipe()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _connection(self) -> Connection:
        if self._conn is None:
            raise WorkerError(f"{self.role}: the worker is not running")
        return self._conn

    def _shut_pipe(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _died(self, method: str) -> WorkerError:
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.kill()
        self._shut_pipe()
        tail = self.log_tail()
        last = tail.splitlines()[-1].strip() if tail else ""
        return WorkerError(
            f"{self.role}: the worker died during {method!r} ({_describe_exit(code)})" + (f": {last}" if last else ""),
            details=tail or None,
        )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"



def serve(conn: Connection, core: WorkerCore) -> None:
    """Answer calls until ``close`` or until the parent goes away."""
    allowed = {"load", "set_feeds", "warm_up", "run_block", "run_window", "run_load", "memory", "cold_start", "close"}
    while True:
        try:
            _, method, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if method not in allowed:
                raise WorkerError(f"unknown worker call {method!r}")
            conn.send(("ok", getattr(core, method)(*args)))
        except PerfgateError as exc:
            conn.send(("error", type(exc).__name__, exc.message, traceback.format_exc()))
        except Exception as exc:  # a framework's own error: report it, the parent decides
            conn.send(("error", "WorkerError", f"{type(exc).__name__}: {first_line(exc)}", traceback.format_exc()))
        if method == "close":
            return


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    conn = Connection(int(args[0]))
    try:
        serve(conn, WorkerCore())
    finally:
        conn.close()


if __name__ == "__main__":
    # Run main from the module imported by its real name: results pickled from here must
    # name perfgate.worker.ModelInfo, not __main__.ModelInfo, for the parent to read them.
    from perfgate.worker import main as worker_main

    worker_main()
