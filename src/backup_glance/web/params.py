"""Query-parameter parsing for the widget endpoints, with errors a person can act on.

Glance passes the `parameters:` of a widget as the query string and shows whatever body comes back (the status
code is ignored), so a bad parameter is answered with an error fragment that names the parameter and the value
it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_LIMIT = 1000
MAX_TEXT = 200  # a source name or similar; a longer value cannot match anything


class ParamError(ValueError):
    """A query parameter has a value the endpoint does not accept; the message names it."""


def choice(query: Mapping[str, str], name: str, options: tuple[str, ...], default: str) -> str:
    """
    >>> choice({"column": "full"}, "column", ("small", "full"), "small")
    'full'
    >>> choice({"column": "wide"}, "column", ("small", "full"), "small")
    Traceback (most recent call last):
    ...
    backup_glance.web.params.ParamError: bad column 'wide': use small or full
    """
    value = query.get(name, default).strip().lower() or default
    if value not in options:
        raise ParamError(f"bad {name} {value[:40]!r}: use {' or '.join(options)}")
    return value


def count(query: Mapping[str, str], name: str, default: int | None, *, low: int = 1) -> int | None:
    """
    >>> count({"limit": "5"}, "limit", None)
    5
    >>> count({}, "limit", None) is None
    True
    >>> count({"limit": "²"}, "limit", None)
    Traceback (most recent call last):
    ...
    backup_glance.web.params.ParamError: bad limit '²': use a whole number from 1 to 1000
    """
    raw = query.get(name, "").strip()
    if not raw:
        return default
    # ASCII digits only: "²".isdigit() and "①".isdigit() are true, and int() refuses them.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not low <= int(raw) <= MAX_LIMIT:
        raise ParamError(f"bad {name} {raw[:40]!r}: use a whole number from {low} to {MAX_LIMIT}")
    return int(raw)


def text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()[:MAX_TEXT]
    return value or None


__all__ = ["MAX_TEXT", "ParamError", "choice", "count", "text"]
