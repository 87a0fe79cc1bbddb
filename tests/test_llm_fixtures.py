"""The generative-model fixtures (fixtures/make_llm_fixtures.py): each loads, its tokenizer
gives back prompts.parquet's ids and text, greedy generation is deterministic, and with EOS
held off it gives exactly the number of tokens asked for; each directory stays small.

No timing here: the shallow/deep cost ratio is the builder's docstring's measurement."""

import importlib.util
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FIXTURES, load_script

LLM = FIXTURES / "llm"
HF_MODELS = {"tiny_llama_shallow": 2, "tiny_llama_deep": 16}  # name: decoder layers
GENAI_MODEL = "tiny_llama_shallow_genai"
NEW_TOKENS = 12
MAX_BYTES = 2 * 1024 * 1024

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
    reason="transformers and torch are not installed (pip install -e '.[llm,torch]')",
)
needs_genai = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime_genai") is None,
    reason="onnxruntime-genai is not installed (pip install -e '.[onnx-genai]')",
)


def prompts() -> list[dict]:
    return pq.read_table(FIXTURES / "prompts.parquet").to_pylist()


def size(path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def load_builder():
    return load_script(FIXTURES / "make_llm_fixtures.py")


def test_each_fixture_is_small_and_has_its_files():
    folders = sorted(path.name for path in LLM.iterdir())
    assert folders == sorted([*HF_MODELS, GENAI_MODEL])
    for folder in LLM.iterdir():
        assert size(folder) < MAX_BYTES, folder
        assert {"tokenizer.json", "tokenizer_config.json"} <= {path.name for path in folder.iterdir()}
    for name in HF_MODELS:
        assert {"config.json", "generation_config.json", "model.safetensors"} <= {path.name for path in (LLM / name).iterdir()}
    assert {"genai_config.json", "model.onnx"} <= {path.name for path in (LLM / GENAI_MODEL).iterdir()}
    assert (FIXTURES / "prompts.parquet").stat().st_size < MAX_BYTES


def test_the_prompts_table_has_text_and_its_ids():
    table = pq.read_table(FIXTURES / "prompts.parquet")
    assert table.schema == pa.schema([("prompt", pa.string()), ("prompt_ids", pa.list_(pa.int32()))])
    assert 20 <= table.num_rows <= 40
    for row in prompts():
        assert row["prompt"] and row["prompt_ids"]


def test_every_model_directory_carries_the_same_byte_level_bpe_tokenizer():
    tokenizers = {folder.name: json.loads((folder / "tokenizer.json").read_text()) for folder in LLM.iterdir()}
    first = next(iter(tokenizers.values()))
    assert all(tokenizer == first for tokenizer in tokenizers.values())
    assert first["model"]["type"] == "BPE" and first["pre_tokenizer"]["type"] == "ByteLevel"  # onnxruntime-genai refuses WordLevel
    config = json.loads((LLM / GENAI_MODEL / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in config["chat_template"]


@needs_transformers
@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_the_tokenizer_round_trips_the_prompts(name):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(LLM / name)
    for row in prompts():
        assert tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] == row["prompt_ids"]
        assert tokenizer.decode(row["prompt_ids"]) == row["prompt"]
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def hf_models():
    import torch
    from transformers import AutoModelForCausalLM

    # one thread: these models' operators are microseconds, and a second thread that spins on a
    # busy 2-core box made this module take 70 s instead of 10 s (the 16-layer model: 38 s instead of 0.9 s)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {name: AutoModelForCausalLM.from_pretrained(LLM / name).eval() for name in HF_MODELS}
    torch.set_num_threads(threads)


def hf_greedy(model, ids, **options):
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=NEW_TOKENS, **options)
    return out[0, len(ids) :].tolist()


@needs_transformers
@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_the_hf_models_load_in_float32_with_their_layers(hf_models, name):
    import torch

    model = hf_models[name]
    assert model.dtype == torch.float32  # float16 on disk, config.json's dtype says float32
    assert model.config.num_hidden_layers == HF_MODELS[name]
    assert model.config.vocab_size == len(json.loads((LLM / name / "tokenizer.json").read_text())["model"]["vocab"])


@needs_transformers
@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_hf_greedy_generation_is_deterministic_and_gives_exactly_n_tokens(hf_models, name):
    model = hf_models[name]
    for row in prompts()[:3]:
        first = hf_greedy(model, row["prompt_ids"], min_new_tokens=NEW_TOKENS)
        assert len(first) == NEW_TOKENS
        assert hf_greedy(model, row["prompt_ids"], min_new_tokens=NEW_TOKENS) == first


@needs_transformers
@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_min_new_tokens_holds_off_an_eos_the_model_would_answer_first(hf_models, name):
    # a random model hardly ever answers <|endoftext|>, so its first greedy token plays EOS
    model = hf_models[name]
    ids = prompts()[0]["prompt_ids"]
    eos = hf_greedy(model, ids)[0]
    assert hf_greedy(model, ids, eos_token_id=eos) == [eos]  # stops at once
    held_off = hf_greedy(model, ids, eos_token_id=eos, min_new_tokens=NEW_TOKENS)
    assert len(held_off) == NEW_TOKENS and eos not in held_off  # EOS's logit masked until N tokens


@needs_transformers
def test_rebuilding_gives_the_committed_weights_tokenizer_and_prompts(tmp_path):
    from safetensors.numpy import load_file

    load_builder().build(tmp_path, genai=False)
    for name in HF_MODELS:
        rebuilt, committed = (load_file(folder / name / "model.safetensors") for folder in (tmp_path / "llm", LLM))
        assert rebuilt.keys() == committed.keys()
        assert all((rebuilt[key] == committed[key]).all() for key in committed)
        assert (tmp_path / "llm" / name / "tokenizer.json").read_text() == (LLM / name / "tokenizer.json").read_text()
    assert pq.read_table(tmp_path / "prompts.parquet").equals(pq.read_table(FIXTURES / "prompts.parquet"))


def genai_greedy(model, ids, min_new_tokens=0):
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    # lengths count the prompt; min_length holds off EOS until then
    params.set_search_options(do_sample=False, max_length=len(ids) + NEW_TOKENS, min_length=len(ids) + min_new_tokens)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    while not generator.is_done():
        generator.generate_next_token()
    return [int(token) for token in generator.get_sequence(0)[len(ids) :]]


@needs_genai
def test_the_genai_export_tokenizes_the_prompts_and_generates_exactly_n_tokens():
    import onnxruntime_genai as og

    model = og.Model(str(LLM / GENAI_MODEL))
    tokenizer = og.Tokenizer(model)
    for row in prompts():
        assert [int(token) for token in tokenizer.encode(row["prompt"])] == row["prompt_ids"]
        assert tokenizer.decode(row["prompt_ids"]) == row["prompt"]
    for row in prompts()[:3]:
        first = genai_greedy(model, row["prompt_ids"], min_new_tokens=NEW_TOKENS)
        assert len(first) == NEW_TOKENS
        assert genai_greedy(model, row["prompt_ids"], min_new_tokens=NEW_TOKENS) == first


@needs_genai
def test_genai_min_length_holds_off_an_eos_the_model_would_answer_first(tmp_path):
    import onnxruntime_genai as og

    ids = prompts()[0]["prompt_ids"]
    eos = genai_greedy(og.Model(str(LLM / GENAI_MODEL)), ids)[0]
    folder = shutil.copytree(LLM / GENAI_MODEL, tmp_path / GENAI_MODEL)
    config = json.loads((folder / "genai_config.json").read_text())
    config["model"]["eos_token_id"] = eos
    (folder / "genai_config.json").write_text(json.dumps(config))
    model = og.Model(str(folder))
    assert genai_greedy(model, ids) == []  # done at once; the sequence leaves EOS out
    held_off = genai_greedy(model, ids, min_new_tokens=NEW_TOKENS)
    assert len(held_off) == NEW_TOKENS and eos not in held_off


@needs_transformers
@pytest.mark.parametrize("name", ["tiny_llama_shallow", "tiny_llama_deep"])
def test_greedy_answers_are_whole_characters_a_server_can_stream(name):
    # a served model's streamer holds back bytes of an unfinished character: an answer made of
    # such tokens streams no text, and its time to first token cannot be read
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(LLM / name)
    model = AutoModelForCausalLM.from_pretrained(LLM / name).eval()
    for row in prompts()[:6]:
        ids = torch.tensor([row["prompt_ids"]])
        with torch.inference_mode():
            answer = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, min_new_tokens=16, do_sample=False)
        text = tokenizer.decode(answer[0, ids.shape[1]:])
        assert "\ufffd" not in text and text.strip(), (row["prompt"], text)
