"""The README's commands, and the option table in docs/cli.md, stay true to the code."""

import re

from conftest import ROOT
from perfgate.cli import compare
from perfgate.cli_calibrate import calibrate_command

README = (ROOT / "README.md").read_text()
# the page that holds the `perfgate compare` option table
OPTIONS_PAGE = (ROOT / "docs" / "cli.md").read_text()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(block.strip() for block in bash_blocks() if "pytest" in block)
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines


def test_the_readme_demo_command_runs_the_demo_script():
    demo_command = next(block.strip() for block in bash_blocks() if "demo.sh" in block)
    assert demo_command.startswith("python3 -m venv .venv && ")
    assert (ROOT / "fixtures" / "demo.sh").stat().st_mode & 0o111


def documented_options(command: str | None) -> set[str]:
    """The flags in docs/cli.md's option rows: those marked '(calibrate)', or with None compare's
    (the rest: compare's table, and report's, whose flags are compare's too)."""
    rows = [row for row in re.findall(r"^\| `--[^|]*\|", OPTIONS_PAGE, re.M) if ("(calibrate)" in row) == (command == "calibrate")]
    return {name for row in rows for name in re.findall(r"--[a-z-]+", row)}


def flags(command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("--")} - {"--help"}


def test_every_compare_option_is_documented_and_every_documented_option_exists():
    documented = documented_options(None)
    actual = flags(compare)
    assert actual <= documented, actual - documented
    assert documented <= actual, documented - actual


def test_every_calibrate_option_is_documented_and_every_documented_option_exists():
    documented = documented_options("calibrate")
    actual = flags(calibrate_command)
    assert actual <= documented, actual - documented
    assert documented <= actual, documented - actual
