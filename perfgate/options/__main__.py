"""``python -m perfgate.options --schema``: write perfgate/schemas/config.schema.json from
the options table (``--check``: exit 1 where the shipped file differs)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from perfgate.options.schema import schema_text


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m perfgate.options")
    parser.add_argument("--schema", action="store_true", help="write the config file's JSON Schema")
    parser.add_argument("--check", action="store_true", help="only say whether the shipped schema is up to date")
    args = parser.parse_args()
    if not args.schema:
        parser.error("say what to write: --schema")
    path = resources.files("perfgate").joinpath("schemas/config.schema.json")
    if args.check:
        same = path.read_text() == schema_text()
        print(f"{path}: {'up to date' if same else 'differs from the options table: run python -m perfgate.options --schema'}")
        return 0 if same else 1
    with open(str(path), "w") as file:
        file.write(schema_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
