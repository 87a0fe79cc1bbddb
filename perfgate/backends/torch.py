"""PyTorch: TorchScript archives, torch.export programs, and Python factories.

* ``model.pt`` (also .pth, .ts, .torchscript, .jit): a TorchScript archive (torch.jit.save),
  loaded with torch.jit.load. An archive written by torch.save (a pickled module or a
  state dict) is refused, not unpickled: unpickling runs arbitrary code. It is only
  looked into with torch.load(weights_only=True), which unpickles nothing but tensors, to
  say which of the two it is.
* ``model.pt2``: a torch.export program (torch.export.save), loaded with torch.export.load
  with every torch.load inside it held to weights_only (TORCH_FORCE_WEIGHTS_ONLY_LOAD);
  an archive with pickled Python objects or AOTInductor's compiled code is refused.
* ``package.module:function``, only with ``--reference-backend torch`` or
  ``--candidate-backend torch``: imports the module and calls the function, which must
  return an ``nn.Module``. This runs your code, which is why it must be asked for.

Inputs are named after the arguments of ``forward`` (the TorchScript schema, the export
signature or the Python signature), so columns map by name as for ONNX; TorchScript and
factories declare no dtypes, so float columns are fed as the model's parameter dtype.
The model runs in eval mode under torch.inference_mode. On a GPU the model and the
inputs are on the device before timing and the timed call ends with
torch.cuda.synchronize; with include_transfers the inputs are copied to the device and
the outputs back inside the timed call.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from perfgate.backends import looks_like_factory
from perfgate.backends.base import Backend, BackendInfo, BackendOptions, named_arrays
from perfgate.errors import BackendUnavailableError, ModelLoadError, first_line
from perfgate.tensors import TensorSpec

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
EXPORT_SUFFIXES = (".pt2",)
INTERPRETER_FAILED = "The following operation failed in the TorchScript interpreter."
# what a torch.export archive may hold that loading it would run: pickled Python objects
# (unpickled with pickle.loads) and AOTInductor's compiled shared libraries
NOT_A_ZIP = "not a zip archive: truncated, corrupt, or another format"  # what zipfile.is_zipfile's False means here
UNSAFE_PT2_ENTRIES = {"data/constants/opaque_obj_": "pickled Python objects", "data/aotinductor/": "compiled native code (AOTInductor)"}


class TorchScriptError(RuntimeError):
    """A TorchScript model's own exception, told by its last line: the interpreter's first
    line says only that something failed."""


class TorchBackend(Backend):
    name = "torch"

    def setup(self) -> None:
        import torch

        self._torch = torch
        set_threads(torch, self.options.threads)
        self._device = self._check_device(torch)

    def load(self, path: str) -> None:
        torch = self._torch
        module, self._inputs, self._format = _load_module(torch, path, self._device)
        self._module = module
        self._input_names = [spec.name for spec in self._inputs]
        # inference mode for the life of the worker: the timed call pays no context switch
        self._inference = torch.inference_mode()
        self._inference.__enter__()

    def _check_device(self, torch: Any) -> Any:
        return torch_device(torch, self.options)

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def prepare(self, feed: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        torch = self._torch
        tensors = tuple(torch.from_numpy(np.ascontiguousarray(feed[name])) for name in self._input_names)
        if self.options.on_gpu and not self.options.include_transfers:
            tensors = tuple(tensor.to(self._device) for tensor in tensors)
            torch.cuda.synchronize(self._device)
        return tensors

    def run(self, prepared: tuple[Any, ...]) -> Any:
        try:  # free while nothing is raised (zero-cost exceptions), so the timed call pays nothing
            if self.options.include_transfers and self.options.on_gpu:
                outputs = self._module(*(tensor.to(self._device) for tensor in prepared))
                return _to_host(self._torch, outputs)
            return self._module(*prepared)
        except Exception as exc:  # torch.jit.Error is no RuntimeError
            if str(exc).startswith(INTERPRETER_FAILED):
                raise TorchScriptError(_last_line(exc)) from exc
            raise

    def synchronize(self) -> None:
        if self.options.on_gpu:
            self._torch.cuda.synchronize(self._device)

    def outputs_to_numpy(self, outputs: Any, prepared: tuple[Any, ...]) -> dict[str, np.ndarray]:
        return named_arrays(outputs, self._host_array)

    def _host_array(self, value: Any) -> np.ndarray:
        torch = self._torch
        if not isinstance(value, torch.Tensor):
            return np.asarray(value)
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds every value
            value = value.float()
        return value.numpy()

    def reset_peak_memory(self) -> None:
        reset_gpu_peak(self._torch, self.options, self._device)

    def peak_memory(self) -> dict[str, int]:
        return gpu_peak(self._torch, self.options, self._device)

    def close(self) -> None:
        self._inference.__exit__(None, None, None)
        self._module = None

    def info(self) -> BackendInfo:
        torch = self._torch
        details: dict[str, Any] = {"format": self._format, "interop_threads": torch.get_num_interop_threads()}
        if self._format == "torch.export" and _no_weights_only_asked():
            details["weights_only_kept"] = f"{NO_WEIGHTS_ONLY} was set aside while loading: perfgate loads .pt2 weights only"
        # str(): torch's own version type is a class of torch, and unpickling the reply would
        # import torch in the parent (2 s; an error where the parent has no torch)
        return self._info("torch", str(torch.__version__), details, threads=torch.get_num_threads(), gpu=self._gpu_facts)

    def _gpu_facts(self) -> tuple[Any, ...]:
        torch = self._torch
        return torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(self._device)



def reset_gpu_peak(torch: Any, options: BackendOptions, device: Any) -> None:
    if options.on_gpu:
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak(torch: Any, options: BackendOptions, device: Any) -> dict[str, int]:
    """The device's high-water marks since the last reset (none on the CPU)."""
    if not options.on_gpu:
        return {}
    return {
        "gpu_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
        "gpu_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
    }


def set_threads(torch: Any, threads: int) -> None:
    """``threads`` intra-op threads and one inter-op thread (the timed calls are sequential)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process: harmless
        pass


def torch_device(torch: Any, options: BackendOptions) -> Any:
    """The torch device the options name; BackendUnavailableError, with what to install or
    check, where this torch cannot serve it."""
    if not options.on_gpu:
        return torch.device("cpu")
    if torch.version.cuda is None:
        raise BackendUnavailableError(
            f"torch {torch.__version__} is a CPU-only build, so it cannot run on {options.device}: "
            f"install a CUDA build, e.g. pip install torch --index-url https://download.pytorch.org/whl/cu124"
        )
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: "
            f"is the NVIDIA driver installed, and CUDA_VISIBLE_DEVICES not empty?"
        )
    index = options.device_index
    if index >= torch.cuda.device_count():
        raise BackendUnavailableError(
            f"{options.device} asked for, but torch sees {torch.cuda.device_count()} GPU(s)"
        )
    return torch.device("cuda", index)


def _load_module(torch: Any, path: str, device: Any) -> tuple[Any, tuple[TensorSpec, ...], str]:
    if looks_like_factory(path):
        return _from_factory(torch, path, device)
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"cannot load model {path!r}: no such file")
    if file.suffix.lower() in EXPORT_SUFFIXES:
        return _from_export(torch, path, device)
    kind = _archive_kind(file)
    if kind == "torchscript":
        try:
            module = torch.jit.load(path, map_location=device)
        except Exception as exc:
            raise ModelLoadError(f"cannot load model {path!r} with torch.jit.load: {first_line(exc)}") from exc
        module.eval()
        arguments = module.forward.schema.arguments[1:]  # the first is the module itself
        float_dtype = _float_dtype(module)
        return module, tuple(TensorSpec(a.name, None, None, float_dtype) for a in arguments), "torchscript"
    if kind == "pickle":
        raise ModelLoadError(
            f"{path!r} was written by torch.save ({_pickled_what(torch, path)}); perfgate does not unpickle "
            f"models, as unpickling runs whatever code the file names. Save it with torch.jit.save or "
            f"torch.export.save, or pass a factory package.module:function with --reference-backend/--candidate-backend torch"
        )
    if kind == "unknown":
        raise ModelLoadError(f"cannot load model {path!r}: not a valid TorchScript file ({NOT_A_ZIP})")
    raise ModelLoadError(f"cannot load model {path!r}: not a TorchScript archive or a torch.export program")


def _pickled_what(torch: Any, path: str) -> str:
    """'a state dict' or 'a pickled nn.Module', told apart by the loader that refuses
    anything but tensors and plain containers."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return "a pickled nn.Module or other Python objects"
    return "a state dict: weights without the model's code"


def _archive_kind(file: Path) -> str:
    if not zipfile.is_zipfile(file):
        return "unknown"
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
    if any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names):
        return "torchscript"
    if any(name.endswith("/data.pkl") for name in names):
        return "pickle"
    return "unknown"


def _from_export(torch: Any, path: str, device: Any) -> tuple[Any, tuple[TensorSpec, ...], str]:
    _refuse_unsafe_archive(Path(path))
    with _torch_log() as logged, _weights_only():
        try:
            program = torch.export.load(path)
        except pickle.UnpicklingError as exc:
            raise ModelLoadError(
                f"cannot load model {path!r}: it holds pickled Python objects, which perfgate does not unpickle "
                f"(they can run any code); export the model again without them"
            ) from exc
        except Exception as exc:
            # torch logs the real cause and raises "check the warnings above": quote the cause
            cause = next((record.exc_info[1] for record in logged if record.exc_info), None)
            reason = f"{type(cause).__name__}: {_sentence(first_line(cause))}" if cause is not None else first_line(exc)
            raise ModelLoadError(f"cannot load model {path!r} with torch.export.load: {reason}") from (cause or exc)
    user_inputs = list(program.graph_signature.user_inputs)
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta.get("val")
            if value is None or not hasattr(value, "shape"):
                specs.append(TensorSpec(node.name, None, None))
                continue
            shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
            specs.append(TensorSpec(node.name, _numpy_dtype(value.dtype), shape))
    module = program.module().to(device)
    return module, tuple(specs), "torch.export"


def _refuse_unsafe_archive(file: Path) -> None:
    if _archive_kind(file) == "torchscript":
        raise ModelLoadError(
            f"cannot load model {str(file)!r}: it is a TorchScript archive (torch.jit.save), not a torch.export "
            f"program; name it .pt"
        )
    if not zipfile.is_zipfile(file):
        raise ModelLoadError(f"cannot load model {str(file)!r}: not a valid torch.export file ({NOT_A_ZIP})")
    with zipfile.ZipFile(file) as archive:
        inner = [name.partition("/")[2] for name in archive.namelist()]  # below the archive's top folder
    for prefix, what in UNSAFE_PT2_ENTRIES.items():
        if any(name.startswith(prefix) for name in inner):
            raise ModelLoadError(
                f"cannot load model {str(file)!r}: the archive holds {what}, which loading would run; "
                f"perfgate loads only plain torch.export programs (torch.export.save)"
            )


# The user's way to ask every torch.load for full unpickling. torch refuses to load at all
# when it and TORCH_FORCE_WEIGHTS_ONLY_LOAD are both set ("Only one of ... should be set"),
# so it is set aside while perfgate loads a .pt2, in the worker only: perfgate keeps
# weights_only there (unpickling runs any code in the file), and says so in the report
# (the backend's details: weights_only_kept).
NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """Every torch.load inside (torch.export.load calls it for weights and constants, falling
    back to full unpickling on its own) unpickles only tensors and plain containers; the
    environment is as it was afterwards."""
    before = {name: os.environ.get(name) for name in (WEIGHTS_ONLY, NO_WEIGHTS_ONLY)}
    os.environ[WEIGHTS_ONLY] = "1"
    os.environ.pop(NO_WEIGHTS_ONLY, None)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _no_weights_only_asked() -> bool:
    """Whether the environment asks torch.load for full unpickling (torch's own test of it)."""
    return os.environ.get(NO_WEIGHTS_ONLY, "0").lower() in ("1", "y", "yes", "true")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _torch_log() -> Iterator[list[logging.LogRecord]]:
    """The warnings torch logs meanwhile (its export loggers do not propagate)."""
    handler = _Records()
    loggers = [logging.getLogger("torch"), logging.getLogger("torch.export")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _last_line(exc: BaseException) -> str:
    """'RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x16 and 8x4)': the line a
    TorchScript traceback ends with, the exception the model raised."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].removeprefix("builtins.") if lines else type(exc).__name__


def _sentence(text: str) -> str:
    """The first sentence (torch's errors go on with advice that seldom applies)."""
    head, dot, rest = text.partition(". ")
    return f"{head}." if dot and rest.strip() else text


def _from_factory(torch: Any, path: str, device: Any) -> tuple[Any, tuple[TensorSpec, ...], str]:
    module_name, _, function_name = path.rpartition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot load model {path!r}: cannot import {function_name} from {module_name}: {exc}") from exc
    try:
        module = factory()
    except Exception as exc:
        raise ModelLoadError(f"cannot load model {path!r}: the factory raised {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"cannot load model {path!r}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    module = module.to(device).eval()
    parameters = [
        p for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]  # fmt: skip
    float_dtype = _float_dtype(module)
    return module, tuple(TensorSpec(p.name, None, None, float_dtype) for p in parameters), "factory"


def _float_dtype(module: Any) -> str:
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return _numpy_dtype(parameter.dtype) or "float32"
    return "float32"


def _numpy_dtype(dtype: Any) -> str | None:
    name = str(dtype).replace("torch.", "")
    return name if name in {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"} else None


def _to_host(torch: Any, outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.cpu()
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_to_host(torch, item) for item in outputs)
    if isinstance(outputs, dict):
        return {key: _to_host(torch, value) for key, value in outputs.items()}
    return outputs

