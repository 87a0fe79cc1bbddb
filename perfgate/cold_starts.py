"""Cold starts: fresh workers per model, in ABBA order, each timed by the parent's clock
from starting the process to the end of its first inference.

A cold start is bounded phase by phase: its start and loading by what starting and loading
the main workers took (``call_limit``, never more than LOAD_TIMEOUT_S), its first call by
the call timeout, so that a model that hangs on its first call fails in about the call
timeout."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from perfgate.results import SIDES, ColdStartRecord
from perfgate.worker.process import Worker
from perfgate.worker.protocol import LOAD_TIMEOUT_S, FirstInference, LoadRequest, Timeout, call_limit

WorkerFactory = Callable[[str, str], Worker]  # (role, log_dir) -> worker


def run_cold_starts(
    count: int,
    factory: WorkerFactory,
    log_dir: str,
    requests: Mapping[str, LoadRequest],
    first_feeds: Mapping[str, dict],
    threads: int,
    cpus: tuple[int, ...] | None,
    clock: Callable[[], float],
    say: Callable[[str], None],
    *,
    call_timeout_s: float,
    started_s: float,
) -> dict[str, tuple[ColdStartRecord, ...]]:
    """``count`` fresh workers per model (none for 0). ``started_s``: what starting both main
    workers and loading both models took, by ``clock``: the interpreter's start and its
    imports, which the workers' own clocks do not see, take their part of a cold start."""
    if count == 0:
        return {}
    timeout = Timeout((min(LOAD_TIMEOUT_S, call_limit(call_timeout_s, started_s)), call_timeout_s), by_call_timeout=True)
    records: dict[str, list[ColdStartRecord]] = {side: [] for side in SIDES}
    for index in range(count):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for side in order:
            worker = factory(f"{side}-cold-start-{index + 1}", log_dir)
            began = clock()
            try:
                worker.start(threads, cpus)
                phases = worker.call(FirstInference(requests[side], first_feeds[side]), timeout=timeout)
                ended = clock()
            finally:
                worker.close()
            records[side].append(
                ColdStartRecord(ended - began, phases.setup_seconds, phases.load_seconds, phases.prepare_seconds, phases.first_call_seconds)
            )
    say(
        "cold start (process start to first inference, mean of "
        f"{count}): reference {np.mean([r.total_seconds for r in records['reference']]):.2f} s, "
        f"candidate {np.mean([r.total_seconds for r in records['candidate']]):.2f} s"
    )
    return {side: tuple(values) for side, values in records.items()}
