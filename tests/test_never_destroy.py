"""No command ever writes a report over a file it reads, and a report path that is a
device or a FIFO is written in place, never replaced by a regular file.

Every refusal here happens before anything is measured, so these tests run in a second
or two each; the writes to special files go through `perfgate merge`, which measures
nothing."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

import report_samples as samples
from conftest import FIXTURES, assert_one_line_error, run_cli
from perfgate.report.files import check_writable, write_atomically
from perfgate.report.json import dumps

REFERENCE = FIXTURES / "mlp_reference.onnx"
DATA = FIXTURES / "features.parquet"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Copies of a model, the data and a config file, which the commands read and must keep."""
    for source, name in ((REFERENCE, "ref.onnx"), (REFERENCE, "cand.onnx"), (DATA, "data.parquet")):
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / "perfgate.toml").write_text(
        'reference = "ref.onnx"\ncandidate = "cand.onnx"\ndata = "data.parquet"\ninputs = ["features=f*"]\ntime-budget = 2\n'
    )
    return tmp_path


def assert_refused_and_kept(result, target: Path, before: str) -> None:
    assert_one_line_error(result, 2, "the report would replace it")
    assert digest(target) == before, f"{target} was changed"


@pytest.mark.parametrize("flag", ["--json", "--markdown", "--html", "--junit"])
def test_compare_never_writes_over_its_config_file(workdir, flag):
    config = workdir / "perfgate.toml"
    before = digest(config)
    result = run_cli("compare", "--config", str(config), flag, str(config), "-q", cwd=workdir)
    assert_refused_and_kept(result, config, before)


def test_compare_never_writes_over_the_config_file_it_found_by_itself(workdir):
    """No --config: perfgate.toml in the current directory is read, so it is an input."""
    before = digest(workdir / "perfgate.toml")
    result = run_cli("compare", "--json", "perfgate.toml", "-q", cwd=workdir)
    assert_refused_and_kept(result, workdir / "perfgate.toml", before)


def test_compare_never_writes_over_pyproject_holding_the_comparisons(workdir):
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text("[project]\nname = 'x'\n\n[tool.perfgate]\n" + (workdir / "perfgate.toml").read_text())
    (workdir / "perfgate.toml").unlink()
    before = digest(pyproject)
    for spelling in ("pyproject.toml", "./pyproject.toml", str(pyproject)):
        result = run_cli("compare", "--json", spelling, "-q", cwd=workdir)
        assert_refused_and_kept(result, pyproject, before)


@pytest.mark.parametrize("spelling", ["data.parquet", "./data.parquet", "sub/../data.parquet", "link.parquet", "hard.parquet"])
def test_compare_never_writes_over_its_data_however_it_is_spelt(workdir, spelling):
    (workdir / "sub").mkdir()
    (workdir / "link.parquet").symlink_to(workdir / "data.parquet")
    os.link(workdir / "data.parquet", workdir / "hard.parquet")
    before = digest(workdir / "data.parquet")
    result = run_cli("compare", "-r", "ref.onnx", "-c", "cand.onnx", "-d", "data.parquet", "--input", "features=f*",
                     "--json", spelling, "-q", cwd=workdir)  # fmt: skip
    assert_refused_and_kept(result, workdir / "data.parquet", before)


@pytest.mark.parametrize("command", [
    ["calibrate", "-m", "ref.onnx", "-d", "data.parquet", "--json"],
    ["run", "-m", "ref.onnx", "-d", "data.parquet", "--save"],
])  # fmt: skip
@pytest.mark.parametrize("victim", ["ref.onnx", "data.parquet"])
def test_calibrate_and_run_never_write_over_their_model_or_data(workdir, command, victim):
    before = digest(workdir / victim)
    result = run_cli(*command, victim, "--input", "features=f*", "-q", cwd=workdir)
    assert_refused_and_kept(result, workdir / victim, before)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """A stored baseline of the reference on its own copy of the data (a short real run)."""
    folder = tmp_path_factory.mktemp("baseline")
    (folder / "data.parquet").write_bytes(DATA.read_bytes())
    (folder / "ref.onnx").write_bytes(REFERENCE.read_bytes())
    result = run_cli("run", "-m", "ref.onnx", "-d", "data.parquet", "--input", "features=f*", "--time-budget", "1",
                     "--save", "baseline.json", "-q", cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize("victim", ["data.parquet", "baseline.json", "ref.onnx"])
def test_compare_with_a_baseline_never_writes_over_the_data_the_baseline_names(baseline, victim):
    """No --data: the baseline's own data file is read, so it is an input too."""
    before = digest(baseline / victim)
    result = run_cli("compare", "-c", "ref.onnx", "--baseline", "baseline.json", "--json", victim, "-q", cwd=baseline)
    assert_refused_and_kept(result, baseline / victim, before)


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    report = samples.passed_run(tmp_path)
    for name in ("cpu", "gpu"):
        (tmp_path / f"{name}.json").write_text(dumps(report))
    return tmp_path


@pytest.mark.parametrize("flag", ["--output", "--markdown", "--html", "--junit"])
def test_merge_never_writes_over_a_part(parts, flag):
    before = digest(parts / "gpu.json")
    result = run_cli("merge", "cpu.json", "gpu.json", flag, "./gpu.json", cwd=parts)
    assert_refused_and_kept(result, parts / "gpu.json", before)


def test_two_reports_to_one_file_are_refused(parts):
    result = run_cli("merge", "cpu.json", "gpu.json", "--output", "out", "--markdown", "./out", cwd=parts)
    assert_one_line_error(result, 2, "give each report its own path")
    assert not (parts / "out").exists()


def make_device(path: Path, major: int, minor: int) -> Path:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


@pytest.mark.parametrize("flag", ["--output", "--html"])
def test_a_null_device_stays_a_device(parts, flag):
    null = make_device(parts / "null", 1, 3)
    result = run_cli("merge", "cpu.json", "gpu.json", flag, str(null), cwd=parts)
    assert result.returncode == 0, result.stderr
    mode = os.stat(null).st_mode
    assert stat.S_ISCHR(mode) and os.major(os.stat(null).st_rdev) == 1, "the device node was replaced by a file"
    assert not list(parts.glob(".null.*")), "a temporary file was left beside it"


def test_a_full_device_is_a_runtime_error_not_a_pass(parts):
    full = make_device(parts / "full", 1, 7)
    result = run_cli("merge", "cpu.json", "gpu.json", "--output", str(full), cwd=parts)
    assert result.returncode == 3, result.stderr
    assert "No space left" in result.stderr and "Traceback" not in result.stderr
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_a_fifo_is_written_in_place(parts):
    fifo = parts / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_cli("merge", "cpu.json", "gpu.json", "--output", str(fifo), cwd=parts)
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(received[0])["verdict"] == "pass"


def test_dev_stdout_redirected_to_a_file_is_written_through_not_renamed_over(parts):
    """`--output /dev/stdout > out.txt`: renaming over /proc/self/fd/1's file would leave
    the shell writing to an unlinked file; the report goes through the descriptor."""
    out = parts / "out.txt"
    with open(out, "w") as handle:
        import subprocess
        import sys

        from conftest import ROOT, TESTS

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
        code = subprocess.run([sys.executable, "-m", "perfgate", "merge", "cpu.json", "gpu.json", "--output", "/dev/stdout",
                               "--format", "json"], stdout=handle, cwd=parts, env=env, timeout=120).returncode  # fmt: skip
    assert code == 0
    text = out.read_text()
    assert text.count('"schema_version"') >= 2  # the --output copy and the --format json copy, both in the file


def test_write_atomically_creates_missing_folders_and_keeps_permissions(tmp_path):
    target = tmp_path / "a" / "b" / "report.json"
    write_atomically(target, "{}\n")
    assert target.read_text() == "{}\n"
    target.chmod(0o640)
    write_atomically(target, "[]\n")
    assert target.read_text() == "[]\n" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_check_writable_says_why_before_anything_is_measured(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    assert check_writable(tmp_path / "folder") == "it is a directory"
    assert check_writable(tmp_path / "new" / "deeper" / "report.json") is None  # its folders will be made
    assert "is not a directory" in check_writable(tmp_path / "file" / "report.json")
    assert check_writable(tmp_path / ("x" * 300)) == os.strerror(36)  # ENAMETOOLONG


def test_a_report_under_a_file_is_refused_before_measuring(workdir):
    (workdir / "plain").write_text("x")
    result = run_cli("compare", "--json", "plain/report.json", "-q", cwd=workdir)
    assert_one_line_error(result, 3, "cannot write the JSON report to 'plain/report.json' (--json)")
    assert "not a directory" in result.stderr


def test_a_report_in_a_missing_folder_is_written_there(parts):
    result = run_cli("merge", "cpu.json", "gpu.json", "--output", "reports/ci/merged.json", "--html", "reports/m.html", cwd=parts)
    assert result.returncode == 0, result.stderr
    assert json.loads((parts / "reports/ci/merged.json").read_text())["verdict"] == "pass"
    assert (parts / "reports/m.html").read_text().startswith("<!DOCTYPE html>")
