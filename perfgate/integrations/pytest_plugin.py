"""The pytest plugin: the ``perfgate`` fixture, the ``perfgate`` marker, the options,
the session's summary table and JSON.

Installing perfgate enables it (the ``pytest11`` entry point ``perfgate``; ``-p
no:perfgate`` turns it off). It leaves every test alone that neither uses the fixture nor
carries the marker: it registers options, a fixture and a marker, and adds one header line.

A test's measurements reach the rest of the session as user properties, published when
its call ends: one ``perfgate`` property per measurement (JSON, what the summary table
shows) and one readable property per metric, so that they reach JUnit XML and, under
pytest-xdist, the controller, which builds the summary from the reports. The full
records for ``--perfgate-json`` (with every raw sample, too big for JUnit) travel from
the xdist workers in their ``workeroutput``.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pytest

from perfgate import __version__
from perfgate.errors import PerfgateError
from perfgate.integrations.pytest_fixture import Entry, Options, Perfgate, judge_comparison, judge_measurement

PROPERTY = "perfgate"
MARKER_LINE = (
    "perfgate(p95='20ms', peak_rss='300MB', throughput='100/s', max_latency_increase='15%', budgets=[...], "
    "strict=False): budgets applied to what the test measures with the perfgate fixture"
)
ABSOLUTE_MARKER_ARGS = "p50, p95, p99 (any pNN), mean, peak_rss, throughput, ttft_pNN, itl_pNN, e2e_pNN, tokens_per_s (for perfgate.measure)"
RELATIVE_MARKER_ARGS = ("max_latency_increase", "budgets")
SUMMARY_COLUMNS = ("test", "measured", "metric", "value", "CI", "budget", "verdict")
# Said at the session's end when absolute budgets went unasserted: "perfgate: 2 absolute budgets NOT asserted ..."
NOT_ASSERTED_LINE = (
    "perfgate: {count} absolute budget{s} NOT asserted ({they} timed while other pytest-xdist workers ran tests "
    "on the same cores); --perfgate-xdist assert asserts them"
)
COMPARED_UNDER_XDIST_LINE = (
    "perfgate: {count} comparison{s} asserted while other pytest-xdist workers ran tests: each interleaves its "
    "two models, so that load hit both"
)


@dataclass
class _State:
    options: Options
    json_path: str | None
    skip: bool
    only: bool
    distributed: bool  # the tests run in pytest-xdist workers
    worker: bool  # this process is one of them
    records: list[dict] = field(default_factory=list)  # full records, for --perfgate-json
    summaries: list[dict] = field(default_factory=list)  # from the reports' user properties
    json_error: str = ""


_STATE = pytest.StashKey[_State]()
_SESSION_PLUGIN = "perfgate-session"
_FIXTURE = pytest.StashKey[Perfgate]()

# The plugin's own options, after the options table's (perfgate/options/plugin.py: time
# budget, device, threads, json, config, strict). (name, flag, ini type, default, help); each
# flag --perfgate-NAME has the ini key perfgate_NAME.
_OWN_OPTIONS = (
    ("skip", "--perfgate-skip", "bool", False, "skip the tests that use perfgate, for fast local runs"),
    ("only", "--perfgate-only", "bool", False, "run only the tests that use perfgate"),
    ("xdist", "--perfgate-xdist", "string", "skip",
     "under pytest-xdist: leave absolute budgets (perfgate.measure) unasserted (skip, the default), or assert "
     "them anyway (assert); comparisons are asserted either way"),
)  # fmt: skip


def plugin_options() -> tuple[tuple[str, str, str, Any, str], ...]:
    from perfgate.options.plugin import table_options

    return (*table_options(), *_OWN_OPTIONS)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfgate", "perfgate: performance budgets for ML models")
    for name, flag, ini_type, default, text in plugin_options():
        if ini_type == "bool":
            group.addoption(flag, dest=f"perfgate_{name}", action="store_true", default=None, help=text)
        else:
            group.addoption(flag, dest=f"perfgate_{name}", default=None, help=text)
        parser.addini(f"perfgate_{name}", text, type=ini_type, default=default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_LINE)
    worker = hasattr(config, "workerinput")
    workers = int(config.workerinput.get("workercount", 1)) if worker else 1
    distributed = worker or (config.getoption("dist", "no") or "no") != "no"
    xdist = _setting(config, "xdist")
    if xdist not in ("skip", "assert"):
        raise pytest.UsageError(f"--perfgate-xdist: expected skip or assert, got {xdist!r}")
    if _setting(config, "skip") and _setting(config, "only"):
        raise pytest.UsageError("--perfgate-skip and --perfgate-only exclude each other")
    options = Options(
        time_budget_s=_positive(_setting(config, "time_budget"), "--perfgate-time-budget", float),
        device=_device(_setting(config, "device")),
        threads=_positive(_setting(config, "threads"), "--perfgate-threads", int),
        strict=bool(_setting(config, "strict")),
        config=os.path.join(str(config.rootpath), _setting(config, "config")) if _setting(config, "config") else "",
        rootdir=str(config.rootpath),
        given=tuple(name for name in ("time_budget", "device", "threads") if config.getoption(f"perfgate_{name}") is not None),
        assert_absolute_under_xdist=xdist == "assert",
        xdist_workers_beside=workers - 1,
    )
    json_path = _setting(config, "json") or None
    if json_path and not worker and not os.path.isdir(os.path.dirname(os.path.abspath(json_path))):
        raise pytest.UsageError(f"--perfgate-json {json_path}: no directory {os.path.dirname(os.path.abspath(json_path))!r}")
    state = _State(options, json_path, bool(_setting(config, "skip")), bool(_setting(config, "only")), distributed, worker)
    config.stash[_STATE] = state
    config.pluginmanager.register(_Session(state), _SESSION_PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(_SESSION_PLUGIN)
    if session is not None:
        config.pluginmanager.unregister(session)


def pytest_report_header(config: pytest.Config) -> str:
    from perfgate.engine.environment import cpu_model

    options = config.stash[_STATE].options
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = f"{options.threads} thread{'s' if options.threads != 1 else ''}"
    return (
        f"perfgate {__version__}: CPU {cpu_model()} ({usable} usable), {threads} per model, "
        f"device {options.device}, time budget {options.time_budget_s:g} s per measurement"
    )


@pytest.fixture
def perfgate(request: pytest.FixtureRequest) -> Perfgate:
    """``perfgate.measure(model, data=..., inputs=...)``, ``perfgate.measure(predict, rows=...)``,
    ``perfgate.compare(reference=..., candidate=..., data=...)`` and ``perfgate.compare_configured(NAME)``
    (a comparison of the config file), whose assertions fail the test."""
    fixture = Perfgate(request.config.stash[_STATE].options)
    request.node.stash[_FIXTURE] = fixture
    return fixture


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """A ``perfgate`` marker with an unknown or positional argument is a collection error."""
    made = yield
    if made is not None and not isinstance(made, (list, pytest.Item, pytest.Collector)):
        made = list(made)  # another plugin's generator of items: read once, handed on as a list
    for item in made if isinstance(made, list) else [made]:
        if isinstance(item, pytest.Item):
            for mark in item.iter_markers("perfgate"):
                problem = marker_problem(mark.args, mark.kwargs)
                if problem:
                    raise collector.CollectError(f"{item.nodeid}: @pytest.mark.perfgate: {problem}")
    return made


def marker_problem(args: tuple, kwargs: dict[str, Any]) -> str | None:
    """What is wrong with the marker's arguments, or None."""
    if args:
        return f"takes keyword arguments only, such as @pytest.mark.perfgate(p95='20ms'); got {args!r}"
    from perfgate.judge.absolute import is_budget_name, parse_absolute_budget
    from perfgate.judge.budgets import parse_budget, parse_limit

    try:
        for name, value in kwargs.items():
            if name == "max_latency_increase":
                parse_limit(value, option="max_latency_increase")
            elif name == "budgets":
                for budget in [value] if isinstance(value, str) else value:
                    parse_budget(budget)
            elif name == "strict":
                if not isinstance(value, bool):
                    return f"strict={value!r}: expected True or False"
            elif is_budget_name(name):
                parse_absolute_budget(name, value)
            elif _generation_budget(name):  # a generative model's
                from perfgate.engine.single_generation import parse_generation_budget

                parse_generation_budget(name, value)
            else:
                return (f"unknown argument {name!r}; it takes {ABSOLUTE_MARKER_ARGS}, "
                        f"max_latency_increase and budgets (for perfgate.compare), and strict")  # fmt: skip
    except PerfgateError as exc:
        return exc.message
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    if state.skip:
        for item in items:
            if _uses_perfgate(item):
                item.add_marker(pytest.mark.skip(reason="perfgate: measuring is skipped (--perfgate-skip)"))
    elif state.only:
        kept = [item for item in items if _uses_perfgate(item)]
        if len(kept) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if not _uses_perfgate(item)])
            items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """After the test body: the marker's budgets, then the measurements published."""
    fixture = item.stash.get(_FIXTURE, None)
    marker = item.get_closest_marker("perfgate")
    try:
        outcome = yield
        if marker is not None and marker.kwargs:
            _apply_marker(marker.kwargs, fixture, item.config.stash[_STATE].options)
        return outcome
    finally:
        if fixture is not None:
            _publish(item, fixture, item.config.stash[_STATE])


class _Session:
    """The session's side: summaries from the reports (of this process's tests, or of the
    xdist workers'), full records from the workers, the JSON file and the summary table."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, str):
                try:
                    summary = json.loads(value)
                except ValueError:
                    continue
                if isinstance(summary, dict):
                    self.state.summaries.append(summary)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist: a worker's full records, for --perfgate-json."""
        output = getattr(node, "workeroutput", None) or {}
        self.state.records.extend(json.loads(output.get(PROPERTY, "[]")))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.state.worker:
            session.config.workeroutput[PROPERTY] = json.dumps(self.state.records)
        elif self.state.json_path:
            try:
                _write_json(self.state)
            except OSError as exc:
                self.state.json_error = f"perfgate: error: cannot write --perfgate-json {self.state.json_path}: {exc.strerror or exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if state.worker or not (state.summaries or state.json_error):
            return
        from perfgate.integrations.pytest_summary import summary_lines, unasserted_budgets

        terminalreporter.write_sep("=", "perfgate")
        for line in summary_lines(state.summaries) if state.summaries else ():
            terminalreporter.write_line(line)
        compared = sum(1 for summary in state.summaries if summary.get("kind") == "compare" and summary.get("note"))
        if compared:
            terminalreporter.write_line(COMPARED_UNDER_XDIST_LINE.format(count=compared, s="s" if compared != 1 else ""))
        unasserted = unasserted_budgets(state.summaries)
        if unasserted:
            plural = unasserted != 1
            terminalreporter.write_line(
                NOT_ASSERTED_LINE.format(count=unasserted, s="s" if plural else "", they="they were" if plural else "it was"),
                yellow=True, bold=True,
            )  # fmt: skip
        if state.json_error:
            terminalreporter.write_line(state.json_error, red=True)
        elif state.json_path:
            terminalreporter.write_line(f"perfgate: wrote {len(state.records)} measurement(s) to {state.json_path}")


# --- helpers ---------------------------------------------------------------------------------


def _setting(config: pytest.Config, name: str) -> Any:
    given = config.getoption(f"perfgate_{name}")
    return config.getini(f"perfgate_{name}") if given is None else given


def _positive(value: Any, flag: str, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number > 0:
        raise pytest.UsageError(f"{flag}: expected a positive {'whole ' if kind is int else ''}number, got {value!r}")
    return number


def _device(value: str) -> str:
    if value != "cpu":  # checked only then: the check imports perfgate's backends (and numpy)
        from perfgate.backends.base import check_device

        try:
            check_device(value)
        except PerfgateError:
            raise pytest.UsageError(f"--perfgate-device {value!r}: expected cpu, cuda or cuda:N") from None
    return value


def _uses_perfgate(item: pytest.Item) -> bool:
    return "perfgate" in getattr(item, "fixturenames", ()) or item.get_closest_marker("perfgate") is not None


def _apply_marker(kwargs: dict[str, Any], fixture: Perfgate | None, options: Options) -> None:
    __tracebackhide__ = True
    options = replace(options, strict=kwargs.get("strict", options.strict))
    absolute = {name: value for name, value in kwargs.items() if name not in (*RELATIVE_MARKER_ARGS, "strict")}
    relative = {name: value for name, value in kwargs.items() if name in RELATIVE_MARKER_ARGS}
    entries = fixture.entries if fixture is not None else []
    failures = []
    for wanted, kind, what in ((absolute, "measure", "perfgate.measure"), (relative, "compare", "perfgate.compare")):
        if not wanted:
            continue
        chosen = [entry for entry in entries if entry.kind == kind]
        if not chosen:
            names = ", ".join(f"{name}={value!r}" for name, value in wanted.items())
            failures.append(f"perfgate: @pytest.mark.perfgate({names}) applies to {what}, and this test made no {what} call")
        for entry in chosen:
            try:
                if kind == "measure":
                    _, failure = judge_measurement(entry, options, absolute)
                else:
                    _, failure = judge_comparison(entry, options, wanted.get("max_latency_increase"), wanted.get("budgets", ()))
            except pytest.fail.Exception as failed:  # a perfgate error, already in one line
                failure = failed.msg
            if failure:
                failures.append(failure)
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def _publish(item: pytest.Item, fixture: Perfgate, state: _State) -> None:
    from perfgate.integrations.pytest_summary import full_record, row_text

    for entry in fixture.entries:
        summary = {"test": item.nodeid, "kind": entry.kind, "measured": entry.label, "verdict": entry.verdict,
                   "asserted": entry.asserted, "note": entry.note, "rows": entry.rows}  # fmt: skip
        item.user_properties.append((PROPERTY, json.dumps(summary)))
        for row in entry.rows:
            item.user_properties.append((f"{PROPERTY}.{row['metric']}", row_text(row, not entry.unasserted)))
        if state.json_path:
            state.records.append(full_record(item.nodeid, entry))
    fixture.entries = []


def _write_json(state: _State) -> None:
    from perfgate.engine.environment import capture
    from perfgate.results import SCHEMA_VERSION

    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": "pytest-session",
        "tool": {"name": "perfgate", "version": __version__},
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "settings": {**asdict(state.options), "distributed": state.distributed},
        "environment": asdict(capture()),
        "measurements": sorted(state.records, key=lambda record: record["test"]),
    }
    with open(state.json_path, "w") as out:
        json.dump(document, out, indent=1, allow_nan=False)
        out.write("\n")


def _generation_budget(name: str) -> bool:
    from perfgate.engine.single_generation import is_generation_budget_name

    return is_generation_budget_name(name)
