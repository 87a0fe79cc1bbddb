import gc
import os
import sys
import time

import numpy as np
import pytest

import perfgate.backends as backends
from fakes import FakeBackend, FakeClock, FakeMemory
from perfgate.backends import load_backend_class, require_framework, resolve_backend_name
from perfgate.backends.base import BackendOptions
from perfgate.errors import BackendUnavailableError, UsageError, WorkerError
from perfgate.worker import (
    FirstInference, LoadModel, LoadRequest, RunBlock, SetFeeds, SubprocessWorker, Timeout, WorkerCore, time_calls, worker_cpus,
)  # fmt: skip


def test_only_run_and_synchronize_are_inside_the_clock_readings():
    clock = FakeClock()
    events = []

    def run(feed):
        events.append(("run", feed))
        clock.advance(feed * 100)
        return object()

    def synchronize():
        events.append(("sync", None))
        clock.advance(7)

    samples = time_calls(run, synchronize, [1, 2, 3], start=1, count=5, clock=clock.ns)
    assert samples == [207, 307, 107, 207, 307]  # starts at feed 1, wraps around
    assert [event for event, _ in events] == ["run", "sync"] * 5


def test_the_garbage_collector_is_paused_for_a_block_and_restored():
    states = []
    time_calls(lambda feed: states.append(gc.isenabled()), lambda: None, [0], 0, 3, FakeClock().ns)
    assert states == [False, False, False]
    assert gc.isenabled()


def warm_core(latency_ns=1e6):
    clock = FakeClock()

    def factory(name, options):
        return FakeBackend(options, clock, lambda rng, c, feed: latency_ns)

    core = WorkerCore(clock=clock.ns, backend_factory=factory)
    core.load(LoadRequest("fake", "m.fake", BackendOptions()))
    return core, clock


def test_warm_up_runs_every_input_shape_at_least_once():
    core, _ = warm_core()
    feeds = [{"x": np.zeros((2, length), np.float32)} for length in (3, 3, 5, 3, 7, 3)]
    core.set_feeds(2, feeds)
    warm = core.warm_up(2, min_calls=2, min_seconds=0.0, max_seconds=10.0)
    assert warm.shapes == 3
    assert warm.calls == 5  # feeds 0..4 reach the third shape
    assert warm.typical_ns == pytest.approx(1e6)


def test_warm_up_lasts_at_least_its_minimum_and_stops_at_its_maximum():
    core, clock = warm_core(latency_ns=1e6)
    core.set_feeds(1, [{"x": np.zeros((1, 4), np.float32)}])
    warm = core.warm_up(1, min_calls=10, min_seconds=0.05, max_seconds=1.0)
    assert warm.calls == 50 and warm.seconds == pytest.approx(0.05)
    slow, _ = warm_core(latency_ns=0.4e9)
    slow.set_feeds(1, [{"x": np.zeros((1, 4), np.float32)}])
    assert slow.warm_up(1, min_calls=100, min_seconds=0.0, max_seconds=1.0).calls == 3


def test_run_block_needs_feeds_of_that_batch_size():
    core, _ = warm_core()
    with pytest.raises(WorkerError, match="no batches of size 8"):
        core.run_block(8, 0, 1)


# --- real worker processes --------------------------------------------------------------------


def start(tmp_path, backend, role="candidate"):
    worker = SubprocessWorker(role, tmp_path)
    worker.start(1, None)
    info = worker.call(LoadModel(LoadRequest(backend, "model.bin", BackendOptions(), tuple(sys.path))), timeout=60)
    worker.call(SetFeeds(1, [{"features": np.zeros((1, 16), np.float32)}]), timeout=60)
    return worker, info


def test_a_worker_that_dies_is_an_error_with_its_exit_status(tmp_path):
    worker, _ = start(tmp_path, "fakes:CrashingBackend")
    with pytest.raises(WorkerError, match=r"candidate: the worker died during 'run_block' \(exit code 7\)"):
        worker.call(RunBlock(1, 0, 10), timeout=60)
    worker.close()


def test_a_worker_that_dies_while_loading(tmp_path):
    worker = SubprocessWorker("reference", tmp_path)
    worker.start(1, None)
    with pytest.raises(WorkerError, match=r"reference: the worker died during 'load' \(exit code 9\)"):
        worker.call(LoadModel(LoadRequest("fakes:CrashOnLoadBackend", "m", BackendOptions(), tuple(sys.path))), timeout=60)
    worker.close()


def test_a_worker_that_hangs_is_stopped_after_the_timeout(tmp_path):
    worker, _ = start(tmp_path, "fakes:HangingBackend")
    with pytest.raises(WorkerError) as info:
        worker.call(RunBlock(1, 0, 1), timeout=1.0)
    assert info.value.message == (
        "candidate: model 'model.bin' gave no answer within 1 s during a block of timed calls; it hangs, so its worker was stopped"
    )
    assert worker._process.poll() is not None
    worker.close()


def test_each_phase_of_a_call_has_its_own_time_limit(tmp_path):
    # a cold start may load for a long time, but its first call only for the call timeout
    worker = SubprocessWorker("candidate-cold-start-1", tmp_path)
    worker.start(1, None)
    request = LoadRequest("fakes:HangingBackend", "model.bin", BackendOptions(), tuple(sys.path))
    began = time.monotonic()
    with pytest.raises(WorkerError) as info:
        worker.call(FirstInference(request, {"features": np.zeros((1, 16), np.float32)}), timeout=Timeout((60.0, 1.0), True))
    assert time.monotonic() - began < 30.0
    assert info.value.message == (
        "candidate-cold-start-1: model 'model.bin' gave no answer within 1 s during a cold start's first call; "
        "it hangs, so its worker was stopped (if it is only slow, raise call_timeout_s)"
    )
    assert worker._process.poll() is not None


def test_closing_a_worker_in_the_middle_of_a_call_stops_it_at_once(tmp_path):
    worker, _ = start(tmp_path, "fakes:HangingBackend")
    worker.begin(RunBlock(1, 0, 1))  # then the parent is interrupted, or the other model fails
    began = time.monotonic()
    worker.close()
    assert time.monotonic() - began < 3.0  # it used to wait 10 s for an answer to Shutdown
    assert worker._process.poll() is not None


def test_a_worker_killed_by_a_signal_is_named_by_it(tmp_path):
    worker, _ = start(tmp_path, "fakes:SegfaultingBackend")
    with pytest.raises(WorkerError, match=r"died during 'run_block' \(killed by SIGSEGV\)"):
        worker.call(RunBlock(1, 0, 1), timeout=60)
    worker, _ = start(tmp_path, "fakes:KilledBackend")
    with pytest.raises(WorkerError, match=r"died during 'run_block' \(killed by SIGKILL, perhaps for lack of memory\)"):
        worker.call(RunBlock(1, 0, 1), timeout=60)


def test_the_worker_reads_its_rss_after_each_block_outside_the_clock():
    clock, memory = FakeClock(), FakeMemory()

    def factory(name, options):
        return FakeBackend(options, clock, lambda rng, c, feed: 1e6, memory=memory, leak_bytes=1000)

    core = WorkerCore(clock=clock.ns, backend_factory=factory, memory=memory)
    core.load(LoadRequest("fake", "m.fake", BackendOptions()))
    core.set_feeds(1, [{"x": np.zeros((1, 4), np.float32)}])
    base = memory.rss
    for _ in range(3):
        assert core.run_block(1, 0, 5) == [1_000_000] * 5
    assert core.block_memory() == (base + 5000, base + 10000, base + 15000)


def test_a_framework_error_in_the_worker_comes_back_as_one_line(tmp_path):
    worker, _ = start(tmp_path, "fakes:FailingBackend")
    with pytest.raises(WorkerError) as info:
        worker.call(RunBlock(1, 0, 1), timeout=60)
    assert info.value.message == (
        "candidate: model 'model.bin' failed while running: [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions"
    )
    assert "Traceback" in info.value.details
    worker.close()


def test_workers_are_pinned_to_the_cpus_they_are_given(tmp_path):
    cpus = worker_cpus(1)
    if cpus is None:
        pytest.skip("no sched_setaffinity here")
    assert cpus == (max(os.sched_getaffinity(0)),)
    worker = SubprocessWorker("reference", tmp_path)
    worker.start(1, cpus)
    info = worker.call(LoadModel(LoadRequest("fakes:CrashingBackend", "m", BackendOptions(), tuple(sys.path))), timeout=60)
    assert info.cpus == cpus and info.pid != os.getpid()
    worker.close()
    assert worker_cpus(len(os.sched_getaffinity(0)) + 1) is None


# --- choosing and importing backends ---------------------------------------------------------


def test_backends_are_chosen_from_the_file_or_named():
    assert resolve_backend_name("models/m.onnx", None) == "onnxruntime"
    assert resolve_backend_name("m.bin", "onnxruntime") == "onnxruntime"
    assert resolve_backend_name("m.bin", "mypkg.backends:Mine") == "mypkg.backends:Mine"
    with pytest.raises(UsageError, match="cannot tell which backend runs 'm.xyz'"):
        resolve_backend_name("m.xyz", None)
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        resolve_backend_name("m.onnx", "tensorrt")


def test_backend_import_errors_say_what_is_wrong():
    with pytest.raises(BackendUnavailableError, match="is not a subclass"):
        load_backend_class("fakes:NotABackend")
    with pytest.raises(BackendUnavailableError, match="cannot import backend 'nosuchmodule:X'"):
        load_backend_class("nosuchmodule:X")
    with pytest.raises(BackendUnavailableError, match="fakes has no 'Absent'"):
        load_backend_class("fakes:Absent")


def test_a_missing_framework_gives_the_install_hint(monkeypatch):
    entry = backends.BUILTIN_BACKENDS["onnxruntime"]
    monkeypatch.setitem(
        backends.BUILTIN_BACKENDS, "onnxruntime", backends.BackendEntry(entry.target, "onnxruntime_not_here", "onnx", entry.suffixes)
    )
    with pytest.raises(BackendUnavailableError) as info:
        require_framework("onnxruntime")
    assert info.value.message == (
        "the onnxruntime backend needs onnxruntime_not_here, which is not installed: pip install 'perfgate[onnx]'"
    )
    assert info.value.exit_code == 3
