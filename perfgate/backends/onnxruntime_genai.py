"""ONNX Runtime GenAI: a model folder written by onnxruntime-genai's model builder
(genai_config.json, the ONNX decoder and its data, the tokenizer files).

Loaded with ``og.Config`` over the folder, on the CPU unless the options ask for CUDA
(GenAI's "cuda" provider, refused in one line where this onnxruntime-genai has none, or
where the model comes up elsewhere). Threads are set as the onnxruntime backend sets
them, through the decoder's session options: ``threads`` intra-op threads, one inter-op
thread, and with more than one intra-op thread the pool's spin-waiting off (the two
workers take turns; a pool still spinning would steal the core from the other's block).

A request is GenAI's own loop as its examples and a user's server run it: a Generator
with greedy search options (``do_sample`` off, ``top_k`` 1, one beam) and
``min_length`` = ``max_length`` = prompt + N, since GenAI's lengths count the prompt too
(so end of sequence is held off and exactly N tokens come); then, on the clock,
``append_tokens`` (the prefill) and ``generate_next_token`` until ``is_done``, stamped
right after each call. The first ``generate_next_token`` only picks the token the
prefill's logits give (3-4 us, no model run); each later one runs the model on the
previous token, then picks: so the first stamp is the time to the first token and each
gap a decode step. The Generator (its parameters and KV cache buffer) is made on the
clock: a user's request makes one too, as transformers' ``generate`` sets up its cache
inside the timed call; it costs ~215 us on the 2-layer fixture, about as long as the
prefill, so leaving it out would flatter GenAI's time to first token.

Stamping's cost, measured on the 2-layer fixture (1 thread, 64 tokens, 600 interleaved
rounds, a quiet 2-core machine): ``stamps.append(perf_counter_ns())`` costs 0.11-0.17 us
of CPU per call (100 000 calls) against ~30 us per token (64 tokens in 1.94 ms), under
0.6 %; the stamped loop against the same loop unstamped, paired per round, median
1.009 (quartiles 0.985-1.036) in thread CPU time and in wall time. A clock that is a
system call costs more: stamping with ``thread_time_ns`` made the loop 5 % slower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perfgate.backends import GENAI_CONFIG
from perfgate.backends.base import BackendInfo, Generation, GenerativeBackend
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, first_line

INSTALL_HINT = "pip install 'perfgate[onnx-genai]'"
# tokenizer.json model types GenAI 0.18 cannot read: it parses them as BPE and finds no merges
UNREADABLE_TOKENIZERS = frozenset({"WordLevel"})


class OnnxRuntimeGenAIBackend(GenerativeBackend):
    name = "onnxruntime-genai"

    def setup(self) -> None:
        try:
            import onnxruntime_genai as og
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the onnxruntime-genai backend needs onnxruntime_genai ({first_line(exc)}): {INSTALL_HINT}"
            ) from exc
        if self.options.on_gpu and not og.is_cuda_available():
            raise BackendUnavailableError(
                f"onnxruntime-genai {og.__version__} has no CUDA support, so it cannot run on {self.options.device}: "
                f"pip uninstall -y onnxruntime-genai && pip install onnxruntime-genai-cuda"
            )
        self._og = og

    def load(self, path: str) -> None:
        og = self._og
        settings = _genai_config(path)
        model_settings = settings.get("model") if isinstance(settings.get("model"), dict) else {}
        try:
            config = og.Config(path)
            config.overlay(json.dumps({"model": {"decoder": {"session_options": self._session_options()}}}))
            config.clear_providers()  # the CPU, whatever provider the export named
            if self.options.on_gpu:
                config.append_provider("cuda")
                config.set_provider_option("cuda", "device_id", str(self.options.device_index))
            model = og.Model(config)
        except Exception as exc:  # GenAI raises RuntimeError with ORT's or its JSON parser's words
            raise ModelLoadError(f"cannot load model {path!r} with onnxruntime-genai: {first_line(exc)}") from exc
        kind = _tokenizer_kind(path)
        if kind in UNREADABLE_TOKENIZERS:
            # refused before GenAI reads it: its answer is "Cannot know how to parse line:", but in
            # 2 of 94 tries here, both in a process that had loaded other folders, a segmentation fault
            raise ModelLoadError(
                f"cannot load model {path!r} with onnxruntime-genai: its tokenizer.json holds a {kind} tokenizer, "
                f"which onnxruntime-genai cannot read"
            )
        try:
            tokenizer = og.Tokenizer(model)
        except Exception as exc:  # a tokenizer.json missing, unparsable, or of a kind it does not read
            known = f" (tokenizer.json's model type {kind})" if kind else ""
            raise ModelLoadError(
                f"cannot load model {path!r} with onnxruntime-genai: it cannot read the model's tokenizer{known} "
                f"({first_line(exc)})"
            ) from exc
        wanted = "CUDA" if self.options.on_gpu else "CPU"
        if str(model.device_type).upper() != wanted:
            raise BackendUnavailableError(
                f"onnxruntime-genai put {path!r} on {model.device_type}, not {wanted}; "
                f"refusing to time it as {self.options.device}"
            )
        self._path, self._model, self._tokenizer = path, model, tokenizer
        self._vocabulary = _positive_int(model_settings.get("vocab_size"))
        self._context = _positive_int(model_settings.get("context_length"))
        decoder = model_settings.get("decoder") if isinstance(model_settings.get("decoder"), dict) else {}
        self._layers = decoder.get("num_hidden_layers")
        self._model_type = model_settings.get("type")
        self._dtype = self._computed_dtype(model_settings.get("bos_token_id"))

    def _session_options(self) -> dict[str, Any]:
        threads = self.options.threads
        options: dict[str, Any] = {"intra_op_num_threads": threads, "inter_op_num_threads": 1, "log_severity_level": 3}
        if threads > 1:
            # GenAI hands string keys it does not know to ORT as session config entries: with this
            # one, 30 requests of 2 threads with 2 ms idle between took 161-163 ms of process CPU,
            # 280-433 ms without it (the pool spinning through the idle time)
            options["session.intra_op.allow_spinning"] = "0"
        return options

    def _computed_dtype(self, bos_token_id: Any) -> str | None:
        """The element type of the logits, from a one-token prefill (untimed): what the
        model computes in (an int4 export computes in float16 or float32). It also fails
        here, in load, where the model's data cannot run."""
        og = self._og
        token = bos_token_id if isinstance(bos_token_id, int) and bos_token_id >= 0 else 0
        try:
            params = og.GeneratorParams(self._model)
            params.set_search_options(max_length=2)
            generator = og.Generator(self._model, params)
            generator.append_tokens(np.array([token], dtype=np.int32))
            return str(generator.get_output("logits").dtype)
        except Exception as exc:
            raise ModelLoadError(f"cannot run model {self._path!r} with onnxruntime-genai: {first_line(exc)}") from exc

    def prepare_prompt(self, prompt: str | Sequence[int], *, chat: bool = False) -> Any:
        ids = self.checked_ids(prompt, chat, self._vocabulary)
        return np.array(ids, dtype=np.int32)  # GenAI's own token type, as its Tokenizer.encode answers

    def prompt_length(self, prepared: Any) -> int:
        return int(len(prepared))

    def context_length(self) -> int | None:
        return self._context

    def _tokenized(self, text: str, chat: bool) -> list[int]:
        tokenizer = self._tokenizer
        if chat:
            messages = json.dumps([{"role": "user", "content": text}])
            try:
                text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
            except Exception as exc:  # 0.18 says "Empty chat template." where tokenizer_config.json has none
                if "empty chat template" in str(exc).lower():
                    raise UsageError(
                        f"--chat: model {self._path!r} has no chat template (its tokenizer_config.json names none)"
                    ) from exc
                raise UsageError(f"--chat: model {self._path!r}'s chat template failed: {first_line(exc)}") from exc
        return [int(token) for token in tokenizer.encode(text)]

    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        og = self._og
        length = len(prompt) + max_new_tokens
        stamps: list[int] = []
        stamp = stamps.append
        started = clock()
        params = og.GeneratorParams(self._model)
        params.set_search_options(do_sample=False, top_k=1, num_beams=1, min_length=length, max_length=length)
        generator = og.Generator(self._model, params)
        generator.append_tokens(prompt)
        while not generator.is_done():
            generator.generate_next_token()
            stamp(clock())
        ended = clock()
        new_ids = tuple(int(token) for token in generator.get_sequence(0)[len(prompt) :])
        return Generation(started, tuple(stamps), ended, new_ids, prompt_tokens=len(prompt))

    def close(self) -> None:
        self._tokenizer = None
        self._model = None

    def info(self) -> BackendInfo:
        details = {
            "providers": ["cuda" if self.options.on_gpu else "cpu"],
            "model_type": self._model_type,
            "layers": self._layers,
            "dtype": self._dtype,
            "intra_op_threads": self.options.threads,
            "inter_op_threads": 1,
        }
        # GenAI reports no CUDA version of its own
        return self._info("onnxruntime-genai", self._og.__version__, details, gpu=lambda: (None,))


def _genai_config(path: str) -> dict[str, Any]:
    """genai_config.json read here first, so that a folder that is none is said in perfgate's
    words (GenAI's own: "Error opening .../genai_config.json")."""
    folder = Path(path)
    if not folder.exists():
        raise ModelLoadError(f"cannot load model {path!r} with the onnxruntime-genai backend: no such folder")
    if not folder.is_dir():
        raise ModelLoadError(
            f"cannot load model {path!r} with the onnxruntime-genai backend: it takes a model folder written by "
            f"onnxruntime-genai's model builder ({GENAI_CONFIG}, model.onnx, tokenizer), not a file"
        )
    try:
        settings = json.loads((folder / GENAI_CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"cannot load model {path!r} with the onnxruntime-genai backend: the directory has no {GENAI_CONFIG} "
            f"(onnxruntime-genai's model builder writes it)"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model {path!r} with onnxruntime-genai: {GENAI_CONFIG}: {first_line(exc)}") from None
    if not isinstance(settings, dict):
        raise ModelLoadError(f"cannot load model {path!r} with onnxruntime-genai: {GENAI_CONFIG} holds no JSON object")
    return settings


def _tokenizer_kind(path: str) -> str:
    """tokenizer.json's model type (BPE, Unigram, WordLevel, ...), or "" where it names none."""
    try:
        kind = json.loads((Path(path) / "tokenizer.json").read_text(encoding="utf-8"))["model"]["type"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return ""
    return kind if isinstance(kind, str) else ""


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
