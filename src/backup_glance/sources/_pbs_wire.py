"""PBS wire items -> model records: groups, snapshots, job status items, tasks, datastore usage.

Sits under `sources/` next to `pbs.py`, which does the requests. Pure functions over decoded JSON; the PBS field
names (kebab-case, snake_case `worker_type`) stop here. Field presence follows
proxmox/proxmox-backup `pbs-api-types/src/datastore.rs` and `jobs.rs`. No I/O, no verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import SourceProtocolError
from ..model import Datastore, GuestRef, Job, JobKind, JobRun, ScheduleRef, Snapshot, Target, Verification
from ._proxmox import as_int, epoch, task_outcome, upid_started_at

ErrorFactory = Callable[[str], SourceProtocolError]
_GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}


def require(item: Any, key: str, path: str, error: ErrorFactory) -> Any:
    if not isinstance(item, dict) or item.get(key) is None:
        raise error(f"unexpected payload on {path}: an item has no '{key}'")
    return item[key]


def target_key(source: str, backup_type: str, backup_id: str) -> str:
    """vm/ct groups with a numeric id are PVE guests ("guest:101" everywhere); anything else stays PBS's own."""
    if backup_type in _GUEST_TYPES and backup_id.isdigit():
        return f"guest:{int(backup_id)}"
    if backup_type == "host":
        return f"pbs-host:{source}/{backup_id}"
    return f"pbs-group:{source}/{backup_type}/{backup_id}"


def make_target(source: str, backup_type: str, backup_id: str, name: str) -> Target:
    key = target_key(source, backup_type, backup_id)
    if key.startswith("guest:"):
        guest = GuestRef(int(backup_id), _GUEST_TYPES[backup_type])
        return Target(key=key, source=source, name=name, kind="guest", guest=guest)
    return Target(key=key, source=source, name=name, kind="host" if backup_type == "host" else "group")


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the cheap group list says; a change in either field means the snapshot list changed."""

    last_backup: int
    count: int
    comment: str | None


def parse_group(item: Any, path: str, error: ErrorFactory) -> tuple[str, str, GroupState]:
    backup_type = str(require(item, "backup-type", path, error))
    backup_id = str(require(item, "backup-id", path, error))
    last_backup = as_int(require(item, "last-backup", path, error))
    count = as_int(require(item, "backup-count", path, error))
    if last_backup is None or count is None:
        raise error(f"unexpected payload on {path}: 'last-backup'/'backup-count' are not integers")
    comment = item.get("comment")
    return backup_type, backup_id, GroupState(last_backup, count, comment if isinstance(comment, str) else None)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_snapshot(
    item: Any, *, source: str, store: str, ns: str, path: str, error: ErrorFactory
) -> tuple[str, str, Snapshot, str | None]:
    """-> (backup-type, backup-id, Snapshot, comment)."""
    backup_type = str(require(item, "backup-type", path, error))
    backup_id = str(require(item, "backup-id", path, error))
    taken_at = epoch(require(item, "backup-time", path, error))
    if taken_at is None:
        raise error(f"unexpected payload on {path}: 'backup-time' is not an integer")
    size = as_int(item.get("size"))
    verification, verified_at = Verification.NONE, None
    raw = item.get("verification")
    if isinstance(raw, dict):  # absent if never verified (§3.6)
        verification = Verification.OK if raw.get("state") == "ok" else Verification.FAILED
        verified_at = upid_started_at(str(raw.get("upid") or ""))
    location = f"{store}/{ns}" if ns else store
    snapshot = Snapshot(
        target_key=target_key(source, backup_type, backup_id),
        source=source,
        snapshot_id=f"{store}/{ns}/{backup_type}/{backup_id}/{_stamp(taken_at)}",
        taken_at=taken_at,
        finished=size is not None,  # no `size` = in progress or unreadable manifest
        size_bytes=size,
        verification=verification,
        verified_at=verified_at,
        location=location,
    )
    comment = item.get("comment")
    return backup_type, backup_id, snapshot, comment if isinstance(comment, str) else None


def last_run(source: str, job_key: str, item: dict[str, Any], upid_field: str = "last-run-upid") -> JobRun | None:
    upid = item.get(upid_field)
    if not isinstance(upid, str):
        return None
    started = upid_started_at(upid) or epoch(item.get("last-run-endtime")) or datetime.fromtimestamp(0, UTC)
    ended = epoch(item.get("last-run-endtime"))
    state = item.get("last-run-state")
    outcome, message = task_outcome(state if isinstance(state, str) else None, running=ended is None)
    return JobRun(job_key, source, upid, started, ended, outcome, message)


def parse_job(source: str, kind: JobKind, item: Any, timezone: str, path: str, error: ErrorFactory) -> Job:
    job_id = str(require(item, "store" if kind is JobKind.GC else "id", path, error))
    key = f"{source}/{kind.value}/{job_id}"
    schedule = item.get("schedule")
    comment = item.get("comment") if isinstance(item.get("comment"), str) else ""
    name = {JobKind.GC: f"garbage collection {job_id}"}.get(kind, job_id)
    return Job(
        key=key,
        source=source,
        kind=kind,
        job_id=job_id,
        name=name,
        schedule=ScheduleRef(schedule, "proxmox", timezone) if isinstance(schedule, str) else None,
        enabled=not bool(item.get("disable", False)),  # prune only; omitted when false (§3.8)
        next_run_at=epoch(item.get("next-run")),
        # GC status carries its last task as `upid` (from the GC status), the other jobs as `last-run-upid`.
        last_run=last_run(source, key, item, "upid" if kind is JobKind.GC else "last-run-upid"),
        store=str(item.get("store")) if item.get("store") is not None else None,
        namespace=str(item["ns"]) if isinstance(item.get("ns"), str) else None,
        max_depth=as_int(item.get("max-depth")),
        comment=str(comment),
    )


def task_job_key(source: str, task: dict[str, Any], prune_jobs: dict[tuple[str, str | None], str]) -> str | None:
    """The job a task belongs to, from its worker type and id (§3.7); None for tasks we do not report."""
    worker_type, worker_id = str(task.get("worker_type")), str(task.get("worker_id") or "")
    store = worker_id.split(":", 1)[0]
    if worker_type == "backup":
        return f"{source}/backup/{store}"  # written by a PVE vzdump job or a client; not a PBS job
    if worker_type == "verificationjob":
        return f"{source}/verify/{worker_id.split(':', 1)[-1]}"
    if worker_type == "garbage_collection":
        return f"{source}/gc/{worker_id}"
    if worker_type == "syncjob":
        return f"{source}/sync/{worker_id.rsplit(':', 1)[-1]}"
    if worker_type == "prunejob":
        # The worker id names the store (and namespace), not the job: look the job up by both.
        ns = worker_id.split(":", 1)[1] if ":" in worker_id else None
        job_id = prune_jobs.get((store, ns)) or prune_jobs.get((store, None)) or worker_id
        return f"{source}/prune/{job_id}"
    return None


def parse_task(source: str, task: Any, job_key: str, path: str, error: ErrorFactory) -> JobRun:
    upid = str(require(task, "upid", path, error))
    started = epoch(require(task, "starttime", path, error))
    if started is None:
        raise error(f"unexpected payload on {path}: 'starttime' is not an integer")
    ended = epoch(task.get("endtime"))  # absent while running
    status = task.get("status")
    outcome, message = task_outcome(status if isinstance(status, str) else None, running=ended is None)
    target = None
    if task.get("worker_type") == "backup":
        _store, _, group = str(task.get("worker_id") or "").partition(":")
        backup_type, _, backup_id = group.partition("/")
        target = target_key(source, backup_type, backup_id) if backup_id else None
    return JobRun(job_key, source, upid, started, ended, outcome, message, target_key=target)


def parse_datastore(source: str, item: dict[str, Any], maintenance: str | None) -> Datastore:
    name = str(item.get("store"))
    full = as_int(item.get("estimated-full-date"))
    raw_gc = item.get("gc-status")
    gc: dict[str, Any] = raw_gc if isinstance(raw_gc, dict) else {}
    index_bytes, disk_bytes = as_int(gc.get("index-data-bytes")), as_int(gc.get("disk-bytes"))
    error = item.get("error")
    return Datastore(
        key=f"{source}/{name}",
        source=source,
        name=name,
        total_bytes=as_int(item.get("total")),
        used_bytes=as_int(item.get("used")),
        avail_bytes=as_int(item.get("avail")),
        estimated_full_at=epoch(full) if full else None,
        usage_is_flat=full == 0,  # 0 = "infinite": usage is not growing (§3.3)
        dedup_factor=round(index_bytes / disk_bytes, 2) if index_bytes and disk_bytes else None,
        error=str(error) if error else None,
        maintenance=maintenance,
    )


__all__ = [
    "GroupState",
    "last_run",
    "make_target",
    "parse_datastore",
    "parse_group",
    "parse_job",
    "parse_snapshot",
    "parse_task",
    "require",
    "target_key",
    "task_job_key",
]
