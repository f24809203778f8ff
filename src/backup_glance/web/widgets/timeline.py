"""Week view of the calendar widget: one labelled lane per job, seven day columns, an axis fitted to the busy hours.

Full column: each job gets its own lane ("Databasement · Daily dumps  02:00"); inside each day column the runs
sit where they fall between the first whole hour before the week's earliest run and the first whole hour after
its latest end, with a line per hour. Blocks are coloured by what happened; a popover says when, how long, how
it went, and which services it covers. Small column: the same week as an agenda, day by day.

Positions are wall-clock minutes of the display zone, so 02:00 lines up on every day (a DST day's missing or
doubled hour does not shift the rest of the day).

Sample lane:  Databasement · Daily dumps 02:00 | ▮     | ▮     | ✗     | ▯ ...   (one cell per day)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, SlotOutcome
from ..views import WidgetState, widget_state
from ._marks import Mark, Run, legend, local_day, marks_by_service, routine_jobs, runs_by_day
from ._names import names_for

DAYS_BEFORE = 3  # the week shows three days back, today, three days ahead
DAYS_AFTER = 3
MIN_HOURS = 3  # the narrowest axis: a single 2-minute job still gets room around it
MIN_WIDTH_PCT = 4.0  # of a day column: a 2-minute job would be invisible at its true width
MAX_LABELS = 4  # hour labels per day column; the hourly lines are drawn regardless


@dataclass(frozen=True, slots=True)
class Block:
    left: float  # percent of the day column's axis
    width: float
    run: Run


@dataclass(frozen=True, slots=True)
class LaneDay:
    blocks: tuple[Block, ...]
    is_today: bool


@dataclass(frozen=True, slots=True)
class Lane:
    key: str
    label: str
    clock: str  # "02:00", or "02:00, 14:00"
    marks: tuple[Mark, ...]  # services of this job whose verdict is not ok
    days: tuple[LaneDay, ...]
    covers: str = ""  # the services the job backs up, for the label's popover
    after: str = ""  # what its runs wait for


@dataclass(frozen=True, slots=True)
class DayHead:
    label: str  # "Thu 26"
    is_today: bool


@dataclass(frozen=True, slots=True)
class Axis:
    start: int  # minutes after local midnight, a whole hour
    end: int

    @property
    def hours(self) -> int:
        return (self.end - self.start) // 60

    def pct(self, minutes: float) -> float:
        return (minutes - self.start) / (self.end - self.start) * 100

    def labels(self) -> tuple[tuple[float, str], ...]:
        step = max(1, -(-self.hours // MAX_LABELS))
        hours = range(self.start // 60, self.end // 60, step)
        return tuple((round(self.pct(h * 60), 2), f"{h:02d}") for h in hours)


@dataclass(frozen=True, slots=True)
class WeekView:
    state: WidgetState
    caption: str
    heads: tuple[DayHead, ...]
    axis: Axis
    lanes: tuple[Lane, ...]
    others: tuple[Mark, ...]  # not-ok services no lane shows (in no job, or no run this week)
    legend: tuple[tuple[str, str], ...]
    now_pct: float | None  # the "now" line in today's column, when now is inside the axis
    today_index: int
    column: str = "full"
    template: str = "widget-calendar-week.html"


@dataclass(frozen=True, slots=True)
class AgendaDay:
    label: str  # "Thu 26 Nov"
    is_today: bool
    runs: tuple[Run, ...]  # listed: anything not routine, or not plain
    folded: tuple[Run, ...]  # routine runs that went fine or are still ahead
    folded_text: str  # "6 ok", "5 planned", "3 ok · 4 planned"


@dataclass(frozen=True, slots=True)
class AgendaView:
    state: WidgetState
    caption: str
    days: tuple[AgendaDay, ...]
    others: tuple[Mark, ...]  # not-ok services no listed run is the cause of
    column: str = "small"
    template: str = "widget-calendar-agenda.html"


def week_days(board: Board, zone: ZoneInfo) -> list[date]:
    today = board.generated_at.astimezone(zone).date()
    return [today + timedelta(days=offset) for offset in range(-DAYS_BEFORE, DAYS_AFTER + 1)]


def _minutes(at: datetime) -> int:
    return at.hour * 60 + at.minute


def fit_axis(runs: list[Run]) -> Axis:
    """Whole hours around the earliest start and the latest end of the week's runs (0-24 when one crosses
    midnight), at least MIN_HOURS wide.

    >>> from datetime import UTC
    >>> at = lambda h, m: datetime(2026, 1, 1, h, m, tzinfo=UTC)
    >>> def run(h, m, minutes):
    ...     return Run("k", "", at(h, m), at(h, m) + timedelta(minutes=minutes), "", "", SlotOutcome.SUCCEEDED,
    ...                "", "", "", "", "", (), ())
    >>> fit_axis([run(2, 0, 1), run(6, 0, 3)])
    Axis(start=120, end=420)
    >>> fit_axis([run(2, 15, 2)])
    Axis(start=60, end=240)
    >>> fit_axis([run(23, 50, 30)])
    Axis(start=0, end=1440)
    """
    if not runs:
        return Axis(0, 1440)
    if any(r.end.date() != r.start.date() and _minutes(r.end) > 0 for r in runs):
        return Axis(0, 1440)
    first = min(_minutes(r.start) for r in runs) // 60 * 60
    last = max(_minutes(r.end) if r.end.date() == r.start.date() else 1440 for r in runs)
    end = min(1440, -(-max(last, first + 1) // 60) * 60)
    while end - first < MIN_HOURS * 60 and (first > 0 or end < 1440):
        first = max(0, first - 60)
        if end - first < MIN_HOURS * 60:
            end = min(1440, end + 60)
    return Axis(first, end)


def _clock(runs: list[Run]) -> str:
    clocks = list(dict.fromkeys(sorted(r.clock for r in runs)))
    return ", ".join(clocks) if len(clocks) <= 2 else f"{clocks[0]} +{len(clocks) - 1}"


def _caption(days: list[date]) -> str:
    first, last = days[0], days[-1]
    month = "" if first.month == last.month else f" {first:%b}"
    return f"{first:%a} {first.day}{month} – {last:%a} {last.day} {last:%b}"


def build_week_view(board: Board, zone: ZoneInfo, slots: list[CalendarSlot], source: str | None) -> WeekView:
    days = week_days(board, zone)
    marks = marks_by_service(board, names_for(board), source, zone)
    by_day = runs_by_day(board, zone, slots, days, marks)
    runs = [run for day in days for run in by_day[day]]
    axis = fit_axis(runs)
    today = days[DAYS_BEFORE]
    lane_runs: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        lane_runs[run.key].append(run)
    coverage: dict[str, set[str]] = defaultdict(set)
    for slot in slots:
        if local_day(slot.start_at, zone) in by_day:
            coverage[slot.job_key].update(slot.service_ids)
    lanes = []
    for key, mine in lane_runs.items():
        per_day: dict[date, list[Block]] = defaultdict(list)
        for run in mine:
            start = _minutes(run.start)
            minutes = (run.end - run.start).total_seconds() / 60
            left = min(max(0.0, axis.pct(start)), 100 - MIN_WIDTH_PCT)
            width = min(max(MIN_WIDTH_PCT, minutes / (axis.end - axis.start) * 100), 100 - left)
            per_day[run.start.date()].append(Block(round(left, 2), round(width, 2), run))
        lanes.append(
            Lane(
                key=key,
                label=mine[0].label,
                clock=_clock(mine),
                marks=tuple(marks[sid] for sid in sorted(coverage[key]) if sid in marks),
                days=tuple(LaneDay(tuple(per_day.get(day, [])), day == today) for day in days),
                covers=mine[-1].covers,
                after=mine[-1].after,
            )
        )
    lanes.sort(key=lambda lane: (min(_minutes(r.start) for r in lane_runs[lane.key]), lane.label.casefold()))
    shown = {m.service_id for lane in lanes for m in lane.marks}
    others = tuple(m for sid, m in marks.items() if sid not in shown)
    now = board.generated_at.astimezone(zone)
    now_pct = axis.pct(_minutes(now)) if axis.start <= _minutes(now) < axis.end else None
    return WeekView(
        state=widget_state(board),
        caption=f"{_caption(days)} · {axis.start // 60:02d}:00–{axis.end // 60:02d}:00, a line per hour",
        heads=tuple(DayHead(f"{day:%a} {day.day}", day == today) for day in days),
        axis=axis,
        lanes=tuple(lanes),
        others=others,
        legend=legend(run.css for run in runs),
        now_pct=round(now_pct, 2) if now_pct is not None else None,
        today_index=DAYS_BEFORE,
    )


def _folded_text(runs: list[Run]) -> str:
    done = sum(1 for r in runs if r.outcome is SlotOutcome.SUCCEEDED)
    planned = len(runs) - done
    parts = ([f"{done} ok"] if done else []) + ([f"{planned} planned"] if planned else [])
    return " · ".join(parts)


def build_agenda(board: Board, zone: ZoneInfo, slots: list[CalendarSlot], source: str | None) -> AgendaView:
    """The week for a 300 px column: day by day, each run that needs a look (or is not a daily routine) on its
    own line with its time and outcome mark; the routine runs that went fine are folded into "6 ok"."""
    days = week_days(board, zone)
    marks = marks_by_service(board, names_for(board), source, zone)
    by_day = runs_by_day(board, zone, slots, days, marks)
    routine = routine_jobs(by_day)
    out = []
    for day in days:
        runs = by_day[day]
        listed = tuple(r for r in runs if not r.is_plain or r.key not in routine)
        folded = [r for r in runs if r.is_plain and r.key in routine]
        out.append(
            AgendaDay(
                f"{day:%a} {day.day} {day:%b}", day == days[DAYS_BEFORE], listed, tuple(folded), _folded_text(folded)
            )
        )
    shown = {m.service_id for d in out for r in d.runs for m in r.marks}
    others = tuple(m for sid, m in marks.items() if sid not in shown)
    return AgendaView(state=widget_state(board), caption=_caption(days), days=tuple(out), others=others)


__all__ = [
    "AgendaDay",
    "AgendaView",
    "Axis",
    "Block",
    "Lane",
    "WeekView",
    "build_agenda",
    "build_week_view",
    "fit_axis",
    "week_days",
]
