"""The verdict for one service: the only place backup-glance decides ok, late, failed, ... (pure).

Inputs are the merged evidence, the service's spec, typical durations and `now`; output is a `Verdict` whose
reasons say, for a person, why. Expected runs come from the schedules of the enabled jobs that cover the
service, in each job's own zone, through the schedule engine; with no schedule known, `max_age` applies.
"""

from __future__ import annotations

import bisect
import collections
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from ..errors import ScheduleError
from ..model import (
    STATUS_SEVERITY,
    GuestRef,
    Job,
    JobKind,
    JobRun,
    RunOutcome,
    ScheduleInfo,
    ScheduleRef,
    ServiceSpec,
    Snapshot,
    Status,
    Target,
    Verdict,
    Verification,
)
from ..schedule import Schedule, parse_schedule
from ._evidence import Evidence
from ._text import span, when

# A run may start a little before its slot: schedulers wake about once a minute and clocks drift.
SLOT_TOLERANCE = timedelta(minutes=5)
# "running" stops excusing a missing backup once a run takes this many times its usual duration.
RUNNING_LIMIT_FACTOR = 3
# Slots per schedule judged for gaps; beyond this only the newest count (per-minute schedules).
MAX_DUE_SLOTS = 5000
# How far back a predecessor's runs may lie and still belong to "the batch before" in an ordering check.
ORDERING_WINDOW = timedelta(hours=12)

# Worst first: the status shown is the first that applies; the others still add their reasons.
# UNPROTECTED comes before UNKNOWN: "in no job" is a fact from PVE whatever the other sources say.
PRECEDENCE = (
    Status.UNPROTECTED,
    Status.UNKNOWN,
    Status.FAILED,
    Status.VERIFY_FAILED,
    Status.LATE,
    Status.UNVERIFIED,
    Status.OUT_OF_ORDER,
    Status.GAPS,
    Status.RUNNING,
)
_SUCCESS = (RunOutcome.OK, RunOutcome.WARNING)
# Which kinds of service a source can hold backups of (for a source whose first poll has not succeeded).
SOURCE_COVERS = {
    "pbs": ("guest", "pbs-host"),
    "pve": ("guest",),
    "databasement": ("database",),
    "backrest": ("plan",),
    "restic": ("restic",),
}


def load_schedule(ref: ScheduleRef) -> Schedule | None:
    if ref.dialect == "interval" or not ref.expression:
        return None
    try:
        return parse_schedule(ref.expression, dialect=ref.dialect, tz=ref.timezone)
    except ScheduleError:
        return None


@dataclass
class _Findings:
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


@dataclass
class _Facts:
    """What one service's judgement is built from, gathered once."""

    keys: list[str]
    targets: list[Target]
    snapshots: list[Snapshot]  # finished, oldest first (live + history)
    unfinished: list[Snapshot]
    runs: list[JobRun]  # attempts for these targets, oldest first
    jobs: list[Job]  # backup jobs covering them, enabled or not
    success_times: list[datetime]


def matching_keys(spec: ServiceSpec, evidence: Evidence) -> list[str]:
    """The target keys a service stands for: its exact keys, plus every known key its patterns match."""
    known = evidence.known_keys
    keys = {pattern for pattern in spec.target_keys if pattern in known}
    patterns = [p for p in spec.target_keys if p not in known and any(c in p for c in "*?[")]
    if patterns:
        keys |= {key for key in known if any(fnmatchcase(key, p) for p in patterns)}
    return sorted(keys)


def gather_facts(spec: ServiceSpec, evidence: Evidence) -> _Facts:
    keys = matching_keys(spec, evidence)

    def wanted(source: str) -> bool:
        return spec.source is None or source == spec.source

    targets = [t for k in keys for t in evidence.targets.get(k, []) if wanted(t.source)]
    all_snapshots = [s for k in keys for s in evidence.snapshots.get(k, []) if wanted(s.source)]
    finished = sorted((s for s in all_snapshots if s.finished), key=lambda s: s.taken_at)
    unfinished = sorted((s for s in all_snapshots if not s.finished), key=lambda s: s.taken_at)
    runs = [r for k in keys for r in evidence.runs_by_target.get(k, []) if wanted(r.source)]
    jobs: dict[str, Job] = {}
    for key in keys:
        for job in evidence.backup_jobs_by_target.get(key, []):
            if wanted(job.source):
                jobs[job.key] = job
    if not runs:
        # Sources that report runs per job only (one plan = one target): use them when the job is ours alone.
        for job in jobs.values():
            if set(job.target_keys) <= set(keys):
                runs.extend(evidence.runs_by_job.get(job.key, []))
    runs.sort(key=lambda r: r.started_at)
    success_times = sorted([s.taken_at for s in finished] + [r.started_at for r in runs if r.outcome in _SUCCESS])
    return _Facts(keys, targets, finished, unfinished, runs, list(jobs.values()), success_times)


def judge(
    spec: ServiceSpec,
    evidence: Evidence,
    *,
    now: datetime,
    display_tz: str,
    durations: dict[str, timedelta],
    facts: _Facts | None = None,
    ordering: Iterable[str] = (),
) -> Verdict:
    facts = facts or gather_facts(spec, evidence)
    findings = _Findings()
    for reason in ordering:
        findings.add(Status.OUT_OF_ORDER, reason)
    sources = sorted(
        {t.source for t in facts.targets} | {j.source for j in facts.jobs} | {s.source for s in facts.snapshots}
    )
    _check_sources(spec, facts, evidence, sources, now, display_tz, findings)

    newest = facts.snapshots[-1] if facts.snapshots else None
    last_success = facts.success_times[-1] if facts.success_times else None
    last_attempt = facts.runs[-1] if facts.runs else None
    enabled = [j for j in facts.jobs if j.enabled and j.schedule is not None]

    _check_coverage(spec, facts, evidence, enabled, findings)
    running_since = _running_since(facts, last_attempt)
    typical = _typical_duration(facts.jobs, durations)
    is_running = running_since is not None
    if running_since is not None and typical is not None and now - running_since > RUNNING_LIMIT_FACTOR * typical:
        is_running = False
        findings.add(
            Status.LATE,
            f"a backup has been running since {when(running_since, display_tz)}, "
            f"over {RUNNING_LIMIT_FACTOR}x its usual {span(typical)}",
        )
    if is_running and running_since is not None:
        findings.add(Status.RUNNING, f"backup in progress since {when(running_since, display_tz)}")

    if (
        last_attempt is not None
        and last_attempt.outcome is RunOutcome.FAILED
        and not any(t > last_attempt.started_at for t in facts.success_times)
        and not is_running
    ):
        message = f": {last_attempt.message}" if last_attempt.message else ""
        findings.add(Status.FAILED, f"last attempt {when(last_attempt.started_at, display_tz)} failed{message}")

    schedule_info, next_run, previous_due, missed = _check_schedule(
        spec, facts, enabled, last_success, is_running, now, display_tz, findings
    )
    verified_at = newest.verified_at if newest else None
    if newest is not None:
        _check_verification(newest, evidence, spec, durations, now, display_tz, findings)

    status = findings.verdict_status()
    reasons = findings.reasons(status)
    silence = spec.silence
    if silence is not None and (silence.until is None or now < silence.until):
        until = f" until {when(silence.until, display_tz)}" if silence.until else ""
        underlying = f" (underneath: {status.value})" if status is not Status.OK else ""
        reasons = (f"silenced{until}: {silence.reason}{underlying}", *reasons)
        status = Status.SILENCED
    else:
        silence = None

    return Verdict(
        service_id=spec.id,
        name=spec.name,
        status=status,
        severity=STATUS_SEVERITY[status],
        reasons=reasons,
        as_of=now,
        kind=_kind(facts),
        guest=_guest(facts.targets),
        sources=tuple(sources),
        last_success_at=last_success,
        last_attempt_at=last_attempt.started_at if last_attempt else None,
        last_outcome=last_attempt.outcome if last_attempt else None,
        snapshot_count=sum(1 for s in facts.snapshots if (s.source, s.snapshot_id) in evidence.live_snapshots),
        newest_size_bytes=newest.size_bytes if newest else None,
        verification=newest.verification if newest else None,
        verified_at=verified_at,
        schedule=schedule_info,
        next_run_at=next_run,
        previous_due_at=previous_due,
        missed_slots=tuple(missed),
        silence=silence,
        size_trend=tuple(
            (s.taken_at, s.size_bytes)
            for s in facts.snapshots
            if s.size_bytes is not None and s.taken_at >= now - spec.lookback
        ),
    )


def _check_sources(
    spec: ServiceSpec,
    facts: _Facts,
    evidence: Evidence,
    sources: list[str],
    now: datetime,
    tz: str,
    findings: _Findings,
) -> None:
    relevant = list(sources or ([spec.source] if spec.source else []))
    kind = _kind(facts)
    for candidate in evidence.states.values():
        # A source that never answered may hold this service's backups: until it does, nothing is certain.
        if candidate.observation is None and kind in SOURCE_COVERS.get(candidate.kind, ()):
            relevant.append(candidate.name)
    for name in dict.fromkeys(relevant):
        state = evidence.states.get(name)
        if state is None or state.error is None:
            continue
        if state.last_success_at is None:
            findings.add(Status.UNKNOWN, f"source '{name}' has not answered yet: {state.error}")
        elif now - state.last_success_at > 2 * state.poll_interval:
            findings.add(
                Status.UNKNOWN,
                f"source '{name}' unreachable since {when(state.last_success_at, tz)}: {state.error}",
            )
    if not facts.targets and not facts.snapshots and not facts.jobs and not facts.runs:
        findings.add(Status.UNKNOWN, "never seen: no source reports " + ", ".join(spec.target_keys))


def _check_coverage(
    spec: ServiceSpec, facts: _Facts, evidence: Evidence, enabled: list[Job], findings: _Findings
) -> None:
    # Only a source that knows both the guests and the jobs (PVE), or one that says so itself, can tell that
    # something is in no job; a PBS group alone says nothing about coverage.
    covered_by_source = [t for t in facts.targets if t.source in evidence.coverage_sources]
    said_uncovered = [t for t in facts.targets if t.key in evidence.uncovered]
    known = covered_by_source or said_uncovered
    if not known or enabled:
        return
    label = _describe_target(known[0])
    disabled = sorted({j.job_id for j in facts.jobs if not j.enabled})
    if disabled:
        findings.add(Status.UNPROTECTED, f"{label} is only in disabled backup job(s): {', '.join(disabled)}")
    else:
        findings.add(Status.UNPROTECTED, f"{label} is in no backup job")


def _describe_target(target: Target) -> str:
    if target.guest is not None:
        kind = "CT" if target.guest.type == "lxc" else "VM"
        return f"{kind} {target.guest.vmid} ({target.name})" if target.name else f"{kind} {target.guest.vmid}"
    return target.name or target.key


def _running_since(facts: _Facts, last_attempt: JobRun | None) -> datetime | None:
    if last_attempt is not None and last_attempt.outcome is RunOutcome.RUNNING:
        return last_attempt.started_at
    newest_finished = facts.snapshots[-1].taken_at if facts.snapshots else None
    for snapshot in reversed(facts.unfinished):
        if newest_finished is None or snapshot.taken_at > newest_finished:
            return snapshot.taken_at
    if any(t.backup_running for t in facts.targets):
        return last_attempt.started_at if last_attempt else facts.success_times[-1] if facts.success_times else None
    return None


def _typical_duration(jobs: Iterable[Job], durations: dict[str, timedelta]) -> timedelta | None:
    known = [durations[j.key] for j in jobs if j.key in durations]
    return max(known) if known else None


def _check_schedule(
    spec: ServiceSpec,
    facts: _Facts,
    enabled: list[Job],
    last_success: datetime | None,
    is_running: bool,
    now: datetime,
    tz: str,
    findings: _Findings,
) -> tuple[ScheduleInfo | None, datetime | None, datetime | None, list[datetime]]:
    schedules: list[tuple[Job, Schedule]] = []
    interval_jobs: list[Job] = []
    for job in enabled:
        assert job.schedule is not None
        if job.schedule.dialect == "interval" and job.schedule.interval:
            interval_jobs.append(job)
            continue
        parsed = load_schedule(job.schedule)
        if parsed is None:
            findings.add(Status.UNKNOWN, f"job '{job.name}': schedule {job.schedule.expression!r} cannot be read")
        else:
            schedules.append((job, parsed))

    if not schedules and not interval_jobs:
        return None, None, None, _check_max_age(spec, facts, last_success, is_running, now, tz, findings)

    info_job, next_run = _next_run(schedules, interval_jobs, facts, now)
    info = (
        ScheduleInfo(
            expression=info_job.schedule.expression,
            dialect=info_job.schedule.dialect,
            timezone=info_job.schedule.timezone,
            job_key=info_job.key,
            job_name=info_job.name,
        )
        if info_job is not None and info_job.schedule is not None
        else None
    )
    previous_due = max((p for _, s in schedules if (p := _previous(s, now)) is not None), default=None)
    due_slots = _due_slots(schedules, since=now - spec.lookback, until=now - spec.grace)
    for job in interval_jobs:
        assert job.schedule is not None and job.schedule.interval is not None
        anchor = last_success or (facts.runs[-1].started_at if facts.runs else None)
        if anchor is not None and anchor + job.schedule.interval + spec.grace <= now:
            due_slots.append(anchor + job.schedule.interval)
            previous_due = max(filter(None, (previous_due, anchor + job.schedule.interval)))
    due_slots.sort()
    if not due_slots:
        return info, next_run, previous_due, []

    latest_due = due_slots[-1]
    if not (facts.success_times and facts.success_times[-1] >= latest_due - SLOT_TOLERANCE) and not is_running:
        last = f"last success {when(last_success, tz)}" if last_success else "no successful backup found"
        findings.add(
            Status.LATE,
            f"no backup since the run due {when(latest_due, tz)} (grace {span(spec.grace)}); {last}",
        )
    evidence_start = min([*facts.success_times[:1], *(r.started_at for r in facts.runs[:1])], default=latest_due)
    missed = []
    for slot, following in zip(due_slots, [*due_slots[1:], now], strict=True):
        if slot < evidence_start - SLOT_TOLERANCE or slot == latest_due:
            continue
        low, high = slot - SLOT_TOLERANCE, following - SLOT_TOLERANCE
        # success_times is sorted: the first one at or after `low` decides whether any falls in [low, high).
        index = bisect.bisect_left(facts.success_times, low)
        if index == len(facts.success_times) or facts.success_times[index] >= high:
            missed.append(slot)
    if missed:
        shown = ", ".join(when(m, tz) for m in missed[-3:])
        more = f" and {len(missed) - 3} more" if len(missed) > 3 else ""
        findings.add(
            Status.GAPS,
            f"{len(missed)} due run(s) in the last {span(spec.lookback)} produced no backup: {shown}{more}",
        )
    return info, next_run, previous_due, missed


def _next_run(
    schedules: list[tuple[Job, Schedule]], interval_jobs: list[Job], facts: _Facts, now: datetime
) -> tuple[Job | None, datetime | None]:
    best: tuple[Job | None, datetime | None] = (None, None)
    for job, schedule in schedules:
        candidate = job.next_run_at if job.next_run_at and job.next_run_at > now else schedule.next_after(now)
        if candidate is not None and (best[1] is None or candidate < best[1]):
            best = (job, candidate)
    for job in interval_jobs:
        assert job.schedule is not None and job.schedule.interval is not None
        anchor = facts.runs[-1].started_at if facts.runs else (facts.success_times or [now])[-1]
        candidate = job.next_run_at or max(anchor + job.schedule.interval, now)
        if best[1] is None or candidate < best[1]:
            best = (job, candidate)
    if best[0] is None and (schedules or interval_jobs):
        best = (schedules[0][0] if schedules else interval_jobs[0], None)
    return best


def _due_slots(schedules: list[tuple[Job, Schedule]], *, since: datetime, until: datetime) -> list[datetime]:
    """Every scheduled slot in [since, until], merged across jobs (slots within a minute count once)."""
    slots = sorted(slot for _, schedule in schedules for slot in _slots(schedule, since, until))
    merged: list[datetime] = []
    for slot in slots:
        if not merged or slot - merged[-1] >= timedelta(minutes=1):
            merged.append(slot)
    return merged


# One vzdump job often covers every guest: its slots are the same for all of them within one evaluation, so
# they are worked out once. Schedules are immutable and the results depend only on the arguments.
@functools.lru_cache(maxsize=4096)
def _slots(schedule: Schedule, since: datetime, until: datetime) -> tuple[datetime, ...]:
    # A per-minute schedule has 20,160 slots in 14 days; the newest ones are what matters.
    return tuple(collections.deque(schedule.between(since, until + timedelta(seconds=1)), maxlen=MAX_DUE_SLOTS))


@functools.lru_cache(maxsize=4096)
def _previous(schedule: Schedule, now: datetime) -> datetime | None:
    return schedule.previous_before(now)


def _check_max_age(
    spec: ServiceSpec,
    facts: _Facts,
    last_success: datetime | None,
    is_running: bool,
    now: datetime,
    tz: str,
    findings: _Findings,
) -> list[datetime]:
    if is_running or not (facts.targets or facts.snapshots) or Status.UNPROTECTED in findings.found:
        return []
    if last_success is None:
        findings.add(Status.LATE, "no successful backup found (no schedule known)")
    elif now - last_success > spec.max_age + spec.grace:
        findings.add(
            Status.LATE,
            f"last backup {when(last_success, tz)} is older than max_age {span(spec.max_age)} (no schedule known)",
        )
    return []


def _check_verification(
    newest: Snapshot,
    evidence: Evidence,
    spec: ServiceSpec,
    durations: dict[str, timedelta],
    now: datetime,
    tz: str,
    findings: _Findings,
) -> None:
    if newest.verification is Verification.FAILED:
        findings.add(Status.VERIFY_FAILED, f"newest snapshot ({when(newest.taken_at, tz)}) failed verification")
        return
    if newest.verification is Verification.OK:
        return
    store = newest.location.split("/", 1)[0]
    for job in evidence.jobs:
        if job.kind is not JobKind.VERIFY or job.source != newest.source or not job.enabled:
            continue
        if job.store not in (None, "", store) or job.schedule is None:
            continue
        schedule = load_schedule(job.schedule)
        slot = schedule.next_after(newest.taken_at) if schedule else None
        allowance = spec.grace + durations.get(job.key, timedelta(0))
        if slot is not None and slot + allowance <= now:
            findings.add(
                Status.UNVERIFIED,
                f"newest snapshot ({when(newest.taken_at, tz)}) is not verified although verify job "
                f"'{job.name}' was due {when(slot, tz)}",
            )
            return


def ordering_reasons(
    spec: ServiceSpec,
    facts: _Facts,
    predecessors: list[tuple[ServiceSpec, _Facts]],
    tz: str,
) -> list[str]:
    """Why this service's latest run broke an `after:` ordering: it started while a run of a predecessor was
    still going, or after one had failed (pure; the caller adds the reasons)."""
    if not facts.runs:
        return []
    run = facts.runs[-1]
    reasons = []
    for other, other_facts in predecessors:
        before = [r for r in other_facts.runs if run.started_at - ORDERING_WINDOW <= r.started_at <= run.started_at]
        unfinished = [r for r in before if r.ended_at is None or r.ended_at > run.started_at]
        failed = [r for r in before if r.outcome is RunOutcome.FAILED]
        if unfinished:
            ends = [r.ended_at for r in unfinished if r.ended_at is not None]
            finished = when(max(ends), tz) if len(ends) == len(unfinished) else "still running"
            reasons.append(f"{spec.name} started {when(run.started_at, tz)} before {other.name} finished ({finished})")
        if failed:
            reasons.append(
                f"{spec.name} ran at {when(run.started_at, tz)} after {other.name} failed "
                f"({when(failed[-1].started_at, tz)})"
            )
    return reasons


def _kind(facts: _Facts) -> str:
    if facts.targets:
        return facts.targets[0].kind
    for key in facts.keys:
        return key.split(":", 1)[0] if ":" in key else "guest"
    return "guest"


def _guest(targets: list[Target]) -> GuestRef | None:
    guests = [t.guest for t in targets if t.guest is not None]
    with_node = [g for g in guests if g.node]
    return with_node[0] if with_node else (guests[0] if guests else None)


def slug(text: str) -> str:
    """An id from a name: lowercase, dashes.

    >>> slug("Old Wiki (qemu)")
    'old-wiki-qemu'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "service"
