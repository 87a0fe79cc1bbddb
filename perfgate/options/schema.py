"""The config file's JSON Schema (perfgate/schemas/config.schema.json), from the options'
keys; ``python -m perfgate.options --schema`` writes it, and a test keeps the shipped file
equal to it."""

from __future__ import annotations

import copy
import json
from typing import Any

from perfgate.options import all_options
from perfgate.options.model import Option

COMPARISON_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # configfile.NAME's pattern: a name goes into report file names

_STRINGS = {"type": "array", "items": {"type": "string"}}
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {  # configfile._KINDS, as JSON Schema
    "path": {"type": "string", "minLength": 1},
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "text-or-number": {"type": ["string", "number"]},
    "strings": _STRINGS,
    "ints": {"type": "array", "items": {"type": "integer"}},
    "numbers": {"type": "array", "items": {"type": "number"}},
    "inputs": {"oneOf": [_STRINGS, {"type": "object", "additionalProperties": {"type": "string"}}]},
}


def key_schema(option: Option) -> dict[str, Any]:
    """One key's schema: its kind's, with the option's own constraints (an array's on its items)."""
    schema = copy.deepcopy(_KIND_SCHEMAS[option.kind or "string"])
    for name, value in option.key_schema.items():
        if name == "items":
            schema["items"].update(value)
        else:
            schema[name] = value
    return {"description": option.key_help or option.help, **schema}


def config_schema() -> dict[str, Any]:
    properties = {option.key: key_schema(option) for option in all_options() if option.key}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "perfgate config",
        "description": "perfgate.toml, or the [tool.perfgate] table of pyproject.toml: defaults for every comparison (the top-level "
        "keys) and named comparisons ([comparisons.NAME]). Each key is a perfgate compare flag without its dashes; a repeatable "
        "flag's key is its plural.",
        "type": "object",
        "$ref": "#/$defs/options",
        "properties": {
            "comparisons": {
                "description": "Named comparisons, run in this order by `perfgate compare` without model arguments (--only NAME picks).",
                "type": "object",
                "propertyNames": {"pattern": COMPARISON_NAME},
                "additionalProperties": {"type": "object", "$ref": "#/$defs/options", "unevaluatedProperties": False},
            }
        },
        "unevaluatedProperties": False,
        "$defs": {"options": {"type": "object", "properties": properties}},
    }


def schema_text() -> str:
    """The schema file's text, as shipped."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
