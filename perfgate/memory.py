"""A process's own memory, from /proc/self/status (Linux).

Peak RSS is the kernel's high-water mark, VmHWM. Writing "5" to /proc/self/clear_refs
resets it to the current RSS, so that a peak taken after loading covers inference only;
where the kernel does not allow it (not Linux, no write access), the peak includes
loading, and the report says so. Sampling RSS from a thread instead would miss short
spikes, and tracemalloc sees only Python's own heap, not the framework's.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryReading:
    rss: int | None  # bytes resident now
    peak: int | None  # bytes, the high-water mark since the last reset (or since start)


class ProcMemory:
    """RSS and its high-water mark for this process."""

    def __init__(self) -> None:
        self._statm: int | None = None

    def resident(self) -> int | None:
        """RSS now, cheaply (a few microseconds: /proc/self/statm, kept open), for a reading
        after every block; None where it cannot be read."""
        try:
            if self._statm is None:
                self._statm = os.open("/proc/self/statm", os.O_RDONLY)
            return int(os.pread(self._statm, 128, 0).split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError, AttributeError):
            return None

    def read(self) -> MemoryReading:
        fields = _status_fields(("VmRSS:", "VmHWM:"))
        if fields:
            return MemoryReading(fields.get("VmRSS:"), fields.get("VmHWM:"))
        return MemoryReading(None, _ru_maxrss())

    def release_free(self) -> bool:
        """Hand the allocator's free memory back to the kernel before RSS is read; False
        where that is not possible (not glibc). See ``release_free_memory``."""
        return release_free_memory()

    def reset_peak(self) -> bool:
        """Reset the high-water mark to the current RSS; False where that is not possible."""
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            return True
        except OSError:
            return False


def release_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: return the free pages of every malloc arena to the kernel.

    Why: loading a model frees large temporaries (the parsed file's buffers). glibc raises
    its mmap threshold after freeing a large mmapped block, so later temporaries of up to
    32 MiB come from the heap, and whether their freed space can be trimmed depends on what
    was allocated above it, which follows the process's address layout (ASLR). A ~90 MB ONNX
    encoder loaded in a fresh process kept 25 MiB of freed heap in about one load in three
    (``mallinfo2``: 28 MiB free inside the main arena, none of it at the top), and never with
    ASLR off, so the same model measured 101 or 126 MiB at load. Freed memory is not the
    model's; released, every load measured 97-98 MiB. Costs one call of a few milliseconds,
    outside every timed region; it changes nothing the model does afterwards.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim  # glibc only: musl has none
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def _status_fields(names: tuple[str, ...]) -> dict[str, int]:
    try:
        with open("/proc/self/status") as status:
            lines = status.readlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        for name in names:
            if line.startswith(name):
                parts = line.split()
                found[name] = int(parts[1]) * 1024  # reported in kB
    return found


def _ru_maxrss() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB on Linux
