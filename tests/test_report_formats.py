"""The reports people read in a pull request: Markdown, JUnit XML and the trackers'
exports, from whole comparisons run on fake backends in virtual time and from reports
edited by hand (hostile names, 200 checks, an error). Nothing here times a real model."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

import report_samples as samples
from conftest import run_cli
from perfgate.report import FORMATS, render
from perfgate.report.files import write_atomically
from perfgate.report.json import dumps
from perfgate.report.markdown import MAX_CHARS, md, render_markdown
from perfgate.report.summary import gated, safe, worst_first, worst_ratio
from perfgate.results import Verdict

COMMENT_LIMIT = 65_536  # GitHub refuses a longer comment
SUMMARY_LIMIT = 1 << 20  # bytes of one step's job summary


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    report = samples.failed_run(tmp_path_factory.mktemp("failed"))
    assert report.verdict is Verdict.FAIL
    return report


@pytest.fixture(scope="module")
def passed(tmp_path_factory):
    report = samples.passed_run(tmp_path_factory.mktemp("passed"))
    assert report.verdict is Verdict.PASS
    return report


def markdown_table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| metric")]


def test_markdown_puts_the_verdict_first_then_the_gated_checks_then_folded_details(failed, passed):
    text = render_markdown(failed)
    first = text.splitlines()[0]
    assert first == "## ❌ perfgate: FAIL"
    assert "over budget" in text.split("\n\n")[1]
    gated_rows = [row for row in markdown_table_rows(text) if row.startswith(("| ❌", "| ✅", "| ⚠️"))]
    assert len(gated_rows) == len(gated(failed))
    for summary in ("Information only", "How it was decided", "Settings", "Environment"):
        assert f"<details><summary>{summary}" in text
    assert text.index("| ❌ |") < text.index("<details>")
    assert render_markdown(passed).startswith("## ✅ perfgate: PASS\n\n**all 9 checks within budget.**")


def test_markdown_of_an_error_says_what_went_wrong_and_its_exit_code():
    text = render_markdown(samples.errored())
    assert text.startswith("## 💥 perfgate: ERROR")
    assert "(exit 3)" in text and "cannot load model" in text and "<img" not in text


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>|", "a|b", "`code`", "**bold** _em_", "[x](http://e)",
                                  "@octocat", "$x$", "line\nbreak", "\u202eevil", "&lt;"])  # fmt: skip
def test_md_makes_any_name_inert(name):
    text = md(name)
    assert not re.search(r"[<>|`*_\[\]$\n\u202e]", text)
    assert "&" not in text.replace("&#", "")  # every ampersand starts a character reference
    assert "@" not in text or "@\u2060" in text  # no mention


def test_hostile_names_reach_no_report_as_markup(failed):
    hostile = samples.hostile(failed)
    text = render_markdown(hostile)
    assert "<img" not in text and samples.HOSTILE not in text
    assert "&#60;img src=x onerror=alert(1)&#62;&#124;" in text.replace("&#40;", "(").replace("&#41;", ")")
    # every table row keeps its column count: no name adds a cell
    for row in markdown_table_rows(text):  # 10, 6 or 2 columns
        assert row.count("|") in (11, 7, 3), row
    junit = render(hostile, "junit")
    root = ET.fromstring(junit)  # well-formed
    names = [case.get("name") for case in root.iter("testcase")]
    assert any(samples.HOSTILE in name for name in names)  # the name survives, as data
    assert "<img" not in junit
    for fmt in ("bencher", "customSmallerIsBetter"):
        assert samples.HOSTILE in json.dumps(json.loads(render(hostile, fmt)))  # JSON quotes it; nothing to escape


def test_two_hundred_checks_stay_under_github_limits_and_keep_the_verdict(failed):
    many = samples.many_checks(failed, count=200, name_length=400)
    text = render_markdown(many)
    assert len(text) <= MAX_CHARS < COMMENT_LIMIT - 1000
    assert len(text.encode()) < SUMMARY_LIMIT
    assert text.startswith("## ❌ perfgate: FAIL")
    assert "are not shown here" in text
    # what was cut: the folded details and passing rows before any failed one
    assert "<details>" not in text
    rows = markdown_table_rows(text)
    assert rows and all(not row.startswith("| ✅") for row in rows)
    small = samples.many_checks(failed, count=200, name_length=20)
    assert len(render_markdown(small)) <= MAX_CHARS


def test_a_verdict_longer_than_the_limit_is_cut_but_still_first(failed):
    import dataclasses

    huge = dataclasses.replace(failed, reason="x" * 100_000)
    text = render_markdown(huge, max_chars=5_000)
    assert len(text) <= 5_000 and text.startswith("## ❌ perfgate: FAIL")


def test_junit_has_one_case_per_gated_check_failures_with_their_reason_and_info_as_properties(failed):
    root = ET.fromstring(render(failed, "junit"))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(gated(failed)) == int(suite.get("tests"))
    failures = [case.find("failure") for case in cases if case.find("failure") is not None]
    assert len(failures) == int(suite.get("failures")) == sum(c.verdict is Verdict.FAIL for c in failed.checks)
    assert failures[0].get("message") == failed.reason  # the deciding check's, worst first
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["verdict"] == "fail"
    outputs = {f"info: outputs.{name} at output scores" for name in ("max_abs_diff", "mean_abs_diff", "cosine", "cosine_min", "top1_agreement")}
    assert {name for name in properties if name.startswith("info: ")} == {"info: memory.peak_rss", "info: memory.load_rss", "info: cold_start", *outputs}


def test_junit_marks_inconclusive_checks_skipped_and_an_error_as_an_error(failed):
    import dataclasses

    open_check = samples.one_check(Verdict.INCONCLUSIVE)
    report = dataclasses.replace(failed, checks=(open_check,), verdict=Verdict.INCONCLUSIVE)
    case = ET.fromstring(render(report, "junit")).find("testsuite/testcase")
    assert case.find("skipped").get("message").startswith("inconclusive: latency.p50 at batch 1")
    error = ET.fromstring(render(samples.errored(), "junit")).find("testsuite/testcase/error")
    assert error.get("type") == "ModelLoadError" and "cannot load model" in error.get("message")


def test_bencher_metric_format_holds_each_check_s_value_and_ratio_with_its_interval(failed):
    data = json.loads(render(failed, "bencher"))
    p50 = data["latency.p50 at batch 1"]
    check = next(c for c in failed.checks if c.metric == "latency.p50" and c.batch_size == 1)
    assert p50["latency"] == {"value": check.candidate}
    assert p50["ratio"] == {"value": check.ratio, "lower_value": check.ci[0], "upper_value": check.ci[1]}
    assert set(data["throughput.batch4"]) == {"throughput", "ratio"}
    assert "memory" in data["memory.peak_rss"] and "cold-start" in data["cold_start"]
    for measures in data.values():  # Bencher's schema: every measure has a number "value"
        assert all(isinstance(m["value"], float) for m in measures.values())


def test_github_action_benchmark_files_split_by_direction(failed):
    smaller = json.loads(render(failed, "customSmallerIsBetter"))
    bigger = json.loads(render(failed, "customBiggerIsBetter"))
    assert {e["name"] for e in bigger} == {"throughput.batch1", "throughput.batch4", "outputs.cosine at output scores",
                                           "outputs.cosine_min at output scores", "outputs.top1_agreement at output scores"}
    assert "latency.p50 at batch 1" in {e["name"] for e in smaller} and not {e["name"] for e in smaller} & {e["name"] for e in bigger}
    for entry in smaller + bigger:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"} and isinstance(entry["value"], float)
        assert "verdict" in entry["extra"]


def test_worst_first_orders_failures_by_how_far_past_the_budget():
    checks = [samples.one_check(Verdict.PASS, 1.0), samples.one_check(Verdict.FAIL, 1.5), samples.one_check(Verdict.INCONCLUSIVE, 1.16),
              samples.one_check(Verdict.FAIL, 3.0)]  # fmt: skip
    ordered = worst_first(checks)
    assert [(c.verdict, c.ratio) for c in ordered] == [(Verdict.FAIL, 3.0), (Verdict.FAIL, 1.5), (Verdict.INCONCLUSIVE, 1.16), (Verdict.PASS, 1.0)]
    throughput = samples.one_check(Verdict.FAIL, 0.5, higher_is_better=True, limit=0.9, budget="-10%")
    assert worst_first([checks[1], throughput])[0] is throughput  # 0.9/0.5 = 1.8 past, against 1.5/1.15


def test_worst_ratio_is_that_of_the_worst_gated_check(failed):
    worst = worst_first(gated(failed))[0]
    assert worst_ratio(failed) == worst.ratio and worst.verdict is Verdict.FAIL
    assert worst_ratio(samples.errored()) is None


def test_safe_replaces_line_breaks_and_direction_overrides():
    assert safe("a\nb\u202ec\u200bd\x00e") == "a\ufffdb\ufffdc\ufffdd\ufffde"
    assert safe("naïve µs 模型") == "naïve µs 模型"


def test_write_atomically_replaces_whole_files_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    write_atomically(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    assert target.stat().st_mode & 0o044  # readable by others, as a file the user writes (mkstemp's are not)
    with pytest.raises(OSError):
        write_atomically(tmp_path / "report.md" / "under-a-file.md", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    write_atomically(tmp_path / "missing" / "report.md", "x")  # a missing folder is made, not a reason to lose the report
    assert (tmp_path / "missing" / "report.md").read_text() == "x"


def test_perfgate_report_renders_every_format_of_a_saved_report(failed, tmp_path):
    path = tmp_path / "saved.json"
    path.write_text(dumps(failed))
    for fmt in FORMATS:
        result = run_cli("report", str(path), "--format", fmt)
        assert result.returncode == 1, (fmt, result.stderr)  # a failure re-renders with the regression's code
        assert result.stdout.strip(), fmt
    assert run_cli("report", str(path), "--format", "markdown").stdout.startswith("## ❌ perfgate: FAIL")
    wrong = run_cli("report", str(path), "--format", "xml")
    assert wrong.returncode == 2 and "'xml' is not one of 'text', 'json', 'markdown', 'junit', 'html'" in wrong.stderr


def test_compare_writes_markdown_junit_and_html_reports_of_an_error_too(tmp_path, fixtures_dir):
    outputs = {flag: tmp_path / name for flag, name in (("--markdown", "r.md"), ("--junit", "r.xml"), ("--html", "r.html"))}
    args = ["compare", "--reference", str(tmp_path / "missing.onnx"), "--candidate", str(fixtures_dir / "mlp_aa.onnx"),
            "--data", str(fixtures_dir / "features.parquet"), "--format", "junit"]  # fmt: skip
    for flag, path in outputs.items():
        args += [flag, str(path)]
    result = run_cli(*args)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert outputs["--markdown"].read_text().startswith("## 💥 perfgate: ERROR")
    assert ET.fromstring(outputs["--junit"].read_text()).find("testsuite/testcase/error") is not None
    assert "could not be carried out" in outputs["--html"].read_text()
    assert ET.fromstring(result.stdout).find("testsuite/testcase/error") is not None  # --format junit on stdout too


def test_compare_says_which_report_it_cannot_write(tmp_path, fixtures_dir):
    result = run_cli("compare", "--reference", str(tmp_path / "missing.onnx"), "--candidate", "x.onnx", "--data", "d.parquet",
                     "--markdown", str(fixtures_dir / "features.parquet" / "dir" / "r.md"))  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[0].startswith("perfgate: error: cannot write the markdown report to ")
    assert "(--markdown)" in result.stderr



def test_markdown_says_why_a_check_has_no_interval_in_sight_not_a_bare_dash(failed):
    text = render_markdown(samples.with_undecided(failed))
    (row,) = [row for row in markdown_table_rows(text) if "| latency.p99 |" in row]
    assert row.split(" | ")[6] == "see &#91;1&#93;"
    visible = text[: text.index("<details>")]  # above the folded sections, under the table
    assert "&#91;1&#93; latency.p99 batch 1: insufficient samples: 352 per model, latency.p99 needs 459" in visible
    # the notes go on numbering in the information-only table, each beside its own row
    (start,) = [row for row in markdown_table_rows(text) if "| cold&#95;start |" in row]
    numbers = [int(n) for n in re.findall(r"^&#91;(\d+)&#93; ", text, re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 5  # p99, two p95s, load.p99, cold_start
    assert start.endswith(f"see &#91;{numbers[-1]}&#93; |")
    assert f"&#91;{numbers[-1]}&#93; cold&#95;start: one start per model: no interval" in text


def test_markdown_notes_are_as_inert_as_names(failed):
    text = render_markdown(samples.with_undecided(failed, reason=samples.HOSTILE + " `x` **y** @octocat"))
    assert "<img" not in text and samples.HOSTILE not in text and "**y**" not in text and "@octocat" not in text
    assert "&#91;1&#93; latency.p99 batch 1: &#60;img src=x onerror=alert" in text
    for row in markdown_table_rows(text):
        assert row.count("|") in (11, 7, 3), row


def test_markdown_cut_to_fit_keeps_the_notes_of_the_rows_it_shows(failed):
    many = samples.many_checks(samples.with_undecided(failed), count=200, name_length=400)
    text = render_markdown(many)
    assert len(text) <= MAX_CHARS and "are not shown here" in text
    shown = re.findall(r"see &#91;(\d+)&#93;", text)
    notes = re.findall(r"^&#91;(\d+)&#93; ", text, re.M)
    assert shown == notes and "1" in shown


@pytest.mark.parametrize("seconds, written", [(0.012, "12 ms"), (0.0004, "400 us"), (1.94, "1.94 s"), (61.04, "61 s")])
def test_a_short_run_s_time_is_never_written_as_zero_seconds(failed, seconds, written):
    import dataclasses

    from perfgate.report.text import render_text

    report = dataclasses.replace(failed, run=dataclasses.replace(failed.run, measure_seconds=seconds, total_seconds=seconds))
    expected = {
        "text": (render_text(report), [f"per model in {written} (1 look", f"; {written} in all"]),
        "markdown": (render_markdown(report), [f"for {written} of measuring in 1 look"]),
        "html": (render(report, "html"), [f"for {written} in 1 look", f". {written} in all."]),
    }
    for fmt, (text, phrases) in expected.items():
        assert " 0.0 s" not in text, fmt
        for phrase in phrases:
            assert phrase in text, (fmt, phrase)
