"""``python -m perfgate.options --schema``: write perfgate/schemas/config.schema.json from
the options table; ``--action action.yml``: write the table's inputs into that action.yml
(perfgate/options/action.py); ``--check``: write nothing, exit 1 where a file differs."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from perfgate.options.action import with_table_inputs
from perfgate.options.schema import schema_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perfgate.options")
    parser.add_argument("--schema", action="store_true", help="write the config file's JSON Schema")
    parser.add_argument("--action", metavar="ACTION_YML", help="write the options table's inputs into this action.yml")
    parser.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = parser.parse_args(argv)
    if not args.schema and not args.action:
        parser.error("say what to write: --schema, --action action.yml, or both")
    files: list[tuple[Path, str, str]] = []  # (path, what it should hold, the command that writes it)
    if args.schema:
        path = Path(str(resources.files("perfgate").joinpath("schemas/config.schema.json")))
        files.append((path, schema_text(), "python -m perfgate.options --schema"))
    if args.action:
        path = Path(args.action)
        try:
            wanted = with_table_inputs(path.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--action {args.action}: {exc}")
        files.append((path, wanted, f"python -m perfgate.options --action {args.action}"))
    stale = 0
    for path, wanted, command in files:
        if args.check:
            same = path.read_text() == wanted
            stale += not same
            print(f"{path}: {'up to date' if same else f'differs from the options table: run {command}'}")
        else:
            path.write_text(wanted)
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
