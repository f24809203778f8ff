"""When a service's backups are due and whether they came: late, gaps, max_age, next run. Pure.

Expected runs come from the schedules of the enabled jobs that cover the service, each in its own zone. The
latest due run is found on its own (a monthly job is late however short the lookback); `lookback` only bounds
the search for gaps.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Job, ScheduleInfo, ServiceSpec, Status
from ._common import SLOT_TOLERANCE, Findings, Slots, load_schedule, next_run, previous_slot, slots_between
from ._facts import Facts
from ._text import span, when


@dataclass(frozen=True, slots=True)
class Due:
    """The schedule side of a verdict."""

    info: ScheduleInfo | None = None
    next_run_at: datetime | None = None
    previous_due_at: datetime | None = None
    missed: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """The enabled jobs' schedules, parsed: calendar ones, and interval ones (Backrest maxFrequency)."""

    calendars: tuple[tuple[Job, Slots], ...]
    intervals: tuple[Job, ...]

    @property
    def is_empty(self) -> bool:
        return not self.calendars and not self.intervals


def plan_of(enabled: list[Job], findings: Findings) -> Plan:
    calendars: list[tuple[Job, Slots]] = []
    intervals: list[Job] = []
    for job in enabled:
        assert job.schedule is not None
        if job.schedule.dialect == "interval" and job.schedule.interval:
            intervals.append(job)
            continue
        parsed = load_schedule(job.schedule)
        if parsed is None:
            findings.add(Status.UNKNOWN, f"job '{job.name}': schedule {job.schedule.expression!r} cannot be read")
        else:
            calendars.append((job, parsed))
    return Plan(tuple(calendars), tuple(intervals))


def previous_due(plan: Plan, facts: Facts, moment: datetime) -> datetime | None:
    """The newest slot at or before `moment` of any of the service's schedules."""
    candidates = [p for _, s in plan.calendars if (p := previous_slot(s, moment)) is not None]
    anchor = _interval_anchor(facts)
    for job in plan.intervals:
        assert job.schedule is not None and job.schedule.interval is not None
        if anchor is not None and anchor + job.schedule.interval <= moment:
            candidates.append(anchor + job.schedule.interval)
    return max(candidates, default=None)


def check_due(
    spec: ServiceSpec,
    facts: Facts,
    plan: Plan,
    *,
    is_running: bool,
    now: datetime,
    tz: str,
    findings: Findings,
) -> Due:
    last_success = facts.success_times[-1] if facts.success_times else None
    if plan.is_empty:
        _check_max_age(spec, facts, last_success, is_running, now, tz, findings)
        return Due()
    info_job, upcoming = _next(plan, facts, now)
    assert info_job.schedule is not None
    info = ScheduleInfo(
        expression=info_job.schedule.expression,
        dialect=info_job.schedule.dialect,
        timezone=info_job.schedule.timezone,
        job_key=info_job.key,
        job_name=info_job.name,
    )
    latest_due = previous_due(plan, facts, now - spec.grace)
    if latest_due is None and plan.intervals and not facts.success_times and not facts.runs:
        # An interval is counted from the last run; a plan that never ran is as late as it gets.
        if not is_running:
            findings.add(Status.LATE, "no successful backup found")
    elif latest_due is not None and not is_running and not _covered(facts.success_times, latest_due):
        last = f"last success {when(last_success, tz, now)}" if last_success else "no successful backup found"
        findings.add(
            Status.LATE, f"no backup since the run due {when(latest_due, tz, now)} (grace {span(spec.grace)}); {last}"
        )
    missed = _missed(spec, facts, plan, latest_due, now)
    if missed:
        shown = ", ".join(when(m, tz, now) for m in missed[-3:])
        more = f" and {len(missed) - 3} more" if len(missed) > 3 else ""
        findings.add(
            Status.GAPS,
            f"{len(missed)} due run(s) in the last {span(spec.lookback)} produced no backup: {shown}{more}",
        )
    return Due(info, upcoming, previous_due(plan, facts, now), tuple(missed))


def _covered(success_times: Sequence[datetime], slot: datetime) -> bool:
    return bool(success_times) and success_times[-1] >= slot - SLOT_TOLERANCE


def _missed(spec: ServiceSpec, facts: Facts, plan: Plan, latest_due: datetime | None, now: datetime) -> list[datetime]:
    """Due slots inside the lookback, before the latest one, that no backup followed before the next slot."""
    if latest_due is None or facts.judged_from is None:
        return []
    start = facts.judged_from - SLOT_TOLERANCE
    slots = sorted(
        slot
        for _, schedule in plan.calendars
        for slot in slots_between(schedule, now - spec.lookback, latest_due)  # the same for every service: cached
        if slot >= start
    )
    merged: list[datetime] = []
    for slot in slots:  # two jobs due within a minute of each other are one due run
        if not merged or slot - merged[-1] >= timedelta(minutes=1):
            merged.append(slot)
    missed: list[datetime] = []
    times = facts.success_times
    if not merged:
        return missed
    for slot, following in zip(merged, [*merged[1:], latest_due], strict=True):
        if slot >= latest_due:
            continue
        low, high = slot - SLOT_TOLERANCE, following - SLOT_TOLERANCE
        index = bisect.bisect_left(times, low)  # sorted: the first success at or after `low` decides
        if index == len(times) or times[index] >= high:
            missed.append(slot)
    return missed


def _interval_anchor(facts: Facts) -> datetime | None:
    success = facts.success_times[-1] if facts.success_times else None
    return success or (facts.runs[-1].started_at if facts.runs else None)


def _next(plan: Plan, facts: Facts, now: datetime) -> tuple[Job, datetime | None]:
    best: tuple[Job, datetime | None] = (plan.calendars[0][0] if plan.calendars else plan.intervals[0], None)
    for job, schedule in plan.calendars:
        candidate = next_run(job, schedule, now)
        if candidate is not None and (best[1] is None or candidate < best[1]):
            best = (job, candidate)
    anchor = facts.runs[-1].started_at if facts.runs else _interval_anchor(facts)
    for job in plan.intervals:
        assert job.schedule is not None and job.schedule.interval is not None
        candidate = job.next_run_at or max((anchor or now) + job.schedule.interval, now)
        if best[1] is None or candidate < best[1]:
            best = (job, candidate)
    return best


def _check_max_age(
    spec: ServiceSpec,
    facts: Facts,
    last_success: datetime | None,
    is_running: bool,
    now: datetime,
    tz: str,
    findings: Findings,
) -> None:
    if is_running or not (facts.targets or facts.snapshots) or Status.UNPROTECTED in findings.found:
        return
    if last_success is None:
        findings.add(Status.LATE, "no successful backup found (no schedule known)")
    elif now - last_success > spec.max_age + spec.grace:
        findings.add(
            Status.LATE,
            f"last backup {when(last_success, tz, now)} is older than max_age {span(spec.max_age)} (no schedule known)",
        )
