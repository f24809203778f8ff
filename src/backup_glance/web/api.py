"""`GET /api/v1/status`: the board as JSON, in one declared shape (the TypedDicts below).

Pure: `build_status(board, zone)` turns a Board into a `StatusDict`; `encode_status` serialises it once, and the
app caches the bytes per board version. Times are ISO-8601 with the offset of the display zone.

Sample (abridged):
    {"generated_at": "2026-07-01T14:00:00+02:00", "overall": "critical",
     "counts": {"status": {"ok": 3, "late": 1, ...}, "severity": {"ok": 3, "critical": 1, ...}},
     "services": [{"id": "vault", "status": "late", "severity": "critical", "reasons": ["..."], ...}], ...}
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

from ..model import Board, DatastoreView, JobView, ScheduleInfo, Severity, SourceState, Status, Verdict
from .fmt import iso


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


class StatusDict(TypedDict):
    generated_at: str
    overall: str
    counts: CountsDict
    services: list[ServiceDict]
    jobs: list[JobDict]
    datastores: list[DatastoreDict]
    sources: list[SourceDict]


def _isos(at: datetime, zone: ZoneInfo) -> str:
    # Same as fmt.iso for a value that is never None; keeps the TypedDicts free of Optional where not needed.
    return at.astimezone(zone).isoformat(timespec="seconds")


def _schedule(info: ScheduleInfo | None) -> ScheduleDict | None:
    if info is None:
        return None
    return {"expression": info.expression, "dialect": info.dialect, "timezone": info.timezone, "job": info.job_key}


def service_dict(v: Verdict, zone: ZoneInfo) -> ServiceDict:
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
        "as_of": _isos(v.as_of, zone),
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
    }


def build_status(board: Board, zone: ZoneInfo) -> StatusDict:
    status_counts = {s.value: 0 for s in Status}
    severity_counts = {s.value: 0 for s in Severity}
    for v in board.verdicts:
        status_counts[v.status.value] += 1
        severity_counts[v.severity.value] += 1
    return {
        "generated_at": _isos(board.generated_at, zone),
        "overall": board.overall.value,
        "counts": {"status": status_counts, "severity": severity_counts},
        "services": [service_dict(v, zone) for v in board.verdicts],
        "jobs": [job_dict(j, zone) for j in board.jobs],
        "datastores": [datastore_dict(d) for d in board.datastores],
        "sources": [source_dict(s, zone) for s in board.sources],
    }


def encode_status(board: Board, zone: ZoneInfo) -> bytes:
    """Serialise once per board version; compact separators keep 500 services small."""
    return json.dumps(build_status(board, zone), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


__all__ = ["StatusDict", "build_status", "encode_status"]
