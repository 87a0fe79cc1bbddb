"""``perfgate compare`` with a config file: which comparisons run, with what, and where
their reports go (docs/cli.md, "Config files").

Every comparison to run is built (and so checked) before the first one starts: a usage
error anywhere in them is exit 2 with nothing run. Then they run one after the other,
each with its report on stdout and in its own files, and the exit code is the worst
(an error over a regression over an inconclusive verdict under --fail-on-inconclusive
over a pass). An interrupt stops them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import click

from perfgate.configfile import MODELS, ConfigFile, find, report_path
from perfgate.errors import EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_REGRESSION, UsageError
from perfgate.options import config_keys, spell_for

if TYPE_CHECKING:
    from perfgate.config import CompareConfig
    from perfgate.results import Report

STDOUT_FORMATS_FOR_SEVERAL = ("text", "markdown")  # the formats that read well one after another


@dataclass(frozen=True)
class Planned:
    name: str | None  # None: the command line's own comparison (with the file's defaults)
    config: "CompareConfig"


def plan(
    config_path: str | None, only: Sequence[str], options: Mapping[str, Any], given_names: set[str]
) -> tuple[tuple[Planned, ...], ConfigFile | None, tuple[str, ...]]:
    """The comparisons to run, each built and checked; the file; its warnings.

    ``options``: every compare option, models included, by its API keyword, as click
    parsed it; those given on the command line (``given_names``) override the file's."""
    from perfgate.config import CompareConfig

    spell = spell_for("compare")
    config_options = {api for api, _ in config_keys().values()}  # the options a file may set
    file, warnings = find(config_path)
    given = {api: value for api, value in options.items() if api in given_names}
    models_given = [model for model in MODELS if model in given]
    if file is None:
        if only:
            raise UsageError("--only names a comparison of a config file, and there is none (perfgate.toml, or [tool.perfgate] in pyproject.toml)")
        for model in MODELS:
            if model == "data" and (given.get("reference_data") or given.get("candidate_data")):
                continue  # data drift: CompareConfig says which side lacks a file
            if model not in given:
                flag = spell(model, None)
                raise UsageError(f"Missing option '{flag}' (and no config file: perfgate.toml, or [tool.perfgate] in pyproject.toml)")
        models = [options[model] for model in MODELS]
        rest = {api: value for api, value in options.items() if api not in MODELS}
        return (Planned(None, CompareConfig.from_options(*models, **rest)),), None, warnings

    overrides = {api: value for api, value in given.items() if api in config_options}
    # the command line's defaults, under the file's values
    fallback = {api: value for api, value in options.items() if api in config_options and api not in MODELS}
    if file.comparisons and (only or len(models_given) < len(MODELS)):
        chosen = file.select(only)
        return tuple(Planned(c.name, file.build(c, overrides, spell, fallback)) for c in chosen), file, warnings
    if only:
        file.select(only)  # says that the file has no comparisons
    # the command line's comparison, or the one the file's top-level keys describe
    return (Planned(None, file.build(None, overrides, spell, fallback)),), file, warnings


def check_stdout_format(fmt: str, runs: Sequence[Planned]) -> None:
    """With several comparisons, stdout takes only formats that read one after another."""
    if len(runs) < 2:
        return
    if fmt not in STDOUT_FORMATS_FOR_SEVERAL:
        names = ", ".join(run.name or "" for run in runs)
        raise UsageError(
            f"--format {fmt} writes one report, and {len(runs)} comparisons run ({names}): write each to a file "
            f"(--json report.json writes report.NAME.json), or pick one with --only NAME"
        )


@dataclass(frozen=True)
class Turn:
    """One comparison to run: its config, its report files (flag -> path), its place."""

    name: str
    config: "CompareConfig"
    paths: Mapping[str, str | None]
    index: int
    count: int

    @property
    def several(self) -> bool:
        return self.count > 1


def turns(runs: Sequence[Planned], paths: Mapping[str, str | None]) -> Iterator[Turn]:
    """Each comparison with its own report paths (with several, each named after it)."""
    several = len(runs) > 1
    for index, run in enumerate(runs, 1):
        named = {flag: report_path(path, run.name, several) for flag, path in paths.items()}
        yield Turn(run.name or "comparison", run.config, named, index, len(runs))


class Outcomes:
    """What each comparison ended with; with several, a summary on stderr at the end."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ended: list[tuple[str, str, int]] = []

    def add(self, name: str, report: "Report | None", code: int) -> bool:
        """Record one; True when the rest must not run (an interrupt)."""
        self.ended.append((name, report.verdict.value if report is not None else "error", code))
        return code >= 128

    def worst(self) -> int:
        """The summary (with several comparisons), and the worst exit code."""
        if self.count > 1:
            click.echo(f"perfgate: {len(self.ended)} of {self.count} comparisons ran:", err=True)
            for name, verdict, code in self.ended:
                click.echo(f"perfgate:   {name}: {verdict.upper()} (exit {code})", err=True)
        return worst([code for _, _, code in self.ended])


_RANK = {EXIT_PASS: 0, EXIT_INCONCLUSIVE: 1, EXIT_REGRESSION: 2}  # any other code is an error, worse still


def worst(codes: Sequence[int]) -> int:
    """The exit code of several comparisons: the first error's, else a regression's, else
    an inconclusive verdict's (with --fail-on-inconclusive), else a pass."""
    errors = [code for code in codes if code not in _RANK]
    if errors:
        return errors[0]
    return max(codes, key=lambda code: _RANK[code], default=EXIT_PASS)
