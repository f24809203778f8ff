"""Jobs and their slots for the calendar: next runs, and past slots coloured by what really happened (pure).

A past slot's outcome is judged here, next to the service verdicts, so renderers only colour what they get. A
slot's evidence is what happened from just before it until the next slot — of the same job, or, for one
guest, of any job that backs it up (a nightly backup must not make a missed weekly one green). A run that went
fine but still hurt a service (its snapshot failed verification, it started out of order) says so in
`problems`; two runs are marked as overlapping only when they also share a datastore, repository or guest.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import chain, islice
from operator import attrgetter
from typing import TypeVar

from ..model import CalendarSlot, Job, JobKind, JobRun, JobView, RunOutcome, SlotOutcome, Snapshot, Status, Verification
from ._common import SLOT_TOLERANCE, SUCCESS, Slots, earlier, job_duration, load_schedule, next_run
from ._evidence import Evidence
from ._held import taken_between

CALENDAR_PAST = timedelta(days=14)  # the grid shows two weeks back; the ICS feed one
CALENDAR_FUTURE = timedelta(days=30)
# A job that runs every few minutes would flood the calendar; its slots around now are shown, up to this many.
MAX_SLOTS_PER_JOB = 400
MAX_OVERLAPS_KEPT = 24  # jobs a slot names of those it overlaps (the ICS lists 20, a widget 2); the rest are counted
MAX_COUNTING_WORK = 2_000_000  # runs looked at to count exactly what slots overlap past MAX_OVERLAPS_KEPT
DEFAULT_DURATION = timedelta(minutes=10)
T = TypeVar("T")
SlotKey = tuple[str, datetime, datetime, datetime]  # job key, slot, evidence window start and end
SlotResults = Callable[[SlotKey, tuple[str, ...], Callable[[str], "_TargetResult"]], dict[str, "_TargetResult"]]
SlotSummaries = Callable[[SlotKey, dict[str, "_TargetResult"], Callable[[], "_SlotSummary"]], "_SlotSummary"]


@dataclass(frozen=True, slots=True)
class CalendarContext:
    now: datetime
    durations: dict[str, timedelta]
    services_by_target: dict[str, list[str]]
    grace_by_service: dict[str, timedelta]
    default_grace: timedelta
    after_by_service: dict[str, tuple[str, ...]]
    # Services whose latest run broke an `after:` rule: service id -> (that run's start, why).
    out_of_order: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # The incremental memo's results of a job's slot by target, when reused: (slot key, targets, how to find one
    # target's result) -> every target's result, in the job's order (`_memo.Memo.slot_results`); the very same
    # dict as last time when none of them changed.
    slot_results: SlotResults | None = None
    # ... and what a past slot's results add up to, once no grace can run out in it any more: (slot key, results,
    # how to add them up) -> the sum made for that very results dict last time, or a new one
    # (`_memo.Memo.slot_summary`).
    slot_summaries: SlotSummaries | None = None
    # One tuple for each service outcome row met more than once: a service's "succeeded" in each of its job's
    # past slots is the same row (140,000 rows at 10,000 guests, 10,000 different).
    outcome_rows: dict[tuple[str, SlotOutcome, str], tuple[str, SlotOutcome, str]] = field(default_factory=dict)
    _due_by: dict[timedelta, datetime] = field(default_factory=dict)

    def grace_for(self, service_ids: tuple[str, ...]) -> timedelta:
        return max((self.grace_by_service.get(s, self.default_grace) for s in service_ids), default=self.default_grace)

    def due_by(self, grace: timedelta) -> datetime:
        """The latest slot whose `grace` is over by `now`, counted in real time (`_common.later`): a slot after
        it is still upcoming."""
        found = self._due_by.get(grace)
        if found is None:
            found = self._due_by[grace] = earlier(self.now, grace)
        return found


def job_views(evidence: Evidence, ctx: CalendarContext) -> list[JobView]:
    views = []
    for job in evidence.jobs:
        schedule = load_schedule(job.schedule) if job.schedule and job.enabled else None
        runs = evidence.runs_by_job.get(job.key, [])
        candidates = [r for r in (job.last_run, runs[-1] if runs else None) if r is not None]
        views.append(
            JobView(
                job=job,
                next_run_at=next_run(job, schedule, ctx.now) if job.enabled else None,
                last_run=max(candidates, key=lambda r: r.started_at) if candidates else None,
                typical_duration=job_duration(job, evidence, ctx.durations),
                service_ids=_service_ids(job, ctx.services_by_target),
            )
        )
    views.sort(key=lambda v: (v.next_run_at is None, v.next_run_at or ctx.now, v.job.name))
    return views


def _service_ids(job: Job, services_by_target: dict[str, list[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(sid for key in job.target_keys for sid in services_by_target.get(key, [])))


def calendar_slots(evidence: Evidence, ctx: CalendarContext) -> list[CalendarSlot]:
    now = ctx.now
    scheduled = [(job, schedule) for job in evidence.jobs if (schedule := _enabled_schedule(job)) is not None]
    occurrences = {job.key: _occurrences(schedule, now) for job, schedule in scheduled}
    target_slots = _slots_by_target(scheduled, occurrences)
    slots: list[CalendarSlot] = []
    resources = {job.key: _resources(job, evidence) for job, _ in scheduled}
    for job, _ in scheduled:
        assert job.schedule is not None
        usual = job_duration(job, evidence, ctx.durations) or DEFAULT_DURATION
        job_runs = evidence.runs_by_job.get(job.key, [])
        if job.last_run is not None and all(r.run_id != job.last_run.run_id for r in job_runs):
            job_runs = sorted([*job_runs, job.last_run], key=lambda r: r.started_at)
        starts = {key: _first_evidence(key, evidence) for key in job.target_keys} if _per_target(job) else {}
        job_start = min([*(r.started_at for r in job_runs[:1]), *filter(None, starts.values())], default=None)
        service_ids = _service_ids(job, ctx.services_by_target)
        grace = ctx.grace_for(service_ids)
        after = tuple(dict.fromkeys(a for sid in service_ids for a in ctx.after_by_service.get(sid, ())))
        mine = occurrences[job.key]
        spans = [
            (slot, slot - SLOT_TOLERANCE, (following - SLOT_TOLERANCE) if following is not None else now + SECOND)
            for slot, following in zip(mine, [*mine[1:], None] if mine else [], strict=True)  # none: yearly jobs
        ]
        rows = None
        if _per_target(job):
            past = [_PastSlot(slot, low, high) for slot, low, high in spans if slot <= now]
            rows = _TargetRows(past, target_slots, evidence)
        past_slots = 0
        for slot, low, high in spans:
            window = (low.astimezone(UTC), high.astimezone(UTC))  # the evidence's zone (see `_window`)
            results: dict[str, _TargetResult] = {}
            if rows is not None and slot <= now:
                result = partial(rows.result, past_slots)
                past_slots += 1
                if ctx.slot_results is None:
                    results = {key: result(key) for key in job.target_keys}
                else:
                    results = ctx.slot_results((job.key, slot, low, high), job.target_keys, result)
            summary = _EMPTY_SUMMARY
            if results:
                add_up = partial(_summary, results, starts, slot, service_ids, ctx)
                if ctx.slot_summaries is not None and slot <= ctx.due_by(grace):  # now no longer matters to the sum
                    summary = ctx.slot_summaries((job.key, slot, low, high), results, add_up)
                else:
                    summary = add_up()
            outcome, detail, duration = _slot_outcome(
                slot, window, job_runs, summary.combined, now=now, due_by=ctx.due_by(grace), start=job_start
            )
            if outcome is None:
                continue
            per_service = summary.per_service if outcome is not SlotOutcome.UPCOMING else ()
            problems = (*summary.verify_failed, *_out_of_order(service_ids, (low, high), ctx)) if slot <= now else ()
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
                    problems=problems,
                )
            )
    return _mark_overlaps(slots, resources)


def _enabled_schedule(job: Job) -> Slots | None:
    return load_schedule(job.schedule) if job.enabled and job.schedule is not None else None


def _per_target(job: Job) -> bool:
    return job.kind is JobKind.BACKUP and bool(job.target_keys)


def _occurrences(schedule: Slots, now: datetime) -> list[datetime]:
    """The job's slots from CALENDAR_PAST before now to CALENDAR_FUTURE after it; of a job that runs every few
    minutes, the MAX_SLOTS_PER_JOB around now (half of them before it)."""
    found = list(islice(schedule.between(now - CALENDAR_PAST, now + CALENDAR_FUTURE), 4 * MAX_SLOTS_PER_JOB + 1))
    if len(found) > 4 * MAX_SLOTS_PER_JOB and found[-1] < now:
        # So frequent that the walk from CALENDAR_PAST did not reach now (every 5 minutes: 8 days of slots):
        # start half the slots back from now instead.
        start = now
        for _ in range(MAX_SLOTS_PER_JOB // 2):
            before = schedule.previous_before(start)
            if before is None:
                break
            start = before
        found = list(islice(schedule.between(start, now + CALENDAR_FUTURE), MAX_SLOTS_PER_JOB))
    if len(found) > MAX_SLOTS_PER_JOB:
        index = bisect.bisect_left(found, now)
        first = max(0, index - MAX_SLOTS_PER_JOB // 2)
        found = found[first : first + MAX_SLOTS_PER_JOB]
    return found


def _slots_by_target(
    scheduled: list[tuple[Job, Slots]], occurrences: dict[str, list[datetime]]
) -> dict[str, list[datetime]]:
    """Every backup slot of every job covering each target, merged and sorted, in UTC (see `_TargetRows`)."""
    merged: dict[str, list[datetime]] = defaultdict(list)
    for job, _ in scheduled:
        if _per_target(job):
            in_utc = [slot.astimezone(UTC) for slot in occurrences[job.key]]
            for key in job.target_keys:
                merged[key].extend(in_utc)
    for slots in merged.values():
        slots.sort()
    return merged


SAME_RUN = timedelta(minutes=1)  # another job due within a minute of a slot is the same run
SECOND = timedelta(seconds=1)


class _PastSlot:
    """A past slot of a job, in UTC (the evidence's zone: see `_window`), and where its evidence window ends at
    most; for one target it ends earlier, just before that target's next slot of any job."""

    __slots__ = ("at", "high", "low")

    def __init__(self, slot: datetime, low: datetime, high: datetime) -> None:
        self.at = slot.astimezone(UTC) + SAME_RUN
        self.low = low.astimezone(UTC)
        self.high = high.astimezone(UTC)


class _TargetRows:
    """The results of a job's targets in its past slots, found a target at a time for all its slots at once: a
    first evaluation of 10,000 guests asks for 140,000 of them, and a target's evidence is looked up once, not
    once per slot."""

    def __init__(self, windows: list[_PastSlot], slots: dict[str, list[datetime]], evidence: Evidence) -> None:
        self._windows, self._slots, self._evidence = windows, slots, evidence
        self._rows: dict[str, list[_TargetResult]] = {}

    def result(self, index: int, key: str) -> _TargetResult:
        """`key`'s result in the job's `index`-th past slot."""
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._row(key)
        return row[index]

    def _row(self, key: str) -> list[_TargetResult]:
        evidence = self._evidence
        runs = evidence.runs_by_target.get(key, _NO_RUNS)
        snapshots = evidence.snapshots.get(key, _NO_SNAPSHOTS)
        mine = self._slots[key]
        count = len(mine)
        row = []
        # Inline where it is cheap to (`min`, `_between` of an empty list): 140,000 windows at 10,000 guests.
        for window in self._windows:
            low, high = window.low, window.high
            index = bisect.bisect_right(mine, window.at)
            if index < count and (until := mine[index] - SLOT_TOLERANCE) < high:
                high = until
            in_runs = _between(runs, low, high, _run_start) if runs else runs
            taken = taken_between(snapshots, low, high) if snapshots else snapshots
            if not in_runs and not taken:
                row.append(_EMPTY_RESULT)
            else:
                row.append(_target_result(in_runs, [s for s in taken if s.finished]))
        return row


def _first_evidence(key: str, evidence: Evidence) -> datetime | None:
    """The target's oldest snapshot or run (evidence lists are sorted): asked for every target of every job."""
    snapshots = evidence.snapshots.get(key)
    runs = evidence.runs_by_target.get(key)
    first = snapshots[0].taken_at if snapshots else None
    if runs and (first is None or runs[0].started_at < first):
        first = runs[0].started_at
    return first


def _slot_outcome(
    slot: datetime,
    window: tuple[datetime, datetime],  # in UTC
    job_runs: list[JobRun],
    combined: tuple[SlotOutcome, str, timedelta | None] | None,
    *,
    now: datetime,
    due_by: datetime,  # the latest slot whose grace is over
    start: datetime | None,  # of the job's evidence: a slot before it has no data, it was not missed
) -> tuple[SlotOutcome | None, str, timedelta | None]:
    if slot > now:
        return SlotOutcome.UPCOMING, "", None
    for run in _between(job_runs, *window, _run_start):  # the window is in UTC, as the evidence: no zone lookups
        return _run_outcome(run)
    if combined is not None:
        return combined
    if slot > due_by:
        return SlotOutcome.UPCOMING, "due; not started yet", None
    if start is None or slot < start - SLOT_TOLERANCE:
        return None, "", None  # before the first thing known of the job: no data, not "missed"
    return SlotOutcome.MISSED, "no run found for this slot", None


def _service_outcomes(
    results: dict[str, _TargetResult], starts: dict[str, datetime | None], slot: datetime, ctx: CalendarContext
) -> tuple[tuple[str, SlotOutcome, str], ...]:
    """What the slot meant for each service the job covers: one failed guest does not make the others red.
    A service whose guest had no backup yet at that time gets no entry (no data)."""
    outcomes = []
    rows = ctx.outcome_rows
    for key, result in results.items():
        first = starts.get(key)
        for service_id in ctx.services_by_target.get(key, []):
            if result.outcome is not None:
                row = (service_id, result.outcome, result.message)
            elif first is None or slot < first - SLOT_TOLERANCE:
                continue
            elif slot > ctx.due_by(ctx.grace_by_service.get(service_id, ctx.default_grace)):
                row = (service_id, SlotOutcome.UPCOMING, "")
            else:
                row = (service_id, SlotOutcome.MISSED, "no backup")
            outcomes.append(rows.setdefault(row, row))
    return tuple(outcomes)


def _run_outcome(run: JobRun) -> tuple[SlotOutcome, str, timedelta | None]:
    duration = run.ended_at - run.started_at if run.ended_at else None
    if run.outcome is RunOutcome.RUNNING:
        return SlotOutcome.RUNNING, "running", None
    if run.outcome in SUCCESS:
        return SlotOutcome.SUCCEEDED, run.message if run.outcome is RunOutcome.WARNING else "", duration
    return SlotOutcome.FAILED, run.message or "failed", duration


@dataclass(frozen=True, slots=True)
class _TargetResult:
    """What one target of a backup job shows in one slot's window (outcome None: nothing at all)."""

    outcome: SlotOutcome | None
    # Of its runs' starts and snapshots' times the first, of its runs' ends the last: all a slot's duration needs.
    # (Not every time: a first evaluation of 10,000 guests keeps 140,000 of these, most for one snapshot.)
    first_start: datetime | None
    last_end: datetime | None
    message: str = ""  # why it failed, from the source
    verify_failed: bool = False  # a snapshot it made failed verification


_EMPTY_RESULT = _TargetResult(None, None, None)  # a window with no evidence at all
_NO_RUNS: list[JobRun] = []  # of a target without any (read, never added to)
_NO_SNAPSHOTS: list[Snapshot] = []
_FAILED = Verification.FAILED


def _target_result(runs: list[JobRun], snaps: list[Snapshot]) -> _TargetResult:
    """From a target's runs started and finished snapshots taken in a slot's window."""
    if not runs:  # the usual case for a guest backed up into PBS: one snapshot, no per-target run
        if not snaps:
            return _EMPTY_RESULT
        if len(snaps) == 1:
            (only,) = snaps
            return _TargetResult(SlotOutcome.SUCCEEDED, only.taken_at, None, "", only.verification is _FAILED)
        verify_failed = any(s.verification is _FAILED for s in snaps)
        return _TargetResult(SlotOutcome.SUCCEEDED, min(map(_taken, snaps)), None, "", verify_failed)
    outcome = None
    if any(r.outcome is RunOutcome.RUNNING for r in runs):
        outcome = SlotOutcome.RUNNING
    elif any(r.outcome is RunOutcome.FAILED for r in runs) and not snaps:
        outcome = SlotOutcome.FAILED
    elif snaps or any(r.outcome in SUCCESS for r in runs):
        outcome = SlotOutcome.SUCCEEDED
    first = min(chain(map(_run_start, runs), map(_taken, snaps)))
    last = max((r.ended_at for r in runs if r.ended_at), default=None)
    message = next((r.message for r in runs if r.outcome is RunOutcome.FAILED and r.message), "")
    verify_failed = any(s.verification is Verification.FAILED for s in snaps)
    return _TargetResult(outcome, first, last, message if outcome is SlotOutcome.FAILED else "", verify_failed)


@dataclass(frozen=True, slots=True)
class _SlotSummary:
    """What a slot's results by target add up to: the job's outcome from them (None: no target shows anything),
    each service's outcome (for a job of more than one service) and the services whose snapshot of the slot
    failed verification."""

    combined: tuple[SlotOutcome, str, timedelta | None] | None
    per_service: tuple[tuple[str, SlotOutcome, str], ...]
    verify_failed: tuple[tuple[str, Status, str], ...]


_EMPTY_SUMMARY = _SlotSummary(None, (), ())


def _summary(
    results: dict[str, _TargetResult],
    starts: dict[str, datetime | None],
    slot: datetime,
    service_ids: tuple[str, ...],
    ctx: CalendarContext,
) -> _SlotSummary:
    return _SlotSummary(
        _combined(results),
        _service_outcomes(results, starts, slot, ctx) if len(service_ids) > 1 else (),
        _verify_failed(results, ctx),
    )


def _verify_failed(results: dict[str, _TargetResult], ctx: CalendarContext) -> tuple[tuple[str, Status, str], ...]:
    """A past slot that ran but hurt its services: a snapshot it made failed verification."""
    found = [
        (sid, Status.VERIFY_FAILED, "snapshot failed verification")
        for key, result in results.items()
        if result.verify_failed
        for sid in ctx.services_by_target.get(key, [])
    ]
    return tuple(dict.fromkeys(found))


def _out_of_order(
    service_ids: tuple[str, ...], window: tuple[datetime, datetime], ctx: CalendarContext
) -> tuple[tuple[str, Status, str], ...]:
    """The services whose out-of-order verdict is about a run that started in this slot's window."""
    if not ctx.out_of_order:
        return ()
    found = []
    for service_id in service_ids:
        started, why = ctx.out_of_order.get(service_id, (None, ""))
        if started is not None and window[0] <= started < window[1]:
            found.append((service_id, Status.OUT_OF_ORDER, why))
    return tuple(found)


def _combined(results: dict[str, _TargetResult]) -> tuple[SlotOutcome, str, timedelta | None] | None:
    """The job's slot from its targets: running if any runs, failed if any failed, else how many succeeded."""
    by_outcome: dict[SlotOutcome, list[str]] = defaultdict(list)
    for key, result in results.items():
        if result.outcome is not None:
            by_outcome[result.outcome].append(key.split(":", 1)[-1])
    if not by_outcome:
        return None
    starts = [r.first_start for r in results.values() if r.first_start is not None]
    ends = [r.last_end for r in results.values() if r.last_end is not None]
    duration = max(ends) - min(starts) if ends and starts else None
    if SlotOutcome.RUNNING in by_outcome:
        return SlotOutcome.RUNNING, "running: " + ", ".join(by_outcome[SlotOutcome.RUNNING]), None
    if SlotOutcome.FAILED in by_outcome:
        return SlotOutcome.FAILED, "failed: " + ", ".join(by_outcome[SlotOutcome.FAILED]), duration
    return SlotOutcome.SUCCEEDED, f"{len(by_outcome[SlotOutcome.SUCCEEDED])} of {len(results)} backed up", duration


# Keys in C: bisection calls one for each comparison (a list of every instant, made to bisect instead, was 10 MB
# at 10,000 guests).
_run_start: Callable[[JobRun], datetime] = attrgetter("started_at")
_taken: Callable[[Snapshot], datetime] = attrgetter("taken_at")


def _between(items: list[T], low: datetime, high: datetime, key: Callable[[T], datetime]) -> list[T]:
    """The items whose `key` instant is in [low, high), from a list sorted by it (an empty list as it is)."""
    if not items:
        return items
    return items[bisect.bisect_left(items, low, key=key) : bisect.bisect_left(items, high, key=key)]


def _resources(job: Job, evidence: Evidence) -> frozenset[str]:
    """What a job's runs contend for: the guests or other targets it backs up, the datastore or repository it
    works on, and where its targets' backups land (a vzdump job into PBS writes to the PBS datastore)."""
    found = {f"target:{key}" for key in job.target_keys}
    if job.store:
        found.add(f"store:{job.source}/{job.store}")
    for key in job.target_keys[:200]:
        for snapshot in evidence.snapshots.get(key, [])[-3:]:
            if not snapshot.location:
                continue
            state = evidence.states.get(snapshot.source)
            store = snapshot.location.partition("/")[0] if state and state.kind == "pbs" else snapshot.location
            found.add(f"store:{snapshot.source}/{store}")
    return frozenset(found)


def _mark_overlaps(slots: list[CalendarSlot], resources: dict[str, frozenset[str]]) -> list[CalendarSlot]:
    """Runs of different jobs that overlap in time and share a datastore, repository or guest. Two jobs on
    different systems that merely run at the same time contend for nothing: they are not marked. A slot names
    MAX_OVERLAPS_KEPT of them at most and counts the rest: 5,000 restore schedules of one database at 03:00
    would otherwise keep 25 million names (gigabytes, minutes)."""
    slots.sort(key=lambda s: (s.start_at, s.job_key))
    # One sweep per resource two jobs or more use, over the slots that use it: hundreds of restic groups of one
    # repository all start at 03:00, and comparing each slot with every slot running then took a second. (A
    # backup job of 10,000 guests has 10,000 resources of its own: only the shared ones are swept.)
    jobs = {slot.job_key for slot in slots}
    used = Counter(resource for job in jobs for resource in resources.get(job, ()))
    shared = {resource for resource, count in used.items() if count > 1}
    shared_by = {job: resources.get(job, frozenset()) & shared for job in jobs}
    users: dict[str, list[int]] = defaultdict(list)
    for index, slot in enumerate(slots):
        for resource in shared_by[slot.job_key]:
            users[resource].append(index)
    named: dict[int, dict[str, None]] = defaultdict(dict)  # per slot, the other jobs' keys in the order found
    counted: dict[int, int] = defaultdict(int)  # per slot, the most other runs overlapping it on one resource
    for indices in users.values():
        _sweep(slots, indices, named, counted)
    full = [index for index, keys in named.items() if len(keys) >= MAX_OVERLAPS_KEPT]
    totals = _count_overlapped_jobs(slots, full, users, shared_by, counted) if full else {}
    marked: dict[int, tuple[tuple[str, ...], int]] = {}
    for index, keys in named.items():
        if keys:
            marked[index] = (tuple(sorted(keys)), max(0, totals.get(index, len(keys)) - len(keys)))
    if not marked:
        return slots
    return [
        replace(s, overlaps=marked[i][0], more_overlaps=marked[i][1]) if i in marked else s for i, s in enumerate(slots)
    ]


def _count_overlapped_jobs(
    slots: list[CalendarSlot],
    full: list[int],
    users: dict[str, list[int]],
    shared_by: dict[str, frozenset[str]],
    estimates: dict[int, int],
) -> dict[int, int]:
    """How many other jobs each slot of `full` (those that named MAX_OVERLAPS_KEPT) overlaps: counted one by one
    while the runs looked at stay under MAX_COUNTING_WORK, else the sweep's estimate (the most runs overlapping
    it on one resource), for a calendar of thousands of jobs at one moment."""
    starts = {resource: [slots[i].start_at for i in indices] for resource, indices in users.items()}
    longest = {resource: max(slots[i].duration for i in indices) for resource, indices in users.items()}
    totals: dict[int, int] = {}
    work = 0
    for index in full:
        slot = slots[index]
        start, end, key = slot.start_at, slot.start_at + slot.duration, slot.job_key
        others: set[str] = set()
        for resource in shared_by[key]:
            low = bisect.bisect_left(starts[resource], start - longest[resource])
            high = bisect.bisect_left(starts[resource], end)
            work += high - low
            for other in users[resource][low:high]:
                run = slots[other]
                if run.job_key != key and run.start_at + run.duration > start:
                    others.add(run.job_key)
        if work > MAX_COUNTING_WORK:
            return {**{i: estimates[i] for i in full}, **totals}
        totals[index] = len(others)
    return totals


def _sweep(
    slots: list[CalendarSlot], indices: list[int], named: dict[int, dict[str, None]], counted: dict[int, int]
) -> None:
    """The overlaps among one resource's slots (`indices`, by start). A slot takes its names from the runs
    still going when it starts, and from those that start while it runs as long as it has room for more: work
    and memory grow with slots x MAX_OVERLAPS_KEPT, not with slots squared."""
    starts = [slots[i].start_at for i in indices]
    running: list[tuple[datetime, int]] = []  # (end, index) of the runs going on: a heap by end
    with_room: list[int] = []  # of those, the ones that still take names
    for position, index in enumerate(indices):
        slot = slots[index]
        start, end, key = slot.start_at, slot.start_at + slot.duration, slot.job_key
        while running and running[0][0] <= start:
            heapq.heappop(running)
        mine = named[index]
        for _, other in running:
            if len(mine) >= MAX_OVERLAPS_KEPT:
                break
            if (other_key := slots[other].job_key) != key:
                mine[other_key] = None
        with_room = [i for i in with_room if slots[i].start_at + slots[i].duration > start]
        for other in with_room:
            if slots[other].job_key != key:
                named[other][key] = None
        with_room = [i for i in with_room if len(named[i]) < MAX_OVERLAPS_KEPT]
        later = bisect.bisect_left(starts, end, lo=position + 1) - position - 1
        counted[index] = max(counted[index], len(running) + later)
        heapq.heappush(running, (end, index))
        if len(mine) < MAX_OVERLAPS_KEPT:
            with_room.append(index)
