"""The pytest plugin's options that are the table's (``pytest_option``): each one's flag
``--perfgate-NAME``, its ini key ``perfgate_NAME`` (a flag's an ini bool), its help and
its default as an ini file's text. The plugin's own options (which tests run, pytest-xdist)
are integrations/pytest_plugin.py's."""

from __future__ import annotations

from typing import Any, NamedTuple

from perfgate.options import all_options
from perfgate.options.model import Option


class PluginOption(NamedTuple):
    name: str  # the ini key without its perfgate_ prefix
    flag: str
    ini_type: str  # "string" or "bool"
    default: Any
    help: str


def table_options() -> tuple[PluginOption, ...]:
    return tuple(
        PluginOption(option.pytest_option, f"--perfgate-{option.pytest_option.replace('_', '-')}",
                     "bool" if option.is_flag else "string", _ini_default(option), option.pytest_help or option.help)
        for option in all_options() if option.pytest_option
    )  # fmt: skip


def _ini_default(option: Option) -> Any:
    if option.pytest_default is not None:
        return option.pytest_default
    if option.is_flag:
        return False
    return "" if option.default is None else str(option.default)
