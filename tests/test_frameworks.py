"""PyTorch, TensorFlow and TFLite through `perfgate compare`, on the shipped fixtures.

Every format gets an A/A pair that must pass and a slow model (about 11x the compute)
that must fail; the TensorFlow formats' slow checks run at batch 32, where the compute
dominates their per-call overhead. Cross-framework runs compare one network in two
runtimes. The "no silent fall-back" errors are checked where there is no GPU.
"""

import json
import shutil
import subprocess

import pytest

from conftest import FIXTURES, run_cli

pytestmark = pytest.mark.e2e
torch = pytest.importorskip("torch")
tf_spec = pytest.importorskip("tensorflow")

DATA = str(FIXTURES / "features.parquet")
TORCH = FIXTURES / "torch"
TF = FIXTURES / "tensorflow"


def gate(reference, candidate, *extra, inputs=("features=f*",)):
    args = ["compare", "-q", "-r", str(reference), "-c", str(candidate), "-d", DATA, "--time-budget", "30", "--cold-starts", "0"]
    for item in inputs:
        args += ["--input", item]
    return run_cli(*args, *extra)


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


FORMATS = [
    pytest.param(TORCH, ".pt", "torch", "torchscript", (), id="torchscript"),
    pytest.param(TORCH, ".pt2", "torch", "torch.export", (), id="torch.export"),
    pytest.param(TF, ".keras", "tensorflow", "keras", ("--batch-size", "32"), id="keras"),
    pytest.param(TF, ".savedmodel", "tensorflow", "saved_model:serving_default", ("--batch-size", "32"), id="savedmodel"),
    pytest.param(TF, ".tflite", "tflite", "tensorflow interpreter", (), id="tflite"),
]


@pytest.mark.parametrize("folder, suffix, framework, form, slow_args", FORMATS)
def test_each_format_passes_its_a_a_pair_and_fails_its_slow_model(tmp_path, folder, suffix, framework, form, slow_args):
    path = tmp_path / "aa.json"
    same = gate(folder / f"mlp_reference{suffix}", folder / f"mlp_aa{suffix}", "--json", str(path))
    assert same.returncode == 0, same.stderr
    assert f"({form}) on cpu" in same.stdout
    report = json.loads(path.read_text())
    # never a failure; on a busy machine the p95 may stay undecided for the whole time budget
    assert report["verdict"] in ("pass", "inconclusive"), report["reason"]
    if report["verdict"] == "pass":
        assert "PASS: all 3 checks within budget" in same.stdout
    else:
        assert report["run"]["stopped_because"] == "time budget"
    assert report["compared"]["reference"]["backend"]["framework"] == framework
    assert report["compared"]["reference"]["inputs"][0]["input"] == "features"

    slower = gate(folder / f"mlp_reference{suffix}", folder / f"mlp_slow{suffix}", *slow_args)
    assert slower.returncode == 1, slower.stderr
    assert "FAIL: latency.p" in slower.stdout


def test_torchscript_against_onnx_of_the_same_network():
    result = gate(TORCH / "mlp_reference.pt", FIXTURES / "mlp_reference.onnx", "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["compared"]["reference"]["backend"]["framework"] == "torch"
    assert report["compared"]["candidate"]["backend"]["framework"] == "onnxruntime"
    assert report["verdict"] in ("pass", "fail", "inconclusive")  # whichever runtime is faster here
    assert all(check["ci"] is not None for check in report["checks"] if check["metric"].startswith("latency"))


def test_keras_against_its_tflite_int8_conversion():
    # "did quantization pay off?": the candidate must be at least 10 % faster
    result = gate(TF / "mlp_reference.keras", TF / "mlp_reference_int8.tflite", "--max-latency-increase", "-10%")
    assert result.returncode == 0, result.stderr
    assert "tflite" in result.stdout and "(keras)" in result.stdout
    assert "PASS: all 3 checks within budget" in result.stdout


def test_a_python_factory_runs_only_when_asked_for(tmp_path):
    factory = "fixture_factories:reference_mlp"
    asked = gate(factory, TORCH / "mlp_reference.pt", "--reference-backend", "torch")
    assert asked.returncode == 0, asked.stderr
    assert "(factory) on cpu" in asked.stdout
    unasked = gate(factory, TORCH / "mlp_reference.pt")
    assert unasked.returncode == 2
    assert "looks like a Python factory" in unasked.stderr and "--reference-backend torch" in unasked.stderr
    broken = gate("fixture_factories:not_a_module", TORCH / "mlp_reference.pt", "--reference-backend", "torch")
    assert broken.returncode == 3 and "not a torch.nn.Module" in broken.stderr


@pytest.mark.parametrize("content", ["module", "state_dict"])
def test_a_pickled_module_or_state_dict_is_refused_not_unpickled(tmp_path, content):
    module = torch.nn.Linear(16, 8)
    pickled = tmp_path / "model.pt"
    torch.save(module if content == "module" else module.state_dict(), pickled)
    result = gate(pickled, TORCH / "mlp_reference.pt")
    assert result.returncode == 3
    assert "written by torch.save" in result.stderr and "does not unpickle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_savedmodel_signatures_and_directories(tmp_path):
    wrong = gate(TF / "mlp_reference.savedmodel", TF / "mlp_aa.savedmodel", "--signature", "predict")
    assert wrong.returncode == 2
    assert "has no signature 'predict'; it has serving_default" in wrong.stderr
    (tmp_path / "empty_dir").mkdir()
    not_saved = gate(tmp_path / "empty_dir", TF / "mlp_aa.savedmodel")
    assert not_saved.returncode == 2 and "without saved_model.pb" in not_saved.stderr


@pytest.mark.skipif(has_gpu(), reason="checks the errors of machines without a GPU")
@pytest.mark.parametrize(
    "model, code, message",
    [
        (FIXTURES / "mlp_reference.onnx", 3, "has no CUDAExecutionProvider"),
        (TORCH / "mlp_reference.pt", 3, "is a CPU-only build"),
        (TF / "mlp_reference.keras", 3, "sees no GPU for cuda"),
        (TF / "mlp_reference.tflite", 2, "runs on the CPU only"),
    ],
)
def test_asking_for_cuda_where_there_is_none_never_falls_back(model, code, message):
    result = gate(model, model, "--device", "cuda")
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "pip install" in result.stderr or code == 2
    assert "Traceback" not in result.stderr


def test_device_options_are_checked():
    bad = gate(FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_aa.onnx", "--device", "gpu0")
    assert bad.returncode == 2 and "expected cpu, cuda or cuda:N" in bad.stderr
    transfers = gate(FIXTURES / "mlp_reference.onnx", FIXTURES / "mlp_aa.onnx", "--include-transfers")
    assert transfers.returncode == 2 and "needs --device cuda" in transfers.stderr
