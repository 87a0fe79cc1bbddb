"""The options table is the one declaration of every option: the command line, the config
file and its schema, the action's inputs (written into action.yml), the pytest plugin's
options and the flags in messages all come from it, and the report's settings hold it."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from perfgate import configfile
from perfgate.cli import make_cli
from perfgate.configfile import parse
from perfgate.errors import UsageError, option
from perfgate.integrations.github_action import Inputs
from perfgate.integrations.pytest_plugin import pytest_addoption
from perfgate.options import COMMANDS, OPTIONS, Option, config_keys, options_for, register, registered, spell_for
from perfgate.options.__main__ import main as options_main
from perfgate.options.action import COMMAND, action_inputs, with_table_inputs
from perfgate.options.schema import _KIND_SCHEMAS, config_schema, schema_text
from perfgate.results import Settings

ROOT = Path(__file__).resolve().parent.parent
TOY = Option(
    "toy_knob", ("--toy-knob",), type=int, minimum=1, default=3, show_default=True, metavar="N",
    help="A toy option that only this test declares.", key="toy-knob", kind="int", key_schema={"minimum": 1},
    action_input="toy-knob", action_help="The toy option, as an input.", pytest_option="toy_knob",
)  # fmt: skip
# compare's options that a report's settings (results.Settings) do not hold, and where the
# report says them instead; any other option of a comparison must be a field of Settings
NOT_IN_SETTINGS = {
    "reference": "compared.reference", "candidate": "compared.candidate", "data": "compared.data",
    "reference_inputs": "compared.reference.inputs", "candidate_inputs": "compared.candidate.inputs",
    "reference_backend": "compared.reference.backend", "candidate_backend": "compared.candidate.backend",
    "reference_python": "compared.reference.python", "candidate_python": "compared.candidate.python",
    "max_latency_increase": "settings.budgets", "concurrency": "settings.loads", "rates": "settings.loads",
    # secrets: a report says which header names were sent (compared.<side>.backend.details), never their values
    "reference_headers": "compared.reference.backend", "candidate_headers": "compared.candidate.backend",
    "allow_nonfinite": "outputs.nonfinite_inputs",
    "baseline": "compared.reference: the baseline's model and path",
    "allow_env_mismatch": "warnings: what differed from the baseline's environment",
    "config_path": "each of the file's options in its own place", "only": "which comparisons ran: one report each",
    "call_timeout_s": "nowhere: how long a hang is waited for changes no measurement",
}  # fmt: skip
SETTINGS_FROM = {"loads": ("concurrency", "rates")}  # fields of Settings that no option is named after


def options_missing_from_settings() -> set[str]:
    fields = {field.name for field in dataclasses.fields(Settings)}
    return {declared.name for declared in options_for("compare")
            if not declared.face and declared.name not in fields and declared.name not in NOT_IN_SETTINGS}  # fmt: skip


class RecordingParser:
    """What pytest_addoption gives pytest's parser: each flag's keywords, each ini key's."""

    def __init__(self):
        self.flags, self.ini = {}, {}

    def getgroup(self, name, description=""):
        return self

    def addoption(self, flag, **keywords):
        self.flags[flag] = keywords

    def addini(self, name, help, type=None, default=None):
        self.ini[name] = (type, default, help)


def plugin_options() -> RecordingParser:
    parser = RecordingParser()
    pytest_addoption(parser)
    return parser


def test_a_toy_option_declared_once_reaches_the_help_the_schema_the_action_and_the_pytest_plugin():
    with registered(TOY):
        result = CliRunner().invoke(make_cli(), ["compare", "--help"])
        assert result.exit_code == 0, result.output
        assert "--toy-knob N" in result.output and "A toy option that only this test declares." in result.output
        assert config_schema()["$defs"]["options"]["properties"]["toy-knob"] == {
            "description": "A toy option that only this test declares.", "type": "integer", "minimum": 1}  # fmt: skip
        assert action_inputs()["toy-knob"] == {"description": "The toy option, as an input.", "required": False, "default": ""}
        inputs = Inputs.from_environment({"INPUT_REFERENCE": "r.onnx", "INPUT_CANDIDATE": "c.onnx", "INPUT_DATA": "d.parquet",
                                          "INPUT_TOY_KNOB": "7"})  # fmt: skip
        assert ["--toy-knob", "7"] == inputs.compare_args(Path("r.json"), Path("r.html"))[7:9]
        assert parse({"toy-knob": 5}, "perfgate.toml").defaults == {"toy_knob": 5}
        with pytest.raises(UsageError, match="toy-knob must be a whole number"):
            parse({"toy-knob": "five"}, "perfgate.toml")
        assert spell_for("compare")("toy_knob", "0") == "--toy-knob 0"
        assert "--toy-knob" not in CliRunner().invoke(make_cli(), ["run", "--help"]).output  # compare's only
        plugin = plugin_options()
        assert plugin.flags["--perfgate-toy-knob"] == {"dest": "perfgate_toy_knob", "default": None,
                                                       "help": "A toy option that only this test declares."}  # fmt: skip
        assert plugin.ini["perfgate_toy_knob"] == ("string", "3", "A toy option that only this test declares.")
        assert options_missing_from_settings() == {"toy_knob"}  # a report would not say it: the test below fails
        action = yaml.safe_load(with_table_inputs((ROOT / "action.yml").read_text()))
        assert action["inputs"]["toy-knob"] == {"description": "The toy option, as an input.", "required": False, "default": ""}
        gate = next(step for step in action["runs"]["steps"] if step.get("id") == "gate")
        assert gate["env"]["INPUT_TOY_KNOB"] == "${{ inputs.toy-knob }}" and "merge" in action["inputs"]
    assert "toy-knob" not in config_schema()["$defs"]["options"]["properties"] and "toy-knob" not in action_inputs()
    assert "--perfgate-toy-knob" not in plugin_options().flags and not options_missing_from_settings()
    assert "--toy-knob" not in CliRunner().invoke(make_cli(), ["compare", "--help"]).output
    with pytest.raises(UsageError, match="unknown key 'toy-knob'"):
        parse({"toy-knob": 5}, "perfgate.toml")


def test_the_pytest_plugin_s_options_that_are_the_table_s_keep_their_names_and_defaults():
    plugin = plugin_options()
    from_table = {declared.pytest_option: declared.name for declared in OPTIONS if declared.pytest_option}
    assert from_table == {"config": "config_path", "time_budget": "time_budget_s", "threads": "threads", "device": "device",
                          "json": "json_path", "strict": "fail_on_inconclusive"}  # fmt: skip
    assert {name: plugin.ini[name][:2] for name in plugin.ini} == {
        "perfgate_config": ("string", ""), "perfgate_time_budget": ("string", "10"), "perfgate_threads": ("string", "1"),
        "perfgate_device": ("string", "cpu"), "perfgate_json": ("string", ""), "perfgate_strict": ("bool", False),
        "perfgate_skip": ("bool", False), "perfgate_only": ("bool", False), "perfgate_xdist": ("string", "skip"),
    }  # fmt: skip
    assert plugin.flags["--perfgate-strict"]["action"] == "store_true" and "action" not in plugin.flags["--perfgate-threads"]
    assert set(plugin.flags) == {f"--{name.replace('_', '-')}" for name in plugin.ini}


def test_every_option_of_a_comparison_is_in_the_report_s_settings_or_says_where_the_report_has_it():
    missing = options_missing_from_settings()
    assert not missing, f"add {sorted(missing)} to results.Settings (and where the pipeline fills it), or to NOT_IN_SETTINGS"
    names = {declared.name for declared in options_for("compare")}
    assert set(NOT_IN_SETTINGS) <= names and {name for held in SETTINGS_FROM.values() for name in held} <= names
    assert {field.name for field in dataclasses.fields(Settings)} <= names | set(SETTINGS_FROM)


def test_the_shipped_config_schema_is_the_one_the_table_gives():
    shipped = resources.files("perfgate").joinpath("schemas/config.schema.json").read_text()
    assert shipped == schema_text(), "run: python -m perfgate.options --schema"


def test_the_action_s_compare_inputs_are_the_table_s_and_reach_the_gate_step():
    text = (ROOT / "action.yml").read_text()
    action = yaml.safe_load(text)
    generated = action_inputs()
    assert {name: action["inputs"][name] for name in generated} == generated, f"run: {COMMAND}"
    gate = next(step for step in action["runs"]["steps"] if step.get("id") == "gate")
    for name in generated:
        assert gate["env"][f"INPUT_{name.upper().replace('-', '_')}"] == f"${{{{ inputs.{name} }}}}", f"run: {COMMAND}"
    assert text == with_table_inputs(text), f"action.yml differs from the options table: run {COMMAND}"


def test_the_action_command_rewrites_a_stale_action_yml_s_table_inputs_and_leaves_the_rest(tmp_path, capsys):
    shipped = (ROOT / "action.yml").read_text()
    stale = tmp_path / "action.yml"
    stale.write_text(shipped.replace("        INPUT_DEVICE: ${{ inputs.device }}\n", "")
                     .replace("cpu, cuda or cuda:N, for both models", "cpu or cuda"))  # fmt: skip
    assert options_main(["--action", str(stale), "--check"]) == 1
    assert f"differs from the options table: run python -m perfgate.options --action {stale}" in capsys.readouterr().out
    assert options_main(["--action", str(stale)]) == 0 and stale.read_text() == shipped
    assert options_main(["--action", str(stale), "--check"]) == 0
    unmarked = tmp_path / "unmarked.yml"
    unmarked.write_text(shipped.replace("  # (the options table's end)\n", ""))
    with pytest.raises(SystemExit) as exited:
        options_main(["--action", str(unmarked)])
    assert exited.value.code == 2 and "needs the line" in capsys.readouterr().err
    assert unmarked.read_text() == shipped.replace("  # (the options table's end)\n", "")


def test_every_option_is_well_formed():
    names = [declared.name for declared in OPTIONS]
    assert len(names) == len(set(names))
    keys = [declared.key for declared in OPTIONS if declared.key]
    assert len(keys) == len(set(keys)) and configfile.KEYS == config_keys()
    for declared in OPTIONS:
        assert declared.commands and declared.commands <= set(COMMANDS), declared.name
        assert declared.flag.startswith("--") and declared.help, declared.name
        if declared.key:
            assert declared.kind in configfile._KINDS and declared.kind in _KIND_SCHEMAS, declared.name
        for commands in declared.variants:
            assert set(commands.split()) <= declared.commands, declared.name
    for command in COMMANDS:
        flags = [flag for declared in options_for(command) for flag in declared.flags]
        assert len(flags) == len(set(flags)), command


def test_messages_spell_an_option_as_the_command_that_refused_it_spells_it():
    assert spell_for("compare")("time_budget_s", None) == "--time-budget"
    assert spell_for("compare")("call_timeout_s", "0") == "--call-timeout 0"
    assert spell_for("compare")("json_path", None) == "--json"
    assert spell_for("calibrate")("reference", None) == "--model"  # calibrate's one model answers for both sides
    assert spell_for("calibrate")("candidate_backend", "x") == "--backend x"
    assert spell_for("run")("time_budget_s", None) == "--time-budget"
    assert spell_for("calibrate")("cold_starts", None) == "--cold-starts"  # not calibrate's: compare's flag
    assert spell_for("merge")("output", None) == "--output"
    error = UsageError(f"{option('threads')} must be at least 1, got 0")
    assert error.in_words(spell_for("run")) == "--threads must be at least 1, got 0"


def test_registering_refuses_a_name_taken_or_an_unknown_command():
    with pytest.raises(ValueError, match="exists already"):
        register(Option("seed", ("--seed-again",), help="x"))
    with pytest.raises(ValueError, match="no such command"):
        register(Option("toy", ("--toy",), help="x", commands=frozenset({"deploy"})))
    with registered(TOY), pytest.raises(ValueError, match="exists already"):
        register(TOY)
    assert all(declared.name != TOY.name for declared in options_for("compare"))


def test_each_command_s_variant_changes_only_its_own_wording():
    def helped(command: str, name: str) -> str:
        return next(declared.help for declared in options_for(command) if declared.name == name)

    assert helped("compare", "time_budget_s") == "Longest time to measure before an undecided check is inconclusive."
    assert helped("run", "time_budget_s") == "Longest time to measure, shared between the batch sizes."
    assert next(d for d in options_for("run") if d.name == "data").required
    assert not next(d for d in options_for("compare") if d.name == "data").required
    assert next(d for d in options_for("report") if d.name == "max_latency_increase").default is None


def test_the_docs_option_table_gives_compare_s_defaults_as_the_table_does():
    rows = {}
    for row in (ROOT / "docs" / "cli.md").read_text().split("## Config files")[0].splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if row.startswith("| `--") and len(cells) == 3:
            rows.update({flag: cells[1] for flag in re.findall(r"--[a-z-]+", cells[0])})
    for declared in options_for("compare"):
        if declared.show_default:
            default = declared.default[0] if isinstance(declared.default, tuple) else declared.default
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert rows[declared.flag] == shown, declared.flag
