"""Proxmox calendar events (PBS/PVE `schedule`), reproducing proxmox-time 2.1.1.

Grammar and quirks: proxmox/proxmox-rs `proxmox-time/src/calendar_event.rs` and PBS's `docs/calendarevents.rst`;
vectors computed with that crate are in tests/data/calendar-vectors.tsv. The parser
follows the crate's behaviour (not its code) rule by rule; the comments name the quirks it must keep:

- a lone number is the *minute*; `24:00` backtracks to minute 24, second 0; `N/R` repeats without an upper
  bound, so find-next may overshoot a field (`0/7:00` at 22:00 jumps to 04:00 next day, then 07:00);
- weekday ranges wrap (`fri..mon`); weekday AND date; keywords only alone and lowercase;
- a trailing `UTC` (plus the spaces before it) selects UTC; the input is trimmed first, as PVE does.

The search walks wall-clock fields year -> month -> day -> weekday -> hour -> minute -> second, jumping a
field to its next allowed value and resetting the smaller ones, like proxmox-time. It gives up after 1000
steps (returns None), exactly where proxmox-time does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..errors import ScheduleError
from ._common import MAX_EPOCH, OffsetFn, Schedule, civil_from_days, days_from_civil, offset_fn
from ._pxparse import Comp, Event, parse_event

__all__ = ["ProxmoxSchedule", "parse_proxmox"]

_MAX_STEPS = 1000  # proxmox-time: "cancel after 1000 loops" (it allows 1001 passes)
_MAX_YEAR = 9000  # past this the fields could not become a datetime anyway


def _contains(comp: Comp, value: int) -> bool:
    kind, start, step, end = comp
    if kind == "single":
        return value == start
    if kind == "range":
        return start <= value <= end
    if value < start:
        return False
    if step == 0:
        return value == start
    return (value - start) % step == 0 and (end < 0 or value <= end)


def _find_next(comps: Sequence[Comp], value: int) -> int | None:
    """Smallest listed value greater than `value`. Repetitions without an end run past the field's range."""
    best: int | None = None
    for kind, start, step, end in comps:
        cand: int | None = None
        if kind == "single":
            cand = start if start > value else None
        elif value < start:
            cand = start
        elif kind == "range":
            cand = value + 1 if value + 1 <= end else None
        elif step > 0:
            cand = start + ((value - start + step) // step) * step
            if end >= 0 and cand > end:
                cand = None
        if cand is not None and (best is None or cand < best):
            best = cand
    return best


Table = tuple[tuple[bool, ...], tuple[int | None, ...]] | None


def _table(comps: Sequence[Comp], size: int) -> Table:
    """(is-allowed, find-next) lookups for field values 0..size-1; None when the field is unrestricted."""
    if not comps:
        return None
    ok = tuple(any(_contains(c, v) for c in comps) for v in range(size))
    return ok, tuple(_find_next(comps, v) for v in range(size))


@dataclass(frozen=True, slots=True)
class _Compiled:
    years: tuple[Comp, ...]
    month: Table
    day: Table
    wskip: tuple[int, ...] | None  # days to add per weekday (Mon=0), 0 = allowed
    hour: Table
    minute: Table
    second: Table


def _compile(ev: Event) -> _Compiled:
    wskip: tuple[int, ...] | None = None
    if ev.weekdays and ev.weekdays != 0x7F:
        skips = []
        for wd in range(7):
            if ev.weekdays >> wd & 1:
                skips.append(0)
                continue
            later = [n for n in range(wd + 1, 7) if ev.weekdays >> n & 1]
            skips.append((later[0] if later else 7) - wd)
        wskip = tuple(skips)
    return _Compiled(
        years=ev.year,
        month=_table(ev.month, 13),
        day=_table(ev.day, 32),
        wskip=wskip,
        hour=_table(ev.hour, 24),
        minute=_table(ev.minute, 60),
        second=_table(ev.second, 60),
    )


def _settle(wall: int, guess: int, off: OffsetFn) -> tuple[int, int]:
    """Emulate glibc mktime(tm_isdst=-1): the instant and offset for a wall time (seconds, as if UTC).

    glibc starts from the offset of its previous call (`guess`) and refines: for a repeated wall time
    that picks the occurrence on the guess's side of the transition; for a skipped one it oscillates and
    glibc settles on the later instant, i.e. the time moves forward by the gap (02:30 -> 03:30).
    """
    t = wall - guess
    o = off(t)
    if o == guess:
        return t, o
    t = wall - o
    o2 = off(t)
    if o2 == o:
        return t, o
    t3 = wall - o2
    o3 = off(t3)
    if o3 == o2:
        return t3, o3
    t = wall - min(o, o2)  # in a gap: keep the pre-transition offset, which lands after the gap
    return t, off(t)


class ProxmoxSchedule(Schedule):
    """A Proxmox calendar event evaluated in a zone (or in UTC with the `UTC` suffix)."""

    __slots__ = ("_c", "_calm", "_civil", "_ev", "_off", "_tod")

    def __init__(self, expression: str, timezone_name: str, zone: ZoneInfo, ev: Event) -> None:
        super().__init__(expression, "proxmox", timezone_name, zone)
        self._ev = ev
        self._c = _compile(ev)
        utc = ev.utc or zone.key == "UTC"
        self._off: OffsetFn | None = None if utc else offset_fn(zone)
        self._civil: dict[int, tuple[int, int, int]] = {}
        self._tod: dict[int, int | None] = {}
        self._calm: dict[int, bool] = {}

    @property
    def event(self) -> Event:
        """The parsed event (fields as component lists)."""
        return self._ev

    def describe(self) -> str:
        from .describe import describe_proxmox

        return describe_proxmox(self._ev, "UTC" if self._ev.utc else self.timezone)

    # -- forward search ---------------------------------------------------------------------------
    def _fields(self, wall: int) -> tuple[int, int, int, int, int, int, int]:
        days, rem = divmod(wall, 86400)
        ymd = self._civil.get(days)
        if ymd is None:
            if len(self._civil) > 50_000:
                self._civil.clear()
            ymd = self._civil[days] = civil_from_days(days)
        return ymd[0], ymd[1], ymd[2], rem // 3600, rem // 60 % 60, rem % 60, (days + 3) % 7

    def _initial_guess(self, t: int, o: int) -> int:
        """The offset glibc would start from at the first normalisation of a search.

        glibc's mktime starts from the offset its previous call ended with. A fresh process starts from 0
        (UTC): the reference vectors' first results were computed so, which is why `02:30` searched from
        2025-10-26 00:00+02:00 (Vienna) lands on the *second* 02:30. But a search that chains from its
        previous result (`t - 1` is an event: PVE's schedule-analyze, PBS's scheduler, our `between`) starts
        from that result's offset, the last mktime call having normalised it; so in Vienna after
        2025-10-26 01:59+02:00, `41,59/28` fires at 02:41+02:00, the first pass of the repeated hour. A
        search that starts inside a repeated hour also continues from the occurrence it stands on.
        """
        off = self._off
        assert off is not None
        if self._is_event(t - 1):
            return off(t - 1)
        wall = t + o
        for other in (off(t - 86400), off(t + 86400)):
            if other != o and off(wall - other) == other:
                return o
        return 0

    def _is_event(self, t: int) -> bool:
        """Whether instant `t` is itself an occurrence (its wall-clock fields all match)."""
        c = self._c
        o = 0 if self._off is None else self._off(t)
        y, mo, d, h, mi, s, wd = self._fields(t + o)
        return (
            (not c.years or any(_contains(comp, y) for comp in c.years))
            and (c.month is None or c.month[0][mo])
            and (c.day is None or c.day[0][d])
            and (c.wskip is None or not c.wskip[wd])
            and (c.hour is None or c.hour[0][h])
            and (c.minute is None or c.minute[0][mi])
            and (c.second is None or c.second[0][s])
        )

    def _next_epoch(self, last: int) -> int | None:
        if last >= MAX_EPOCH:
            return None
        c = self._c
        off = self._off
        t = last + 1
        if off is None:
            o = g = 0
        else:
            o = off(t)
            g = self._initial_guess(t, o) if o else 0
        y, mo, d, h, mi, s, wd = self._fields(t + o)
        years, month, day, wskip = c.years, c.month, c.day, c.wskip
        hour, minute, second = c.hour, c.minute, c.second
        for _ in range(_MAX_STEPS + 1):
            if years and not any(_contains(comp, y) for comp in years):
                n = _find_next(years, y)
                if n is None:
                    return None
                y, mo, d, h, mi, s = n, 1, 1, 0, 0, 0
            elif month is not None and not month[0][mo]:
                n = month[1][mo]
                if n is None:
                    y, mo = y + 1, 1
                else:
                    mo = n
                d, h, mi, s = 1, 0, 0, 0
            elif day is not None and not day[0][d]:
                n = day[1][d]
                if n is None:
                    mo, d = mo + 1, 1
                else:
                    d = n
                h, mi, s = 0, 0, 0
            elif wskip is not None and wskip[wd]:
                d, h, mi, s = d + wskip[wd], 0, 0, 0
            elif hour is not None and not hour[0][h]:
                n = hour[1][h]
                if n is None:
                    d, h = d + 1, 0
                else:
                    h = n
                mi, s = 0, 0
            elif minute is not None and not minute[0][mi]:
                n = minute[1][mi]
                if n is None:
                    h, mi = h + 1, 0
                else:
                    mi = n
                s = 0
            elif second is not None and not second[0][s]:
                n = second[1][s]
                if n is None:
                    mi, s = mi + 1, 0
                else:
                    s = n
            else:
                return t
            # normalise like mktime: carry overflowing fields, then read the fields back
            if y > _MAX_YEAR:
                return None
            y2, m0 = divmod(mo - 1, 12)
            wall = (days_from_civil(y + y2, m0 + 1, 1) + d - 1) * 86400 + h * 3600 + mi * 60 + s
            if off is None:
                t = wall
            else:
                t, g = _settle(wall, g, off)
                wall = t + g
            y, mo, d, h, mi, s, wd = self._fields(wall)
        return None

    # -- fast expansion ---------------------------------------------------------------------------
    def _scan_day(self, x: int) -> int:
        """Run the hour/minute/second steps of the search from time of day `x` (inclusive) on a calm day
        whose date matches. Returns the matching time of day, or 86400 + the time of day at which the
        search enters the next day (e.g. 86400 for "test next day" at 00:00:00)."""
        c = self._c
        while x < 86400:
            h, mi, s = x // 3600, x // 60 % 60, x % 60
            if c.hour is not None and not c.hour[0][h]:
                n = c.hour[1][h]
                x = 86400 if n is None else n * 3600
            elif c.minute is not None and not c.minute[0][mi]:
                n = c.minute[1][mi]
                x = h * 3600 + (3600 if n is None else n * 60)
            elif c.second is not None and not c.second[0][s]:
                n = c.second[1][s]
                x = h * 3600 + mi * 60 + (60 if n is None else n)
            else:
                return x
        return x

    def _date_matches(self, day: int) -> bool:
        c = self._c
        y, mo, d = civil_from_days(day)
        return (
            (not c.years or any(_contains(comp, y) for comp in c.years))
            and (c.month is None or c.month[0][mo])
            and (c.day is None or c.day[0][d])
            and (c.wskip is None or not c.wskip[(day + 3) % 7])
        )

    def _is_calm(self, day: int, o: int) -> bool:
        """True if the offset is `o` from a day before local day `day` to a day after it."""
        off = self._off
        if off is None:
            return True
        calm = self._calm.get(day)
        if calm is None:
            if len(self._calm) > 50_000:
                self._calm.clear()
            base = day * 86400 - o
            calm = self._calm[day] = off(base - 86400) == o and off(base + 43200) == o and off(base + 2 * 86400) == o
        return calm

    def _epochs_between(self, start: int, end: int) -> Iterator[int]:
        """Same as chaining _next_epoch, but on calm days (no offset change nearby) steps through
        memoised times of day instead of running the full search."""
        off = self._off
        memo = self._tod
        t = self._next_epoch(start - 1)
        while t is not None and t < end:
            yield t
            o = 0 if off is None else off(t)
            day, tod = divmod(t + o, 86400)
            if self._is_calm(day, o):
                nxt = memo.get(tod)
                if nxt is None:
                    if len(memo) > 100_000:
                        memo.clear()
                    nxt = memo[tod] = self._scan_day(tod + 1)
                if nxt < 86400:
                    t += nxt - tod
                    continue
                # the search enters the next day at nxt - 86400; follow it if that day is simple too
                if self._is_calm(day + 1, o) and self._date_matches(day + 1):
                    entry = nxt - 86400
                    later = memo.get(-1 - entry)
                    if later is None:
                        later = memo[-1 - entry] = self._scan_day(entry)
                    if later < 86400:
                        t += 86400 - tod + later
                        continue
            t = self._next_epoch(t)


def parse_proxmox(expression: str, timezone_name: str, zone: ZoneInfo) -> ProxmoxSchedule:
    """Parse a Proxmox calendar event; ScheduleError names the offending part and its position."""
    if not isinstance(expression, str):
        raise ScheduleError("a schedule expression must be a string", expression=repr(expression))
    return ProxmoxSchedule(expression, timezone_name, zone, parse_event(expression))
