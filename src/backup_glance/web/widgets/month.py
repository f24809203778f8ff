"""Month view of the calendar widget, shaped like Glance's own calendar: the month's name, a Monday-first grid of
dates, today highlighted, and each day's runs.

Full column: each day lists the runs worth a look (anything that is not a daily routine, and anything that
failed, was missed or hurt a service) with time and mark, and folds the routine ones into a count ("7 ✓").
Small column: each day shows one mark (a glyph for how its runs went, ◆ when a non-daily job runs), the list
below names the month's notable runs. Past days carry their worst outcome; a popover lists the day's runs.
Every service whose verdict is not ok is listed under the grid with the run that caused it.

Sample (full):  | 1 Tue          |
                | 07:00 ✓ Backrest · check nas |
                | 8 ✓            |
"""

from __future__ import annotations

import calendar as pycalendar
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, SlotOutcome
from ..views import SLOT_CLASS, WidgetState, widget_state
from ._marks import Mark, Run, local_day, marks_by_service, routine_jobs, runs_by_day, worst
from ._names import names_for

MAX_LISTED = 4  # runs listed in a day cell of the full column before "+N": the ones that went wrong first
MAX_DETAILS = 10  # runs in a day's popover
DETAILS_AHEAD = 7  # days ahead that get a popover: further out it would only list planned runs
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
GLYPH_WORDS = (
    ("✓", "color-positive", "ok"),
    ("✗", "color-negative", "failed"),
    ("○", "bkg-warn", "missed"),
    ("▸", "color-primary", "running"),
    ("!", "color-negative", "ran, with a problem for a service"),
    ("·", "color-subdue", "planned"),
    ("◆", "color-primary", "a job that does not run daily"),
)


@dataclass(frozen=True, slots=True)
class MonthDay:
    day: int
    label: str  # "Thu 26 Nov"
    in_month: bool
    is_today: bool
    css: str  # worst outcome of the day's past runs (bkg-ok, bkg-fail, ...), "" when none ran yet
    glyph: str  # the same as one glyph, for the small column
    glyph_css: str
    special: bool  # a job that does not run every day runs on this day
    listed: tuple[Run, ...]
    more: int  # notable runs not listed
    folded_text: str  # "7 ✓", "8 planned"
    details: tuple[Run, ...]  # the popover; empty: nothing worth a popover
    details_more: int


@dataclass(frozen=True, slots=True)
class Attention:
    mark: Mark
    run: Run | None  # the latest run shown that caused it


@dataclass(frozen=True, slots=True)
class MonthView:
    state: WidgetState
    title: str  # "November"
    year: int
    since: str  # "runs from Thu 12 Nov" when the calendar knows nothing of the grid's first days, else ""
    weekdays: tuple[str, ...]
    weeks: tuple[tuple[MonthDay, ...], ...]
    notable: tuple[Run, ...]  # small column: the runs worth a look from now to the end of the grid
    glyphs: tuple[tuple[str, str, str], ...]  # the legend: (glyph, colour class, word) of the marks shown
    attention: tuple[Attention, ...]
    column: str
    template: str = "widget-calendar-month.html"


def month_grid(today: date) -> list[list[date]]:
    """The Monday-first weeks that hold today's month.

    >>> weeks = month_grid(date(2026, 11, 26))
    >>> len(weeks), weeks[0][0], weeks[-1][-1]
    (6, datetime.date(2026, 10, 26), datetime.date(2026, 12, 6))
    """
    first = today.replace(day=1)
    start = first - timedelta(days=first.weekday())
    last = today.replace(day=pycalendar.monthrange(today.year, today.month)[1])
    end = last + timedelta(days=6 - last.weekday())
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    return [days[i : i + 7] for i in range(0, len(days), 7)]


def _folded(runs: list[Run]) -> str:
    done = sum(1 for r in runs if r.outcome is SlotOutcome.SUCCEEDED)
    planned = len(runs) - done
    parts = ([f"{done} ✓"] if done else []) + ([f"{planned} planned"] if planned else [])
    return " · ".join(parts)


def build_month(board: Board, zone: ZoneInfo, slots: list[CalendarSlot], source: str | None, column: str) -> MonthView:
    names = names_for(board)
    marks = marks_by_service(board, names, source, zone)
    now = board.generated_at
    today = now.astimezone(zone).date()
    weeks = month_grid(today)
    by_day = runs_by_day(board, zone, slots, [day for week in weeks for day in week], marks)
    routine = routine_jobs(by_day)
    out_weeks = []
    for week in weeks:
        cells = []
        for day in week:
            runs = by_day[day]
            notable = [r for r in runs if not r.is_plain or r.key not in routine]
            folded = [r for r in runs if r.is_plain and r.key in routine]
            past = [r for r in runs if r.outcome is not SlotOutcome.UPCOMING]
            bad = worst(past)
            css = ""
            if bad is not None:
                css = SLOT_CLASS[bad.outcome] + (" bkg-flag" if "bkg-flag" in bad.css else "")
            listed = sorted(notable, key=lambda r: (r.is_plain, r.start))[:MAX_LISTED] if column == "full" else []
            listed.sort(key=lambda r: r.start)
            details = runs if notable and (day - today).days <= DETAILS_AHEAD else []
            cells.append(
                MonthDay(
                    day=day.day,
                    label=f"{day:%a} {day.day} {day:%b}",
                    in_month=day.month == today.month,
                    is_today=day == today,
                    css=css,
                    glyph=bad.glyph if bad else "",
                    glyph_css=bad.glyph_css if bad else "",
                    special=any(r.key not in routine for r in runs),
                    listed=tuple(listed),
                    more=len(notable) - len(listed),
                    folded_text=_folded(folded),
                    details=tuple(details[:MAX_DETAILS]),
                    details_more=max(0, len(details) - MAX_DETAILS),
                )
            )
        out_weeks.append(tuple(cells))
    notable_runs = tuple(
        r
        for week in weeks
        for day in week
        if day >= today
        for r in by_day[day]
        if r.start >= now and (not r.is_plain or r.key not in routine)
    )
    shown = [d for week in out_weeks for d in week]
    glyphs_shown = {g for d in shown for g in d.glyph} | {g for d in shown for r in d.listed for g in r.glyph}
    if column == "small" and any(d.special for d in shown):
        glyphs_shown.add("◆")
    glyphs = tuple((glyph, css, word) for glyph, css, word in GLYPH_WORDS if glyph in glyphs_shown)
    latest: dict[str, Run] = {}
    for week in weeks:
        for day in week:
            for run in by_day[day]:
                for mark in run.marks:
                    latest[mark.service_id] = run
    attention = tuple(Attention(mark, latest.get(sid)) for sid, mark in marks.items())
    known = min((local_day(s.start_at, zone) for s in slots), default=None)
    since = f"runs from {known:%a} {known.day} {known:%b}" if known is not None and known > weeks[0][0] else ""
    return MonthView(
        state=widget_state(board),
        title=f"{today:%B}",
        year=today.year,
        since=since,
        weekdays=WEEKDAYS if column == "full" else tuple(w[:2] for w in WEEKDAYS),
        weeks=tuple(out_weeks),
        notable=notable_runs if column == "small" else (),
        glyphs=glyphs,
        attention=attention,
        column=column,
    )


__all__ = ["Attention", "MonthDay", "MonthView", "build_month", "month_grid"]
