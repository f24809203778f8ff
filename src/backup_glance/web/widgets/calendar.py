"""Calendar widget: `view=upcoming` (next runs), `view=week` (job lanes; an agenda in the small column),
`view=month` (a month grid like Glance's calendar), `view=grid` (services x days).

Pure view-model builders over `board.slots`; one template per view (`widget-calendar-<view>.html`, the small
week is `widget-calendar-agenda.html`). Parameters: `view`, `n` (upcoming: how many runs), `column=small|full`,
`source=NAME`, `limit=N` (grid rows before "show more").

Every view but `upcoming` marks each service whose verdict is not ok (its name in the status colour with the
status icon, `data-mark="<service id>"`) and the run that caused it, so the calendar never contradicts the
status widget. Jobs carry their system ("Databasement · Daily dumps"); see `_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, SlotOutcome
from .. import fmt
from ..params import choice, count, text
from ..safe import shows
from ..views import RUN_CLASS, RUN_MARK, WidgetState, widget_state
from ._marks import Run, overlap_text, run_of
from ._names import names_for
from ._spec import WidgetSpec
from .grid import GridView, build_grid
from .month import MonthView, build_month
from .status import Moment, moment
from .timeline import AgendaView, WeekView, build_agenda, build_week_view

MAX_OVERLAPS_SHOWN = 2  # overlapping jobs named on an upcoming run's line; a calendar cell's popover names more

DEFAULT_UPCOMING = 8
VIEWS = ("upcoming", "week", "month", "grid")


@dataclass(frozen=True, slots=True)
class Params:
    view: str = "upcoming"
    n: int = DEFAULT_UPCOMING
    column: str = "small"
    source: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class UpcomingRow:
    run: Run
    at: Moment
    clock: str  # "02:00" today, "Sat 02:00" this week
    duration: str  # "takes 1m": a bare "1m" next to "in 18h" reads like another relative time
    overlaps: str  # "" or "overlaps a, b" (job labels)
    after: str  # "" or "after a, b": the run waits for these
    last_mark: str  # the job's last run: "✓", "✗", ... ("" when it never ran)
    last_css: str
    last_at: Moment | None


@dataclass(frozen=True, slots=True)
class UpcomingView:
    state: WidgetState
    rows: tuple[UpcomingRow, ...]
    column: str
    template: str = "widget-calendar-upcoming.html"


def parse_params(query: Mapping[str, str]) -> Params:
    return Params(
        view=choice(query, "view", VIEWS, "upcoming"),
        n=count(query, "n", DEFAULT_UPCOMING) or DEFAULT_UPCOMING,
        column=choice(query, "column", ("small", "full"), "small"),
        source=text(query, "source"),
        limit=count(query, "limit", None),
    )


def calendar_slots(board: Board, source: str | None, zone: ZoneInfo) -> list[CalendarSlot]:
    """The slots a view may show: of one source when asked, and only those whose instants can be shown."""
    return [s for s in board.slots if (source is None or s.source == source) and _renderable(s, zone)]


def _renderable(slot: CalendarSlot, zone: ZoneInfo) -> bool:
    """A slot whose instants cannot be shown (a broken date that got this far) is left out, not fatal."""
    try:
        end = slot.start_at + slot.duration
    except OverflowError:
        return False
    return shows(slot.start_at, zone) and shows(end, zone)


def build_upcoming(board: Board, zone: ZoneInfo, params: Params) -> UpcomingView:
    future = sorted(
        (
            s
            for s in calendar_slots(board, params.source, zone)
            if s.outcome is SlotOutcome.UPCOMING and s.start_at >= board.generated_at
        ),
        key=lambda s: (s.start_at, s.job_name.casefold(), s.job_key),
    )
    names = names_for(board)
    last_runs = {view.job.key: view.last_run for view in board.jobs}
    rows = []
    for slot in future[: params.n]:
        at = moment(slot.start_at, board, zone)
        assert at is not None  # start_at is never None; moment() only maps None to None
        last = last_runs.get(slot.job_key)
        rows.append(
            UpcomingRow(
                run=run_of(slot, board, zone, names, {}),
                at=at,
                clock=fmt.soon(slot.start_at, zone, now=board.generated_at),
                duration=f"takes {fmt.span(slot.duration)}",
                overlaps=overlap_text(slot, names, MAX_OVERLAPS_SHOWN) if slot.overlaps else "",
                after=f"after {', '.join(slot.after)}" if slot.after else "",
                last_mark=RUN_MARK[last.outcome] if last else "",
                last_css=RUN_CLASS[last.outcome] if last else "",
                last_at=moment(last.ended_at or last.started_at, board, zone) if last else None,
            )
        )
    return UpcomingView(state=widget_state(board), rows=tuple(rows), column=params.column)


def build_view(
    board: Board, zone: ZoneInfo, params: Params
) -> UpcomingView | WeekView | AgendaView | MonthView | GridView:
    slots = calendar_slots(board, params.source, zone)
    if params.view == "week":
        if params.column == "small":
            return build_agenda(board, zone, slots, params.source)
        return build_week_view(board, zone, slots, params.source)
    if params.view == "month":
        return build_month(board, zone, slots, params.source, params.column)
    if params.view == "grid":
        return build_grid(board, zone, slots, params.source, params.column, params.limit)
    return build_upcoming(board, zone, params)


WIDGET = WidgetSpec(name="calendar", title="Backup calendar", parse=parse_params, build=build_view)

__all__ = [
    "WIDGET",
    "AgendaView",
    "GridView",
    "MonthView",
    "Params",
    "UpcomingView",
    "WeekView",
    "build_upcoming",
    "build_view",
    "calendar_slots",
    "parse_params",
]
