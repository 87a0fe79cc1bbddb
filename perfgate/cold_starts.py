"""Cold starts: fresh workers per model, in ABBA order, each timed by the parent's clock
from starting the process to the end of its first inference."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from perfgate.results import SIDES, ColdStartRecord
from perfgate.worker.process import Worker
from perfgate.worker.protocol import LOAD_TIMEOUT_S, FirstInference, LoadRequest

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
) -> dict[str, tuple[ColdStartRecord, ...]]:
    """``count`` fresh workers per model (none for 0)."""
    if count == 0:
        return {}
    records: dict[str, list[ColdStartRecord]] = {side: [] for side in SIDES}
    for index in range(count):
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for side in order:
            worker = factory(f"{side}-cold-start-{index + 1}", log_dir)
            began = clock()
            try:
                worker.start(threads, cpus)
                phases = worker.call(FirstInference(requests[side], first_feeds[side]), timeout=LOAD_TIMEOUT_S)
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
