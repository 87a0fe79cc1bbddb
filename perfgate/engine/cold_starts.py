"""Cold starts: each measuring worker's own start, and fresh workers per model where asked
(a cold_start budget, or ``--cold-starts K``), in ABBA order, each timed by the parent's
clock from starting the process to the end of its first inference.

The measuring workers' own starts cost nothing extra: both start and load at once, and
the parent's clock from each one's start to its loaded answer covers the interpreter, its
imports, the framework's setup and the load; the worker's clock adds its first batch's
preparation and its first call on real inputs (the first output comparison's, or one
made for it). Both models load side by side there, so that sample is a cold start on a
machine as busy as two loading models make it, the same for both; fresh workers start
alone.

A cold start is bounded phase by phase: its start and loading by what starting and loading
the main workers took (``call_limit``, never more than ``load_limit``), its first call by
the call timeout, so that a model that hangs on its first call fails in about the call
timeout."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from perfgate.measurements import ColdStartRecord
from perfgate.results import SIDES
from perfgate.worker.process import Worker
from perfgate.worker.protocol import FirstInference, LoadRequest, OwnColdStart, Timeout, call_limit, load_limit

WorkerFactory = Callable[[str, str], Worker]  # (role, log_dir) -> worker


def own_cold_starts(
    workers: Mapping[str, Worker], batch_size: int, loaded_s: Mapping[str, float], *, call_timeout_s: float
) -> dict[str, ColdStartRecord]:
    """Each measuring worker's own start as a cold start. ``loaded_s``: per model, from its
    worker's start to its load's answer, by the parent's clock."""
    timeout = Timeout((call_timeout_s,), by_call_timeout=True)
    records = {}
    for side in SIDES:
        phases = workers[side].call(OwnColdStart(batch_size), timeout=timeout)
        records[side] = ColdStartRecord(
            loaded_s[side] + phases.prepare_seconds + phases.first_call_seconds, phases.setup_seconds,
            phases.load_seconds, phases.prepare_seconds, phases.first_call_seconds, measuring_worker=True,
        )  # fmt: skip
    return records


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
    own: Mapping[str, ColdStartRecord],
) -> dict[str, tuple[ColdStartRecord, ...]]:
    """The measuring workers' own starts (``own``) followed by ``count`` fresh workers' per
    model (none for 0). ``started_s``: what starting both main workers and loading both
    models took, by ``clock``, which bounds a fresh worker's start and load."""
    records: dict[str, list[ColdStartRecord]] = {side: [own[side]] for side in SIDES}
    timeout = Timeout((min(load_limit(call_timeout_s), call_limit(call_timeout_s, started_s)), call_timeout_s), by_call_timeout=True)
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
    which = f"mean of the measuring worker's and {count} fresh" if count else "the measuring worker's own"
    say(
        f"cold start (process start to first inference, {which}): "
        f"reference {np.mean([r.total_seconds for r in records['reference']]):.2f} s, "
        f"candidate {np.mean([r.total_seconds for r in records['candidate']]):.2f} s"
    )
    return {side: tuple(values) for side, values in records.items()}
