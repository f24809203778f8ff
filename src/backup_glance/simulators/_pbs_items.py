"""Renderers of PBS wire items (group, snapshot, task, GC status, counts) for the PBS simulator.

Sits under `simulators/`, used by `pbs.py` only. Field presence (absent vs null) follows
PBS's API types (proxmox/proxmox-backup `pbs-api-types/src/datastore.rs`, `jobs.rs`); pure functions over lab
records, no HTTP.
"""

from __future__ import annotations

from typing import Any

from .proxmox_lab import PbsDatastore, PbsGroup, PbsSnapshot, PbsTask

FILES = {
    "ct": ("pct.conf.blob", "root.pxar.didx", "catalog.pcat1.didx"),
    "vm": ("qemu-server.conf.blob", "drive-scsi0.img.fidx"),
    "host": ("root.pxar.didx", "catalog.pcat1.didx"),
}


def gc_status(store: PbsDatastore) -> dict[str, Any]:
    gc = store.gc
    return {
        "upid": gc.upid,  # null if GC never ran
        "index-file-count": gc.index_file_count,
        "index-data-bytes": gc.index_data_bytes,
        "disk-bytes": gc.disk_bytes,
        "disk-chunks": gc.disk_chunks,
        "removed-bytes": gc.removed_bytes,
        "removed-chunks": gc.removed_chunks,
        "pending-bytes": 0,
        "pending-chunks": 0,
        "removed-bad": 0,
        "still-bad": 0,
    }


def counts(store: PbsDatastore) -> dict[str, Any]:
    counts: dict[str, Any] = {"ct": None, "host": None, "vm": None, "other": None}
    for groups in store.namespaces.values():
        for group in groups.values():
            if not group.snapshots:
                continue
            entry = counts.get(group.backup_type) or {"groups": 0, "snapshots": 0}
            entry["groups"] += 1
            entry["snapshots"] += len(group.snapshots)
            counts[group.backup_type] = entry
    return counts


def group_item(group: PbsGroup) -> dict[str, Any]:
    last = max(group.snapshots, key=lambda s: s.backup_time)
    item: dict[str, Any] = {
        "backup-type": group.backup_type,
        "backup-id": group.backup_id,
        "last-backup": last.backup_time,
        "backup-count": len(group.snapshots),
        "files": [*FILES[group.backup_type], "index.json.blob", "client.log.blob"],
        "owner": group.owner,
    }
    if group.comment is not None:
        item["comment"] = group.comment
    return item


def snapshot_item(group: PbsGroup, snap: PbsSnapshot) -> dict[str, Any]:
    names = FILES[group.backup_type]
    item: dict[str, Any] = {
        "backup-type": group.backup_type,
        "backup-id": group.backup_id,
        "backup-time": snap.backup_time,
    }
    if snap.size is None:
        # Manifest unreadable / backup in progress: names only, no size, verification or comment (§3.6).
        item["files"] = [{"filename": name} for name in (*names, "index.json.blob")]
        item |= {"protected": snap.protected, "owner": snap.owner}
        return item
    # A test may make `size` hostile ("big", 1.5): it goes on the wire as it is, its archives then without sizes.
    sizes = _file_sizes(group.backup_type, snap.size) if type(snap.size) is int else [0] * len(names)
    mode = snap.crypt_mode
    files = [{"filename": n, "crypt-mode": mode, "size": s} for n, s in zip(names, sizes, strict=True)]
    # The manifest is never encrypted: signed when the archives are encrypted or signed (reference §6.6).
    manifest = "none" if mode == "none" else "sign-only"
    files += [{"filename": "index.json.blob", "crypt-mode": manifest, "size": 498}, {"filename": "client.log.blob"}]
    item |= {"files": files, "size": snap.size}
    if snap.verification is not None:
        item["verification"] = {"state": snap.verification, "upid": snap.verify_upid}
    item["protected"] = snap.protected
    if snap.comment is not None:
        item["comment"] = snap.comment
    item["owner"] = snap.owner
    if mode != "none":  # the key's fingerprint: present for signed-only snapshots too, so no proof of encryption
        item["fingerprint"] = FINGERPRINT
    return item


FINGERPRINT = "a1:b2:c3:d4:e5:f6:07:18:29:3a:4b:5c:6d:7e:8f:90:01:12:23:34:45:56:67:78:89:9a:ab:bc:cd:de:ef:f0"


def _file_sizes(backup_type: str, total: int) -> list[int]:
    """Split a snapshot's `size` over its archives so that they add up, as the manifest's do."""
    rest = total - 498  # index.json.blob
    if backup_type == "vm":
        return [612, rest - 612]
    catalog = rest // 200
    if backup_type == "ct":
        return [612, rest - 612 - catalog, catalog]
    return [rest - catalog, catalog]


def task_store(task: PbsTask) -> str | None:
    if not task.worker_id:
        return None
    parts = task.worker_id.split(":")
    return parts[2] if task.worker_type == "syncjob" and len(parts) > 2 else parts[0]


def task_item(task: PbsTask) -> dict[str, Any]:
    item: dict[str, Any] = {
        "upid": task.upid,
        "node": "localhost",
        "pid": task.pid,
        "pstart": task.pstart,
        "starttime": task.starttime,
        "worker_type": task.worker_type,  # snake_case: TaskListItem has no rename_all (§1.2)
        "worker_id": task.worker_id,
        "user": task.user,
    }
    if task.endtime is not None:
        item["endtime"] = task.endtime
        item["status"] = task.status or "unknown"
    return item
