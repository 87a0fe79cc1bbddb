"""ONNX Runtime on the CPU.

Thread settings are fixed by perfgate and equal for both models: ``threads`` intra-op
threads, one inter-op thread, sequential execution. With more than one intra-op thread
the pool's spin-waiting is switched off: the two workers take turns, and a pool still
spinning after its own block would steal the core from the other model's block.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from perfgate.backends.base import Backend, BackendInfo
from perfgate.errors import ColumnMappingError, ModelLoadError, UsageError
from perfgate.tensors import TensorSpec

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

    def load(self, path: str) -> None:
        import onnxruntime as ort

        if self.options.device != "cpu":
            raise UsageError(f"the onnxruntime backend runs on the CPU only; device {self.options.device!r} is not supported")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.options.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._spinning = self.options.threads == 1
        if not self._spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/… types, and RuntimeError
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"cannot load model {path!r} with onnxruntime: {first_line}") from exc
        self._output_names = [output.name for output in self._session.get_outputs()]
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

    def prepare(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(array) for name, array in feed.items()}

    def run(self, prepared: dict[str, np.ndarray]) -> Any:
        return self._session.run(self._output_names, prepared)

    def close(self) -> None:
        self._session = None

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name,
            framework="onnxruntime",
            framework_version=self._version,
            device="cpu",
            threads=self.options.threads,
            details={
                "providers": list(self._session.get_providers()),
                "intra_op_threads": self.options.threads,
                "inter_op_threads": 1,
                "execution_mode": "sequential",
                "allow_spinning": self._spinning,
            },
        )
