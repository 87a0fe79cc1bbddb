"""Dependency drift: a side's worker under another Python environment
(--reference-python / --candidate-python).

The slow tests make real virtual environments from the package registry (one with an
older onnxruntime, one with numpy only, one empty: about 15 s with a warm pip cache) and
run the shipped fixtures in them; the others need no environment of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from perfgate.errors import BackendUnavailableError, UsageError
from perfgate.report import render
from perfgate.report.json import from_dict, to_dict
from perfgate.worker import interpreter
from perfgate.worker.interpreter import OWN, Interpreter, check_interpreters, framework_versions, worker_sys_path
from report_samples import passed_run

NEWER_ORT = metadata.version("onnxruntime")
# old enough to be a real upgrade, new enough for numpy 2 and the fixtures' opset
OLDER_ORT = "1.20.1" if NEWER_ORT != "1.20.1" else "1.21.1"
COMPARE = ("compare", "-r", str(FIXTURES / "mlp_reference.onnx"), "-c", str(FIXTURES / "mlp_aa.onnx"),
           "-d", str(FIXTURES / "features.parquet"), "--input", "f*", "-q")  # fmt: skip


def _venv(path: Path, *packages: str) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True, timeout=120)
    python = str(path / "bin" / "python")
    if packages:
        # perfgate's own pip installs into the new environment; --no-deps: a worker needs nothing else
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-compile", *packages],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"pip install {' '.join(packages)} failed:\n{done.stderr[-3000:]}"
    return python


@pytest.fixture(scope="session")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pythons")
    numpy = f"numpy=={metadata.version('numpy')}"  # the one perfgate has: a wheel the pip cache likely holds
    wanted = {"older": (numpy, f"onnxruntime=={OLDER_ORT}"), "numpy-only": (numpy,), "empty": ()}
    with ThreadPoolExecutor(len(wanted)) as pool:  # mostly waiting on pip: side by side
        made = {name: pool.submit(_venv, root / name, *packages) for name, packages in wanted.items()}
        return {name: future.result() for name, future in made.items()}


@pytest.mark.slow
@pytest.mark.e2e
def test_the_same_model_family_in_two_onnxruntime_versions_is_compared_and_both_are_named(environments, tmp_path):
    report_path = tmp_path / "report.json"
    done = run_cli(
        *COMPARE, "--reference-python", environments["older"], "--time-budget", "8", "--cold-starts", "2",
        "--output-rows", "16", "--json", str(report_path),
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr  # an upgrade may regress; it must not be an error
    report = json.loads(report_path.read_text())
    assert report["verdict"] != "error"
    reference, candidate = report["compared"]["reference"], report["compared"]["candidate"]
    assert reference["backend"]["framework_version"] == OLDER_ORT
    assert candidate["backend"]["framework_version"] == NEWER_ORT
    assert reference["python"]["executable"] == environments["older"]
    assert reference["python"]["prefix"] == str(Path(environments["older"]).parent.parent)
    assert candidate["python"]["prefix"] == sys.prefix
    assert report["environment"]["frameworks"] == {"onnxruntime": f"{OLDER_ORT} (reference) vs {NEWER_ORT} (candidate)"}
    assert any("different Python environments" in warning for warning in report["warnings"])
    assert len(report["cold_starts"]["reference"]) == 1 + 2  # its own start, and the fresh workers ran in the older environment too
    assert f"onnxruntime {OLDER_ORT}" in done.stdout and environments["older"] in done.stdout


@pytest.mark.slow
def test_an_interpreter_without_the_framework_is_one_line_with_its_own_install_command(environments, tmp_path):
    python = environments["numpy-only"]
    done = run_cli(*COMPARE, "--candidate-python", python, "--json", str(tmp_path / "r.json"), timeout=120)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"perfgate: error: --candidate-python {python} has no onnxruntime, which the onnxruntime backend needs "
        f"(install it: {python} -m pip install onnxruntime)"
    ]
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


@pytest.mark.slow
def test_an_interpreter_without_numpy_cannot_run_the_worker_and_says_so(environments):
    python = environments["empty"]
    with pytest.raises(BackendUnavailableError, match=rf"no module 'numpy' \(install it: {python} -m pip install numpy\)"):
        check_interpreters({"reference": python, "candidate": None}, {"reference": "onnxruntime", "candidate": "onnxruntime"})


@pytest.mark.slow
def test_the_probe_finds_the_environment_and_its_framework(environments):
    found = check_interpreters(
        {"reference": environments["older"], "candidate": environments["older"]},
        {"reference": "onnxruntime", "candidate": "onnxruntime"},
    )  # fmt: skip
    assert found["reference"] is found["candidate"]  # probed once
    assert found["reference"].prefix == str(Path(environments["older"]).parent.parent)
    assert not found["reference"].own


@pytest.mark.parametrize(
    ("python", "words"),
    [
        ("/nonexistent/bin/python", "no such file"),
        (str(FIXTURES), "is a directory; name its Python interpreter"),
        ("/bin/sh", "is not a Python interpreter perfgate can use (exit code 97)"),  # the probe stops a shell
        (str(FIXTURES / "features.parquet"), "is not"),  # not executable (or, as root, not runnable)
    ],
)  # fmt: skip
def test_an_interpreter_that_cannot_be_one_is_a_usage_error_naming_it(python, words, tmp_path):
    done = run_cli(*COMPARE, "--reference-python", python, "--json", str(tmp_path / "r.json"), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"perfgate: error: --reference-python {python}") and words in lines[0]
    assert "Traceback" not in done.stderr


def test_an_interpreter_that_never_answers_is_stopped(tmp_path, monkeypatch):
    hangs = tmp_path / "python"
    hangs.write_text("#!/bin/sh\nsleep 300 &\nsleep 300\n")  # a child holds the pipes too
    hangs.chmod(0o755)
    monkeypatch.setattr(interpreter, "PROBE_TIMEOUT_S", 1.0)
    with pytest.raises(UsageError, match=r"gave no answer within 1 s, so it was stopped"):
        check_interpreters({"reference": None, "candidate": str(hangs)}, {"reference": "onnxruntime", "candidate": "onnxruntime"})


def test_the_option_is_checked_with_the_config_in_the_api_s_words():
    from perfgate.config import CompareConfig

    with pytest.raises(UsageError, match=r"candidate_python=/nonexistent/python: no such file"):
        CompareConfig.from_options("a.onnx", "b.onnx", "d.parquet", candidate_python="/nonexistent/python")


def test_another_interpreter_is_never_sent_the_parent_s_installation():
    other = Interpreter("/venvs/old/bin/python", "3.11.7", "/venvs/old")
    sent = worker_sys_path(other)
    assert worker_sys_path(OWN) == tuple(sys.path)
    assert not any(entry.startswith(sys.prefix) or entry.startswith(sys.base_prefix) for entry in sent if entry)
    assert str(Path(__file__).parent) in sent  # the user's own modules (here: tests/) still reach the worker


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory: pytest.TempPathFactory):
    return passed_run(tmp_path_factory.mktemp("fake"))


def test_one_framework_at_two_versions_is_named_per_side(fake_report):
    report = fake_report
    older = replace(report.reference, backend=replace(report.reference.backend, framework_version="1.20.1"))
    models = {"reference": older, "candidate": report.candidate}
    newer = report.candidate.backend.framework_version
    framework = report.candidate.backend.framework
    assert framework_versions(models) == {framework: f"1.20.1 (reference) vs {newer} (candidate)"}
    assert framework_versions({"reference": report.candidate, "candidate": report.candidate}) == {framework: newer}


def test_every_format_names_each_side_s_interpreter_and_old_reports_read_without_one(fake_report):
    report = fake_report
    pythons = {
        "reference": {"executable": "/venvs/ort-old/bin/python", "version": "3.11.7", "prefix": "/venvs/ort-old"},
        "candidate": {"executable": "/usr/bin/python3", "version": "3.11.7", "prefix": "/usr"},
    }
    report = replace(
        report, reference=replace(report.reference, python=pythons["reference"]), candidate=replace(report.candidate, python=pythons["candidate"])
    )  # fmt: skip
    for fmt in ("text", "markdown", "html", "junit"):
        assert "ort-old/bin/python" in render(report, fmt), fmt
    assert from_dict(to_dict(report)).reference.python == pythons["reference"]
    old = to_dict(fake_report)
    del old["compared"]["reference"]["python"]
    assert from_dict(old).reference.python == {}


def test_the_worker_role_picks_its_side_s_interpreter():
    other = Interpreter("/venvs/old/bin/python", "3.11.7", "/venvs/old")
    chosen = {"reference": other, "candidate": OWN}
    assert interpreter.python_of("reference", chosen) == "/venvs/old/bin/python"
    assert interpreter.python_of("reference-cold-start-2", chosen) == "/venvs/old/bin/python"
    assert interpreter.python_of("candidate-cold-start-1", chosen) is None
