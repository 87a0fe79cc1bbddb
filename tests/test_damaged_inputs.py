"""A broken input is an error (exit 3, or 2 for what the user wrote), never a pass and never
Python's own exit 1 (which a CI reads as a regression): damaged samples, tampered error
reports, hostile JSON, the same part twice, a closed stdout, a full stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import report_samples as samples
from conftest import FIXTURES, ROOT, TESTS, assert_one_line_error, run_cli
from perfgate.report.json import dumps

REFERENCE = FIXTURES / "mlp_reference.onnx"
DATA = FIXTURES / "features.parquet"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """A passing comparison's JSON report (fake backends, virtual time), as a dict to tamper with."""
    folder = tmp_path_factory.mktemp("saved")
    return json.loads(dumps(samples.passed_run(folder)))


def write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def emptied(report: dict) -> dict:
    for series in report["series"]:
        for side in ("reference", "candidate"):
            series[side]["samples_ns"] = []
    return report


def zeroed(report: dict, value: int = 0) -> dict:
    for series in report["series"]:
        for side in ("reference", "candidate"):
            series[side]["samples_ns"] = [[value] * len(block) for block in series[side]["samples_ns"]]
    return report


@pytest.mark.parametrize("tamper", [emptied, zeroed, lambda r: zeroed(r, -5), lambda r: {**r, "series": []}],
                         ids=["emptied", "zeroed", "negative", "no-series"])  # fmt: skip
@pytest.mark.parametrize("args", [("--budget", "latency.p50:+10%"), ("--max-latency-increase", "20%"), ()], ids=["budget", "mli", "render"])
def test_a_report_whose_samples_were_damaged_is_an_error_naming_it(saved, tmp_path, tamper, args):
    path = write(tmp_path, "tampered.json", tamper(json.loads(json.dumps(saved))))
    result = run_cli("report", path, *args)
    assert_one_line_error(result, 3, f"cannot read report {path!r}: a damaged report")


@pytest.mark.parametrize("stored, expected", [(0, 3), (1, 3), (4, 3), (-1, 3), (2, 2), (3, 3), (130, 130), (143, 143)])
def test_a_stored_error_is_never_a_pass_or_a_regression(tmp_path, stored, expected):
    report = json.loads(dumps(samples.errored()))
    report["error"]["exit_code"] = stored
    result = run_cli("report", write(tmp_path, "error.json", report))
    assert result.returncode == expected, result.stderr
    assert "ERROR" in result.stdout


def test_a_stored_error_code_that_is_not_a_number_is_damaged(tmp_path):
    report = json.loads(dumps(samples.errored()))
    report["error"]["exit_code"] = "0"
    assert_one_line_error(run_cli("report", write(tmp_path, "error.json", report)), 3, "a damaged report")


def ci_as_text(report: dict) -> dict:
    report["checks"][0]["ci"] = "oops"
    return report


def ratio_as_list(report: dict) -> dict:
    report["checks"][0]["ratio"] = [1, 2]
    return report


def samples_nested(report: dict) -> str:
    """Samples nested 3000 deep (written as text: json.dumps itself cannot go that deep)."""
    report["series"][0]["reference"]["samples_ns"] = "DEEP"
    return json.dumps(report).replace('"DEEP"', "[" * 3000 + "1" + "]" * 3000)


@pytest.mark.parametrize("tamper", [ci_as_text, ratio_as_list, samples_nested, lambda r: [r], lambda r: "text"],
                         ids=["ci-text", "ratio-list", "samples-3000-deep", "a-list", "a-string"])  # fmt: skip
def test_a_report_of_the_wrong_shape_is_an_error_not_a_crash(saved, tmp_path, tamper):
    path = write(tmp_path, "odd.json", tamper(json.loads(json.dumps(saved))))
    for command in (("report", path), ("report", path, "--format", "markdown"), ("report", path, "--budget", "latency.p50:+5%")):
        result = run_cli(*command)
        assert_one_line_error(result, 3, f"cannot read report {path!r}")


@pytest.mark.parametrize("depth", [100_000, 3_000])
def test_json_nested_very_deep_is_an_error_not_a_crash(tmp_path, depth):
    path = write(tmp_path, "deep.json", "[" * depth + "]" * depth)
    assert_one_line_error(run_cli("report", path), 3, "cannot read report")


def test_merge_with_a_damaged_part_is_an_error_with_its_merged_report(saved, tmp_path):
    good = write(tmp_path, "good.json", saved)
    bad = write(tmp_path, "bad.json", ci_as_text(json.loads(json.dumps(saved))))
    deep = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    out = tmp_path / "merged.json"
    result = run_cli("merge", good, bad, deep, "-o", str(out))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    merged = json.loads(out.read_text())
    assert merged["verdict"] == "error" and [p["report"]["verdict"] for p in merged["parts"]] == ["pass", "error", "error"]


@pytest.mark.parametrize("second", ["./cpu.json", "link.json", "hard.json", "sub/../cpu.json"])
def test_merge_refuses_the_same_part_twice_however_it_is_spelt(saved, tmp_path, second):
    write(tmp_path, "cpu.json", saved)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.json").symlink_to(tmp_path / "cpu.json")
    os.link(tmp_path / "cpu.json", tmp_path / "hard.json")
    result = run_cli("merge", "cpu.json", second, cwd=tmp_path)
    assert_one_line_error(result, 2, "given twice")


@pytest.mark.parametrize("option, value", [("--seed", "-1"), ("--time-budget", "-1"), ("--time-budget", "nan"),
                                           ("--time-budget", "0"), ("--time-budget", "inf")])  # fmt: skip
def test_run_validates_as_compare_does(option, value):
    result = run_cli("run", "-m", str(REFERENCE), "-d", str(DATA), "--input", "features=f*", option, value)
    assert_one_line_error(result, 2, option)


def test_a_baseline_whose_samples_were_zeroed_is_an_error(tmp_path):
    from conftest import run_cli as cli

    saved_at = tmp_path / "baseline.json"
    result = cli("run", "-m", str(REFERENCE), "-d", str(DATA), "--input", "features=f*", "--time-budget", "1", "--save", str(saved_at), "-q")
    assert result.returncode == 0, result.stderr
    original = json.loads(saved_at.read_text())
    for value in (0, -3):
        data = json.loads(json.dumps(original))
        for measured in data["measured"]:
            measured["blocks"] = [[value] * len(block) for block in measured["blocks"]]
        tampered = write(tmp_path, f"tampered{value}.json", data)
        result = cli("compare", "-c", str(REFERENCE), "--baseline", tampered, "-q")
        assert_one_line_error(result, 3, f"--baseline {tampered!r}: a damaged baseline")


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("command", ["report saved.json", "merge saved.json", "--version", "compare -d missing.parquet"])
def test_stdout_closed_at_start_is_one_line_and_exit_3(saved, tmp_path, command):
    write(tmp_path, "saved.json", saved)
    result = shell(f"{sys.executable} -m perfgate {command} >&-", tmp_path)
    assert result.returncode in (2, 3) and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", [
    "compare -r ref.onnx -c ref.onnx -d missing.parquet",
    "report missing.json",
    "merge missing.json",
    "run -m ref.onnx -d missing.parquet",
    "calibrate -m ref.onnx -d missing.parquet",
    "compare -r ref.onnx -c ref.onnx -d missing.parquet --seed -1",
])  # fmt: skip
def test_stderr_on_a_full_device_keeps_the_exit_code(tmp_path, command):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "ref.onnx").write_bytes(REFERENCE.read_bytes())
    result = shell(f"{sys.executable} -m perfgate {command} 2>/dev/full", tmp_path)
    assert result.returncode in (2, 3), result


@pytest.mark.parametrize("line", ['data = "a\\u0000b.parquet"', 'budgets = ["latency.p50:+5%\\u0000"]', 'device = "cpu\\u0000"',
                                  'inputs = { "features\\u0000" = "f*" }'])  # fmt: skip
def test_a_config_value_holding_a_nul_is_a_usage_error(tmp_path, line):
    (tmp_path / "perfgate.toml").write_text(f'reference = "r.onnx"\ncandidate = "c.onnx"\n{line}\n')
    result = run_cli("compare", "--json", "out.json", cwd=tmp_path)
    assert_one_line_error(result, 2, "holds a NUL character")
    assert json.loads((tmp_path / "out.json").read_text())["verdict"] == "error"


def test_a_directory_given_as_a_report_to_read_is_one_line(tmp_path):
    assert_one_line_error(run_cli("report", str(tmp_path)), 3, "cannot read report")


@pytest.mark.parametrize("make, words", [
    (lambda p: os.mkfifo(p), "a named pipe (FIFO)"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
])  # fmt: skip
def test_data_that_is_no_file_is_a_usage_error_before_anything_waits_on_it(tmp_path, make, words):
    """A FIFO as --data once said "no such file" (exit 3): it exists, it is no Parquet file."""
    data = tmp_path / "data.parquet"
    make(data)
    result = run_cli("compare", "-r", str(REFERENCE), "-c", str(REFERENCE), "-d", str(data), "--input", "features=f*", "-q", timeout=60)
    assert_one_line_error(result, 2, f"it is {words}, not a Parquet file")


@pytest.mark.parametrize("verdict", ["pass", "fail", "inconclusive"])
def test_a_verdict_that_carries_an_error_is_damaged(saved, tmp_path, verdict):
    report = json.loads(json.dumps(saved))
    report["verdict"] = verdict
    report["error"] = {"type": "WorkerError", "message": "the worker died", "exit_code": 3}
    assert_one_line_error(run_cli("report", write(tmp_path, "mixed.json", report)), 3, "yet it carries an error")
