"""Generate mode's verdicts through every face, on the LLM fixtures: the 2-layer model
against the 16-layer one (about 3.9x the work per token) fails through the command line,
a config file and the pytest plugin; the shallow model against a byte copy of itself never
fails; the ONNX Runtime GenAI export of the shallow model answers as it does.

Effects are large and requests short (8 new tokens) so that nothing depends on how busy the
machine is: the deep model's inter-token gaps are ~4x the shallow one's, and ``itl.p50`` at
+50 % fails at the first look (8 request pairs). An A/A run is only asserted not to fail:
its default p95 budgets need 90 requests a side and a quiet machine to pass.
"""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import FIXTURES, ROOT, run_cli

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

LLM = FIXTURES / "llm"
SHALLOW, DEEP, GENAI = LLM / "tiny_llama_shallow", LLM / "tiny_llama_deep", LLM / "tiny_llama_shallow_genai"
PROMPTS = FIXTURES / "prompts.parquet"
SHORT = ("--max-new-tokens", "8", "-q")


def checks_of(report: dict) -> dict[str, dict]:
    return {check["metric"]: check for check in report["checks"]}


def test_the_deep_model_fails_against_the_shallow_one_through_the_command_line(tmp_path):
    result = run_cli("compare", "-r", str(SHALLOW), "-c", str(DEEP), "-d", str(PROMPTS), *SHORT, "--time-budget", "30",
                     "--json", str(tmp_path / "report.json"))  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "fail" and report["settings"]["task"] == "generate"
    failed = [check["metric"] for check in report["checks"] if check["verdict"] == "fail"]
    assert "itl.p50" in failed, report["reason"]
    assert "FAIL: " in result.stdout and "Traceback" not in result.stderr


def test_a_model_against_its_byte_copy_never_fails(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(SHALLOW, copy)
    result = run_cli("compare", "-r", str(SHALLOW), "-c", str(copy), "-d", str(PROMPTS), *SHORT, "--time-budget", "8",
                     "--json", str(tmp_path / "report.json"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] in ("pass", "inconclusive"), report["reason"]
    assert not [check for check in report["checks"] if check["verdict"] == "fail"]
    agreement = checks_of(report)["outputs.token_agreement"]
    assert agreement["candidate"] == pytest.approx(1.0)  # the same weights answer the same tokens


def test_the_genai_export_answers_every_token_as_the_transformers_model_does(tmp_path):
    result = run_cli("compare", "-r", str(SHALLOW), "-c", str(GENAI), "-d", str(PROMPTS), *SHORT, "--time-budget", "2",
                     "--json", str(tmp_path / "report.json"))  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # GenAI's loop is ~30x lighter per step: either verdict
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["compared"]["candidate"]["backend"]["backend"] == "onnxruntime-genai"
    assert checks_of(report)["outputs.token_agreement"]["candidate"] == pytest.approx(1.0)


def test_a_config_file_gates_generate_mode_with_paths_from_its_folder(tmp_path):
    folder = tmp_path / "project"
    (folder / "models").mkdir(parents=True)
    shutil.copytree(SHALLOW, folder / "models" / "shallow")
    shutil.copy(PROMPTS, folder / "prompts.parquet")
    (folder / "perfgate.toml").write_text(f"""
data = "prompts.parquet"
max-new-tokens = 8
time-budget = 30

[comparisons.deeper]
reference = "models/shallow"
candidate = "{DEEP}"
task = "generate"
budgets = ["itl.p50:+50%"]
prompt-column = "prompt"
""")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("compare", "--config", str(folder / "perfgate.toml"), "--json", str(tmp_path / "report.json"), "-q",
                     cwd=elsewhere)  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["settings"]["max_new_tokens"] == 8 and report["settings"]["task"] == "generate"
    assert checks_of(report)["itl.p50"]["verdict"] == "fail" and checks_of(report)["itl.p50"]["budget"] == "+50%"
    assert report["compared"]["reference"]["path"] == str(folder / "models" / "shallow")


def test_the_pytest_plugin_fails_the_deeper_model_and_measures_one_model_s_requests(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_llm=f"""
SHALLOW, DEEP, PROMPTS = {str(SHALLOW)!r}, {str(DEEP)!r}, {str(PROMPTS)!r}


def test_deeper(perfgate):
    perfgate.compare(SHALLOW, DEEP, PROMPTS, task="generate", max_new_tokens=8,
                     budgets=["itl.p50:+50%"]).assert_no_regression()


def test_one_model(perfgate):
    result = perfgate.measure(SHALLOW, PROMPTS, max_new_tokens=8, time_budget_s=3)
    result.assert_within(ttft_p50="10s", itl_p50="10s", tokens_per_s="0.1/s")
    assert result.kind == "generate" and len(result.requests) >= 8
""")  # fmt: skip
    report = tmp_path / "perfgate.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--perfgate-time-budget", "30",
                                           "--perfgate-json", str(report), timeout=300)  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1)
    assert "tiny_llama_deep regressed against" in output and "itl.p50" in output
    assert "Traceback" not in output and "perfgate/engine" not in output
    records = {record["test"].split("::")[1]: record for record in json.loads(report.read_text())["measurements"]}
    assert records["test_deeper"]["verdict"] == "fail"
    assert records["test_one_model"]["measurement"]["max_new_tokens"] == 8
    assert {check["metric"] for check in records["test_one_model"]["checks"]} == {"ttft.p50", "itl.p50", "tokens_per_s"}


@pytest.mark.slow
def test_calibrate_gives_a_generative_models_noise_per_check(tmp_path):
    report = tmp_path / "calibration.json"
    result = run_cli("calibrate", "-m", str(SHALLOW), "-d", str(PROMPTS), "--max-new-tokens", "8", "--time-budget", "3",
                     "--json", str(report), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    checks = {check["metric"]: check for check in json.loads(report.read_text())["checks"]}
    assert {"ttft.p50", "itl.p50"} <= set(checks) and checks["itl.p50"]["pairs"] >= 2
    assert "latency.p50" not in checks
