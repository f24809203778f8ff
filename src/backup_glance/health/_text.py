"""Wording shared by every reason health writes. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def when(moment: datetime, tz: str, now: datetime | None = None) -> str:
    """A moment as a person reads it on the board; with its year when that is not `now`'s year there (a backup
    from thirteen months ago must not read as last week's).

    >>> from datetime import UTC
    >>> when(datetime(2026, 11, 26, 3, 0, tzinfo=UTC), "Europe/Madrid")
    'Thu 26 Nov 04:00'
    >>> when(datetime(2025, 11, 26, 3, 0, tzinfo=UTC), "Europe/Madrid", now=datetime(2026, 11, 27, tzinfo=UTC))
    'Wed 26 Nov 2025 04:00'
    >>> when(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Madrid", now=datetime(2026, 12, 31, 22, tzinfo=UTC))
    'Fri 01 Jan 2027 00:30'
    """
    zone = ZoneInfo(tz)
    local = moment.astimezone(zone)
    if now is not None and now.astimezone(zone).year != local.year:
        return local.strftime("%a %d %b %Y %H:%M")
    return local.strftime("%a %d %b %H:%M")


def span(delta: timedelta) -> str:
    """A duration in the two largest units.

    >>> span(timedelta(hours=26, minutes=5))
    '1d 2h'
    >>> span(timedelta(minutes=90))
    '1h 30m'
    >>> span(timedelta(seconds=40))
    '40s'
    """
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(shown) if shown else "0s"


def size(count: float) -> str:
    """Bytes as a person reads them (powers of 1024).

    >>> size(350 * 1024**2), size(3.3 * 1024**3), size(512)
    ('350 MB', '3.3 GB', '512 B')
    """
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            text = f"{value:.1f}" if unit != "B" and abs(value) < 10 else f"{value:.0f}"
            return f"{text} {unit}"
        value /= 1024
    return f"{value:.0f} PB"  # pragma: no cover - the loop returns at TB
