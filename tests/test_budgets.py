import pytest

from perfgate.judge.budgets import Budget, build_budgets, parse_budget, parse_limit, parse_metric
from perfgate.formatting import format_change, format_duration
from perfgate.errors import BudgetError, UsageError


@pytest.mark.parametrize(
    "text, ratio",
    [("15%", 1.15), ("+15%", 1.15), (" 15 % ", 1.15), ("-10%", 0.90), ("0%", 1.0), ("7.5%", 1.075),
     ("1.15", 1.15), ("2", 2.0), ("1", 1.0), (1.15, 1.15)],
)  # fmt: skip
def test_limits_in_percent_and_ratio_forms(text, ratio):
    assert parse_limit(text) == pytest.approx(ratio)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0.15", "ambiguous"),  # a percentage written as a fraction
        ("15", "if you meant a percentage write 15%"),
        ("fast", "accepted forms"),
        ("", "accepted forms"),
        ("nan", "accepted forms"),
        ("inf%", "accepted forms"),
        ("-100%", "-100% or more"),
        ("-150%", "-100% or more"),
        ("15%%", "accepted forms"),
    ],
)
def test_bad_limits_are_usage_errors_that_name_the_forms(text, fragment):
    with pytest.raises(BudgetError) as info:
        parse_limit(text, option="--max-latency-increase")
    assert fragment in info.value.message
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message


def test_metric_names():
    assert parse_metric("latency.p95").quantile == pytest.approx(0.95)
    assert parse_metric("latency.p99.9").quantile == pytest.approx(0.999)
    assert parse_metric("latency.mean").quantile is None
    assert parse_metric("throughput").higher_is_better and parse_metric("throughput.batch32").batch_size == 32
    assert parse_metric("load.p99").family == "load" and parse_metric("memory.peak_rss").family == "memory"
    for bad in ("latency.p100", "latency.p0", "throughput.batch0", "memory.vms", "load", "latency.p", "p95"):
        with pytest.raises(BudgetError, match="known metrics"):
            parse_metric(bad)


def test_budget_syntax():
    budget = parse_budget("latency.p95:+10%")
    assert budget == Budget(parse_metric("latency.p95"), pytest.approx(1.10))
    assert str(budget) == "latency.p95:+10%"
    assert parse_budget("latency.p50:1.25").limit == pytest.approx(1.25)
    for bad in ("latency.p95=10%", "latency.p95", ":10%", "latency.p95:"):
        with pytest.raises(BudgetError, match="METRIC:LIMIT"):
            parse_budget(bad)


def test_default_budgets_cover_p50_and_p95_and_extra_budgets_override_or_add():
    names = [(b.metric.name, round(b.limit, 4)) for b in build_budgets()]
    assert names == [("latency.p50", 1.15), ("latency.p95", 1.15)]

    chosen = build_budgets("1.2", ["latency.p95:+10%", "latency.p99:+30%", "latency.mean:5%"])
    assert [(b.metric.name, round(b.limit, 4)) for b in chosen] == [
        ("latency.p50", 1.2),
        ("latency.p95", 1.1),
        ("latency.p99", 1.3),
        ("latency.mean", 1.05),
    ]


def test_a_metric_budgeted_twice_is_refused():
    with pytest.raises(UsageError, match="given twice"):
        build_budgets(None, ["latency.p95:+10%", "latency.p95:+20%"])


def test_format_change():
    assert format_change(1.15) == "+15%"
    assert format_change(0.9) == "-10%"
    assert format_change(1.075) == "+7.5%"
    assert format_change(1.0) == "+0%"
    assert format_change(1.23456, 1) == "+23.5%"


def test_format_duration():
    assert [format_duration(ns) for ns in (850, 10_900, 12_345_678, 1.234e9, None)] == [
        "850 ns", "10.9 us", "12.3 ms", "1.23 s", "-",
    ]  # fmt: skip
