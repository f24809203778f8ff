"""Query-parameter parsing for the widget endpoints, with errors a person can act on.

Glance passes the `parameters:` of a widget as the query string and shows whatever body comes back (the status
code is ignored), so a bad parameter is answered with an error fragment that names the parameter and the value
it accepts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")
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


def parsed(parse: Callable[[Mapping[str, str]], T], pairs: list[tuple[str, str]]) -> T:
    """`parse` over the query's `pairs`, and no name it does not read and none given twice: `limt: 8` in a Glance
    widget's `parameters:` showed the default limit, and `limit: [5, 8]` (a list: the name repeated) one of the
    two, each without a word.

    >>> from backup_glance.web.widgets.datastores import parse_params
    >>> parsed(parse_params, [("colum", "full")])
    Traceback (most recent call last):
    ...
    backup_glance.web.params.ParamError: unknown parameter 'colum': did you mean column? (known: column, source)
    """
    query = _Reading(dict(pairs))
    result = parse(query)
    names = [name for name, _value in pairs]
    for name in dict.fromkeys(names):
        if name not in query.read:
            close = difflib.get_close_matches(name, sorted(query.read), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ParamError(f"unknown parameter {name[:40]!r}: {hint}(known: {', '.join(sorted(query.read))})")
        if names.count(name) > 1:
            raise ParamError(f"{name} given {names.count(name)} times: give it once")
    return result


class _Reading(Mapping[str, str]):
    """A query that notes the names read from it (`get` included, whether the name is there or not)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._values

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return self._values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


__all__ = ["MAX_TEXT", "ParamError", "choice", "count", "parsed", "text"]
