"""The GitHub Action's inputs that are compare's options: their action.yml entries, their
values from the step's ``INPUT_*`` variables, and the flags they become. The action's own
inputs (merge, the token, where it runs) are integrations/github_action.py's.

``python -m perfgate.options --action action.yml`` writes the table's inputs into
action.yml (``with_table_inputs``), between the marker comments below: under ``inputs:``
and in the gate step's ``env:``. The rest of the file (its description, the action's own
inputs, the steps) is written by hand and left as it is; a test fails while the file
differs from what the table gives.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

from perfgate.options import all_options
from perfgate.options.model import Option

_TRUE = {"true", "yes", "1", "on"}


def action_options() -> tuple[Option, ...]:
    return tuple(option.for_command("compare") for option in all_options() if option.action_input)


def action_inputs() -> dict[str, dict[str, Any]]:
    """action.yml's ``inputs:`` entries of compare's options (an empty input: compare's default)."""
    return {
        option.action_input: {"description": option.action_help or option.help, "required": False,
                              "default": "false" if option.is_flag else ""}
        for option in action_options()
    }  # fmt: skip


def action_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Each input's value, by the option's API name: a string, a tuple (``words``: split on
    spaces, commas and lines; ``lines``: one a line, as a column name may hold either), or a bool."""
    values: dict[str, Any] = {}
    for option in action_options():
        text = environ.get(f"INPUT_{option.action_input.upper().replace('-', '_')}", "").strip()
        if option.is_flag:
            values[option.name] = text.lower() in _TRUE
        elif option.action_split == "words":
            values[option.name] = tuple(re.split(r"[\s,]+", text)) if text else ()
        elif option.action_split == "lines":
            values[option.name] = tuple(line.strip() for line in text.splitlines() if line.strip())
        else:
            values[option.name] = text
    return values


def action_args(values: Mapping[str, Any]) -> list[str]:
    """The flags the inputs given become (an empty one is left to the config file or the default)."""
    args: list[str] = []
    for option in action_options():
        value = values.get(option.name)
        if option.is_flag:
            args += [option.flag] if value else []
        elif isinstance(value, tuple):
            for item in value:
                args += [option.flag, item]
        elif value:
            args += [option.flag, value]
    return args


COMMAND = "python -m perfgate.options --action action.yml"
INPUTS_BEGIN = f"# compare's options, from perfgate/options/table.py ({COMMAND} writes them)"
ENV_BEGIN = f"# their values, from the same table ({COMMAND} writes them)"
END = "# (the options table's end)"
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def with_table_inputs(text: str) -> str:
    """action.yml's ``text`` with the table's inputs and their gate-step variables written
    between the markers, everything else as it was."""
    text = _between(text, INPUTS_BEGIN, _input_lines)
    return _between(text, ENV_BEGIN, _env_lines)


def _input_lines(indent: str) -> list[str]:
    lines = []
    for name, entry in action_inputs().items():
        lines += [
            f"{indent}{name}:",
            f"{indent}  description: {_scalar(entry['description'])}",
            f"{indent}  required: {'true' if entry['required'] else 'false'}",
            f"{indent}  default: {json.dumps(entry['default'])}",
        ]
    return lines


def _env_lines(indent: str) -> list[str]:
    return [f"{indent}{_variable(name)}: ${{{{ inputs.{name} }}}}" for name in action_inputs()]


def _variable(name: str) -> str:
    return f"INPUT_{name.upper().replace('-', '_')}"


def _between(text: str, begin: str, lines_at: Callable[[str], list[str]]) -> str:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    if len(starts) != 1:
        raise ValueError(f"action.yml needs the line {begin!r} once (found {len(starts)})")
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == END), None)
    if end is None:
        raise ValueError(f"action.yml needs the line {END!r} after {begin!r}")
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    return "\n".join([*lines[: start + 1], *lines_at(indent), *lines[end:]])


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar on one line: plain where YAML reads it back as the same
    string, else double-quoted (a JSON string is one)."""
    plain = (
        text[:1].isalpha() and text == text.strip() and text.lower() not in _YAML_WORDS
        and not any(part in text for part in (": ", " #", "\n", "\t"))
        and not text.endswith(":")
    )  # fmt: skip
    return text if plain else json.dumps(text, ensure_ascii=False)
