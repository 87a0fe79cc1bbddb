"""The action's set-up step, before perfgate is installed (so it uses the standard library
only): a virtual environment of perfgate's own, the pip requirement for the wanted
perfgate and extras, and the key of pip's cache. Writes them to $GITHUB_OUTPUT."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

_EXTRAS = re.compile(r"^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")


def requirement(extras: str, version: str, action_path: str) -> str:
    """perfgate[extras] from the action's checkout, at a version, or from a pip URL."""
    extras = re.sub(r"\s+", "", extras)
    if extras and not _EXTRAS.match(extras):
        raise ValueError(f"extras: {extras!r} is not a comma-separated list of extras such as onnx,torch")
    brackets = f"[{extras}]" if extras else ""
    version = version.strip()
    if re.search(r"\s", version):
        raise ValueError(f"perfgate-version: {version!r} holds a space or a line break")
    if not version:
        return f"{action_path}{brackets}"
    if _VERSION.match(version):
        return f"perfgate{brackets}=={version}"
    return f"perfgate{brackets} @ {version}"


def cache_key(environ: dict[str, str], extras: str, requirement_text: str, action_path: str) -> tuple[str, str]:
    """(key, prefix for restoring an older cache); no commas, which cache keys cannot hold."""
    digest = hashlib.sha256(requirement_text.encode())
    project = Path(action_path) / "pyproject.toml"
    if requirement_text.startswith(action_path) and project.exists():
        digest.update(project.read_bytes())  # the checkout's dependencies, not its path
    prefix = "-".join(["perfgate-pip", environ.get("RUNNER_OS", "os"), environ.get("RUNNER_ARCH", "arch"),
                       f"py{environ.get('PYTHON_VERSION', '')}", re.sub(r"[^A-Za-z0-9_-]", "_", extras) or "none"]) + "-"  # fmt: skip
    return prefix + digest.hexdigest()[:16], prefix


def main() -> int:
    environ = dict(os.environ)
    action_path = environ["ACTION_PATH"]
    extras = environ.get("EXTRAS", "")
    try:
        text = requirement(extras, environ.get("PERFGATE_VERSION", ""), action_path)
    except ValueError as exc:
        print(f"::error title=perfgate::{exc}", flush=True)
        return 2
    venv = Path(environ.get("RUNNER_TEMP") or "/tmp") / "perfgate-venv"
    subprocess.run([environ.get("PYTHON") or sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip_cache = subprocess.run([str(python), "-m", "pip", "cache", "dir"], check=True, capture_output=True, text=True).stdout.strip()
    key, prefix = cache_key(environ, extras, text, action_path)
    outputs = {"python": str(python), "requirement": text, "pip-cache": pip_cache, "cache-key": key, "cache-prefix": prefix}
    with open(environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as file:
        file.writelines(f"{name}={value}\n" for name, value in outputs.items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
