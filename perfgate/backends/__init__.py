"""Backends by name, imported only when used.

A model's backend is chosen from its path: the extension, or for a directory its
contents (a SavedModel holds saved_model.pb; a Hugging Face causal language model holds a
config.json whose ``architectures`` name a ``*ForCausalLM``, and runs in transformers; a folder
written by onnxruntime-genai's model builder holds genai_config.json, and runs in
onnxruntime-genai, not its model.onnx in onnxruntime). A directory that is not a SavedModel but
holds exactly one model file beside other files (``model.onnx`` next to config.json and
tokenizer.json, as exported for a model hub) runs that file: see ``model_file``. An
``http(s)://`` URL is a served model's endpoint (the openai backend), never a file.
``--reference-backend`` and
``--candidate-backend`` override that with a built-in name, or with
``package.module:Class`` for a backend of your own (a subclass of
:class:`perfgate.backends.base.Backend`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from perfgate.backends.paths import shown, special_kind
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError


@dataclass(frozen=True)
class BackendEntry:
    target: str  # "module:Class"
    framework_module: str | tuple[str, ...]  # imported by the backend (any one of them); absence gives the install hint
    extra: str  # pip install 'perfgate[<extra>]'
    suffixes: tuple[str, ...]  # none: the backend takes a model directory, told by its contents
    generative: bool = False  # a GenerativeBackend: timed per request (--task generate)


BUILTIN_BACKENDS: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry(
        "perfgate.backends.onnxruntime:OnnxRuntimeBackend", "onnxruntime", "onnx", (".onnx", ".ort")
    ),
    "torch": BackendEntry(
        "perfgate.backends.torch:TorchBackend", "torch", "torch", (".pt", ".pth", ".ts", ".torchscript", ".jit", ".pt2")
    ),
    "tensorflow": BackendEntry(
        "perfgate.backends.tensorflow:TensorFlowBackend", "tensorflow", "tensorflow", (".keras",)
    ),
    "tflite": BackendEntry(
        "perfgate.backends.tflite:TFLiteBackend", ("ai_edge_litert", "tensorflow"), "tensorflow", (".tflite",)
    ),
    "transformers": BackendEntry(
        "perfgate.backends.transformers_lm:TransformersLMBackend", "transformers", "llm,torch", (), generative=True
    ),
    "onnxruntime-genai": BackendEntry(
        "perfgate.backends.onnxruntime_genai:OnnxRuntimeGenAIBackend", "onnxruntime_genai", "onnx-genai", (), generative=True
    ),
    "openai": BackendEntry("perfgate.backends.openai_endpoint:OpenAIEndpointBackend", "httpx_sse", "endpoints", (), generative=True),
}
CAUSAL_LM_SUFFIX = "ForCausalLM"
GENAI_CONFIG = "genai_config.json"


def is_saved_model(path: str) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def is_genai_model(path: str) -> bool:
    """A folder written by onnxruntime-genai's model builder (its model.onnx needs GenAI's loop)."""
    return (Path(path) / GENAI_CONFIG).is_file()


def causal_lm_architectures(path: str) -> list[str] | None:
    """The ``*ForCausalLM`` architectures that config.json in the directory ``path`` names,
    or None where there are none (no config.json, an unreadable one, other architectures)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(architectures, list):
        return None
    found = [name for name in architectures if isinstance(name, str) and name.endswith(CAUSAL_LM_SUFFIX)]
    return found or None


def is_generative(path: str, requested: str | None) -> bool | None:
    """Whether the model at ``path`` is a generative one (timed per request): by the backend
    asked for where it is a built-in one, else by what the path is (an endpoint, a causal
    LM's directory, an ONNX Runtime GenAI folder). None: a backend of your own, which
    only ``--task`` tells."""
    if requested is not None:
        entry = BUILTIN_BACKENDS.get(requested)
        return None if entry is None else entry.generative
    if is_url(path):
        return True
    folder = Path(path)
    try:
        if not folder.exists():
            return None  # not there: loading says so (require_model), not a word on what it is
        if not folder.is_dir():
            return False
    except OSError:  # a name too long, a folder on the way not searchable: loading says which
        return None
    if is_genai_model(path):
        return True
    # a causal LM's directory with an exported model file in it (model.onnx) runs that file
    try:
        return causal_lm_architectures(path) is not None and model_file(path) == path
    except UsageError:
        return False


def looks_like_factory(path: str) -> bool:
    """``package.module:function`` (and not a file that happens to contain a colon)."""
    module, sep, function = path.rpartition(":")
    return bool(sep and module and function.isidentifier()) and not Path(path).exists()


def model_file(path: str, requested: str | None = None) -> str:
    """The model that ``path`` names: itself, or for a directory that is not a SavedModel
    the one model file (or SavedModel) inside it; an onnxruntime-genai folder, and a causal
    language model's directory with no model file in it, are themselves the model. With a
    built-in ``requested`` backend only that backend's files count; a backend of your own
    (``module:Class``), or one that takes directories (transformers, onnxruntime-genai),
    gets the directory; a URL is a served model's endpoint."""
    if is_url(path):
        return path
    folder = Path(path)
    if not folder.is_dir() or is_saved_model(path) or (requested is not None and requested not in BUILTIN_BACKENDS):
        return path
    entry = BUILTIN_BACKENDS.get(requested) if requested else None
    if (entry is not None and not entry.suffixes) or (requested is None and is_genai_model(path)):
        return path
    suffixes = entry.suffixes if entry else tuple(s for known in BUILTIN_BACKENDS.values() for s in known.suffixes)
    found = sorted(
        child for child in folder.iterdir()
        if not child.name.startswith(".")
        and ((child.is_file() and child.suffix.lower() in suffixes)
             or (child.is_dir() and requested in (None, "tensorflow") and is_saved_model(str(child))))
    )  # fmt: skip
    if len(found) == 1:
        return str(found[0])
    if not found and requested is None and causal_lm_architectures(path):
        return path
    if found:
        names = ", ".join(child.name for child in found)
        raise UsageError(f"{path!r} holds {len(found)} models ({names}); name the one to run, e.g. {str(found[0])!r}")
    wanted = f"no {requested} model file ({', '.join(suffixes)})" if entry else "no model file (.onnx, .pt, .pt2, .keras, .tflite, ...)"
    raise UsageError(f"{path!r} is a directory without saved_model.pb (so not a SavedModel) and with {wanted} in it")


def require_model(path: str, requested: str | None, role: str) -> None:
    """ModelLoadError (exit 3, as for a missing data file) unless a built-in backend's model
    is there and not empty: said before any worker starts, in the same words for every
    framework (onnxruntime's own would be ``[ONNXRuntimeError] : 3 : NO_SUCHFILE ...``) and
    with the ``role`` a worker's error names. A backend of your own and a torch factory
    (``package.module:function``) name what they like."""
    if (requested is not None and requested not in BUILTIN_BACKENDS) or looks_like_factory(path):
        return
    if is_url(path) or requested == "openai":
        endpoint_of(path, requested)
        return
    try:
        found = os.stat(path)
    except FileNotFoundError:
        if requested is None and Path(path).suffix:
            # an extension no backend knows is what was written wrong: said first (exit 2); a
            # path without one may be a model directory (a causal LM's) that is just not there
            backend_for_path(path)
        raise ModelLoadError(f"{role}: cannot load model {shown(path)}: no such file") from None
    except OSError as exc:  # a name too long, a folder on the way not searchable
        raise ModelLoadError(f"{role}: cannot load model {shown(path)}: {exc.strerror or exc}") from None
    if stat.S_ISREG(found.st_mode) and found.st_size == 0:
        raise ModelLoadError(f"{role}: cannot load model {shown(path)}: the file is empty (0 bytes)")


def backend_for_path(path: str) -> str:
    """The built-in backend for a model path, from its extension or directory contents
    (or its scheme: an http(s):// URL is a served model's endpoint)."""
    if is_url(path):
        endpoint_of(path, None)
        return "openai"
    if is_saved_model(path):
        return "tensorflow"
    if is_genai_model(path):
        return "onnxruntime-genai"
    if Path(path).is_dir() and causal_lm_architectures(path):
        return "transformers"
    suffix = Path(path).suffix.lower()
    for name, entry in BUILTIN_BACKENDS.items():
        if suffix in entry.suffixes:
            return name
    if Path(path).is_dir():
        raise UsageError(f"{path!r} is a directory without saved_model.pb, so not a SavedModel; perfgate cannot run it")
    if looks_like_factory(path):
        raise UsageError(
            f"{path!r} looks like a Python factory; it runs your code, so ask for it explicitly "
            f"with --reference-backend torch or --candidate-backend torch"
        )
    known = ", ".join(f"{s} ({name})" for name, entry in BUILTIN_BACKENDS.items() for s in entry.suffixes)
    raise UsageError(
        f"cannot tell which backend runs {path!r} from its extension (known: {known}, and SavedModel "
        f"directories); name one with --reference-backend/--candidate-backend"
    )


def is_url(path: str) -> bool:
    """Whether the model path is written as a URL (``scheme://...``): a served model's endpoint."""
    from perfgate.backends.openai_endpoint import is_url as written_as_url

    return written_as_url(path)


def endpoint_of(path: str, requested: str | None) -> None:
    """A UsageError unless ``path`` is an endpoint URL the openai backend can reach, and
    unless the backend asked for takes one; never a look at the file system."""
    from perfgate.backends.openai_endpoint import parse_endpoint, shown_url

    if requested not in (None, "openai"):
        raise UsageError(f"{shown_url(path)!r} is a served model's URL: the {requested} backend takes a model file; the openai backend takes a URL")
    if not is_url(path):
        raise UsageError(f"{path!r}: the openai backend takes a served model's URL, e.g. http://127.0.0.1:8000/v1, with #NAME for its name")
    parse_endpoint(path)


def refuse_what_is_no_file(path: str) -> None:
    """A UsageError where ``path`` names something other than a regular file or a directory
    (links followed): a framework opening a named pipe waits for a writer that never comes,
    reading a character device (/dev/zero) never ends, and neither is a model. Refused in
    the parent, before any worker starts. A path that does not exist is the backend's to
    judge (a torch factory, ``package.module:function``, is no path), and a URL is none."""
    if is_url(path):
        return
    words = special_kind(path)
    if words is not None:
        raise UsageError(f"{path!r} is {words}, not a model file or directory; name the model's file (or its SavedModel directory)")


def resolve_backend_name(path: str, requested: str | None) -> str:
    """The backend name or ``module:Class`` spec to use for ``path``; refused where the
    path is no file (``refuse_what_is_no_file``)."""
    refuse_what_is_no_file(path)
    if requested is None:
        return backend_for_path(path)
    if requested in BUILTIN_BACKENDS or ":" in requested:
        return requested
    raise UsageError(
        f"unknown backend {requested!r}; built-in backends: {', '.join(BUILTIN_BACKENDS)}, "
        f"or package.module:Class for your own"
    )


def load_backend_class(name: str) -> type:
    """Import the backend class for a built-in name or a ``module:Class`` spec."""
    from perfgate.backends.base import Backend

    entry = BUILTIN_BACKENDS.get(name)
    if entry is not None:
        require_framework(name)
    target = entry.target if entry else name
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except ImportError as exc:
        raise BackendUnavailableError(f"cannot import backend {target!r}: {exc}") from exc
    except AttributeError as exc:
        raise BackendUnavailableError(f"cannot import backend {target!r}: {module_name} has no {class_name!r}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailableError(f"backend {target!r} is not a subclass of perfgate.backends.base.Backend")
    return cls


def require_framework(name: str) -> None:
    """BackendUnavailableError with the install hint unless the built-in backend's framework
    can be imported; looks for it without importing it."""
    entry = BUILTIN_BACKENDS.get(name)
    if entry is None:
        return
    modules = (entry.framework_module,) if isinstance(entry.framework_module, str) else entry.framework_module
    if all(importlib.util.find_spec(module) is None for module in modules):
        raise BackendUnavailableError(
            f"the {name} backend needs {' or '.join(modules)}, which is not installed: "
            f"pip install 'perfgate[{entry.extra}]'"
        )
