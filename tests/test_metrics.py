"""Throughput, memory, cold start, latency under load, latency against input size and the
stage breakdown, on fake backends in virtual time: every number here is exact or follows
from the fake's latency model, nothing is timed for real."""

import importlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fakes import FakeClock, in_process_factory, lognormal
from perfgate.cli import _flag as cli_flag
from perfgate.config import CompareConfig
from perfgate.engine.pipeline import run_comparison
from perfgate.errors import BudgetError, ColumnMappingError, UsageError
from perfgate.report.text import render_text
from perfgate.results import Verdict

MS = 1e6
MiB = 2**20


def run(data, reference, candidate, *, per_role=None, made=None, memory_resettable=True, clock=None, **options):
    clock = clock or FakeClock()
    options.setdefault("time_budget_s", 10.0)
    options.setdefault("cold_starts", 0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data),
        inputs={"x": "f*"}, reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        **options,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": reference, "candidate": candidate}, made=made,
                                 seed=options.get("seed", 0), per_role=per_role,
                                 memory_resettable=memory_resettable)  # fmt: skip
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def check(report, metric, **where):
    found = [c for c in report.checks if c.metric == metric and all(getattr(c, k) == v for k, v in where.items())]
    assert len(found) == 1, [(c.metric, c.batch_size, c.scenario) for c in report.checks]
    return found[0]


def constant(ns):
    return lambda rng, clock, feed: ns


def test_throughput_is_samples_over_the_window_and_can_fail_the_gate(feature_table_path):
    report = run(feature_table_path, constant(1 * MS), constant(1.25 * MS), batch_sizes=(4,),
                 max_latency_increase="30%", budgets=["throughput:-10%"])  # fmt: skip
    throughput = check(report, "throughput.batch4")
    assert throughput.unit == "samples/s" and throughput.higher_is_better
    assert throughput.reference == pytest.approx(4000) and throughput.candidate == pytest.approx(3200)
    assert throughput.ratio == pytest.approx(0.8)
    assert throughput.verdict is Verdict.FAIL and report.verdict is Verdict.FAIL
    relaxed = run(feature_table_path, constant(1 * MS), constant(1.25 * MS), batch_sizes=(4,),
                  max_latency_increase="30%", budgets=["throughput:-25%"])  # fmt: skip
    assert check(relaxed, "throughput.batch4").verdict is Verdict.PASS and relaxed.verdict is Verdict.PASS
    unbudgeted = run(feature_table_path, constant(1 * MS), constant(1 * MS), batch_sizes=(1, 4))
    assert {c.verdict for c in unbudgeted.checks if c.metric.startswith("throughput")} == {Verdict.INFO}


def test_memory_reports_peak_and_load_rss_and_gates_with_a_floor(feature_table_path):
    per_role = {"reference": {"model_bytes": 100 * MiB}, "candidate": {"model_bytes": 200 * MiB}}
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=per_role,
                 budgets=["memory.peak_rss:+10%"])  # fmt: skip
    peak, load = check(report, "memory.peak_rss"), check(report, "memory.load_rss")
    assert load.reference == 100 * MiB and load.candidate == 200 * MiB and load.verdict is Verdict.INFO
    assert peak.candidate - peak.reference == 100 * MiB
    assert peak.verdict is Verdict.FAIL and report.verdict is Verdict.FAIL
    assert report.reference.memory["load_rss"] == 100 * MiB
    small = {"reference": {"model_bytes": 100 * MiB}, "candidate": {"model_bytes": 104 * MiB}}
    within_floor = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=small,
                       budgets=["memory.peak_rss:+1%"])  # fmt: skip
    assert check(within_floor, "memory.peak_rss").verdict is Verdict.PASS  # 4 MiB < the 5 MiB floor
    stricter = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=small,
                   budgets=["memory.peak_rss:+1%"], memory_floor="1MiB")  # fmt: skip
    assert check(stricter, "memory.peak_rss").verdict is Verdict.FAIL


def test_the_peak_covers_inference_not_loading_where_the_kernel_allows(feature_table_path, monkeypatch):
    import fakes

    class LoadSpike(fakes.FakeBackend):
        def load(self, path):
            super().load(path)
            self.memory.spike(500 * MiB)  # a transient peak while loading, then freed

    monkeypatch.setattr(fakes, "FakeBackend", LoadSpike)
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS))
    assert report.reference.memory["peak_rss"] < 100 * MiB
    assert not report.reference.memory["peak_includes_load"]
    unresettable = run(feature_table_path, constant(1 * MS), constant(1 * MS), memory_resettable=False)
    assert unresettable.reference.memory["peak_rss"] >= 500 * MiB
    assert any("includes loading" in warning for warning in unresettable.warnings)


def test_cold_start_times_fresh_workers_to_their_first_inference(feature_table_path):
    per_role = {"reference": {"load_ns": 1e9}, "candidate": {"load_ns": 3e9}}
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=per_role, cold_starts=3,
                 budgets=["cold_start:+50%"])  # fmt: skip
    cold = check(report, "cold_start")
    assert cold.n_reference == cold.n_candidate == 4  # the measuring worker's own start and 3 fresh ones
    assert cold.reference == pytest.approx(1.001e9) and cold.candidate == pytest.approx(3.001e9)  # load + first call
    assert cold.verdict is Verdict.FAIL and report.verdict is Verdict.FAIL
    record = report.cold_starts["candidate"][1]  # the first fresh worker
    assert record.load_seconds == pytest.approx(3.0) and record.first_call_seconds == pytest.approx(0.001)
    default = run(feature_table_path, constant(1 * MS), constant(1 * MS), per_role=per_role, cold_starts=2)
    assert check(default, "cold_start").verdict is Verdict.INFO and default.verdict is Verdict.PASS


def test_closed_loop_clients_queue_behind_each_other(feature_table_path):
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), concurrency=(4,))
    (load,) = report.loads
    queue, service = load.part("reference", "queue_ns"), load.part("reference", "service_ns")
    assert np.all(service == 1 * MS)
    # in the steady state each request waits for the other three: 3 ms in the queue
    assert np.median(queue) == 3 * MS
    assert load.throughput("reference") == pytest.approx(1000, rel=1e-3)
    assert check(report, "load.p50", scenario="concurrency 4").verdict is Verdict.PASS


def test_near_capacity_queueing_dominates_the_tail(feature_table_path):
    # fixed 1 ms service (M/D/1): at 900 arrivals/s the server is 90 % busy
    busy = run(feature_table_path, constant(1 * MS), constant(1 * MS), rates=(900,), time_budget_s=30.0)
    idle = run(feature_table_path, constant(1 * MS), constant(1 * MS), rates=(100,), time_budget_s=30.0)
    for report, scenario in ((busy, "rate 900/s"), (idle, "rate 100/s")):
        assert report.loads[0].scenario.label == scenario
    busy_queue = np.quantile(busy.loads[0].part("reference", "queue_ns"), 0.99)
    idle_queue = np.quantile(idle.loads[0].part("reference", "queue_ns"), 0.99)
    busy_total = np.quantile(np.concatenate(busy.loads[0].latencies("reference")), 0.99)
    assert busy_queue > 3 * MS  # the queue's p99 is several service times
    assert busy_queue > 0.7 * busy_total  # and most of the total p99
    assert idle_queue < 1.1 * MS  # at 10 % load a request rarely waits a whole service time
    assert check(busy, "load.p99", scenario="rate 900/s").reference > 4 * MS


def test_a_model_at_or_past_its_capacity_is_warned_about(feature_table_path):
    # 1 ms per call serves 1000/s: at 900/s the reference is 90 % busy and keeps up; the
    # candidate, at 1.1 ms, would need 99 % of the time. Within a 0.25 s episode its backlog
    # hardly lowers the served rate (about 860/s), but its queue never drains.
    report = run(feature_table_path, constant(1 * MS), constant(1.1 * MS), rates=(900,), time_budget_s=30.0)
    (load,) = report.loads
    assert load.offered_load("reference") == pytest.approx(0.9)
    assert load.offered_load("candidate") == pytest.approx(0.99)
    assert load.throughput("candidate") > 0.9 * 900
    (warning,) = [w for w in report.warnings if w.startswith("load rate 900/s: the candidate")]
    assert "the candidate needs 99% of the time" in warning and "at or past its capacity" in warning
    text = render_text(report)
    assert re.search(r"rate 900/s candidate .* 99%\n", text) and re.search(r"rate 900/s reference .* 90%\n", text)
    calm = run(feature_table_path, constant(1 * MS), constant(1 * MS), rates=(900,), time_budget_s=30.0)
    assert not [w for w in calm.warnings if w.startswith("load")]
    closed = run(feature_table_path, constant(1 * MS), constant(1.1 * MS), concurrency=(4,))
    assert closed.loads[0].offered_load("candidate") is None
    assert not [w for w in closed.warnings if w.startswith("load")]


def test_a_slower_service_fails_under_load_by_more_than_it_fails_alone(feature_table_path):
    # 10 % slower per call, but near capacity the queue multiplies it
    report = run(feature_table_path, constant(1 * MS), constant(1.1 * MS), rates=(850,), time_budget_s=30.0,
                 max_latency_increase="20%")  # fmt: skip
    alone = check(report, "latency.p50", batch_size=1)
    assert alone.ratio == pytest.approx(1.1) and alone.verdict is Verdict.PASS
    # the gate stops at its first decided failure: one of the load checks, the p99 perhaps still open
    assert report.verdict is Verdict.FAIL and report.reason.startswith("load.p")
    deciding = next(c for c in report.checks if c.verdict is Verdict.FAIL)
    assert deciding.scenario == "rate 850/s" and deciding.ci[0] > 1.2


@pytest.fixture
def sized_table(tmp_path):
    """f0 doubles as the size column n: the fake's cost grows with it."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 101, 300)
    columns = {"f0": sizes.astype(np.float64), "n": sizes, **{f"f{i}": rng.standard_normal(300) for i in range(1, 4)}}
    path = tmp_path / "sized.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def cost(intercept_ns, per_unit_ns, sigma=0.02):
    return lambda rng, clock, feed: (intercept_ns + per_unit_ns * float(feed["x"][:, 0].sum())) * rng.lognormal(0, sigma)


def test_latency_against_size_fits_the_cost_slope_and_flags_faster_growth(sized_table):
    same = run(sized_table, cost(100_000, 1000), cost(100_000, 1000), size_column="n")
    slope = check(same, "latency_slope", batch_size=1)
    assert slope.reference == pytest.approx(1000, rel=0.05) and slope.unit == "ns/n"
    assert slope.verdict is Verdict.PASS
    steeper = run(sized_table, cost(100_000, 1000), cost(100_000, 2000), size_column="n",
                  max_latency_increase="100%", budgets=["latency_slope:+15%"])  # fmt: skip
    grown = check(steeper, "latency_slope", batch_size=1)
    assert grown.ratio == pytest.approx(2.0, rel=0.05) and grown.verdict is Verdict.FAIL
    (analysis,) = steeper.sizes
    assert analysis.column == "n" and len(analysis.buckets) == 5
    low, high = analysis.buckets[0], analysis.buckets[-1]
    assert high.p50["candidate"] / low.p50["candidate"] > high.p50["reference"] / low.p50["reference"]
    assert analysis.slope["candidate"] == pytest.approx(2000, rel=0.05)


def test_stages_split_preparation_from_the_model(feature_table_path):
    report = run(feature_table_path, constant(1 * MS), constant(2 * MS), batch_sizes=(1, 8))
    assert [stage.batch_size for stage in report.stages] == [1, 8]
    stage = report.stages[1]
    assert stage.model["reference"] == pytest.approx(1e-3) and stage.model["candidate"] == pytest.approx(2e-3)
    assert stage.read >= 0 and stage.tensors["reference"] >= 0 and stage.backend["candidate"] >= 0


def test_the_model_that_goes_first_is_not_charged_for_fresh_memory(feature_table_path, monkeypatch):
    # building a batch size's tensors the first time costs 5 ms more (page faults); later builds reuse the pages
    compare_module = importlib.import_module("perfgate.engine.feed")
    clock, built = FakeClock(), []
    real_build = compare_module.build_batches

    def build(*args, **kwargs):
        clock.advance((6 if not built else 1) * MS)
        built.append(args[3])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(compare_module, "build_batches", build)
    report = run(feature_table_path, constant(1 * MS), constant(1 * MS), batch_sizes=(1,), clock=clock)
    (stage,) = report.stages
    assert built == [1, 1, 1]  # one untimed build, then one per model
    assert stage.tensors["reference"] == stage.tensors["candidate"]


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(budgets=["load.p99:+20%"]), UsageError, "needs --concurrency N or --rate QPS"),
        (dict(budgets=["throughput.batch64:-5%"]), UsageError, "batch 64 is not measured"),
        (dict(budgets=["cold_start:+50%"], cold_starts=0), UsageError, "--cold-starts 1 or more"),
        (dict(budgets=["latency_slope:+20%"]), UsageError, "needs --size-column"),
        (dict(budgets=["memory.gpu_peak:+10%"]), UsageError, "needs --device cuda"),
        (dict(budgets=["throughput:0.9"]), BudgetError, "as a percentage"),
        (dict(memory_floor="lots"), BudgetError, "a size such as 5MiB"),
        (dict(concurrency=(0,)), UsageError, "--concurrency must be at least 1"),
        (dict(rates=(-5,)), UsageError, "--rate must be a positive"),
        (dict(cold_starts=-1), UsageError, "--cold-starts must be 0 or more"),
        (dict(frobnicate=1), UsageError, "unknown option(s): frobnicate"),
    ],
)
def test_options_and_budgets_that_cannot_be_measured_are_usage_errors(feature_table_path, options, error, message):
    # the command line's words; a Python caller is told the same with the API's keywords
    with pytest.raises(error) as raised:
        CompareConfig.from_options("r.fake", "c.fake", str(feature_table_path), **options)
    assert message in raised.value.in_words(cli_flag)
    assert "--" not in raised.value.message


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(budgets=["load.p99:+20%"]), "budget load.p99:+20%: latency under load needs concurrency=N or rates=QPS"),
        (dict(budgets=["throughput.batch64:-5%"]), "budget throughput.batch64:-5%: batch 64 is not measured (add batch_sizes=64)"),
        (dict(include_transfers=True), "include_transfers times host<->device copies, so it needs device=cuda"),
        (dict(time_budget_s=0), "time_budget_s must be a positive number of seconds, got 0"),
        (dict(device="tpu"), "device 'tpu': expected cpu, cuda or cuda:N"),
    ],
)
def test_a_python_caller_is_told_in_the_api_words(feature_table_path, options, message):
    with pytest.raises(UsageError) as raised:
        CompareConfig.from_options("r.fake", "c.fake", str(feature_table_path), **options)
    assert raised.value.message == message


def test_a_size_column_that_is_missing_or_not_numeric(feature_table_path, tmp_path):
    with pytest.raises(ColumnMappingError, match="--size-column nope: no such column"):
        run(feature_table_path, constant(1 * MS), constant(1 * MS), size_column="nope")
    table = pa.table({**{f"f{i}": np.zeros(20) for i in range(4)}, "kind": ["a"] * 20})
    path = tmp_path / "text_size.parquet"
    pq.write_table(table, path)
    with pytest.raises(ColumnMappingError, match="it needs numbers"):
        run(path, constant(1 * MS), constant(1 * MS), size_column="kind")
