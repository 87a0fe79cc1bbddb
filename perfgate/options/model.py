"""What one option is: every face's spelling of it in one record.

An ``Option`` is declared once (perfgate/options/table.py) and read by every face: the
command line builds its click options from it, the config file its keys and their JSON
Schema, the GitHub Action its inputs, the pytest plugin its options and ini keys, and the
error messages their flag spellings. This
module imports nothing of perfgate's, so that any module may read the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

COMMANDS = ("compare", "report", "run", "merge", "calibrate")


@dataclass(frozen=True)
class Option:
    """One option of one or more commands.

    ``name`` is its keyword in the Python API and the click parameter's name, so that a
    command's parameters are the API's options as they are. ``variants`` changes fields
    for some commands ("run calibrate": {"help": ...}): the same option, another wording."""

    name: str
    flags: tuple[str, ...]  # the first long one is what messages call it
    help: str
    commands: frozenset[str] = frozenset({"compare"})
    default: Any = None
    type: type = str  # str, int, float (bool: is_flag)
    minimum: float | None = None  # a range the command line enforces (click's IntRange/FloatRange)
    maximum: float | None = None
    min_open: bool = False
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None  # a callable: resolved when the command is built
    metavar: str | None = None
    multiple: bool = False
    is_flag: bool = False
    required: bool = False
    show_default: bool = False
    stands_for: tuple[str, ...] = ()  # other API names this flag answers for (run's --backend for candidate_backend)
    # the config file: its key, the kind of value it takes (configfile._KINDS), the schema's wording and constraints
    key: str | None = None
    kind: str | None = None
    key_help: str | None = None
    key_schema: Mapping[str, Any] = field(default_factory=dict)
    # the GitHub Action: its input, how the input's text is split into values, its description
    action_input: str | None = None
    action_split: str = "value"  # "value", "words" (spaces, commas, lines) or "lines"
    action_help: str | None = None
    # the pytest plugin: its option's name (--perfgate-NAME, ini key perfgate_NAME), help, and
    # default as an ini file's text (None: the option's own default)
    pytest_option: str | None = None
    pytest_help: str | None = None
    pytest_default: Any = None
    # compare --baseline: compare_with_baseline's keyword for it (None: a same-run option)
    baseline: str | None = None
    face: bool = False  # where reports go and how the run speaks: any comparison takes it
    report: str | None = None  # the report format this option's path is written in
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return next((flag for flag in self.flags if flag.startswith("--")), self.flags[0])

    def takes(self, command: str) -> bool:
        return command in self.commands

    def for_command(self, command: str) -> "Option":
        """This option as ``command`` has it (its variant's fields)."""
        changes: dict[str, Any] = {}
        for commands, fields in self.variants.items():
            if command in commands.split():
                changes.update(fields)
        return replace(self, **changes) if changes else self


def spelled(options: tuple[Option, ...], fallback: tuple[Option, ...] = ()) -> Callable[[str, str | None], str]:
    """A spelling for error messages: an option's API name (and an example value) as the
    flag of ``options`` that answers for it, else ``fallback``'s, else the name in dashes."""
    flags: dict[str, str] = {}
    for option in (*fallback, *options):  # the command's own win
        for name in (option.name, *option.stands_for):
            flags[name] = option.flag

    def spell(name: str, value: str | None) -> str:
        flag = flags.get(name) or f"--{name.replace('_', '-')}"
        return flag if value is None else f"{flag} {value}"

    return spell
