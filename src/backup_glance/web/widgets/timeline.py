"""Week view of the calendar widget: 7 days x 24 h, each run a block as long as its duration.

Pure: positions are percentages of the local day (a DST day is 23 or 25 hours long, so a day's length is
measured, not assumed). Runs that overlap in time go to separate lanes; `slot.overlaps` (from health) marks the
ones that contend for the same resources. Past blocks carry their outcome's class, future ones a neutral one.

Sample day row:  Tue 14  |    [vault ✓]   [db ✗]            |     (blocks positioned by time of day)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ...model import Board, CalendarSlot, SlotOutcome
from .. import fmt
from ..views import SLOT_CLASS, job_names, outcome_text

DAYS_BEFORE = 3  # the week shows three days back, today, three days ahead
DAYS_AFTER = 3
MAX_LANES = 4  # more simultaneous runs than this share the last lane
MIN_WIDTH_PCT = 0.6  # a 2-minute job would be invisible at its true width


@dataclass(frozen=True, slots=True)
class Block:
    left: float  # percent of the day
    width: float
    lane: int
    css: str
    is_overlap: bool
    title: str
    is_chained: bool = False  # must wait for another job (`after:`); marked so the chain shows


@dataclass(frozen=True, slots=True)
class DayRow:
    label: str
    is_today: bool
    lanes: int
    blocks: tuple[Block, ...]
    now_pct: float | None  # where the "now" line goes on today's row


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight to local midnight, as aware instants (23 h or 25 h on DST days).

    >>> start, end = day_bounds(date(2026, 3, 29), ZoneInfo("Europe/Vienna"))
    >>> (end - start) == timedelta(hours=23)
    True
    """
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    # Aware subtraction in the same tzinfo is wall-clock arithmetic in Python; go through UTC for real lengths.
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def assign_lanes(spans: list[tuple[datetime, datetime]]) -> list[int]:
    """Greedy interval partitioning: each span takes the first lane that is free at its start.

    >>> from datetime import UTC
    >>> t = lambda h: datetime(2026, 1, 1, h, tzinfo=UTC)
    >>> assign_lanes([(t(1), t(3)), (t(2), t(4)), (t(3), t(5))])
    [0, 1, 0]
    """
    lane_ends: list[datetime] = []
    lanes: list[int] = []
    for start, end in spans:
        for index, lane_end in enumerate(lane_ends):
            if lane_end <= start:
                lane_ends[index] = end
                lanes.append(index)
                break
        else:
            if len(lane_ends) < MAX_LANES:
                lane_ends.append(end)
                lanes.append(len(lane_ends) - 1)
            else:
                lane_ends[-1] = max(lane_ends[-1], end)
                lanes.append(MAX_LANES - 1)
    return lanes


def slot_title(slot: CalendarSlot, zone: ZoneInfo, names: dict[str, str] | None = None) -> str:
    """The tooltip of a block: what, when, how it went, and what it overlaps or waits for (by job name)."""
    start = slot.start_at.astimezone(zone)
    text = f"{slot.job_name} {start:%a %H:%M} ({fmt.span(slot.duration)})"
    if slot.outcome is not SlotOutcome.UPCOMING:
        text += f" {outcome_text(slot.outcome, slot.detail)}"
    elif slot.detail:
        text += f": {slot.detail}"
    if slot.overlaps:
        named = (names or {}).get
        text += f" — overlaps {', '.join(named(key, key) for key in slot.overlaps)}"
    if slot.after:
        text += f" — waits for {', '.join(slot.after)}"
    return text


def build_day(
    day: date, slots: list[CalendarSlot], board: Board, zone: ZoneInfo, names: dict[str, str] | None = None
) -> DayRow:
    day_start, day_end = day_bounds(day, zone)
    length = (day_end - day_start).total_seconds()
    inside = sorted(
        (s for s in slots if s.start_at < day_end and s.start_at + s.duration > day_start),
        key=lambda s: (s.start_at, s.job_key),
    )
    spans = [(max(s.start_at, day_start), min(s.start_at + s.duration, day_end)) for s in inside]
    lanes = assign_lanes(spans)
    blocks: list[Block] = []
    for slot, (start, end), lane in zip(inside, spans, lanes, strict=True):
        left = (start - day_start).total_seconds() / length * 100
        width = max(MIN_WIDTH_PCT, (end - start).total_seconds() / length * 100)
        width = min(width, 100 - left)
        css = SLOT_CLASS[slot.outcome]
        blocks.append(
            Block(
                round(left, 1),
                round(width, 1),
                lane,
                css,
                bool(slot.overlaps),
                slot_title(slot, zone, names),
                bool(slot.after),
            )
        )
    now = board.generated_at
    now_pct = round((now - day_start).total_seconds() / length * 100, 1) if day_start <= now < day_end else None
    label = f"{day:%a} {day.day}"
    return DayRow(label, now_pct is not None, max(lanes, default=0) + 1, tuple(blocks), now_pct)


def build_week(board: Board, zone: ZoneInfo, slots: list[CalendarSlot]) -> tuple[DayRow, ...]:
    today = board.generated_at.astimezone(zone).date()
    days = [today + timedelta(days=offset) for offset in range(-DAYS_BEFORE, DAYS_AFTER + 1)]
    names = job_names(board)
    return tuple(build_day(day, slots, board, zone, names) for day in days)


__all__ = ["Block", "DayRow", "assign_lanes", "build_week", "day_bounds", "slot_title"]
