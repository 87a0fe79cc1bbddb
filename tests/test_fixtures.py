"""The shipped fixtures are what fixtures/make_fixtures.py builds, and stay small."""


import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, load_script

onnx = pytest.importorskip("onnx")

MODELS = ["mlp_reference.onnx", "mlp_aa.onnx", "mlp_slow.onnx"]


def load_builder():
    return load_script(FIXTURES / "make_fixtures.py")


def multiply_adds(model) -> int:
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return sum(int(np.prod(shapes[node.input[1]])) for node in model.graph.node if node.op_type == "Gemm")


def test_rebuilding_gives_the_committed_fixtures(tmp_path):
    builder = load_builder()
    first = {path.name: path.read_bytes() for path in builder.build(tmp_path / "a", ("onnx",))}
    second = {path.name: path.read_bytes() for path in builder.build(tmp_path / "b", ("onnx",))}
    assert first == second  # deterministic, byte for byte
    for name in MODELS + ["mlp_quantized.onnx", "seq_linear.onnx", "seq_quadratic.onnx"]:
        assert onnx.load(tmp_path / "a" / name) == onnx.load(FIXTURES / name)
    for data in ("features.parquet", "sequences.parquet"):
        assert pq.read_table(tmp_path / "a" / data).equals(pq.read_table(FIXTURES / data))


def test_the_sequence_fixtures_grow_linearly_and_quadratically():
    table = pq.read_table(FIXTURES / "sequences.parquet")
    assert table.num_rows == 1000 and table.column_names == ["id", "tokens", "n_tokens", "label"]
    lengths = [len(row) for row in table.column("tokens").to_pylist()]
    assert lengths == table.column("n_tokens").to_pylist() and min(lengths) >= 8 and max(lengths) <= 256
    linear, quadratic = (onnx.load(FIXTURES / f"seq_{kind}.onnx") for kind in ("linear", "quadratic"))
    assert [i.name for i in linear.graph.input] == [i.name for i in quadratic.graph.input] == ["tokens"]
    assert sum(node.op_type == "MatMul" for node in quadratic.graph.node) == 3  # dense, X X^T, attention X
    assert sum(node.op_type == "MatMul" for node in linear.graph.node) == 1


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
    assert multiply_adds(models["mlp_slow.onnx"]) >= 3 * multiply_adds(models["mlp_reference.onnx"])


def tree(path):
    """A model file's bytes, or a SavedModel directory's files and their bytes."""
    if path.is_dir():
        return {str(item.relative_to(path)): item.read_bytes() for item in sorted(path.rglob("*")) if item.is_file()}
    return path.read_bytes()


A_A = [("", ".onnx"), ("torch", ".pt"), ("torch", ".pt2"), ("tensorflow", ".keras"), ("tensorflow", ".savedmodel"),
       ("tensorflow", ".tflite")]  # fmt: skip


@pytest.mark.parametrize("folder, suffix", A_A, ids=[suffix for _, suffix in A_A])
def test_the_a_a_fixture_is_the_reference_byte_for_byte(folder, suffix):
    twin, reference = FIXTURES / folder / f"mlp_aa{suffix}", FIXTURES / folder / f"mlp_reference{suffix}"
    assert twin.exists() and tree(twin) == tree(reference)


def test_rebuilding_copies_the_reference_as_the_a_a_fixture(tmp_path):
    builder = load_builder()
    written = builder.build(tmp_path, ("onnx",))
    assert tmp_path / "mlp_aa.onnx" in written
    assert (tmp_path / "mlp_aa.onnx").read_bytes() == (tmp_path / "mlp_reference.onnx").read_bytes()
    folder = tmp_path / "saved"
    (folder / "mlp_reference.savedmodel" / "variables").mkdir(parents=True)
    (folder / "mlp_reference.savedmodel" / "variables" / "v").write_bytes(b"weights")
    (folder / "mlp_reference.tflite").write_bytes(b"tflite")
    (folder / "mlp_aa.savedmodel").mkdir()
    (folder / "mlp_aa.savedmodel" / "stale").write_bytes(b"an older build's file")
    builder.copies(folder, (".savedmodel", ".tflite"))
    assert tree(folder / "mlp_aa.savedmodel") == {"variables/v": b"weights"} and tree(folder / "mlp_aa.tflite") == b"tflite"


def test_the_quantized_fixture_is_the_reference_on_int8_levels():
    reference, quantized = onnx.load(FIXTURES / "mlp_reference.onnx"), onnx.load(FIXTURES / "mlp_quantized.onnx")
    assert multiply_adds(quantized) == multiply_adds(reference)  # the same cost
    for original, rounded in zip(reference.graph.initializer, quantized.graph.initializer):
        w, q = (np.frombuffer(item.raw_data, np.float32).reshape(tuple(item.dims)) for item in (original, rounded))
        if original.name.endswith("_b"):
            assert np.array_equal(w, q)
            continue
        levels = q / (np.abs(w).max(axis=0) / np.float32(127))
        assert np.allclose(levels, np.round(levels), atol=1e-3) and not np.array_equal(w, q)
        assert np.abs(w - q).max() <= np.abs(w).max() / 254 * 1.001


def outputs_by_format(folder, name, rows):
    """scores for ``rows`` from every format of network ``name`` in ``folder``."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import onnxruntime
    import tensorflow as tf
    import torch

    import keras

    results = {"onnx": onnxruntime.InferenceSession(str(folder / f"{name}.onnx")).run(None, {"features": rows})[0]}
    with torch.inference_mode():
        results["torchscript"] = torch.jit.load(str(folder / "torch" / f"{name}.pt"))(torch.from_numpy(rows)).numpy()
        results["torch.export"] = torch.export.load(str(folder / "torch" / f"{name}.pt2")).module()(torch.from_numpy(rows)).numpy()
    results["keras"] = keras.models.load_model(folder / "tensorflow" / f"{name}.keras", safe_mode=True, compile=False)(rows).numpy()
    signature = tf.saved_model.load(str(folder / "tensorflow" / f"{name}.savedmodel")).signatures["serving_default"]
    results["savedmodel"] = signature(features=tf.constant(rows))["scores"].numpy()
    interpreter = tf.lite.Interpreter(model_path=str(folder / "tensorflow" / f"{name}.tflite"))
    results["tflite"] = interpreter.get_signature_runner()(features=rows)["output_0"]
    return results


@pytest.mark.parametrize("name", ["mlp_reference", "mlp_aa", "mlp_slow"])
def test_every_format_computes_the_same_network(name):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    rows = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    results = outputs_by_format(FIXTURES, name, rows)
    for form, scores in results.items():
        np.testing.assert_allclose(scores, results["onnx"], rtol=1e-4, atol=1e-4, err_msg=form)


def test_the_int8_tflite_fixture_approximates_the_reference():
    tf = pytest.importorskip("tensorflow")
    rows = np.random.default_rng(1).standard_normal((50, 16)).astype(np.float32)
    reference = outputs_by_format(FIXTURES, "mlp_reference", rows)["onnx"]
    interpreter = tf.lite.Interpreter(model_path=str(FIXTURES / "tensorflow" / "mlp_reference_int8.tflite"))
    details = interpreter.get_tensor_details()
    assert any(np.dtype(d["dtype"]) == np.int8 for d in details)  # quantized weights
    quantized = np.concatenate([interpreter.get_signature_runner()(features=row[None])["output_0"] for row in rows])
    assert np.corrcoef(quantized.ravel(), reference.ravel())[0, 1] > 0.98


def test_rebuilt_framework_fixtures_hold_the_same_weights(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    builder = load_builder()
    builder.build(tmp_path, ("onnx", "torch", "tensorflow"))
    rows = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    for name in ("mlp_reference", "mlp_slow"):
        rebuilt, committed = outputs_by_format(tmp_path, name, rows), outputs_by_format(FIXTURES, name, rows)
        for form in committed:
            np.testing.assert_array_equal(rebuilt[form], committed[form], err_msg=f"{name} {form}")


def test_framework_fixtures_are_small():
    for path in (FIXTURES / "torch").glob("*"):
        assert path.stat().st_size < 2 * 1024 * 1024, path
    for path in (FIXTURES / "tensorflow").glob("*"):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        assert size < 2 * 1024 * 1024, path
