from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TESTS = Path(__file__).resolve().parent

# the worker imports tests/fakes.py by name, from the sys.path the parent sends it
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def load_script(path: Path):
    """A script of the repository (a fixture builder, a benchmark, a workflow helper) loaded
    as a module named after its file, and registered under that name: dataclasses look
    their module up in sys.modules."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def feature_table_path(tmp_path: Path) -> Path:
    """A small Parquet file: id, a 4-wide feature set f0..f3 and a label."""
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "id": np.arange(200, dtype=np.int64),
            **{f"f{i}": rng.standard_normal(200) for i in range(4)},
            "label": rng.integers(0, 3, 200),
        }
    )
    path = tmp_path / "small.parquet"
    pq.write_table(table, path)
    return path


def write_identity_onnx(path: Path, inputs: list[tuple[str, str, list]]) -> Path:
    """An ONNX model passing each (name, numpy dtype, shape) input through Identity."""
    from onnx import TensorProto, helper

    types = {
        "float32": TensorProto.FLOAT,
        "float64": TensorProto.DOUBLE,
        "int64": TensorProto.INT64,
        "int32": TensorProto.INT32,
        "uint8": TensorProto.UINT8,
        "bool": TensorProto.BOOL,
        "string": TensorProto.STRING,
    }
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _, _ in inputs],
        "identity",
        [helper.make_tensor_value_info(name, types[dtype], shape) for name, dtype, shape in inputs],
        [helper.make_tensor_value_info(f"{name}_out", types[dtype], shape) for name, dtype, shape in inputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def run_cli(*args: str, timeout: float = 300.0, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m perfgate ARGS` in a fresh process, as a user or a CI step runs it."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "perfgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=full_env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    """A user-facing error as the CLI promises it: exit ``code``, one line on stderr that
    starts with "perfgate: error: " and holds ``fragment``, no traceback."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfgate: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
