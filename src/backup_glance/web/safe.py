"""Rendering never takes the board down: a record that cannot be shown costs its own row, not the answer.

    rows = each(board.verdicts, build_row, fallback=error_row, what="service", key=lambda v: v.service_id)

The failure is logged once per (what, key), not on every request or every board version, and the fallback
row says that something is wrong so it is not silently missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

ERROR_TEXT = "cannot be shown (internal error; see the backup-glance log)"
_MAX_REPORTED = 1000
_reported: set[tuple[str, str]] = set()


def each(
    items: Iterable[T],
    build: Callable[[T], R],
    *,
    fallback: Callable[[T], R | None],
    what: str,
    key: Callable[[T], str],
) -> list[R]:
    """`build` every item; one that raises gets `fallback(item)` instead (None: left out), logged once."""
    out: list[R] = []
    for item in items:
        try:
            out.append(build(item))
        except Exception:
            name = _safe_key(key, item)
            if (what, name) not in _reported:
                if len(_reported) < _MAX_REPORTED:
                    _reported.add((what, name))
                log.exception("a record could not be rendered", extra={"record": what, "key": name})
            try:
                replacement = fallback(item)
            except Exception:
                replacement = None
            if replacement is not None:
                out.append(replacement)
    return out


def shows(at: datetime | None, zone: ZoneInfo) -> bool:
    """Whether an instant can be shown in `zone` (year 9999 plus an offset cannot)."""
    if at is None:
        return True
    try:
        at.astimezone(zone)
        at.timestamp()
    except (OverflowError, ValueError, OSError):
        return False
    return True


def _safe_key(key: Callable[[T], str], item: T) -> str:
    try:
        return str(key(item))[:200]
    except Exception:
        return "?"
