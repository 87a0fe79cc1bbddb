"""Config files parsed into frozen objects: keys, types, layers, which file wins, and the
JSON Schema that describes the same keys. No model runs here."""

import json
import re
from dataclasses import FrozenInstanceError
from importlib import resources

import jsonschema
import pytest

from conftest import ROOT
from perfgate.cli.config import worst
from perfgate.configfile import KEYS, find, load, parse, report_path
from perfgate.errors import UsageError
from perfgate.configfile import tomllib

SCHEMA = json.loads(resources.files("perfgate").joinpath("schemas/config.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DOCS = ("cli.md", "action.md", "pytest.md")

TWO = """
time-budget = 30
budgets = ["latency.p99:+25%", "throughput:-10%"]
data = "eval.parquet"

[comparisons.ranker]
reference = "main/ranker.onnx"
candidate = "pr/ranker.onnx"
budgets = ["latency.p99:+10%"]

[comparisons.encoder]
reference = "main/encoder.onnx"
candidate = "pr/encoder.onnx"
time-budget = 90
inputs = { ids = "token_*" }
"""


def write(tmp_path, text, name="perfgate.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def toml_examples():
    """Every ```toml block of the docs that configures perfgate, as perfgate's table."""
    for page in DOCS:
        for block in re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S):
            document = tomllib.loads(block)
            if "tool" in document:
                if "perfgate" not in document["tool"]:
                    continue
                document = document["tool"]["perfgate"]
            yield pytest.param(document, id=f"{page}:{len(block)}")


def test_the_docs_have_config_examples():
    assert len(list(toml_examples())) >= 3


@pytest.mark.parametrize("document", list(toml_examples()))
def test_every_example_in_the_docs_is_valid_for_the_schema_and_the_parser(document):
    assert list(VALIDATOR.iter_errors(document)) == []
    parsed = parse(document, "perfgate.toml")
    for comparison in parsed.comparisons:
        parsed.build(comparison)  # every value passes CompareConfig's checks too


def test_the_schema_and_the_parser_allow_the_same_keys():
    assert set(SCHEMA["$defs"]["options"]["properties"]) == set(KEYS)
    assert set(SCHEMA["properties"]) == {"comparisons"}
    assert SCHEMA["unevaluatedProperties"] is False
    comparison = SCHEMA["properties"]["comparisons"]["additionalProperties"]
    assert comparison["$ref"] == "#/$defs/options" and comparison["unevaluatedProperties"] is False


@pytest.mark.parametrize("key", sorted(KEYS))
def test_the_schema_and_the_parser_refuse_the_same_wrong_types(key):
    wrong = {key: {"a table": 1}}
    assert list(VALIDATOR.iter_errors(wrong)), key
    with pytest.raises(UsageError, match=re.escape(f"perfgate.toml: {key} must be")):
        parse(wrong, "perfgate.toml")


def test_two_comparisons_over_the_defaults(tmp_path):
    config = load(str(write(tmp_path, TWO)), required=True)
    assert [c.name for c in config.comparisons] == ["ranker", "encoder"]
    ranker, encoder = (config.build(c) for c in config.comparisons)
    base = str(tmp_path)
    assert (ranker.reference.path, ranker.data.file) == (f"{base}/main/ranker.onnx", f"{base}/eval.parquet")
    assert ranker.measuring.time_budget_s == 30 and encoder.measuring.time_budget_s == 90
    assert encoder.data.inputs == {"ids": "token_*"}
    budgets = {str(b) for b in ranker.judging.budgets}
    assert {"latency.p99:+10%", "throughput:-10%"} <= budgets and "latency.p99:+25%" not in budgets
    assert "latency.p99:+25%" in {str(b) for b in encoder.judging.budgets}
    with pytest.raises(FrozenInstanceError):
        config.comparisons[0].name = "other"
    with pytest.raises(TypeError):
        config.comparisons[0].options["seed"] = 1


def test_overrides_replace_the_file_and_are_named_as_flags_when_refused(tmp_path):
    config = load(str(write(tmp_path, TWO)), required=True)
    encoder = config.comparisons[1]
    assert config.build(encoder, {"time_budget_s": 5.0}).measuring.time_budget_s == 5.0
    flags = lambda name, value: "--" + name.replace("_s", "").replace("_", "-")  # noqa: E731
    with pytest.raises(UsageError, match=r"\[comparisons.encoder\]: --time-budget must be a positive number"):
        config.build(encoder, {"time_budget_s": -1.0}, flags)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[comparisons.a]\nbatch-size = [1]", "perfgate.toml: unknown key 'comparisons.a.batch-size' (did you mean 'batch-sizes'?)"),
        ("tim-budget = 3", "perfgate.toml: unknown key 'tim-budget' (did you mean 'time-budget'?)"),
        ("zzz = 3", "perfgate.toml: unknown key 'zzz' (the keys: reference, candidate"),
        ("threads = '2'", "perfgate.toml: threads must be a whole number, got '2'"),
        ("[comparisons.a]\ninputs = { x = 1 }", "perfgate.toml: comparisons.a.inputs must be a list of"),
        ("comparisons = 3", "perfgate.toml: comparisons must be a table"),
        ("[comparisons.'a b']\nseed = 1", "a comparison's name is letters, digits"),
        ("time-budget = ", "perfgate.toml: not valid TOML: "),
    ],
)  # fmt: skip
def test_a_mistake_in_the_file_is_a_usage_error_naming_the_file_and_the_key(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(UsageError) as raised:
        find(None, str(tmp_path))
    assert message in raised.value.message.replace(str(tmp_path) + "/", "")
    assert "\n" not in raised.value.message


@pytest.mark.parametrize(
    "text, message",
    [
        ("[comparisons.a]\nreference = 'r.onnx'\ncandidate = 'c.onnx'\ndata = 'd.parquet'\ntime-budget = -1",
         "perfgate.toml [comparisons.a]: time-budget must be a positive number of seconds, got -1"),
        ("[comparisons.a]\nreference = 'r.onnx'\ndata = 'd.parquet'",
         "perfgate.toml [comparisons.a]: no candidate (set 'candidate' in the file"),
        ("[comparisons.a]\nreference = 'r.onnx'\ncandidate = 'c.onnx'\ndata = 'd.parquet'\ndevice = 'cpu'\ninclude-transfers = true",
         "include-transfers times host<->device copies, so it needs device = cuda"),
        ("[comparisons.a]\nreference = 'r.onnx'\ncandidate = 'c.onnx'\ndata = 'd.parquet'\nbudgets = ['latency.p95:fast']",
         "perfgate.toml [comparisons.a]: "),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_by_compare_configs_own_checks_in_the_files_words(tmp_path, text, message):
    config = load(str(write(tmp_path, text)), required=True)
    with pytest.raises(UsageError) as raised:
        config.build(config.comparisons[0])
    assert message in raised.value.message.replace(str(tmp_path) + "/", "")


def test_pyproject_is_read_only_with_a_tool_perfgate_table(tmp_path):
    write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    assert find(None, str(tmp_path)) == (None, ())
    write(tmp_path, "[tool.perfgate]\nthreads = 2\n[tool.perfgate.comparisons.m]\nreference = 'a.onnx'\n", "pyproject.toml")
    config, warnings = find(None, str(tmp_path))
    assert config.defaults == {"threads": 2} and config.comparisons[0].name == "m" and warnings == ()
    assert config.where("m").endswith("pyproject.toml [tool.perfgate.comparisons.m]")
    write(tmp_path, "[tool.perfgate.comparisons.m]\nrefrence = 'a.onnx'\n", "pyproject.toml")
    with pytest.raises(UsageError, match=r"pyproject.toml: unknown key 'tool.perfgate.comparisons.m.refrence'"):
        find(None, str(tmp_path))


def test_perfgate_toml_wins_over_pyproject_with_a_warning_and_config_wins_over_both(tmp_path):
    write(tmp_path, "[tool.perfgate]\nthreads = 2\n", "pyproject.toml")
    write(tmp_path, "threads = 3\n")
    config, warnings = find(None, str(tmp_path))
    assert config.defaults == {"threads": 3}
    assert len(warnings) == 1 and "using " in warnings[0] and "perfgate.toml" in warnings[0]
    other = write(tmp_path, "threads = 4\n", "ci.toml")
    assert find(str(other), str(tmp_path))[0].defaults == {"threads": 4}
    with pytest.raises(UsageError, match="--config nowhere.toml: no such file"):
        find("nowhere.toml", str(tmp_path))
    with pytest.raises(UsageError, match="no \\[tool.perfgate\\] table"):
        find(str(write(tmp_path, "[project]\n", "pyproject.toml")), str(tmp_path))


def test_only_picks_in_the_files_order_and_refuses_an_unknown_name(tmp_path):
    config = load(str(write(tmp_path, TWO)), required=True)
    assert [c.name for c in config.select(["encoder", "ranker"])] == ["ranker", "encoder"]
    assert [c.name for c in config.select(["encoder"])] == ["encoder"]
    with pytest.raises(UsageError, match=r"perfgate.toml has no comparison named 'rankr' \(it has: ranker, encoder\)"):
        config.select(["rankr"])


def test_paths_are_relative_to_the_file_and_uris_are_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    text = "[comparisons.a]\nreference = 'r.onnx'\ncandidate = '/abs/c.onnx'\ndata = 's3://bucket/d.parquet'\n"
    config = load(str(write(tmp_path / "sub", text)), required=True)
    options = config.comparisons[0].options
    assert options["reference"] == str(tmp_path / "sub" / "r.onnx")
    assert (options["candidate"], options["data"]) == ("/abs/c.onnx", "s3://bucket/d.parquet")


def test_report_paths_of_several_comparisons():
    assert report_path("out/r.json", "mlp", several=True) == "out/r.mlp.json"
    assert report_path("out/r.json", "mlp", several=False) == "out/r.json"
    assert report_path("out/{name}/r.json", "mlp", several=False) == "out/mlp/r.json"
    assert report_path(None, "mlp", several=True) is None
    assert report_path("r.json", None, several=True) == "r.json"


@pytest.mark.parametrize(
    "codes, expected",
    [([0, 0], 0), ([0, 4], 4), ([4, 1, 0], 1), ([1, 3], 3), ([2, 1, 3], 2), ([], 0)],
)
def test_the_exit_code_of_several_is_the_worst(codes, expected):
    assert worst(codes) == expected
