"""The state behind the PBS and PVE simulators: plain, mutable dataclasses describing one homelab.

Sits under `simulators/`: the apps in `pbs.py` and `pve.py` render this state in the exact wire format of
PBS and PVE (their docstrings name the upstream files). Tests mutate a lab while its servers run (add a snapshot,
finish a task, change a verification) to exercise incremental polling, so every mutation goes through
`lab.lock`. Nothing here talks HTTP or reads the wall clock except through `lab.clock`, which tests may pin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from ..sources._proxmox import pbs_upid, pve_upid
from ..sources._util import utc_now


def zone_or_utc(name: str) -> tzinfo:
    """A node's zone as its clock runs; UTC for one newer than this machine's tzdata (the node still names it)."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return UTC


PBS_NODE = "pbs"
PVE_STORAGE_TOKEN = "pve@pbs!pve"  # the PBS token PVE's storage plugin writes backups with


# --- PVE --------------------------------------------------------------------------------------------------------


@dataclass
class Guest:
    vmid: int
    type: str  # "qemu" | "lxc"
    name: str
    node: str = "pve"
    lock: str | None = None  # "backup" while vzdump runs
    status: str = "running"
    template: bool = False
    pool: str | None = None
    maxdisk: int = 8 * 1024**3


@dataclass
class VzdumpJob:
    id: str
    schedule: str
    enabled: bool = True
    vmids: tuple[int, ...] = ()
    all: bool = False
    exclude: tuple[int, ...] = ()
    pool: str | None = None
    node: str | None = None
    storage: str | None = None
    comment: str | None = None
    mode: str = "snapshot"
    legacy_cron: bool = False  # from vzdump.cron: no `type`, no `next-run` (§4.1)
    prune_backups: dict[str, int] | None = None  # keep-* options; GET returns them as an object (§4.1)


@dataclass
class PveStorage:
    storage: str
    type: str  # "pbs" | "dir" | "nfs"
    content: str = "backup"
    shared: bool = False
    datastore: str | None = None  # pbs: the PBS datastore it points at
    namespace: str = ""  # pbs: the storage `namespace` option
    total: int = 500 * 1024**3
    used: int = 120 * 1024**3


@dataclass
class VzdumpFile:
    """A vzdump archive on a dir/NFS storage; `ctime` is encoded in the file name in node-local time."""

    storage: str
    vmid: int
    guest_type: str
    ctime: datetime
    size: int
    notes: str | None = None
    protected: bool = False


@dataclass
class PveTask:
    upid: str
    node: str
    type: str
    id: str
    user: str
    pid: int
    pstart: int
    starttime: int
    endtime: int | None = None
    status: str | None = None  # None while running
    tokenid: str | None = None
    log: list[str] = field(default_factory=list)


# --- PBS --------------------------------------------------------------------------------------------------------


@dataclass
class PbsSnapshot:
    backup_time: int
    size: int | None  # None = in progress (or unreadable manifest): no `size` on the wire
    verification: str | None = None  # "ok" | "failed" | None = never verified
    verify_upid: str | None = None
    protected: bool = False
    comment: str | None = None
    owner: str = PVE_STORAGE_TOKEN
    crypt_mode: str = "none"  # of its archives: "none" | "encrypt" | "sign-only" (the manifest is signed at most)


@dataclass
class PbsGroup:
    backup_type: str  # "vm" | "ct" | "host"
    backup_id: str
    snapshots: list[PbsSnapshot] = field(default_factory=list)
    owner: str = PVE_STORAGE_TOKEN
    comment: str | None = None


@dataclass
class GcStatus:
    upid: str | None = None
    index_file_count: int = 0
    index_data_bytes: int = 0
    disk_bytes: int = 0
    disk_chunks: int = 0
    removed_bytes: int = 0
    removed_chunks: int = 0
    state: str | None = None  # last-run-state
    endtime: int | None = None


@dataclass
class PbsDatastore:
    name: str
    namespaces: dict[str, dict[tuple[str, str], PbsGroup]] = field(default_factory=lambda: {"": {}})
    total: int = 4 * 1024**4
    used: int = 1 * 1024**4
    avail: int = 3 * 1024**4
    estimated_full_date: int | None = None  # 0 = flat usage
    gc_schedule: str | None = None
    gc: GcStatus = field(default_factory=GcStatus)
    comment: str | None = None
    maintenance: str | None = None
    verify_new: bool = False
    unreadable: str | None = None  # an error text: status/groups/snapshots of this store fail with it

    def group(self, ns: str, backup_type: str, backup_id: str) -> PbsGroup:
        groups = self.namespaces.setdefault(ns, {})
        return groups.setdefault((backup_type, backup_id), PbsGroup(backup_type, backup_id))


@dataclass
class PbsRemote:
    """Another PBS this one knows (`/config/remote`): where it is, and what its datastores hold, for the
    remote scan (`/config/remote/{name}/scan/{store}/groups`)."""

    name: str
    host: str
    port: int | None = None  # absent on the wire when the default 8007
    auth_id: str = "sync@pbs"
    fingerprint: str | None = None
    comment: str | None = None
    datastores: dict[str, PbsDatastore] = field(default_factory=dict)
    unreachable: str | None = None  # an error text: scanning it fails with it (as PBS's own error)


@dataclass
class PbsJob:
    kind: str  # "prune" | "verify" | "sync"
    id: str
    store: str
    schedule: str | None
    ns: str | None = None
    disable: bool = False  # prune only; verify/sync have no enable flag (§3.8)
    comment: str | None = None
    options: dict[str, object] = field(default_factory=dict)  # keep-*, ignore-verified, remote, ...
    created: int = 0
    last_upid: str | None = None
    last_state: str | None = None
    last_endtime: int | None = None


@dataclass
class PbsTask:
    upid: str
    worker_type: str
    worker_id: str | None
    user: str
    starttime: int
    pid: int
    pstart: int
    endtime: int | None = None
    status: str | None = None


# --- the lab ----------------------------------------------------------------------------------------------------


@dataclass
class ProxmoxLab:
    pve_timezone: str = "Europe/Madrid"
    pbs_timezone: str = "Europe/Madrid"
    guests: list[Guest] = field(default_factory=list)
    vzdump_jobs: list[VzdumpJob] = field(default_factory=list)
    pve_storages: list[PveStorage] = field(default_factory=list)
    vzdump_files: list[VzdumpFile] = field(default_factory=list)
    pve_tasks: list[PveTask] = field(default_factory=list)
    datastores: dict[str, PbsDatastore] = field(default_factory=dict)
    pbs_jobs: list[PbsJob] = field(default_factory=list)
    pbs_tasks: list[PbsTask] = field(default_factory=list)
    pbs_remotes: dict[str, PbsRemote] = field(default_factory=dict)
    # The token's Remote.Audit on /remote: without it PBS hides the remotes, their sync jobs and their scans.
    remote_audit: bool = True
    # PVE cluster switches: nodes whose API the cluster cannot reach (answers 595, as pveproxy does when it
    # cannot proxy to a node), and per-node time zones (default `pve_timezone`).
    offline_nodes: set[str] = field(default_factory=set)
    node_timezones: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _task_counter: int = 0
    _pid: int = 1010
    _pstart: int = 41394

    @property
    def pools(self) -> dict[str, list[int]]:
        pools: dict[str, list[int]] = {}
        for guest in self.guests:
            if guest.pool:
                pools.setdefault(guest.pool, []).append(guest.vmid)
        return pools

    def now_epoch(self) -> int:
        return int(self.clock().timestamp())

    def pve_nodes(self) -> list[str]:
        return sorted({guest.node for guest in self.guests} or {"pve"})

    # mutations used by the demo builder and by tests; all take the lock because a server thread reads concurrently

    def add_pbs_task(
        self,
        worker_type: str,
        worker_id: str | None,
        start: datetime,
        end: datetime | None = None,
        status: str | None = "OK",
        user: str = "root@pam",
    ) -> PbsTask:
        with self.lock:
            self._task_counter += 1
            starttime = int(start.timestamp())
            upid = pbs_upid(
                node=PBS_NODE,
                pid=self._pid,
                pstart=self._pstart,
                task_id=self._task_counter,
                starttime=starttime,
                worker_type=worker_type,
                worker_id=worker_id or "",
                auth_id=user,
            )
            task = PbsTask(
                upid=upid,
                worker_type=worker_type,
                worker_id=worker_id,
                user=user,
                starttime=starttime,
                pid=self._pid,
                pstart=self._pstart,
                endtime=int(end.timestamp()) if end else None,
                status=status if end else None,
            )
            self.pbs_tasks.append(task)
            return task

    def add_pve_task(
        self,
        task_type: str,
        task_id: str,
        start: datetime,
        end: datetime | None,
        status: str | None,
        log: list[str],
        node: str = "pve",
        user: str = "root@pam",
    ) -> PveTask:
        with self.lock:
            self._task_counter += 1
            pid = 170000 + self._task_counter
            pstart = 28000000 + self._task_counter * 137
            starttime = int(start.timestamp())
            upid = pve_upid(
                node=node, pid=pid, pstart=pstart, starttime=starttime, task_type=task_type, task_id=task_id, user=user
            )
            task = PveTask(
                upid=upid,
                node=node,
                type=task_type,
                id=task_id,
                user=user,
                pid=pid,
                pstart=pstart,
                starttime=starttime,
                endtime=int(end.timestamp()) if end else None,
                status=status if end else None,
                log=list(log),
            )
            self.pve_tasks.append(task)
            return task

    def add_snapshot(
        self,
        store: str,
        ns: str,
        backup_type: str,
        backup_id: str,
        taken_at: datetime,
        size: int | None,
        *,
        comment: str | None = None,
        verification: str | None = None,
        verify_upid: str | None = None,
    ) -> PbsSnapshot:
        with self.lock:
            snapshot = PbsSnapshot(
                backup_time=int(taken_at.timestamp()),
                size=size,
                comment=comment,
                verification=verification,
                verify_upid=verify_upid,
            )
            group = self.datastores[store].group(ns, backup_type, backup_id)
            group.snapshots.append(snapshot)
            group.snapshots.sort(key=lambda snap: snap.backup_time)
            return snapshot

    def finish_verify_job(
        self, job_id: str, start: datetime, end: datetime, failed: frozenset[str] = frozenset()
    ) -> str:
        """Run verify job `job_id` now: every unverified finished snapshot of its store gets a verification with
        the job's UPID ("ok", or "failed" for groups named in `failed` as "ct/105")."""
        with self.lock:
            job = next(j for j in self.pbs_jobs if j.kind == "verify" and j.id == job_id)
            task = self.add_pbs_task("verificationjob", f"{job.store}:{job.id}", start, end, "OK")
            for groups in self.datastores[job.store].namespaces.values():
                for group in groups.values():
                    for snap in group.snapshots:
                        if snap.size is not None and snap.verification is None:
                            name = f"{group.backup_type}/{group.backup_id}"
                            snap.verification = "failed" if name in failed else "ok"
                            snap.verify_upid = task.upid
            job.last_upid, job.last_state, job.last_endtime = task.upid, "OK", task.endtime
            return task.upid


def sync_snapshots(
    source: PbsDatastore, ns: str, target: PbsDatastore, target_ns: str, groups: set[str], until: int | None = None
) -> int:
    """One sync run: copy the finished snapshots of `groups` ("ct/101") taken before `until` (epoch) that the
    target lacks (the copy keeps backup time, size, notes and encryption, not the verification or protection, as
    PBS's sync does). Returns how many."""
    copied = 0
    for (backup_type, backup_id), group in source.namespaces.get(ns, {}).items():
        if f"{backup_type}/{backup_id}" not in groups:
            continue
        mirror = target.group(target_ns, backup_type, backup_id)
        have = {snap.backup_time for snap in mirror.snapshots}
        for snap in group.snapshots:
            if snap.size is not None and snap.backup_time not in have and (until is None or snap.backup_time < until):
                mirror.snapshots.append(
                    PbsSnapshot(snap.backup_time, snap.size, None, None, False, snap.comment,
                                mirror.owner, snap.crypt_mode)
                )  # fmt: skip
                copied += 1
        mirror.snapshots.sort(key=lambda snap: snap.backup_time)
    return copied


def demo_lab(now: datetime, *, protection: bool = False) -> ProxmoxLab:
    """THE demo homelab (PVE node `pve`, PBS datastore `main`), with its history relative to `now`; with
    `protection`, also what shows every protection risk (an offsite PBS, encryption, a young guest, an archive)."""
    from ._proxmox_demo import add_protection_demo, build_demo_lab

    lab = build_demo_lab(now)
    if protection:
        add_protection_demo(lab, now)
    return lab


__all__ = [
    "GcStatus",
    "Guest",
    "PbsDatastore",
    "PbsGroup",
    "PbsJob",
    "PbsRemote",
    "PbsSnapshot",
    "PbsTask",
    "ProxmoxLab",
    "PveStorage",
    "PveTask",
    "VzdumpFile",
    "VzdumpJob",
    "demo_lab",
    "sync_snapshots",
]
