"""Real models and real files through the command line: inputs named differently by each
model, list columns of images, and bad data, which never passes (one line naming the file
or column, exit 2 or 3, a JSON report with verdict "error", no traceback, no worker left)."""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_one_line_error, run_cli, write_identity_onnx
from perfgate.config import CompareConfig
from perfgate.errors import ColumnMappingError
from perfgate.engine.pipeline import run_comparison
from perfgate.worker.process import SubprocessWorker

pytestmark = pytest.mark.e2e

# budgets no two identity models can break: these runs check the plumbing, not timing
RELAXED = ("--max-latency-increase", "300%", "--time-budget", "3", "--cold-starts", "0", "-q")


def images(path: Path, rows: int = 64, columns=("image",)) -> Path:
    """id, list<float> columns of 4x4x3 images written as plain lists, and a label."""
    rng = np.random.default_rng(0)
    data = {"id": np.arange(rows)}
    for name in columns:
        data[name] = pa.array(list(rng.standard_normal((rows, 48)).astype(np.float32)), type=pa.list_(pa.float32()))
    data["label"] = rng.integers(0, 10, rows)
    pq.write_table(pa.table(data), path)
    return path


def identity(path: Path, name: str, shape=("batch", 4, 4, 3)) -> str:
    return str(write_identity_onnx(path, [(name, "float32", list(shape))]))


def compare(reference: str, candidate: str, data, *extra: str):
    return run_cli("compare", "-r", reference, "-c", candidate, "-d", str(data), *RELAXED, *extra)


def test_two_models_naming_their_one_input_differently_compare_without_flags(tmp_path):
    reference = identity(tmp_path / "keras.onnx", "keras_tensor")
    candidate = identity(tmp_path / "keras_5.onnx", "keras_tensor_5")
    report_path = tmp_path / "r.json"
    result = compare(reference, candidate, images(tmp_path / "images.parquet"), "--json", str(report_path))
    assert result.returncode == 0, result.stderr
    assert "image -> keras_tensor | keras_tensor_5" in result.stdout
    compared = json.loads(report_path.read_text())["compared"]
    for side, name in (("reference", "keras_tensor"), ("candidate", "keras_tensor_5")):
        (fed,) = compared[side]["inputs"]
        assert fed["input"] == name and fed["columns"] == ["image"] and fed["rule"] == "the only column that can feed it"
        assert fed["row_shape"] == [4, 4, 3] and fed["padded"] is False


def test_per_side_input_options_bind_where_no_rule_can(tmp_path):
    reference = identity(tmp_path / "r.onnx", "input_layer")
    candidate = identity(tmp_path / "c.onnx", "serving_default_input_1:0")
    data = images(tmp_path / "two.parquet", columns=("left", "right"))
    assert_one_line_error(compare(reference, candidate, data), 2, "2 columns could feed it (left, right)")
    result = compare(
        reference, candidate, data,
        "--reference-input", "input_layer=left", "--candidate-input", "serving_default_input_1:0=left",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "left -> input_layer | serving_default_input_1:0" in result.stdout
    unnamed = compare(reference, candidate, data, "--input", "right")
    assert unnamed.returncode == 0, unnamed.stderr
    assert "right -> input_layer | serving_default_input_1:0" in unnamed.stdout


# --- bad data never passes -----------------------------------------------------------------


def scalar_table(values, name="x") -> pa.Table:
    return pa.table({"id": np.arange(len(values)), name: values})


def write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


BAD_DATA = {
    "a directory": (lambda p: (p.mkdir(), p)[1], (), 3, "it is a directory, not a Parquet file"),
    "an empty file": (lambda p: (p.write_bytes(b""), p)[1], (), 3, "the file is empty (0 bytes)"),
    "no rows": (lambda p: write(p, scalar_table(pa.array([], pa.float32()))), (), 3, "has no rows"),
    "fewer rows than a batch": (lambda p: write(p, scalar_table([1.0] * 4)), ("--batch-size", "8"), 2,
                                "--batch-size 8 is larger than the 4 rows"),
    "nulls": (lambda p: write(p, scalar_table([1.0, None] * 8)), (), 2, "column 'x': 8 null values, the first in row 1"),
    "NaN": (lambda p: write(p, scalar_table([1.0] * 9 + [np.nan] * 7)), (), 2,
            "column 'x': 7 values are NaN or infinite, the first in row 9"),
    "Inf": (lambda p: write(p, scalar_table([1.0, -np.inf] * 8)), (), 2, "NaN or infinite, the first in row 1; "),
    "strings": (lambda p: write(p, scalar_table(["1.5"] * 16)), (), 2, "column 'x' has type string"),
    "a newline in a name": (lambda p: write(p, pa.table({"a\nb": [1.0] * 16, "c": [1.0] * 16})), (), 2, "('a\\nb', c)"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_one_line_with_its_exit_code_and_a_json_error_report(tmp_path, case):
    make, extra, code, fragment = BAD_DATA[case]
    data = make(tmp_path / "data.parquet")
    model = identity(tmp_path / "x.onnx", "x", ("batch",))
    report_path = tmp_path / "report.json"
    result = compare(model, model, data, "--json", str(report_path), *extra)
    assert_one_line_error(result, code, fragment)
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "error" and report["error"]["exit_code"] == code
    assert fragment in report["error"]["message"]


def test_allow_nonfinite_times_nan_anyway(tmp_path):
    model = identity(tmp_path / "x.onnx", "x", ("batch",))
    data = write(tmp_path / "nan.parquet", scalar_table([1.0, np.nan] * 32))
    result = compare(model, model, data, "--allow-nonfinite")
    assert result.returncode == 0, result.stderr
    assert "x <- x (double->float32)" in result.stdout


def child_pids() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads children from /proc")
def test_a_data_error_after_the_workers_started_leaves_no_worker_behind(tmp_path):
    model = identity(tmp_path / "x.onnx", "x", ("batch",))
    data = write(tmp_path / "nan.parquet", scalar_table([np.nan] * 16))
    started = []

    def factory(role, log_dir):
        started.append(SubprocessWorker(role, log_dir))
        return started[-1]

    before = child_pids()
    config = CompareConfig.from_options(model, model, str(data), cold_starts=0)
    with pytest.raises(ColumnMappingError, match="NaN or infinite"):
        run_comparison(config, worker_factory=factory)
    assert len(started) == 2
    assert child_pids() <= before
