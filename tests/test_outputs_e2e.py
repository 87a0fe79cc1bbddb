"""The output guard with real frameworks: each backend's outputs as numpy arrays, and
`perfgate compare` on the shipped fixtures (the quantized reference, the slow model with
other weights, one network in two frameworks) and on models that return NaN
(ONNX and TorchScript, built here)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, run_cli
from perfgate.backends.base import BackendOptions

pytestmark = pytest.mark.e2e
onnx = pytest.importorskip("onnx")

DATA = str(FIXTURES / "features.parquet")
REFERENCE = FIXTURES / "mlp_reference.onnx"


def gate(reference, candidate, *extra):
    args = ["compare", "-q", "-r", str(reference), "-c", str(candidate), "-d", DATA, "--input", "features=f*",
            "--time-budget", "20", "--cold-starts", "0", "--max-latency-increase", "900%", "--format", "json"]  # fmt: skip
    return run_cli(*args, *extra)


def outputs_checks(result):
    report = json.loads(result.stdout)
    return report, {check["metric"]: check for check in report["checks"] if check["metric"].startswith("outputs.")}


def rows(count=6):
    table = pq.read_table(DATA)
    return np.column_stack([table.column(f"f{i:02d}").to_numpy()[:count] for i in range(16)]).astype(np.float32)


def logs_onnx(path, safe: bool):
    """scores = log(features + 2): NaN wherever a feature is below -2, unless ``safe`` (|features|)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Abs", ["features"], ["positive"])] if safe else []
    nodes += [helper.make_node("Add", ["positive" if safe else "features", "two"], ["shifted"]), helper.make_node("Log", ["shifted"], ["scores"])]
    graph = helper.make_graph(
        nodes, "logs",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 16])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )  # fmt: skip
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())
    return path


def logs_torchscript(path, safe: bool):
    torch = pytest.importorskip("torch")

    class Logs(torch.nn.Module):
        def __init__(self, safe: bool) -> None:
            super().__init__()
            self.safe = safe

        def forward(self, features):
            return torch.log((features.abs() if self.safe else features) + 2.0)

    torch.jit.save(torch.jit.script(Logs(safe)), str(path))
    return path


# --- each backend's outputs ------------------------------------------------------------------


def backend_outputs(backend_class, path, batch):
    backend = backend_class(BackendOptions())
    backend.setup()
    backend.load(str(path))
    prepared = backend.prepare({"features": batch})
    outputs = backend.run(prepared)
    backend.synchronize()
    found = backend.outputs_to_numpy(outputs, prepared)
    backend.close()
    return found


def expected_scores(batch):
    import onnxruntime

    return onnxruntime.InferenceSession(str(REFERENCE)).run(None, {"features": batch})[0]


def test_onnxruntime_outputs_by_their_names():
    from perfgate.backends.onnxruntime import OnnxRuntimeBackend

    batch = rows()
    found = backend_outputs(OnnxRuntimeBackend, REFERENCE, batch)
    assert list(found) == ["scores"] and found["scores"].shape == (6, 8)
    np.testing.assert_array_equal(found["scores"], expected_scores(batch))


@pytest.mark.parametrize("name, output", [("mlp_reference.pt", "output_0"), ("mlp_reference.pt2", "output_0")])
def test_torch_outputs(name, output):
    pytest.importorskip("torch")
    from perfgate.backends.torch import TorchBackend

    batch = rows()
    found = backend_outputs(TorchBackend, FIXTURES / "torch" / name, batch)
    assert list(found) == [output] and isinstance(found[output], np.ndarray)
    np.testing.assert_allclose(found[output], expected_scores(batch), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, output", [("mlp_reference.keras", "output_0"), ("mlp_reference.savedmodel", "scores")])
def test_tensorflow_outputs(name, output):
    pytest.importorskip("tensorflow")
    from perfgate.backends.tensorflow import TensorFlowBackend

    batch = rows()
    found = backend_outputs(TensorFlowBackend, FIXTURES / "tensorflow" / name, batch)
    assert list(found) == [output] and isinstance(found[output], np.ndarray)
    np.testing.assert_allclose(found[output], expected_scores(batch), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, tolerance", [("mlp_reference.tflite", 1e-4), ("mlp_reference_int8.tflite", 0.2)])
def test_tflite_outputs_are_read_from_the_interpreter(name, tolerance):
    pytest.importorskip("tensorflow")
    from perfgate.backends.tflite import TFLiteBackend

    batch = rows()
    found = backend_outputs(TFLiteBackend, FIXTURES / "tensorflow" / name, batch)
    assert list(found) == ["output_0"] and found["output_0"].dtype == np.float32
    np.testing.assert_allclose(found["output_0"], expected_scores(batch), atol=tolerance)


def test_a_quantized_tflite_output_is_dequantized():
    from perfgate.backends.tflite import _dequantized

    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    assert _dequantized(np.array([-3, 1], np.int8), detail).tolist() == [0.0, 2.0]
    assert _dequantized(np.array([1.5], np.float32), {"dtype": np.float32, "quantization": (0.0, 0)}).tolist() == [1.5]


# --- perfgate compare ------------------------------------------------------------------------


def test_an_a_a_pair_has_identical_outputs():
    result = gate(REFERENCE, REFERENCE, "--budget", "outputs.max_abs_diff:<=0", "--budget", "outputs.cosine_min:>=1",
                  "--budget", "outputs.top1_agreement:>=100%")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report, found = outputs_checks(result)
    assert {name: check["verdict"] for name, check in found.items()} == {
        "outputs.max_abs_diff": "pass", "outputs.mean_abs_diff": "info", "outputs.cosine": "info",
        "outputs.cosine_min": "pass", "outputs.top1_agreement": "pass", "outputs.non_finite": "pass",
    }  # fmt: skip
    assert report["outputs"]["batch_size"] == 1 and len(report["outputs"]["rows"]) == 256


def test_the_quantized_model_is_within_a_loose_budget_and_outside_a_tight_one():
    loose = gate(REFERENCE, FIXTURES / "mlp_quantized.onnx", "--budget", "outputs.max_abs_diff:<=0.1", "--budget", "outputs.cosine:>=0.999")
    assert loose.returncode == 0, loose.stderr
    _, found = outputs_checks(loose)
    assert found["outputs.max_abs_diff"]["verdict"] == found["outputs.cosine"]["verdict"] == "pass"
    assert 1e-3 < found["outputs.max_abs_diff"]["candidate"] < 0.1 and 0.999 < found["outputs.cosine"]["candidate"] < 1

    tight = gate(REFERENCE, FIXTURES / "mlp_quantized.onnx", "--budget", "outputs.max_abs_diff:<=1e-3")
    assert tight.returncode == 1, tight.stderr
    report, found = outputs_checks(tight)
    assert found["outputs.max_abs_diff"]["verdict"] == "fail"
    assert report["reason"].startswith("outputs.max_abs_diff at output scores: largest |difference| ")


def test_a_model_with_other_weights_is_far_outside():
    result = gate(REFERENCE, FIXTURES / "mlp_slow.onnx", "--budget", "outputs.cosine:>=0.99", "--budget", "outputs.top1_agreement:>=99%")
    assert result.returncode == 1, result.stderr
    report, found = outputs_checks(result)
    assert found["outputs.cosine"]["verdict"] == found["outputs.top1_agreement"]["verdict"] == "fail"
    assert found["outputs.cosine"]["candidate"] < 0.5 and found["outputs.top1_agreement"]["candidate"] < 0.5


def test_one_network_in_two_frameworks_pairs_its_outputs_by_position():
    pytest.importorskip("torch")
    result = gate(REFERENCE, FIXTURES / "torch" / "mlp_reference.pt", "--budget", "outputs.max_abs_diff:<=1e-4")
    assert result.returncode in (0, 1), result.stderr
    report, found = outputs_checks(result)
    assert found["outputs.max_abs_diff"]["verdict"] == "pass" and found["outputs.max_abs_diff"]["scenario"] == "scores/output_0"
    assert report["outputs"]["outputs"][0]["reference_output"] == "scores"


@pytest.mark.parametrize("build, suffix", [(logs_onnx, ".onnx"), (logs_torchscript, ".pt")], ids=["onnx", "torchscript"])
def test_a_candidate_returning_nan_fails(tmp_path, build, suffix):
    reference, candidate = build(tmp_path / f"safe{suffix}", True), build(tmp_path / f"nan{suffix}", False)
    result = gate(reference, candidate)
    assert result.returncode == 1, result.stderr
    report, found = outputs_checks(result)
    assert report["verdict"] == "fail"
    assert found["outputs.non_finite"]["verdict"] == "fail" and found["outputs.non_finite"]["candidate"] > 0
    assert report["reason"].startswith("outputs.non_finite at output ") and "the candidate returned " in report["reason"]
    assert " NaN values in output " in report["reason"]


def test_a_reference_returning_nan_is_a_runtime_error(tmp_path):
    reference, candidate = logs_onnx(tmp_path / "nan.onnx", False), logs_onnx(tmp_path / "safe.onnx", True)
    result = gate(reference, candidate, "--json", str(tmp_path / "report.json"))
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"perfgate: error: the reference model '{reference}' returned ")
    assert "NaN values in output scores" in line and "--output-rows 0" in line
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "error"


def test_outputs_of_other_shapes_are_a_usage_error_unless_outputs_are_not_compared(tmp_path):
    other = logs_onnx(tmp_path / "sixteen.onnx", True)  # scores[batch, 16] against the reference's [batch, 8]
    result = gate(REFERENCE, other)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"perfgate: error: output shapes differ: reference '{REFERENCE}' output 'scores' is [1, 8], "
                           f"candidate '{other}' output 'scores' is [1, 16]")  # fmt: skip
    assert "--output-rows 0" in line
    skipped = gate(REFERENCE, other, "--output-rows", "0")
    assert skipped.returncode in (0, 1), skipped.stderr
    assert json.loads(skipped.stdout)["outputs"] is None


def _gpu_present() -> bool:
    import shutil
    import subprocess

    return shutil.which("nvidia-smi") is not None and subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_present(), reason="no NVIDIA GPU on this machine")
@pytest.mark.parametrize("transfers", [(), ("--include-transfers",)], ids=["on-device", "transfers"])
def test_onnxruntime_on_cuda_gives_its_outputs_from_the_io_binding(transfers):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    result = gate(REFERENCE, FIXTURES / "mlp_quantized.onnx", "--device", "cuda", *transfers,
                  "--budget", "outputs.cosine:>=0.999", "--budget", "outputs.max_abs_diff:<=0.1")  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    _, found = outputs_checks(result)
    assert found["outputs.cosine"]["verdict"] == found["outputs.max_abs_diff"]["verdict"] == "pass"
    assert found["outputs.max_abs_diff"]["candidate"] > 1e-3  # the quantized weights' answers, read back from the GPU


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_present(), reason="no NVIDIA GPU on this machine")
def test_torch_on_cuda_gives_its_outputs_from_the_device():
    pytest.importorskip("torch").cuda.is_available() or pytest.skip("torch has no CUDA")
    # the slow model's other weights; its latency stays within --max-latency-increase 900% on a GPU
    result = gate(FIXTURES / "torch" / "mlp_reference.pt", FIXTURES / "torch" / "mlp_slow.pt", "--device", "cuda",
                  "--budget", "outputs.cosine:>=0.99")  # fmt: skip
    assert result.returncode == 1, result.stderr
    report, found = outputs_checks(result)
    assert found["outputs.cosine"]["verdict"] == "fail" and report["reason"].startswith("outputs.cosine at output output_0")
