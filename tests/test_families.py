"""Metric families are plug-ins: a family of one's own is one class and one registration,
and from then on its metric parses, takes a budget, is judged, rendered, saved, read
back and judged again like the built-in ones (fake backends, virtual time)."""

import ast
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest

import perfgate
from fakes import FakeClock, in_process_factory
from perfgate.engine.baseline_compare import _budgets as _baseline_budgets
from perfgate.judge.budgets import build_budgets, parse_budget
from perfgate.config import DEFAULT_COLD_STARTS, TIGHT_BUDGET_INSTANCES, CompareConfig
from perfgate.errors import BudgetError, UsageError
from perfgate.metrics import Budget, Family, Observations, Scope, Slot, parse_metric, register_family, unregister_family
from perfgate.metrics.base import at_batch, bind, budget_fields, decided, undecided
from perfgate.engine.pacing import pace_budgets
from perfgate.engine.pipeline import _wants_windows, run_comparison
from perfgate.judge.rejudge import judge_again
from perfgate.report.json import dumps, loads
from perfgate.report.text import render_text
from perfgate.judge.resolution import resolution
from perfgate.measurements import Series
from perfgate.results import Check, Metric, Verdict
from perfgate.engine.runner import Pace
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


# --- what a family needs is its own attribute, never its name tested elsewhere ----------------


def _config(budgets, **options):
    return CompareConfig.from_options("r.fake", "c.fake", "d.parquet", budgets=budgets, **options)


@pytest.fixture
def toy_needing(request):
    """The toy family with the attributes in ``request.param`` set, and nothing else changed."""
    family = register_family(type("Needy", (FastestCall,), dict(request.param))())
    yield family
    unregister_family(family.name)


@pytest.mark.parametrize("toy_needing", [{"needs_same_rows": True}], indirect=True)
def test_a_family_that_needs_the_same_rows_is_refused_with_data_drift(toy_needing, tmp_path):
    with pytest.raises(UsageError, match="budget fastest_call:\\+10%: fastest_call are compared on the same rows; with "
                                         "reference_data and candidate_data the models read different files"):
        CompareConfig.from_options("r.fake", "c.fake", reference_data="a.parquet", candidate_data="b.parquet",
                                   budgets=["fastest_call:+10%"])  # fmt: skip


def test_a_family_that_needs_nothing_special_takes_data_drift_and_the_defaults(toy_family):
    drift = CompareConfig.from_options("r.fake", "c.fake", reference_data="a.parquet", candidate_data="b.parquet",
                                       budgets=["fastest_call:+5%"])  # fmt: skip
    assert drift.data_drift
    config = _config(["fastest_call:+5%"])
    assert (config.worker_instances, config.fresh_cold_starts, _wants_windows(config)) == (1, 0, False)


@pytest.mark.parametrize("toy_needing", [{"sensitive_to_instances": True}], indirect=True)
def test_a_tight_budget_on_a_family_sensitive_to_instances_runs_several_per_model(toy_needing):
    assert _config(["fastest_call:+5%"]).worker_instances == TIGHT_BUDGET_INSTANCES == 4
    assert _config(["fastest_call:+50%"]).worker_instances == 1


@pytest.mark.parametrize("toy_needing", [{"needs_cold_starts": True}], indirect=True)
def test_a_family_that_needs_cold_starts_gets_fresh_ones(toy_needing):
    assert _config(["fastest_call:+10%"]).fresh_cold_starts == DEFAULT_COLD_STARTS
    assert _config(["fastest_call:+10%"], cold_starts=1).fresh_cold_starts == 1


@pytest.mark.parametrize("toy_needing", [{"needs_windows": True}], indirect=True)
def test_a_family_that_needs_windows_has_them_measured(toy_needing):
    assert _wants_windows(_config(["fastest_call:+10%"]))


@pytest.mark.parametrize("paced", [True, False])
def test_a_family_with_one_sample_per_call_is_paced_before_measuring(paced):
    needs = {"one_sample_per_call": paced, "min_samples": lambda self, metric: 1000}
    family = register_family(type("Paced", (FastestCall,), needs)())
    try:
        budgets = build_budgets("150%", ["fastest_call:+10%"])
        pace = Pace(round_seconds=1.0, calls_per_block={1: 10}, typical_ns={1: {"reference": 1e6, "candidate": 1e6}})
        kept, notes = pace_budgets(budgets, pace, 10.0)
    finally:
        unregister_family(family.name)
    ours = [note for note in notes if note.startswith("fastest_call needs 1000 calls per model at batch 1")]
    assert len(ours) == (1 if paced else 0)


def test_a_family_not_resolvable_by_noise_gets_no_resolution(toy_family, feature_table_path):
    report = compare(feature_table_path, 1.05e6, ["fastest_call:+5%"], max_latency_increase="150%")
    (fastest,) = [c for c in report.checks if c.metric == "fastest_call"]
    assert resolution(fastest) is not None
    register_family(type("Exact", (FastestCall,), {"resolvable_by_noise": False})())
    assert resolution(fastest) is None


@pytest.mark.parametrize("judged", [True, False])
def test_only_a_family_judged_against_a_baseline_takes_a_budget_there(judged):
    family = register_family(type("Stored", (FastestCall,), {"judged_against_a_baseline": judged})())
    try:
        if judged:
            assert [str(b) for b in _baseline_budgets(None, ["fastest_call:+10%"], (1,))][-1] == "fastest_call:+10%"
        else:
            with pytest.raises(UsageError, match="budget fastest_call:\\+10%: a stored baseline holds latency and "
                                                 "throughput samples only; fastest_call needs both models"):
                _baseline_budgets(None, ["fastest_call:+10%"], (1,))
    finally:
        unregister_family(family.name)


FAMILY_NAMES = {"latency", "throughput", "load", "latency_slope", "memory", "cold_start", "outputs"}


def _names_compared_with_a_family(path):
    """Each line of ``path`` where a family (``x.family``, ``family``) is compared with a
    string or a collection of strings, written there or in a module-level constant."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value

    def strings(node):
        node = constants.get(node.id, node) if isinstance(node, ast.Name) else node
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {value for item in node.elts for value in strings(item)}
        if isinstance(node, ast.Dict):
            return {value for key in node.keys if key is not None for value in strings(key)}
        return set()

    def is_family(node):
        return (isinstance(node, ast.Attribute) and node.attr == "family") or (isinstance(node, ast.Name) and node.id == "family")

    names = {family.name for family in perfgate.metrics.families()}

    def names_a_family(text):
        return any(text == name or text.startswith(name + ".") for name in names)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(is_family, operands)) and any(strings(o) for o in operands if not is_family(o)):
                found.append(f"{path.name}:{node.lineno}")
        # a metric's name cut by its prefix: check.metric.startswith("cold_start")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
            if any(names_a_family(text) for argument in node.args for text in strings(argument)):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_module_outside_the_metrics_package_tests_a_family_by_its_name():
    package = Path(perfgate.__file__).parent
    outside = [path for path in sorted(package.rglob("*.py")) if package / "metrics" not in path.parents]
    assert len(outside) > 50
    assert [line for path in outside for line in _names_compared_with_a_family(path)] == []


def test_the_name_test_finds_each_way_of_writing_one(tmp_path):
    written = [
        'if budget.metric.family == "outputs": pass',
        'if "cold_start" != metric.family: pass',
        'if metric.family in ("latency", "load"): pass',
        'PACED = ("latency",)\nif metric.family not in PACED: pass',
        'if family == "throughput": pass',
        'if check.metric.startswith("cold_start"): pass',
        'if str(check.metric).startswith(("latency.", "load.")): pass',
    ]
    for index, source in enumerate(written):
        path = tmp_path / f"m{index}.py"
        path.write_text(source + "\n")
        assert _names_compared_with_a_family(path), source
    (tmp_path / "fine.py").write_text('if family_of(metric).needs_same_rows and check.metric == "latency.p95": pass\n'
                                      'if flag.startswith("--") or unit.startswith("ns/"): pass\n')
    assert _names_compared_with_a_family(tmp_path / "fine.py") == []
