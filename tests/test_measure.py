"""perfgate.measure: one model (fake backends, virtual time) or one callable, its human
units, and absolute budgets decided on a confidence interval of the value itself."""

import math

import numpy as np
import pytest

import perfgate
from fakes import FakeClock, in_process_factory, lognormal
from perfgate.judge.absolute import PEAK_RSS_OF_A_CALLABLE, parse_absolute_budget
from perfgate.errors import UsageError
from perfgate.results import Verdict
from perfgate.engine.single import measure
from perfgate.judge.units import parse_duration, parse_rate, parse_size

MS = 1e6
MiB = 2**20


def measured(data, latency, *, clock=None, per_role=None, **options):
    """A fake model measured in virtual time (``latency(rng, clock, feed)`` ns per call)."""
    clock = clock or FakeClock()
    factory = in_process_factory(clock, {"model": latency}, per_role=per_role)
    return measure("model.fake", data, inputs={"x": "f*"}, backend="fakes:FakeBackend", worker_factory=factory,
                   clock=clock.seconds, **options)  # fmt: skip


def constant(ns):
    return lambda rng, clock, feed: ns


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, ns",
    [("20ms", 20e6), ("1.5 s", 1.5e9), ("300us", 3e5), ("300µs", 3e5), ("850ns", 850.0), (".5ms", 5e5), ("2s", 2e9)],
)
def test_durations_read_as_people_write_them(text, ns):
    assert parse_duration(text, "p95").ns == pytest.approx(ns)
    assert str(parse_duration(text, "p95")) == text


def test_sizes_and_rates_read_as_people_write_them():
    assert parse_size("300MB", "peak_rss").bytes == 300e6
    assert parse_size("256MiB", "peak_rss").bytes == 256 * MiB
    assert parse_size("1.5 GB", "peak_rss").bytes == 1.5e9
    assert parse_rate("100/s", "throughput").per_second == 100
    assert parse_rate("2.5k/s", "throughput").per_second == 2500
    assert parse_rate("1M samples/s", "throughput").per_second == 1e6


@pytest.mark.parametrize(
    "parse, value, message",
    [
        (parse_duration, "20 parsecs", "p95='20 parsecs': cannot read a duration; write one such as '20ms'"),
        (parse_duration, 20, "p95=20: write a duration with its unit"),
        (parse_duration, "0ms", "p95='0ms': must be more than zero"),
        (parse_size, "+300MB", "p95='+300MB': cannot read a size"),
        (parse_size, "300", "cannot read a size; write one such as '300MB'"),
        (parse_rate, "100", "p95='100': cannot read a rate; write one such as '100/s'"),
        (parse_rate, None, "p95=None: expected a rate as text"),
    ],
)
def test_a_bad_unit_is_a_usage_error_naming_the_argument(parse, value, message):
    with pytest.raises(UsageError) as caught:
        parse(value, "p95")
    assert message in caught.value.message


def test_budget_names_map_to_metrics_and_unknown_names_are_refused():
    assert parse_absolute_budget("p95", "20ms").metric == "latency.p95"
    assert parse_absolute_budget("p99_9", "20ms").quantile == pytest.approx(0.999)
    assert parse_absolute_budget("mean", "1ms").metric == "latency.mean"
    assert parse_absolute_budget("throughput", "10/s").higher_is_better
    with pytest.raises(UsageError, match="unknown budget 'p96x'; budgets: p50, p95"):
        parse_absolute_budget("p96x", "1ms")
    with pytest.raises(UsageError, match="unknown budget 'p0'"):
        parse_absolute_budget("p0", "1ms")


# --- one model in virtual time ---------------------------------------------------------------


def test_a_constant_model_measures_exactly_and_stops_with_enough_samples_for_p99(feature_table_path):
    result = measured(feature_table_path, constant(1 * MS))
    assert result.calls_per_block == 10  # 10 ms blocks
    assert result.p50 == result.p99 == 1 * MS
    assert result.throughput == pytest.approx(1000.0)
    assert result.stopped_because == "enough samples"
    assert len(result.blocks) >= 20 and result.samples.size >= 459
    assert result.kind == "model" and result.label == "model.fake at batch 1"
    assert result.judge(p95="2ms").verdict is Verdict.PASS
    assert result.judge(p95="1ms").verdict is Verdict.PASS  # the budget itself is within
    assert result.judge(p95="0.5ms").verdict is Verdict.FAIL
    assert result.judge(throughput="999/s").verdict is Verdict.PASS
    assert result.judge(throughput="1.1k/s").verdict is Verdict.FAIL


def test_budgets_are_decided_on_the_interval_of_the_quantile(feature_table_path):
    result = measured(feature_table_path, lognormal(1 * MS, sigma=0.2), time_budget_s=30.0)
    true_p95 = 1 * MS * math.exp(0.2 * 1.6449)  # 1.39 ms
    above, at, below = result.judge(p95="1.7ms"), result.judge(p95="1.39ms"), result.judge(p95="1.2ms")
    assert above.verdict is Verdict.PASS and below.verdict is Verdict.FAIL
    assert at.verdict is Verdict.INCONCLUSIVE  # the interval straddles the true p95
    check = at.checks[0]
    assert check.ci[0] < true_p95 < check.ci[1] and check.ci_level == 0.95
    assert "straddles the 1.39ms budget" in check.reason
    failed = below.checks[0]
    assert failed.metric == "latency.p95" and failed.verdict is Verdict.FAIL
    assert failed.line.startswith("latency.p95 1.") and "over the 1.2ms budget" in failed.line and "95% CI" in failed.line


def test_the_error_rate_is_split_over_a_calls_statistical_budgets(feature_table_path):
    result = measured(feature_table_path, lognormal(1 * MS, sigma=0.2), per_role={"model": {"model_bytes": 10 * MiB}})
    judged = result.judge(p50="10ms", p95="10ms", peak_rss="1GB")
    assert [check.ci_level for check in judged.checks] == [0.975, 0.975, None]


def test_a_slow_model_stops_at_the_time_budget_and_its_tail_is_undecided(feature_table_path):
    result = measured(feature_table_path, constant(200 * MS), time_budget_s=5.0)
    assert result.stopped_because == "time budget" and result.calls_per_block == 1
    judged = result.judge(p50="1s", p99="1s")
    assert judged.checks[0].verdict is Verdict.PASS
    assert judged.checks[1].verdict is Verdict.INCONCLUSIVE
    assert "insufficient samples" in judged.checks[1].reason and "latency.p99 needs 459" in judged.checks[1].reason
    assert judged.verdict is Verdict.INCONCLUSIVE
    result.assert_within(p50="1s", p99="1s")  # undecided passes
    with pytest.raises(AssertionError, match="insufficient samples"):
        result.assert_within(p50="1s", p99="1s", strict=True)


def test_peak_rss_is_the_workers_and_fails_over_its_budget(feature_table_path):
    result = measured(feature_table_path, constant(1 * MS), per_role={"model": {"model_bytes": 100 * MiB}})
    assert result.peak_rss == 150 * MiB and result.memory["load_rss"] == 100 * MiB
    assert result.judge(peak_rss="200MB").verdict is Verdict.PASS
    judged = result.judge(peak_rss="100MB")
    assert judged.verdict is Verdict.FAIL and judged.checks[0].line == "memory.peak_rss 150 MiB: over the 100MB budget"
    with pytest.raises(AssertionError, match=r"^model.fake at batch 1: memory.peak_rss 150 MiB: over the 100MB budget$"):
        result.assert_within(peak_rss="100MB")


def test_measure_is_public_and_refuses_what_does_not_apply(feature_table_path):
    assert perfgate.measure is measure and perfgate.MeasureResult.__name__ == "MeasureResult"
    with pytest.raises(UsageError, match="measuring a saved model needs data"):
        measure("model.onnx")
    with pytest.raises(UsageError, match="rows and columns feed a Python callable"):
        measure("model.onnx", feature_table_path, rows=[1, 2])
    with pytest.raises(UsageError, match="time_budget_s must be a positive number"):
        measure("model.onnx", feature_table_path, time_budget_s=0)
    with pytest.raises(UsageError, match="batch_size must be a whole number of at least 1"):
        measure("model.onnx", feature_table_path, batch_size=0)
    with pytest.raises(UsageError, match="no budget given"):
        measured(feature_table_path, constant(1 * MS)).judge()


# --- a callable, in this process ---------------------------------------------------------------


def test_a_callable_is_called_with_each_row_of_a_parquet_file_as_a_dict(feature_table_path):
    seen = []
    result = measure(seen.append, rows=feature_table_path, columns=["f*"], time_budget_s=1.0)
    assert set(seen[0]) == {"f0", "f1", "f2", "f3"} and isinstance(seen[0]["f0"], float)
    assert result.kind == "callable" and result.rows == 200 and result.memory is None and result.peak_rss is None
    assert result.label == "list.append()"
    assert result.judge(p95="1s").verdict is Verdict.PASS
    assert result.judge(p95="1ns").verdict is Verdict.FAIL


def test_a_callable_takes_given_inputs_and_has_no_peak_rss():
    seen = []
    result = measure(seen.append, rows=["a", "b", "c"], time_budget_s=1.0)
    assert set(seen) == {"a", "b", "c"} and result.rows == 3
    assert measure(seen.append, rows=list(range(100)), max_rows=10, time_budget_s=1.0).rows == 10
    with pytest.raises(UsageError) as caught:
        result.judge(peak_rss="1GB")
    assert caught.value.message == PEAK_RSS_OF_A_CALLABLE


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "a callable needs rows"),
        ({"rows": []}, "rows is empty"),
        ({"rows": [1], "data": "x.parquet"}, "data applies to a saved model"),
        ({"rows": [1], "batch_size": 4}, "batch_size applies to a saved model"),
        ({"rows": [1], "device": "cuda"}, "device applies to a saved model"),
        ({"rows": [1], "columns": ["f*"]}, "columns chooses the columns of a Parquet file"),
    ],
)
def test_a_callable_refuses_options_that_belong_to_a_model(options, message):
    with pytest.raises(UsageError, match=message):
        measure(len, **options)


def test_a_callables_own_exception_reaches_the_caller_unchanged():
    def predict(row):
        raise KeyError("no column 'age'")

    with pytest.raises(KeyError, match="no column 'age'"):
        measure(predict, rows=[{}], time_budget_s=1.0)


@pytest.mark.e2e
def test_a_shipped_model_measures_in_its_worker_and_meets_a_generous_budget(fixtures_dir):
    result = measure(str(fixtures_dir / "mlp_reference.onnx"), str(fixtures_dir / "features.parquet"),
                     inputs={"features": "f*"}, time_budget_s=5.0)  # fmt: skip
    assert result.backend.framework == "onnxruntime" and result.inputs[0].input == "features"
    assert result.peak_rss > 0 and result.memory["load_rss"] is not None
    assert result.judge(p95="1s", throughput="10/s", peak_rss="4GB").verdict is Verdict.PASS
    assert result.judge(p50="1ns").verdict is Verdict.FAIL
