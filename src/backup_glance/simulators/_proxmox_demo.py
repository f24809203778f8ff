"""Builds THE demo homelab (`proxmox_lab.demo_lab`): one PVE node `pve`, one PBS datastore `main`, weeks of
history relative to `now`, computed from the jobs' real schedules in Europe/Madrid.

Sits under `simulators/`; pure construction of a `ProxmoxLab`, no HTTP. The trouble it contains on purpose:
104 postgres failed last night (task log error, no snapshot), 105 vaultwarden's newest verified snapshot failed
verification, 120 scratch is in no job, 121 old-wiki is only in the disabled job "legacy".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ..sources._proxmox import calendar_for
from .proxmox_lab import (
    PBS_NODE,
    PVE_STORAGE_TOKEN,
    GcStatus,
    Guest,
    PbsDatastore,
    PbsJob,
    PbsRemote,
    PbsSnapshot,
    ProxmoxLab,
    PveStorage,
    VzdumpFile,
    VzdumpJob,
    sync_snapshots,
)

ZONE = "Europe/Madrid"
STORE = "main"
GB = 1024**3
# vmid -> (name, size in bytes at the start of the history)
NIGHTLY = {101: ("vault", 1.1), 102: ("caddy", 0.6), 103: ("databasement", 2.3), 104: ("postgres", 6.8)}
NIGHTLY |= {105: ("vaultwarden", 0.9), 106: ("glance", 0.5)}
WEEKLY = {110: ("n8n", 3.1), 111: ("ntfy", 0.4), 112: ("grafana", 1.7), 113: ("jellyfin", 14.2)}
HISTORY = timedelta(weeks=10)  # longer than the keep policy reaches, so pruning has removed something
KEEP = {"keep-last": 3, "keep-daily": 14, "keep-weekly": 8}
THROUGHPUT = 21 * 1024**2  # bytes/s: sets how long each guest's backup takes
POSTGRES_ERROR = "zfs error: cannot create snapshot 'rpool/data/subvol-104-disk-0@vzdump': out of space"
VERIFY_JOB = "v-main-daily"


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    order: int
    kind: str  # "gc" | "backup" | "prune" | "verify"
    job: str = ""


def _slots(expression: str, start: datetime, end: datetime) -> Iterator[datetime]:
    calendar = calendar_for(expression, ZONE)
    assert calendar is not None, expression
    slot = calendar.next_after(start)
    while slot is not None and slot <= end:
        yield slot
        slot = calendar.next_after(slot)


def _size(base_gb: float, at: datetime, start: datetime) -> int:
    days = (at - start).total_seconds() / 86400
    return int(base_gb * GB * (1 + 0.0021 * days))  # data grows slowly, as real services do


def _local(at: datetime) -> str:
    return at.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")


def _base_lab() -> ProxmoxLab:
    lab = ProxmoxLab(pve_timezone=ZONE, pbs_timezone=ZONE)
    for vmid, (name, size) in (NIGHTLY | WEEKLY).items():
        lab.guests.append(Guest(vmid, "lxc", name, maxdisk=int(size * 4 * GB)))
    lab.guests.append(Guest(120, "lxc", "scratch"))
    lab.guests.append(Guest(121, "qemu", "old-wiki", status="stopped", maxdisk=32 * GB))
    lab.vzdump_jobs = [
        VzdumpJob("critical-nightly", "04:00", vmids=tuple(NIGHTLY), storage="pbs-main", comment="critical"),
        VzdumpJob("weekly", "mon 04:00", vmids=tuple(WEEKLY), storage="pbs-main"),
        VzdumpJob("legacy", "sun 01:00", enabled=False, vmids=(121,), storage="local", mode="stop"),
    ]
    lab.pve_storages = [
        PveStorage("local", "dir", content="iso,vztmpl,backup", total=100 * GB, used=41 * GB),
        PveStorage("pbs-main", "pbs", datastore=STORE, total=2048 * GB, used=0),
    ]
    lab.datastores[STORE] = PbsDatastore(STORE, gc_schedule="sat 03:00", comment="homelab backups")
    lab.pbs_jobs = [
        PbsJob("prune", "prune-main-daily", STORE, "05:00", options=dict(KEEP)),
        PbsJob("verify", VERIFY_JOB, STORE, "06:00", options={"ignore-verified": True, "outdated-after": 30}),
    ]
    return lab


def build_demo_lab(now: datetime) -> ProxmoxLab:
    lab = _base_lab()
    start = now - HISTORY
    for job in lab.pbs_jobs:
        job.created = int(start.timestamp())
    events = [_Event(at, 1, "backup", "critical-nightly") for at in _slots("04:00", start, now)]
    events += [_Event(at, 2, "backup", "weekly") for at in _slots("mon 04:00", start, now)]
    events += [_Event(at, 0, "gc") for at in _slots("sat 03:00", start, now)]
    events += [_Event(at, 3, "prune") for at in _slots("05:00", start, now)]
    events += [_Event(at, 4, "verify") for at in _slots("06:00", start, now)]
    events.sort(key=lambda event: (event.at, event.order))
    last_nightly = max(event.at for event in events if event.job == "critical-nightly")
    for event in events:
        if event.kind == "backup":
            _run_vzdump(lab, event.job, event.at, now, start, failing=event.at == last_nightly)
        elif event.kind == "prune":
            _run_prune(lab, event.at, now)
        elif event.kind == "verify":
            _run_verify(lab, event.at, now)
        else:
            _run_gc(lab, event.at, now)
    _add_legacy_files(lab, now)
    _set_usage(lab, now)
    return lab


def _run_vzdump(lab: ProxmoxLab, job_id: str, slot: datetime, now: datetime, start: datetime, *, failing: bool) -> None:
    guests = NIGHTLY if job_id == "critical-nightly" else WEEKLY
    at = slot + timedelta(seconds=2)  # pvescheduler wakes just after the minute
    log = [
        f"INFO: starting new backup job: vzdump {' '.join(map(str, guests))} --mode snapshot --storage pbs-main"
        " --notes-template '{{guestname}}' --mailnotification failure --quiet 1"
    ]
    task_start, errors = at, False
    for vmid, (name, base) in guests.items():
        size = _size(base, at, start)
        took = timedelta(seconds=int(size / THROUGHPUT) + 9)
        if at > now:
            break
        log += [f"INFO: Starting Backup of VM {vmid} (lxc)", f"INFO: Backup started at {_local(at)}"]
        log += ["INFO: status = running", f"INFO: CT Name: {name}", "INFO: backup mode: snapshot"]
        if failing and vmid == 104:
            failed_at = at + timedelta(seconds=3)
            if failed_at > now:
                break
            log += [f"ERROR: Backup of VM {vmid} failed - {POSTGRES_ERROR}", f"INFO: Failed at {_local(failed_at)}"]
            errors, at = True, failed_at + timedelta(seconds=1)
            continue
        ended = at + took
        archive = f"ct/{vmid}/{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        log += [f"INFO: creating Proxmox Backup Server archive '{archive}'"]
        running = ended > now
        lab.add_snapshot(STORE, "", "ct", str(vmid), at, None if running else size, comment=name)
        lab.add_pbs_task("backup", f"{STORE}:ct/{vmid}", at, None if running else ended, "OK", user=PVE_STORAGE_TOKEN)
        if running:
            next(g for g in lab.guests if g.vmid == vmid).lock = "backup"
            break
        hours, rest = divmod(int(took.total_seconds()), 3600)
        log += [f"INFO: Finished Backup of VM {vmid} ({hours:02d}:{rest // 60:02d}:{rest % 60:02d})"]
        log += [f"INFO: Backup finished at {_local(ended)}"]
        at = ended + timedelta(seconds=2)
    else:
        log.append("INFO: Backup job finished with errors" if errors else "INFO: Backup job finished successfully")
        log.append("TASK ERROR: job errors" if errors else "TASK OK")
        lab.add_pve_task("vzdump", "", task_start, at, "job errors" if errors else "OK", log)
        return
    lab.add_pve_task("vzdump", "", task_start, None, None, log)  # still running at `now`


def _run_prune(lab: ProxmoxLab, slot: datetime, now: datetime) -> None:
    ended = slot + timedelta(seconds=4)
    if ended > now:
        return
    job = next(j for j in lab.pbs_jobs if j.kind == "prune")
    zone = ZoneInfo(ZONE)
    for group in lab.datastores[STORE].namespaces[""].values():
        finished = sorted((s for s in group.snapshots if s.size is not None), key=lambda s: -s.backup_time)
        keep: set[int] = {s.backup_time for s in finished[: KEEP["keep-last"]]}
        for option, period in (("keep-daily", "%Y-%m-%d"), ("keep-weekly", "%G-%V")):
            covered = {datetime.fromtimestamp(t, zone).strftime(period) for t in keep}
            chosen: set[str] = set()
            for snap in finished:
                sel = datetime.fromtimestamp(snap.backup_time, zone).strftime(period)
                if snap.backup_time in keep or sel in covered or sel in chosen:
                    continue
                if len(chosen) >= KEEP[option]:
                    break
                chosen.add(sel)
                keep.add(snap.backup_time)
        group.snapshots = [s for s in group.snapshots if s.size is None or s.backup_time in keep or s.protected]
    task = lab.add_pbs_task("prunejob", STORE, slot, ended, "OK")
    job.last_upid, job.last_state, job.last_endtime = task.upid, "OK", task.endtime


def _run_verify(lab: ProxmoxLab, slot: datetime, now: datetime) -> None:
    ended = slot + timedelta(minutes=3, seconds=17)
    if ended > now:
        return
    # vaultwarden's snapshots started failing verification three days before `now` (a bad chunk on disk).
    failing = frozenset({"ct/105"}) if slot > now - timedelta(days=3) else frozenset()
    lab.finish_verify_job(VERIFY_JOB, slot, ended, failed=failing)


def _run_gc(lab: ProxmoxLab, slot: datetime, now: datetime) -> None:
    ended = slot + timedelta(minutes=6, seconds=40)
    if ended > now:
        return
    store = lab.datastores[STORE]
    task = lab.add_pbs_task("garbage_collection", STORE, slot, ended, "OK")
    snapshots = [s for g in store.namespaces[""].values() for s in g.snapshots if s.size is not None]
    index_bytes = sum(s.size or 0 for s in snapshots)
    store.gc = GcStatus(
        upid=task.upid,
        index_file_count=len(snapshots) * 2,
        index_data_bytes=index_bytes,
        disk_bytes=int(index_bytes / 9.4),  # incremental, deduplicated chunks: ~9x is typical
        disk_chunks=int(index_bytes / 9.4 / (4 * 1024**2)),
        removed_bytes=3 * GB // 2,
        removed_chunks=420,
        state="OK",
        endtime=task.endtime,
    )


def _add_legacy_files(lab: ProxmoxLab, now: datetime) -> None:
    """old-wiki's archives on `local` from when the legacy job still ran (it was disabled 100 days ago)."""
    stop = now - timedelta(days=100)
    slots = list(_slots("sun 01:00", stop - timedelta(weeks=3), stop))
    for slot in slots:
        lab.vzdump_files.append(
            VzdumpFile("local", 121, "qemu", slot + timedelta(seconds=3), int(11.7 * GB), notes="old-wiki")
        )


def _set_usage(lab: ProxmoxLab, now: datetime) -> None:
    store = lab.datastores[STORE]
    store.total = 2 * 1024**4
    store.used = max(store.gc.disk_bytes, 40 * GB) + 18 * GB
    store.avail = store.total - store.used
    store.estimated_full_date = int((now + timedelta(days=431)).timestamp())
    pbs_storage = next(s for s in lab.pve_storages if s.type == "pbs")
    pbs_storage.total, pbs_storage.used = store.total, store.used


# --- protection (README: Protection): what `DemoLab` adds on top, so that every risk shows at least once ---------

OFFSITE = "offsite"  # the remote PBS that main pushes vault, glance and ntfy to
OFFSITE_STORE = "backups"
SYNC_JOB = "s-offsite"
SYNCED = {"ct/101", "ct/106", "ct/111"}
SYNC_STUCK_DAYS = 4  # glance's group has failed to sync for this many runs: its offsite copy lags
IMMICH = 107  # a young guest whose first nights partly failed: fewer snapshots than the prune policy promises
IMMICH_FAILED_DAYS = (3, 4, 5)
IMMICH_ERROR = "command 'lxc-freeze -n 107' failed: exit code 1"
ARCHIVE_NS, ARCHIVE_ID = "archive", "nas-archive"  # host backups verified by hand once, long ago
ARCHIVE_JOB = "v-archive"


def add_protection_demo(lab: ProxmoxLab, now: datetime) -> None:
    """vault's snapshots encrypted and pushed offsite (all good); ntfy pushed unencrypted; glance's push
    failing for days (the offsite copy lags); immich, two weeks old, missed three nights (retention); a
    bi-monthly NAS archive in its own namespace whose verification is older than its verify job allows."""
    store = lab.datastores[STORE]
    with lab.lock:
        vault = store.namespaces[""][("ct", "101")]
        for group in (vault, store.namespaces[""][("ct", "106")]):  # vault and glance: client-side encrypted
            for snap in group.snapshots:
                snap.crypt_mode = "encrypt"
        finished = [snap for snap in vault.snapshots if snap.size is not None]
        if finished:
            finished[0].protected = True  # the oldest weekly kept for good
        verify = next(j for j in lab.pbs_jobs if j.kind == "verify")
        verify.ns, verify.options["max-depth"] = "", 0  # the daily verify job covers the root namespace only
        _add_immich(lab, now)
        _add_offsite(lab, now)
        _add_archive(lab, now)


def _add_offsite(lab: ProxmoxLab, now: datetime) -> None:
    remote = PbsRemote(OFFSITE, "pbs-offsite.lan", comment="offsite PBS at a friend's place")
    remote.datastores[OFFSITE_STORE] = PbsDatastore(OFFSITE_STORE)
    lab.pbs_remotes[OFFSITE] = remote
    options: dict[str, object] = {
        "remote": OFFSITE,
        "remote-store": OFFSITE_STORE,
        "max-depth": 0,
        "sync-direction": "push",
        "group-filter": [f"group:{g}" for g in sorted(SYNCED)],
        "remove-vanished": False,
    }
    job = PbsJob("sync", SYNC_JOB, STORE, "06:30", comment="push to the offsite PBS", options=options)
    job.created = int((now - timedelta(days=15)).timestamp())
    lab.pbs_jobs.append(job)
    for slot in _slots("06:30", now - timedelta(days=14), now):
        ended = slot + timedelta(minutes=2, seconds=41)
        if ended > now:
            break
        stuck = slot > now - timedelta(days=SYNC_STUCK_DAYS)
        groups = SYNCED - {"ct/106"} if stuck else SYNCED
        until = int(slot.timestamp())
        sync_snapshots(lab.datastores[STORE], "", remote.datastores[OFFSITE_STORE], "", groups, until)
        status = "sync failed with some errors." if stuck else "OK"
        task = lab.add_pbs_task("syncjob", f"{OFFSITE}:{OFFSITE_STORE}:{STORE}::{SYNC_JOB}", slot, ended, status)
        job.last_upid, job.last_state, job.last_endtime = task.upid, status, task.endtime


def _add_immich(lab: ProxmoxLab, now: datetime) -> None:
    lab.guests.append(Guest(IMMICH, "lxc", "immich", maxdisk=64 * GB))
    lab.vzdump_jobs.append(VzdumpJob("immich", "03:00", vmids=(IMMICH,), storage="pbs-main", comment="photos"))
    group = lab.datastores[STORE].group("", "ct", str(IMMICH))
    verifications = sorted(
        (t.starttime, t.upid) for t in lab.pbs_tasks if t.worker_type == "verificationjob" and t.endtime
    )
    for slot in _slots("03:00", now - timedelta(days=12, hours=1), now):
        at = slot + timedelta(seconds=2)
        days_ago = (now.astimezone(ZoneInfo(ZONE)).date() - slot.astimezone(ZoneInfo(ZONE)).date()).days
        log = [f"INFO: starting new backup job: vzdump {IMMICH} --mode snapshot --storage pbs-main --quiet 1"]
        log += [f"INFO: Starting Backup of VM {IMMICH} (lxc)", f"INFO: Backup started at {_local(at)}"]
        if days_ago in IMMICH_FAILED_DAYS:
            ended = at + timedelta(seconds=4)
            log += [f"ERROR: Backup of VM {IMMICH} failed - {IMMICH_ERROR}", f"INFO: Failed at {_local(ended)}"]
            log += ["INFO: Backup job finished with errors", "TASK ERROR: job errors"]
            lab.add_pve_task("vzdump", str(IMMICH), at, ended, "job errors", log)
            continue
        size = int(38 * GB * (1 + 0.01 * (12 - days_ago)))
        took = timedelta(seconds=int(size / THROUGHPUT) + 9)
        ended = at + took
        if ended > now:
            break
        checked = next((upid for start, upid in verifications if start > ended.timestamp()), None)
        group.snapshots.append(
            PbsSnapshot(int(at.timestamp()), size, "ok" if checked else None, checked, comment="immich")
        )
        lab.add_pbs_task("backup", f"{STORE}:ct/{IMMICH}", at, ended, "OK", user=PVE_STORAGE_TOKEN)
        hours, rest = divmod(int(took.total_seconds()), 3600)
        log += [f"INFO: Finished Backup of VM {IMMICH} ({hours:02d}:{rest // 60:02d}:{rest % 60:02d})"]
        log += [f"INFO: Backup finished at {_local(ended)}", "INFO: Backup job finished successfully", "TASK OK"]
        lab.add_pve_task("vzdump", str(IMMICH), at, ended, "OK", log)
    group.snapshots.sort(key=lambda snap: snap.backup_time)


def _add_archive(lab: ProxmoxLab, now: datetime) -> None:
    store = lab.datastores[STORE]
    group = store.group(ARCHIVE_NS, "host", ARCHIVE_ID)
    group.owner = "archive@pbs!nas"
    job = PbsJob(
        "verify", ARCHIVE_JOB, STORE, None, ns=ARCHIVE_NS, comment="run by hand",
        options={"ignore-verified": True, "outdated-after": 30},
    )  # fmt: skip
    lab.pbs_jobs.append(job)
    verified_at = now - timedelta(days=55)
    task = lab.add_pbs_task("verificationjob", f"{STORE}:{ARCHIVE_JOB}", verified_at, verified_at + timedelta(hours=2))
    job.last_upid, job.last_state, job.last_endtime = task.upid, "OK", task.endtime
    for days_ago in (179, 118, 57):
        taken = int((now - timedelta(days=days_ago, hours=9)).timestamp())
        group.snapshots.append(
            PbsSnapshot(taken, 260 * GB + days_ago * 1024**2, "ok", task.upid, owner=group.owner, comment="NAS")
        )


__all__ = ["PBS_NODE", "add_protection_demo", "build_demo_lab"]
