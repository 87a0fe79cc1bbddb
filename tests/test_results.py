import re
import json

import pytest

from fakes import FakeClock, in_process_factory, lognormal
from perfgate.config import CompareConfig
from perfgate.engine.pipeline import error_report, run_comparison
from perfgate.errors import BudgetError, DataError
from perfgate.report import render
from perfgate.report.json import dumps, from_dict, read_report, to_dict
from perfgate.results import SCHEMA_VERSION, Report, Verdict


@pytest.fixture
def report(feature_table_path):
    clock = FakeClock()
    config = CompareConfig.from_options(
        "r.fake", "c.fake", str(feature_table_path), inputs=["x=f*"],
        reference_backend="fakes:FakeBackend", candidate_backend="fakes:FakeBackend", batch_sizes=[1, 4],
    )  # fmt: skip
    factory = in_process_factory(clock, {"reference": lognormal(1e6), "candidate": lognormal(3e6)})
    return run_comparison(config, worker_factory=factory, clock=clock.seconds)


def test_a_report_survives_json_and_renders_the_same(report, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(dumps(report))
    again = read_report(path)
    assert again.checks == report.checks
    assert again.settings == report.settings
    assert again.reference == report.reference
    assert [s.pairs for s in again.series] == [s.pairs for s in report.series]
    assert all((a == b).all() for s, t in zip(again.series, report.series) for a, b in zip(s.candidate, t.candidate))
    assert render(again, "text") == render(report, "text")
    assert json.loads(render(again, "json")) == json.loads(render(report, "json"))


def test_the_text_report_shows_the_table_and_the_verdict(report):
    text = render(report, "text")
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split()[:6] == ["metric", "at", "reference", "candidate", "change", "CI"]
    assert "budget" in header and "verdict" in header
    assert text.count("FAIL") >= 3  # the verdict, and p50 at both batch sizes (p95 may still lack its samples)
    assert "\nFAIL: latency.p" in text
    # reference about 1 ms, candidate about 3 ms, change about +200 %
    assert re.search(r"^latency\.p50 +batch 1 +(9\d\d us|1(\.\d+)? ms) +(2\.9\d*|3(\.\d+)?) ms +\+[12]\d\d(\.\d)?%", text, re.M), text


def test_a_newer_schema_is_refused(report):
    data = to_dict(report)
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(DataError, match=f"schema_version {SCHEMA_VERSION + 1} is not one this perfgate reads"):
        from_dict(data)


def test_an_error_report_records_the_error():
    failed = error_report(BudgetError("cannot parse budget 'x'"))
    assert failed.verdict is Verdict.ERROR
    data = json.loads(dumps(failed))
    assert data["error"] == {"type": "BudgetError", "message": "cannot parse budget 'x'", "exit_code": 2}
    assert data["checks"] == [] and data["schema_version"] == SCHEMA_VERSION
    crashed = error_report(RuntimeError("boom"))
    assert crashed.error.exit_code == 3 and "internal error" in crashed.reason
