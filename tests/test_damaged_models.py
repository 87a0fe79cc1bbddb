"""A model file that is there but damaged (truncated, random bytes, empty) is one line:
"cannot load model 'PATH': not a valid FORMAT file (...)", exit 3, for every format;
never "File not found" of a file that exists, nor a worker killed by SIGSEGV."""

import os

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from perfgate.backends import require_model
from perfgate.backends.base import BackendOptions
from perfgate.errors import ModelLoadError
from perfgate.worker.core import WorkerCore
from perfgate.worker.protocol import LoadRequest

DATA = str(FIXTURES / "features.parquet")
QUICK = ("--input", "features=f*", "--rows", "200", "--cold-starts", "0", "--time-budget", "2", "-q")
SOURCES = {  # format: (fixture, backend, framework, what the message calls it)
    "onnx": (FIXTURES / "mlp_aa.onnx", "onnxruntime", "onnxruntime", "ONNX"),
    "keras": (FIXTURES / "tensorflow" / "mlp_aa.keras", "tensorflow", "tensorflow", "Keras"),
    "pt": (FIXTURES / "torch" / "mlp_aa.pt", "torch", "torch", "TorchScript"),
    "pt2": (FIXTURES / "torch" / "mlp_aa.pt2", "torch", "torch", "torch.export"),
    "tflite": (FIXTURES / "tensorflow" / "mlp_aa.tflite", "tflite", "tensorflow", "TFLite"),
}


def damaged(tmp_path, suffix, how):
    source = SOURCES[suffix][0].read_bytes()
    contents = {"truncated": source[: len(source) // 2], "garbage": os.urandom(3000), "empty": b""}[how]
    path = tmp_path / f"{how}.{suffix}"
    path.write_bytes(contents)
    return path


def load(path, backend):
    core = WorkerCore()
    try:
        return core.load(LoadRequest(backend, str(path), BackendOptions("cpu", 1, False, None), ()))
    finally:
        core.close()


@pytest.mark.parametrize("how", ["truncated", "garbage"])
@pytest.mark.parametrize("suffix", ["onnx", "keras", "pt", "pt2"])
def test_a_damaged_model_file_is_not_a_valid_file_of_its_format(tmp_path, suffix, how):
    _, backend, framework, kind = SOURCES[suffix]
    pytest.importorskip(framework)
    path = damaged(tmp_path, suffix, how)
    with pytest.raises(ModelLoadError) as raised:
        load(path, backend)
    assert str(raised.value).startswith(f"cannot load model {str(path)!r}: not a valid {kind} file (")
    assert "File not found" not in str(raised.value)


@pytest.mark.parametrize("suffix", sorted(SOURCES))
def test_an_empty_model_file_is_said_to_be_empty_before_any_worker_starts(tmp_path, suffix):
    path = damaged(tmp_path, suffix, "empty")
    with pytest.raises(ModelLoadError, match=r"candidate: cannot load model '.*empty\.\w+': the file is empty \(0 bytes\)"):
        require_model(str(path), None, "candidate")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_tflite_file_is_refused_before_the_interpreter_reads_it(tmp_path, how):
    """A truncated .tflite crashed the worker (SIGSEGV): tf.lite.Interpreter does not verify
    the flatbuffer; perfgate checks its offsets first."""
    pytest.importorskip("tensorflow")
    path = damaged(tmp_path, "tflite", how)
    result = run_cli("compare", "-r", str(SOURCES["tflite"][0]), "-c", str(path), "-d", DATA, *QUICK)
    assert_one_line_error(result, 3, f"cannot load model {str(path)!r}: not a valid TFLite file (")
    assert "SIGSEGV" not in result.stderr


def test_every_truncation_of_the_tflite_fixtures_is_caught(tmp_path):
    from perfgate.backends.tflite import _Malformed, check_flatbuffer

    for fixture in sorted((FIXTURES / "tensorflow").glob("*.tflite")):
        whole = fixture.read_bytes()
        check_flatbuffer(str(fixture))  # the whole file passes
        cut = tmp_path / "cut.tflite"
        for length in range(0, len(whole), max(1, len(whole) // 97)):
            cut.write_bytes(whole[:length])
            with pytest.raises(_Malformed):
                check_flatbuffer(str(cut))


def test_a_truncated_keras_file_is_not_file_not_found_on_the_command_line(tmp_path):
    pytest.importorskip("tensorflow")
    path = damaged(tmp_path, "keras", "truncated")
    result = run_cli("compare", "-r", str(SOURCES["keras"][0]), "-c", str(path), "-d", DATA, *QUICK)
    assert_one_line_error(result, 3, f"cannot load model {str(path)!r}: not a valid Keras file (not a zip archive")
