"""The parsers of what users type (budgets, input mappings): any text gives a value or a
usage error, never another exception. Derandomized, so a CI run cannot flake: the same
examples every run, found again from the same seed."""

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from perfgate.judge.budgets import Budget, build_budgets, parse_budget  # noqa: E402
from perfgate.errors import UsageError  # noqa: E402
from perfgate.data.inputs import parse_input_options  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

# pieces of what a budget looks like, so that the examples reach past the first check
METRICS = st.sampled_from(
    ["latency.p50", "latency.p99.9", "latency.p", "latency.mean", "throughput", "throughput.batch32",
     "throughput.batch0", "memory.peak_rss", "memory.load_rss", "memory", "cold_start", "load.p99",
     "latency_slope", "LATENCY.P95", "latency.p1e400", "latency.pnan", "outputs.cosine", ""]
)  # fmt: skip
NUMBERS = st.one_of(
    st.sampled_from(["15", "1.15", "0", "-0", "1e309", "-1e400", "nan", "inf", "-inf", "1_0", "١٥", "0x10", "",
                     ".", "1e-400", "10", "10.0000001", "99999999999999999999"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)  # fmt: skip
LIMITS = st.tuples(st.sampled_from(["", "+", "-", "++", " ", "<=", ">="]), NUMBERS,
                   st.sampled_from(["", "%", "%%", "MB", "MiB", "GiB", "KB", "B", "x", " %"])).map("".join)  # fmt: skip
BUDGETS = st.one_of(
    st.tuples(METRICS, st.sampled_from([":", "::", " : ", "="]), LIMITS).map("".join),
    st.text(max_size=40),
)
LIMIT_VALUES = st.one_of(
    LIMITS, st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.text(max_size=20)
)


def value_or_usage_error(parse, *args, **kwargs):
    try:
        return parse(*args, **kwargs)
    except UsageError as exc:
        assert str(exc).strip()
        return None


@FUZZ
@given(BUDGETS)
def test_parse_budget_gives_a_budget_or_a_usage_error(text):
    budget = value_or_usage_error(parse_budget, text)
    assert budget is None or isinstance(budget, Budget)


@FUZZ
@given(LIMIT_VALUES, st.lists(BUDGETS, max_size=4), st.booleans(), st.booleans())
def test_build_budgets_gives_budgets_or_a_usage_error(limit, budgets, load, sizes):
    built = value_or_usage_error(build_budgets, limit, budgets, load=load, sizes=sizes)
    assert built is None or (built and all(isinstance(budget, Budget) for budget in built))


MAPPINGS = st.one_of(
    st.tuples(st.text(max_size=8), st.sampled_from(["=", "==", " = ", ""]), st.text(max_size=12)).map("".join),
    st.text(max_size=30),
)


@FUZZ
@given(st.lists(MAPPINGS, max_size=5))
def test_parse_input_options_gives_a_mapping_or_a_usage_error(options):
    parsed = value_or_usage_error(parse_input_options, options)
    if parsed is not None:
        # a name, or "" for columns written without one (they feed a model's only input)
        assert all(isinstance(name, str) and isinstance(columns, str) and columns for name, columns in parsed.items())
