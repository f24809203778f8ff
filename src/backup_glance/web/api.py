"""`GET /api/v1/status`: the board as JSON, in one declared shape (the TypedDicts below).

Pure: `build_status(board, zone)` turns a Board into a `StatusDict`; `encode_status` serialises it once, and the
app caches the bytes per board version. Times are ISO-8601 with the offset of the display zone.

Sample (abridged):
    {"generated_at": "2026-07-01T14:00:00+02:00", "judging_failed_at": null, "overall": "critical",
     "counts": {"status": {"ok": 3, "late": 1, ...}, "severity": {"ok": 3, "critical": 1, ...}},
     "services": [{"id": "vault", "status": "late", "severity": "critical", "reasons": ["..."], ...,
                   "risks": [{"kind": "offsite_lag", "detail": "..."}],
                   "protection": {"copies": 2, "offsite_copies": 1, "offsite_lag_s": 10800.0, ...}}], ...}
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

from ..model import Board, DatastoreView, JobView, Protection, ScheduleInfo, Severity, SourceState, Status, Verdict
from .fmt import iso
from .safe import ERROR_TEXT, each


class CountsDict(TypedDict):
    status: dict[str, int]
    severity: dict[str, int]


class GuestDict(TypedDict):
    vmid: int
    type: str
    node: str | None


class ScheduleDict(TypedDict):
    expression: str
    dialect: str
    timezone: str
    job: str


class SilenceDict(TypedDict):
    reason: str
    until: str | None


class RiskDict(TypedDict):
    kind: str  # copies | offsite | offsite_lag | unencrypted | verification_age | restore_test | size_anomaly |
    # duration_anomaly | retention
    detail: str


class CopyDict(TypedDict):
    location: str
    source: str
    offsite: bool
    newest_at: str | None  # null: the far side could not be asked
    snapshots: int | None
    encrypted: bool | None
    current: bool  # newest backup inside the lookback: it counts


class ProtectionDict(TypedDict):
    copies: int  # locations holding a backup from inside the lookback
    offsite_copies: int
    offsite_lag_s: float | None  # newest copy minus newest offsite copy; null: no offsite copy
    encrypted: bool | None  # every counted copy encrypted; null: not known
    protected_snapshots: int
    verified_at: str | None
    verification_stale_at: str | None
    last_restore_test_at: str | None
    locations: list[CopyDict]
    unknown: list[str]  # shortfalls that could not be judged, and why


class ServiceDict(TypedDict):
    id: str
    name: str
    status: str
    severity: str
    reasons: list[str]
    kind: str
    guest: GuestDict | None
    sources: list[str]
    last_success_at: str | None
    last_attempt_at: str | None
    last_outcome: str | None
    snapshot_count: int
    newest_size_bytes: int | None
    verification: str | None
    verified_at: str | None
    schedule: ScheduleDict | None
    next_run_at: str | None
    previous_due_at: str | None
    missed_slots: list[str]
    silence: SilenceDict | None
    size_trend: list[tuple[str, int]]  # [taken_at, bytes] of the finished snapshots in the lookback
    as_of: str
    risks: list[RiskDict]  # the protection policy's shortfalls, whatever status won
    protection: ProtectionDict | None


class JobScheduleDict(TypedDict):
    expression: str
    dialect: str
    timezone: str
    interval_s: float | None


class LastRunDict(TypedDict):
    started_at: str
    ended_at: str | None
    outcome: str
    message: str


class JobDict(TypedDict):
    key: str
    kind: str
    name: str
    source: str
    enabled: bool
    schedule: JobScheduleDict | None
    next_run_at: str | None
    last_run: LastRunDict | None
    typical_duration_s: float | None
    store: str | None
    service_ids: list[str]


class DatastoreDict(TypedDict):
    name: str
    source: str
    severity: str
    reasons: list[str]
    used_bytes: int | None
    total_bytes: int | None
    used_fraction: float | None
    full_in_days: float | None
    dedup_factor: float | None
    error: str | None


class SourceDict(TypedDict):
    name: str
    type: str
    healthy: bool
    last_success_at: str | None
    last_attempt_at: str | None
    error: str | None
    problems: list[str]  # the parts it answered without (a datastore, a namespace) and the records left out


class StatusDict(TypedDict):
    generated_at: str
    # Since when judging again has failed (a bug; the verdicts are those of generated_at); null: judging works.
    judging_failed_at: str | None
    overall: str
    counts: CountsDict
    services: list[ServiceDict]
    jobs: list[JobDict]
    datastores: list[DatastoreDict]
    sources: list[SourceDict]
    notices: list[str]  # trouble of backup-glance itself, e.g. its history cannot be written


def _isos(at: datetime, zone: ZoneInfo) -> str:
    # Same as fmt.iso for a value that is never None; keeps the TypedDicts free of Optional where not needed.
    return at.astimezone(zone).isoformat(timespec="seconds")


def _schedule(info: ScheduleInfo | None) -> ScheduleDict | None:
    if info is None:
        return None
    return {"expression": info.expression, "dialect": info.dialect, "timezone": info.timezone, "job": info.job_key}


def _protection(p: Protection | None, zone: ZoneInfo) -> ProtectionDict | None:
    if p is None:
        return None
    return {
        "copies": p.copy_count,
        "offsite_copies": p.offsite_count,
        "offsite_lag_s": p.offsite_lag.total_seconds() if p.offsite_lag is not None else None,
        "encrypted": p.encrypted,
        "protected_snapshots": p.protected_snapshots,
        "verified_at": iso(p.verified_at, zone),
        "verification_stale_at": iso(p.verification_stale_at, zone),
        "last_restore_test_at": iso(p.last_restore_test_at, zone),
        "locations": [
            {
                "location": c.location,
                "source": c.source,
                "offsite": c.offsite,
                "newest_at": iso(c.newest_at, zone),
                "snapshots": c.snapshots,
                "encrypted": c.encrypted,
                "current": c.current,
            }
            for c in p.copies
        ],
        "unknown": list(p.unknown),
    }


def service_dict(v: Verdict, zone: ZoneInfo, as_of: datetime) -> ServiceDict:
    """One service's entry; `as_of` is when it was judged (the board's time)."""
    guest: GuestDict | None = None
    if v.guest is not None:
        guest = {"vmid": v.guest.vmid, "type": v.guest.type, "node": v.guest.node}
    silence: SilenceDict | None = None
    if v.silence is not None:
        silence = {"reason": v.silence.reason, "until": iso(v.silence.until, zone)}
    return {
        "id": v.service_id,
        "name": v.name,
        "status": v.status.value,
        "severity": v.severity.value,
        "reasons": list(v.reasons),
        "kind": v.kind,
        "guest": guest,
        "sources": list(v.sources),
        "last_success_at": iso(v.last_success_at, zone),
        "last_attempt_at": iso(v.last_attempt_at, zone),
        "last_outcome": v.last_outcome.value if v.last_outcome is not None else None,
        "snapshot_count": v.snapshot_count,
        "newest_size_bytes": v.newest_size_bytes,
        "verification": v.verification.value if v.verification is not None else None,
        "verified_at": iso(v.verified_at, zone),
        "schedule": _schedule(v.schedule),
        "next_run_at": iso(v.next_run_at, zone),
        "previous_due_at": iso(v.previous_due_at, zone),
        "missed_slots": [_isos(at, zone) for at in v.missed_slots],
        "silence": silence,
        "size_trend": [(_isos(at, zone), size) for at, size in v.size_trend],
        "as_of": _isos(as_of, zone),
        "risks": [{"kind": r.kind.value, "detail": r.detail} for r in v.protection.risks] if v.protection else [],
        "protection": _protection(v.protection, zone),
    }


def job_dict(view: JobView, zone: ZoneInfo) -> JobDict:
    job = view.job
    schedule: JobScheduleDict | None = None
    if job.schedule is not None:
        interval = job.schedule.interval
        schedule = {
            "expression": job.schedule.expression,
            "dialect": job.schedule.dialect,
            "timezone": job.schedule.timezone,
            "interval_s": interval.total_seconds() if interval is not None else None,
        }
    last: LastRunDict | None = None
    if view.last_run is not None:
        run = view.last_run
        last = {
            "started_at": _isos(run.started_at, zone),
            "ended_at": iso(run.ended_at, zone),
            "outcome": run.outcome.value,
            "message": run.message,
        }
    typical = view.typical_duration
    return {
        "key": job.key,
        "kind": job.kind.value,
        "name": job.name,
        "source": job.source,
        "enabled": job.enabled,
        "schedule": schedule,
        "next_run_at": iso(view.next_run_at, zone),
        "last_run": last,
        "typical_duration_s": typical.total_seconds() if typical is not None else None,
        "store": job.store,
        "service_ids": list(view.service_ids),
    }


def datastore_dict(view: DatastoreView) -> DatastoreDict:
    ds = view.datastore
    return {
        "name": ds.name,
        "source": ds.source,
        "severity": view.severity.value,
        "reasons": list(view.reasons),
        "used_bytes": ds.used_bytes,
        "total_bytes": ds.total_bytes,
        "used_fraction": round(view.used_fraction, 4) if view.used_fraction is not None else None,
        "full_in_days": view.full_in_days,
        "dedup_factor": ds.dedup_factor,
        "error": ds.error,
    }


def source_dict(state: SourceState, zone: ZoneInfo) -> SourceDict:
    return {
        "name": state.name,
        "type": state.kind,
        "healthy": state.error is None and state.last_success_at is not None,
        "last_success_at": iso(state.last_success_at, zone),
        "last_attempt_at": iso(state.last_attempt_at, zone),
        "error": state.error,
        "problems": list(state.observation.problems) if state.observation is not None else [],
    }


def build_status(board: Board, zone: ZoneInfo) -> StatusDict:
    status_counts = {s.value: 0 for s in Status}
    severity_counts = {s.value: 0 for s in Severity}
    for v in board.verdicts:
        status_counts[v.status.value] += 1
        severity_counts[v.severity.value] += 1
    return {
        "generated_at": _isos(board.generated_at, zone),
        "judging_failed_at": iso(board.judging_failed_at, zone),
        "overall": board.overall.value,
        "counts": {"status": status_counts, "severity": severity_counts},
        "services": each(
            board.verdicts,
            lambda v: service_dict(v, zone, board.generated_at),
            fallback=lambda v: _error_service(v, board, zone),
            what="service",
            key=lambda v: v.service_id,
        ),
        "jobs": each(board.jobs, lambda j: job_dict(j, zone), fallback=_left_out, what="job", key=lambda j: j.job.key),
        "datastores": each(board.datastores, datastore_dict, fallback=_left_out, what="datastore", key=_store_key),
        "sources": [source_dict(s, zone) for s in board.sources],
        "notices": list(board.notices),
    }


def _left_out(_: object) -> None:
    return None


def _store_key(view: DatastoreView) -> str:
    return view.datastore.key


def _error_service(v: Verdict, board: Board, zone: ZoneInfo) -> ServiceDict:
    """A service whose entry could not be built: present, as unknown, with the reason."""
    blank = Verdict(
        service_id=v.service_id,
        name=v.name,
        status=Status.UNKNOWN,
        severity=Severity.UNKNOWN,
        reasons=(ERROR_TEXT,),
    )
    return service_dict(blank, zone, board.generated_at)


def encode_status(board: Board, zone: ZoneInfo) -> bytes:
    """Serialise once per board version and poll; compact separators keep 500 services small."""
    text = json.dumps(build_status(board, zone), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "replace")  # text is cleaned at the edge; never fail the whole document on it


__all__ = ["ProtectionDict", "RiskDict", "StatusDict", "build_status", "encode_status"]
