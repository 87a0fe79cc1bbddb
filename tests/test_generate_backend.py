"""The generative layer's lowest floor: the transformers backend on the LLM fixtures (loads,
exactly N greedy tokens, the same tokens as plain ``generate``, a clock stamp per token),
the worker's SetPrompts / RunRequests / RunGenerations through an in-process worker, the
request timings' arithmetic on a virtual clock, which directories pick the backend, and its
refusals. No timing assertions beyond the order of clock readings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import pytest

from conftest import FIXTURES, ROOT
from fakes import FakeClock, TinyBackend
from test_llm_fixtures import LLM, needs_transformers, prompts

from perfgate import backends
from perfgate.backends.base import BackendInfo, BackendOptions, Generation, GenerativeBackend
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError, WorkerError
from perfgate.worker import InProcessWorker, WorkerCore
from perfgate.worker.process import SubprocessWorker
from perfgate.worker.protocol import (
    DEFAULT_CALL_TIMEOUT_S,
    LoadModel,
    LoadRequest,
    RequestTiming,
    RunGenerations,
    RunRequests,
    SetFeeds,
    SetPrompts,
    call_limit,
    requests_timeout,
)

SHALLOW, DEEP = LLM / "tiny_llama_shallow", LLM / "tiny_llama_deep"
N = 12
ONE_THREAD = BackendOptions(threads=1)  # see transformers_lm.py: a second spinning thread costs 40x here


def prompt_ids(count: int = 3) -> list[tuple[int, ...]]:
    return [tuple(row["prompt_ids"]) for row in prompts()[:count]]


@pytest.fixture(scope="module")
def loaded():
    """Each fixture model in the backend, loaded once for the module."""
    from perfgate.backends.transformers_lm import TransformersLMBackend

    found = {}
    for folder in (SHALLOW, DEEP):
        backend = TransformersLMBackend(ONE_THREAD)
        backend.setup()
        backend.load(str(folder))
        found[folder.name] = backend
    yield found
    for backend in found.values():
        backend.close()


def plain_greedy(folder, ids: Sequence[int], new_tokens: int) -> list[int]:
    """What a user's own code gets: the model's generate, greedy, exactly N new tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([list(ids)]), do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens
        )
    return out[0, len(ids) :].tolist()


# --- the backend -------------------------------------------------------------------------------


@needs_transformers
@pytest.mark.parametrize("name,layers", [("tiny_llama_shallow", 2), ("tiny_llama_deep", 16)])
def test_the_backend_loads_each_fixture_in_float32_with_one_thread(loaded, name, layers):
    info = loaded[name].info()
    assert (info.backend, info.framework, info.device, info.threads) == ("transformers", "transformers", "cpu", 1)
    assert info.details["layers"] == layers and info.details["dtype"] == "float32"
    assert info.details["architecture"] == "LlamaForCausalLM"
    assert loaded[name].describe_inputs()[0].name == "input_ids"


@needs_transformers
@pytest.mark.parametrize("name", ["tiny_llama_shallow", "tiny_llama_deep"])
@pytest.mark.parametrize("new_tokens", [1, 2, N])
def test_a_request_gives_exactly_n_tokens_each_stamped_in_order(loaded, name, new_tokens):
    backend = loaded[name]
    for ids in prompt_ids(2):
        generation = backend.generate_timed(backend.prepare_prompt(ids), new_tokens, time.perf_counter_ns)
        assert len(generation.output_ids) == new_tokens == len(generation.token_ns)
        stamps = [generation.started_ns, *generation.token_ns, generation.ended_ns]
        assert all(earlier < later for earlier, later in zip(stamps[:-1], stamps[1:-1]))  # each token a step later
        assert stamps[-2] <= stamps[-1]


@needs_transformers
@pytest.mark.parametrize("folder", [SHALLOW, DEEP], ids=lambda folder: folder.name)
def test_the_greedy_tokens_are_plain_generate_s(loaded, folder):
    backend = loaded[folder.name]
    for ids in prompt_ids(3):
        timed = backend.generate_timed(backend.prepare_prompt(ids), N, time.perf_counter_ns).output_ids
        assert list(timed) == plain_greedy(folder, ids, N)


@needs_transformers
def test_an_eos_the_model_would_answer_is_held_off(loaded, tmp_path):
    """With EOS set to the model's own first greedy token, plain generate stops at once;
    a request still gets its N tokens (min_new_tokens masks EOS)."""
    ids = prompt_ids(1)[0]
    first = loaded["tiny_llama_shallow"].generate_timed(loaded["tiny_llama_shallow"].prepare_prompt(ids), 1, time.perf_counter_ns)
    folder = shutil.copytree(SHALLOW, tmp_path / "eos_first")
    for name in ("config.json", "generation_config.json"):
        config = json.loads((folder / name).read_text())
        config["eos_token_id"] = first.output_ids[0]
        (folder / name).write_text(json.dumps(config))
    from perfgate.backends.transformers_lm import TransformersLMBackend

    backend = TransformersLMBackend(ONE_THREAD)
    backend.setup()
    backend.load(str(folder))
    generation = backend.generate_timed(backend.prepare_prompt(ids), N, time.perf_counter_ns)
    assert len(generation.output_ids) == N == len(generation.token_ns)
    assert first.output_ids[0] not in generation.output_ids


@needs_transformers
@pytest.mark.parametrize(
    "ids,fragment",
    [([], "an empty prompt"), ([3, 384], "prompt token id 384 is outside the model's vocabulary (ids 0 to 383)"), ([-1], "prompt token id -1")],
)
def test_a_prompt_the_model_cannot_take_is_refused_before_any_request(loaded, ids, fragment):
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        loaded["tiny_llama_shallow"].prepare_prompt(ids)


@needs_transformers
def test_batches_are_refused_in_one_line(loaded):
    with pytest.raises(UsageError, match="timed per request") as caught:
        loaded["tiny_llama_shallow"].prepare({"input_ids": [[1, 2]]})
    assert "\n" not in caught.value.message


# --- which directories pick it, and which it refuses -------------------------------------------


def write_config(folder, architectures: Any) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": architectures, "model_type": "x"}))
    return str(folder)


def test_a_causal_lm_directory_is_its_own_model_and_runs_in_transformers(tmp_path):
    for folder in (str(SHALLOW), str(DEEP), write_config(tmp_path / "qwen", ["Qwen2ForCausalLM"])):
        assert backends.model_file(folder) == folder
        assert backends.model_file(folder, "transformers") == folder
        assert backends.resolve_backend_name(folder, None) == "transformers"


def test_what_other_paths_resolve_to_is_unchanged(tmp_path):
    # the GenAI export carries an ONNX file: asked for onnxruntime, that file runs
    # (the folder itself picks onnxruntime-genai: tests/test_onnxruntime_genai_backend.py)
    genai = FIXTURES / "llm" / "tiny_llama_shallow_genai"
    assert backends.model_file(str(genai), "onnxruntime") == str(genai / "model.onnx")
    # a hub export: a causal LM's config.json beside model.onnx runs the ONNX file
    export = write_config(tmp_path / "export", ["LlamaForCausalLM"])
    (tmp_path / "export" / "model.onnx").write_bytes(b"onnx")
    assert backends.model_file(export) == str(tmp_path / "export" / "model.onnx")
    assert backends.resolve_backend_name(backends.model_file(export), None) == "onnxruntime"
    assert backends.model_file(export, "onnxruntime") == str(tmp_path / "export" / "model.onnx")
    # a SavedModel stays TensorFlow's even beside a causal LM's config.json
    saved = write_config(tmp_path / "saved", ["LlamaForCausalLM"])
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"")
    assert backends.resolve_backend_name(saved, None) == "tensorflow"
    assert backends.resolve_backend_name(str(FIXTURES / "mlp_reference.onnx"), None) == "onnxruntime"


@pytest.mark.parametrize(
    "architectures",
    [["BertForMaskedLM"], ["LlamaModel"], [], "LlamaForCausalLM", None, [3]],
    ids=["masked-lm", "base-model", "none", "a-string", "null", "a-number"],
)
def test_a_directory_of_no_causal_lm_is_not_taken_for_one(tmp_path, architectures):
    folder = write_config(tmp_path / "m", architectures)
    with pytest.raises(UsageError, match="not a SavedModel"):
        backends.model_file(folder)
    with pytest.raises(UsageError, match="perfgate cannot run it"):
        backends.resolve_backend_name(folder, None)


def test_a_config_json_that_is_no_json_is_not_taken_for_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_bytes(b"\xff{ not json")
    assert backends.causal_lm_architectures(str(tmp_path)) is None
    assert backends.causal_lm_architectures(str(tmp_path / "absent")) is None


@needs_transformers
@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda tmp: write_config(tmp / "bert", ["BertForMaskedLM"]), "config.json's architectures (['BertForMaskedLM']) name no *ForCausalLM"),
        (lambda tmp: write_config(tmp / "none", None), "config.json's architectures (None) name no *ForCausalLM"),
        (lambda tmp: str(tmp), "the directory has no config.json"),
        (lambda tmp: str(FIXTURES / "mlp_reference.onnx"), "it takes a model directory"),
    ],
    ids=["masked-lm", "no-architectures", "no-config", "a-file"],
)
def test_asking_transformers_for_what_is_no_causal_lm_is_one_clear_error(tmp_path, make, fragment):
    path = make(tmp_path)
    worker = InProcessWorker("candidate")
    with pytest.raises(ModelLoadError) as caught:
        worker.call(LoadModel(LoadRequest("transformers", path, ONE_THREAD)))
    message = caught.value.message
    assert message.startswith(f"candidate: cannot load model {path!r} with the transformers backend: ")
    assert fragment in message and "\n" not in message


def test_a_missing_transformers_gives_the_install_hint(monkeypatch):
    entry = backends.BUILTIN_BACKENDS["transformers"]
    monkeypatch.setitem(
        backends.BUILTIN_BACKENDS, "transformers", backends.BackendEntry(entry.target, "transformers_not_here", entry.extra, entry.suffixes)
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install 'perfgate\[llm,torch\]'"):
        backends.load_backend_class("transformers")


def test_a_transformers_that_cannot_be_imported_at_setup_gives_the_install_hint(monkeypatch):
    from perfgate.backends.transformers_lm import TransformersLMBackend

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"needs transformers and torch .*: pip install 'perfgate\[llm,torch\]'"):
        TransformersLMBackend(ONE_THREAD).setup()


def test_importing_perfgate_its_worker_and_the_backend_module_imports_no_transformers():
    code = (
        "import sys, perfgate, perfgate.worker.core, perfgate.worker.process, perfgate.backends.transformers_lm; "
        "perfgate.compare; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'tokenizers', 'torch', 'safetensors')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


# --- through the worker --------------------------------------------------------------------------


@needs_transformers
def test_the_worker_times_requests_and_hands_back_the_greedy_tokens():
    worker = InProcessWorker("reference")
    info = worker.call(LoadModel(LoadRequest("transformers", str(SHALLOW), ONE_THREAD)))
    assert info.backend.backend == "transformers" and info.inputs[0].name == "input_ids"
    ids = prompt_ids(3)
    assert worker.call(SetPrompts(tuple(ids))) == tuple(len(prompt) for prompt in ids)
    timings = worker.call(RunRequests((2, 0, 2), N))
    assert [timing.prompt for timing in timings] == [2, 0, 2]
    for timing in timings:
        assert isinstance(timing, RequestTiming)
        assert timing.tokens == N and len(timing.gaps_ns) == N - 1
        assert timing.ttft_ns > 0 and all(gap > 0 for gap in timing.gaps_ns)
        assert timing.e2e_ns >= timing.ttft_ns + sum(timing.gaps_ns)
    outputs = worker.call(RunGenerations((0, 2), N))
    assert outputs == [tuple(plain_greedy(SHALLOW, ids[0], N)), tuple(plain_greedy(SHALLOW, ids[2], N))]
    assert len(worker.call(RunRequests((1,), 1))[0].gaps_ns) == 0  # one token: a TTFT, no gap
    worker.close()


@needs_transformers
def test_a_worker_process_loads_the_model_with_its_threads_and_times_requests(tmp_path):
    worker = SubprocessWorker("candidate", tmp_path)
    worker.start(1, None)
    try:
        info = worker.call(LoadModel(LoadRequest("transformers", str(DEEP), ONE_THREAD, tuple(sys.path))), timeout=300)
        assert info.backend.threads == 1 and info.backend.details["layers"] == 16
        worker.call(SetPrompts(tuple(prompt_ids(2))), timeout=60)
        timings = worker.call(RunRequests((0, 1), 4), timeout=requests_timeout(60.0, 2))
        assert [(timing.prompt, timing.tokens, len(timing.gaps_ns)) for timing in timings] == [(0, 4, 3), (1, 4, 3)]
        assert worker.call(RunGenerations((1,), 4), timeout=60) == [tuple(plain_greedy(DEEP, prompt_ids(2)[1], 4))]
    finally:
        worker.close()


def test_a_request_that_hangs_is_stopped_and_named(tmp_path):
    worker = SubprocessWorker("reference", tmp_path)
    worker.start(1, None)
    try:
        worker.call(LoadModel(LoadRequest("fakes:HangingGenerator", "llm", ONE_THREAD, tuple(sys.path))), timeout=60)
        worker.call(SetPrompts(((1, 2),)), timeout=60)
        with pytest.raises(WorkerError) as caught:
            worker.call(RunRequests((0,), 8), timeout=requests_timeout(0.5, 1))
        assert caught.value.message.startswith(
            "reference: model 'llm' gave no answer within 0.5 s during a block of generation requests; "
            "it hangs, so its worker was stopped"
        )
    finally:
        worker.close()


class SteppingGenerator(GenerativeBackend):
    """A generative model on a virtual clock: the request's set-up and prefill take
    ``ttft`` ns, each later token ``step`` ns, returning ``tail`` ns after the last; its
    tokens count up from the prompt's length."""

    name = "stepping"
    clock: FakeClock
    ttft, step, tail = 5_000_000, 1_000_000, 20_000

    def load(self, path: str) -> None:
        if path == "no-tokens":
            self.step = -1

    def prepare_prompt(self, ids: Sequence[int], *, chat: bool = False) -> Any:
        return tuple(ids)

    def generate_timed(self, prompt: Any, max_new_tokens: int, clock: Callable[[], int]) -> Generation:
        started = clock()
        if self.step < 0:
            return Generation(started, (), clock(), ())
        stamps = []
        for position in range(max_new_tokens):
            self.clock.advance(self.ttft if position == 0 else self.step * (1 + position % 2))
            stamps.append(clock())
        self.clock.advance(self.tail)
        return Generation(started, tuple(stamps), clock(), tuple(range(len(prompt), len(prompt) + max_new_tokens)))

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "none", "0", "cpu", 1)


def stepping_worker(path: str = "m") -> InProcessWorker:
    clock = FakeClock()

    def factory(name: str, options: BackendOptions):
        backend = SteppingGenerator(options) if name == "stepping" else TinyBackend(options)
        backend.clock = clock
        return backend

    worker = InProcessWorker("candidate", WorkerCore(clock=clock.ns, backend_factory=factory))
    worker.call(LoadModel(LoadRequest("stepping", path, ONE_THREAD)))
    return worker


def test_a_request_s_ttft_gaps_and_end_to_end_come_from_its_clock_readings():
    worker = stepping_worker()
    worker.call(SetPrompts(((1, 2, 3), (4,))))
    first, second = worker.call(RunRequests((0, 1), 4))
    assert first == RequestTiming(prompt=0, ttft_ns=5_000_000, gaps_ns=(2_000_000, 1_000_000, 2_000_000), e2e_ns=10_020_000, tokens=4)
    assert second == RequestTiming(prompt=1, ttft_ns=5_000_000, gaps_ns=(2_000_000, 1_000_000, 2_000_000), e2e_ns=10_020_000, tokens=4)
    assert worker.call(RunGenerations((0, 1), 2)) == [(3, 4), (1, 2)]


@pytest.mark.parametrize(
    "call,error,fragment",
    [
        (RunRequests((2,), 4), WorkerError, "the worker has no prompt 2 (2 prompts handed)"),
        (RunRequests((-1,), 4), WorkerError, "the worker has no prompt -1"),
        (RunRequests((0,), 0), UsageError, "max_new_tokens 0: a request needs at least 1 new token"),
        (RunGenerations((5,), 4), WorkerError, "the worker has no prompt 5"),
        (SetFeeds(1, [{"input_ids": [[1]]}]), UsageError, "the stepping backend runs generative models, which are timed per request"),
    ],
)
def test_a_request_the_worker_cannot_serve_is_one_line_naming_its_side(call, error, fragment):
    worker = stepping_worker()
    worker.call(SetPrompts(((1, 2, 3), (4,))))
    with pytest.raises(error) as caught:
        worker.call(call)
    assert caught.value.message.startswith("candidate: ") and fragment in caught.value.message


def test_requests_before_any_prompt_was_handed_name_the_missing_prompts():
    with pytest.raises(WorkerError, match=r"no prompt 0 \(0 prompts handed\)"):
        stepping_worker().call(RunRequests((0,), 1))


def test_a_model_that_gives_no_token_is_a_worker_error():
    worker = stepping_worker("no-tokens")
    worker.call(SetPrompts(((1,),)))
    with pytest.raises(WorkerError, match="gave no new token for prompt 0"):
        worker.call(RunRequests((0,), 3))


@pytest.mark.parametrize("call", [SetPrompts(((1,),)), RunRequests((0,), 1), RunGenerations((0,), 1)])
def test_a_model_that_does_not_generate_is_refused_requests(call):
    worker = InProcessWorker("reference", WorkerCore(backend_factory=lambda name, options: TinyBackend(options)))
    worker.call(LoadModel(LoadRequest("tiny", "m.onnx", ONE_THREAD)))
    with pytest.raises(UsageError, match="'m.onnx' is not a generative model: the tiny backend is timed per batch"):
        worker.call(call)


def test_a_block_of_requests_is_limited_like_every_other_step():
    assert requests_timeout(2.0, 8).seconds == (16.0,)  # nothing known yet: a call timeout each
    assert requests_timeout(2.0, 0).seconds == (2.0,)
    limit = requests_timeout(DEFAULT_CALL_TIMEOUT_S, 8, expected_request_s=0.1)
    assert limit.seconds == (call_limit(DEFAULT_CALL_TIMEOUT_S, 0.8),) and limit.by_call_timeout


@needs_transformers
def test_a_text_prompt_is_tokenized_by_the_models_own_tokenizer():
    from transformers import AutoTokenizer

    worker = InProcessWorker("reference")
    worker.call(LoadModel(LoadRequest("transformers", str(SHALLOW), ONE_THREAD)))
    text = "the quick brown fox"
    expected = AutoTokenizer.from_pretrained(SHALLOW)(text)["input_ids"]
    assert worker.call(SetPrompts((text, tuple(expected)))) == (len(expected), len(expected))
    first, second = worker.call(RunGenerations((0, 1), N))
    assert first == second == tuple(plain_greedy(SHALLOW, expected, N))
    timing = worker.call(RunRequests((0,), N))[0]
    assert timing.prompt_tokens == len(expected) and timing.counted_by == "model"
    worker.close()


@needs_transformers
def test_chat_applies_the_models_chat_template():
    from transformers import AutoTokenizer

    worker = InProcessWorker("reference")
    worker.call(LoadModel(LoadRequest("transformers", str(SHALLOW), ONE_THREAD)))
    tokenizer = AutoTokenizer.from_pretrained(SHALLOW)
    templated = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    plain = len(tokenizer("hi")["input_ids"])
    (length,) = worker.call(SetPrompts(("hi",), chat=True))
    assert length == len(tokenizer(templated, add_special_tokens=False)["input_ids"]) and length > plain
    worker.close()


@needs_transformers
def test_chat_without_a_chat_template_is_a_usage_error(tmp_path):
    copy = tmp_path / "no_template"
    shutil.copytree(SHALLOW, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    worker = InProcessWorker("reference")
    worker.call(LoadModel(LoadRequest("transformers", str(copy), ONE_THREAD)))
    with pytest.raises(UsageError, match="--chat: model .* has no chat template"):
        worker.call(SetPrompts(("hi",), chat=True))
    assert worker.call(SetPrompts(("hi",))) != ()  # without --chat the same prompt is fine
    worker.close()


@needs_transformers
@pytest.mark.parametrize("new_tokens, fits", [(0, True), (1, False)])
def test_a_prompt_longer_than_the_context_is_a_usage_error(new_tokens, fits):
    worker = InProcessWorker("reference")
    worker.call(LoadModel(LoadRequest("transformers", str(SHALLOW), ONE_THREAD)))
    context = json.loads((SHALLOW / "config.json").read_text())["max_position_embeddings"]
    long_prompt = tuple([5] * context)
    if fits:
        assert worker.call(SetPrompts((long_prompt,), max_new_tokens=new_tokens)) == (context,)
    else:
        with pytest.raises(UsageError, match=f"prompt 1 has {context} tokens and 1 to generate: it needs {context + 1} positions, more than the model's context of {context}"):
            worker.call(SetPrompts(((1, 2), long_prompt), max_new_tokens=new_tokens))
    worker.close()


@needs_transformers
def test_the_models_info_unpickles_without_the_framework():
    # torch's version is a class of torch's: in a reply it made the parent import torch (2 s,
    # and an error in a parent without torch, as with --reference-python)
    import pickle

    worker = InProcessWorker("reference")
    info = worker.call(LoadModel(LoadRequest("transformers", str(SHALLOW), ONE_THREAD)))
    assert b"torch" not in pickle.dumps(info).replace(b"torch_version", b"")
    worker.close()
