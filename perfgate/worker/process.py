"""The parent's side: a handle on one worker, in a subprocess or in-process.

A worker is a fresh interpreter (``python -m perfgate.worker FD``), not a fork: its
memory holds one model only, it inherits no thread pools, and a user's script that calls
``perfgate.compare`` without a ``__main__`` guard is not re-run. Its stdout and stderr go
to a log file, so framework chatter never mixes with perfgate's output; the log's tail is
quoted when the worker fails. A worker that dies or stops answering is a WorkerError in
the parent, never a verdict.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any, Protocol

from perfgate.errors import PerfgateError, WorkerError, error_class
from perfgate.worker.core import WorkerCore, answer
from perfgate.worker.protocol import Call, Shutdown

# Environment variables that size the thread pools of numpy's BLAS, OpenMP and MKL; set
# to --threads in each worker so that neither model gets more threads than the other.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class Worker(Protocol):
    """What the pipeline and the runner drive: start it, send it calls, close it."""

    role: str

    def start(self, threads: int = 1, cpus: tuple[int, ...] | None = None) -> None: ...

    def begin(self, call: Call) -> None: ...

    def finish(self, call: Call, timeout: float) -> Any: ...

    def call(self, call: Call, *, timeout: float) -> Any: ...

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

    def finish(self, call: Call, timeout: float = 0.0) -> Any:
        status, value = self._pending
        self._pending = None
        if status == "error":
            raise type(value)(f"{self.role}: {value.message}", details=value.details) from value
        return value

    def call(self, call: Call, *, timeout: float = 0.0) -> Any:
        self.begin(call)
        return self.finish(call, timeout)

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
        package_root = str(Path(__file__).resolve().parents[2])  # the directory holding perfgate/
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        for variable in THREAD_VARIABLES:
            env[variable] = str(threads)
        # the frameworks' own temp files (onnxruntime's .ses, say) go into the run's folder, removed with it
        env["TMPDIR"] = str(self.log_path.parent)
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

    def begin(self, call: Call) -> None:
        try:
            self._connection().send(call)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            raise self._died(call.name) from None

    def finish(self, call: Call, timeout: float) -> Any:
        method = call.name
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

    def call(self, call: Call, *, timeout: float) -> Any:
        self.begin(call)
        return self.finish(call, timeout)

    def close(self) -> None:
        if self._process is None:
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
