"""TensorFlow: SavedModel directories and .keras files.

* A SavedModel directory (one that holds saved_model.pb) runs one of its signatures,
  ``serving_default`` unless ``--signature`` names another; input names, dtypes and
  shapes come from the signature.
* A ``.keras`` file is loaded with ``keras.models.load_model(..., safe_mode=True)``
  (no arbitrary Python from the file) and traced once into a concrete function with a
  fixed input signature (dynamic dims stay dynamic); the timed calls run that graph
  (calling the tf.function instead would add ~70 us of dispatch per call).

On the CPU, GPUs are hidden from TensorFlow, so a "cpu" comparison cannot drift onto a
GPU. On a GPU, memory growth is switched on first (TensorFlow otherwise takes nearly all
of the GPU's memory), the inputs are placed on the device before timing, and the timed
call ends with tf.test.experimental.sync_devices(), so the clock stops when the work is
done, not when it is queued; with include_transfers the inputs are converted from host
arrays and the outputs copied back (`.numpy()`) inside the timed call.

Outputs, for comparing the two models' answers, are the base Backend's: a signature's
dict of tensors by its keys, a Keras model's tensor (or list) by position, each copied
to the host with ``.numpy()``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from perfgate.backends import is_saved_model
from perfgate.backends.base import Backend, BackendInfo
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, first_line
from perfgate.tensors import TensorSpec

DEFAULT_SIGNATURE = "serving_default"


def import_tensorflow(options: Any) -> Any:
    """TensorFlow, configured for this worker before it runs anything: quiet logs, the
    thread counts, and the device (GPUs hidden on the CPU; memory growth on a GPU)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialized in this process; a fresh worker never is
        pass
    gpus = tf.config.list_physical_devices("GPU")
    if not options.on_gpu:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # as above: only where TF was initialized before the worker asked
            pass
        return tf
    if not gpus:
        cuda = tf.sysconfig.get_build_info().get("cuda_version")
        hint = (
            "this TensorFlow build has no CUDA support (tensorflow-cpu?): pip install 'tensorflow[and-cuda]'"
            if not cuda
            else f"TensorFlow (built for CUDA {cuda}) found no usable GPU: check the driver and CUDA libraries"
        )
        raise BackendUnavailableError(f"tensorflow {tf.__version__} sees no GPU for {options.device}; {hint}")
    if options.device_index >= len(gpus):
        raise BackendUnavailableError(f"{options.device} asked for, but tensorflow sees {len(gpus)} GPU(s)")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.set_visible_devices(gpus[options.device_index], "GPU")
    return tf


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def setup(self) -> None:
        self._tf = import_tensorflow(self.options)
        self._placement = "/GPU:0" if self.options.on_gpu else "/CPU:0"  # the one visible GPU

    def load(self, path: str) -> None:
        tf = self._tf
        if is_saved_model(path):
            self._load_saved_model(tf, path)
        elif Path(path).suffix.lower() == ".keras":
            self._load_keras(tf, path)
        elif not Path(path).exists():
            raise ModelLoadError(f"cannot load model {path!r}: no such file or directory")
        else:
            raise ModelLoadError(f"cannot load model {path!r}: not a SavedModel directory or a .keras file")

    def _load_saved_model(self, tf: Any, path: str) -> None:
        try:
            loaded = tf.saved_model.load(path)
        except Exception as exc:
            raise ModelLoadError(f"cannot load SavedModel {path!r}: {first_line(exc)}") from exc
        name = self.options.signature or DEFAULT_SIGNATURE
        if name not in loaded.signatures:
            raise UsageError(f"SavedModel {path!r} has no signature {name!r}; it has {', '.join(loaded.signatures) or 'none'} (--signature)")
        function = loaded.signatures[name]
        _, keyword_specs = function.structured_input_signature
        self._inputs = tuple(_spec(key, value) for key, value in keyword_specs.items())
        self._names = [spec.name for spec in self._inputs]
        self._loaded = loaded  # keeps the function's variables alive
        self._call = lambda tensors: function(**dict(zip(self._names, tensors)))
        self._format = f"saved_model:{name}"

    def _load_keras(self, tf: Any, path: str) -> None:
        import keras

        # a .keras file is a zip archive; keras says "File not found" of one it cannot open
        # as a zip (a truncated or corrupt file), though the file is there
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(
                f"cannot load model {path!r}: not a valid Keras file (not a zip archive: truncated, corrupt, or another format)"
            )
        try:
            model = keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            reason = first_line(exc)
            if "safe_mode" in reason:  # keras's advice (safe_mode=False) is not one perfgate takes
                raise ModelLoadError(
                    f"cannot load model {path!r} with keras: {reason.partition('. ')[0]}; perfgate loads .keras "
                    f"files in safe mode, which runs no Python code stored in the file: build the model without "
                    f"it, or export it as a SavedModel (model.export(...))"
                ) from exc
            raise ModelLoadError(f"cannot load model {path!r} with keras: {reason}") from exc
        self._inputs = tuple(
            TensorSpec(_keras_name(tensor), str(np.dtype(tensor.dtype)), tuple(tensor.shape)) for tensor in model.inputs
        )
        self._names = [spec.name for spec in self._inputs]
        signature = [tf.TensorSpec(spec.shape, spec.dtype, name=spec.name) for spec in self._inputs]
        single = len(signature) == 1

        @tf.function(input_signature=signature)
        def call(*tensors: Any) -> Any:
            return model(tensors[0] if single else list(tensors), training=False)

        with tf.device(self._placement):
            concrete = call.get_concrete_function()
        self._model = model
        self._call = lambda tensors: concrete(*tensors)
        self._format = "keras"

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def prepare(self, feed: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        arrays = tuple(np.ascontiguousarray(feed[name]) for name in self._names)
        if self.options.include_transfers and self.options.on_gpu:
            return arrays
        with self._tf.device(self._placement):
            tensors = tuple(self._tf.identity(array) for array in arrays)
        self.synchronize()
        return tensors

    def run(self, prepared: tuple[Any, ...]) -> Any:
        if self.options.include_transfers and self.options.on_gpu:
            with self._tf.device(self._placement):
                tensors = tuple(self._tf.convert_to_tensor(array) for array in prepared)
            return self._tf.nest.map_structure(lambda tensor: tensor.numpy(), self._call(tensors))
        # the inputs are on the device already and the graph is placed there: no scope per call
        return self._call(prepared)

    def synchronize(self) -> None:
        if self.options.on_gpu:
            self._tf.test.experimental.sync_devices()

    def reset_peak_memory(self) -> None:
        if self.options.on_gpu:
            self._tf.config.experimental.reset_memory_stats("GPU:0")

    def peak_memory(self) -> dict[str, int]:
        if not self.options.on_gpu:
            return {}
        return {"gpu_peak_allocated_bytes": int(self._tf.config.experimental.get_memory_info("GPU:0")["peak"])}

    def close(self) -> None:
        self._call = None

    def info(self) -> BackendInfo:
        tf = self._tf
        details: dict[str, Any] = {"format": self._format, "inter_op_threads": 1}
        return self._info("tensorflow", tf.__version__, details, gpu=lambda: _cuda_versions(tf))


def _cuda_versions(tf: Any) -> tuple[Any, Any]:
    build = tf.sysconfig.get_build_info()
    return build.get("cuda_version"), build.get("cudnn_version")


def _spec(key: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(key, spec.dtype.as_numpy_dtype.__name__ if spec.dtype.is_numpy_compatible else None, shape)


def _keras_name(tensor: Any) -> str:
    return str(tensor.name).split(":")[0]

