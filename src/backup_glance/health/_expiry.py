"""Until when a verdict stays exactly what it is while no evidence changes: what lets judging be incremental. Pure.

A verdict reads the clock in a known number of places, each a comparison of `now` with a moment its facts
give. Judged again before the first of those moments, the same facts give the same verdict, so
the incremental evaluation (`_memo`) reuses it until then. This is stricter than `deadlines.next_change`: that
one wakes the collector and may leave slow drifts to the regular re-judgement (the lookback sliding past a
slot, a run growing past its limit, the size trend's window); a reused verdict must be the very one judging from
scratch would give, so every reading of the clock is listed here. A new reading of `now` in `services`, `_due`
or `protection` needs its moment here too; `tests/integration/test_incremental.py` compares the two ways of judging
over randomized clock steps and catches a missing one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..model import JobKind, ServiceSpec, Verdict, Verification
from ._common import Findings, job_duration, later, load_schedule, slot_after
from ._due import _interval_anchor, plan_of
from ._evidence import Evidence
from ._facts import Facts
from ._held import sized_since
from .protection import moments, reaches
from .services import RUNNING_LIMIT_FACTOR, _running_since, unread_parts, unread_since

# Rules compare with <, <=, > or >=: a moment takes effect at it or just after it, so both count (as in
# `deadlines`). Microseconds are the clock's resolution.
_JUST_AFTER = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def verdict_expires(
    spec: ServiceSpec,
    facts: Facts,
    verdict: Verdict,
    evidence: Evidence,
    *,
    now: datetime,
    durations: dict[str, timedelta],
) -> datetime:
    """The first moment after `now` at which judging `spec` on the same evidence could give another verdict."""
    soon = now + _JUST_AFTER  # for a rule that moves with the clock itself: reuse at `now` only
    found: list[datetime] = []
    for state in evidence.states.values():  # a failing source turns its services unknown (services._check_sources)
        if state.error is not None and state.last_success_at is not None:
            found.append(state.last_success_at + 2 * state.poll_interval)
    for name, since, observed in unread_parts(facts, evidence):  # unread too long (services._check_sources)
        unread_in = evidence.states.get(name)
        if since is not None and unread_in is not None:
            found.append(unread_since(unread_in, since, observed) + 2 * unread_in.poll_interval)
    if spec.silence is not None and spec.silence.until is not None:
        found.append(spec.silence.until)
    plan = plan_of([j for j in facts.jobs if j.enabled and j.schedule is not None], Findings())
    for job, schedule in plan.calendars:
        if job.next_run_at is not None:  # the server's next run counts until it comes (_common.next_run)
            found.append(job.next_run_at)
        # A slot coming (next run, previous due), its grace ending (late, missed) and leaving the lookback (gaps).
        # Two slots per shift: schedules count in whole seconds, so the first may already be behind `now`.
        for shift in (timedelta(0), spec.grace, spec.lookback):
            slot = slot_after(schedule, now - shift - _SECOND)
            for _ in range(2):
                if slot is None:
                    break
                found.append(later(slot, shift))
                slot = slot_after(schedule, slot)
    anchor = _interval_anchor(facts)
    next_anchor = facts.runs[-1].started_at if facts.runs else anchor
    for job in plan.intervals:
        assert job.schedule is not None and job.schedule.interval is not None
        interval = job.schedule.interval
        if anchor is not None:  # _due.previous_due at now and at now - grace
            found += [anchor + interval, anchor + interval + spec.grace]
        if job.next_run_at is None:  # _due._next: an overdue interval's next run is "now", moving with it
            if next_anchor is None or next_anchor + interval <= now:
                return soon
            found.append(next_anchor + interval)
    since = _running_since(facts, facts.runs[-1] if facts.runs else None, plan, now)
    if since is not None:
        if since == now:  # a guest locked for a backup with no due run to date it: "since now"
            return soon
        typical = max((d for j in facts.jobs if (d := job_duration(j, evidence, durations)) is not None), default=None)
        if typical is not None:
            found.append(since + RUNNING_LIMIT_FACTOR * typical)
    if plan.is_empty and facts.success_times:  # max_age without a schedule
        found.append(facts.success_times[-1] + spec.max_age + spec.grace)
    newest = facts.snapshots[-1] if facts.snapshots else None
    if newest is not None and newest.verification not in (Verification.OK, Verification.FAILED):
        for job in evidence.jobs:  # unverified once a verify job reaching it was due (services._check_verification)
            if job.kind is not JobKind.VERIFY or job.schedule is None or not reaches(job, newest.location):
                continue
            verify = load_schedule(job.schedule)
            slot = verify.next_after(newest.taken_at) if verify else None
            if slot is not None:
                found.append(later(slot, spec.grace + (job_duration(job, evidence, durations) or timedelta(0))))
    found += moments(spec, verdict)
    if verdict.protection is not None:  # a copy stops being current when it leaves the lookback
        found += [c.newest_at + spec.lookback for c in verdict.protection.copies if c.newest_at is not None]
    sized = sized_since(facts.snapshots, now - spec.lookback)
    if sized:  # oldest first: the first one inside the size trend's window leaves it first
        found.append(sized[0][0] + spec.lookback)
    never = datetime.max.replace(tzinfo=now.tzinfo)
    return min((m for base in found for m in (base, base + _JUST_AFTER) if m > now), default=never)
