"""What every part of health shares: tolerances, schedule lookups worked out once, typical durations. Pure."""

from __future__ import annotations

import collections
import functools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..errors import ScheduleError
from ..model import Job, RunOutcome, ScheduleRef, Status
from ..schedule import Schedule, parse_schedule
from ._evidence import Evidence

# A run may start a little before its slot: schedulers wake about once a minute and clocks drift.
SLOT_TOLERANCE = timedelta(minutes=5)
# Slots per schedule judged for gaps; beyond this only the newest count (per-minute schedules).
MAX_DUE_SLOTS = 5000
SUCCESS = (RunOutcome.OK, RunOutcome.WARNING)

# Worst first: the status shown is the first that applies; the others still add their reasons.
# UNPROTECTED, FAILED and VERIFY_FAILED come before UNKNOWN: they are facts already seen (PVE's job list, a run,
# a verification), and a source going quiet must never make a known failure look milder. LATE comes after
# UNKNOWN because a quiet source may simply not be telling us about the backup; `services.judge` still puts it
# first when the service was already late when the source last answered.
PRECEDENCE = (
    Status.UNPROTECTED,
    Status.FAILED,
    Status.VERIFY_FAILED,
    Status.UNKNOWN,
    Status.LATE,
    Status.UNVERIFIED,
    Status.OUT_OF_ORDER,
    Status.GAPS,
    Status.AT_RISK,  # the backups come, but they would not be enough: after every other finding
    Status.RUNNING,
)


@dataclass
class Findings:
    """Every condition found for one service, each with its reasons; the worst one names the verdict."""

    found: dict[Status, list[str]] = field(default_factory=dict)

    def add(self, status: Status, reason: str) -> None:
        self.found.setdefault(status, []).append(reason)

    def verdict_status(self) -> Status:
        for status in PRECEDENCE:
            if status in self.found:
                return status
        return Status.OK

    def reasons(self, primary: Status) -> tuple[str, ...]:
        ordered = [primary, *(s for s in PRECEDENCE if s != primary)]
        return tuple(reason for status in ordered for reason in self.found.get(status, []))


class Slots:
    """A job's schedule whose times come out in UTC, as every other instant health works with.

    The engine gives times in the job's zone, and Python adds, subtracts and compares two times of one zone by the
    wall clock: on the night the clocks go forward a 03:00 slot minus 5 minutes is 02:55, which does not exist and
    reads as an hour later (a backup at 03:15 fell outside its own slot); on the night they go back, 02:30 and the
    second 02:30 are equal. In UTC none of that happens; renderers show instants in the display zone anyway."""

    __slots__ = ("schedule",)

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slots) and other.schedule is self.schedule

    def __hash__(self) -> int:  # the engine's schedules are made once per expression: one key for the caches
        return id(self.schedule)

    def next_after(self, when: datetime) -> datetime | None:
        found = self.schedule.next_after(when)
        return found.astimezone(UTC) if found is not None else None

    def previous_before(self, when: datetime) -> datetime | None:
        found = self.schedule.previous_before(when)
        return found.astimezone(UTC) if found is not None else None

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        return (slot.astimezone(UTC) for slot in self.schedule.between(start, end))


def load_schedule(ref: ScheduleRef) -> Slots | None:
    if ref.dialect == "interval" or not ref.expression:
        return None
    try:
        return Slots(parse_schedule(ref.expression, dialect=ref.dialect, tz=ref.timezone))
    except ScheduleError:
        return None


# One vzdump job often covers every guest: its slots are the same for all of them within one evaluation, so
# they are worked out once. Schedules are immutable and the results depend only on the arguments.
@functools.lru_cache(maxsize=4096)
def slot_after(schedule: Slots, when: datetime) -> datetime | None:
    """`schedule.next_after(when)`: thousands of services ask the same of one job's schedule at one `now`."""
    return schedule.next_after(when)


@functools.lru_cache(maxsize=4096)
def slots_between(schedule: Slots, since: datetime, until: datetime) -> tuple[datetime, ...]:
    """Slots with since <= t <= until; a per-minute schedule has 20,160 in 14 days, and the newest matter."""
    return tuple(collections.deque(schedule.between(since, until + timedelta(seconds=1)), maxlen=MAX_DUE_SLOTS))


def later(moment: datetime, span: timedelta) -> datetime:
    """`moment + span` in real time, in UTC (renderers show instants in the display zone anyway). Python adds to
    a zoned time by the wall clock: a slot's 01:30 + 2 h is 03:30, one real hour later on the night the clocks go
    forward (three when they go back).

    >>> from zoneinfo import ZoneInfo
    >>> later(datetime(2027, 3, 28, 1, 30, tzinfo=ZoneInfo("Europe/Madrid")), timedelta(hours=2)).isoformat()
    '2027-03-28T02:30:00+00:00'
    """
    return moment.astimezone(UTC) + span


def earlier(moment: datetime, span: timedelta) -> datetime:
    """`moment - span` in real time, in UTC (see `later`); `slot > earlier(now, grace)`: the grace is not over."""
    return moment.astimezone(UTC) - span


@functools.lru_cache(maxsize=4096)
def previous_slot(schedule: Slots, moment: datetime) -> datetime | None:
    return schedule.previous_before(moment)


def next_run(job: Job, schedule: Slots | None, now: datetime) -> datetime | None:
    """The server's own next run when it gave one still ahead (PBS counts from the last run), else the schedule's."""
    if job.next_run_at is not None and job.next_run_at > now:
        return job.next_run_at
    return schedule.next_after(now) if schedule is not None else None


def job_duration(job: Job, evidence: Evidence, durations: dict[str, timedelta]) -> timedelta | None:
    """How long a run of the job usually takes: history's median, else the median of the runs seen now."""
    if job.key in durations:
        return durations[job.key]
    runs = evidence.runs_by_job.get(job.key, [])
    lengths = [(r.ended_at - r.started_at).total_seconds() for r in runs if r.ended_at is not None]
    if not lengths:
        # Per-target runs (one per guest of a vzdump job): a guest's share is the best guess there is.
        lengths = [
            (r.ended_at - r.started_at).total_seconds()
            for key in job.target_keys[:50]
            for r in evidence.runs_by_target.get(key, [])
            if r.ended_at is not None and r.job_key == job.key
        ]
    return timedelta(seconds=statistics.median(lengths)) if lengths else None
