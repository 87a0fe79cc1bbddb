"""The README's commands, and the option table in docs/cli.md, stay true to the code."""

import re

from conftest import ROOT
from perfgate.cli import compare

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


def test_every_compare_option_is_documented_and_every_documented_option_exists():
    documented = set(re.findall(r"^\| `(--[a-z-]+)", OPTIONS_PAGE, re.M))
    documented |= {name for row in re.findall(r"^\| `--[^|]*\|", OPTIONS_PAGE, re.M) for name in re.findall(r"--[a-z-]+", row)}
    actual = {opt for param in compare.params for opt in param.opts if opt.startswith("--")} - {"--help"}
    assert actual <= documented, actual - documented
    assert documented <= actual, documented - actual
