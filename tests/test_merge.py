"""perfgate merge: the reports of a CI matrix as one report and one verdict (the worst of
the parts; a missing or errored part is an error, never a pass), rendered in every format.
The parts are whole comparisons run on fake backends in virtual time."""

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

import report_samples as samples
from conftest import run_cli
from perfgate.errors import UsageError
from perfgate.report.merge import merge, merged, part_names
from perfgate.report import FORMATS, render
from perfgate.report.json import dumps, loads
from perfgate.report.markdown import render_markdown
from perfgate.results import ReportPart, Verdict


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """pass.json, fail.json and error.json: one CI job's report each."""
    folder = tmp_path_factory.mktemp("parts")
    reports = {"pass": samples.passed_run(folder), "fail": samples.failed_run(folder), "error": samples.errored()}
    assert [report.verdict for report in reports.values()] == [Verdict.PASS, Verdict.FAIL, Verdict.ERROR]
    for name, report in reports.items():
        (folder / f"{name}.json").write_text(dumps(report))
    return folder


def test_pass_and_fail_merge_to_fail_with_exit_1(parts, tmp_path):
    out = tmp_path / "merged.json"
    result = run_cli("merge", str(parts / "pass.json"), str(parts / "fail.json"), "-o", str(out))
    assert result.returncode == 1, result.stderr
    merged = json.loads(out.read_text())
    assert merged["verdict"] == "fail" and merged["reason"].startswith("1 of 2 parts failed (fail: ")
    assert [(part["name"], part["report"]["verdict"]) for part in merged["parts"]] == [("pass", "pass"), ("fail", "fail")]
    assert "== part fail: FAIL ==" in result.stdout and result.stdout.rstrip().split("\n")[-1].startswith("FAIL: 1 of 2")


def test_pass_and_pass_merge_to_pass_with_exit_0(parts, tmp_path):
    copy = tmp_path / "gpu" / "pass.json"
    copy.parent.mkdir()
    copy.write_bytes((parts / "pass.json").read_bytes())
    result = run_cli("merge", str(parts / "pass.json"), str(copy), "--format", "json")
    assert result.returncode == 0, result.stderr
    merged = json.loads(result.stdout)
    assert merged["verdict"] == "pass" and merged["reason"] == "all 2 parts passed"
    assert [part["name"] for part in merged["parts"]] == [f"{parts.name}/pass", "gpu/pass"]  # told apart by their folders


def test_pass_and_error_merge_to_error_with_exit_3(parts, tmp_path):
    out = tmp_path / "merged.json"
    result = run_cli("merge", str(parts / "pass.json"), str(parts / "error.json"), "-o", str(out))
    assert result.returncode == 3
    assert result.stderr.startswith("perfgate: error: 1 of 2 parts could not be judged (error: candidate: cannot load")
    assert json.loads(out.read_text())["verdict"] == "error"


def test_a_missing_part_is_an_error_that_names_it_never_a_pass(parts, tmp_path):
    out = tmp_path / "merged.json"
    missing = tmp_path / "gpu.json"
    result = run_cli("merge", str(parts / "pass.json"), str(missing), "-o", str(out))
    assert result.returncode == 3
    assert f"gpu: cannot read report {str(missing)!r}: no such file" in result.stderr
    merged = loads(out.read_text())
    assert merged.verdict is Verdict.ERROR and merged.error.exit_code == 3
    assert [part.report.verdict for part in merged.parts] == [Verdict.PASS, Verdict.ERROR]


def test_an_unreadable_part_is_an_error_too(parts, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 5, "verdict": "pass"')  # cut off mid-write
    report = merge([parts / "pass.json", broken])
    assert report.verdict is Verdict.ERROR and "broken: cannot read report" in report.reason


def test_the_merged_report_is_refused_where_it_would_replace_a_part_and_no_part_is_a_usage_error(parts):
    result = run_cli("merge", str(parts / "pass.json"), str(parts / "fail.json"), "-o", str(parts / "fail.json"))
    assert result.returncode == 2 and "--output" in result.stderr and "would replace it" in result.stderr
    assert run_cli("merge").returncode == 2
    with pytest.raises(UsageError, match="given twice"):
        merge([parts / "pass.json", parts / "pass.json"])


def test_inconclusive_is_worse_than_pass_and_better_than_fail(parts):
    passed, failed = loads((parts / "pass.json").read_text()), loads((parts / "fail.json").read_text())
    inconclusive = dataclasses.replace(passed, verdict=Verdict.INCONCLUSIVE, reason="undecided")
    assert merged([ReportPart("a", passed), ReportPart("b", inconclusive)]).verdict is Verdict.INCONCLUSIVE
    assert merged([ReportPart("a", inconclusive), ReportPart("b", failed)]).verdict is Verdict.FAIL


def test_part_names_are_the_shortest_distinct_tails_of_their_paths():
    assert part_names(["reports/cpu.json", "reports/gpu.json"]) == ["cpu", "gpu"]
    assert part_names(["perfgate-cpu/report.json", "perfgate-gpu/report.json"]) == ["perfgate-cpu/report", "perfgate-gpu/report"]
    assert part_names(["only.json"]) == ["only"]


def test_every_renderer_renders_a_merged_report_with_each_part_s_name_verdict_and_checks(parts):
    report = merge([parts / "pass.json", parts / "fail.json", parts / "error.json"])
    assert report.verdict is Verdict.ERROR
    for fmt in FORMATS:
        assert render(report, fmt)  # none of them fails on a report with parts
    text = render(report, "text")
    assert "perfgate: merged report of 3 parts" in text and "== part fail: FAIL ==" in text and "latency.p95" in text

    markdown = render_markdown(report)
    assert markdown.startswith("## 💥 perfgate: ERROR") and "| ❌ | fail | FAIL |" in markdown
    fail_section = markdown.split("### ❌ fail: FAIL", 1)[1]
    assert "| ❌ | " in fail_section.split("###", 1)[0]  # the part's own table of checks, with its failed ones
    assert len(render_markdown(report, max_chars=3000)) <= 3000  # GitHub's limit holds for the whole

    suites = ET.fromstring(render(report, "junit").split("\n", 1)[1]).findall("testsuite")
    assert [suite.get("name").rsplit("[part ", 1)[1] for suite in suites] == ["pass]", "fail]", "error]"]
    assert int(suites[1].get("failures")) >= 1 and suites[2].get("errors") == "1"

    html = render(report, "html")
    assert "<h2>Part fail: FAIL</h2>" in html and "<h2>Part pass: PASS</h2>" in html and html.count("<h2>Checks</h2>") == 2

    again = loads(render(report, "json"))
    assert [(part.name, part.report.verdict) for part in again.parts] == [(p.name, p.report.verdict) for p in report.parts]
    assert again.parts[1].report.checks == report.parts[1].report.checks


def test_perfgate_report_renders_a_saved_merged_report_with_its_exit_code(parts, tmp_path):
    out = tmp_path / "merged.json"
    run_cli("merge", str(parts / "pass.json"), str(parts / "fail.json"), "-o", str(out))
    result = run_cli("report", str(out), "--format", "markdown")
    assert result.returncode == 1 and result.stdout.startswith("## ❌ perfgate: FAIL")


def test_a_single_report_has_no_parts_in_its_json(parts):
    assert "parts" not in json.loads((parts / "pass.json").read_text())


def test_a_merged_report_is_not_judged_again_as_a_whole(parts):
    from perfgate.judge.rejudge import judge_again

    with pytest.raises(UsageError, match="judged again part by part"):
        judge_again(merge([parts / "pass.json"]), ["latency.p95:+10%"])
