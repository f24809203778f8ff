"""Jobs and their slots for the calendar: next runs, and past slots coloured by what really happened (pure).

A past slot's outcome is judged here, next to the service verdicts, so renderers only colour what they get.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from ..model import CalendarSlot, Job, JobKind, JobRun, JobView, RunOutcome, SlotOutcome, Snapshot
from ._evidence import Evidence
from .services import SLOT_TOLERANCE, load_schedule

CALENDAR_PAST = timedelta(days=14)  # the grid shows two weeks back; the ICS feed one
CALENDAR_FUTURE = timedelta(days=30)
# A job that runs every few minutes would flood the calendar; its newest slots are shown, up to this many.
MAX_SLOTS_PER_JOB = 400
DEFAULT_DURATION = timedelta(minutes=10)
_SUCCESS = (RunOutcome.OK, RunOutcome.WARNING)
T = TypeVar("T")


def job_duration(job: Job, evidence: Evidence, durations: dict[str, timedelta]) -> timedelta | None:
    if job.key in durations:
        return durations[job.key]
    runs = evidence.runs_by_job.get(job.key, [])
    lengths = [(r.ended_at - r.started_at).total_seconds() for r in runs if r.ended_at is not None]
    return timedelta(seconds=statistics.median(lengths)) if lengths else None


def job_views(
    evidence: Evidence,
    *,
    now: datetime,
    durations: dict[str, timedelta],
    services_by_target: dict[str, list[str]],
) -> list[JobView]:
    views = []
    for job in evidence.jobs:
        schedule = load_schedule(job.schedule) if job.schedule and job.enabled else None
        next_run = None
        if job.enabled:
            next_run = job.next_run_at if job.next_run_at and job.next_run_at > now else None
            if next_run is None and schedule is not None:
                next_run = schedule.next_after(now)
        runs = evidence.runs_by_job.get(job.key, [])
        candidates = [r for r in (job.last_run, runs[-1] if runs else None) if r is not None]
        last_run = max(candidates, key=lambda r: r.started_at) if candidates else None
        views.append(
            JobView(
                job=job,
                next_run_at=next_run,
                last_run=last_run,
                typical_duration=job_duration(job, evidence, durations),
                service_ids=_service_ids(job, services_by_target),
            )
        )
    views.sort(key=lambda v: (v.next_run_at is None, v.next_run_at or now, v.job.name))
    return views


def _service_ids(job: Job, services_by_target: dict[str, list[str]]) -> tuple[str, ...]:
    ids: list[str] = []
    for key in job.target_keys:
        for service_id in services_by_target.get(key, []):
            if service_id not in ids:
                ids.append(service_id)
    return tuple(ids)


def calendar_slots(
    evidence: Evidence,
    *,
    now: datetime,
    grace: timedelta,
    durations: dict[str, timedelta],
    services_by_target: dict[str, list[str]],
    after_by_service: dict[str, tuple[str, ...]] | None = None,
) -> list[CalendarSlot]:
    slots: list[CalendarSlot] = []
    for job in evidence.jobs:
        if not job.enabled or job.schedule is None:
            continue
        schedule = load_schedule(job.schedule)
        if schedule is None:
            continue
        occurrences = []
        for slot in schedule.between(now - CALENDAR_PAST, now + CALENDAR_FUTURE):
            occurrences.append(slot)
            if len(occurrences) > 4 * MAX_SLOTS_PER_JOB:
                break
        if len(occurrences) > MAX_SLOTS_PER_JOB:
            # Keep the slots around now: the recent past and the near future.
            index = bisect.bisect_left(occurrences, now)
            first = max(0, index - MAX_SLOTS_PER_JOB // 2)
            occurrences = occurrences[first : first + MAX_SLOTS_PER_JOB]
        usual = job_duration(job, evidence, durations) or DEFAULT_DURATION
        job_runs = evidence.runs_by_job.get(job.key, [])
        if job.last_run is not None and all(r.run_id != job.last_run.run_id for r in job_runs):
            job_runs = sorted([*job_runs, job.last_run], key=lambda r: r.started_at)
        evidence_start = _evidence_start(job, job_runs, evidence)
        service_ids = _service_ids(job, services_by_target)
        after = tuple(dict.fromkeys(a for sid in service_ids for a in (after_by_service or {}).get(sid, ())))
        for slot, following in zip(occurrences, [*occurrences[1:], None], strict=True):
            low = slot - SLOT_TOLERANCE
            high = (following - SLOT_TOLERANCE) if following is not None else now + timedelta(seconds=1)
            results = (
                _target_results(job.target_keys, low, high, evidence)
                if job.kind is JobKind.BACKUP and slot <= now
                else {}
            )
            outcome, detail, duration = _slot_outcome(
                job, slot, (low, high), job_runs, results, now=now, grace=grace, evidence_start=evidence_start
            )
            if outcome is None:
                continue
            per_service = (
                _service_outcomes(results, slot, services_by_target, now=now, grace=grace)
                if outcome is not SlotOutcome.UPCOMING and len(service_ids) > 1
                else ()
            )
            slots.append(
                CalendarSlot(
                    job_key=job.key,
                    job_name=job.name,
                    kind=job.kind,
                    source=job.source,
                    start_at=slot,
                    duration=duration or usual,
                    outcome=outcome,
                    timezone=job.schedule.timezone,
                    detail=detail,
                    service_ids=service_ids,
                    service_outcomes=per_service,
                    after=after,
                )
            )
    return _mark_overlaps(slots)


def _service_outcomes(
    results: dict[str, _TargetResult],
    slot: datetime,
    services_by_target: dict[str, list[str]],
    *,
    now: datetime,
    grace: timedelta,
) -> tuple[tuple[str, SlotOutcome, str], ...]:
    """What the slot meant for each service the job covers: one failed guest does not make the others red."""
    outcomes = []
    for key, result in results.items():
        if result.outcome is None:
            outcome, detail = (SlotOutcome.UPCOMING, "") if slot + grace > now else (SlotOutcome.MISSED, "no backup")
        else:
            outcome, detail = result.outcome, result.message
        for service_id in services_by_target.get(key, []):
            outcomes.append((service_id, outcome, detail))
    return tuple(outcomes)


def _evidence_start(job: Job, job_runs: list[JobRun], evidence: Evidence) -> datetime | None:
    """Before the first thing we know of a job, an empty slot means "no data", not "missed"."""
    times = [r.started_at for r in job_runs[:1]]
    for key in job.target_keys if job.kind is JobKind.BACKUP else ():
        times += [s.taken_at for s in evidence.snapshots.get(key, [])[:1]]
        times += [r.started_at for r in evidence.runs_by_target.get(key, [])[:1]]
    return min(times) if times else None


def _slot_outcome(
    job: Job,
    slot: datetime,
    window: tuple[datetime, datetime],
    job_runs: list[JobRun],
    results: dict[str, _TargetResult],
    *,
    now: datetime,
    grace: timedelta,
    evidence_start: datetime | None,
) -> tuple[SlotOutcome | None, str, timedelta | None]:
    if slot > now:
        return SlotOutcome.UPCOMING, "", None
    for run in _window(job_runs, *window, _run_start):
        return _run_outcome(run)
    combined = _combined(results)
    if combined is not None:
        return combined
    if slot + grace > now:
        return SlotOutcome.UPCOMING, "due; not started yet", None
    if evidence_start is None or slot < evidence_start - SLOT_TOLERANCE:
        return None, "", None
    return SlotOutcome.MISSED, "no run found for this slot", None


def _run_outcome(run: JobRun) -> tuple[SlotOutcome, str, timedelta | None]:
    duration = run.ended_at - run.started_at if run.ended_at else None
    if run.outcome is RunOutcome.RUNNING:
        return SlotOutcome.RUNNING, "running", None
    if run.outcome in _SUCCESS:
        return SlotOutcome.SUCCEEDED, run.message if run.outcome is RunOutcome.WARNING else "", duration
    return SlotOutcome.FAILED, run.message or "failed", duration


@dataclass(frozen=True, slots=True)
class _TargetResult:
    """What one target of a backup job shows in one slot's window (outcome None: nothing at all)."""

    outcome: SlotOutcome | None
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    message: str = ""  # why it failed, from the source


def _target_results(
    target_keys: tuple[str, ...], low: datetime, high: datetime, evidence: Evidence
) -> dict[str, _TargetResult]:
    results = {}
    for key in target_keys:
        runs = _window(evidence.runs_by_target.get(key, []), low, high, _run_start)
        snaps = [s for s in _window(evidence.snapshots.get(key, []), low, high, _taken) if s.finished]
        outcome = None
        if any(r.outcome is RunOutcome.RUNNING for r in runs):
            outcome = SlotOutcome.RUNNING
        elif any(r.outcome is RunOutcome.FAILED for r in runs) and not snaps:
            outcome = SlotOutcome.FAILED
        elif snaps or any(r.outcome in _SUCCESS for r in runs):
            outcome = SlotOutcome.SUCCEEDED
        starts = tuple(r.started_at for r in runs) + tuple(s.taken_at for s in snaps)
        ends = tuple(r.ended_at for r in runs if r.ended_at)
        message = next((r.message for r in runs if r.outcome is RunOutcome.FAILED and r.message), "")
        results[key] = _TargetResult(outcome, starts, ends, message if outcome is SlotOutcome.FAILED else "")
    return results


def _combined(results: dict[str, _TargetResult]) -> tuple[SlotOutcome, str, timedelta | None] | None:
    """The job's slot from its targets: running if any runs, failed if any failed, else how many succeeded."""
    by_outcome: dict[SlotOutcome, list[str]] = defaultdict(list)
    for key, result in results.items():
        if result.outcome is not None:
            by_outcome[result.outcome].append(key.split(":", 1)[-1])
    if not by_outcome:
        return None
    starts = [t for r in results.values() for t in r.starts]
    ends = [t for r in results.values() for t in r.ends]
    duration = max(ends) - min(starts) if ends and starts else None
    if SlotOutcome.RUNNING in by_outcome:
        return SlotOutcome.RUNNING, "running: " + ", ".join(by_outcome[SlotOutcome.RUNNING]), None
    if SlotOutcome.FAILED in by_outcome:
        return SlotOutcome.FAILED, "failed: " + ", ".join(by_outcome[SlotOutcome.FAILED]), duration
    return SlotOutcome.SUCCEEDED, f"{len(by_outcome[SlotOutcome.SUCCEEDED])} of {len(results)} backed up", duration


def _run_start(run: JobRun) -> datetime:
    return run.started_at


def _taken(snapshot: Snapshot) -> datetime:
    return snapshot.taken_at


def _window(items: list[T], low: datetime, high: datetime, at: Callable[[T], datetime]) -> list[T]:
    """The items with low <= at(item) < high, from a list sorted by `at` (evidence lists are)."""
    return items[bisect.bisect_left(items, low, key=at) : bisect.bisect_left(items, high, key=at)]


def _mark_overlaps(slots: list[CalendarSlot]) -> list[CalendarSlot]:
    slots.sort(key=lambda s: (s.start_at, s.job_key))
    overlaps: dict[int, set[str]] = defaultdict(set)
    active: list[int] = []
    for index, slot in enumerate(slots):
        active = [i for i in active if slots[i].start_at + slots[i].duration > slot.start_at]
        for other in active:
            if slots[other].job_key != slot.job_key:
                overlaps[index].add(slots[other].job_key)
                overlaps[other].add(slot.job_key)
        active.append(index)
    if not overlaps:
        return slots
    return [replace(s, overlaps=tuple(sorted(overlaps[i]))) if i in overlaps else s for i, s in enumerate(slots)]
