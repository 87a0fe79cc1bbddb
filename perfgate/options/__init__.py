"""Every option, declared once: the click options, the config file's keys and JSON Schema,
the GitHub Action's inputs and the flags that error messages name are all read from here.

A new option is one ``Option`` in perfgate/options/table.py (plus, where its values need
it, a check where the API checks values: ``config.check_common_options`` or
``CompareConfig``). ``registered`` adds one for a while (a test's, an extension's).
``python -m perfgate.options --schema`` writes the config schema the table gives.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from perfgate.options.model import COMMANDS, Option, spelled
from perfgate.options.table import OPTIONS

__all__ = ["COMMANDS", "OPTIONS", "Option", "all_options", "config_keys", "options_for", "register", "registered", "spell_for"]

_extra: list[Option] = []


def all_options() -> tuple[Option, ...]:
    return (*OPTIONS, *_extra)


def register(option: Option) -> Option:
    """Add ``option`` after the table's (its name must be new)."""
    if any(known.name == option.name for known in all_options()):
        raise ValueError(f"an option named {option.name!r} exists already")
    unknown = option.commands - set(COMMANDS)
    if unknown:
        raise ValueError(f"no such command: {', '.join(sorted(unknown))}")
    _extra.append(option)
    return option


def unregister(name: str) -> None:
    _extra[:] = [option for option in _extra if option.name != name]


@contextlib.contextmanager
def registered(option: Option) -> Iterator[Option]:
    """``option`` registered inside the block, and gone after it."""
    register(option)
    try:
        yield option
    finally:
        unregister(option.name)


def options_for(command: str) -> tuple[Option, ...]:
    """``command``'s options in --help's order, each as that command has it."""
    return tuple(option.for_command(command) for option in all_options() if option.takes(command))


def spell_for(command: str) -> Callable[[str, str | None], str]:
    """An option's API name as ``command``'s flag in messages ('time_budget_s' -> '--time-budget');
    an option the command lacks is spelled as compare's (it may come from a config file)."""
    return spelled(options_for(command), options_for("compare") if command != "compare" else ())


def config_keys() -> dict[str, tuple[str, str]]:
    """The config file's keys: key -> (the API keyword, the kind of its value)."""
    return {option.key: (option.name, option.kind or "string") for option in all_options() if option.key}


def by_name(command: str) -> dict[str, Option]:
    return {option.name: option for option in options_for(command)}


def report_paths(command: str, params: dict[str, Any]) -> dict[str, str | None]:
    """The report files a command's parameters ask for, by flag ('--json': path)."""
    return {option.flag: params.get(option.name) for option in options_for(command) if option.report}
