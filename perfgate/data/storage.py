"""Where a Parquet file lives: a local path, or any URI that pyarrow's filesystems open
(``s3://``, ``gs://``, ``hdfs://``, ``file://``, ...).

Credentials and endpoints are pyarrow's business and come from the usual environment
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible server;
``GOOGLE_APPLICATION_CREDENTIALS`` for Cloud Storage), or from the URI's query
(``s3://bucket/key?endpoint_override=host:9000&scheme=http``). Only this process opens
the file: the workers get arrays, never the data's location, so they need no credentials.

Every failure is one DataError naming the location (exit 3, as for a missing local file);
a scheme no filesystem knows is a usage error (exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from perfgate.backends.paths import is_native, shown, special_kind
from perfgate.errors import DataError, UsageError, first_line

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str) -> bool:
    """``s3://bucket/key`` and ``file:///data.parquet`` are URIs; ``data.parquet`` and ``C:\\data`` are paths."""
    return _URI.match(location) is not None


def open_parquet(location: str):
    """The ``pyarrow.parquet.ParquetFile`` at ``location`` (only its footer is read)."""
    import pyarrow.parquet as pq

    source = _open_local(location) if not is_uri(location) else _open_remote(location)
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read data {shown(location)}: not a readable Parquet file ({first_line(exc)})") from exc


def _open_local(location: str):
    """A path pyarrow can open: the path itself, or an open file where pyarrow's native
    code cannot take the name (undecodable bytes: perfgate/backends/paths.py)."""
    where = Path(location)
    try:
        if where.is_dir():
            raise DataError(f"cannot read data {shown(location)}: it is a directory, not a Parquet file")
        special = special_kind(location)
        if special is not None:  # the user named something that is no file: reading it would wait forever
            raise UsageError(f"cannot read data {shown(location)}: it is {special}, not a Parquet file")
        if not where.is_file():
            raise DataError(f"cannot read data {shown(location)}: no such file")
        if where.stat().st_size == 0:
            raise DataError(f"cannot read data {shown(location)}: the file is empty (0 bytes)")
        return location if is_native(location) else open(location, "rb")
    except OSError as exc:
        # a name too long, a permission denied on the way: os.strerror's words, not the path again
        raise DataError(f"cannot read data {shown(location)}: {exc.strerror or first_line(exc)}") from exc


def _open_remote(location: str):
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(location)
    except pa.ArrowInvalid as exc:
        # a scheme no filesystem knows, or a URI that does not parse: the option's value is wrong
        raise UsageError(f"cannot read data {shown(location)}: {first_line(exc)} (pyarrow's filesystems open s3://, gs://, hdfs://, file://)") from exc
    except UnicodeEncodeError:
        # bytes that are not UTF-8 (a Latin-1 key, or any non-ASCII under LC_ALL=C): a URI is text
        raise UsageError(
            f"cannot read data {shown(location)}: a URI must be UTF-8 text; percent-encode other bytes (%E9)"
        ) from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read data {location!r}: {_short(exc)}") from exc
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.NotFound:
            raise DataError(f"cannot read data {location!r}: {_missing(filesystem, path)}")
        if info.type == fs.FileType.Directory:
            raise DataError(f"cannot read data {location!r}: it is a directory, not a Parquet file")
        if info.size == 0:
            raise DataError(f"cannot read data {location!r}: the file is empty (0 bytes)")
        return filesystem.open_input_file(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read data {location!r}: {_short(exc)}") from exc


def _missing(filesystem, path: str) -> str:
    """'no such bucket' where an object store's bucket is missing, else 'no such file'."""
    from pyarrow import fs

    bucket = path.split("/", 1)[0]
    if isinstance(filesystem, (getattr(fs, "S3FileSystem", ()), getattr(fs, "GcsFileSystem", ()))) and bucket != path:
        if filesystem.get_file_info(bucket).type == fs.FileType.NotFound:
            return f"no such bucket {bucket!r}"
        return f"no such key {path.split('/', 1)[1]!r} in bucket {bucket!r}"
    return "no such file"


def _short(exc: BaseException) -> str:
    # pyarrow says "When getting information for key 'k' in bucket 'b': AWS Error ...": the
    # location is already in the message, so keep what went wrong
    text = first_line(exc)
    head, sep, tail = text.partition(": ")
    text = tail if sep and head.startswith("When ") else text
    if "ACCESS_DENIED" in text or "INVALID_ACCESS_KEY_ID" in text or "SIGNATURE_DOES_NOT_MATCH" in text:
        text += " (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    return text
