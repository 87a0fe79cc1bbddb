"""Hugging Face causal language models: a directory with config.json (its ``architectures``
name a ``*ForCausalLM``), the weights and a tokenizer, as ``save_pretrained`` writes it.

Loaded with AutoModelForCausalLM and AutoTokenizer from the directory alone (no hub
access), in float32, on the options' device, in eval mode under torch.inference_mode;
threads are set as the torch backend sets them. One thread matters here: a tiny model's
decode step is dispatch, and a second thread spinning on a busy 2-core machine made 12
tokens of the 16-layer fixture take 38 s instead of 0.9 s.

A request is the model's own ``generate``, greedy, with exactly N new tokens
(``min_new_tokens`` = ``max_new_tokens`` = N, so end of sequence is held off) and a
streamer that stamps the clock as each token is chosen. The streamer is how a user's
code streams, so the timed program is the one they run: its cost measured 0.4 us of CPU
per token against >= 1.1 ms per token of the smallest fixture (< 0.05 %), while a loop
calling the model by hand is 8-32 % cheaper than ``generate`` and so another program.
transformers calls ``put`` once with the prompt before the prefill, then once per new
token right after choosing it (on CPU and CUDA the step has synchronized by then), then
``end``: token i's stamp is put number i + 2. On Apple's MPS tokens are streamed one step
late, so there the stamps lag by a step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from perfgate.backends import CAUSAL_LM_SUFFIX, causal_lm_architectures
from perfgate.backends.base import BackendInfo, Generation, GenerativeBackend
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, first_line

INSTALL_HINT = "pip install 'perfgate[llm,torch]'"


class TransformersLMBackend(GenerativeBackend):
    name = "transformers"

    def setup(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory never needs the hub
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the transformers backend needs transformers and torch ({first_line(exc)}): {INSTALL_HINT}"
            ) from exc
        from perfgate.backends.torch import set_threads, torch_device

        self._torch, self._transformers = torch, transformers
        set_threads(torch, self.options.threads)
        self._device = torch_device(torch, self.options)

    def load(self, path: str) -> None:
        _refuse_what_is_no_causal_lm(path)
        torch, transformers = self._torch, self._transformers
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"cannot load model {path!r} with transformers: {first_line(exc)}") from exc
        self._path = path
        self._model = model.to(self._device).eval()
        self._tokenizer = tokenizer
        self._vocabulary = int(model.config.vocab_size)
        self._pad_token_id = _pad_token_id(tokenizer, model.generation_config)
        self._streamer_class = _stamping_streamer_class(transformers)
        # inference mode for the life of the worker: no request pays the context switch
        self._inference = torch.inference_mode()
        self._inference.__enter__()

    def prepare_prompt(self, prompt: str | Sequence[int], *, chat: bool = False) -> Any:
        ids = self.checked_ids(prompt, chat, self._vocabulary)
        return self._torch.tensor([ids], dtype=self._torch.long, device=self._device)

    def prompt_length(self, prepared: Any) -> int:
        return int(prepared.shape[1])

    def context_length(self) -> int | None:
        positions = getattr(self._model.config, "max_position_embeddings", None)
        return int(positions) if positions else None

    def _tokenized(self, text: str, chat: bool) -> list[int]:
        tokenizer = self._tokenizer
        if not chat:
            return [int(token) for token in tokenizer(text, add_special_tokens=True)["input_ids"]]
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError(f"--chat: model {self._path!r} has no chat template (its tokenizer_config.json names none)")
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions answer a BatchEncoding
            ids = ids["input_ids"]
        return [int(token) for token in ids]

    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        streamer = self._streamer_class(clock)
        attention_mask = self._torch.ones_like(prompt)  # made before the clock starts
        started = clock()
        output = self._model.generate(
            prompt,
            attention_mask=attention_mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            pad_token_id=self._pad_token_id,
            streamer=streamer,
        )
        ended = clock()
        new_ids = tuple(int(token) for token in output[0, prompt.shape[1] :].tolist())
        token_ns = tuple(streamer.stamps[1 : 1 + len(new_ids)])  # stamp 0 is the prompt's put
        return Generation(started, token_ns, ended, new_ids, prompt_tokens=int(prompt.shape[1]))

    def synchronize(self) -> None:
        if self.options.on_gpu:
            self._torch.cuda.synchronize(self._device)

    def reset_peak_memory(self) -> None:
        from perfgate.backends.torch import reset_gpu_peak

        reset_gpu_peak(self._torch, self.options, self._device)

    def peak_memory(self) -> dict[str, int]:  # the KV cache's peak is the model's
        from perfgate.backends.torch import gpu_peak

        return gpu_peak(self._torch, self.options, self._device)

    def close(self) -> None:
        inference = getattr(self, "_inference", None)
        if inference is not None:
            inference.__exit__(None, None, None)
            self._inference = None
        self._model = None

    def info(self) -> BackendInfo:
        torch, model = self._torch, self._model
        details = {
            "torch_version": str(torch.__version__),  # a plain str: torch's own type would import torch in the parent
            "architecture": type(model).__name__,
            "layers": getattr(model.config, "num_hidden_layers", None),
            "dtype": str(model.dtype).replace("torch.", ""),
            "interop_threads": torch.get_num_interop_threads(),
        }
        return self._info(
            "transformers", self._transformers.__version__, details, threads=torch.get_num_threads(), gpu=self._gpu_facts
        )

    def _gpu_facts(self) -> tuple[Any, ...]:
        torch = self._torch
        return torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(self._device)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _refuse_what_is_no_causal_lm(path: str) -> None:
    folder = Path(path)
    if not folder.is_dir():
        raise ModelLoadError(
            f"cannot load model {path!r} with the transformers backend: it takes a model directory "
            f"(config.json, weights, tokenizer), not a file"
        )
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"cannot load model {path!r} with the transformers backend: the directory has no config.json")
    if causal_lm_architectures(path) is None:
        try:
            named = json.loads(config.read_text(encoding="utf-8")).get("architectures")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            named = "unreadable"
        raise ModelLoadError(
            f"cannot load model {path!r} with the transformers backend: config.json's architectures "
            f"({named}) name no *{CAUSAL_LM_SUFFIX}; it runs causal language models only"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        # transformers' own words end in "from one of: " and a multi-line list
        raise ModelLoadError(
            f"cannot load model {path!r} with transformers: the directory has no tokenizer ({' or '.join(TOKENIZER_FILES)}); "
            f"save it beside the model (tokenizer.save_pretrained)"
        )


def _pad_token_id(tokenizer: Any, generation_config: Any) -> int:
    """The tokenizer's pad token, else the generation config's, else end of sequence (a batch
    of one is never padded; generate only wants one named, and warns otherwise)."""
    for candidate in (tokenizer.pad_token_id, generation_config.pad_token_id, generation_config.eos_token_id):
        if isinstance(candidate, (list, tuple)):
            candidate = candidate[0] if candidate else None
        if candidate is not None:
            return int(candidate)
    return 0


def _stamping_streamer_class(transformers: Any) -> type:
    """A transformers streamer whose ``put`` only appends the clock's reading (made here, as
    its base class comes with the framework, which is imported lazily)."""

    class StampingStreamer(transformers.generation.streamers.BaseStreamer):
        def __init__(self, clock: Callable[[], int]) -> None:
            self.stamps: list[int] = []
            self._append, self._clock = self.stamps.append, clock

        def put(self, value: Any) -> None:
            self._append(self._clock())

        def end(self) -> None:
            pass

    return StampingStreamer
