"""Rendered reports written to files: each one atomically (a temporary file in the same
directory, then a rename), so that a reader (a CI step, an artifact upload, a browser)
never sees half a report, and a failed write leaves any earlier file as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename. A symlink at ``path`` is followed (the
    file it points to is replaced), and an existing file keeps its permissions."""
    target = Path(os.path.realpath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _mode_for(target: Path) -> int:
    """The existing file's permissions, or what a new file gets under the umask (mkstemp's 0600
    would hide the report from the rest of a CI job)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
