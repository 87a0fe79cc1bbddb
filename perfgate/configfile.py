"""Config files: ``perfgate.toml``, or ``[tool.perfgate]`` in ``pyproject.toml``.

The file holds defaults (top-level keys) and named comparisons (``[comparisons.NAME]``),
each key a ``perfgate compare`` flag without its dashes (a repeatable flag's key is its
plural: ``batch-sizes``, ``budgets``, ``inputs``). It is parsed, whole, into frozen
objects before anything runs; unknown keys and values of the wrong type are refused
here, naming the key and the file, and every other value is checked by
``CompareConfig.from_options``, whose messages are shown in the file's words.

Which file: ``--config PATH``; else ``perfgate.toml`` in the current directory; else
``pyproject.toml`` there, if it has a ``[tool.perfgate]`` table. Relative paths in a file
are relative to the file's directory. Layers, each over the one before: the file's
defaults, the comparison's own keys, the command line's flags (``budgets`` merge by
metric; every other key replaces).

The keys are the options table's (perfgate/options/table.py); the JSON Schema
``perfgate/schemas/config.schema.json`` is generated from it (``python -m perfgate.options
--schema``), and a test keeps the shipped file equal to what the table gives.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from perfgate.errors import UsageError, api_words
from perfgate.options import config_keys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib  # type: ignore[no-redef]

FILE_NAME = "perfgate.toml"
PYPROJECT = "pyproject.toml"
COMPARISONS = "comparisons"
NAME_FIELD = "{name}"  # in a report path: the comparison's name
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a comparison's name goes into report file names

# each kind: a check of a TOML value, and what the message calls the expected value
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "path": (lambda v: isinstance(v, str) and bool(v), "a path"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "text-or-number": (lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool), "a string or a number"),
    "strings": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "a list of strings"),
    "ints": (lambda v: isinstance(v, list) and all(_KINDS["int"][0](i) for i in v), "a list of whole numbers"),
    "numbers": (lambda v: isinstance(v, list) and all(_KINDS["number"][0](i) for i in v), "a list of numbers"),
    "inputs": (
        lambda v: (isinstance(v, list) and all(isinstance(i, str) for i in v))
        or (isinstance(v, dict) and all(isinstance(i, str) for i in v.values())),
        'a list of "NAME=COLS" strings or a table of NAME = "COLS"',
    ),
}

# file key -> (CompareConfig.from_options keyword, kind): the options table's keys
# (perfgate/options/table.py); read through config_keys() where an option may be registered later
KEYS: dict[str, tuple[str, str]] = config_keys()
MODELS = ("reference", "candidate", "data")


@dataclass(frozen=True)
class Comparison:
    """One named comparison: its own keys over the file's defaults, as API keywords."""

    name: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ConfigFile:
    path: str
    table: str  # where perfgate's settings are in the file: "" or "tool.perfgate"
    defaults: Mapping[str, Any]
    comparisons: tuple[Comparison, ...]

    def where(self, name: str | None = None) -> str:
        """'perfgate.toml [comparisons.mlp]': a message's opening words."""
        table = ".".join(part for part in (self.table, f"{COMPARISONS}.{name}" if name else "") if part)
        return f"{self.path} [{table}]" if table else self.path

    def select(self, only: Iterable[str] = ()) -> tuple[Comparison, ...]:
        """The comparisons to run, in the file's order: all of them, or those named."""
        wanted = list(dict.fromkeys(only))
        known = [comparison.name for comparison in self.comparisons]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            listed = ", ".join(known) if known else "none"
            raise UsageError(f"{self.path} has no comparison named {unknown[0]!r} (it has: {listed})")
        if not self.comparisons:
            table = f"{self.table}.{COMPARISONS}" if self.table else COMPARISONS
            raise UsageError(f"{self.path} has no [{table}.NAME] comparison to run; add one, or give --reference, --candidate and --data")
        return tuple(c for c in self.comparisons if not wanted or c.name in wanted)

    def build(
        self,
        comparison: Comparison | None,
        overrides: Mapping[str, Any] = MappingProxyType({}),
        spell_override: Callable[[str, str | None], str] = api_words,
        fallback: Mapping[str, Any] = MappingProxyType({}),
    ) -> Any:
        """The CompareConfig of ``comparison`` (None: the file's defaults alone, for models
        given elsewhere) with ``overrides`` (API keywords, a face's own options) over it and
        ``fallback`` (a face's defaults) under it; a value refused is a usage error that
        names the file and the key, or the override (spelled by ``spell_override``)."""
        from perfgate.config import CompareConfig

        own = comparison.options if comparison is not None else self.defaults
        options = merge({k: v for k, v in fallback.items() if k not in own}, own, overrides)
        name = comparison.name if comparison is not None else None
        missing = [model for model in MODELS if not options.get(model)]
        if missing:
            raise UsageError(f"{self.where(name)}: no {', '.join(missing)} (set {' and '.join(repr(m) for m in missing)} in the file or give it on the command line)")

        key_of = {api: key for key, (api, _) in config_keys().items()}

        def spell(api_name: str, value: str | None) -> str:
            if api_name in overrides or api_name not in key_of:
                return spell_override(api_name, value)
            return key_of[api_name] if value is None else f"{key_of[api_name]} = {value}"

        models = [options.pop(model) for model in MODELS]
        try:
            return CompareConfig.from_options(*models, **options)
        except UsageError as exc:
            raise type(exc)(f"{self.where(name)}: {exc.in_words(spell)}", details=exc.details) from None


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Each layer's options over the ones before; budgets merge by metric, so that a
    comparison's ``latency.p95:+5%`` replaces the default's one and keeps its others."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "budgets" and "budgets" in merged:
                given = {_metric(item) for item in value} - {None}
                value = (*(item for item in merged["budgets"] if _metric(item) not in given), *value)
            merged[key] = value
    return merged


def _metric(budget: Any) -> str | None:
    """A budget's metric name; None for one that does not parse (from_options says why)."""
    from perfgate.judge.budgets import Budget, parse_budget
    from perfgate.errors import PerfgateError

    try:
        return (budget if isinstance(budget, Budget) else parse_budget(str(budget))).metric.name
    except PerfgateError:
        return None


def find(explicit: str | None = None, directory: str = ".") -> tuple[ConfigFile | None, tuple[str, ...]]:
    """The config file that applies, and warnings: ``explicit`` (``--config``), else
    perfgate.toml in ``directory``, else its pyproject.toml's ``[tool.perfgate]``."""
    if explicit:
        if not os.path.isfile(explicit):
            raise UsageError(f"--config {explicit}: no such file")
        return load(explicit, required=True), ()
    own = os.path.join(directory, FILE_NAME) if directory != "." else FILE_NAME
    pyproject = os.path.join(directory, PYPROJECT) if directory != "." else PYPROJECT
    from_pyproject = load(pyproject, required=False) if os.path.isfile(pyproject) else None
    if os.path.isfile(own):
        ignored = (f"both {own} and {pyproject}'s [tool.perfgate] exist: using {own}, and ignoring the other",) if from_pyproject else ()
        return load(own, required=True), ignored
    return from_pyproject, ()


def load(path: str, *, required: bool) -> ConfigFile | None:
    """Parse one file. A pyproject.toml (by its name) holds perfgate's settings in
    ``[tool.perfgate]``: without one it is no config (``required``: an error)."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    table = ""
    if os.path.basename(path) == PYPROJECT:
        table = "tool.perfgate"
        document = document.get("tool", {}).get("perfgate") if isinstance(document.get("tool"), dict) else None
        if document is None:
            if required:
                raise UsageError(f"{path}: no [tool.perfgate] table")
            return None
        if not isinstance(document, dict):
            raise UsageError(f"{path}: tool.perfgate must be a table")
    return parse(document, path, table)


def parse(document: Mapping[str, Any], path: str, table: str = "") -> ConfigFile:
    """A parsed TOML document (perfgate's table of it) as a ConfigFile."""
    prefix = f"{table}." if table else ""
    base = os.path.dirname(path)
    sections = dict(document)
    named = sections.pop(COMPARISONS, {})
    if not isinstance(named, dict):
        raise UsageError(f"{path}: {prefix}{COMPARISONS} must be a table of [{prefix}{COMPARISONS}.NAME] tables")
    defaults = _options(sections, path, prefix, base)
    comparisons = []
    for name, body in named.items():
        where = f"{prefix}{COMPARISONS}.{name}"
        if not NAME.match(name):
            raise UsageError(f"{path}: [{where}]: a comparison's name is letters, digits, '_', '-' and '.' (it names report files)")
        if not isinstance(body, dict):
            raise UsageError(f"{path}: {where} must be a table ([{where}])")
        comparisons.append(Comparison(name, MappingProxyType(merge(defaults, _options(body, path, f"{where}.", base)))))
    return ConfigFile(path, table, MappingProxyType(defaults), tuple(comparisons))


def _options(section: Mapping[str, Any], path: str, prefix: str, base: str) -> dict[str, Any]:
    """A table's keys as API keywords, each checked for its type."""
    options: dict[str, Any] = {}
    keys = config_keys()
    for key, value in section.items():
        if key not in keys:
            close = difflib.get_close_matches(key, [*keys, COMPARISONS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (the keys: {', '.join(keys)}, {COMPARISONS})"
            raise UsageError(f"{path}: unknown key '{prefix}{key}'{hint}")
        api, kind = keys[key]
        accepts, expected = _KINDS[kind]
        if not accepts(value):
            raise UsageError(f"{path}: {prefix}{key} must be {expected}, got {_shown(value)}")
        if _holds_nul(value):  # no path, flag or name can hold one; the OS would refuse it mid-run
            raise UsageError(f"{path}: {prefix}{key} holds a NUL character (\\0), got {_shown(value)}")
        if kind == "path":
            value = _relative_to(base, value)
        options[api] = tuple(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
    return options


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, list):
        return any(map(_holds_nul, value))
    if isinstance(value, dict):
        return any(map(_holds_nul, value)) or any(map(_holds_nul, value.values()))
    return False


def _relative_to(base: str, value: str) -> str:
    """A path in a file, from the current directory; a URI (s3://…) as written."""
    if not base or os.path.isabs(value) or "://" in value:
        return value
    return os.path.join(base, value)


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 60 else text[:57] + "..."


def report_path(path: str | None, name: str | None, several: bool) -> str | None:
    """A report file of one comparison: ``{name}`` in the path is its name; without one,
    and with several comparisons, the name goes before the extension (report.mlp.json)."""
    if path is None or name is None:
        return path
    if NAME_FIELD in path:
        return path.replace(NAME_FIELD, name)
    if not several:
        return path
    root, extension = os.path.splitext(path)
    return f"{root}.{name}{extension}"
