"""`perfgate compare` driven by a config file, as a user runs it: real processes and the
shipped fixtures. Verdicts only from large effects (the slow fixture does about 11x the
work); the usage errors stop before any model loads."""

import json

import pytest

from conftest import FIXTURES, run_cli

pytestmark = pytest.mark.e2e

COMMON = f"""
data = "{FIXTURES / 'features.parquet'}"
reference = "{FIXTURES / 'mlp_reference.onnx'}"
inputs = ["features=f*"]
cold-starts = 0
output-rows = 0
time-budget = 20
"""
TWO = (
    COMMON
    + f"""
[comparisons.slow]
candidate = "{FIXTURES / 'mlp_slow.onnx'}"

[comparisons.same]
candidate = "{FIXTURES / 'mlp_aa.onnx'}"
time-budget = 5
"""
)


def assert_usage_error_before_anything_runs(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfgate: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_compare_alone_runs_both_comparisons_with_the_worst_exit_code(tmp_path):
    (tmp_path / "perfgate.toml").write_text(TWO)
    (tmp_path / "out").mkdir()
    result = run_cli("compare", "--json", "out/report.json", "-q", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # slow regressed; same passed or was undecided
    assert "== slow (1 of 2) ==" in result.stdout and "== same (2 of 2) ==" in result.stdout
    assert result.stdout.index("== slow") < result.stdout.index("FAIL: latency.p") < result.stdout.index("== same")
    slow = json.loads((tmp_path / "out" / "report.slow.json").read_text())
    same = json.loads((tmp_path / "out" / "report.same.json").read_text())
    assert slow["verdict"] == "fail" and slow["compared"]["candidate"]["path"].endswith("mlp_slow.onnx")
    assert same["verdict"] in ("pass", "inconclusive"), same["reason"]
    assert same["settings"]["time_budget_s"] == 5 and slow["settings"]["time_budget_s"] == 20
    assert "perfgate:   slow: FAIL (exit 1)" in result.stderr
    assert f"perfgate:   same: {same['verdict'].upper()} (exit 0)" in result.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_only_one_from_pyproject_with_flags_over_the_file(tmp_path):
    # the file's defaults say time-budget -1 and batch size 1: the flags replace both
    pyproject = "[project]\nname = 'x'\n\n" + TWO.replace("\n[comparisons.", "\n[tool.perfgate.comparisons.")
    pyproject = pyproject.replace(COMMON, "\n[tool.perfgate]\n" + COMMON.replace("time-budget = 20", "time-budget = -1\nbatch-sizes = [1]"))
    (tmp_path / "pyproject.toml").write_text(pyproject)
    result = run_cli("compare", "--only", "slow", "--time-budget", "20", "--batch-size", "4", "--json", "r.json", "-q", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "== " not in result.stdout  # one comparison: its report alone
    report = json.loads((tmp_path / "r.json").read_text())  # one comparison: the path as given
    assert report["verdict"] == "fail" and report["compared"]["candidate"]["path"].endswith("mlp_slow.onnx")
    assert report["settings"]["batch_sizes"] == [4] and report["settings"]["time_budget_s"] == 20


@pytest.mark.parametrize(
    "text, args, fragments",
    [
        (TWO + "batch-size = [2]\n", [], ["perfgate.toml: unknown key 'comparisons.same.batch-size' (did you mean 'batch-sizes'?)"]),
        (TWO.replace("time-budget = 5", "time-budget = -5"), [],
         ["perfgate.toml [comparisons.same]: time-budget must be a positive number of seconds, got -5"]),
        (TWO, ["--time-budget", "-1"], ["perfgate.toml [comparisons.slow]: --time-budget must be a positive number"]),
        (TWO, ["--only", "fast"], ["perfgate.toml has no comparison named 'fast' (it has: slow, same)"]),
        (TWO, ["--format", "json"], ["--format json writes one report, and 2 comparisons run (slow, same)"]),
        (TWO.replace('candidate = "', 'candidat = "', 1), [], ["unknown key 'comparisons.slow.candidat' (did you mean 'candidate'?)"]),
        ("threads = [1]\n", [], ["perfgate.toml: threads must be a whole number, got [1]"]),
    ],
)  # fmt: skip
def test_a_mistake_in_the_file_is_exit_2_before_anything_runs(tmp_path, text, args, fragments):
    (tmp_path / "perfgate.toml").write_text(text)
    result = run_cli("compare", *args, "--json", "error.json", cwd=tmp_path)
    assert_usage_error_before_anything_runs(result, *fragments)
    report = json.loads((tmp_path / "error.json").read_text())
    assert report["verdict"] == "error" and report["error"]["exit_code"] == 2


def test_config_names_the_file_and_without_any_the_models_are_required(tmp_path):
    result = run_cli("compare", "--config", "nowhere.toml", cwd=tmp_path)
    assert_usage_error_before_anything_runs(result, "--config nowhere.toml: no such file")
    result = run_cli("compare", "--only", "slow", cwd=tmp_path)
    assert_usage_error_before_anything_runs(result, "--only names a comparison of a config file, and there is none")
    result = run_cli("compare", "-c", "x.onnx", "-d", "d.parquet", cwd=tmp_path)
    assert_usage_error_before_anything_runs(result, "Missing option '--reference'")
