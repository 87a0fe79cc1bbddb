"""`perfgate` as a user runs it: real processes, real ONNX Runtime, the shipped fixtures.

Timing verdicts here use only large effects (the slow fixture does about 11x the work).
"""

import json

import pytest

from conftest import FIXTURES, ROOT, assert_one_line_error, run_cli, write_identity_onnx
from perfgate.results import SCHEMA_VERSION

REFERENCE = str(FIXTURES / "mlp_reference.onnx")
AA = str(FIXTURES / "mlp_aa.onnx")
SLOW = str(FIXTURES / "mlp_slow.onnx")
DATA = str(FIXTURES / "features.parquet")
FEATURES = "features=f*"

pytestmark = pytest.mark.e2e


def gate(*extra, reference=REFERENCE, candidate=AA, data=DATA, inputs=(FEATURES,), cold_starts=0):
    args = ["compare", "-r", reference, "-c", candidate, "-d", data, "--time-budget", "30", "--cold-starts", str(cold_starts)]
    for item in inputs:
        args += ["--input", item]
    return run_cli(*args, *extra)


def test_the_a_a_pair_passes(tmp_path):
    result = gate("--json", str(tmp_path / "aa.json"))
    assert result.returncode == 0, result.stderr
    assert "perfgate: look 1" in result.stderr  # progress goes to stderr
    report = json.loads((tmp_path / "aa.json").read_text())
    # An A/A pair never fails. On a busy machine its p95 can stay undecided for the whole
    # time budget: that is "inconclusive" (exit 0, with a warning), never a failure.
    assert report["verdict"] in ("pass", "inconclusive"), report["reason"]
    if report["verdict"] == "pass":
        assert "PASS: all 3 checks within budget" in result.stdout
    else:
        assert "INCONCLUSIVE: " in result.stdout and " of 3 checks undecided" in result.stdout
        assert "WARNING: INCONCLUSIVE: the build passes" in result.stderr
        assert report["run"]["stopped_because"] == "time budget"  # undecided only once the budget is spent


def test_the_slow_model_fails_with_exit_1_and_its_report(tmp_path):
    path = tmp_path / "slow.json"
    result = gate("--candidate", SLOW, "--batch-size", "1", "--batch-size", "32", "--json", str(path))
    assert result.returncode == 1, result.stderr
    assert "FAIL: latency.p" in result.stdout

    report = json.loads(path.read_text())
    assert report["schema_version"] == SCHEMA_VERSION and report["verdict"] == "fail"
    assert report["compared"]["candidate"]["path"] == SLOW
    assert report["compared"]["reference"]["backend"]["framework"] == "onnxruntime"
    assert report["compared"]["reference"]["backend"]["threads"] == 1
    assert report["compared"]["reference"]["inputs"][0]["columns"] == [f"f{i:02d}" for i in range(16)]
    assert report["compared"]["data"] == {"path": DATA, "rows_total": 2000, "rows_used": 2000, "seed": 0, "compares": "models",
                                          "candidate_path": None, "candidate_rows_total": None}
    assert report["environment"]["logical_cpus"] >= 1 and report["environment"]["python"].startswith("CPython")
    import onnxruntime

    assert report["environment"]["frameworks"] == {"onnxruntime": onnxruntime.__version__}
    assert report["settings"]["budgets"] == ["latency.p50:+15%", "latency.p95:+15%"]
    latency = [c for c in report["checks"] if c["metric"].startswith("latency")]
    assert [(c["metric"], c["batch_size"]) for c in latency] == [
        ("latency.p50", 1), ("latency.p95", 1), ("latency.p50", 32), ("latency.p95", 32),
    ]  # fmt: skip
    for check in latency:
        assert {"metric", "reference", "candidate", "ratio", "ci", "budget", "verdict", "reason",
                "n_reference", "n_candidate", "blocks", "ci_level", "unit", "limit"} <= set(check)  # fmt: skip
        assert check["unit"] == "ns" and check["limit"] == 1.15
        # The gate stops at its first look with a failed check, so the other checks may still
        # be undecided then (a heavy tail on a busy machine): fail or inconclusive, never pass.
        assert check["verdict"] in ("fail", "inconclusive"), check
    failed = [check for check in latency if check["verdict"] == "fail"]
    assert failed, report["reason"]
    for check in failed:
        assert check["ci"][0] > 1.15 and check["candidate"] > check["reference"]
    assert any(report["reason"].startswith(f"{c['metric']} at batch {c['batch_size']}: ") for c in failed), report["reason"]
    series = report["series"][0]
    assert len(series["reference"]["samples_ns"]) == len(series["pairs"]) == report["checks"][0]["blocks"]
    assert series["reference"]["summary"]["n"] == report["checks"][0]["n_reference"]


def test_json_on_stdout_and_the_saved_report_renders_again(tmp_path):
    path = tmp_path / "r.json"
    result = gate("--candidate", SLOW, "--format", "json", "--json", str(path), "-q")
    assert result.returncode == 1
    assert json.loads(result.stdout)["verdict"] == "fail"
    assert result.stderr == ""
    text = gate("--candidate", SLOW, "-q")
    again = run_cli("report", str(path))
    assert again.returncode == 1  # a saved failure renders again with its exit code
    assert "FAIL: latency.p" in again.stdout and "latency.p95" in again.stdout
    assert again.stdout.splitlines()[0] == text.stdout.splitlines()[0]


def test_inputs_map_by_name_without_an_input_option(tmp_path):
    model = write_identity_onnx(tmp_path / "by_name.onnx", [("f03", "float32", ["batch"]), ("label", "int64", ["batch"])])
    result = gate("-q", reference=str(model), candidate=str(model), inputs=())
    assert result.returncode == 0, result.stderr
    assert "f03 <- f03 (double->float32)" in result.stdout
    assert "label <- label (int64->int64)" in result.stdout


def test_inconclusive_passes_with_a_warning_or_exits_4_when_asked(tmp_path):
    # a p99 budget needs 459 samples a model; a tiny time budget cannot give them
    args = ("--budget", "latency.p99:+15%", "--time-budget", "0.001")
    result = gate(*args)
    assert result.returncode == 0
    assert "INCONCLUSIVE" in result.stdout
    assert "WARNING: INCONCLUSIVE: the build passes" in result.stderr
    strict = gate(*args, "--fail-on-inconclusive", "--json", str(tmp_path / "i.json"))
    assert strict.returncode == 4
    assert json.loads((tmp_path / "i.json").read_text())["verdict"] == "inconclusive"


# --- every error a user can hit: one line, the right exit code, no traceback ---------------


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["compare", "-c", AA, "-d", DATA], 2, "Missing option '--reference'"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--frobnicate"], 2, "No such option '--frobnicate'"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--batch-size", "0"], 2, "--batch-size"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--budget", "p95<10%"], 2, "expected METRIC:LIMIT"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--max-latency-increase", "0.15"], 2, "ambiguous"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--time-budget", "0"], 2, "--time-budget must be a positive"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--confidence", "1.5"], 2, "--confidence"),
        (["compare", "-r", "model.pt7", "-c", AA, "-d", DATA], 2, "cannot tell which backend runs 'model.pt7'"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", "absent.parquet"], 3, "cannot read data 'absent.parquet': no such file"),
        (["compare", "-r", REFERENCE, "-c", AA, "-d", str(FIXTURES / "make_fixtures.py")], 3, "not a readable Parquet file"),
        (["report", "absent.json"], 3, "cannot read report 'absent.json'"),
        (["report", str(ROOT / "pyproject.toml")], 3, "cannot read report"),
    ],
)
def test_usage_and_input_errors(args, code, fragment):
    assert_one_line_error(run_cli(*args, "-q") if args[0] == "compare" else run_cli(*args), code, fragment)


def test_a_bad_budget_still_writes_a_json_report_with_verdict_error(tmp_path):
    path = tmp_path / "err.json"
    result = gate("-q", "--budget", "latency.p95:lots", "--json", str(path))
    assert_one_line_error(result, 2, "accepted forms")
    report = json.loads(path.read_text())
    assert report["verdict"] == "error"
    assert report["error"]["type"] == "BudgetError" and report["error"]["exit_code"] == 2
    assert "accepted forms" in report["error"]["message"]


def test_column_mapping_errors_name_the_model_input_and_column():
    assert_one_line_error(gate("-q", inputs=()), 2, "no column feeds input 'features'; name a column")
    assert_one_line_error(gate("-q", inputs=("features=g*",)), 2, "no column matches 'g*'")
    assert_one_line_error(gate("-q", inputs=("X=f*",)), 2, "--input X: no model has an input called 'X'")
    assert_one_line_error(gate("-q", "--rows", "10", "--batch-size", "32"), 2, "--batch-size 32 is larger than the 10 rows")


def test_a_lossy_cast_is_a_usage_error(tmp_path):
    model = write_identity_onnx(tmp_path / "ints.onnx", [("counts", "int64", ["batch", 2])])
    result = gate("-q", reference=str(model), candidate=str(model), inputs=("counts=f00,f01",))
    assert_one_line_error(result, 2, "not whole numbers, so int64 would change them")


def test_an_input_type_perfgate_cannot_feed(tmp_path):
    model = write_identity_onnx(tmp_path / "text.onnx", [("text", "string", ["batch"])])
    assert_one_line_error(gate("-q", reference=str(model), inputs=()), 2, "takes tensor(string)")


def test_unreadable_models_are_runtime_errors(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf")
    assert_one_line_error(gate("-q", candidate=str(corrupt)), 3, f"candidate: cannot load model '{corrupt}': not a valid ONNX file")
    missing = str(tmp_path / "missing.onnx")
    assert_one_line_error(gate("-q", reference=missing), 3, f"reference: cannot load model '{missing}'")


def test_a_worker_crash_is_a_runtime_error_not_a_verdict(tmp_path):
    result = gate("-q", "--candidate-backend", "fakes:CrashingBackend", "--json", str(tmp_path / "c.json"))
    # its first call is the untimed one that reads its outputs, before any timing
    assert_one_line_error(result, 3, "candidate: the worker died during 'run_outputs' (exit code 7)")
    assert json.loads((tmp_path / "c.json").read_text())["verdict"] == "error"
    # without outputs compared, its first call is the one made for its own cold start, before any fresh worker's
    first_call = gate("-q", "--candidate-backend", "fakes:CrashingBackend", "--output-rows", "0", cold_starts=1)
    assert_one_line_error(first_call, 3, "candidate: the worker died during 'first_call' (exit code 7)")


def test_debug_shows_the_traceback():
    result = gate("-q", "--debug", inputs=("features=g*",))
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ColumnMappingError" in result.stderr


def test_an_unwritable_json_path_is_a_runtime_error(tmp_path):
    assert_one_line_error(gate("-q", "--json", str(tmp_path)), 3, "cannot write the JSON report")


def test_version_and_help():
    from perfgate import __version__

    assert run_cli("--version").stdout.strip() == f"perfgate, version {__version__}"
    helped = run_cli("compare", "--help")
    assert helped.returncode == 0 and "--max-latency-increase" in helped.stdout


def test_more_time_is_advised_only_where_time_ran_out(tmp_path):
    """The advice after an inconclusive verdict once said "give it more --time-budget" after
    a run that had stopped early, and after re-judging a saved report, where no time helps."""
    import dataclasses

    import report_samples as samples
    from perfgate.cli import _inconclusive_advice
    from perfgate.report.json import dumps

    report = samples.passed_run(tmp_path)
    out_of_time = dataclasses.replace(report, run=dataclasses.replace(report.run, stopped_because="time budget"))
    decided = dataclasses.replace(report, run=dataclasses.replace(report.run, stopped_because="decided"))
    assert "--time-budget" in _inconclusive_advice(out_of_time)
    assert "--time-budget" not in _inconclusive_advice(decided)
    saved = tmp_path / "saved.json"
    saved.write_text(dumps(report))
    result = run_cli("report", str(saved), "--budget", "latency.p99:+1%")
    assert result.returncode == 0 and "INCONCLUSIVE" in result.stdout, result.stderr
    assert "A saved report's samples cannot be measured further" in result.stderr
