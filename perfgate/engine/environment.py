"""What machine a comparison ran on: enough to tell two runs' conditions apart.

Framework versions come from the workers (the parent never imports a framework).
``cpu_model`` imports nothing heavy: the pytest plugin's header line uses it in every session.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfgate.results import Environment


def capture() -> "Environment":
    from perfgate.results import Environment

    return Environment(
        os=platform.system(),
        kernel=platform.release(),
        machine=platform.machine(),
        cpu=cpu_model(),
        logical_cpus=os.cpu_count() or 0,
        usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        memory_gib=_memory_gib(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        ci=_ci_service(),
        packages={name: _version(name) for name in ("perfgate", "numpy", "scipy", "pyarrow", "click")},
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ci_service() -> str | None:
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return "github-actions"
    if os.environ.get("GITLAB_CI"):
        return "gitlab-ci"
    if os.environ.get("CI"):
        return "ci"
    return None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed" if name != "perfgate" else _source_version()


def _source_version() -> str:
    from perfgate import __version__

    return __version__

