"""When could the board change with no news at all? The next moment a deadline passes. Pure.

Verdicts move with the clock only at known moments: a job's slot comes (the calendar's upcoming run becomes
due), a slot's grace ends (a service is late, the slot is missed), a source (or the part of it holding a
service's backups) stays silent two poll intervals (unknown), a silence or a max_age runs out, a verification or
a restore test gets too old, a copy leaves the lookback. The collector sleeps until the earliest of them instead of
re-judging everything every few seconds; anything not listed here (a run going on far longer than usual, the
calendar's window sliding) is caught by a regular re-judgement at least every `LONGEST_SLEEP`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from ..model import Job, ServiceSpec, SourceState, Verdict
from ._common import SLOT_TOLERANCE, earlier, later, load_schedule, previous_slot
from ._evidence import Evidence
from .protection import moments
from .services import unread_since

LONGEST_SLEEP = timedelta(minutes=15)
# Some rules compare with <, others with <=: a change takes effect at a moment or just after it, so both count.
_JUST_AFTER = timedelta(microseconds=1)


def next_change(
    specs: Sequence[ServiceSpec],
    verdicts: Sequence[Verdict],
    evidence: Evidence,
    sources: Iterable[SourceState],
    now: datetime,
    default_grace: timedelta,
) -> datetime:
    """The earliest moment after `now` at which judging again could give a different board."""
    graces = sorted({spec.grace for spec in specs} | {default_grace, timedelta(0), SLOT_TOLERANCE})
    longest = graces[-1]
    candidates = [now + LONGEST_SLEEP]
    for job in evidence.jobs:
        if job.schedule is None or not job.enabled:
            continue
        if job.schedule.interval is not None:
            anchor = _newest_run_start(evidence, job)
            if anchor is not None:
                candidates += [later(anchor, job.schedule.interval + grace) for grace in graces]
            continue
        schedule = load_schedule(job.schedule)
        if schedule is None:
            continue
        upcoming = schedule.next_after(now)
        if upcoming is not None:
            candidates.append(upcoming)
        # A slot that already came still turns late (or missed) when one of the graces in use runs out.
        recent = previous_slot(schedule, now + _JUST_AFTER)  # a slot at exactly `now` counts as come
        oldest_open = earlier(now, longest)  # a slot after it still has a grace running
        while recent is not None and recent > oldest_open:
            candidates += [later(recent, grace) for grace in graces]
            recent = previous_slot(schedule, recent - timedelta(seconds=1))
    for state in sources:  # a failing source's services turn unknown once it has been silent two intervals
        if state.error is not None and state.last_success_at is not None:
            candidates.append(state.last_success_at + 2 * state.poll_interval + timedelta(seconds=1))
    for parts in evidence.unread.values():  # ... and so do those whose part of a source stays unreadable
        for name, since, observed in parts:
            holder = evidence.states.get(name)
            if since is not None and holder is not None:
                candidates.append(unread_since(holder, since, observed) + 2 * holder.poll_interval)
    by_id = {spec.id: spec for spec in specs}
    for spec in specs:
        if spec.silence is not None and spec.silence.until is not None:
            candidates.append(spec.silence.until)
    for verdict in verdicts:  # no schedule known: late once the newest backup is older than max_age
        owner = by_id.get(verdict.service_id)
        if owner is not None and verdict.schedule is None and verdict.last_success_at is not None:
            candidates.append(verdict.last_success_at + owner.max_age + owner.grace + timedelta(seconds=1))
        if owner is not None:  # a verification, a restore test or a copy growing too old
            candidates += moments(owner, verdict)
    return min(moment for base in candidates for moment in (base, base + _JUST_AFTER) if moment > now)


def _newest_run_start(evidence: Evidence, job: Job) -> datetime | None:
    """The interval's anchor. Per-target runs (a Backrest plan's) are filed under their targets, not the job:
    the job's own last run stands in for them."""
    runs = evidence.runs_by_job.get(job.key)
    if runs:
        return runs[-1].started_at
    return job.last_run.started_at if job.last_run is not None else None
