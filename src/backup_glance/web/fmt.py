"""Small pure formatters shared by every renderer: times, relative times, bytes, durations.

Renderers only; nothing here decides anything about a backup. No clock: "now" is always passed in (the web
layer uses the board's `generated_at`, so one board renders the same way on every request and can be cached).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def epoch(at: datetime) -> int:
    """Unix seconds, the unit Glance's `data-dynamic-relative-time` expects (not milliseconds).

    >>> from datetime import UTC
    >>> epoch(datetime(2026, 1, 1, tzinfo=UTC))
    1767225600
    """
    return int(at.timestamp())


def iso(at: datetime | None, zone: ZoneInfo) -> str | None:
    """ISO-8601 with the offset of the display zone, to the second.

    >>> from datetime import UTC
    >>> iso(datetime(2026, 7, 1, 2, 0, tzinfo=UTC), ZoneInfo("Europe/Vienna"))
    '2026-07-01T04:00:00+02:00'
    >>> iso(None, ZoneInfo("UTC")) is None
    True
    """
    return None if at is None else at.astimezone(zone).isoformat(timespec="seconds")


def clock(at: datetime, zone: ZoneInfo, *, now: datetime | None = None) -> str:
    """Wall-clock time in the display zone; the date is added when it is not `now`'s day, the year when it is
    not `now`'s year.

    >>> from datetime import UTC
    >>> z = ZoneInfo("Europe/Vienna")
    >>> clock(datetime(2026, 7, 1, 2, 5, tzinfo=UTC), z, now=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    '04:05'
    >>> clock(datetime(2026, 7, 3, 2, 5, tzinfo=UTC), z, now=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    'Fri 3 Jul 04:05'
    >>> clock(datetime(2025, 7, 3, 2, 5, tzinfo=UTC), z, now=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    'Thu 3 Jul 2025 04:05'
    """
    local = at.astimezone(zone)
    if now is not None:
        today = now.astimezone(zone).date()
        if today == local.date():
            return local.strftime("%H:%M")
        if today.year != local.year:
            return f"{local:%a} {local.day} {local:%b %Y %H:%M}"
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def soon(at: datetime, zone: ZoneInfo, *, now: datetime) -> str:
    """A compact wall-clock time for something coming up: the weekday is enough within the next six days
    (a relative time usually sits next to it); further out the date is added.

    >>> from datetime import UTC
    >>> z, now = ZoneInfo("Europe/Vienna"), datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    >>> soon(datetime(2026, 7, 1, 20, 5, tzinfo=UTC), z, now=now)
    '22:05'
    >>> soon(datetime(2026, 7, 3, 2, 5, tzinfo=UTC), z, now=now)
    'Fri 04:05'
    >>> soon(datetime(2026, 7, 9, 2, 5, tzinfo=UTC), z, now=now)
    'Thu 9 Jul 04:05'
    """
    local = at.astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    if days == 0:
        return local.strftime("%H:%M")
    if 0 < days < 7:
        return local.strftime("%a %H:%M")
    return clock(at, zone)


def stamp(at: datetime, zone: ZoneInfo) -> str:
    """Full local date and time, for tooltips and plain-text bodies.

    >>> from datetime import UTC
    >>> stamp(datetime(2026, 11, 26, 3, 3, tzinfo=UTC), ZoneInfo("Europe/Vienna"))
    '2026-11-26 04:03'
    """
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def span(delta: timedelta) -> str:
    """A compact duration, two units at most.

    >>> span(timedelta(seconds=42))
    '42s'
    >>> span(timedelta(minutes=65))
    '1h 5m'
    >>> span(timedelta(days=3, hours=4, minutes=9))
    '3d 4h'
    >>> span(timedelta(hours=2))
    '2h'
    """
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    first = next(i for i, (value, _) in enumerate(parts) if value)
    shown = [f"{value}{unit}" for value, unit in parts[first : first + 2] if value]
    return " ".join(shown)


def relative(at: datetime, now: datetime) -> str:
    """Glance's relative-time style ("5m", "3h", "2d", "in 3h"), used as the text Glance's JS later replaces.

    >>> from datetime import UTC
    >>> now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    >>> relative(now - timedelta(hours=3, minutes=20), now)
    '3h'
    >>> relative(now + timedelta(days=2), now)
    'in 2d'
    >>> relative(now - timedelta(seconds=5), now)
    '1m'
    >>> relative(now - timedelta(days=70), now)
    '2mo'
    """
    seconds = (at - now).total_seconds()
    magnitude = abs(seconds)
    if magnitude < 3600:
        text = f"{max(1, int(magnitude // 60))}m"
    elif magnitude < 86400:
        text = f"{int(magnitude // 3600)}h"
    elif magnitude < 30 * 86400:
        text = f"{int(magnitude // 86400)}d"
    elif magnitude < 365 * 86400:
        text = f"{int(magnitude // (30 * 86400))}mo"
    else:
        text = f"{int(magnitude // (365 * 86400))}y"
    return f"in {text}" if seconds > 0 else text


_MINUTE = timedelta(minutes=1)
_MICROSECOND = timedelta(microseconds=1)
# `relative`'s units, each up to where the next one takes over
_RELATIVE_UNITS = (
    (_MINUTE, timedelta(hours=1)),
    (timedelta(hours=1), timedelta(days=1)),
    (timedelta(days=1), timedelta(days=30)),
    (timedelta(days=30), timedelta(days=365)),
    (timedelta(days=365), timedelta.max),
)


def relative_until(at: datetime, now: datetime) -> datetime:
    """The last moment `relative(at, ...)` reads as it reads at `now` (to the microsecond, datetimes' step): till
    then, a text made at `now` can be shown again as it is.

    >>> from datetime import UTC
    >>> now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    >>> relative_until(now - timedelta(hours=3, minutes=20), now).time()  # "3h" until it is 4h ago
    datetime.time(12, 39, 59, 999999)
    >>> relative_until(now + timedelta(hours=3, minutes=20), now).time()  # "in 3h" while it is 3h away or more
    datetime.time(12, 20)
    >>> relative_until(now + timedelta(seconds=90), now).time()  # "in 1m" until it is due
    datetime.time(12, 1, 29, 999999)
    """
    ahead = at - now
    if ahead > timedelta(0):
        unit = next(unit for unit, end in _RELATIVE_UNITS if ahead < end)
        count = ahead // unit
        return at - _MICROSECOND if unit == _MINUTE and count <= 1 else at - unit * count
    ago = -ahead
    unit, end = next((unit, end) for unit, end in _RELATIVE_UNITS if ago < end)
    # "1m" is anything under two minutes
    return at + min(unit * max(2 if unit == _MINUTE else 1, ago // unit + 1), end) - _MICROSECOND


def size(num_bytes: int | None) -> str:
    """Binary units, as Proxmox shows them; three significant digits.

    >>> size(0)
    '0 B'
    >>> size(1536)
    '1.50 KiB'
    >>> size(3 * 1024**4 + 1024**3 * 512)
    '3.50 TiB'
    >>> size(2**60), size(None)
    ('1.00 EiB', '–')
    """
    if num_bytes is None:
        return "–"
    value = float(num_bytes)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f} {unit}"


def percent(fraction: float | None) -> str:
    """
    >>> percent(0.734)
    '73%'
    >>> percent(None)
    '–'
    """
    return "–" if fraction is None else f"{fraction * 100:.0f}%"


__all__ = ["clock", "epoch", "iso", "percent", "relative", "size", "soon", "span", "stamp"]
