"""The small interface every backend implements.

A backend lives inside one worker process and wraps one loaded model. The worker calls,
in this order: ``setup`` once (import the framework, set threads and device), ``load``
once, ``describe_inputs`` once, ``prepare`` once per batch (outside any timed region),
then ``run`` + ``synchronize`` inside the timed region as often as the measurement
needs, and finally ``close``. To compare the two models' answers, the worker also runs
some batches outside the timed region and hands ``run``'s result to ``outputs_to_numpy``. The worker reads its memory between ``setup`` and ``load``,
so that the memory a model takes is not mixed with the framework's own.

A generative model (``GenerativeBackend``) is timed by requests, not batches: the worker
hands it prompts as token ids once (``prepare_prompt``, untimed), then asks it for exactly
N new tokens per request (``generate_timed``), which stamps each token as it is chosen.

A backend must import its framework inside its methods, never at module top level, so
that ``import perfgate`` imports no ML framework. ``load`` may rely on ``setup`` having
run (the worker always calls it first; so must anyone driving a backend by hand).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from perfgate.backends.gpu import gpu_details
from perfgate.errors import UsageError, option
from perfgate.results import BackendInfo
from perfgate.tensors import TensorSpec

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class BackendOptions:
    """Settings that are equal for both models in a comparison."""

    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    threads: int = 1
    include_transfers: bool = False  # on a GPU, time the host<->device copies too
    signature: str | None = None  # TensorFlow SavedModel / TFLite signature

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_index(self) -> int:
        """N of "cuda:N" (0 for "cuda")."""
        match = _DEVICE.match(self.device)
        return int(match.group(2) or 0) if match else 0


def check_device(device: str) -> str:
    match = _DEVICE.match(device)
    if not match or (match.group(1) == "cpu" and match.group(2) is not None):
        raise UsageError(f"{option('device')} {device!r}: expected cpu, cuda or cuda:N")
    return device


class Backend(abc.ABC):
    """One loaded model in one framework."""

    name: ClassVar[str]

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    def setup(self) -> None:
        """Import the framework and apply the options (threads, device); fail here, with
        what to install, when the framework cannot serve the options.

        >>> backend.setup()
        """

    @abc.abstractmethod
    def load(self, path: str) -> None:
        """Load the model at ``path``; raise ModelLoadError when it cannot be loaded.

        >>> backend = OnnxRuntimeBackend(BackendOptions(threads=1))
        >>> backend.load("fixtures/mlp_reference.onnx")
        """

    @abc.abstractmethod
    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs as it declares them.

        >>> backend.describe_inputs()
        (TensorSpec(name='features', dtype='float32', shape=(None, 16)),)
        """

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        """Turn one batch of numpy arrays into what ``run`` takes (on the device, in the
        framework's own tensor type). Called outside the timed region.

        >>> prepared = backend.prepare({"features": np.zeros((1, 16), np.float32)})
        """
        return dict(feed)

    @abc.abstractmethod
    def run(self, prepared: Any) -> Any:
        """Run the model once on a prepared batch; this call is what gets timed.

        >>> outputs = backend.run(prepared)
        """

    def synchronize(self) -> None:
        """Wait until the work ``run`` started has finished (a no-op where ``run`` already
        blocks, as on CPU); timed together with ``run``.

        >>> backend.synchronize()
        """

    def outputs_to_numpy(self, outputs: Any, prepared: Any) -> dict[str, np.ndarray]:
        """What ``run(prepared)`` returned (after ``synchronize``), as host numpy arrays by
        output name, in the model's output order; called outside the timed region. The
        default reads arrays, tensors with ``.numpy()``, and dicts, lists and tuples of
        them (see ``named_arrays``); None means the backend gives no outputs.

        >>> backend.outputs_to_numpy(backend.run(prepared), prepared)
        {'scores': array([[ 0.12, -0.4 , ...]], dtype=float32)}
        """
        return named_arrays(outputs, _host_array)

    def close(self) -> None:
        """Release the model.

        >>> backend.close()
        """

    def reset_peak_memory(self) -> None:
        """Start the device memory high-water mark afresh (called after warm-up).

        >>> backend.reset_peak_memory()
        """

    def peak_memory(self) -> dict[str, int]:
        """Device memory high-water marks since the last reset, in bytes, where the
        framework's allocator tells them (PyTorch, TensorFlow on a GPU); empty elsewhere.

        >>> backend.peak_memory()
        {'gpu_peak_allocated_bytes': 1048576, 'gpu_peak_reserved_bytes': 2097152}
        """
        return {}

    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Framework, version, device and threads, for the report.

        >>> backend.info().framework_version
        '1.31.1'
        """

    def _info(
        self,
        framework: str,
        version: str,
        details: Mapping[str, Any],
        *,
        threads: int | None = None,
        gpu: Callable[[], tuple[Any, ...]] | None = None,
    ) -> BackendInfo:
        """This backend's BackendInfo. On a GPU, ``gpu()`` gives (cuda_version[, cudnn_version[, name]])
        for the GPU facts; it is called only there, since some frameworks need a GPU to answer."""
        details = dict(details)
        if self.options.on_gpu and gpu is not None:
            details.update(gpu_details(self.options, *gpu()))
        threads = self.options.threads if threads is None else threads
        # plain strs: a framework's own version type (torch's TorchVersion) would make the
        # parent import the framework to unpickle the reply
        return BackendInfo(self.name, framework, str(version), self.options.device, threads, details)



def named_arrays(outputs: Any, to_array: Callable[[Any], np.ndarray], name: str = "output") -> dict[str, np.ndarray]:
    """A model's outputs by name: a dict's keys, a named tuple's fields, a list's or tuple's
    positions ("output_0", "output_1"), "output_0" for a single value (as TFLite names it);
    nested ones joined with dots. ``to_array`` turns each single value into a host array."""
    if outputs is None:
        return {}
    if isinstance(outputs, Mapping):
        items = [(str(key), value) for key, value in outputs.items()]
    elif isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
        items = list(zip(outputs._fields, outputs))
    elif isinstance(outputs, (list, tuple)):
        items = [(f"{name}_{index}" if name == "output" else str(index), value) for index, value in enumerate(outputs)]
    else:
        return {"output_0" if name == "output" else name: to_array(outputs)}
    found: dict[str, np.ndarray] = {}
    for key, value in items:
        inner = key if name == "output" else f"{name}.{key}"
        found.update(named_arrays(value, to_array, inner))
    return found


def _host_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy"):  # a TensorFlow or a CPU PyTorch tensor
        return np.asarray(value.numpy())
    return np.asarray(value)


@dataclass(frozen=True)
class Generation:
    """One generation request by the worker's clock, in ns: when it was handed to the
    model, when each new token was chosen, and when the call returned; and the new
    tokens' ids (the prompt left out)."""

    started_ns: int
    token_ns: tuple[int, ...]
    ended_ns: int
    output_ids: tuple[int, ...]
    prompt_tokens: int = 0  # the prompt's length in tokens, as the model counted it
    # a served model's answer, where it gives text, not ids (the outputs are then compared as text)
    output_text: str | None = None
    # how the new tokens were counted: "model" (ids in hand), "usage" (the server's count),
    # "chunks" (one per streamed chunk, where the server gave no count)
    counted_by: str = "model"
    new_tokens: int | None = None  # the server's count where it differs from the stamps (a chunk may hold several)


class GenerativeBackend(Backend):
    """A model that answers a prompt token by token (a causal language model)."""

    # requests may be in flight at once, each on a thread of its own (a served model's
    # client): latency under load (--concurrency, --rate) is measured only where True
    concurrent_requests: ClassVar[bool] = False

    def describe_inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("input_ids", "int64", (1, None)),)

    @abc.abstractmethod
    def prepare_prompt(self, prompt: str | Sequence[int], *, chat: bool = False) -> Any:
        """One prompt in the framework's own form, on the device; untimed. A string is
        tokenized by the model's own tokenizer (with its chat template where ``chat``: a
        UsageError where it has none); a sequence is token ids, used as they are.

        >>> prompt = backend.prepare_prompt([17, 4, 250])
        >>> prompt = backend.prepare_prompt("Tell me a story.", chat=True)
        """

    def checked_ids(self, prompt: str | Sequence[int], chat: bool, vocabulary: int | None) -> list[int]:
        """A prompt's token ids (a text through ``self._tokenized(text, chat)``), refused in
        one line where empty or outside the model's ``vocabulary`` (None: unknown)."""
        ids = self._tokenized(prompt, chat) if isinstance(prompt, str) else [int(token) for token in prompt]
        if not ids:
            raise UsageError("an empty prompt: a request needs at least one token")
        outside = [token for token in ids if token < 0 or (vocabulary is not None and token >= vocabulary)]
        if outside:
            within = f" (ids 0 to {vocabulary - 1})" if vocabulary is not None else ""
            raise UsageError(f"prompt token id {outside[0]} is outside the model's vocabulary{within}")
        return ids

    def _tokenized(self, text: str, chat: bool) -> list[int]:
        raise UsageError(f"the {self.name} backend takes prompts as token ids, not text")

    def prompt_length(self, prepared: Any) -> int | None:
        """A prepared prompt's length in tokens, where the backend knows it before running."""
        return None

    def context_length(self) -> int | None:
        """The most positions (prompt and new tokens) the model takes, where it says."""
        return None

    @abc.abstractmethod
    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        """Exactly ``max_new_tokens`` new tokens for a prepared prompt, greedily (end of
        sequence held off), each stamped by ``clock`` as the model chooses it.

        >>> generation = backend.generate_timed(prompt, 32, time.perf_counter_ns)
        >>> len(generation.token_ns), len(generation.output_ids)
        (32, 32)
        """

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Any:
        raise self._no_batches()

    def run(self, prepared: Any) -> Any:
        raise self._no_batches()

    def _no_batches(self) -> UsageError:
        return UsageError(
            f"the {self.name} backend runs generative models, which are timed per request "
            f"(time to first token, inter-token latency), not per batch"
        )
