"""Nothing unbudgeted on the critical path (issue 12): throughput windows only where they
differ from the latency blocks, cold starts from the measuring workers' own start, both
workers started and loading at once. Fake backends in virtual time; every worker the
comparison makes, and every call it sends, is recorded."""

import pytest

from fakes import FakeClock, in_process_factory
from perfgate.config import CompareConfig
from perfgate.pipeline import run_comparison
from perfgate.rejudge import judge_again
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
                 max_latency_increase="30%", budgets=["throughput:-10%"])  # fmt: skip
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
