"""Schedule engine: when should a backup job have run?

    >>> from datetime import datetime, timezone
    >>> s = parse_schedule("mon..fri 02:00", dialect="proxmox", tz="Europe/Vienna")
    >>> s.next_after(datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)).isoformat()
    '2025-01-16T02:00:00+01:00'
    >>> s.describe()
    'Mon–Fri at 02:00 (Europe/Vienna)'

Two dialects: "proxmox" (PBS/PVE calendar events, reproducing proxmox-time, see proxmox.py) and "cron"
(5 fields, Debian semantics via cronsim, see cron.py). Nothing here reads the clock; every search is
bounded, and every bad input raises ScheduleError (a ValueError) naming the offending part.
"""

from __future__ import annotations

import functools

from ..errors import ScheduleError
from ._common import Schedule, get_zone
from .cron import parse_cron
from .proxmox import parse_proxmox

__all__ = ["DIALECTS", "Schedule", "ScheduleError", "parse_schedule"]

DIALECTS = ("proxmox", "cron")


MAX_EXPRESSION = 1000


@functools.lru_cache(maxsize=4096)
def _parse(expression: str, dialect: str, tz: str) -> Schedule:
    zone = get_zone(tz)
    if dialect == "proxmox":
        return parse_proxmox(expression, tz, zone)
    return parse_cron(expression, tz, zone)


def parse_schedule(expression: str, dialect: str = "proxmox", tz: str = "UTC") -> Schedule:
    """Parse `expression` in `dialect`, evaluated in IANA zone `tz`. Raises ScheduleError."""
    if dialect not in DIALECTS:
        raise ScheduleError(f"unknown dialect {dialect!r} (expected 'proxmox' or 'cron')", expression=expression)
    if not isinstance(expression, str):
        raise ScheduleError("a schedule expression must be a string", expression=repr(expression))
    if not isinstance(tz, str):
        raise ScheduleError(f"time zone must be an IANA name, not {type(tz).__name__}", expression=expression)
    if len(expression) > MAX_EXPRESSION:  # none is this long; a number of thousands of digits makes int() raise
        raise ScheduleError(
            f"a schedule of {len(expression):,} characters is too long (at most {MAX_EXPRESSION})",
            expression=expression[:80] + "…",
        )
    try:
        return _parse(expression, dialect, tz)
    except ScheduleError as exc:
        if not exc.expression:
            exc.expression = expression
        raise
