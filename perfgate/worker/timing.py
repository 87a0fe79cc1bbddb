"""The timing loops: the only code that runs between two clock readings.

Each loop takes the backend's ``run`` and ``synchronize`` and a clock, so tests drive
them with fake backends and a virtual clock. Nothing but the call and its
synchronization sits inside a clock pair: feeds are picked before, outputs released
after, and the garbage collector is paused for the stretch.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import threading
import time
from typing import Any, Callable, Sequence

from perfgate.backends.base import Generation
from perfgate.worker.protocol import LoadEpisode, LoadPlan, RequestTiming

Clock = Callable[[], int]
WaitUntil = Callable[[int], None]


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
    plan: LoadPlan,
    clock: Clock,
    wait: WaitUntil,
) -> LoadEpisode:
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


def time_requests(
    generate: Callable[[Any, int, Clock], Generation], prompts: Sequence[Any], max_new_tokens: int, clock: Clock
) -> list[Generation]:
    """One generation request per prepared prompt, one after another; ``generate`` reads the
    clock itself, at the request's start, at each new token and at its return. The garbage
    collector is paused for the stretch."""
    with collector_paused():
        return [generate(prompt, max_new_tokens, clock) for prompt in prompts]


def serve_requests(
    generate: Callable[[Any, int, Clock], Generation],
    prompts: Sequence[Any],
    max_new_tokens: int,
    plan: LoadPlan,
    clock: Clock,
    wait: WaitUntil,
) -> list[tuple[int, Generation]]:
    """A served model's requests under load, each on a thread of its own as a client would
    send it: a closed loop keeps ``plan.clients`` in flight, the next sent as one returns;
    an open loop sends each at its arrival whatever is in flight. Each request reads the
    clock itself (its TTFT runs from its sending). Each with its position in ``prompts``, in
the order they were sent."""
    done: list[tuple[int, Generation]] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def send(position: int) -> None:
        try:
            generation = generate(prompts[position], max_new_tokens, clock)
        except BaseException as exc:  # said in the worker's thread, raised in its main one
            with lock:
                failed.append(exc)
            return
        with lock:
            done.append((position, generation))

    with collector_paused():
        if plan.kind == "closed":
            positions = iter(range(len(prompts)))

            def client() -> None:
                while not failed:
                    with lock:
                        position = next(positions, None)
                    if position is None:
                        return
                    send(position)

            threads = [threading.Thread(target=client, daemon=True) for _ in range(min(plan.clients, len(prompts)))]
            for thread in threads:
                thread.start()
        else:
            began = clock()
            threads = []
            for position in range(len(prompts)):
                wait(began + plan.arrivals_ns[position])
                if failed:
                    break
                threads.append(threading.Thread(target=send, args=(position,), daemon=True))
                threads[-1].start()
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    return sorted(done, key=lambda item: item[1].started_ns)


def request_timing(prompt: int, generation: Generation) -> RequestTiming:
    """A request's TTFT, inter-token gaps and end-to-end time from its clock readings."""
    stamps = generation.token_ns
    gaps = tuple(later - earlier for earlier, later in zip(stamps, stamps[1:]))
    tokens = len(stamps) if generation.new_tokens is None else generation.new_tokens
    answer = generation.output_text if generation.output_text is not None and not generation.output_ids else generation.output_ids
    return RequestTiming(
        prompt, stamps[0] - generation.started_ns, gaps, generation.ended_ns - generation.started_ns, tokens,
        generation.prompt_tokens, generation.counted_by, answer,
    )  # fmt: skip


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
