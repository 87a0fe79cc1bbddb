"""Rendered reports written to files.

A regular file (or a path where nothing is yet) is replaced atomically: a temporary file
in the same directory, then a rename, so that a reader (a CI step, an artifact upload, a
browser) never sees half a report, and a failed write leaves any earlier file as it was.

Anything else that exists at the path (a device such as ``/dev/null`` or ``/dev/stdout``,
a FIFO, a terminal) is opened and written as it is: a rename would replace the device
node with a regular file (as root in a CI container, ``/dev/null`` turned into a
world-writable file holding the report breaks every later step). A failed write raises
OSError, which every face turns into exit 3 (``/dev/full`` says "No space left").

Missing parent folders are created, so that ``--json reports/perfgate.json`` works in a
fresh checkout; ``check_writable`` says before anything is measured whether a path can
take a report at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` at ``path``: a regular file is replaced in one rename (a symlink is
    followed, the file it points to is replaced, and an existing file keeps its
    permissions); a device or FIFO is written in place."""
    if is_special(path):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
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


def check_writable(path: str | os.PathLike) -> str | None:
    """Why a report cannot be written at ``path``, in a few words, or None when it can
    (as far as can be told without writing): an existing directory, a parent that is a
    file, a folder that is not writable. Called before measuring, so that a run is never
    measured and then thrown away for want of a place to put its report."""
    try:
        if is_special(path):
            return None if os.access(path, os.W_OK) else "it is not writable"
        if os.path.isdir(path):
            return "it is a directory"
        target = Path(os.path.realpath(path))
        existing = target.parent
        while not existing.exists():  # the first folder that exists: the rest will be created
            existing = existing.parent
    except OSError as exc:  # a name too long, a loop of symlinks
        return exc.strerror or str(exc)
    except ValueError as exc:  # an embedded NUL
        return str(exc)
    if not existing.is_dir():
        return f"{str(existing)!r} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {str(existing)!r} is not writable"
    if len(target.name.encode("utf-8", "surrogateescape")) > _name_max(existing):
        return os.strerror(errno.ENAMETOOLONG)
    return None


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name one file, however they are spelt (``./a``, a symlink, a hard
    link); paths that do not exist are compared as written, normalised."""
    try:
        return os.path.samefile(first, second)
    except (OSError, ValueError):
        return os.path.normpath(os.fsdecode(first)) == os.path.normpath(os.fsdecode(second))


def is_special(path: str | os.PathLike) -> bool:
    """Whether ``path`` (followed through symlinks) exists and is not a regular file or a
    directory, or names one of the process's own streams (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``): those are written in place even when the shell redirected them
    to a regular file, which a rename would replace behind the shell's back."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    if os.path.abspath(os.fsdecode(path)).startswith(_STREAM_FOLDERS):
        return True
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


_STREAM_FOLDERS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _mode_for(target: Path) -> int:
    """The existing file's permissions, or what a new file gets under the umask (mkstemp's 0600
    would hide the report from the rest of a CI job)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
