"""Calendar widget: `view=upcoming` (next runs), `view=week` (7 x 24 h timeline), `view=grid` (services x days).

Pure view-model builders over `board.slots`; one template per view (`widget-calendar-<view>.html`). Parameters:
`view`, `n` (upcoming: how many runs), `column=small|full`, `source=NAME`, `limit=N` (grid rows before
"show more").

Sample (grid, one service):  vault  ✓✓✓✓✓✓✓✗✓✓✓✓✓✓ | · · · · · · ·   (14 days back, today outlined, 7 ahead;
in the small column 10 back and 3 ahead, so the cells stay wide enough to read and the names to tell apart)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, SlotOutcome
from .. import fmt
from ..params import choice, count, text
from ..views import SLOT_CLASS, SLOT_RANK, WidgetState, job_names, outcome_text, widget_state
from ._spec import WidgetSpec
from .status import Moment, moment, sort_key
from .timeline import DayRow, build_week

GRID_DAYS_BEFORE = 14
GRID_DAYS_AFTER = 7
# Days back and ahead per column. A 300 px column fits 14 readable day cells next to a readable name; 22 made
# both the cells and the names unreadable. Ten days back still shows a weekly job's last run.
GRID_DAYS: dict[str, tuple[int, int]] = {"full": (GRID_DAYS_BEFORE, GRID_DAYS_AFTER), "small": (10, 3)}
DEFAULT_UPCOMING = 8


@dataclass(frozen=True, slots=True)
class Params:
    view: str = "upcoming"
    n: int = DEFAULT_UPCOMING
    column: str = "small"
    source: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class UpcomingRow:
    name: str
    kind: str
    source: str
    at: Moment
    clock: str  # "02:00" today, "Sat 02:00" this week
    duration: str  # "takes 1m": a bare "1m" next to "in 18h" reads like another relative time
    overlaps: str  # "" or "overlaps a, b" (job names)
    after: str  # "" or "after a, b": the run waits for these


@dataclass(frozen=True, slots=True)
class UpcomingView:
    state: WidgetState
    rows: tuple[UpcomingRow, ...]
    column: str
    template: str = "widget-calendar-upcoming.html"


@dataclass(frozen=True, slots=True)
class WeekView:
    state: WidgetState
    days: tuple[DayRow, ...]
    column: str
    has_overlaps: bool
    has_chains: bool
    template: str = "widget-calendar-week.html"


@dataclass(frozen=True, slots=True)
class GridCell:
    css: str  # "" for a day without a due run
    title: str  # only for days worth a closer look, to keep 50 services under 40 KB


@dataclass(frozen=True, slots=True)
class GridRow:
    name: str
    cells: tuple[GridCell, ...]


@dataclass(frozen=True, slots=True)
class GridHead:
    label: str  # day of month, every few days; "" otherwise
    is_today: bool
    title: str


@dataclass(frozen=True, slots=True)
class GridView:
    state: WidgetState
    head: tuple[GridHead, ...]
    rows: tuple[GridRow, ...]
    today_index: int
    column: str
    collapse_after: int | None
    template: str = "widget-calendar-grid.html"


def parse_params(query: Mapping[str, str]) -> Params:
    return Params(
        view=choice(query, "view", ("upcoming", "week", "grid"), "upcoming"),
        n=count(query, "n", DEFAULT_UPCOMING) or DEFAULT_UPCOMING,
        column=choice(query, "column", ("small", "full"), "small"),
        source=text(query, "source"),
        limit=count(query, "limit", None),
    )


def _slots(board: Board, params: Params) -> list[CalendarSlot]:
    return [s for s in board.slots if params.source is None or s.source == params.source]


def build_upcoming(board: Board, zone: ZoneInfo, params: Params) -> UpcomingView:
    future = sorted(
        (s for s in _slots(board, params) if s.outcome is SlotOutcome.UPCOMING and s.start_at >= board.generated_at),
        key=lambda s: (s.start_at, s.job_name.casefold(), s.job_key),
    )
    names = job_names(board)
    rows = []
    for slot in future[: params.n]:
        at = moment(slot.start_at, board, zone)
        assert at is not None  # start_at is never None; moment() only maps None to None
        rows.append(
            UpcomingRow(
                name=slot.job_name,
                kind=slot.kind.value.replace("_", " "),
                source=slot.source,
                at=at,
                clock=fmt.soon(slot.start_at, zone, now=board.generated_at),
                duration=f"takes {fmt.span(slot.duration)}",
                overlaps=f"overlaps {', '.join(names.get(k, k) for k in slot.overlaps)}" if slot.overlaps else "",
                after=f"after {', '.join(slot.after)}" if slot.after else "",
            )
        )
    return UpcomingView(state=widget_state(board), rows=tuple(rows), column=params.column)


def build_week_view(board: Board, zone: ZoneInfo, params: Params) -> WeekView:
    days = build_week(board, zone, _slots(board, params))
    has_overlaps = any(b.is_overlap for d in days for b in d.blocks)
    has_chains = any(b.is_chained for d in days for b in d.blocks)
    return WeekView(
        state=widget_state(board), days=days, column=params.column, has_overlaps=has_overlaps, has_chains=has_chains
    )


def _cell(day: date, slots: list[CalendarSlot], zone: ZoneInfo) -> GridCell:
    if not slots:
        return GridCell("", "")
    worst = min(slots, key=lambda s: SLOT_RANK[s.outcome])
    if worst.outcome in (SlotOutcome.SUCCEEDED, SlotOutcome.UPCOMING):
        return GridCell(SLOT_CLASS[worst.outcome], "")
    when = worst.start_at.astimezone(zone)
    title = f"{day:%a %d %b} {when:%H:%M} {worst.job_name}: {outcome_text(worst.outcome, worst.detail)}"
    return GridCell(SLOT_CLASS[worst.outcome], title)


def build_grid(board: Board, zone: ZoneInfo, params: Params) -> GridView:
    today = board.generated_at.astimezone(zone).date()
    before, after = GRID_DAYS[params.column]
    days = [today + timedelta(days=o) for o in range(-before, after + 1)]
    first, last = days[0], days[-1]
    by_service_day: dict[tuple[str, date], list[CalendarSlot]] = defaultdict(list)
    for slot in _slots(board, params):
        local_day = slot.start_at.astimezone(zone).date()
        if first <= local_day <= last:
            own = {sid: (outcome, detail) for sid, outcome, detail in slot.service_outcomes}
            for service_id in slot.service_ids:
                if slot.service_outcomes and service_id not in own:
                    continue  # health says: no data for this service at that time
                if service_id in own:
                    outcome, detail = own[service_id]
                    by_service_day[(service_id, local_day)].append(replace(slot, outcome=outcome, detail=detail))
                else:
                    by_service_day[(service_id, local_day)].append(slot)
    verdicts = [v for v in board.verdicts if params.source is None or params.source in v.sources]
    rows = tuple(
        GridRow(v.name, tuple(_cell(d, by_service_day.get((v.service_id, d), []), zone) for d in days))
        for v in sorted(verdicts, key=sort_key)
    )
    # Label every 7th day from today, so the labels line up with weeks and never crowd a 300 px column.
    head = tuple(GridHead(str(d.day) if (d - today).days % 7 == 0 else "", d == today, f"{d:%a %d %b}") for d in days)
    collapse = params.limit if params.limit is not None and params.limit < len(rows) else None
    return GridView(
        state=widget_state(board),
        head=head,
        rows=rows,
        today_index=before,
        column=params.column,
        collapse_after=collapse,
    )


def build_view(board: Board, zone: ZoneInfo, params: Params) -> UpcomingView | WeekView | GridView:
    if params.view == "week":
        return build_week_view(board, zone, params)
    if params.view == "grid":
        return build_grid(board, zone, params)
    return build_upcoming(board, zone, params)


WIDGET = WidgetSpec(name="calendar", title="Backup calendar", parse=parse_params, build=build_view)

__all__ = ["WIDGET", "GridView", "Params", "UpcomingView", "WeekView", "build_view", "parse_params"]
