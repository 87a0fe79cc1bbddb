"""``perfgate compare`` with a config file: which comparisons run, with what, and where
their reports go (docs/cli.md, "Config files").

Every comparison to run is built (and so checked) before the first one starts: a usage
error anywhere in them is exit 2 with nothing run. Then they run one after the other,
each with its report on stdout and in its own files, and the exit code is the worst
(an error over a regression over an inconclusive verdict under --fail-on-inconclusive
over a pass). An interrupt stops them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import click
from click.core import ParameterSource

from perfgate.configfile import KEYS, MODELS, ConfigFile, find, report_path
from perfgate.errors import EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_REGRESSION, UsageError

if TYPE_CHECKING:
    from perfgate.config import CompareConfig
    from perfgate.results import Report

CONFIG_OPTIONS = frozenset(api for api, _ in KEYS.values())  # the options a file may set
STDOUT_FORMATS_FOR_SEVERAL = ("text", "markdown")  # the formats that read well one after another


@dataclass(frozen=True)
class Planned:
    name: str | None  # None: the command line's own comparison (with the file's defaults)
    config: "CompareConfig"


def plan(
    ctx: click.Context,
    config_path: str | None,
    only: Sequence[str],
    options: Mapping[str, Any],
    spell: Callable[[str, str | None], str],
) -> tuple[tuple[Planned, ...], ConfigFile | None, tuple[str, ...]]:
    """The comparisons to run, each built and checked; the file; its warnings.

    ``options``: every compare option, models included, by its API keyword, as click
    parsed it; those given on the command line override the file's."""
    from perfgate.config import CompareConfig

    file, warnings = find(config_path)
    given = {api: value for api, value in options.items() if _given(ctx, api)}
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

    overrides = {api: value for api, value in given.items() if api in CONFIG_OPTIONS}
    # the command line's defaults, under the file's values
    fallback = {api: value for api, value in options.items() if api in CONFIG_OPTIONS and api not in MODELS}
    if file.comparisons and (only or len(models_given) < len(MODELS)):
        chosen = file.select(only)
        return tuple(Planned(c.name, file.build(c, overrides, spell, fallback)) for c in chosen), file, warnings
    if only:
        file.select(only)  # says that the file has no comparisons
    # the command line's comparison, or the one the file's top-level keys describe
    return (Planned(None, file.build(None, overrides, spell, fallback)),), file, warnings


def _given(ctx: click.Context, api: str) -> bool:
    param = _PARAM.get(api, api)
    return ctx.get_parameter_source(param) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


_PARAM = {"time_budget_s": "time_budget", "call_timeout_s": "call_timeout"}  # API keyword -> click parameter


def check_outputs(fmt: str, runs: Sequence[Planned]) -> None:
    """With several comparisons, stdout takes only formats that read one after another."""
    if len(runs) < 2:
        return
    if fmt not in STDOUT_FORMATS_FOR_SEVERAL:
        names = ", ".join(run.name or "" for run in runs)
        raise UsageError(
            f"--format {fmt} writes one report, and {len(runs)} comparisons run ({names}): write each to a file "
            f"(--json report.json writes report.NAME.json), or pick one with --only NAME"
        )


def run_all(
    runs: Sequence[Planned],
    paths: Mapping[str, str | None],
    run_one: Callable[["CompareConfig", Mapping[str, str | None], str], tuple["Report | None", int]],
    show: Callable[[str, "Report", int, int], None],
) -> int:
    """Run each comparison (``run_one``: its config, its report paths and its name -> its
    report, or None after an error, and its exit code); ``show`` prints a report on stdout.
    Returns the worst exit code."""
    several = len(runs) > 1
    outcomes: list[tuple[str, str, int]] = []
    for index, run in enumerate(runs, 1):
        name = run.name or "comparison"
        if several:
            click.echo(f"perfgate: comparison {name} ({index} of {len(runs)})", err=True)
        named = {flag: report_path(path, run.name, several) for flag, path in paths.items()}
        report, code = run_one(run.config, named, name)
        if report is not None:
            show(name, report, index, len(runs))
        outcomes.append((name, report.verdict.value if report is not None else "error", code))
        if code >= 128:  # interrupted: the rest do not run
            break
    if several:
        click.echo(f"perfgate: {len(outcomes)} of {len(runs)} comparisons ran:", err=True)
        for name, verdict, code in outcomes:
            click.echo(f"perfgate:   {name}: {verdict.upper()} (exit {code})", err=True)
    return worst([code for _, _, code in outcomes])


_RANK = {EXIT_PASS: 0, EXIT_INCONCLUSIVE: 1, EXIT_REGRESSION: 2}  # any other code is an error, worse still


def worst(codes: Sequence[int]) -> int:
    """The exit code of several comparisons: the first error's, else a regression's, else
    an inconclusive verdict's (with --fail-on-inconclusive), else a pass."""
    errors = [code for code in codes if code not in _RANK]
    if errors:
        return errors[0]
    return max(codes, key=lambda code: _RANK[code], default=EXIT_PASS)
