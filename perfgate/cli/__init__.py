"""The command line: a thin face over perfgate's API (``perfgate.cli:main``).

Exit codes: 0 pass (and inconclusive, with a warning, unless --fail-on-inconclusive),
1 regression, 2 usage error, 3 runtime error, 4 inconclusive with --fail-on-inconclusive.
Errors are one line on stderr; --debug adds the traceback and the worker's log. Exit 1
means a regression and nothing else: a report that cannot be written (to --json or to
stdout) is exit 3.

The modules: main (the group and the entry point), compare, commands (report, run,
merge), calibrate; params builds each command's click options from the options table
(perfgate/options); reports is the one writer of report files; errors turns whatever a
command raises into one line and an exit code; io guards the paths written; config plans
a config file's comparisons.
"""

from __future__ import annotations

from perfgate.cli.main import cli, main, make_cli
from perfgate.cli.reports import inconclusive_advice as _inconclusive_advice
from perfgate.options import spell_for

compare = cli.commands["compare"]
calibrate_command = cli.commands["calibrate"]
report_command = cli.commands["report"]
run_command = cli.commands["run"]
merge_command = cli.commands["merge"]


def _flag(name: str, value: str | None) -> str:
    """An option's API keyword as compare's flag ('time_budget_s' -> '--time-budget')."""
    return spell_for("compare")(name, value)


__all__ = ["calibrate_command", "cli", "compare", "main", "make_cli", "merge_command", "report_command", "run_command"]
