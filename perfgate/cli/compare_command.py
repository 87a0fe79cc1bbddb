"""``perfgate compare``: a candidate against a reference (or a stored baseline), or the
comparisons of a config file. Its options are the table's (perfgate/options); what it
does lives in the modules it hands them to (pipeline, cli/config, baseline_compare)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import click
from click.core import ParameterSource

from perfgate.cli.errors import signals_interrupt
from perfgate.cli.io import config_files, emit, refuse_overwriting_inputs
from perfgate.cli.params import build
from perfgate.cli.reports import error_reports, fail, inconclusive_advice, verdict_exit, write_reports
from perfgate.errors import Interrupted, PerfgateError, UsageError, option
from perfgate.options import options_for, report_paths
from perfgate.report import render
from perfgate.report.text import printable

if TYPE_CHECKING:
    from perfgate.config import CompareConfig


def _compare(**params: Any) -> int:
    """Compare a candidate model against a reference on a Parquet dataset, or run the
    comparisons of a config file (see docs/cli.md, "Config files")."""
    from perfgate.cli import config as planning
    from perfgate.engine.pipeline import run_comparison
    from perfgate.engine.progress import on_stderr

    ctx = click.get_current_context()
    fmt, debug, quiet = params["fmt"], params["debug"], params["quiet"]
    given = {name for name in params if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if params["baseline"] is not None or params["allow_env_mismatch"]:
        return _compare_to_baseline(params, given)
    options = {option.name: params[option.name] for option in options_for("compare") if option.key}  # CompareConfig's
    paths = report_paths("compare", params)
    try:
        refuse_overwriting_inputs(paths, _models(options), {**_data_files(options), **config_files(params["config_path"])})
    except UsageError as exc:
        return fail(exc, None, {}, fmt, debug)  # the report would replace an input: write none
    try:
        runs, _, notes = planning.plan(params["config_path"], params["only"], options, given)
        planning.check_stdout_format(fmt, runs)
    except (PerfgateError, Exception) as exc:  # noqa: B014 (a usage error before anything runs)
        return fail(exc, None, paths, fmt, debug)
    turns = list(planning.turns(runs, paths))
    try:
        for turn in turns:  # every report path of every comparison, before the first one measures
            models, data_files = _inputs_of(turn.config)
            refuse_overwriting_inputs(turn.paths, models, {**data_files, **config_files(params["config_path"])})
    except UsageError as exc:
        return fail(exc, None, {}, fmt, debug)
    for note in notes:
        click.echo(f"perfgate: warning: {printable(note)}", err=True)

    outcomes = planning.Outcomes(len(runs))
    for turn in turns:
        prefix = f"[{turn.name}] " if turn.several else ""
        progress = None if quiet else (lambda message: click.echo(f"perfgate: {prefix}{printable(message)}", err=True))
        if turn.several:
            click.echo(f"perfgate: comparison {turn.name} ({turn.index} of {turn.count})", err=True)
        try:
            for warning in turn.config.warnings():
                click.echo(f"perfgate: warning: {prefix}{printable(warning)}", err=True)
            with signals_interrupt(), on_stderr(progress) as shown:
                report = run_comparison(turn.config, progress=shown)
        except (PerfgateError, Exception, Interrupted) as exc:  # noqa: B014 (PerfgateError first for readers)
            if outcomes.add(turn.name, None, fail(exc, turn.config, turn.paths, fmt, debug)):
                break
            continue
        write_reports(report, turn.paths, debug)
        code = verdict_exit(report, params["fail_on_inconclusive"], inconclusive_advice(report))
        if turn.several:
            gap = "\n" if turn.index > 1 else ""
            emit(f"{gap}## {turn.name}\n" if fmt == "markdown" else f"{gap}== {turn.name} ({turn.index} of {turn.count}) ==")
        emit(render(report, fmt), nl=fmt == "json")
        if outcomes.add(turn.name, report, code):
            break
    return outcomes.worst()


def _models(options: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """The two models, as the guard against overwriting inputs resolves them."""
    return {side: (options.get(side), options.get(f"{side}_backend")) for side in ("reference", "candidate")}


def _data_files(options: Mapping[str, Any]) -> dict[str, str | None]:
    """A comparison's data files by role, as the guard against overwriting inputs names them."""
    return {"data": options.get("data"), "reference data": options.get("reference_data"), "candidate data": options.get("candidate_data")}


def _inputs_of(config: "CompareConfig") -> tuple[dict[str, tuple[str | None, str | None]], dict[str, str | None]]:
    """A built comparison's models and data files, as ``_models`` and ``_data_files`` name them."""
    models = {model.role: (model.path, model.backend) for model in config.models}
    return models, {"data": config.data.file, **{f"{model.role} data": model.data for model in config.models}}


def _compare_to_baseline(params: dict[str, Any], given: set[str]) -> int:
    """compare --baseline: the candidate measured now against a stored baseline
    (perfgate.engine.baseline_compare), its report written as a same-run comparison's is."""
    from perfgate.engine.baseline_compare import compare_with_baseline

    fmt, debug = params["fmt"], params["debug"]
    progress = None if params["quiet"] else (lambda message: click.echo(f"perfgate: {printable(message)}", err=True))
    paths = report_paths("compare", params)
    models = {"candidate": (params["candidate"], params["candidate_backend"])}
    files = {"baseline": params["baseline"], "data": params["data"] or _baseline_data(params["baseline"]),
             **config_files(params["config_path"])}  # fmt: skip
    try:
        refuse_overwriting_inputs(paths, models, files)
    except UsageError as exc:
        return fail(exc, None, {}, fmt, debug)  # the report would replace an input: write none
    try:
        with signals_interrupt():
            report = compare_with_baseline(**baseline_options(params, given), progress=progress)
    except (PerfgateError, Exception, Interrupted) as exc:  # noqa: B014
        return fail(exc, None, paths, fmt, debug)
    write_reports(report, paths, debug)
    emit(render(report, fmt), nl=fmt == "json")
    return verdict_exit(report, params["fail_on_inconclusive"], inconclusive_advice(report))


def baseline_options(params: Mapping[str, Any], given: set[str]) -> dict[str, Any]:
    """compare's options for ``compare_with_baseline`` (each option's ``baseline`` keyword);
    an option given that only a same-run comparison has (``--reference``, ``--cold-starts``,
    …) is a usage error."""
    if params.get("baseline") is None:
        raise UsageError(f"{option('allow_env_mismatch')} applies to a comparison against a stored baseline "
                         f"({option('baseline')} PATH)")  # fmt: skip
    declared = options_for("compare")
    keywords = {declared.name: declared.baseline for declared in declared if declared.baseline}
    faces = {declared.name for declared in declared if declared.face}
    for name in sorted(given - set(keywords) - faces):
        why = "the baseline is the reference" if name.startswith("reference") else "it needs both models in the same run"
        raise UsageError(f"{option(name)} cannot be used with {option('baseline')}: {why}")
    options = {keyword: params[name] for name, keyword in keywords.items() if name != "candidate_inputs"}
    if params.get("candidate_inputs"):
        options["inputs"] = params["candidate_inputs"]
    return options


def _baseline_data(path: str | None) -> str | None:
    """The data file a baseline names (compare --baseline without --data reads it), or
    None where the baseline cannot be read (the comparison says why)."""
    from perfgate.engine.baseline import read_baseline

    try:
        return read_baseline(path).data.path if path else None
    except (PerfgateError, Exception):  # noqa: B014
        return None


def compare_command() -> click.Command:
    return build("compare", _compare, error_reports("compare"))

