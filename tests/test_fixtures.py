"""The shipped fixtures are what fixtures/make_fixtures.py builds, and stay small."""

import importlib.util

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES

onnx = pytest.importorskip("onnx")

MODELS = ["mlp_reference.onnx", "mlp_aa.onnx", "mlp_slow.onnx"]


def load_builder():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def multiply_adds(model) -> int:
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return sum(int(np.prod(shapes[node.input[1]])) for node in model.graph.node if node.op_type == "Gemm")


def test_rebuilding_gives_the_committed_fixtures(tmp_path):
    builder = load_builder()
    first = {path.name: path.read_bytes() for path in builder.build(tmp_path / "a")}
    second = {path.name: path.read_bytes() for path in builder.build(tmp_path / "b")}
    assert first == second  # deterministic, byte for byte
    for name in MODELS:
        assert onnx.load(tmp_path / "a" / name) == onnx.load(FIXTURES / name)
    assert pq.read_table(tmp_path / "a" / "features.parquet").equals(pq.read_table(FIXTURES / "features.parquet"))


def test_fixtures_are_small_and_shaped_as_documented():
    for path in FIXTURES.glob("*.*"):
        if path.suffix in (".onnx", ".parquet"):
            assert path.stat().st_size < 2 * 1024 * 1024, path
    table = pq.read_table(FIXTURES / "features.parquet")
    assert table.num_rows == 2000
    assert table.column_names == ["id", *[f"f{i:02d}" for i in range(16)], "label"]
    models = {name: onnx.load(FIXTURES / name) for name in MODELS}
    for model in models.values():
        assert [i.name for i in model.graph.input] == ["features"]
    assert multiply_adds(models["mlp_aa.onnx"]) == multiply_adds(models["mlp_reference.onnx"])
    assert multiply_adds(models["mlp_slow.onnx"]) >= 3 * multiply_adds(models["mlp_reference.onnx"])
    weights = [np.frombuffer(m.graph.initializer[0].raw_data, np.float32) for m in (models["mlp_reference.onnx"], models["mlp_aa.onnx"])]
    assert not np.array_equal(*weights)  # an A/A pair: same architecture, other weights
