"""Facts about an NVIDIA GPU that no framework reports in full (name, driver), from
nvidia-smi where it is installed; used by the backends inside their worker."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any


def nvidia_smi(index: int) -> dict[str, str]:
    """``{"name", "driver", "memory_total"}`` of GPU ``index``; empty where nvidia-smi is absent or fails."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return {}
    try:
        result = subprocess.run(
            [executable, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader", "-i", str(index)],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = [part.strip() for part in result.stdout.strip().split(",")]
    if len(fields) != 3:
        return {}
    return {"name": fields[0], "driver": fields[1], "memory_total": fields[2]}


def gpu_details(options: Any, cuda_version: str | None, cudnn_version: Any = None, name: str | None = None) -> dict[str, Any]:
    """The report's facts about the GPU a backend runs on (for BackendInfo.details)."""
    gpu = nvidia_smi(options.device_index)
    if name:
        gpu["name"] = name
    details: dict[str, Any] = {"gpu": gpu, "cuda_version": cuda_version, "include_transfers": options.include_transfers}
    if cudnn_version is not None:
        details["cudnn_version"] = cudnn_version
    return details
