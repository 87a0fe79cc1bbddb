"""The parent's side: a handle on one worker, in a subprocess or in-process.

A worker is a fresh interpreter (``python -m perfgate.worker FD``), not a fork: its
memory holds one model only, it inherits no thread pools, and a user's script that calls
``perfgate.compare`` without a ``__main__`` guard is not re-run. Its stdout and stderr go
to a log file, so framework chatter never mixes with perfgate's output; the log's tail is
quoted when the worker fails. A worker that dies or stops answering is a WorkerError in
the parent, never a verdict.

Every wait for an answer is bounded (``Timeout``, per phase of the call); a worker that
runs past it is killed. Closing a worker whose call is still running (the parent was
interrupted, or the other model failed) kills it too: it would not read a Shutdown
before its call returned, which may be never.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Protocol

from perfgate.errors import PerfgateError, WorkerError, error_class, option
from perfgate.worker.core import WorkerCore, answer
from perfgate.worker.interpreter import source_folder
from perfgate.worker.protocol import Call, FirstInference, LoadModel, Shutdown, Timeout

# Environment variables that size the thread pools of numpy's BLAS, OpenMP and MKL; set
# to --threads in each worker so that neither model gets more threads than the other.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class Worker(Protocol):
    """What the pipeline and the runner drive: start it, send it calls, close it."""

    role: str

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None: ...

    def begin(self, call: Call) -> None: ...

    def ready(self, timeout: float) -> bool: ...

    def finish(self, call: Call, timeout: float | Timeout) -> Any: ...

    def call(self, call: Call, *, timeout: float | Timeout) -> Any: ...

    def close(self) -> None: ...


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


class InProcessWorker:
    """A WorkerCore driven directly, with the same calls as SubprocessWorker."""

    def __init__(self, role: str, core: WorkerCore | None = None) -> None:
        self.role = role
        self.core = core or WorkerCore()
        self._pending: Any = None

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None:
        pass

    def begin(self, call: Call) -> None:
        try:
            self._pending = ("ok", answer(self.core, call))
        except PerfgateError as exc:
            self._pending = ("error", exc)

    def ready(self, timeout: float) -> bool:
        return True  # begin() has already answered

    def finish(self, call: Call, timeout: float | Timeout = 0.0) -> Any:
        status, value = self._pending
        self._pending = None
        if status == "error":
            raise type(value)(f"{self.role}: {value.message}", details=value.details) from value
        return value

    def call(self, call: Call, *, timeout: float | Timeout = 0.0) -> Any:
        self.begin(call)
        return self.finish(call, timeout)

    def close(self) -> None:
        self.core.close()


class SubprocessWorker:
    """A worker process and the pipe to it."""

    def __init__(self, role: str, log_dir: str | Path, python: str | None = None) -> None:
        self.role = role
        self.python = python  # another environment's interpreter (see interpreter.py); None: perfgate's own
        self.log_path = Path(log_dir) / f"{role}-worker.log"
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._in_flight = False  # a call was sent and its answer has not come back yet
        self._model = ""  # the model's path, once a call has named it

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None:
        parent_end, child_end = Pipe(duplex=True)
        env = dict(os.environ)
        if self.python is None:
            package_root = str(Path(__file__).resolve().parents[2])  # the directory holding perfgate/
        else:
            package_root = source_folder(self.log_path.parent)
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        for variable in THREAD_VARIABLES:
            env[variable] = str(threads)
        # the frameworks' own temp files (onnxruntime's .ses, say) go into the run's folder, removed with it
        env["TMPDIR"] = str(self.log_path.parent)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [self.python or sys.executable, "-m", "perfgate.worker", str(child_end.fileno()), str(os.getpid())],
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

    def begin(self, call: Call) -> None:
        if isinstance(call, (LoadModel, FirstInference)):
            self._model = call.request.path
        conn = self._connection()
        self._in_flight = True  # before sending: an interrupted send leaves half a message
        try:
            conn.send(call)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            raise self._died(call.name) from None

    def ready(self, timeout: float) -> bool:
        """Whether the call in flight has something to say (its answer, a phase, or that the
        worker died), waiting up to ``timeout`` seconds; ``finish`` reads it."""
        try:
            return self._connection().poll(timeout)
        except (EOFError, OSError):
            return True

    def finish(self, call: Call, timeout: float | Timeout) -> Any:
        """The answer to ``call``; a WorkerError if the worker dies or runs past ``timeout``
        (seconds for the whole call, or a Timeout per phase)."""
        limits = timeout if isinstance(timeout, Timeout) else Timeout((timeout,))
        conn = self._connection()
        phase = 0
        while True:
            try:
                ready = conn.poll(limits.limit(phase))
            except (EOFError, OSError):
                ready = True
            if not ready:
                self.kill()
                raise self._hung(call, phase, limits)
            try:
                reply = conn.recv()
            except (EOFError, OSError, ConnectionResetError):
                raise self._died(call.name) from None
            if reply[0] != "phase":
                break
            phase = reply[1]
        self._in_flight = False
        if reply[0] == "ok":
            return reply[1]
        _, class_name, message, details = reply
        raise error_class(class_name)(f"{self.role}: {message}", details=details)

    def call(self, call: Call, *, timeout: float | Timeout) -> Any:
        self.begin(call)
        return self.finish(call, timeout)

    def close(self) -> None:
        if self._process is None:
            return
        if self._in_flight:
            self.kill()
            return
        if self._process.poll() is None and self._conn is not None:
            try:
                self.call(Shutdown(), timeout=10.0)
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
        self._in_flight = False
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

    def _hung(self, call: Call, phase: int, limits: Timeout) -> WorkerError:
        model = f"model {self._model!r} " if self._model else "the worker "
        where = call.phases[min(phase, len(call.phases) - 1)]
        return WorkerError(
            f"{self.role}: {model}gave no answer within {limits.limit(phase):g} s during {where}; "
            "it hangs, so its worker was stopped"
            + (f" (if it is only slow, raise {option('call_timeout_s')})" if limits.by_call_timeout else ""),
            details=self.log_tail() or None,
        )

    def _died(self, method: str) -> WorkerError:
        self._in_flight = False
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
        if -code == signal.SIGKILL:
            return "killed by SIGKILL, perhaps for lack of memory"  # what the kernel's OOM killer sends
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
