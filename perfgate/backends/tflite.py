"""TensorFlow Lite (.tflite), on the CPU, with tf.lite.Interpreter (or ai_edge_litert's).

Inputs are named by the model's signature (``serving_default`` unless ``--signature``
names another), falling back to the tensor names. TFLite fixes its tensor shapes when it
allocates them, so perfgate resizes the inputs for each input shape it will feed (each
batch size, and each padded length) before timing, one interpreter per shape; beyond
eight shapes the last interpreter resizes itself inside the timed call, as it would in
production. The interpreter uses ``--threads`` threads.

The timed call copies the inputs into the interpreter (set_tensor) and runs it (invoke);
outputs stay in the interpreter (read with get_tensor, outside timing, to compare the
models' answers; a quantized integer output is dequantized). A quantized integer input (int8/uint8 with a scale) is
fed float columns quantized with the model's own scale and zero point, before timing.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from perfgate.backends.base import Backend, BackendInfo
from perfgate.errors import ModelLoadError, UsageError, first_line
from perfgate.tensors import TensorSpec

DEFAULT_SIGNATURE = "serving_default"
MAX_INTERPRETERS = 8


class TFLiteBackend(Backend):
    name = "tflite"

    def setup(self) -> None:
        if self.options.on_gpu:
            raise UsageError(f"the tflite backend runs on the CPU only; {self.options.device} is not supported")
        self._interpreter_class, self._runtime = _interpreter_class()

    def load(self, path: str) -> None:
        if not Path(path).is_file():
            raise ModelLoadError(f"cannot load model {path!r}: no such file")
        try:
            check_flatbuffer(path)
        except _Malformed as exc:
            raise ModelLoadError(f"cannot load model {path!r}: not a valid TFLite file ({exc})") from None
        self._path = path
        first = self._new_interpreter()
        self._interpreters: dict[tuple, Any] = {}
        self._details = self._input_details(first)
        self._output_details = self._outputs_of(first)
        self._inputs = tuple(
            TensorSpec(name, _logical_dtype(detail), tuple(None if d < 0 else int(d) for d in detail["shape_signature"]))
            for name, detail in self._details.items()
        )
        self._spare = first
        self._resizer: _ResizingInterpreter | None = None

    def _new_interpreter(self) -> Any:
        try:
            return self._interpreter_class(model_path=self._path, num_threads=self.options.threads)
        except Exception as exc:
            raise ModelLoadError(f"cannot load model {self._path!r} with {self._runtime}: {first_line(exc)}") from exc

    def _input_details(self, interpreter: Any) -> dict[str, dict]:
        key = self._signature(interpreter)
        if key is not None:
            return dict(interpreter.get_signature_runner(key).get_input_details())
        return {detail["name"].split(":")[0]: detail for detail in interpreter.get_input_details()}

    def _outputs_of(self, interpreter: Any) -> dict[str, dict]:
        key = self._signature(interpreter)
        if key is not None:
            return dict(interpreter.get_signature_runner(key).get_output_details())
        return {detail["name"].split(":")[0]: detail for detail in interpreter.get_output_details()}

    def _signature(self, interpreter: Any) -> str | None:
        """The signature that names the tensors, or None where the model has none."""
        signatures = interpreter.get_signature_list()
        if not signatures:
            return None
        key = self.options.signature or (DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else next(iter(signatures)))
        if key not in signatures:
            raise UsageError(f"{self._path!r} has no signature {key!r}; it has {', '.join(signatures)} (--signature)")
        return key

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def prepare(self, feed: Mapping[str, np.ndarray]) -> tuple[Any, list[tuple[int, np.ndarray]]]:
        arrays = {name: _quantized(feed[name], detail) for name, detail in self._details.items()}
        shapes = tuple((name, array.shape) for name, array in arrays.items())
        interpreter = self._interpreters.get(shapes)
        if interpreter is None:
            if len(self._interpreters) < MAX_INTERPRETERS:
                interpreter = self._spare if self._spare is not None else self._new_interpreter()
                self._spare = None
                for name, array in arrays.items():
                    interpreter.resize_tensor_input(self._details[name]["index"], list(array.shape), strict=False)
                interpreter.allocate_tensors()
                self._interpreters[shapes] = interpreter
            else:
                return self._resizing(), [(self._details[name]["index"], array) for name, array in arrays.items()]
        return interpreter, [(self._details[name]["index"], array) for name, array in arrays.items()]

    def run(self, prepared: tuple[Any, list[tuple[int, np.ndarray]]]) -> Any:
        interpreter, tensors = prepared
        for index, array in tensors:
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        return interpreter

    def outputs_to_numpy(self, outputs: Any, prepared: Any) -> dict[str, np.ndarray]:
        """``run`` returns the interpreter, which holds the outputs; a quantized integer
        output is dequantized with its scale and zero point, so it compares as numbers."""
        return {name: _dequantized(outputs.get_tensor(detail["index"]), detail) for name, detail in self._output_details.items()}

    def _resizing(self) -> Any:
        """The one interpreter for shapes beyond MAX_INTERPRETERS: it resizes when called."""
        if self._resizer is None:
            self._resizer = _ResizingInterpreter(self._new_interpreter())
        return self._resizer

    def close(self) -> None:
        self._interpreters = {}
        self._spare = None
        self._resizer = None

    def info(self) -> BackendInfo:
        return self._info(
            "tflite",
            _runtime_version(self._runtime),
            {
                "format": f"{self._runtime} interpreter",
                "interpreters": len(self._interpreters),
                "quantized_inputs": [name for name, detail in self._details.items() if _scale(detail)],
            },
        )


class _ResizingInterpreter:
    """Wraps an interpreter so that set_tensor resizes it first when the shape changed."""

    def __init__(self, interpreter: Any) -> None:
        self._interpreter = interpreter
        self._shapes: dict[int, tuple] = {}

    def set_tensor(self, index: int, array: np.ndarray) -> None:
        if self._shapes.get(index) != array.shape:
            self._interpreter.resize_tensor_input(index, list(array.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._shapes[index] = array.shape
        self._interpreter.set_tensor(index, array)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def get_tensor(self, index: int) -> np.ndarray:
        return self._interpreter.get_tensor(index)


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    import tensorflow as tf

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
    return tf.lite.Interpreter, "tensorflow"


def _runtime_version(runtime: str) -> str:
    from importlib import metadata

    for distribution in ((runtime,) if runtime != "tensorflow" else ("tensorflow", "tensorflow-cpu")):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _scale(detail: Mapping[str, Any]) -> float:
    scale, _ = detail.get("quantization", (0.0, 0))
    return float(scale)


def _logical_dtype(detail: Mapping[str, Any]) -> str:
    """What perfgate feeds: float32 for a quantized integer input (it quantizes), else the tensor's dtype."""
    dtype = np.dtype(detail["dtype"])
    return "float32" if dtype.kind in "iu" and _scale(detail) else dtype.name


def _quantized(array: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale = _scale(detail)
    if not (dtype.kind in "iu" and scale):
        return np.ascontiguousarray(array, dtype=dtype)
    _, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(dtype)



def _dequantized(array: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    scale = _scale(detail)
    if not (np.dtype(detail["dtype"]).kind in "iu" and scale):
        return array
    _, zero_point = detail["quantization"]
    return (array.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


# --- the file's structure, checked before the interpreter reads it --------------------------
# tf.lite.Interpreter does not verify the flatbuffer: a truncated .tflite (half of the
# fixture's bytes) crashes the worker with SIGSEGV. So every offset the interpreter follows
# at load (the model's vectors, its buffers, each subgraph's tensors and operators) is
# checked to lie inside the file first; every truncation of the fixtures is caught this way.
# Field numbers are those of tensorflow/lite/schema/schema.fbs.
_MODEL_TABLE_VECTORS = (1, 2, 4, 6, 7)  # operator_codes, subgraphs, buffers, metadata, signature_defs
_MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA_BUFFER = 2, 4, 5


class _Malformed(Exception):
    pass


def check_flatbuffer(path: str) -> None:
    """_Malformed (saying what is wrong) unless ``path`` holds a whole TFLite flatbuffer."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size < 8:
            raise _Malformed("truncated: shorter than a flatbuffer's header")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[4:8] != b"TFL3":
                raise _Malformed("no TFL3 identifier at byte 4: not a TFLite model, or corrupt")
            _Flatbuffer(data).check_model()


class _Flatbuffer:
    def __init__(self, data: Any) -> None:
        self.data, self.size = data, len(data)

    def check_model(self) -> None:
        model = self.fields(self.reference(0))
        for index in _MODEL_TABLE_VECTORS:
            for table in self.tables(model(index)):
                fields = self.fields(table)
                if index == _MODEL_BUFFERS:
                    self.check_buffer(fields)
                elif index == _MODEL_SUBGRAPHS:
                    self.check_subgraph(fields)
        self.vector(model(_MODEL_METADATA_BUFFER), 4)

    def check_buffer(self, buffer: Any) -> None:
        self.vector(buffer(0), 1)  # data, inside the flatbuffer
        if buffer(1) is not None and buffer(2) is not None:  # offset and size, after it (models over 2 GB)
            offset, size = self.unpack("<Q", buffer(1)), self.unpack("<Q", buffer(2))
            if offset > 1 and offset + size > self.size:
                raise _Malformed(f"truncated: a buffer ends at byte {offset + size}, the file at {self.size}")

    def check_subgraph(self, subgraph: Any) -> None:
        self.vector(subgraph(1), 4)  # inputs
        self.vector(subgraph(2), 4)  # outputs
        for tensor in self.tables(subgraph(0)):
            self.vector(self.fields(tensor)(0), 4)  # shape
        for operator in self.tables(subgraph(3)):
            fields = self.fields(operator)
            self.vector(fields(1), 4)  # inputs
            self.vector(fields(2), 4)  # outputs

    def unpack(self, form: str, at: int) -> int:
        if at < 0 or at + struct.calcsize(form) > self.size:
            raise _Malformed(f"truncated or corrupt: an offset points to byte {at}, past the end at {self.size}")
        return struct.unpack_from(form, self.data, at)[0]

    def reference(self, at: int) -> int:
        return at + self.unpack("<I", at)

    def fields(self, table: int) -> Any:
        """The function from a field's number to where its value is (None: absent)."""
        vtable = table - self.unpack("<i", table)
        vtable_size = self.unpack("<H", vtable)
        self.unpack(f"<{max(vtable_size, 2)}s", vtable)

        def where(index: int) -> int | None:
            slot = 4 + 2 * index
            offset = self.unpack("<H", vtable + slot) if slot + 2 <= vtable_size else 0
            return table + offset if offset else None

        return where

    def vector(self, at: int | None, item_size: int) -> tuple[int, int]:
        """(where the items begin, how many), checked to lie inside the file."""
        if at is None:
            return 0, 0
        start = self.reference(at)
        length = self.unpack("<I", start)
        if start + 4 + length * item_size > self.size:
            raise _Malformed(f"truncated: a vector ends at byte {start + 4 + length * item_size}, the file at {self.size}")
        return start + 4, length

    def tables(self, at: int | None) -> list[int]:
        first, length = self.vector(at, 4)
        return [self.reference(first + 4 * i) for i in range(length)]
