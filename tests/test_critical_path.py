"""Nothing unbudgeted on the critical path (issue 12): throughput windows only where they
differ from the latency blocks, cold starts from the measuring workers' own start, both
workers started and loading at once. Fake backends in virtual time; every worker the
comparison makes, and every call it sends, is recorded."""

import pytest

from fakes import FakeClock, in_process_factory
from perfgate.config import CompareConfig
from perfgate.engine.pipeline import run_comparison
from perfgate.judge.rejudge import judge_again
from perfgate.results import Verdict

MS = 1e6


def constant(ns):
    return lambda rng, clock, feed: ns


def run(data, reference, candidate, *, per_role=None, events=None, made=None, **options):
    """A comparison in virtual time; ``events`` collects (role, what) for every worker made,
    started, and every call sent to it, in order."""
    clock = FakeClock()
    options.setdefault("time_budget_s", 10.0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data),
        inputs={"x": "f*"}, reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        **options,
    )  # fmt: skip
    inner = in_process_factory(clock, {"reference": reference, "candidate": candidate}, per_role=per_role, made=made)
    log = events if events is not None else []

    def factory(role, log_dir):
        worker = inner(role, log_dir)
        log.append((role, "made"))
        start, begin, finish = worker.start, worker.begin, worker.finish

        def started(*args, **kwargs):
            log.append((role, "start"))
            return start(*args, **kwargs)

        def begun(call):
            log.append((role, type(call).__name__))
            return begin(call)

        def finished(call, timeout=0.0):
            log.append((role, f"finish {type(call).__name__}"))
            return finish(call, timeout)

        worker.start, worker.begin, worker.finish = started, begun, finished
        return worker

    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def check(report, metric):
    found = [c for c in report.checks if c.metric == metric]
    assert len(found) == 1, [c.metric for c in report.checks]
    return found[0]


def sent(events, what):
    return [role for role, name in events if name == what]


# --- throughput windows -------------------------------------------------------------------


def test_on_a_cpu_without_a_throughput_budget_no_window_is_measured_and_blocks_give_throughput(feature_table_path):
    events = []
    report = run(feature_table_path, constant(1 * MS), constant(1.25 * MS), batch_sizes=(4,), events=events,
                 max_latency_increase="30%")  # fmt: skip
    assert sent(events, "RunWindow") == []
    assert sent(events, "RunBlock")
    throughput = check(report, "throughput.batch4")
    assert throughput.verdict is Verdict.INFO and throughput.budget is None
    # 4 samples a call: 1 ms a call is 4000 samples/s, 1.25 ms is 3200
    assert throughput.reference == pytest.approx(4000) and throughput.candidate == pytest.approx(3200)
    assert throughput.ratio == pytest.approx(0.8)
    assert throughput.n_reference == throughput.n_candidate == report.series[0].pairs
    assert report.series[0].windows == {}


def test_a_throughput_budget_measures_windows_of_its_own(feature_table_path):
    events, made = [], {}
    report = run(feature_table_path, constant(1 * MS), constant(1.25 * MS), batch_sizes=(4,), events=events, made=made,
                 max_latency_increase="30%", budgets=["throughput:-10%"], instances=1)  # fmt: skip
    pairs = report.series[0].pairs
    assert len(sent(events, "RunWindow")) == 2 * pairs
    # a window synchronizes once, after its last call
    assert made["reference"].calls - made["reference"].synchronized == pairs * (report.series[0].calls_per_block - 1)
    assert len(report.series[0].windows["candidate"]) == pairs
    assert check(report, "throughput.batch4").verdict is Verdict.FAIL


def test_on_a_gpu_windows_are_measured_even_without_a_budget(feature_table_path):
    events = []
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), device="cuda", events=events)
    assert len(sent(events, "RunWindow")) == 2 * report.series[0].pairs > 0
    assert check(report, "throughput.batch1").verdict is Verdict.INFO


def test_a_saved_report_without_windows_is_judged_again_on_throughput(feature_table_path):
    report = run(feature_table_path, constant(1 * MS), constant(1.25 * MS), batch_sizes=(4,), max_latency_increase="30%")
    assert report.series[0].windows == {}
    again = judge_again(report, ["throughput:-10%"])
    throughput = check(again, "throughput.batch4")
    assert throughput.ratio == pytest.approx(0.8) and throughput.verdict is Verdict.FAIL
    assert again.verdict is Verdict.FAIL


# --- cold starts ----------------------------------------------------------------------------


def test_by_default_no_fresh_worker_is_started_and_each_model_has_its_own_start_as_a_cold_start(feature_table_path):
    events = []
    per_role = {"reference": {"load_ns": 1e9}, "candidate": {"load_ns": 3e9}}
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=per_role, events=events)
    assert sorted(sent(events, "made")) == ["candidate", "reference"]  # the two measuring workers, nothing else
    for side, load_s in (("reference", 1.0), ("candidate", 3.0)):
        (record,) = report.cold_starts[side]
        assert record.measuring_worker
        assert record.first_call_seconds == pytest.approx(0.001)  # the first output comparison's call
        # the parent's clock from the worker's start to its loaded answer, then its first batch and call:
        # both load side by side, so each is loaded at its own load time, not after the other's
        assert record.total_seconds == pytest.approx(load_s + 0.001)
    cold = check(report, "cold_start")
    assert cold.verdict is Verdict.INFO and cold.n_reference == cold.n_candidate == 1
    assert cold.reference == report.cold_starts["reference"][0].total_seconds * 1e9
    assert "measuring worker's own start" in cold.reason
    assert report.settings.cold_starts == 0 and report.verdict is Verdict.PASS


def test_without_compared_outputs_the_first_call_is_made_for_the_cold_start(feature_table_path):
    events = []
    report = run(feature_table_path, constant(1 * MS), constant(2 * MS), output_rows=0, events=events)
    assert report.cold_starts["candidate"][0].first_call_seconds == pytest.approx(0.002)
    # read before measuring: the looks see it
    assert events.index(("reference", "OwnColdStart")) < events.index(("reference", "WarmUpModel"))


def test_a_cold_start_budget_starts_fresh_workers_and_decides_on_them(feature_table_path):
    events = []
    per_role = {"reference": {"load_ns": 1e9}, "candidate": {"load_ns": 3e9}}
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=per_role, events=events,
                 budgets=["cold_start:+50%"])  # fmt: skip
    fresh = [role for role in sent(events, "made") if "cold-start" in role]
    assert len(fresh) == 6 and report.settings.cold_starts == 3
    assert [r.measuring_worker for r in report.cold_starts["candidate"]] == [True, False, False, False]
    cold = check(report, "cold_start")
    assert cold.n_reference == cold.n_candidate == 4
    assert cold.verdict is Verdict.FAIL and report.verdict is Verdict.FAIL


def test_cold_starts_given_explicitly_add_that_many_fresh_workers(feature_table_path):
    events = []
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), cold_starts=2, events=events)
    assert len([role for role in sent(events, "made") if "cold-start" in role]) == 4
    assert len(report.cold_starts["reference"]) == 3
    assert check(report, "cold_start").verdict is Verdict.INFO


def test_a_cold_start_budget_with_no_fresh_starts_is_refused(feature_table_path):
    from perfgate.errors import UsageError

    with pytest.raises(UsageError, match=r"cold_starts=1 or more"):
        run(feature_table_path, constant(1 * MS), constant(1 * MS), cold_starts=0, budgets=["cold_start:+50%"])


class Loading:
    """A worker whose load answers at ``done_s`` of virtual time; each poll waits its timeout."""

    def __init__(self, role, clock, done_s):
        self.role, self.clock, self.done_ns = role, clock, done_s * 1e9

    def begin(self, call):
        pass

    def ready(self, timeout):
        if self.clock.now < self.done_ns:
            self.clock.advance(min(timeout * 1e9, self.done_ns - self.clock.now))
        return self.clock.now >= self.done_ns

    def finish(self, call, timeout):
        self.clock.advance_to(self.done_ns)
        return f"{self.role} loaded"


def test_each_models_load_is_timed_when_it_answers_not_after_the_others(feature_table_path):
    from perfgate.engine.pipeline import _load

    clock = FakeClock()
    workers = {"reference": Loading("reference", clock, 3.0), "candidate": Loading("candidate", clock, 1.0)}
    requests = {side: None for side in workers}
    infos, loaded_s, _ = _load([workers], requests, clock.seconds, {"reference": 0.0, "candidate": 0.0})
    assert infos == {"reference": "reference loaded", "candidate": "candidate loaded"}
    assert loaded_s["candidate"] == pytest.approx(1.0, abs=0.01) and loaded_s["reference"] == pytest.approx(3.0)


# --- both models load at once -------------------------------------------------------------


def test_both_workers_start_and_begin_loading_before_either_is_waited_on(feature_table_path):
    events = []
    run(feature_table_path, constant(1 * MS), constant(1 * MS), events=events)
    first_wait = events.index(next(event for event in events if event[1].startswith("finish")))
    before = events[:first_wait]
    for side in ("reference", "candidate"):
        assert (side, "start") in before and (side, "LoadModel") in before


def test_a_worker_process_starts_unpinned_and_pins_every_thread_once_loaded(tmp_path):
    import os
    import sys

    from perfgate.backends.base import BackendOptions
    from perfgate.worker import SubprocessWorker
    from perfgate.worker.protocol import LoadModel, LoadRequest

    usable = tuple(sorted(os.sched_getaffinity(0)))
    if len(usable) < 2:
        pytest.skip("pinning to fewer CPUs than usable needs two of them")
    worker = SubprocessWorker("reference", tmp_path)
    try:
        worker.start(1)
        assert tuple(sorted(os.sched_getaffinity(worker._process.pid))) == usable  # importing on every core
        request = LoadRequest("fakes:TinyBackend", "m", BackendOptions(), tuple(sys.path), pin_after_load=usable[-1:])
        info = worker.call(LoadModel(request), timeout=60)
        assert info.cpus == usable[-1:]
        for thread in os.listdir(f"/proc/{worker._process.pid}/task"):
            assert os.sched_getaffinity(int(thread)) == {usable[-1]}
    finally:
        worker.close()
