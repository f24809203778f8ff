"""The far side of PBS sync jobs: each remote's group list, read through the local PBS, as `RemoteCopy` records.

Sits under `sources/` next to `pbs.py`. A sync job with a `remote` (pull or push, `/admin/sync?sync-direction=all`)
links a local datastore (namespace) with a datastore on another PBS. `GET /config/remote/{name}/scan/{store}/groups`
makes the local PBS ask that other side for its groups, with `last-backup` per group (proxmox/proxmox-backup
`src/api2/config/remote.rs`): for a push job that is the offsite copy, for a pull job the original the local
store copies. Both need `Remote.Audit` on `/remote/{name}`; without it PBS hides the remote's sync jobs (an empty
list, no error), so the source asks `/access/permissions` whether it can see remotes at all and says so in the
observation (`remotes_visible`): health then calls offsite copies unknown instead of missing.

A scan costs the local PBS a connection to the remote: a namespace is scanned again only when its job has run
since, or after `SCAN_EVERY`. The copies of each (job, namespace) are built again only when its scan, its job or
the local snapshot lists they read changed (by identity: the PBS source hands back the same tuple of a group's
snapshots until it reads that group again), and `copies` stays the very same tuple while none was, so a quiet poll
costs nothing here and downstream reuse (bounds, the collector's "nothing new") holds. No verdicts here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..model import RemoteCopy, SnapshotSeries
from ._pbs_wire import target_key
from ._proxmox import epoch
from ._util import as_int, segment

SCAN_EVERY = timedelta(minutes=30)
# A scan that failed is asked again this soon, and said again at each poll until then: copies stay unknown
# while it is not read, and a problem that is still there must not drop off the list.
RETRY_FAILED = timedelta(minutes=5)
PBS_PORT = 8007
T = TypeVar("T")
GroupKey = tuple[str, str, str, str]  # store, ns, backup-type, backup-id
Getter = Callable[[str, type[T], dict[str, Any] | None], Awaitable[T]]


def endpoint_of(url: str) -> str:
    """ "host:port" of a PBS URL, lowercase, port 8007 when not given.

    >>> endpoint_of("https://PBS.lan:8007/"), endpoint_of("https://10.0.0.5")
    ('pbs.lan:8007', '10.0.0.5:8007')
    """
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or PBS_PORT}"


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _within(ns: str, top: str, depth: int | None) -> str | None:
    """`ns` relative to `top` if a job anchored at `top` with max-depth `depth` reaches it, else None."""
    if top and ns != top and not ns.startswith(top + "/"):
        return None
    rest = ns[len(top) :].lstrip("/") if top else ns
    if depth is not None and (rest.count("/") + 1 if rest else 0) > depth:
        return None
    return rest


@dataclass(frozen=True, slots=True)
class _SyncJob:
    id: str
    store: str
    ns: str
    remote: str
    remote_store: str
    remote_ns: str
    depth: int | None
    push: bool
    encrypts: bool  # push with encrypted-only or an active encryption key: the far side holds encrypted data
    marker: str  # changes when the job has run again

    @classmethod
    def parse(cls, item: Any) -> _SyncJob | None:
        if not isinstance(item, dict) or not item.get("remote") or not item.get("id") or not item.get("store"):
            return None
        push = item.get("sync-direction") == "push"
        return cls(
            id=str(item["id"]),
            store=str(item["store"]),
            ns=str(item.get("ns") or ""),
            remote=str(item["remote"]),
            remote_store=str(item.get("remote-store") or ""),
            remote_ns=str(item.get("remote-ns") or ""),
            depth=as_int(item.get("max-depth")),
            push=push,
            encrypts=push and (item.get("encrypted-only") is True or bool(item.get("active-encryption-key"))),
            marker=f"{item.get('last-run-upid')}|{item.get('last-run-endtime')}",
        )


@dataclass(frozen=True, slots=True)
class _Scan:
    marker: str
    at: datetime
    groups: tuple[tuple[str, str, int, int | None], ...] | None  # (type, id, last-backup, count); None: failed
    why: tuple[str, ...] = ()  # the problem lines of a failed scan, said again while it is reused


@dataclass(frozen=True, slots=True)
class _Built:
    """The copies of one (job, local namespace, remote namespace) and what they were built from."""

    job: _SyncJob
    scan: _Scan
    endpoint: str
    keys: tuple[GroupKey, ...]  # the local groups read
    inputs: tuple[SnapshotSeries | None, ...]  # their snapshots, compared by identity
    copies: tuple[RemoteCopy, ...]

    def still(
        self, job: _SyncJob, scan: _Scan, endpoint: str, keys: tuple[GroupKey, ...], inputs: tuple[Any, ...]
    ) -> bool:
        return (
            endpoint == self.endpoint
            and keys == self.keys
            and (scan is self.scan or scan.groups == self.scan.groups)
            and job == self.job
            and all(new is old for new, old in zip(inputs, self.inputs, strict=True))
        )


class RemoteScanner:
    """Keeps the last scan of each (sync job, remote namespace) and turns them into `RemoteCopy` records."""

    def __init__(self, source: str, offsite: bool | list[str] | None, clusters: dict[str, str]) -> None:
        self.source = source
        self.offsite = offsite
        self.clusters = clusters  # local namespace -> PVE cluster (guest keys)
        self._scans: dict[tuple[str, str], _Scan] = {}
        self._built: dict[tuple[str, str, str], _Built] = {}  # (job id, local ns, remote ns) -> its copies
        self.copies: tuple[RemoteCopy, ...] = ()
        self.visible = True

    def remote_offsite(self, remote: str) -> bool:
        """The far side of a sync is offsite unless the source's `offsite:` says otherwise: a list names the
        offsite remotes; `true` marks this PBS's own datastores offsite (so its remotes are not); `false` none."""
        if isinstance(self.offsite, list):
            return remote in self.offsite
        return self.offsite is None

    async def refresh(
        self,
        get: Getter[Any],
        partial: Callable[..., Awaitable[Any]],  # ProxmoxSource._partial: (problems, what, call, *args)
        sync_items: Iterable[Any],
        groups: Iterable[GroupKey],
        snapshots: dict[GroupKey, SnapshotSeries],
        now: datetime,
        problems: list[str],
    ) -> None:
        self.visible = await self._can_see_remotes(get)
        jobs = [job for item in sync_items if (job := _SyncJob.parse(item)) is not None]
        if not jobs:
            self._scans, self._built, self.copies = {}, {}, ()
            return
        remotes = await partial(problems, "remotes", get, "/config/remote", list, None) or []
        endpoints = {
            str(r["name"]): f"{str(r.get('host') or '').lower()}:{as_int(r.get('port')) or PBS_PORT}"
            for r in remotes
            if isinstance(r, dict) and r.get("name")
        }
        local_ns: dict[str, set[str]] = {}
        by_ns: dict[tuple[str, str], list[GroupKey]] = {}
        for key in groups:
            local_ns.setdefault(key[0], set()).add(key[1])
            by_ns.setdefault(key[:2], []).append(key)
        wanted: list[tuple[_SyncJob, str, str]] = []  # (job, local ns, remote ns)
        for job in jobs:
            for ns in sorted(local_ns.get(job.store, ())):
                rest = _within(ns, job.ns, job.depth)
                if rest is not None:
                    wanted.append((job, ns, _join(job.remote_ns, rest)))

        def fresh(key: tuple[str, str], job: _SyncJob) -> _Scan | None:
            old = self._scans.get(key)
            if old is None or old.marker != job.marker or now - old.at >= _reuse_for(old):
                return None
            problems.extend(old.why)
            return old

        async def ask(what: str, path: str, params: dict[str, Any] | None) -> tuple[list[Any] | None, tuple[str, ...]]:
            """One scan of the far side -> (its items, None if it failed; the problem lines it made)."""
            said: list[str] = []
            items = await partial(said, what, get, path, list, params)
            problems.extend(said)
            return items, tuple(said)

        async def namespaces(job: _SyncJob) -> _Scan:
            """The remote store's namespaces (as a scan of pseudo-groups): only those exist to be scanned."""
            cached = fresh((job.id, "\0namespaces"), job)
            if cached is not None:
                return cached
            base = f"/config/remote/{segment(job.remote)}/scan/{segment(job.remote_store)}"
            what = f"remote '{job.remote}' datastore '{job.remote_store}' (sync job {job.id})"
            items, why = await ask(what, f"{base}/namespaces", None)
            names = (
                None
                if items is None
                else tuple(("ns", str(i.get("ns") or ""), 0, None) for i in items if isinstance(i, dict))
            )
            return _Scan(job.marker, now, names, why)

        listed = dict(zip(jobs, await asyncio.gather(*(namespaces(job) for job in jobs)), strict=True))

        async def scan(job: _SyncJob, remote_ns: str) -> _Scan:
            cached = fresh((job.id, remote_ns), job)
            if cached is not None:
                return cached
            known = listed[job].groups
            if known is None:  # the far side did not answer: nothing known there (said once, by the namespaces)
                return _Scan(job.marker, now, None)
            if remote_ns not in {ns for _kind, ns, _last, _count in known}:
                return _Scan(job.marker, now, ())  # nothing synced into that namespace yet
            path = f"/config/remote/{segment(job.remote)}/scan/{segment(job.remote_store)}/groups"
            params = {"namespace": remote_ns} if remote_ns else None
            what = f"remote '{job.remote}' datastore '{job.remote_store}' (sync job {job.id})"
            items, why = await ask(what, path, params)
            parsed = None if items is None else tuple(_groups(items))
            return _Scan(job.marker, now, parsed, why)

        results = await asyncio.gather(*(scan(job, remote_ns) for job, _ns, remote_ns in wanted))
        pairs = list(zip(wanted, results, strict=True))
        self._scans = {(job.id, remote_ns): result for (job, _ns, remote_ns), result in pairs}
        self._scans |= {(job.id, "\0namespaces"): result for job, result in listed.items()}
        built: dict[tuple[str, str, str], _Built] = {}
        for (job, ns, remote_ns), result in pairs:
            endpoint = endpoints.get(job.remote, "")
            if result.groups is None:  # each local group's copy is unknown: the local groups are read
                keys = tuple(by_ns.get((job.store, ns), ()))
            else:
                keys = tuple((job.store, ns, t, i) for t, i, _last, _count in result.groups)
            inputs = tuple(snapshots.get(key) for key in keys)
            old = self._built.get((job.id, ns, remote_ns))
            if old is None or not old.still(job, result, endpoint, keys, inputs):
                copies = tuple(self._copies(job, ns, remote_ns, result, endpoint, keys, snapshots))
                old = _Built(job, result, endpoint, keys, inputs, copies)
            built[(job.id, ns, remote_ns)] = old
        same = list(built) == list(self._built) and all(new is self._built[key] for key, new in built.items())
        self._built = built
        if not same:
            self.copies = tuple(copy for entry in built.values() for copy in entry.copies)

    async def _can_see_remotes(self, get: Getter[Any]) -> bool:
        """Remote.Audit on /remote: without it PBS silently hides the sync jobs to remotes. An answer we cannot
        read claims nothing (visible)."""
        try:
            privileges = await get("/access/permissions", dict, {"path": "/remote"})
        except Exception:  # an old or odd PBS: no claim either way
            return True
        on_remote = privileges.get("/remote")
        return isinstance(on_remote, dict) and "Remote.Audit" in on_remote

    def _copies(
        self,
        job: _SyncJob,
        ns: str,
        remote_ns: str,
        scan: _Scan,
        endpoint: str,
        local: tuple[GroupKey, ...],
        snapshots: dict[GroupKey, SnapshotSeries],
    ) -> list[RemoteCopy]:
        """`local`: the local groups of (job.store, ns), used when the scan failed."""
        cluster = self.clusters.get(ns)
        location = f"{job.remote}:{_join(job.remote_store, remote_ns)}"
        where = f"{endpoint}/{_join(job.remote_store, remote_ns)}" if endpoint else ""
        offsite = self.remote_offsite(job.remote)
        job_key = f"{self.source}/sync/{job.id}"

        def encrypted(backup_type: str, backup_id: str, last: int | None = None) -> bool | None:
            """The far side holds what was synced: the local snapshot of its `last-backup` (or the newest before
            it) tells the encryption, unless the push job encrypts or only sends encrypted snapshots."""
            if job.encrypts:
                return True
            bound = epoch(last) if last is not None else None
            for snap in reversed(snapshots.get((job.store, ns, backup_type, backup_id), ())):  # oldest first
                if snap.finished and (bound is None or snap.taken_at <= bound):
                    return snap.encrypted
            return None

        if scan.groups is None:  # the far side could not be asked: each local group's copy is unknown
            return [
                RemoteCopy(
                    target_key(self.source, t, i, cluster), self.source, location, where, None, None,
                    encrypted(t, i), offsite, job_key,
                )
                for _store, _ns, t, i in local
            ]  # fmt: skip
        return [
            RemoteCopy(
                target_key(self.source, t, i, cluster), self.source, location, where, epoch(last), count,
                encrypted(t, i, last), offsite, job_key,
            )
            for t, i, last, count in scan.groups
        ]  # fmt: skip


def _reuse_for(scan: _Scan) -> timedelta:
    return SCAN_EVERY if scan.groups is not None else RETRY_FAILED


def _groups(items: list[Any]) -> Iterable[tuple[str, str, int, int | None]]:
    for item in items:
        if not isinstance(item, dict):
            continue
        last = as_int(item.get("last-backup"))
        if item.get("backup-type") and item.get("backup-id") is not None and last is not None:
            yield str(item["backup-type"]), str(item["backup-id"]), last, as_int(item.get("backup-count"))


__all__ = ["RETRY_FAILED", "SCAN_EVERY", "RemoteScanner", "endpoint_of"]
