"""The GitHub Action's gate step (``action.yml`` runs ``python -m perfgate.integrations.github_action``).

It runs ``perfgate compare`` with the step's inputs (given as ``INPUT_*`` variables, never
spliced into a script), then writes what a pull request shows: the Markdown report to the
job summary, one ``::error`` annotation per failed check and a ``::warning`` per
inconclusive one (worst first, at most 10: GitHub shows no more per step), the step's
outputs, and one comment on the pull request, updated in place. It exits with the gate's
exit code. A fork's read-only token cannot comment: then the summary is all, with a notice.

``python -m perfgate.integrations.github_action comment DIR`` posts the comment from a
``workflow_run`` workflow instead, for forks' pull requests (see docs/action.md).
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from perfgate.configfile import report_path
from perfgate.errors import EXIT_RUNTIME, EXIT_USAGE, UsageError
from perfgate.options.action import action_args, action_options, action_values
from perfgate.integrations.github_comment import MARKER, GitHub, GitHubError, marker_for, pull_request_number, read_event
from perfgate.report.files import write_atomically
from perfgate.report.html import render_html
from perfgate.report.markdown import MAX_CHARS, render_markdown
from perfgate.report.parts import leaves
from perfgate.report.summary import gated, safe, where, worst_first
from perfgate.results import Report, Verdict

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error and 10 warning annotations per step
_TRUE = {"true", "yes", "1", "on"}


@dataclass(frozen=True, init=False)
class Inputs:
    """The step's inputs: compare's options (``options``, by their API names, as
    perfgate/options/action.py reads them) and the action's own. ``inputs.budgets`` and the
    like read ``options``; ``Inputs(config="gates.toml")`` sets one by its input's name."""

    options: Mapping[str, Any]
    comment_on_pr: bool
    token: str
    working_directory: str
    args: tuple[str, ...]
    merge: tuple[str, ...]  # merge mode: the JSON reports (globs) of a CI matrix's jobs

    def __init__(
        self, options: Mapping[str, Any] | None = None, comment_on_pr: bool = True, token: str = "", working_directory: str = ".",
        args: tuple[str, ...] = (), merge: tuple[str, ...] = (), **values: Any,
    ) -> None:  # fmt: skip
        names = {option.action_input.replace("-", "_"): option.name for option in action_options()}
        unknown = set(values) - set(names) - set(names.values())
        if unknown:
            raise TypeError(f"no such input: {', '.join(sorted(unknown))}")
        merged = {**(options or {}), **{names.get(name, name): value for name, value in values.items()}}
        for name, value in (("options", merged), ("comment_on_pr", comment_on_pr), ("token", token),
                            ("working_directory", working_directory), ("args", tuple(args)), ("merge", tuple(merge))):  # fmt: skip
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(name)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Inputs":
        def get(name: str) -> str:
            return environ.get(f"INPUT_{name}", "").strip()

        merge = tuple(re.split(r"\s+", get("MERGE"))) if get("MERGE") else ()
        missing = [name.lower().replace("_", "-") for name in ("REFERENCE", "CANDIDATE", "DATA") if not get(name) and not merge]
        if missing and not (get("CONFIG") or _config_found(get("WORKING_DIRECTORY") or ".")):
            raise UsageError(
                f"the action needs the input{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                "(or a config file: the input config, perfgate.toml, or [tool.perfgate] in pyproject.toml; or merge)"
            )
        try:
            args = tuple(shlex.split(get("ARGS")))
        except ValueError as exc:
            raise UsageError(f"the input args cannot be split into arguments: {exc}") from None
        return cls(
            options=action_values(environ),
            comment_on_pr=get("COMMENT_ON_PR").lower() in _TRUE if get("COMMENT_ON_PR") else True,
            token=get("GITHUB_TOKEN"), working_directory=get("WORKING_DIRECTORY") or ".", args=args, merge=merge,
        )  # fmt: skip

    def compare_args(self, json_path: Path, html_path: Path) -> list[str]:
        return ["compare", *action_args(self.options), *self.args, "--json", str(json_path), "--html", str(html_path)]

    def merge_args(self, json_path: Path, html_path: Path) -> list[str]:
        """``perfgate merge`` of the reports the patterns match (in working_directory); a
        pattern that matches nothing is passed on as it is, so that merge reports it missing."""
        found: list[str] = []
        for pattern in self.merge:
            matches = sorted(glob.glob(pattern, root_dir=self.working_directory, recursive=True))
            found.extend(match for match in matches or [pattern] if match not in found)
        flags = ["--fail-on-inconclusive"] if self.fail_on_inconclusive else []
        return ["merge", *found, "-o", str(json_path), "--html", str(html_path), *flags]

    def marker(self, environ: Mapping[str, str]) -> str:
        """What names this comparison: where it runs and what it compares (not its budgets,
        so that a budget changed in a pull request edits the same comment)."""
        configured = [self.config_path, self.only] if self.config_path or self.only else []  # markers without a config stay as they were
        names = [environ.get("GITHUB_WORKFLOW", ""), environ.get("GITHUB_JOB", ""), self.working_directory,
                 self.reference, self.candidate, self.data, self.device, self.batch_sizes, self.inputs, *configured]  # fmt: skip
        return marker_for(names + [self.merge] if self.merge else names)

    def comparison_names(self) -> list[str | None]:
        """The config file's comparisons that perfgate compare will run, in its order; [None]
        for one comparison of the inputs' own (perfgate compare says what is wrong, if anything is)."""
        from perfgate.configfile import find

        if self.merge:
            return [None]  # one merged report
        directory = self.working_directory
        try:
            file, _ = find(os.path.join(directory, self.config_path) if self.config_path else None, directory)
            if file is None or not file.comparisons or (self.reference and self.candidate and self.data and not self.only):
                return [None]
            return [comparison.name for comparison in file.select(self.only)]
        except UsageError:
            return [None]


def _config_found(directory: str) -> bool:
    from perfgate.configfile import find

    try:
        return find(None, directory)[0] is not None
    except UsageError:
        return True  # perfgate compare names the mistake in it


def run(environ: Mapping[str, str] = os.environ) -> int:
    try:
        inputs = Inputs.from_environment(environ)
    except UsageError as exc:
        print(f"::error title=perfgate::{_data(exc.message)}", flush=True)
        return EXIT_USAGE
    marker = inputs.marker(environ)
    out = Path(environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "perfgate" / MARKER.search(marker).group(1)
    out.mkdir(parents=True, exist_ok=True)
    names = inputs.comparison_names()
    several = len(names) > 1
    for stale in [*out.glob("report*.json"), *out.glob("report*.html"), out / "report.md"]:
        stale.unlink(missing_ok=True)  # a report left by an earlier step must not pass for this one's
    paths = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    args = inputs.merge_args(paths["json"], paths["html"]) if inputs.merge else inputs.compare_args(paths["json"], paths["html"])
    code, last_error = _run_gate(args, inputs.working_directory)
    reports = []
    for name in names:
        json_path, html_path = (Path(report_path(str(paths[kind]), name, several)) for kind in ("json", "html"))
        report = _read(json_path, code, last_error)
        if not html_path.exists():
            write_atomically(html_path, render_html(report))
        reports.append((name or "", report))
    markdown = f"{marker}\n{_markdown(reports)}{_footer(environ)}"
    write_atomically(paths["markdown"], markdown)
    _append(environ.get("GITHUB_STEP_SUMMARY"), markdown)
    for line in annotations_of(reports):
        print(line, flush=True)
    worst_report = min((report for _, report in reports), key=lambda report: _SEVERITY.index(report.verdict))
    checks = worst_first([check for _, leaf in leaves(worst_report) for check in gated(leaf)])  # every part's, for a merge
    ratio = next((check.ratio for check in checks if check.ratio is not None), None)
    shown = {kind: str(out if several else paths[kind]) for kind in ("json", "html")}  # several: the folder of NAME's files
    _set_outputs(environ.get("GITHUB_OUTPUT"), {
        "verdict": worst_report.verdict.value, "exit-code": str(code), "worst-ratio": "" if ratio is None else f"{ratio:.4f}",
        "report-json": shown["json"], "report-markdown": str(paths["markdown"]), "report-html": shown["html"],
    })  # fmt: skip
    if inputs.comment_on_pr:
        number = pull_request_number(read_event(environ))
        if number is None:
            print("perfgate: not a pull request event: no comment to write", flush=True)
        else:
            _comment(GitHub.from_environment(inputs.token, environ), number, markdown)
    return code


def _run_gate(args: Sequence[str], cwd: str) -> tuple[int, str]:
    """``perfgate compare`` with its output in the log, where nothing it prints (a column
    name, a path) can be taken for a workflow command; returns its exit code and its last
    error line."""
    token = uuid.uuid4().hex
    print(f"::stop-commands::{token}", flush=True)
    last_error = ""
    try:
        process = subprocess.Popen([sys.executable, "-m", "perfgate", *args], cwd=cwd, stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as exc:
        print(f"::{token}::", flush=True)
        return EXIT_RUNTIME, f"perfgate: error: cannot run perfgate in {cwd!r}: {exc.strerror or exc}"
    assert process.stderr is not None
    for line in process.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.startswith("perfgate: error:") or line.startswith("perfgate: internal error:"):
            last_error = line.strip()
    code = process.wait()
    print(f"::{token}::", flush=True)
    return code, last_error


def _read(path: Path, code: int, last_error: str) -> Report:
    """The gate's report, or a report of the error where it wrote none (a flag it refused)."""
    from perfgate.errors import PerfgateError
    from perfgate.engine.pipeline import error_report
    from perfgate.report.json import read_report

    if path.exists():
        try:
            return read_report(path)
        except PerfgateError as exc:
            last_error = f"perfgate: error: cannot read the report: {exc}"
    message = last_error.removeprefix("perfgate: error:").strip() or f"perfgate exited {code} without a report"
    error = UsageError(message) if code == EXIT_USAGE else PerfgateError(message)
    report = error_report(error)
    write_atomically(path, _dumps(report))
    return report


def _dumps(report: Report) -> str:
    from perfgate.report.json import dumps

    return dumps(report) + "\n"


_SEVERITY = (Verdict.ERROR, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS)  # worst first


def _markdown(reports: Sequence[tuple[str, Report]]) -> str:
    """One report, or each of several under its comparison's name, within GitHub's limit."""
    if len(reports) == 1:
        return render_markdown(reports[0][1], max_chars=MAX_CHARS)
    share = MAX_CHARS // len(reports) - 100
    return "\n".join(f"### {safe(name)}\n\n{render_markdown(report, max_chars=share)}" for name, report in reports)


def annotations(report: Report) -> list[str]:
    """``::error`` per failed check, ``::warning`` per inconclusive one, worst first, at most
    10; of a merged report, each part's (named), its errors first."""
    return annotations_of([("", report)])


def annotations_of(reports: Sequence[tuple[str, Report]]) -> list[str]:
    """The annotations of one or several comparisons (named in each title), at most 10 in all."""
    lines = []
    for name, report in reports:
        named = f" ({name})" if name else ""
        if report.verdict is Verdict.ERROR and not report.parts:
            message = report.error.message if report.error is not None else report.reason
            lines.append(f"::error title={_property(f'perfgate: the comparison{named} could not be carried out')}::{_data(message)}")
            continue
        parts = leaves(report)
        lines += [f"::error title={_property(f'perfgate: part {part_name}{named} could not be carried out')}::"
                  f"{_data(part.error.message if part.error is not None else part.reason)}"
                  for part_name, part in parts if part.verdict is Verdict.ERROR]  # fmt: skip
        checks = [(part_name, check) for part_name, part in parts if part.verdict is not Verdict.ERROR for check in gated(part)]
        order = {id(check): index for index, check in enumerate(worst_first([check for _, check in checks]))}
        for part_name, check in sorted(checks, key=lambda item: order[id(item[1])]):
            if check.verdict not in (Verdict.FAIL, Verdict.INCONCLUSIVE):
                break
            kind = "error" if check.verdict is Verdict.FAIL else "warning"
            word = "regression" if check.verdict is Verdict.FAIL else "inconclusive"
            at = f"{part_name}: {where(check)}" if part_name else where(check)
            lines.append(f"::{kind} title={_property(f'perfgate {word}{named}: {at}')}::{_data(check.reason)}")
    if len(lines) > MAX_ANNOTATIONS:
        hidden = len(lines) - (MAX_ANNOTATIONS - 1)
        lines = lines[: MAX_ANNOTATIONS - 1] + [f"::notice title=perfgate::{hidden} more checks failed or are inconclusive: see the job summary"]
    return lines


def _data(text: str) -> str:
    """A workflow command's message: one line, however the name it quotes was written."""
    return safe(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _footer(environ: Mapping[str, str]) -> str:
    server, repository, run_id = (environ.get(name, "") for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if not (server and repository and run_id):
        return ""
    return f"\n<sub>perfgate · [workflow run]({server}/{repository}/actions/runs/{run_id})</sub>\n"


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text if text.endswith("\n") else text + "\n")


def _set_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if not path:
        return
    delimiter = f"perfgate_{uuid.uuid4().hex}"
    with open(path, "a", encoding="utf-8") as file:
        for name, value in outputs.items():
            file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def _comment(github: GitHub, number: int, body: str) -> None:
    try:
        action, comment_id = github.upsert_comment(number, body)
    except GitHubError as exc:
        if exc.forbidden:
            print(f"::notice title=perfgate::cannot comment on pull request #{number} with this token ({_data(str(exc))}); "
                  "a pull request from a fork gets a read-only token. The report is in the job summary; to comment on "
                  "forks' pull requests, post it from a workflow_run workflow (see perfgate's docs/action.md).", flush=True)  # fmt: skip
        else:
            print(f"::warning title=perfgate::cannot comment on pull request #{number}: {_data(str(exc))}", flush=True)
        return
    print(f"perfgate: {action} the comment on pull request #{number} (id {comment_id})", flush=True)


def comment_from_run(directory: str, environ: Mapping[str, str] = os.environ) -> int:
    """For a ``workflow_run`` workflow: post the report a pull request's run uploaded (DIR
    holds its report.json and report.md) as that pull request's comment. The body is
    rendered again from report.json, so nothing the fork wrote reaches the comment as
    Markdown; the pull request is found from the event, not from the artifact."""
    from perfgate.report.json import read_report

    folder = Path(directory)
    try:
        report = read_report(next(folder.rglob("report.json")))
        found = MARKER.search((next(folder.rglob("report.md"))).read_text(encoding="utf-8", errors="replace")[:200])
    except StopIteration:
        print(f"::error title=perfgate::no report.json and report.md under {_data(directory)}", flush=True)
        return EXIT_USAGE
    if found is None:
        print("::error title=perfgate::report.md does not start with perfgate's comment marker", flush=True)
        return EXIT_USAGE
    github = GitHub.from_environment(environ.get("GITHUB_TOKEN", ""), environ)
    run_event = read_event(environ).get("workflow_run") or {}
    try:
        number = github.pull_request_of_run(run_event)
    except GitHubError as exc:
        print(f"::warning title=perfgate::cannot find the pull request of the run: {_data(str(exc))}", flush=True)
        return 0
    if number is None:
        print("perfgate: the run is not a pull request's: no comment to write", flush=True)
        return 0
    _comment(github, number, f"{found.group(0)}\n{render_markdown(report)}")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["comment"] and len(args) == 2:
        sys.exit(comment_from_run(args[1]))
    if args:
        print("usage: python -m perfgate.integrations.github_action [comment DIR]", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(run())


if __name__ == "__main__":
    main()
