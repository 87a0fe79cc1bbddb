"""HTTP headers for a served model, as a user writes them: ``'Name: value'``.

A value may name environment variables, ``${TOKEN}`` or ``$TOKEN`` (``$$`` is a literal
``$``), so that a secret stays in the CI's environment and out of the command line and the
config file. They are expanded in the parent, before any worker starts, and travel to the
worker inside ``LoadRequest`` (a field left out of its repr).

A header's value is a secret: no error message, report, log line or repr shows it, nor any
part of it. Errors name the header and the variable only; ``redact`` takes the values out
of text that comes from elsewhere (a server's error message may echo the token it refused).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Sequence

from perfgate.errors import UsageError

Headers = tuple[tuple[str, str], ...]

# RFC 9110's token: what a header name may be made of
_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*)|(\$))")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REDACTED = "[redacted]"
# values and words of one shorter than this are not taken out of other text: a flag ("1") is
# no secret, and taking out every "1" would garble "HTTP 401"; a token is longer
_SHORTEST_SECRET_PART = 6


def expand_headers(lines: Sequence[str], side: str, environ: Mapping[str, str] | None = None) -> Headers:
    """``'Name: value'`` lines as (name, value) pairs, with environment variables expanded;
    a UsageError naming ``side`` and the header (never its value) for a line that is no
    header, a variable that is not set, or a value HTTP cannot carry.

    >>> expand_headers(["Authorization: Bearer ${TOKEN}"], "candidate", {"TOKEN": "abc"})
    (('Authorization', 'Bearer abc'),)
    """
    environ = os.environ if environ is None else environ
    found = []
    for index, line in enumerate(lines, start=1):
        name, value = _parse(line, index, side)
        value = _expanded(value, name, side, environ)
        if any(not (" " <= character <= "~" or character == "\t") for character in value):
            raise UsageError(
                f"{side}: header {name}: its value holds a character HTTP headers cannot carry "
                f"(a line break, a control character or a non-ASCII one)"
            )
        found.append((name, value))
    return tuple(found)


def _parse(line: str, index: int, side: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name = name.strip()
    if not colon or not name:
        # the line is not shown: it may be a secret written without its name
        raise UsageError(f"{side}: header {index} is not 'Name: value' (e.g. 'Authorization: Bearer ${{TOKEN}}')")
    if not _NAME.match(name):
        raise UsageError(f"{side}: header {index}: its name is no HTTP header name (letters, digits and -, e.g. 'Authorization')")
    return name, value.strip()


def _expanded(value: str, name: str, side: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        variable = match.group(1) if match.group(1) is not None else match.group(2)
        if not _VARIABLE_NAME.match(variable):
            raise UsageError(f"{side}: header {name}: ${{...}} names no environment variable (letters, digits and _)")
        if variable not in environ:
            raise UsageError(f"{side}: header {name}: environment variable {variable} is not set")
        return environ[variable]

    return _VARIABLE.sub(substitute, value)


def secret_parts(headers: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """What ``redact`` takes out: each value whole, and each of its words, where long enough to
    be a token (a server may echo ``sk-...`` without the ``Bearer`` before it);
    longest first, so that a whole value goes before its parts."""
    parts = set()
    for _, value in headers:
        parts.update(part for part in (value, *value.split()) if len(part) >= _SHORTEST_SECRET_PART)
    return tuple(sorted(parts, key=len, reverse=True))


def redact(text: str, headers: Iterable[tuple[str, str]]) -> str:
    """``text`` with every header value (and each long word of one) replaced by [redacted].

    >>> redact("invalid token sk-123456", [("Authorization", "Bearer sk-123456")])
    'invalid token [redacted]'
    """
    for part in secret_parts(headers):
        text = text.replace(part, REDACTED)
    return text
