"""Grid view of the calendar widget: one row per service, one cell per day, coloured by what its backups did.

Full column: 14 days back, today outlined, 7 ahead; small column: 10 back and 3 ahead, so cells and names stay
readable in 300 px. A row's name carries the service's verdict when it is not ok (status icon and colour); a
cell is marked when that day's run hurt the service although it ran (failed verification, out of order); a
service no enabled job covers says so across its row instead of showing empty days.

Sample row:  ▲ postgres   ✓✓✓✓✓✓✓✓✓✓✓✓✓✗ | · · · · · · ·
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, Severity, SlotOutcome, Status, Verdict
from ..views import SLOT_CLASS, SLOT_RANK, WidgetState, outcome_text, widget_state
from ._marks import flag_class, legend, local_day, mark_of
from ._names import Names, names_for
from .status import sort_key

GRID_DAYS_BEFORE = 14
GRID_DAYS_AFTER = 7
# Days back and ahead per column. A 300 px column fits 14 readable day cells next to a readable name; ten days
# back still shows a weekly job's last run.
GRID_DAYS: dict[str, tuple[int, int]] = {"full": (GRID_DAYS_BEFORE, GRID_DAYS_AFTER), "small": (10, 3)}
# Names longer than this may be cut in their column: they get a popover with the whole name.
CUT_AT: dict[str, int] = {"full": 40, "small": 11}
MAX_ROWS_KEPT = 50_000  # rows `_same_row` remembers (10,000 services in both columns are 20,000); past it, none


@dataclass(frozen=True, slots=True)
class GridCell:
    css: str  # "" for a day without a due run
    tip: str  # a popover for days worth a closer look only, to keep 50 services under 40 KB


@dataclass(frozen=True, slots=True)
class GridRow:
    service_id: str
    name: str
    css: str  # the status colour of a service that is not ok, else ""
    icon: str  # its status icon, else ""
    tip: str  # popover on the name: the whole name, and why it is not ok
    note: str  # instead of cells: "no enabled job covers this"
    cells: tuple[GridCell, ...]


@dataclass(frozen=True, slots=True)
class GridHead:
    weekday: str  # "M"
    day: str  # "23"
    month: str  # "Nov" on the first column and on the 1st, else ""
    is_today: bool
    label: str  # "Thu 26": the small column labels today and every 7th day from it


@dataclass(frozen=True, slots=True)
class GridView:
    state: WidgetState
    caption: str
    head: tuple[GridHead, ...]
    rows: tuple[GridRow, ...]
    today_index: int
    column: str
    collapse_after: int | None
    legend: tuple[tuple[str, str], ...]
    template: str = "widget-calendar-grid.html"


Entry = tuple[CalendarSlot, SlotOutcome, str]  # a slot, what it meant for one service, and why
_NO_PROBLEMS: list[tuple[Status, str]] = []


_NO_RUN = GridCell("", "")
# A day whose one run went as planned and hurt nothing: most cells. One object each, made once, not per cell
# (2,000 services x 22 days were 44,000 cells and a fifth of the page's time).
_PLAIN = {outcome: GridCell(SLOT_CLASS[outcome], "") for outcome in (SlotOutcome.SUCCEEDED, SlotOutcome.UPCOMING)}


def _cell(
    day: date, entries: list[Entry], labels: dict[str, str], zone: ZoneInfo, problems: list[tuple[Status, str]]
) -> GridCell:
    if not entries:
        return _NO_RUN
    if not problems and len(entries) == 1 and (plain := _PLAIN.get(entries[0][1])) is not None:
        return plain
    slot, outcome, detail = min(entries, key=lambda e: SLOT_RANK[e[1]])
    flag = flag_class(("", status, text) for status, text in problems)
    css = SLOT_CLASS[outcome] + (" " + flag if flag else "")
    if outcome in (SlotOutcome.SUCCEEDED, SlotOutcome.UPCOMING) and not flag:
        return GridCell(css, "")
    when = slot.start_at.astimezone(zone)
    label = labels.get(slot.job_key, slot.job_name)
    tip = f"{day:%a} {day.day} {day:%b} {when:%H:%M} {label}: {outcome_text(outcome, detail)}"
    for _, text in problems:
        tip += f"; {text}"
    return GridCell(css, tip[:300])


@dataclass(frozen=True, slots=True)
class _Day:
    """The cells one day's slots make, per service: kept while that day's slots and job names read the same."""

    zone: ZoneInfo
    slots: tuple[CalendarSlot, ...]
    labels: tuple[str, ...]
    cells: dict[str, GridCell]


def _day_cells(
    day: date, slots: tuple[CalendarSlot, ...], labels: dict[str, str], zone: ZoneInfo
) -> dict[str, GridCell]:
    """Each service's cell for `day`, as the one slot that day makes it: a slot's services share a few outcomes,
    so each of its cells is made once. A service with more slots that day, or with problems, is worked out whole
    after the others."""
    cells: dict[str, GridCell] = {}
    firsts: dict[str, Entry] = {}
    more: dict[str, list[Entry]] = {}
    problems: dict[str, list[tuple[Status, str]]] = defaultdict(list)
    for slot in slots:
        own = {sid: (outcome, detail) for sid, outcome, detail in slot.service_outcomes}
        shared = (slot.outcome, slot.detail)
        made: dict[tuple[SlotOutcome, str], tuple[Entry, GridCell]] = {}
        for service_id in slot.service_ids:
            if own and service_id not in own:
                continue  # health says: no data for this service at that time
            meant = own.get(service_id, shared)
            found = made.get(meant)
            if found is None:
                entry = (slot, *meant)
                found = made[meant] = (entry, _cell(day, [entry], labels, zone, _NO_PROBLEMS))
            here = firsts.get(service_id)
            if here is None:
                firsts[service_id] = found[0]
                cells[service_id] = found[1]
            else:
                more.setdefault(service_id, [here]).append(found[0])
        for service_id, status, text in slot.problems:
            problems[service_id].append((status, text))
    for service_id in more.keys() | problems.keys():
        here = firsts.get(service_id)
        if here is not None:  # a day without a run shows none, whatever its problems
            whole = more.get(service_id, [here])
            cells[service_id] = _cell(day, whole, labels, zone, problems.get(service_id, []))
    return cells


# (source shown, day) -> that day's cells as last made. A poll with news changes a day or two of slots, and the
# other days' 2,000 services x 4 slots were three quarters of the grid's time.
_days: dict[tuple[str | None, date], _Day] = {}
MAX_DAYS_KEPT = 8 * (GRID_DAYS_BEFORE + 1 + GRID_DAYS_AFTER)  # a grid of everything and of seven sources


def _forget_days(today: date) -> None:
    """Days no grid shows any more go (at 10,000 services a day is 300 KB); all of them past MAX_DAYS_KEPT."""
    first, last = today - timedelta(days=GRID_DAYS_BEFORE), today + timedelta(days=GRID_DAYS_AFTER)
    for key in [key for key in list(_days) if not first <= key[1] <= last]:  # list: another thread may add one
        _days.pop(key, None)
    if len(_days) >= MAX_DAYS_KEPT:
        _days.clear()


def _cells_by_day(
    today: date,
    days: list[date],
    slots: list[CalendarSlot],
    source: str | None,
    labels: dict[str, str],
    zone: ZoneInfo,
) -> list[dict[str, GridCell]]:
    on: dict[date, list[CalendarSlot]] = {day: [] for day in days}
    for slot in slots:
        found = on.get(local_day(slot.start_at, zone))
        if found is not None:
            found.append(slot)
    by_day = []
    for day, day_slots in on.items():
        key = (source, day)
        made = _Day(zone, tuple(day_slots), tuple(labels.get(s.job_key, s.job_name) for s in day_slots), {})
        known = _days.get(key)
        if known is not None and (known.zone, known.slots, known.labels) == (made.zone, made.slots, made.labels):
            by_day.append(known.cells)
            continue
        made.cells.update(_day_cells(day, made.slots, labels, zone))
        if known is None:
            _forget_days(today)
        _days[key] = made
        by_day.append(made.cells)
    return by_day


class _Across:
    """Each service's cells across the days shown, made again only at the days whose cells are new since the last
    build of the same grid (44,000 lookups at 2,000 services were most of a grid with nothing new)."""

    def __init__(self, by_day: list[dict[str, GridCell]], last: _Across | None) -> None:
        self.by_day = by_day
        self.cells: dict[str, tuple[GridCell, ...]] = {}
        self.last: dict[str, tuple[GridCell, ...]] = {}
        self.new_days: Sequence[int] = range(len(by_day))
        if last is not None and len(last.by_day) == len(by_day):
            self.new_days = [
                at for at, (now, then) in enumerate(zip(by_day, last.by_day, strict=True)) if now is not then
            ]
            self.last = last.cells

    def of(self, service_id: str) -> tuple[GridCell, ...]:
        cells = self.last.get(service_id)
        if cells is None:
            cells = tuple([day.get(service_id, _NO_RUN) for day in self.by_day])
        elif self.new_days:
            new = [(at, self.by_day[at].get(service_id, _NO_RUN)) for at in self.new_days]
            if any(cell != cells[at] for at, cell in new):  # else the very tuple before: its row is found as is
                changed = list(cells)
                for at, cell in new:
                    changed[at] = cell
                cells = tuple(changed)
        self.cells[service_id] = cells
        return cells


# (source shown, column) -> the services' cells of its last build
_across: dict[tuple[str | None, str], _Across] = {}


@dataclass(frozen=True, slots=True)
class _Built:
    verdict: Verdict
    name: str
    zone: ZoneInfo
    cells: tuple[GridCell, ...]  # as `_Across` gave them: the row's own may be an equal tuple made before
    row: GridRow
    classes: frozenset[str]  # the cell classes it uses, for the legend


# (column, service id) -> its row as last built. The same verdict, name and cells make the same row: it is handed
# back as that very object, so the renderer finds it by identity (hashing 2,000 rows of 22 cells to find them by
# value was half the render), and nothing of it is made again.
_built: dict[tuple[str, str], _Built] = {}
_classes: dict[frozenset[str], frozenset[str]] = {}  # the few sets of cell classes rows use, each kept once


def _row(v: Verdict, name: str, cells: tuple[GridCell, ...], column: str, names: Names, zone: ZoneInfo) -> _Built:
    key = (column, v.service_id)
    known = _built.get(key)
    if known is not None and known.verdict is v and known.cells is cells and known.name == name and known.zone == zone:
        return known
    mark = mark_of(v, names, zone) if v.severity is not Severity.OK else None
    note = mark.cause if mark is not None and not any(c.css for c in cells) else ""
    tip = f"{name} · {mark.word}: {mark.cause}" if mark else (name if len(name) > CUT_AT[column] else "")
    row = GridRow(v.service_id, name, mark.css if mark else "", mark.icon if mark else "", tip, note, cells)
    if known is not None and known.row == row:
        row = known.row
    elif known is None and len(_built) >= MAX_ROWS_KEPT:
        _built.clear()  # rows of services gone long ago (config changes) are not kept for ever
    classes = frozenset(cell.css for cell in row.cells)
    _built[key] = made = _Built(v, name, zone, cells, row, _classes.setdefault(classes, classes))
    return made


def build_grid(
    board: Board, zone: ZoneInfo, slots: list[CalendarSlot], source: str | None, column: str, limit: int | None
) -> GridView:
    names = names_for(board)
    today = board.generated_at.astimezone(zone).date()
    before, after = GRID_DAYS[column]
    days = [today + timedelta(days=o) for o in range(-before, after + 1)]
    first, last = days[0], days[-1]
    labels = {key: names.job(key) for key in {s.job_key for s in slots}}
    across = _Across(_cells_by_day(today, days, slots, source, labels, zone), _across.get((source, column)))
    verdicts = sorted((v for v in board.verdicts if source is None or source in v.sources), key=sort_key)
    rows = []
    used: set[str] = set()
    for v in verdicts:
        name = names.service(v.service_id, v.name)
        built = _row(v, name, across.of(v.service_id), column, names, zone)
        rows.append(built.row)
        used.update(built.classes)
    across.last = {}  # the one before is not kept, nor what it saw
    _across[(source, column)] = across
    head = tuple(
        GridHead(
            weekday=f"{d:%a}"[:1],
            day=str(d.day),
            month=f"{d:%b}" if d == first or d.day == 1 else "",
            is_today=d == today,
            label=f"{d:%a} {d.day}" if (d - today).days % 7 == 0 else "",
        )
        for d in days
    )
    span = f"{first.day} {first:%b} – {last.day} {last:%b}"
    collapse = limit if limit is not None and limit < len(rows) else None
    return GridView(
        state=widget_state(board),
        caption=f"last {before} days · next {after} · {span}",
        head=head,
        rows=tuple(rows),
        today_index=before,
        column=column,
        collapse_after=collapse,
        legend=legend(used),
    )


__all__ = ["GRID_DAYS", "GridCell", "GridHead", "GridRow", "GridView", "build_grid"]
