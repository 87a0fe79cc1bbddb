"""The entry point: the click group of the commands, and what happens around them — a
command line click refused (one line, and for compare the error report asked for),
stdout that takes nothing, an interrupt, anything else that escaped (exit 3, never 1)."""

from __future__ import annotations

import sys
from typing import Sequence

import click

from perfgate import __version__
from perfgate.cli.calibrate import calibrate_command
from perfgate.cli.commands import merge_command, report_command, run_command
from perfgate.cli.compare_command import compare_command
from perfgate.cli.errors import say, tolerant_stderr
from perfgate.cli.io import StdoutFailed, emit, refuse_overwriting_inputs, stdout_failed
from perfgate.cli.reports import fail
from perfgate.errors import EXIT_RUNTIME, EXIT_USAGE, UsageError
from perfgate.options import spell_for
from perfgate.report import FORMATS


def make_cli() -> click.Group:
    """The group of every command, each built from the options table as it is now."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(__version__, prog_name="perfgate")
    def cli() -> None:
        """perfgate: block slow ML models before they ship.

        Times a candidate and a reference model in one run, interleaved, and decides pass,
        fail or inconclusive from a confidence interval of their latency ratio.
        """

    for command in (compare_command(), report_command(), run_command(), merge_command(), calibrate_command()):
        cli.add_command(command)
    return cli


cli = make_cli()


def main(argv: Sequence[str] | None = None) -> None:
    args = list(argv) if argv is not None else sys.argv[1:]
    saved_stderr = sys.stderr
    tolerant_stderr()  # a message that cannot be written never changes the exit code
    try:
        code = _main(args)
    finally:
        sys.stderr = saved_stderr
    sys.exit(code or 0)


def _main(args: list[str]) -> int:
    if sys.stdout is None:  # started with stdout closed (>&-): no report could be shown
        click.echo("perfgate: error: stdout is closed: nothing can take the report (redirect it to /dev/null instead)", err=True)
        return EXIT_RUNTIME
    try:
        try:
            code = cli.main(args=args, prog_name="perfgate", standalone_mode=False)
        except click.exceptions.NoArgsIsHelpError as exc:
            emit(exc.ctx.get_help() if exc.ctx else str(exc))
            code = EXIT_USAGE
        except click.exceptions.UsageError as exc:
            code = _parse_error(exc, args)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("perfgate: interrupted", err=True)
            code = 130
        sys.stdout.flush()
    except StdoutFailed as exc:
        code = stdout_failed(str(exc))
    except OSError as exc:  # click's own output (--help, --version): the commands catch their errors
        code = stdout_failed(exc.strerror or str(exc))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_RUNTIME
    except Exception as exc:  # noqa: BLE001 (never Python's exit 1, which means a regression)
        say(exc, spell_for("compare"))
        code = EXIT_RUNTIME
    return code


def _parse_error(exc: click.exceptions.UsageError, args: Sequence[str]) -> int:
    """A command-line error click found before the command ran: one line, and for compare
    the error report that --json and --format json still ask for."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    error = UsageError(f"{exc.format_message()}{where}")
    raw = _raw_compare_options(args)
    models = {"reference": (raw.get("reference") or "", None), "candidate": (raw.get("candidate") or "", None)}
    try:
        refuse_overwriting_inputs({"--json": raw.get("json_path")}, models, {"data": raw.get("data")})
    except UsageError as refusal:
        return fail(refusal, None, {}, _known_format(raw.get("fmt")), False)
    return fail(error, None, {"--json": raw.get("json_path")}, _known_format(raw.get("fmt")), False)


def _known_format(fmt: str | None) -> str:
    """A --format click refused is no format to write the error's report in."""
    return fmt if fmt in FORMATS else "text"


def _raw_compare_options(args: Sequence[str]) -> dict[str, str]:
    """compare's options as written, unconverted and unchecked, with unknown ones skipped:
    what a command line click refused still says about where its report goes."""
    if not args or args[0] != "compare":
        return {}
    compare = cli.commands["compare"]
    parser = compare.make_parser(click.Context(compare, info_name="compare", resilient_parsing=True))
    parser.ignore_unknown_options = True
    try:
        options, _, _ = parser.parse_args(list(args[1:]))
    except click.exceptions.UsageError:  # an option without its value: nothing to go on
        return {}
    return {key: value for key, value in options.items() if isinstance(value, str)}


if __name__ == "__main__":
    main()
