"""Parser for Proxmox calendar events (behaviour of proxmox-time 2.1.1, written from its documentation).

Each rule below is one of proxmox-time's nom combinators in spirit: a rule returns (value, next index) or
None when it does not match, and a caller decides whether that is fatal (a list item after ',') or just
an alternative to try next (an optional part). Errors are raised only at the top, the three ways
proxmox-time reports them: a bad weekday word, no date/time where one was required, and text left over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ScheduleError

# One component of a field list: (kind, start, step, end); kind is "single", "range" or "repeat",
# end is -1 for an open repetition (`N/R` and `*/R` run past the field's maximum, as in proxmox-time).
Comp = tuple[str, int, int, int]
Comps = tuple[Comp, ...]

WEEKDAYS = {
    "mon": 0, "monday": 0, "tue": 1, "tuesday": 1, "wed": 2, "wednesday": 2, "thu": 3, "thursday": 3,
    "fri": 4, "friday": 4, "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}  # fmt: skip
_ZERO: Comps = (("single", 0, 0, 0),)
_ONE: Comps = (("single", 1, 0, 0),)
# keyword -> (weekday mask, month, day, hour, minute, second); () = every value
KEYWORDS: dict[str, tuple[int, Comps, Comps, Comps, Comps, Comps]] = {
    "minutely": (0, (), (), (), (), _ZERO),
    "hourly": (0, (), (), (), _ZERO, _ZERO),
    "daily": (0, (), (), _ZERO, _ZERO, _ZERO),
    "weekly": (1, (), (), _ZERO, _ZERO, _ZERO),
    "monthly": (0, (), _ONE, _ZERO, _ZERO, _ZERO),
    "yearly": (0, _ONE, _ONE, _ZERO, _ZERO, _ZERO),
    "annually": (0, _ONE, _ONE, _ZERO, _ZERO, _ZERO),
    "quarterly": (0, tuple(("single", m, 0, 0) for m in (1, 4, 7, 10)), _ONE, _ZERO, _ZERO, _ZERO),
    "semiannually": (0, (("single", 1, 0, 0), ("single", 7, 0, 0)), _ONE, _ZERO, _ZERO, _ZERO),
    "semi-annually": (0, (("single", 1, 0, 0), ("single", 7, 0, 0)), _ONE, _ZERO, _ZERO, _ZERO),
}
_TRIM = " \t\n\r\f\v"  # what PVE's trim removes (ASCII whitespace)


@dataclass(frozen=True, slots=True)
class Event:
    """A parsed calendar event. Empty field tuples mean 'every value'; weekdays is a Mon=bit0 mask."""

    utc: bool = False
    weekdays: int = 0
    year: Comps = ()
    month: Comps = ()
    day: Comps = ()
    hour: Comps = ()
    minute: Comps = ()
    second: Comps = _ZERO
    keyword: str | None = None
    date_text: str = ""
    time_text: str = ""


def _number(s: str, i: int, limit: int) -> tuple[int, int] | None:
    j = i
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    digits = s[i:j].lstrip("0") or ("0" if j > i else "")
    if not digits or len(digits) > 10:  # nothing, or more than any u32 (proxmox-time parses u32)
        return None
    value = int(digits)
    return (value, j) if value < limit else None


def _comp(s: str, i: int, limit: int) -> tuple[Comp, int] | None:
    first = _number(s, i, limit)
    if first is None:
        return None
    start, i = first
    if s.startswith("..", i) and (last := _number(s, i + 2, limit)) is not None:
        end, i = last
        if start > end:
            return None  # "range start is bigger than end"
        if s.startswith("/", i):
            step = _number(s, i + 1, limit)
            return None if step is None else (("repeat", start, step[0], end), step[1])
        return ("range", start, 0, end), i
    if s.startswith("/", i):
        step = _number(s, i + 1, limit)
        return None if step is None else (("repeat", start, step[0], -1), step[1])
    return ("single", start, 0, 0), i


def _comp_list(s: str, i: int, minimum: int, limit: int) -> tuple[Comps, int] | None:
    if s.startswith("*", i):
        if s.startswith("/", i + 1):
            step = _number(s, i + 2, limit)
            if step is None:
                return None
            if step[0] > 0:
                return (("repeat", minimum, step[0], -1),), step[1]
        return (), i + 1  # `*/0` leaves "/0" unparsed, as proxmox-time does
    item = _comp(s, i, limit)
    if item is None:
        return None
    comps, i = [item[0]], item[1]
    while s.startswith(",", i) and (item := _comp(s, i + 1, limit)) is not None:
        comps.append(item[0])
        i = item[1]
    return tuple(comps), i


def _date(s: str, i: int) -> tuple[tuple[Comps, Comps, Comps], int] | None:
    year = _comp_list(s, i, 0, 2200)
    if year and s.startswith("-", year[1]):
        month = _comp_list(s, year[1] + 1, 1, 13)
        if month and s.startswith("-", month[1]):
            day = _comp_list(s, month[1] + 1, 1, 32)
            if day:
                return (year[0], month[0], day[0]), day[1]
    month = _comp_list(s, i, 1, 13)
    if month and s.startswith("-", month[1]):
        day = _comp_list(s, month[1] + 1, 1, 32)
        if day:
            return ((), month[0], day[0]), day[1]
    return None


def _time(s: str, i: int) -> tuple[tuple[Comps, Comps, Comps], int] | None:
    hour: Comps = ()
    first = _comp_list(s, i, 0, 24)
    if first and s.startswith(":", first[1]):
        hour, i = first[0], first[1] + 1
    # otherwise the optional `HOUR:` backtracks: `24:00` is minute 24, second 0
    minute = _comp_list(s, i, 0, 60)
    if minute is None:
        return None
    second, i = _ZERO, minute[1]
    if s.startswith(":", i) and (sec := _comp_list(s, i + 1, 0, 60)) is not None:
        second, i = sec
    return (hour, minute[0], second), i


def _weekday(s: str, i: int) -> tuple[int, int, str]:
    j = i
    while j < len(s) and s[j].isascii() and s[j].isalpha():
        j += 1
    return WEEKDAYS.get(s[i:j].lower(), -1), j, s[i:j]


def _weekday_range(s: str, i: int) -> tuple[int, int] | None:
    start, i, _ = _weekday(s, i)
    if start < 0:
        return None
    if s.startswith("..", i):
        end, j, _ = _weekday(s, i + 2)
        if end >= 0:
            days = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            return sum(1 << d for d in set(days)), j
    return 1 << start, i


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t":
        i += 1
    return i


def parse_event(expression: str) -> Event:
    """Parse a calendar event; raise ScheduleError with the offending part and its position."""
    lead = len(expression) - len(expression.lstrip(_TRIM))
    s = expression.strip(_TRIM)
    utc = s.endswith("UTC")
    if utc:
        s = s[:-3].rstrip(" ")

    def fail(message: str, at: int) -> ScheduleError:
        return ScheduleError(f"{message} at position {lead + at}", expression=expression, position=lead + at)

    if not s:
        raise fail("empty schedule expression" if not utc else "'UTC' needs a schedule in front of it", 0)
    i, weekdays = 0, 0
    if s[0].isascii() and s[0].isalpha():
        if s in KEYWORDS:
            kw = KEYWORDS[s]
            return Event(utc, kw[0], (), kw[1], kw[2], kw[3], kw[4], kw[5], keyword=s)
        first = _weekday_range(s, 0)
        if first is None:
            raise fail(_bad_word(s, _weekday(s, 0)[2]), 0)
        weekdays, i = first
        while s.startswith(",", i) and (item := _weekday_range(s, i + 1)) is not None:
            weekdays |= item[0]
            i = item[1]
        i = _skip_space(s, i)
    year: Comps = ()
    month: Comps = ()
    day: Comps = ()
    hour: Comps = ()
    minute: Comps = ()
    second: Comps = ()
    date_text = time_text = ""
    if (date := _date(s, i)) is not None:
        (year, month, day), j = date
        date_text, i = s[i:j], _skip_space(s, j)
    if (time := _time(s, i)) is not None:
        (hour, minute, second), j = time
        time_text, i = s[i:j], j
    elif weekdays or date_text:
        hour = minute = second = _ZERO
    else:
        message, at = _diagnose(s, i)
        raise fail(message, at)
    if i < len(s):
        message, at = _leftover(s, i)
        raise fail(message, at)
    return Event(utc, weekdays, year, month, day, hour, minute, second, None, date_text, time_text)


def _bad_word(s: str, word: str) -> str:
    if word.lower() in KEYWORDS:
        if word != word.lower():
            return f"keyword {word!r} must be lowercase ({word.lower()!r})"
        return f"keyword {word!r} must stand alone (write e.g. '02:00' or 'mon..fri 02:00' instead)"
    return f"bad weekday {word!r} (expected mon..sun or monday..sunday, or a keyword such as 'daily')"


_FIELDS = {"hour": 24, "minute": 60, "second": 60, "year": 2200, "month": 13, "day": 32}


def _diagnose(s: str, i: int) -> tuple[str, int]:
    """Explain why no date or time could be read at s[i:]; return (message, position)."""
    token = s[i:].split(None, 1)[0] if s[i:].strip() else s[i:]
    if token.startswith("@"):
        return f"bad date or time {token!r}: Unix timestamps ('@…') are not supported", i
    if "~" in token:
        return f"bad date or time {token!r}: '~' (days from the end of the month) is not supported", i
    names: tuple[str, ...] = ("hour", "minute", "second") if ":" in token else ("minute",)
    parts = token.split(":") if ":" in token else [token]
    if "-" in token and ":" not in token:
        parts = token.split("-")
        names = ("year", "month", "day") if len(parts) == 3 else ("month", "day")
    at = i
    for name, part in zip(names, parts, strict=False):
        for m in re.finditer(r"(\d+)(?:\.\.(\d+))?", part):
            low, high = int(m.group(1)), int(m.group(2) or m.group(1))
            where = at + m.start()
            if max(low, high) >= _FIELDS[name] or (name in ("month", "day") and min(low, high) < 1):
                value = m.group(2) if m.group(2) and high >= _FIELDS[name] else m.group(1)
                span = f"0..{_FIELDS[name] - 1}" if name not in ("month", "day") else f"1..{_FIELDS[name] - 1}"
                if name == "hour" and m.group(0) == part:
                    continue  # an out-of-range hour is re-read as a minute; the problem is further on
                return f"bad {name} {value!r} in {token!r} (allowed {span})", where
            if low > high:
                return f"bad range {m.group(0)!r} in {token!r}: start is after end", where
        at += len(part) + 1
    return f"bad date or time {token!r} (expected e.g. '02:00', '*-*-01' or 'mon..fri 22:30')", i


def _leftover(s: str, i: int) -> tuple[str, int]:
    rest = s[i:]
    if rest.startswith("-") and i > 0 and s[i - 1].isalpha():
        return f"unexpected {rest!r}: weekday ranges are written with '..' (mon..fri)", i
    if (word := re.match(r",([A-Za-z]+)", rest)) is not None:
        return _bad_word(s, word.group(1)), i + 1
    if re.match(r",[ \t]", rest):
        return f"unexpected {rest!r}: no spaces are allowed after ','", i
    if rest.startswith("/0"):
        return f"unexpected {rest!r}: a repetition step of 0 is not allowed", i
    stripped = rest.lstrip(" \t")
    at = i + len(rest) - len(stripped)
    if stripped[:1].isalpha() and "/" in stripped.split(None, 1)[0]:
        return f"unexpected {stripped!r}: only a trailing 'UTC' may name a time zone", at
    if re.match(r"[\d*]", stripped) and at == i and s[i - 1 : i].isdigit():
        return f"unexpected {rest!r}: date and time must be separated by a space", i
    if rest.startswith(".."):
        return f"unexpected {rest!r}: value out of range or bad range", i
    return f"unexpected {stripped!r} after the schedule", at
