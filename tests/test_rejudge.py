"""A saved report judged again from its samples: the same budgets give the same verdict
and checks; other budgets give the verdict they call for (fake backends, virtual time;
one CLI round trip on a report written here)."""

import json

import pytest

from conftest import run_cli
from fakes import FakeClock, in_process_factory, lognormal
from perfgate.config import CompareConfig
from perfgate.errors import BudgetError, UsageError
from perfgate.engine.pipeline import error_report, run_comparison
from perfgate.judge.rejudge import judge_again
from perfgate.report.json import dumps, loads
from perfgate.results import Verdict

MS = 1e6


def compare(data, reference, candidate, **options):
    clock = FakeClock()
    options.setdefault("cold_starts", 0)
    config = CompareConfig.from_options(
        "reference.fake", "candidate.fake", str(data), inputs={"x": "f*"},
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", time_budget_s=20.0, **options,
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": reference, "candidate": candidate}, per_role={"candidate": {"model_bytes": 40 * 2**20}})
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An A/A pair: within the default 15 %, and not the 10 % speed-up "-10%" asks for."""
    path = tmp_path_factory.mktemp("rejudge") / "small.parquet"
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    pq.write_table(pa.table({f"f{i}": rng.standard_normal(200) for i in range(4)}), path)
    report = compare(path, lognormal(1 * MS, 0.05), lognormal(1 * MS, 0.05), budgets=["throughput:-30%"], cold_starts=2)
    assert report.verdict is Verdict.PASS
    return report


def test_the_report_s_own_budgets_give_its_own_verdict_and_checks(saved):
    again = judge_again(loads(dumps(saved)))
    assert again.verdict is saved.verdict and again.reason == saved.reason
    assert again.checks == saved.checks
    assert again.settings.budgets == saved.settings.budgets


def test_a_tighter_budget_fails_what_passed(saved):
    tighter = judge_again(loads(dumps(saved)), ["latency.p50:-10%"])
    assert tighter.verdict is Verdict.FAIL and tighter.reason.startswith("latency.p50 at batch 1: at least -")
    assert "latency.p50:-10%" in tighter.settings.budgets and "throughput:-30%" in tighter.settings.budgets
    p50 = next(c for c in tighter.checks if c.metric == "latency.p50")
    assert p50.budget == "-10%" and p50.verdict is Verdict.FAIL
    # from the defaults at another limit: the report's own extra budget is gone
    defaults = judge_again(saved, max_latency_increase="-10%")
    assert defaults.verdict is Verdict.FAIL and defaults.settings.budgets == ("latency.p50:-10%", "latency.p95:-10%")


def test_budgets_on_any_stored_measurement_and_on_nothing_measured(saved):
    memory = judge_again(saved, ["memory.peak_rss:+10%"])
    (peak,) = [c for c in memory.checks if c.metric == "memory.peak_rss"]
    assert peak.verdict is Verdict.FAIL and memory.verdict is Verdict.FAIL  # 40 MiB more, over 10 % and the floor
    cold = judge_again(saved, ["cold_start:+500%"])
    assert [c.verdict for c in cold.checks if c.metric == "cold_start"] in ([Verdict.PASS], [Verdict.INCONCLUSIVE])
    with pytest.raises(UsageError, match="latency under load needs concurrency=N or rates=QPS"):
        judge_again(saved, ["load.p99:+10%"])
    with pytest.raises(BudgetError, match="given twice"):
        judge_again(saved, ["latency.p50:+5%", "latency.p50:+6%"])
    with pytest.raises(UsageError, match="no measurements to judge again"):
        judge_again(error_report(UsageError("bad")))


@pytest.mark.e2e
def test_perfgate_report_judges_again_and_exits_with_the_verdict_s_code(saved, tmp_path):
    path = tmp_path / "saved.json"
    path.write_text(dumps(saved))
    same = run_cli("report", str(path))
    assert same.returncode == 0 and "PASS: all" in same.stdout
    tighter = run_cli("report", str(path), "--budget", "latency.p50:-10%", "--format", "json")
    assert tighter.returncode == 1 and json.loads(tighter.stdout)["verdict"] == "fail"
    bad = run_cli("report", str(path), "--budget", "load.p99:+10%")
    assert bad.returncode == 2 and "needs --concurrency N or --rate QPS" in bad.stderr and "Traceback" not in bad.stderr
