"""File names as Linux has them: bytes, which need not be text.

Python hands such a name to perfgate as a ``str`` whose undecodable bytes are lone
surrogates (PEP 383): ``donn\\xe9es.parquet`` (Latin-1) is ``'donn\\udce9es.parquet'``, and
under ``LC_ALL=C PYTHONUTF8=0`` every non-ASCII byte is one, UTF-8 names included. Python's
own ``open`` and ``os`` functions give those bytes back (``os.fsencode``); the frameworks'
native code does not: it encodes the ``str`` as UTF-8, which raises on a surrogate (and,
under a Latin-1 locale, would name other bytes than the file's). So a name the frameworks
cannot take reaches them through a symlink whose name they can (``framework_path``), and
messages and reports show it with its undecodable bytes written as ``\\xNN``
(``printable``): valid UTF-8, and what ``ls -b`` shows.

No framework is imported here, so the parent process may use it too.
"""

from __future__ import annotations

import atexit
import os
import stat
import shutil
import tempfile
from pathlib import Path


def is_native(path: str) -> bool:
    """Whether native code that encodes ``path`` as UTF-8 opens the file Python would."""
    try:
        return path.encode("utf-8") == os.fsencode(path)
    except UnicodeEncodeError:
        return False


def bytes_escaped(text: str) -> str:
    """``text`` with a file name's undecodable bytes (lone surrogates, PEP 383) written
    ``\\xNN``, and bytes that form valid UTF-8 together (a UTF-8 name under the C locale) text
    again: valid UTF-8 that every printer, report format and JSON reader takes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name gives
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(path: str | os.PathLike) -> str:
    """``path`` as one line of text that encodes anywhere: an undecodable byte written
    ``\\xNN`` (``donn\\xe9es.parquet`` under any locale, ``données`` for its UTF-8 bytes even
    under C), a control character as its escape (``\\n``)."""
    text = os.fspath(path)
    if text.isascii() and text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in bytes_escaped(text))


_NOT_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)  # fmt: skip


def special_kind(path: str) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a directory (links
    followed): "a named pipe (FIFO)", "a character device", …; else None. Reading a FIFO
    waits for a writer that never comes, and /dev/zero never ends: neither is a model or data."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((words for kind, words in _NOT_FILES if kind(mode)), None)


def shown(path: str) -> str:
    """``path`` quoted for a one-line message: printable, and a long one shortened to its
    start and end (a 5000-character name would bury what went wrong)."""
    text = printable(path)
    if len(text) > 120:
        text = f"{text[:60]}…{text[-60:]}"
    return f"'{text}'"


_aliases: list[str] = []  # folders of symlinks made in this process, removed at exit


def framework_path(path: str) -> str:
    """``path``, or where it is not native, a symlink to it with a native name.

    The symlink's folder links to the model's folder, so that files beside the model (an
    ONNX model's external weights, say) are found where the model expects them; only a
    model whose own name is not native is linked alone, as ``model`` plus its suffix."""
    if is_native(path):
        return path
    real = Path(os.path.abspath(path))
    folder = tempfile.mkdtemp(prefix="perfgate-name-")
    if not _aliases:
        atexit.register(_remove_aliases)
    _aliases.append(folder)
    if is_native(real.name):
        os.symlink(real.parent, os.path.join(folder, "folder"), target_is_directory=True)
        return os.path.join(folder, "folder", real.name)
    suffix = real.suffix if is_native(real.suffix) else ""
    alias = os.path.join(folder, "model" + suffix)
    os.symlink(real, alias, target_is_directory=real.is_dir())
    return alias


def _remove_aliases() -> None:
    for folder in _aliases:
        shutil.rmtree(folder, ignore_errors=True)  # removes the links, never what they point to
    _aliases.clear()
