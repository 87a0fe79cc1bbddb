"""`perfgate compare` where a CI step goes wrong: the seed's pipeline step, reports that
would replace their inputs, numbers JSON cannot hold, a stdout that takes nothing,
options refused before the command runs, and what is left in the temp directory.

End-to-end runs here compare the A/A pair against a generous budget, and assert only the
exit code and what the run wrote, never a timing.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, ROOT, TESTS, run_cli

REFERENCE = str(FIXTURES / "mlp_reference.onnx")
AA = str(FIXTURES / "mlp_aa.onnx")
DATA = str(FIXTURES / "features.parquet")
QUICK = ("--input", "features=f*", "--cold-starts", "0", "--rows", "200", "--time-budget", "2",
         "--max-latency-increase", "100%", "-q")  # fmt: skip

pytestmark = pytest.mark.e2e


def compare(*extra, reference=REFERENCE, candidate=AA, data=DATA, **kwargs):
    return run_cli("compare", "-r", reference, "-c", candidate, "-d", data, *QUICK, *extra, **kwargs)


def in_folder(folder, *args, stdout=subprocess.PIPE, env=None):
    """`python -m perfgate ARGS` run from ``folder``, as a CI step runs it in its checkout."""
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "perfgate", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=300, cwd=folder, env=full_env)  # fmt: skip


def one_error_line(result, code, fragment):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfgate: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def model_folder(path, model):
    """A model as a hub export lays it out: model.onnx beside its config and tokenizer."""
    path.mkdir()
    shutil.copy(model, path / "model.onnx")
    (path / "config.json").write_text('{"architectures": ["MLP"]}')
    (path / "tokenizer.json").write_text("{}")
    return path


# --- 3: the seed's pipeline step runs as written -------------------------------------------


def test_the_seed_pipeline_step_runs_as_written_on_model_directories(tmp_path):
    model_folder(tmp_path / "new-model", AA)
    model_folder(tmp_path / "production-model", REFERENCE)
    table = pq.read_table(DATA)
    features = np.stack([table[f"f{i:02d}"].to_numpy() for i in range(16)], axis=1).astype(np.float32)
    # the step has no --input: the column is named after the model's input
    pq.write_table(pa.table({"features": pa.array(list(features), type=pa.list_(pa.float32(), 16))}),
                   tmp_path / "test_data.parquet")  # fmt: skip

    step = ["compare", "--model-path", "./new-model", "--reference-path", "./production-model",
            "--dataset", "./test_data.parquet", "--max-latency-increase", "1.15"]  # fmt: skip
    result = in_folder(tmp_path, *step)
    assert result.returncode == 0, result.stderr  # an A/A pair: pass, or inconclusive on a busy machine
    first = result.stdout.splitlines()[0]
    assert first == "perfgate: reference production-model/model.onnx vs candidate new-model/model.onnx"


def test_a_model_directory_with_several_models_or_none_is_a_usage_error(tmp_path):
    several = model_folder(tmp_path / "several", AA)
    shutil.copy(AA, several / "model_quantized.onnx")
    one_error_line(compare(candidate=str(several)), 2, "holds 2 models (model.onnx, model_quantized.onnx); name the one")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    one_error_line(compare(candidate=str(empty)), 2, "without saved_model.pb (so not a SavedModel) and with no model file")


# --- 4: --json never replaces an input ------------------------------------------------------


@pytest.mark.parametrize("target", ["candidate", "reference", "data", "symlink to data", "file in model directory"])
def test_a_report_path_that_is_an_input_is_refused_and_the_input_kept(tmp_path, target):
    folder = model_folder(tmp_path / "new-model", AA)
    data = tmp_path / "data.parquet"
    shutil.copy(DATA, data)
    reference = tmp_path / "reference.onnx"
    shutil.copy(REFERENCE, reference)
    link = tmp_path / "report.json"
    link.symlink_to(data)
    report_path = {
        "candidate": folder / "model.onnx", "reference": reference, "data": data,
        "symlink to data": link, "file in model directory": folder / "model.onnx",
    }[target]  # fmt: skip
    candidate = str(folder) if target == "file in model directory" else str(folder / "model.onnx")
    before = report_path.read_bytes()
    for extra in ((), ("--budget", "latency.p95:lots")):  # on a run, and on an error
        result = compare("--json", str(report_path), *extra, reference=str(reference), candidate=candidate, data=str(data))
        one_error_line(result, 2, "the report would replace it")
        assert report_path.read_bytes() == before


def test_a_report_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from perfgate.engine.pipeline import error_report
    from perfgate.report.json import read_report, write_report

    path = tmp_path / "perfgate.json"
    write_report(error_report(ValueError("first")), path)
    mode = path.stat().st_mode & 0o777

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_report(error_report(ValueError("second")), path)
    monkeypatch.undo()
    assert "first" in read_report(path).reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["perfgate.json"]
    write_report(error_report(ValueError("third")), path)
    assert "third" in read_report(path).reason and path.stat().st_mode & 0o777 == mode


# --- 5: NaN and infinity in a report ----------------------------------------------------------


def refuse_constants(name):
    raise ValueError(f"non-standard JSON constant {name}")


@pytest.mark.parametrize("pad", ["nan", "-inf"])
def test_a_non_finite_pad_value_gives_standard_json_on_stdout_and_in_the_file(tmp_path, pad):
    path = tmp_path / "r.json"
    result = compare("--pad-value", pad, "--allow-nonfinite", "--format", "json", "--json", str(path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for text in (result.stdout, path.read_text()):
        report = json.loads(text, parse_constant=refuse_constants)
        assert report["settings"]["pad_value"] == {"nan": "NaN", "-inf": "-Infinity"}[pad]
    again = run_cli("report", str(path), "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout, parse_constant=refuse_constants)["settings"]["pad_value"] == report["settings"]["pad_value"]


# --- 8: exit 1 means a regression, nothing else ---------------------------------------------


def test_a_stdout_that_cannot_be_written_is_exit_3_with_one_line(tmp_path):
    path = tmp_path / "r.json"
    with open("/dev/full", "w") as full:
        result = in_folder(ROOT, "compare", "-r", REFERENCE, "-c", AA, "-d", DATA, *QUICK, "--json", str(path), stdout=full)
    one_error_line(result, 3, "cannot write to stdout: No space left on device")
    assert json.loads(path.read_text())["verdict"] in ("pass", "inconclusive")  # written before stdout
    with open("/dev/full", "w") as full:
        helped = in_folder(ROOT, "compare", "--help", stdout=full)
    one_error_line(helped, 3, "cannot write to stdout")


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    saved = tmp_path / "r.json"
    assert compare("--json", str(saved)).returncode == 0
    full_env = dict(os.environ, PYTHONPATH=str(ROOT))
    # `perfgate report r.json | head -1`: the pipe closes before the report is written
    process = subprocess.Popen([sys.executable, "-m", "perfgate", "report", str(saved)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=ROOT, env=full_env)  # fmt: skip
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=60)
    assert code == 3 and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert stderr.strip().splitlines() == ["perfgate: error: cannot write to stdout: Broken pipe"]


# --- 10: options refused before the command runs still write the error report -------------


@pytest.mark.parametrize(
    "option, fragment",
    [
        (("--rows", "0"), "--rows"),
        (("--batch-size", "0"), "--batch-size"),
        (("--threads", "0"), "--threads"),
        (("--concurrency", "0"), "--concurrency"),
        (("--rate", "0"), "--rate"),
        (("--format", "xml"), "--format"),
        (("--rows", "many"), "--rows"),
        (("--frobnicate",), "--frobnicate"),
    ],
)
def test_an_option_click_refuses_still_writes_the_json_report(tmp_path, option, fragment):
    path = tmp_path / "err.json"
    result = run_cli("compare", "-r", REFERENCE, "-c", AA, "-d", DATA, *option, "--json", str(path))
    one_error_line(result, 2, fragment)
    report = json.loads(path.read_text())
    assert report["verdict"] == "error" and report["error"]["exit_code"] == 2
    assert fragment in report["error"]["message"]


def test_a_refused_option_with_format_json_puts_the_error_report_on_stdout():
    result = run_cli("compare", "-r", REFERENCE, "-c", AA, "-d", DATA, "--rows", "0", "--format", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["verdict"] == "error"


@pytest.mark.parametrize(
    "option, fragment",
    [
        (("--seed", "-1"), "--seed must be a whole number of 0 or more, got -1"),
        (("--rate", "1e-9"), "--rate 1e-09 is too slow for --time-budget 2"),
    ],
)
def test_bad_values_found_only_late_are_named_before_anything_loads(tmp_path, option, fragment):
    path = tmp_path / "err.json"
    result = compare(*option, "--json", str(path))
    one_error_line(result, 2, fragment)
    assert json.loads(path.read_text())["error"]["type"] == "UsageError"


# --- 12b: more threads than CPUs is said, not silent ------------------------------------------


def test_more_threads_than_usable_cpus_is_a_warning_on_stderr():
    threads = str(len(os.sched_getaffinity(0)) + 1)
    result = run_cli("compare", "-r", REFERENCE, "-c", AA, "-d", "absent.parquet", "--threads", threads, "-q")
    assert result.returncode == 3
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith(f"perfgate: warning: {threads} threads per model, but this process may use only")
    assert error.startswith("perfgate: error: cannot read data 'absent.parquet'")


# --- loading safely, and leaving nothing behind --------------------------------------------


def test_nothing_is_left_in_the_temp_directory_after_a_run_or_an_error(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    assert compare("--json", str(tmp_path / "r.json"), env=env).returncode == 0
    crashed = compare("--candidate-backend", "fakes:CrashingBackend", "--json", str(tmp_path / "c.json"), env=env)
    assert crashed.returncode == 3
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    assert compare(candidate=str(corrupt), env=env).returncode == 3
    assert list(temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "corrupt.onnx", "r.json", "tmp"]


def test_a_path_with_a_newline_or_an_escape_sequence_stays_on_its_line(tmp_path):
    hostile = tmp_path / "rows\n\x1b[2J\u202e.parquet"
    shutil.copy(DATA, hostile)
    args = [arg for arg in QUICK if arg != "-q"]
    result = run_cli("compare", "-r", REFERENCE, "-c", AA, "-d", str(hostile), *args)
    assert result.returncode == 0, result.stderr
    for output in (result.stdout, result.stderr):
        assert "\x1b" not in output and "\u202e" not in output
    shown = str(tmp_path / "rows\\n\\x1b[2J\\u202e.parquet")
    assert f"  data: {shown} (200 of 2000 rows, seed 0)" in result.stdout.splitlines()
    assert any(line.startswith(f"perfgate: data {shown}: 200 of 2000 rows") for line in result.stderr.splitlines())
