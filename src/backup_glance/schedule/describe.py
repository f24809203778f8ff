"""Human descriptions of parsed schedules, e.g. "Mon–Fri at 02:00 (Europe/Vienna)".

Descriptions are for people, not for round-tripping: when a field is too irregular to phrase, the
expression's own text is quoted instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._pxparse import Comps, Event

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_KEYWORDS = {
    "minutely": "every minute",
    "hourly": "every hour at :00",
    "daily": "daily at 00:00",
    "weekly": "Mondays at 00:00",
    "monthly": "on the 1st of every month at 00:00",
    "yearly": "every Jan 1 at 00:00",
    "annually": "every Jan 1 at 00:00",
    "quarterly": "on the 1st of Jan, Apr, Jul and Oct at 00:00",
    "semiannually": "on the 1st of Jan and Jul at 00:00",
    "semi-annually": "on the 1st of Jan and Jul at 00:00",
}


def join_and(items: Sequence[str]) -> str:
    """Join with commas and a final 'and'.

    >>> join_and(["a"]), join_and(["a", "b"]), join_and(["a", "b", "c"])
    ('a', 'a and b', 'a, b and c')
    """
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def ordinal(n: int) -> str:
    """English ordinal.

    >>> [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 31)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '31st']
    """
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def values(comps: Comps, lo: int, hi: int) -> list[int]:
    """The field values lo..hi a component list allows (all of them for an empty list)."""
    if not comps:
        return list(range(lo, hi + 1))
    out = []
    for v in range(lo, hi + 1):
        for kind, start, step, end in comps:
            if kind == "single":
                hit = v == start
            elif kind == "range":
                hit = start <= v <= end
            else:
                hit = v >= start and (v - start) % step == 0 if step else v == start
                hit = hit and (end < 0 or v <= end)
            if hit:
                out.append(v)
                break
    return out


def runs(vals: Sequence[int], fmt: str = "{}") -> str:
    """Compress sorted values into ranges.

    >>> runs([1, 2, 3, 4, 7, 9, 10])
    '1–4, 7, 9 and 10'
    """
    parts: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{fmt.format(vals[i])}–{fmt.format(vals[j])}")
            i = j + 1
        else:
            parts.append(fmt.format(vals[i]))
            i += 1
    return join_and(parts)


def weekday_text(mask: int) -> str:
    """'Mon–Fri', 'Fri–Mon', 'Mon, Wed and Fri'; empty for every day.

    >>> weekday_text(0b0011111), weekday_text(0b1110001), weekday_text(0b0010101)
    ('Mon–Fri', 'Fri–Mon', 'Mon, Wed and Fri')
    """
    if mask in (0, 0x7F):
        return ""
    start = next(d for d in range(7) if mask >> d & 1 and not mask >> ((d - 1) % 7) & 1)
    groups: list[list[int]] = []
    for k in range(7):
        d = (start + k) % 7
        if mask >> d & 1:
            if groups and groups[-1][-1] == (d - 1) % 7:
                groups[-1].append(d)
            else:
                groups.append([d])
    groups.sort(key=lambda g: g[0])
    parts: list[str] = []
    for g in groups:
        if len(g) >= 3:
            parts.append(f"{DAY_NAMES[g[0]]}–{DAY_NAMES[g[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in g)
    return join_and(parts)


def _date_text(ev: Event) -> str:
    if not ev.date_text:
        return ""
    months = values(ev.month, 1, 12)
    days = values(ev.day, 1, 31)
    if not months or not days:
        return f"on dates matching {ev.date_text!r}"
    day_part = ordinal(days[0]) if len(days) == 1 else f"days {runs(days)}"
    if len(months) == 12:
        text = f"on the {day_part} of every month" if len(days) == 1 else f"on {day_part} of every month"
    else:
        names = join_and([MONTH_NAMES[m - 1] for m in months])
        text = f"on the {day_part} of {names}" if len(days) == 1 else f"on {day_part} of {names}"
    if ev.year:
        years = values(ev.year, 0, 2199)
        text += f" in {years[0]}" if len(years) == 1 else f" in years matching {ev.date_text.split('-')[0]!r}"
    return text


def _time_text(ev: Event) -> str:
    hours, minutes, seconds = values(ev.hour, 0, 23), values(ev.minute, 0, 59), values(ev.second, 0, 59)
    if not hours or not minutes or not seconds:
        return f"at times matching {ev.time_text!r}"
    sec = "" if seconds == [0] else f":{seconds[0]:02}" if len(seconds) == 1 else ""
    if len(hours) * len(minutes) <= 6 and len(seconds) == 1:
        return "at " + join_and([f"{h:02}:{m:02}{sec}" for h in hours for m in minutes])
    step = minutes[1] - minutes[0] if len(minutes) > 1 else 0
    evenly = step and 60 % step == 0 and minutes == list(range(minutes[0], 60, step))
    if len(seconds) == 60:
        minute_part = "every second" if len(minutes) == 60 else f"every second of minutes {runs(minutes)}"
    elif len(seconds) > 1:
        minute_part = f"at seconds {runs(seconds)} of minutes {runs(minutes)}"
    elif len(minutes) == 60:
        minute_part = "every minute"
    elif evenly:
        minute_part = f"every {step} minutes" + (f" from :{minutes[0]:02}" if minutes[0] else "")
    else:
        minute_part = "at " + join_and([f":{m:02}{sec}" for m in minutes])
        if len(hours) == 24:
            return "every hour " + minute_part
    if len(hours) == 24:
        return minute_part
    return f"{minute_part} during hour{'s' if len(hours) > 1 else ''} {runs(hours, '{:02}')}"


def describe_proxmox(ev: Event, zone_label: str) -> str:
    """Describe a parsed Proxmox calendar event, ending with the zone it is evaluated in."""
    if ev.keyword is not None:
        text = _KEYWORDS[ev.keyword]
    else:
        parts = [weekday_text(ev.weekdays), _date_text(ev), _time_text(ev)]
        text = " ".join(p for p in parts if p)
    return f"{text[:1].upper()}{text[1:]} ({zone_label})"
