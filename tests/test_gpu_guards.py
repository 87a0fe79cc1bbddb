""""No silent fall-back" on machines without a GPU: the backends' own checks, each made
to meet the situation it guards against (a CUDA provider that does not come up, a CUDA
build that sees no GPU)."""

import pytest

from conftest import FIXTURES
from perfgate.backends.base import BackendOptions
from perfgate.errors import BackendUnavailableError

CUDA = BackendOptions(device="cuda:0")


def test_onnxruntime_refuses_a_session_that_fell_back_to_the_cpu(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from perfgate.backends.onnxruntime import OnnxRuntimeBackend

    real_session = ort.InferenceSession

    def cpu_only_session(path, options, providers):
        # what ORT does when the CUDA provider cannot be created: a CPU session, no error
        return real_session(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", cpu_only_session)
    backend = OnnxRuntimeBackend(CUDA)
    backend.setup()
    with pytest.raises(BackendUnavailableError, match="fell back to the CPU") as info:
        backend.load(str(FIXTURES / "mlp_reference.onnx"))
    assert "refusing to time the CPU as cuda:0" in info.value.message


def test_onnxruntime_without_the_cuda_provider_says_what_to_install():
    pytest.importorskip("onnxruntime")
    from perfgate.backends.onnxruntime import OnnxRuntimeBackend

    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime-gpu"):
        OnnxRuntimeBackend(CUDA).setup()


def test_torch_with_cuda_but_no_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    from perfgate.backends.torch import TorchBackend

    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=r"\(CUDA 12.4\) sees no GPU"):
        TorchBackend(CUDA)._check_device(torch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(BackendUnavailableError, match="cuda:3 asked for, but torch sees 1 GPU"):
        TorchBackend(BackendOptions(device="cuda:3"))._check_device(torch)


def test_tensorflow_built_for_cuda_without_a_gpu(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    from perfgate.backends.tensorflow import import_tensorflow

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"cuda_version": "12.3"})
    with pytest.raises(BackendUnavailableError, match=r"built for CUDA 12.3\) found no usable GPU"):
        import_tensorflow(CUDA)
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {})
    with pytest.raises(BackendUnavailableError, match=r"pip install 'tensorflow\[and-cuda\]'"):
        import_tensorflow(CUDA)
