"""The onnxruntime-genai backend on the GenAI export of the 2-layer fixture: loads with its
threads, exactly N greedy tokens stamped one by one, the same tokens as the transformers
backend on the same ids, text prompts through GenAI's own tokenizer, the worker's
SetPrompts / RunRequests / RunGenerations in-process and in a worker process; which folders
pick it, and its one-line refusals. No timing assertions beyond the order of clock readings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from test_llm_fixtures import LLM, needs_genai, needs_transformers, prompts

from perfgate import backends
from perfgate.backends.base import BackendOptions
from perfgate.errors import BackendUnavailableError, ModelLoadError, UsageError
from perfgate.worker import InProcessWorker
from perfgate.worker.process import SubprocessWorker
from perfgate.worker.protocol import LoadModel, LoadRequest, RequestTiming, RunGenerations, RunRequests, SetPrompts, requests_timeout

GENAI, SHALLOW = LLM / "tiny_llama_shallow_genai", LLM / "tiny_llama_shallow"
BACKEND = "onnxruntime-genai"
N = 12
ONE_THREAD = BackendOptions(threads=1)  # a second spinning thread on a busy 2-core machine costs 40x


def prompt_ids(count: int = 3) -> list[tuple[int, ...]]:
    return [tuple(row["prompt_ids"]) for row in prompts()[:count]]


def genai_backend(folder=GENAI, options: BackendOptions = ONE_THREAD):
    from perfgate.backends.onnxruntime_genai import OnnxRuntimeGenAIBackend

    backend = OnnxRuntimeGenAIBackend(options)
    backend.setup()
    backend.load(str(folder))
    return backend


@pytest.fixture(scope="module")
def loaded():
    backend = genai_backend()
    yield backend
    backend.close()


def loaded_worker(role: str = "reference", path=GENAI) -> InProcessWorker:
    worker = InProcessWorker(role)
    worker.call(LoadModel(LoadRequest(BACKEND, str(path), ONE_THREAD)))
    return worker


def copy_of_the_export(tmp_path, name: str = "copy"):
    return shutil.copytree(GENAI, tmp_path / name)


# --- the backend -------------------------------------------------------------------------------


@needs_genai
def test_it_loads_the_export_on_the_cpu_with_one_thread_and_says_what_it_is(loaded):
    import onnxruntime_genai as og

    info = loaded.info()
    assert (info.backend, info.framework, info.framework_version) == (BACKEND, "onnxruntime-genai", og.__version__)
    assert (info.device, info.threads) == ("cpu", 1)
    assert info.details["providers"] == ["cpu"] and info.details["layers"] == 2 and info.details["dtype"] == "float32"
    assert loaded.context_length() == 512 and loaded.describe_inputs()[0].name == "input_ids"


@needs_genai
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_the_threads_option_sets_the_intra_op_pool():
    """Each model gets its own intra-op pool of ``threads`` - 1 threads beside the caller's
    (GenAI's own threads come with the first model: one is loaded before counting)."""
    held = [genai_backend()]

    def threads_made_by_loading(threads: int) -> int:
        before = len(os.listdir("/proc/self/task"))
        held.append(genai_backend(options=BackendOptions(threads=threads)))
        assert held[-1].info().threads == threads == held[-1].info().details["intra_op_threads"]
        return len(os.listdir("/proc/self/task")) - before

    try:
        assert [threads_made_by_loading(threads) for threads in (3, 1, 2)] == [2, 0, 1]
    finally:
        for backend in held:
            backend.close()


@needs_genai
@pytest.mark.parametrize("new_tokens", [1, 2, N])
def test_a_request_gives_exactly_n_tokens_each_stamped_in_order(loaded, new_tokens):
    for ids in prompt_ids(2):
        generation = loaded.generate_timed(loaded.prepare_prompt(ids), new_tokens, time.perf_counter_ns)
        assert len(generation.output_ids) == new_tokens == len(generation.token_ns)
        assert generation.prompt_tokens == len(ids)
        stamps = [generation.started_ns, *generation.token_ns, generation.ended_ns]
        assert all(earlier < later for earlier, later in zip(stamps[:-1], stamps[1:-1]))
        assert stamps[-2] <= stamps[-1]


@needs_genai
def test_each_token_is_stamped_by_the_clock_it_is_given(loaded):
    readings = []

    def clock() -> int:
        readings.append(len(readings))
        return readings[-1]

    generation = loaded.generate_timed(loaded.prepare_prompt(prompt_ids(1)[0]), 5, clock)
    # started, one reading per token, ended: no reading is spent elsewhere
    assert (generation.started_ns, generation.token_ns, generation.ended_ns) == (0, (1, 2, 3, 4, 5), 6)


@needs_genai
@needs_transformers
def test_the_greedy_tokens_are_the_transformers_backend_s_for_every_prompt(loaded):
    from perfgate.backends.transformers_lm import TransformersLMBackend

    reference = TransformersLMBackend(ONE_THREAD)
    reference.setup()
    reference.load(str(SHALLOW))
    try:
        for ids in prompt_ids(len(prompts())):
            answers = [
                backend.generate_timed(backend.prepare_prompt(ids), 32, time.perf_counter_ns).output_ids
                for backend in (loaded, reference)
            ]
            assert answers[0] == answers[1] and len(answers[0]) == 32
    finally:
        reference.close()


@needs_genai
def test_an_eos_the_model_would_answer_is_held_off(loaded, tmp_path):
    ids = prompt_ids(1)[0]
    first = loaded.generate_timed(loaded.prepare_prompt(ids), 1, time.perf_counter_ns).output_ids[0]
    folder = copy_of_the_export(tmp_path, "eos_first")
    config = json.loads((folder / "genai_config.json").read_text())
    config["model"]["eos_token_id"] = first
    (folder / "genai_config.json").write_text(json.dumps(config))
    backend = genai_backend(folder)
    generation = backend.generate_timed(backend.prepare_prompt(ids), N, time.perf_counter_ns)
    assert len(generation.output_ids) == N == len(generation.token_ns) and first not in generation.output_ids


@needs_genai
def test_a_text_prompt_is_the_prompt_s_ids(loaded):
    for row in prompts():
        assert loaded.prepare_prompt(row["prompt"]).tolist() == row["prompt_ids"]


@needs_genai
@pytest.mark.parametrize(
    "ids,fragment",
    [
        ([], "an empty prompt"),
        ([3, 384], "prompt token id 384 is outside the model's vocabulary (ids 0 to 383)"),
        ([-1], "prompt token id -1 is outside the model's vocabulary"),
        ([2**31], f"prompt token id {2**31} is outside"),
    ],
)
def test_a_prompt_the_model_cannot_take_is_refused_before_any_request(loaded, ids, fragment):
    with pytest.raises(UsageError) as caught:
        loaded.prepare_prompt(ids)
    assert fragment in caught.value.message and "\n" not in caught.value.message


@needs_genai
def test_batches_are_refused_in_one_line(loaded):
    with pytest.raises(UsageError, match="timed per request") as caught:
        loaded.prepare({"input_ids": [[1, 2]]})
    assert "\n" not in caught.value.message


# --- through the worker --------------------------------------------------------------------------


@needs_genai
def test_the_worker_times_requests_and_hands_back_the_greedy_tokens(loaded):
    worker = loaded_worker()
    ids = prompt_ids(3)
    assert worker.call(SetPrompts(tuple(ids))) == tuple(len(prompt) for prompt in ids)
    timings = worker.call(RunRequests((2, 0, 2), N))
    assert [timing.prompt for timing in timings] == [2, 0, 2]
    for timing in timings:
        assert isinstance(timing, RequestTiming)
        assert timing.tokens == N and len(timing.gaps_ns) == N - 1 and timing.counted_by == "model"
        assert timing.ttft_ns > 0 and all(gap > 0 for gap in timing.gaps_ns)
        assert timing.e2e_ns >= timing.ttft_ns + sum(timing.gaps_ns)
    expected = [loaded.generate_timed(loaded.prepare_prompt(ids[i]), N, time.perf_counter_ns).output_ids for i in (0, 2)]
    assert worker.call(RunGenerations((0, 2), N)) == expected
    assert len(worker.call(RunRequests((1,), 1))[0].gaps_ns) == 0  # one token: a TTFT, no gap
    worker.close()


@needs_genai
def test_a_text_prompt_and_its_ids_give_the_same_answer_through_the_worker():
    worker = loaded_worker()
    row = prompts()[4]
    assert worker.call(SetPrompts((row["prompt"], tuple(row["prompt_ids"])))) == (len(row["prompt_ids"]),) * 2
    first, second = worker.call(RunGenerations((0, 1), N))
    assert first == second and len(first) == N
    assert worker.call(RunRequests((0,), N))[0].prompt_tokens == len(row["prompt_ids"])
    worker.close()


@needs_genai
@pytest.mark.parametrize("new_tokens, fits", [(0, True), (1, False)])
def test_a_prompt_longer_than_the_context_is_a_usage_error(new_tokens, fits):
    worker = loaded_worker()
    context = json.loads((GENAI / "genai_config.json").read_text())["model"]["context_length"]
    long_prompt = tuple([5] * context)
    if fits:
        assert worker.call(SetPrompts((long_prompt,), max_new_tokens=new_tokens)) == (context,)
    else:
        with pytest.raises(UsageError) as caught:
            worker.call(SetPrompts(((1, 2), long_prompt), max_new_tokens=new_tokens))
        assert caught.value.message == (
            f"reference: prompt 1 has {context} tokens and 1 to generate: it needs {context + 1} positions, "
            f"more than the model's context of {context}"
        )
    worker.close()


@needs_genai
def test_ids_outside_the_vocabulary_are_refused_by_set_prompts_in_one_line():
    worker = loaded_worker("candidate")
    with pytest.raises(UsageError) as caught:
        worker.call(SetPrompts(((1, 2), (7, 999))))
    assert caught.value.message == "candidate: prompt token id 999 is outside the model's vocabulary (ids 0 to 383)"
    worker.close()


@needs_genai
def test_chat_applies_the_models_chat_template():
    import onnxruntime_genai as og

    tokenizer = og.Tokenizer(og.Model(str(GENAI)))
    templated = tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": "hi"}]), add_generation_prompt=True)
    assert "hi" in templated and templated != "hi"
    worker = loaded_worker()
    (length,) = worker.call(SetPrompts(("hi",), chat=True))
    assert length == len(tokenizer.encode(templated)) > len(tokenizer.encode("hi"))
    worker.close()


@needs_genai
def test_chat_without_a_chat_template_is_a_usage_error(tmp_path):
    folder = copy_of_the_export(tmp_path, "no_template")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    worker = loaded_worker(path=folder)
    with pytest.raises(UsageError) as caught:
        worker.call(SetPrompts(("hi",), chat=True))
    assert caught.value.message == (
        f"reference: --chat: model {str(folder)!r} has no chat template (its tokenizer_config.json names none)"
    )
    assert worker.call(SetPrompts(("hi",))) != ()  # without --chat the same prompt is fine
    worker.close()


@needs_genai
def test_a_worker_process_loads_the_export_with_its_threads_and_times_requests(loaded, tmp_path):
    worker = SubprocessWorker("candidate", tmp_path)
    worker.start(1, None)
    try:
        info = worker.call(LoadModel(LoadRequest(BACKEND, str(GENAI), ONE_THREAD, tuple(sys.path))), timeout=300)
        assert info.backend.backend == BACKEND and info.backend.threads == 1 and info.backend.details["layers"] == 2
        ids = prompt_ids(2)
        worker.call(SetPrompts(tuple(ids)), timeout=60)
        timings = worker.call(RunRequests((0, 1), 4), timeout=requests_timeout(60.0, 2))
        assert [(timing.prompt, timing.tokens, len(timing.gaps_ns)) for timing in timings] == [(0, 4, 3), (1, 4, 3)]
        expected = loaded.generate_timed(loaded.prepare_prompt(ids[1]), 4, time.perf_counter_ns).output_ids
        assert worker.call(RunGenerations((1,), 4), timeout=60) == [expected]
    finally:
        worker.close()


# --- which folders pick it, and which it refuses ------------------------------------------------


def test_a_genai_folder_is_its_own_model_and_runs_in_onnxruntime_genai(tmp_path):
    # and a genai folder beside a causal LM's config.json is still GenAI's: its model.onnx needs GenAI's loop
    both = copy_of_the_export(tmp_path, "with_config_json")
    (both / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    for folder in (str(GENAI), str(both)):
        assert backends.backend_for_path(folder) == BACKEND
        assert backends.model_file(folder) == folder
        assert backends.model_file(folder, BACKEND) == folder
        assert backends.resolve_backend_name(backends.model_file(folder), None) == BACKEND
    # asked for onnxruntime by name, the folder's ONNX file runs there
    assert backends.model_file(str(GENAI), "onnxruntime") == str(GENAI / "model.onnx")


def test_a_folder_of_model_onnx_without_genai_config_still_runs_its_onnx_file(tmp_path):
    folder = copy_of_the_export(tmp_path, "plain")
    (folder / "genai_config.json").unlink()
    assert backends.model_file(str(folder)) == str(folder / "model.onnx")
    assert backends.resolve_backend_name(backends.model_file(str(folder)), None) == "onnxruntime"
    # a genai_config.json that is a folder, not a file, makes no GenAI model
    (folder / "genai_config.json").mkdir()
    assert backends.model_file(str(folder)) == str(folder / "model.onnx")


def wordlevel_copy(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    folder = copy_of_the_export(tmp_path, "wordlevel")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    return str(folder)


def tokenizer_json(text: str | None):
    def make(tmp_path):
        folder = copy_of_the_export(tmp_path, "tokenizer")
        if text is None:
            (folder / "tokenizer.json").unlink()
        else:
            (folder / "tokenizer.json").write_text(text)
        return str(folder)

    return make


def no_genai_config(tmp_path):
    folder = copy_of_the_export(tmp_path, "no_genai_config")
    (folder / "genai_config.json").unlink()
    return str(folder)


def genai_config_with(text: str):
    def make(tmp_path):
        folder = copy_of_the_export(tmp_path, "config")
        (folder / "genai_config.json").write_text(text)
        return str(folder)

    return make


def corrupt_onnx(tmp_path):
    folder = copy_of_the_export(tmp_path, "corrupt")
    (folder / "model.onnx").write_bytes(b"not an onnx file\n" * 4)
    return str(folder)


@needs_genai
@pytest.mark.parametrize(
    "make,fragment",
    [
        (wordlevel_copy, "its tokenizer.json holds a WordLevel tokenizer, which onnxruntime-genai cannot read"),
        (tokenizer_json("{ not json"), "it cannot read the model's tokenizer ([json.exception.parse_error"),
        (tokenizer_json(json.dumps({"model": {"type": "BPE"}})), "it cannot read the model's tokenizer (tokenizer.json's model type BPE) ("),
        (tokenizer_json(None), "it cannot read the model's tokenizer (Invalid file: "),
        (no_genai_config, "the directory has no genai_config.json (onnxruntime-genai's model builder writes it)"),
        (lambda tmp: str(tmp / "absent"), "with the onnxruntime-genai backend: no such folder"),
        (lambda tmp: str(GENAI / "model.onnx"), "it takes a model folder written by onnxruntime-genai's model builder"),
        (genai_config_with("{ not json"), "with onnxruntime-genai: genai_config.json: "),
        (genai_config_with("[1, 2]"), "genai_config.json holds no JSON object"),
        (genai_config_with(json.dumps({"model": {"type": "llama"}})), "with onnxruntime-genai: "),
        (corrupt_onnx, "with onnxruntime-genai: "),
    ],
    ids=[
        "wordlevel-tokenizer", "tokenizer-no-json", "tokenizer-bpe-without-vocabulary", "no-tokenizer", "no-genai-config",
        "no-folder", "a-file", "config-no-json", "config-a-list", "config-incomplete", "corrupt-onnx",
    ],
)
def test_what_genai_cannot_load_is_one_model_load_error(tmp_path, make, fragment):
    path = make(tmp_path)
    worker = InProcessWorker("candidate")
    with pytest.raises(ModelLoadError) as caught:
        worker.call(LoadModel(LoadRequest(BACKEND, path, ONE_THREAD)))
    message = caught.value.message
    assert message.startswith(f"candidate: cannot ") and repr(path) in message
    assert fragment in message and "\n" not in message and "Traceback" not in message


@needs_genai
def test_a_device_genai_cannot_use_is_refused_in_one_line():
    import onnxruntime_genai as og

    if og.is_cuda_available():
        pytest.skip("this onnxruntime-genai has CUDA")
    worker = InProcessWorker("reference")
    with pytest.raises(BackendUnavailableError) as caught:
        worker.call(LoadModel(LoadRequest(BACKEND, str(GENAI), BackendOptions(device="cuda:1", threads=1))))
    assert caught.value.message == (
        f"reference: onnxruntime-genai {og.__version__} has no CUDA support, so it cannot run on cuda:1: "
        f"pip uninstall -y onnxruntime-genai && pip install onnxruntime-genai-cuda"
    )


def test_a_missing_onnxruntime_genai_gives_the_install_hint(monkeypatch):
    from perfgate.backends.onnxruntime_genai import OnnxRuntimeGenAIBackend

    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # import onnxruntime_genai raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"needs onnxruntime_genai .*: pip install 'perfgate\[onnx-genai\]'$"):
        OnnxRuntimeGenAIBackend(ONE_THREAD).setup()
    with pytest.raises(BackendUnavailableError) as caught:
        backends.load_backend_class(BACKEND)  # looked for before the backend's module is imported
    assert caught.value.message == (
        "the onnxruntime-genai backend needs onnxruntime_genai, which is not installed: pip install 'perfgate[onnx-genai]'"
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install 'perfgate\[onnx-genai\]'"):
        InProcessWorker("reference").call(LoadModel(LoadRequest(BACKEND, str(GENAI), ONE_THREAD)))


def test_importing_perfgate_and_the_backend_module_imports_no_onnxruntime_genai():
    code = (
        "import sys, perfgate, perfgate.worker.core, perfgate.backends.onnxruntime_genai; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime_genai', 'onnxruntime')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
