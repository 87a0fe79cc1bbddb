"""ONNX Runtime, on the CPU or on an NVIDIA GPU (CUDAExecutionProvider).

Thread settings are fixed by perfgate and equal for both models: ``threads`` intra-op
threads, one inter-op thread, sequential execution. With more than one intra-op thread
the pool's spin-waiting is switched off: the two workers take turns, and a pool still
spinning after its own block would steal the core from the other model's block.

On a GPU, inputs are copied to the device beforehand and bound with IO binding, and
outputs stay on the device, so the timed call is the model; with include_transfers the
inputs are bound from host memory and the outputs to host memory, so ORT's copies are
timed too. `run_with_iobinding` returns when the outputs are ready. A session that asked
for CUDA and came back without it (a missing cuDNN, a CPU-only build) is an error: ORT
would otherwise fall back to the CPU without a word.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np

from perfgate.backends.base import Backend, BackendInfo
from perfgate.errors import BackendUnavailableError, ColumnMappingError, ModelLoadError, first_line
from perfgate.tensors import TensorSpec

CUDA = "CUDAExecutionProvider"

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def setup(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        if self.options.on_gpu and CUDA not in ort.get_available_providers():
            raise BackendUnavailableError(
                f"onnxruntime {ort.__version__} has no {CUDA} (it has {', '.join(ort.get_available_providers())}): "
                f"pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
            )

    def load(self, path: str) -> None:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.options.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._spinning = self.options.threads == 1
        if not self._spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[Any] = ["CPUExecutionProvider"]
        if self.options.on_gpu:
            providers = [(CUDA, {"device_id": self.options.device_index}), "CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(path, options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/… types, and RuntimeError
            if "INVALID_PROTOBUF" in str(exc):  # ORT's "Protobuf parsing failed", and the path again
                raise ModelLoadError(
                    f"cannot load model {path!r}: not a valid ONNX file (Protobuf parsing failed: truncated, corrupt, "
                    f"or another format)"
                ) from exc
            raise ModelLoadError(f"cannot load model {path!r} with onnxruntime: {first_line(exc)}") from exc
        if self.options.on_gpu and CUDA not in self._session.get_providers():
            raise BackendUnavailableError(
                f"onnxruntime fell back to the CPU for {path!r}: the {CUDA} could not be created "
                f"(are the CUDA and cuDNN libraries onnxruntime-gpu needs installed?); refusing to time the CPU as {self.options.device}"
            )
        self._output_names = [output.name for output in self._session.get_outputs()]
        self._bound = self.options.on_gpu  # read once: run() is inside the timed region
        self._version = ort.__version__

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        specs = []
        for node in self._session.get_inputs():
            dtype = _DTYPES.get(node.type)
            if dtype is None:
                raise ColumnMappingError(f"input {node.name!r} takes {node.type}, which perfgate cannot feed from Parquet")
            shape = None if node.shape is None else tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
            specs.append(TensorSpec(node.name, dtype, shape))
        return tuple(specs)

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        """Host arrays on the CPU; on a GPU the call itself, ``run_with_iobinding`` bound to
        inputs already on the device."""
        if self.options.on_gpu:
            return self._bound_call(feed)
        return {name: np.ascontiguousarray(array) for name, array in feed.items()}

    def run(self, prepared: Any) -> Any:
        # session.run called here, not through a functools.partial made in prepare: the
        # partial measured ~300 ns (1.6 %) slower a call on the 17 us fixture
        if self._bound:
            return prepared()
        return self._session.run(self._output_names, prepared)

    def outputs_to_numpy(self, outputs: Any, prepared: Callable[[], Any]) -> dict[str, np.ndarray]:
        """``session.run``'s list of arrays on the CPU; on a GPU ``run_with_iobinding``
        returns nothing and the outputs are in the call's binding (on the device, or on
        the host with include_transfers): copied to the host here."""
        if self.options.on_gpu:
            outputs = prepared.binding.copy_outputs_to_cpu()
        return {name: np.asarray(value) for name, value in zip(self._output_names, outputs)}

    def _bound_call(self, feed: Mapping[str, np.ndarray]) -> Callable[[], Any]:
        binding = self._session.io_binding()
        index = self.options.device_index
        kept = []
        for name, array in feed.items():
            array = np.ascontiguousarray(array)
            if self.options.include_transfers:
                binding.bind_cpu_input(name, array)
                kept.append(array)
            else:
                value = self._ort.OrtValue.ortvalue_from_numpy(array, "cuda", index)
                binding.bind_ortvalue_input(name, value)
                kept.append(value)
        for name in self._output_names:
            if self.options.include_transfers:
                binding.bind_output(name, "cpu")
            else:
                binding.bind_output(name, "cuda", index)
        call = functools.partial(self._session.run_with_iobinding, binding)
        call.kept = kept  # the bound values must outlive the binding
        call.binding = binding  # where the outputs are, for outputs_to_numpy
        return call

    def close(self) -> None:
        self._session = None

    def info(self) -> BackendInfo:
        details: dict[str, Any] = {
            "providers": list(self._session.get_providers()),
            "intra_op_threads": self.options.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "allow_spinning": self._spinning,
        }
        return self._info("onnxruntime", self._version, details, gpu=lambda: (_cuda_version(self._ort),))


def _cuda_version(ort: Any) -> str | None:
    try:
        from onnxruntime.capi import build_and_package_info as build
    except ImportError:
        return None
    return getattr(build, "cuda_version", None)
