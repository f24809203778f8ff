"""How well a service is protected, beyond "last night's backup ran": copies, offsite, encryption, verification
age, restore tests, anomalies, retention. Pure; `services.judge` turns every risk into an `at_risk` finding.

- **Copies** are the locations holding a finished snapshot of any of the service's targets that still exists at
  the source: a PBS datastore (namespace), a Backrest/restic repository, a PVE storage, a Databasement volume, and
  the far side of a PBS sync job (a remote's group list). A copy counts when its newest snapshot lies inside the
  lookback. One PBS seen both as a remote and as a source of its own counts once (same host, port, store, ns).
- **Offsite** is what the sources say (`offsite:`, remote URIs). The **offsite lag** is how far the newest offsite
  copy is behind the newest copy. A copy whose freshness could not be asked (a remote that did not answer, a
  token without Remote.Audit) makes a shortfall *unknown*, never a risk.
- **Encryption** of a copy is that of its newest snapshot (PBS crypt-mode; restic always).
- **Verification age**: a verify job with `outdated-after` redoes older verifications; once it has had its chance
  (its next slot after the verification became outdated, plus grace and its usual duration) and the newest
  snapshot's verification is still that old, it is stale.
- **Restore test**: the newest successful run of a restore-test job covering the service (Databasement scheduled
  restores, Backrest restore operations).
- **Anomalies** (on by default): the newest finished snapshot far below the median size of the earlier ones at
  the same location, or the newest run far longer than the earlier runs of its job; both need `min_history`
  earlier ones and must also leave the usual spread (3 scaled median absolute deviations). Growth is never one.
- **Retention**: where a prune policy is known (PBS prune job, PVE `prune-backups`), the snapshots it would keep
  had the due runs that failed or were missed made theirs, against what it keeps of what exists. PBS's rules
  (`pbs-datastore/src/prune.rs`): each keep-* option walks the snapshots newest first, counts only periods not
  already kept, and days without a backup do not count; protected snapshots are kept outside the counts.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..model import (
    AnomalyPolicy,
    Copy,
    Job,
    JobKind,
    Protection,
    ProtectionPolicy,
    RemoteCopy,
    Risk,
    RiskKind,
    ServiceSpec,
    Snapshot,
    Verdict,
    Verification,
)
from ._common import SUCCESS, job_duration, later, load_schedule
from ._evidence import Evidence
from ._facts import Facts, unanswered_sources
from ._held import Snapshots, by_place, earlier_sizes
from ._held import protected as protected_count
from ._held import sources as held_sources
from ._text import size, span, when

SPREAD = 3 * 1.4826  # scaled median absolute deviations: "outside the usual spread"
ANOMALY_WINDOW = 30  # earlier snapshots or runs compared with
DURATION_FLOOR = timedelta(minutes=5)  # a spike must also be this much longer: seconds-long jobs vary a lot
KEEP_FORMAT = {
    "keep-hourly": "%Y/%m/%d/%H",
    "keep-daily": "%Y/%m/%d",
    "keep-weekly": "%G/%V",  # ISO week, as PBS
    "keep-monthly": "%Y/%m",
    "keep-yearly": "%Y",
}


def assess(
    spec: ServiceSpec,
    facts: Facts,
    evidence: Evidence,
    *,
    now: datetime,
    tz: str,
    missed: Sequence[datetime],
    anomalies: AnomalyPolicy,
    durations: dict[str, timedelta],
) -> Protection:
    """The service's protection facts and its risks (in a fixed order: copies, offsite, lag, encryption,
    verification, restore test, size, duration, retention)."""
    policy = spec.protection or ProtectionPolicy()
    live = evidence.live(facts.keys, facts.snapshots)
    copies = _copies(spec, facts, evidence, live, now)
    known = [c for c in copies if c.current and c.known]
    newest_all = max((c.newest_at for c in known if c.newest_at is not None), default=None)
    offsite_newest = max((c.newest_at for c in known if c.offsite and c.newest_at is not None), default=None)
    lag = newest_all - offsite_newest if newest_all is not None and offsite_newest is not None else None
    risks: list[Risk] = []
    unknown: list[str] = []
    # A source that never answered may hold copies and restore tests of the service: none is missing for sure.
    waiting = next(
        (f"source '{name}' has not answered yet" for name in unanswered_sources(spec, facts, evidence)), None
    )
    doubt = waiting or _doubt(copies, live, evidence)
    _check_copies(policy, copies, spec.lookback, doubt, risks, unknown)
    _check_lag(policy, copies, lag, newest_all, now, tz, doubt, risks, unknown)
    if policy.encrypted_offsite:
        for copy in known:
            if copy.offsite and copy.encrypted is False:
                risks.append(
                    Risk(
                        RiskKind.UNENCRYPTED,
                        f"offsite copy {_label(copy)} is not encrypted (newest backup there {_when(copy, tz, now)})",
                    )
                )
    newest = facts.snapshots[-1] if facts.snapshots else None
    verified_at, stale_at = _verification(newest, evidence, spec, durations)
    if stale_at is not None and stale_at <= now and verified_at is not None and newest is not None:
        risks.append(
            Risk(
                RiskKind.VERIFICATION_AGE,
                f"newest snapshot ({when(newest.taken_at, tz, now)}) was last verified {when(verified_at, tz, now)}: "
                "older than its verify job's outdated-after, and the job has not verified it again",
            )
        )
    restored = last_restore_test(facts.keys, evidence, spec.source)
    if policy.restore_test is not None:
        shortfall = None
        if restored is None:
            shortfall = "no successful restore test found"
        elif now - restored > policy.restore_test:
            shortfall = (
                f"last successful restore test {when(restored, tz, now)}, more than {span(policy.restore_test)} ago"
            )
        if shortfall is not None and waiting is not None:
            unknown.append(f"{RiskKind.RESTORE_TEST.value}: {shortfall}, but {waiting}")
        elif shortfall is not None:
            risks.append(Risk(RiskKind.RESTORE_TEST, shortfall))
    if anomalies.enabled:
        risks += _size_anomaly(facts.snapshots, anomalies, now, tz)
        risks += _duration_anomaly(facts, anomalies, now, tz)
    if missed:
        risks += _retention(spec, facts, evidence, live, missed)
    encrypted = None
    if known and all(c.encrypted is True for c in known):
        encrypted = True
    elif any(c.encrypted is False for c in known):
        encrypted = False
    return Protection(
        copies=copies,
        offsite_lag=lag,
        encrypted=encrypted,
        protected_snapshots=protected_count(live),
        verified_at=verified_at,
        verification_stale_at=stale_at,
        last_restore_test_at=restored,
        risks=tuple(risks),
        unknown=tuple(unknown),
    )


def moments(spec: ServiceSpec, verdict: Verdict) -> Iterable[datetime]:
    """When this service's protection verdict can change with time alone (for `deadlines.next_change`)."""
    protection = verdict.protection
    if protection is None:
        return
    if protection.verification_stale_at is not None:
        yield protection.verification_stale_at
    policy = spec.protection
    if policy is None:
        return
    if policy.restore_test is not None and protection.last_restore_test_at is not None:
        yield protection.last_restore_test_at + policy.restore_test
    if policy.copies or policy.offsite or policy.offsite_lag is not None or policy.encrypted_offsite:
        for copy in protection.copies:  # a copy stops counting once its newest backup leaves the lookback
            if copy.newest_at is not None:
                yield copy.newest_at + spec.lookback


def last_restore_test(keys: Iterable[str], evidence: Evidence, source: str | None = None) -> datetime | None:
    """When the newest successful restore test of any of these targets ended (or started, if no end is known)."""
    best: datetime | None = None
    seen: set[str] = set()
    for key in keys:
        for job in evidence.restore_jobs_by_target.get(key, ()):
            if job.key in seen or (source is not None and job.source != source):
                continue
            seen.add(job.key)
            runs = [*evidence.runs_by_job.get(job.key, ()), *([job.last_run] if job.last_run else [])]
            for run in runs:
                if run.outcome in SUCCESS:
                    at = run.ended_at or run.started_at
                    best = at if best is None or at > best else best
    return best


# --- copies ------------------------------------------------------------------------------------------------------


def _copies(spec: ServiceSpec, facts: Facts, evidence: Evidence, live: Snapshots, now: datetime) -> tuple[Copy, ...]:
    since = now - spec.lookback
    copies: dict[str, Copy] = {}
    offsite_of: dict[str, frozenset[str]] = {}
    for source, place, count, snap in by_place(live):  # in the order first seen
        observation = evidence.observation(source)
        if source not in offsite_of:
            offsite_of[source] = frozenset(observation.offsite_locations if observation else ())
        endpoint = observation.endpoint if observation else ""
        identity = f"{endpoint}/{place}" if endpoint else f"{source}:{place}"
        copies[identity] = Copy(
            location=place,
            source=source,
            offsite=place in offsite_of[source],
            newest_at=snap.taken_at,
            snapshots=count,
            encrypted=snap.encrypted,
            current=snap.taken_at >= since,
        )
    remote: dict[str, RemoteCopy] = {}
    for key in facts.keys:
        for rc in evidence.remote_copies.get(key, ()):
            if spec.source is not None and rc.source != spec.source:
                continue
            identity = rc.endpoint or f"{rc.source}->{rc.location}"
            if identity in copies:
                continue  # the same datastore is a source of its own: its direct view wins (encryption, size)
            old = remote.get(identity)
            if old is None or (rc.newest_at is not None and (old.newest_at is None or rc.newest_at > old.newest_at)):
                remote[identity] = rc
    for identity, rc in remote.items():
        copies[identity] = Copy(
            location=rc.location,
            source=rc.source,
            offsite=rc.offsite,
            newest_at=rc.newest_at,
            snapshots=rc.count,
            encrypted=rc.encrypted,
            current=rc.newest_at is None or rc.newest_at >= since,
        )
    return tuple(sorted(copies.values(), key=lambda c: (c.newest_at is None, -(c.newest_at or now).timestamp())))


def _doubt(copies: tuple[Copy, ...], live: Snapshots, evidence: Evidence) -> str | None:
    """Why copies may exist that could not be counted: a copy whose freshness is unknown, or a PBS holding the
    service's backups that cannot see its remotes (no Remote.Audit)."""
    unknown = [c for c in copies if not c.known]
    if unknown:
        return f"{_label(unknown[0])} could not be asked" + (f" (and {len(unknown) - 1} more)" if unknown[1:] else "")
    if not evidence.blind_sources:
        return None
    for source in sorted(held_sources(live)):
        if source in evidence.blind_sources:
            return f"PBS '{source}' cannot see its remotes (its token needs Remote.Audit on /remote)"
    return None


def _check_copies(
    policy: ProtectionPolicy,
    copies: tuple[Copy, ...],
    lookback: timedelta,
    doubt: str | None,
    risks: list[Risk],
    unknown: list[str],
) -> None:
    counted = [c for c in copies if c.current and c.known]
    for kind, wanted, have, what in (
        (RiskKind.COPIES, policy.copies, counted, "cop"),
        (RiskKind.OFFSITE, policy.offsite, [c for c in counted if c.offsite], "offsite cop"),
    ):
        if wanted is None or len(have) >= wanted:
            continue
        names = f" ({', '.join(_label(c) for c in have)})" if have else ""
        detail = (
            f"{len(have)} {what}{'y' if len(have) == 1 else 'ies'} with a backup from the last {span(lookback)}"
            f"{names}; the policy asks for {wanted}"
        )
        if doubt:
            unknown.append(f"{kind.value}: {detail}, but {doubt}")
        else:
            risks.append(Risk(kind, detail))


def _check_lag(
    policy: ProtectionPolicy,
    copies: tuple[Copy, ...],
    lag: timedelta | None,
    newest_all: datetime | None,
    now: datetime,
    tz: str,
    doubt: str | None,
    risks: list[Risk],
    unknown: list[str],
) -> None:
    limit = policy.offsite_lag
    if limit is None or newest_all is None:
        return
    if lag is None:
        if policy.offsite is None:  # the offsite count, when asked, already says there is none
            detail = f"no offsite copy, so none within {span(limit)} of the newest backup"
            if doubt:
                unknown.append(f"offsite_lag: {detail}, but {doubt}")
            else:
                risks.append(Risk(RiskKind.OFFSITE_LAG, detail))
        return
    if lag <= limit:
        return
    offsite = max((c for c in copies if c.current and c.known and c.offsite), key=lambda c: c.newest_at or newest_all)
    detail = (
        f"newest offsite copy ({_label(offsite)}, {_when(offsite, tz, now)}) is {span(lag)} behind the newest backup "
        f"({when(newest_all, tz, now)}); the policy allows {span(limit)}"
    )
    if doubt and any(not c.known and c.offsite for c in copies):
        unknown.append(f"offsite_lag: {detail}, but {doubt}")
    else:
        risks.append(Risk(RiskKind.OFFSITE_LAG, detail))


def _label(copy: Copy) -> str:
    return copy.location if ":" in copy.location else f"{copy.source}:{copy.location}"


def _when(copy: Copy, tz: str, now: datetime) -> str:
    return when(copy.newest_at, tz, now) if copy.newest_at is not None else "unknown"


# --- verification ------------------------------------------------------------------------------------------------


def _verification(
    newest: Snapshot | None, evidence: Evidence, spec: ServiceSpec, durations: dict[str, timedelta]
) -> tuple[datetime | None, datetime | None]:
    """(when the newest snapshot was verified, when that verification counts as stale) — the latter only where a
    verify job reaching it has `outdated-after`: its first slot after the verification became outdated, plus
    grace and the job's usual duration (a job without a schedule: the moment it became outdated)."""
    if newest is None or newest.verification is not Verification.OK or newest.verified_at is None:
        return (newest.verified_at if newest else None), None
    stale: datetime | None = None
    for job in evidence.jobs:
        if job.kind is not JobKind.VERIFY or job.source != newest.source or job.outdated_after is None:
            continue
        if not job.enabled or not reaches(job, newest.location):
            continue
        outdated = newest.verified_at + job.outdated_after
        schedule = load_schedule(job.schedule) if job.schedule is not None else None
        if schedule is not None:
            slot = schedule.next_after(outdated)
            if slot is None:
                continue
            moment = later(slot, spec.grace + (job_duration(job, evidence, durations) or timedelta(0)))
        else:
            moment = outdated
        stale = moment if stale is None or moment < stale else stale
    return newest.verified_at, stale


def reaches(job: Job, location: str) -> bool:
    """Does a PBS job anchored at (store, namespace, max-depth) cover a snapshot at `location` ("store[/ns]")?"""
    store, _, namespace = location.partition("/")
    if job.store not in (None, "", store):
        return False
    top = job.namespace or ""
    if top and namespace != top and not namespace.startswith(top + "/"):
        return False
    depth = (namespace.count("/") + 1 if namespace else 0) - (top.count("/") + 1 if top else 0)
    return job.max_depth is None or depth <= job.max_depth


# --- anomalies ---------------------------------------------------------------------------------------------------


def _deviation(values: list[float], middle: float) -> float:
    """The median absolute deviation around `middle`: asked only once the median alone cannot rule a case out."""
    return statistics.median(abs(v - middle) for v in values)


def _size_anomaly(snapshots: Snapshots, policy: AnomalyPolicy, now: datetime, tz: str) -> list[Risk]:
    if not snapshots or snapshots[-1].size_bytes is None:
        return []
    newest = snapshots[-1]
    # The same location only: another one may hold other archives.
    earlier: list[float] = list(earlier_sizes(snapshots, newest, ANOMALY_WINDOW))
    if len(earlier) < policy.min_history:
        return []
    middle = statistics.median(earlier)
    current = float(newest.size_bytes or 0)
    if current >= policy.size_drop * middle or middle - current <= SPREAD * _deviation(earlier, middle):
        return []
    return [
        Risk(
            RiskKind.SIZE_ANOMALY,
            f"newest backup ({when(newest.taken_at, tz, now)}) is {size(current)}, usually {size(middle)} "
            f"(median of the {len(earlier)} before it)",
        )
    ]


def _duration_anomaly(facts: Facts, policy: AnomalyPolicy, now: datetime, tz: str) -> list[Risk]:
    done = [r for r in facts.runs if r.ended_at is not None and r.outcome in SUCCESS]
    if len(done) <= policy.min_history:
        return []
    newest = done[-1]  # runs are sorted by start
    earlier: list[float] = []
    for run in reversed(done[:-1]):  # the same job: another one backs up something else
        if run.job_key == newest.job_key and run.ended_at is not None:
            earlier.append((run.ended_at - run.started_at).total_seconds())
            if len(earlier) == ANOMALY_WINDOW:
                break
    if len(earlier) < policy.min_history:
        return []
    assert newest.ended_at is not None
    took = (newest.ended_at - newest.started_at).total_seconds()
    middle = statistics.median(earlier)
    if took <= policy.duration_rise * middle:
        return []
    if took - middle <= max(SPREAD * _deviation(earlier, middle), DURATION_FLOOR.total_seconds()):
        return []
    return [
        Risk(
            RiskKind.DURATION_ANOMALY,
            f"last backup ({when(newest.started_at, tz, now)}) took {span(timedelta(seconds=took))}, usually "
            f"{span(timedelta(seconds=round(middle)))} (median of the {len(earlier)} before it)",
        )
    ]


# --- retention ---------------------------------------------------------------------------------------------------


def kept(snapshots: Iterable[tuple[datetime, bool]], keep: Sequence[tuple[str, int]], zone: ZoneInfo) -> int:
    """How many of (taken_at, protected) snapshots a keep-* policy keeps, by PBS's rules (protected ones too).

    >>> from datetime import UTC
    >>> days = [(datetime(2026, 1, d, 4, tzinfo=UTC), False) for d in (1, 2, 3, 5, 9)]
    >>> kept(days, [("keep-last", 1), ("keep-daily", 2)], ZoneInfo("UTC"))
    3
    """
    ordered = sorted(snapshots, key=lambda s: s[0], reverse=True)
    marks: dict[int, bool] = {}  # index -> kept
    for index, (_at, protected) in enumerate(ordered):
        if protected:
            marks[index] = True
    for option, count in keep:

        def period(at: datetime, option: str = option) -> str:
            if option == "keep-last":
                return at.isoformat()
            return at.astimezone(zone).strftime(KEEP_FORMAT[option])

        already = {period(ordered[i][0]) for i, keep_it in marks.items() if keep_it and not ordered[i][1]}
        chosen: set[str] = set()
        for index, (at, _protected) in enumerate(ordered):
            if index in marks:
                continue
            selection = period(at)
            if selection in already:
                continue
            if selection in chosen:
                marks[index] = False
                continue
            if len(chosen) >= count:
                break
            chosen.add(selection)
            marks[index] = True
    return sum(1 for keep_it in marks.values() if keep_it)


def _retention(
    spec: ServiceSpec, facts: Facts, evidence: Evidence, live: Snapshots, missed: Sequence[datetime]
) -> list[Risk]:
    risks = []
    by_place: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in live:
        by_place.setdefault((snap.source, snap.location), []).append(snap)
    for (source, location), snaps in by_place.items():
        policy = _keep_for(source, location, facts, evidence)
        if policy is None:
            continue
        observation = evidence.observation(source)
        zone = ZoneInfo(observation.timezone if observation else "UTC")
        actual = [(s.taken_at, s.protected) for s in snaps]
        have = kept(actual, policy.keep, zone)
        could = kept([*actual, *((at, False) for at in missed)], policy.keep, zone)
        if could > have:
            rules = ", ".join(f"{name} {count}" for name, count in policy.keep)
            risks.append(
                Risk(
                    RiskKind.RETENTION,
                    f"{rules} ({policy.name}) keeps {have} snapshots at {source}:{location}; the {len(missed)} due "
                    f"run(s) that made none cost {could - have} of the {could} it would keep",
                )
            )
    return risks


def _keep_for(source: str, location: str, facts: Facts, evidence: Evidence) -> Job | None:
    """The prune policy for a location: a PBS prune job reaching it (the deepest anchored one), or the
    `prune-backups` of a PVE backup job of the service writing to that storage."""
    best: Job | None = None
    own = {job.key for job in facts.jobs}
    for job in evidence.prune_jobs:
        if job.source != source or not job.enabled:
            continue
        if job.kind is JobKind.PRUNE and reaches(job, location):
            if best is None or len(job.namespace or "") > len(best.namespace or ""):
                best = job
        elif job.kind is JobKind.BACKUP and job.store == location and job.key in own:
            best = best or job
    return best


__all__ = ["assess", "kept", "last_restore_test", "moments", "reaches"]
