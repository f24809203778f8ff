"""The verdict for one service: the only place backup-glance decides ok, late, failed, ... (pure).

Inputs are the merged evidence, the service's facts, typical durations and `now`; output is a `Verdict` whose
reasons say, for a person, why. The schedule side (late, gaps, max_age) lives in `_due`, ordering in `ordering`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from ..model import (
    STATUS_SEVERITY,
    AnomalyPolicy,
    GuestRef,
    Job,
    JobKind,
    JobRun,
    RunOutcome,
    ServiceSpec,
    Snapshot,
    SourceState,
    Status,
    Target,
    Verdict,
    Verification,
)
from ._common import Findings, earlier, job_duration, load_schedule
from ._due import Plan, check_due, plan_of, previous_due
from ._evidence import Evidence
from ._facts import Facts, unanswered_sources
from ._held import sized_since
from ._held import sources as held_sources
from ._text import span, when
from .protection import assess, reaches

# "running" stops excusing a missing backup once a run takes this many times its usual duration.
RUNNING_LIMIT_FACTOR = 3


def judge(
    spec: ServiceSpec,
    evidence: Evidence,
    *,
    now: datetime,
    display_tz: str,
    durations: dict[str, timedelta],
    facts: Facts,
    ordering: Iterable[str] = (),
    anomalies: AnomalyPolicy | None = None,
) -> Verdict:
    findings = Findings()
    for reason in ordering:
        findings.add(Status.OUT_OF_ORDER, reason)
    sources = sorted({t.source for t in facts.targets} | {j.source for j in facts.jobs} | held_sources(facts.snapshots))
    silent_since = _check_sources(spec, facts, evidence, sources, now, display_tz, findings)

    newest = facts.snapshots[-1] if facts.snapshots else None
    last_attempt = facts.runs[-1] if facts.runs else None
    enabled = [j for j in facts.jobs if j.enabled and j.schedule is not None]
    _check_coverage(facts, evidence, enabled, findings)
    live_count = len(evidence.live(facts.keys, facts.snapshots))
    _check_kept(facts, evidence, live_count, now, display_tz, findings)
    plan = plan_of(enabled, findings)

    is_running = _check_running(facts, last_attempt, plan, evidence, durations, now, display_tz, findings)
    if (
        last_attempt is not None
        and last_attempt.outcome is RunOutcome.FAILED
        and not (facts.success_times and facts.success_times[-1] > last_attempt.started_at)
        and not is_running
    ):
        message = f": {last_attempt.message}" if last_attempt.message else ""
        findings.add(Status.FAILED, f"last attempt {when(last_attempt.started_at, display_tz, now)} failed{message}")
    due = check_due(spec, facts, plan, is_running=is_running, now=now, tz=display_tz, findings=findings)
    if newest is not None:
        _check_verification(newest, evidence, spec, durations, now, display_tz, findings)
    protection = assess(
        spec,
        facts,
        evidence,
        now=now,
        tz=display_tz,
        missed=due.missed,
        anomalies=anomalies or AnomalyPolicy(),
        durations=durations,
    )
    for risk in protection.risks:  # a worse finding still names the verdict; its reasons list these too
        findings.add(Status.AT_RISK, risk.detail)

    status = findings.verdict_status()
    if status is Status.UNKNOWN and Status.LATE in findings.found and silent_since is not None:
        # Late already when the source last answered: that is known, and worse than not knowing.
        before = Findings()
        check_due(spec, facts, plan, is_running=is_running, now=silent_since, tz=display_tz, findings=before)
        if Status.LATE in before.found:
            status = Status.LATE
    reasons = findings.reasons(status)
    silence = spec.silence
    if silence is not None and (silence.until is None or now < silence.until):
        until = f" until {when(silence.until, display_tz, now)}" if silence.until else ""
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
        kind=facts.kind,
        guest=_guest(facts.targets),
        sources=tuple(sources),
        last_success_at=facts.success_times[-1] if facts.success_times else None,
        last_attempt_at=last_attempt.started_at if last_attempt else None,
        last_outcome=last_attempt.outcome if last_attempt else None,
        snapshot_count=live_count,
        newest_size_bytes=newest.size_bytes if newest else None,
        verification=newest.verification if newest else None,
        verified_at=newest.verified_at if newest else None,
        schedule=due.info,
        next_run_at=due.next_run_at,
        previous_due_at=due.previous_due_at,
        missed_slots=due.missed,
        silence=silence,
        size_trend=sized_since(facts.snapshots, now - spec.lookback),
        protection=protection,
    )


def _check_sources(
    spec: ServiceSpec,
    facts: Facts,
    evidence: Evidence,
    sources: list[str],
    now: datetime,
    tz: str,
    findings: Findings,
) -> datetime | None:
    """Adds why sources leave the service unknown; returns since when the earliest of them has been silent."""
    relevant = [*(sources or ([spec.source] if spec.source else [])), *unanswered_sources(spec, facts, evidence)]
    silent_since: datetime | None = None
    for name in dict.fromkeys(relevant):
        state = evidence.states.get(name)
        if state is None or state.error is None:
            continue
        if state.last_success_at is None:
            findings.add(Status.UNKNOWN, f"source '{name}' has not answered yet: {state.error}")
        elif now - state.last_success_at > 2 * state.poll_interval:
            findings.add(
                Status.UNKNOWN,
                f"source '{name}' unreachable since {when(state.last_success_at, tz, now)}: {state.error}",
            )
            silent_since = min(silent_since or state.last_success_at, state.last_success_at)
    for name, since, observed in unread_parts(facts, evidence):
        # The part of a source holding its snapshots could not be read: what shows is as last read, or nothing.
        state = evidence.states.get(name)
        if state is None or state.error is not None:
            continue
        observation = state.observation
        why = f": {observation.problems[0]}" if observation is not None and observation.problems else ""
        if since is None:
            findings.add(Status.UNKNOWN, f"its backups on source '{name}' could not be read yet{why}")
            continue
        since = unread_since(state, since, observed)
        if now - since > 2 * state.poll_interval:
            findings.add(Status.UNKNOWN, f"its backups on source '{name}' unreadable since {when(since, tz, now)}{why}")
            silent_since = min(silent_since or since, since)
    if not facts.targets and not facts.snapshots and not facts.jobs:
        if not facts.runs:
            findings.add(Status.UNKNOWN, "never seen: no source reports " + ", ".join(spec.target_keys))
        else:
            # Runs history remembers, and nothing else: no source reports it now (a restic group_by changed, a
            # guest deleted with no backup anywhere). A run that once succeeded backs no snapshot of it any more.
            keys, last = ", ".join(spec.target_keys), when(facts.runs[-1].started_at, tz, now)
            findings.add(Status.UNKNOWN, f"no source reports {keys} now (last run known: {last})")
    return silent_since


def unread_parts(facts: Facts, evidence: Evidence) -> list[tuple[str, datetime | None, datetime]]:
    """(source, since when, as of when) for each source that could not read the snapshots of one of the service's
    targets in its last poll."""
    if not evidence.unread:
        return []
    return [part for key in facts.keys for part in evidence.unread.get(key, ())]


def unread_since(state: SourceState, since: datetime, observed: datetime) -> datetime:
    """Since when (by this process's clock, as `now` is) a part of the source has been unreadable: `since` and
    `observed` are by the source's clock, so the span between them is counted back from when its poll began."""
    return since if state.last_success_at is None else state.last_success_at - (observed - since)


def _check_kept(facts: Facts, evidence: Evidence, live_count: int, now: datetime, tz: str, findings: Findings) -> None:
    """Backups that existed and exist no more: every snapshot history saw of the service is gone from sources that
    were read in full (a group deleted, a repository emptied, a retention that kept nothing). Its last run may well
    have succeeded, and history remembers it; but nothing is left to restore."""
    if not facts.snapshots or live_count or evidence.live(facts.keys, facts.unfinished):
        return  # (one still being written is a backup on its way; one that vanished unfinished was none)
    if any(key in evidence.unread for key in facts.keys):
        return  # what could not be read is the source's part to say (unknown), not gone
    sources = sorted({s.source for s in facts.snapshots})
    for name in sources:
        state = evidence.states.get(name)
        if state is None or state.observation is None or state.error is not None:
            return  # a source no longer configured, or not answering now: its snapshots may well be there
    count, where = len(facts.snapshots), ", ".join(map(repr, sources))
    taken = when(facts.snapshots[-1].taken_at, tz, now)
    seen = (
        f"the {count} snapshots seen, the newest taken {taken}, no longer exist"
        if count > 1
        else (f"the one snapshot seen, taken {taken}, no longer exists")
    )
    findings.add(Status.UNPROTECTED, f"no backup left: {seen} on {where}")


def _check_coverage(facts: Facts, evidence: Evidence, enabled: list[Job], findings: Findings) -> None:
    # Only a source that knows both the guests and the jobs (PVE), or one that says so itself, can tell that
    # something is in no job; a PBS group alone says nothing about coverage. Templates are not guests to back up.
    covered_by_source = [t for t in facts.targets if t.source in evidence.coverage_sources and not t.template]
    said_uncovered = [t for t in facts.targets if t.key in evidence.uncovered and not t.template]
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


def _check_running(
    facts: Facts,
    last_attempt: JobRun | None,
    plan: Plan,
    evidence: Evidence,
    durations: dict[str, timedelta],
    now: datetime,
    tz: str,
    findings: Findings,
) -> bool:
    """Is a backup of it in progress, and not hanging (beyond 3x its usual duration)?"""
    since = _running_since(facts, last_attempt, plan, now)
    if since is None:
        return False
    typical = max((d for j in facts.jobs if (d := job_duration(j, evidence, durations)) is not None), default=None)
    if typical is not None and now - since > RUNNING_LIMIT_FACTOR * typical:
        findings.add(
            Status.LATE,
            f"a backup has been running since {when(since, tz, now)}, "
            f"over {RUNNING_LIMIT_FACTOR}x its usual {span(typical)}",
        )
        return False
    findings.add(Status.RUNNING, f"backup in progress since {when(since, tz, now)}")
    return True


def _running_since(facts: Facts, last_attempt: JobRun | None, plan: Plan, now: datetime) -> datetime | None:
    if last_attempt is not None and last_attempt.outcome is RunOutcome.RUNNING:
        return last_attempt.started_at
    newest_finished = facts.snapshots[-1].taken_at if facts.snapshots else None
    for snapshot in reversed(facts.unfinished):
        if newest_finished is None or snapshot.taken_at > newest_finished:
            return snapshot.taken_at
    if any(t.backup_running for t in facts.targets):
        # PVE says the guest is locked for a backup but no run tells when it began: the due run it is part of
        # did (a lock left behind by a crash then turns late once 3x the usual duration has passed).
        return previous_due(plan, facts, now) or now
    return None


def _check_verification(
    newest: Snapshot,
    evidence: Evidence,
    spec: ServiceSpec,
    durations: dict[str, timedelta],
    now: datetime,
    tz: str,
    findings: Findings,
) -> None:
    if newest.verification is Verification.FAILED:
        findings.add(Status.VERIFY_FAILED, f"newest snapshot ({when(newest.taken_at, tz, now)}) failed verification")
        return
    if newest.verification is Verification.OK:
        return
    for job in evidence.jobs:
        if job.kind is not JobKind.VERIFY or job.source != newest.source or not job.enabled:
            continue
        if job.schedule is None or not reaches(job, newest.location):
            continue
        schedule = load_schedule(job.schedule)
        slot = schedule.next_after(newest.taken_at) if schedule else None
        allowance = spec.grace + (job_duration(job, evidence, durations) or timedelta(0))
        if slot is not None and slot <= earlier(now, allowance):  # in real time, across a clock change too
            findings.add(
                Status.UNVERIFIED,
                f"newest snapshot ({when(newest.taken_at, tz, now)}) is not verified although verify job "
                f"'{job.name}' was due {when(slot, tz, now)}",
            )
            return


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
