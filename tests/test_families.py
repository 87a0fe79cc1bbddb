"""Metric families are plug-ins: a family of one's own is one class and one registration,
and from then on its metric parses, takes a budget, is judged, rendered, saved, read
back and judged again like the built-in ones (fake backends, virtual time)."""

from typing import Mapping

import numpy as np
import pytest

from fakes import FakeClock, in_process_factory
from perfgate.budgets import build_budgets, parse_budget
from perfgate.config import CompareConfig
from perfgate.errors import BudgetError, UsageError
from perfgate.metrics import Budget, Family, Observations, Scope, Slot, parse_metric, register_family, unregister_family
from perfgate.metrics.base import at_batch, bind, budget_fields, decided, undecided
from perfgate.pipeline import run_comparison
from perfgate.rejudge import judge_again
from perfgate.report.json import dumps, loads
from perfgate.report.text import render_text
from perfgate.results import Check, Metric, Series, Verdict
from perfgate.stats import UnusableSamples, ratio_interval


class FastestCall(Family):
    """fastest_call: each block's fastest call, the floor a model cannot go below."""

    name = "fastest_call"
    forms = "fastest_call"
    order = 6

    def parse(self, name: str) -> Metric | None:
        return Metric(name, self.name) if name == "fastest_call" else None

    def unmeasured(self, metric: Metric, scope: Scope) -> str | None:
        return None if 1 in scope.batch_sizes else "fastest_call is measured at batch 1 only"

    def slots(self, observations: Observations, budgets: Mapping[str, Budget]) -> list[Slot]:
        metric = self.parse("fastest_call")
        return [
            Slot(metric, budgets.get(metric.name), bind(_fastest, series, metric), at_batch(index))
            for index, series in enumerate(observations.series)
            if series.batch_size == 1
        ]

    def format_value(self, value, check):
        return "-" if value is None else f"{value / 1e3:.1f} us floor"


def _fastest(series: Series, metric: Metric, *, budget, level, seed) -> Check:
    minimums = {side: [np.asarray([block.min()], dtype=np.float64) for block in series.blocks(side)] for side in ("reference", "candidate")}
    common = dict(metric=metric, batch_size=series.batch_size, unit="ns", n_reference=series.pairs,
                  n_candidate=series.pairs, blocks=series.pairs, **budget_fields(budget))  # fmt: skip
    try:
        interval = ratio_interval(minimums["reference"], minimums["candidate"], None, level, seed=seed)
    except UnusableSamples as exc:
        return undecided(common, budget, f"unusable samples: {exc}")
    values = tuple(float(np.mean(minimums[side])) for side in ("reference", "candidate"))
    return decided(common, budget, interval, values, higher_is_better=False)


@pytest.fixture
def toy_family():
    family = register_family(FastestCall())
    yield family
    unregister_family(family.name)


def compare(data, candidate_ns, budgets, **options):
    clock = FakeClock()
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend",
        time_budget_s=10.0, cold_starts=0, budgets=budgets, **options,
    )  # fmt: skip
    latencies = {"reference": lambda rng, clock, feed: 1e6 * rng.lognormal(0, 0.05),
                 "candidate": lambda rng, clock, feed: candidate_ns * rng.lognormal(0, 0.05)}  # fmt: skip
    return run_comparison(config, worker_factory=in_process_factory(clock, latencies), clock=clock.seconds)


def test_a_family_of_ones_own_is_parsed_budgeted_judged_rendered_and_judged_again(toy_family, feature_table_path):
    assert parse_metric("fastest_call").family == "fastest_call"
    assert str(parse_budget("fastest_call:+10%")) == "fastest_call:+10%"
    assert [b.metric.name for b in build_budgets(None, ["fastest_call:+10%"])] == ["latency.p50", "latency.p95", "fastest_call"]

    report = compare(feature_table_path, 2e6, ["fastest_call:+10%"], max_latency_increase="150%")
    (fastest,) = [c for c in report.checks if c.metric == "fastest_call"]
    assert fastest.metric.family == "fastest_call" and fastest.batch_size == 1
    assert fastest.verdict is Verdict.FAIL and fastest.ci[0] > 1.10
    assert report.verdict is Verdict.FAIL and report.reason.startswith("fastest_call at batch 1: at least +")
    text = render_text(report)
    assert "fastest_call" in text and "us floor" in text

    again = loads(dumps(report))
    (read_back,) = [c for c in again.checks if c.metric == "fastest_call"]
    assert read_back == fastest and read_back.metric.family == "fastest_call"
    loosened = judge_again(again, ["fastest_call:+150%"])
    # the run stopped at its first decided failure: the latency checks may still lack samples
    assert loosened.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE)
    # judged again on the same few samples: within the loosened budget or still open, never failed
    assert [c.verdict for c in loosened.checks if c.metric == "fastest_call"] in ([Verdict.PASS], [Verdict.INCONCLUSIVE])
    assert loosened.checks != again.checks


def test_a_familys_own_rule_for_what_it_can_measure_is_a_usage_error(toy_family, feature_table_path):
    with pytest.raises(UsageError, match="budget fastest_call:\\+10%: fastest_call is measured at batch 1 only"):
        CompareConfig.from_options("r.fake", "c.fake", str(feature_table_path), batch_sizes=(4,), budgets=["fastest_call:+10%"])


def test_an_unregistered_family_is_an_unknown_metric():
    with pytest.raises(BudgetError, match="unknown metric 'fastest_call'"):
        parse_budget("fastest_call:+10%")
