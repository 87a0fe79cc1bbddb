"""The built distribution as a user gets it: the wheel in DIST installed with the onnx extra
into a fresh virtual environment outside the checkout, its perfgate imported from there,
and fixtures/demo.sh (the A/A pair passes, the slow model fails) run with that
environment's perfgate on a copy of the fixtures it needs. Standard library only: it runs
where perfgate is not installed.

usage: python .github/release/check_wheel.py DIST [--tag vX.Y.Z]

With --tag (the release workflow), the tag must be v + the built version and CHANGELOG.md
must have a dated section for that version.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILES = ("demo.sh", "features.parquet", "mlp_reference.onnx", "mlp_aa.onnx", "mlp_slow.onnx")
_WHEEL = re.compile(r"^perfgate-(?P<version>[^-]+)-py3-none-any\.whl$")
_SDIST = re.compile(r"^perfgate-(?P<version>.+)\.tar\.gz$")


class CheckFailed(Exception):
    pass


def built_version(dist: Path) -> tuple[Path, str]:
    """The one wheel in dist and its version, which the one sdist must share."""
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise CheckFailed(f"{dist}: want one wheel and one sdist, found {[p.name for p in wheels + sdists]}")
    wheel, sdist = _WHEEL.match(wheels[0].name), _SDIST.match(sdists[0].name)
    if not wheel:
        raise CheckFailed(f"{wheels[0].name}: not a pure-Python perfgate wheel (perfgate-VERSION-py3-none-any.whl)")
    if not sdist or sdist["version"] != wheel["version"]:
        raise CheckFailed(f"{sdists[0].name} and {wheels[0].name} are not the same perfgate version")
    return wheels[0], wheel["version"]


def check_tag(tag: str, version: str, changelog: str) -> None:
    """A release's tag names the version it builds, and the changelog says what is in it."""
    if tag != f"v{version}":
        raise CheckFailed(f"tag {tag} does not match the built version {version} (perfgate/__init__.py): want v{version}")
    # an undated section is a version still being prepared; the release dates it
    if not re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.MULTILINE):
        raise CheckFailed(f"CHANGELOG.md has no dated section for {version}: want '## [{version}] - YYYY-MM-DD'")


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True)


def check_installed(wheel: Path, version: str, work: Path) -> int:
    # PYTHONPATH would let the checkout's perfgate stand in for the installed one
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    install = run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "-c", str(ROOT / "constraints" / "ci.txt"), f"{wheel}[onnx]"], work, env)  # fmt: skip
    if install.returncode:
        raise CheckFailed(f"installing {wheel.name}[onnx] failed:\n{install.stdout}{install.stderr}")
    probe = run([str(python), "-c", "import importlib.metadata, importlib.resources, perfgate; "
                 "print(perfgate.__file__); print(perfgate.__version__); print(importlib.metadata.version('perfgate')); "
                 "print(importlib.resources.files('perfgate').joinpath('schemas/config.schema.json').is_file())"],
                work, env)  # fmt: skip
    lines = probe.stdout.split()
    if probe.returncode or len(lines) != 4:
        raise CheckFailed(f"the installed perfgate does not import:\n{probe.stdout}{probe.stderr}")
    where, module_version, dist_version, schema = lines
    if not Path(where).resolve().is_relative_to(venv.resolve()):
        raise CheckFailed(f"perfgate imports from {where}, not from the wheel's environment {venv}")
    if {module_version, dist_version} != {version}:
        raise CheckFailed(f"the wheel says {version}, perfgate.__version__ {module_version}, its metadata {dist_version}")
    if schema != "True":
        raise CheckFailed("the wheel lacks perfgate/schemas/config.schema.json")
    cli = run([str(bin_dir / "perfgate"), "--version"], work, env)
    if cli.returncode or version not in cli.stdout:
        raise CheckFailed(f"perfgate --version: exit {cli.returncode}, {cli.stdout!r}{cli.stderr!r}")
    print(f"perfgate {version} from {where}", flush=True)

    demo = work / "demo"
    (demo / "fixtures").mkdir(parents=True)
    for name in DEMO_FILES:
        shutil.copy2(ROOT / "fixtures" / name, demo / "fixtures" / name)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", str(demo / "fixtures" / "demo.sh")], cwd=demo, env=env)
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote the sdist and wheel to")
    parser.add_argument("--tag", help="the release tag, which must be v + the built version")
    args = parser.parse_args(argv)
    try:
        wheel, version = built_version(args.dist)
        if args.tag is not None:
            check_tag(args.tag, version, (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory(prefix="perfgate-wheel-") as work:
            demo = check_installed(wheel.resolve(), version, Path(work))
    except CheckFailed as exc:
        print(f"check_wheel: {exc}", file=sys.stderr)
        return 1
    if demo:
        print(f"check_wheel: the demo failed with the installed wheel (exit {demo})", file=sys.stderr)
    return demo


if __name__ == "__main__":
    sys.exit(main())
