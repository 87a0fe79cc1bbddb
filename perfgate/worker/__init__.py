"""One model in its own process: load, take batches, warm up, time calls.

    protocol.py  the messages between parent and worker, and their answers
    timing.py    the loops that run between two clock readings
    core.py      the worker's state and the loop that answers calls (the child's side)
    process.py   the parent's handles: a subprocess, or the core in-process for tests
"""

from perfgate.worker.core import WorkerCore, answer, serve
from perfgate.worker.process import InProcessWorker, SubprocessWorker, Worker, worker_cpus
from perfgate.worker.protocol import *  # noqa: F403 (the calls and their answers)
from perfgate.worker.protocol import LOAD_TIMEOUT_S, SETUP_TIMEOUT_S, __all__ as _protocol
from perfgate.worker.timing import collector_paused, serve_episode, time_calls, time_window, wait_until

__all__ = [
    *_protocol, "LOAD_TIMEOUT_S", "SETUP_TIMEOUT_S", "WorkerCore", "answer", "serve", "InProcessWorker",
    "SubprocessWorker", "Worker", "worker_cpus", "collector_paused", "serve_episode", "time_calls",
    "time_window", "wait_until",
]  # fmt: skip
