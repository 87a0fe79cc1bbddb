"""The GitHub Action's inputs that are compare's options: their action.yml entries, their
values from the step's ``INPUT_*`` variables, and the flags they become. A test keeps
action.yml's entries equal to ``action_inputs()``; the action's own inputs (merge, the
token, where it runs) are integrations/github_action.py's."""

from __future__ import annotations

import re
from typing import Any, Mapping

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
