"""Plumbing shared by both dialects: zones, epoch <-> datetime, civil dates, the `Schedule` base class.

Everything below works on whole Unix seconds (ints). Datetimes appear only at the public edge, so the
engines never read the clock and never round-trip through floats.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ScheduleError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Results must be representable as datetimes in any zone: keep two days away from year 1 and year 9999.
MIN_EPOCH = -62135596800 + 2 * 86400
MAX_EPOCH = 253402300799 - 2 * 86400
# previous_before looks back at most this far (about 544 years) before giving up.
MAX_LOOKBACK = 1 << 34
# A backward search walks at most this many occurrences once it has found a window.
MAX_WALK = 100_000

OffsetFn = Callable[[int], int]


@functools.lru_cache(maxsize=512)
def get_zone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; ScheduleError if there is no such zone.

    >>> get_zone("Europe/Vienna").key
    'Europe/Vienna'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError) as exc:
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Vienna')") from exc


@functools.lru_cache(maxsize=512)
def offset_fn(zone: ZoneInfo) -> OffsetFn:
    """Return off(t): the zone's UTC offset in whole seconds at Unix time t.

    zoneinfo is exact but costs about a microsecond per call, so offsets are memoised per half hour:
    a half hour whose two ends share an offset holds no transition (no zone changes twice within 30
    minutes), anything else falls back to the exact lookup.
    """
    cache: dict[int, int] = {}
    mixed = -(10**9)

    def exact(t: int) -> int:
        t = min(max(t, MIN_EPOCH), MAX_EPOCH)
        delta = datetime.fromtimestamp(t, zone).utcoffset()
        return 0 if delta is None else delta.days * 86400 + delta.seconds

    def off(t: int) -> int:
        bucket = t // 1800
        value = cache.get(bucket)
        if value is None:
            if len(cache) > 200_000:
                cache.clear()
            start = exact(bucket * 1800)
            value = start if start == exact(bucket * 1800 + 1799) else mixed
            cache[bucket] = value
        return exact(t) if value == mixed else value

    return off


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).

    >>> days_from_civil(2025, 1, 15)
    20103
    """
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of days_from_civil.

    >>> civil_from_days(20103)
    (2025, 1, 15)
    """
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _require_aware(when: datetime, name: str) -> None:
    if not isinstance(when, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime; pass an aware one, e.g. datetime.now(timezone.utc)")


def floor_epoch(when: datetime, name: str = "when") -> int:
    """Whole Unix seconds at or before an aware datetime."""
    _require_aware(when, name)
    delta = when - EPOCH
    return delta.days * 86400 + delta.seconds


def ceil_epoch(when: datetime, name: str = "when") -> int:
    """Whole Unix seconds at or after an aware datetime."""
    _require_aware(when, name)
    delta = when - EPOCH
    return delta.days * 86400 + delta.seconds + (1 if delta.microseconds else 0)


def to_datetime(t: int | None, zone: ZoneInfo) -> datetime | None:
    """An aware datetime in `zone`, or None for None or instants outside what datetime can hold."""
    if t is None or not MIN_EPOCH <= t <= MAX_EPOCH:
        return None
    return datetime.fromtimestamp(t, zone)


class Schedule(ABC):
    """A parsed schedule. Immutable; obtain one with `parse_schedule`.

    Attributes: `expression` (as given), `dialect` ("proxmox" or "cron"), `timezone` (IANA name) and
    `tzinfo` (its ZoneInfo). Results are aware datetimes in `tzinfo`. Passing a naive datetime raises
    ValueError: a schedule cannot guess which zone a naive time was meant in.
    """

    __slots__ = ("dialect", "expression", "timezone", "tzinfo")

    def __init__(self, expression: str, dialect: str, timezone_name: str, zone: ZoneInfo) -> None:
        self.expression = expression
        self.dialect = dialect
        self.timezone = timezone_name
        self.tzinfo = zone

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.expression!r} dialect={self.dialect} tz={self.timezone}>"

    # -- engine hooks, in whole Unix seconds ------------------------------------------------------
    @abstractmethod
    def _next_epoch(self, last: int) -> int | None:
        """First occurrence strictly after `last`, or None."""

    def _prev_epoch(self, t: int) -> int | None:
        """Last occurrence p < t with _next_epoch(p) >= t: the exact mirror of _next_epoch.

        Widen a window [t - delta, t) until forward search finds an occurrence in it, narrow it by
        bisection, then walk forward with _next_epoch so the answer is what forward search produces.
        """
        nxt = self._next_epoch
        delta = 1
        while delta <= MAX_LOOKBACK:
            x = max(t - delta, MIN_EPOCH)
            found = nxt(x - 1)
            if found is not None and found < t:
                lo, hi = x, max(x, t - delta // 2)  # occurrence reachable from lo, none from hi
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    probe = nxt(mid - 1)
                    if probe is not None and probe < t:
                        lo, found = mid, probe
                    else:
                        hi = mid
                for _ in range(MAX_WALK):
                    after = nxt(found)
                    if after is None or after >= t:
                        break
                    found = after
                return found
            if x == MIN_EPOCH:
                return None
            delta *= 2
        return None

    def _epochs_between(self, start: int, end: int) -> Iterator[int]:
        """Occurrences start <= t < end, chaining _next_epoch."""
        t = self._next_epoch(start - 1)
        while t is not None and t < end:
            yield t
            t = self._next_epoch(t)

    @abstractmethod
    def describe(self) -> str:
        """Human text, e.g. 'Mon–Fri at 02:00 (Europe/Vienna)'."""

    # -- public API -------------------------------------------------------------------------------
    def next_after(self, when: datetime) -> datetime | None:
        """The first occurrence strictly after `when` (aware), in this schedule's zone, or None."""
        return to_datetime(self._next_epoch(floor_epoch(when)), self.tzinfo)

    def previous_before(self, when: datetime) -> datetime | None:
        """The last occurrence strictly before `when`, mirroring next_after, or None."""
        return to_datetime(self._prev_epoch(ceil_epoch(when)), self.tzinfo)

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Occurrences with start <= t < end, in order (what chained next_after calls give)."""
        zone = self.tzinfo
        for t in self._epochs_between(ceil_epoch(start, "start"), ceil_epoch(end, "end")):
            dt = to_datetime(t, zone)
            if dt is None:
                return
            yield dt
