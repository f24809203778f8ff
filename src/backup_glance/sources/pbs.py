"""Proxmox Backup Server source: datastores, namespaces, groups, snapshots, jobs and tasks -> `Observation`.

Sits under `sources/`; owns the PBS wire (proxmox/proxmox-backup `src/api2/`) and makes no verdicts.
Cost grows with change, not with history: the cheap lists (datastores, namespaces, groups, jobs, new tasks) are
read every poll, a group's snapshot list only when the group list says it changed (`last-backup`,
`backup-count`), when it held an unfinished snapshot, or when a verification finished on its store since the
last poll (verification changes neither field). Everything else comes from the previous poll's cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any

from msgspec.structs import replace as evolve

from ..config import PbsSourceConfig
from ..errors import SourceProtocolError
from ..model import Datastore, Job, JobKind, JobRun, Observation, SnapshotSeries, Target
from ._http import DEFAULT_MAX_BYTES
from ._pbs_remotes import RemoteScanner, endpoint_of
from ._pbs_wire import (
    GroupState,
    ListedGroup,
    SnapshotDecoder,
    decode_group_page,
    listed_groups,
    make_target,
    parse_group,
    parse_job,
    parse_snapshot,
    parse_task,
    parse_usage,
    require_name,
    target_key,
    task_job_key,
)
from ._proxmox import ProxmoxSource, epoch, first_source_error, older_tasks_not_read, unwrap
from ._util import as_int, guest_key, guest_vmid, left_out, offsite_named, segment, vmid_of

TASK_LOOKBACK = timedelta(days=7)  # first poll: how far back runs are read; later polls read only new tasks
TASK_OVERLAP = timedelta(minutes=2)  # re-read a little before the last poll: tasks are listed by start time
TASK_PAGE = 500
MAX_TASK_PAGES = 40
# Above this share of changed groups in a namespace, one namespace-wide snapshot list is cheaper than one
# request per group.
WHOLE_NAMESPACE_SHARE = 0.25
WHOLE_NAMESPACE_MIN = 8

GroupKey = tuple[str, str, str, str]  # store, ns, backup-type, backup-id
# Manual and verify-new verifications (`verify`, `verify_group`, `verify_snapshot`) and verify jobs.
VERIFY_PREFIX = "verif"


class PbsSource(ProxmoxSource):
    kind = "pbs"
    auth_scheme = "PBSAPIToken"
    auth_separator = ":"

    def __init__(
        self,
        config: PbsSourceConfig,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(config, max_bytes=max_bytes, clock=clock)
        self._stores_wanted = set(config.datastores)
        self._groups: dict[GroupKey, GroupState] = {}
        self._snapshots: dict[GroupKey, SnapshotSeries] = {}
        self._names: dict[GroupKey, str] = {}
        self._unfinished: set[GroupKey] = set()  # groups holding an in-progress snapshot: read until it finishes
        # (store, ns) -> its group list as last read, and the groups in it, when that read left nothing to read
        # again: the very same bytes next time say that nothing in the namespace changed (no decode, no compare).
        self._settled: dict[tuple[str, str], tuple[bytes, list[GroupKey]]] = {}
        self._newest_comment: dict[GroupKey, str] = {}  # PVE's notes-template puts the guest name here
        self._runs: dict[str, JobRun] = {}
        self._verify_seen: set[str] = set()
        self._verify_last: dict[str, str] = {}
        # verif* tasks seen running (upid -> start): `since` reaches back to them so their end is seen.
        self._verify_running: dict[str, datetime] = {}
        # Stores whose snapshot lists must be re-read because a verification finished, until a re-read succeeds.
        self._refresh_pending: set[str] = set()
        self._prune_upids: dict[str, str] = {}  # prune task UPID -> job id, from each job's `last-run-upid`
        self._last_server_time: datetime | None = None
        # targets + snapshots as last handed out; rebuilt only when a group changed, so a quiet poll stays cheap
        self._assembled: tuple[tuple[Target, ...], tuple[SnapshotSeries, ...]] | None = None
        self._targets: dict[GroupKey, Target] = {}  # each group's target as last made (rebuilt when renamed)
        # Groups whose snapshot list this poll could not read (their store, namespace or list failed), and since
        # when: the start of the last poll that read them, None if none did.
        self._unread: set[GroupKey] = set()
        self._unread_since: dict[GroupKey, datetime | None] = {}
        # Parts whose group list this poll could not read: (store, None) its namespace list, (store, ns) one
        # namespace. Groups never read there are not known at all (a first poll), so "unread" must also reach
        # the targets the store's backup tasks name: else their data, never read, passes for none.
        self._blind: set[tuple[str, str | None]] = set()
        self._last_poll_at: datetime | None = None
        self._runs_out: tuple[JobRun, ...] = ()
        # Namespaces a PVE source claims (`pbs_namespace`): guests there are keyed by (cluster, VMID).
        self._clusters = dict(config.guest_namespaces)
        self._decoder = SnapshotDecoder(self.name, self._clusters)
        self._offsite = config.offsite
        self._endpoint = endpoint_of(config.url)
        self._sync_items: list[Any] = []
        # Each job list as last read: one that fails this once (a 503 from a busy PBS) keeps its jobs, so that a
        # verify or prune job does not vanish for a poll and take its findings (unverified, retention) with it.
        self._job_items: dict[JobKind, list[Any]] = {}
        self._remotes = RemoteScanner(self.name, config.offsite, self._clusters)

    async def poll(self) -> Observation:
        observed_at = self._clock()
        problems: list[str] = []
        clock = await self._get("/nodes/localhost/time", dict)
        timezone = str(clock.get("timezone") or "UTC")
        server_now = epoch(clock.get("time")) or observed_at
        listed = await self._get("/admin/datastore", list)
        maintenance = {
            require_name(item, "store", "/admin/datastore", self._protocol): item.get("maintenance") for item in listed
        }
        stores = [s for s in maintenance if not self._stores_wanted or s in self._stores_wanted]
        # With no group known yet every snapshot list is read whatever the tasks say: the lists are read while the
        # task list is paged through (a first poll of a big PBS waited seconds for 20,000 tasks before reading one).
        read_now = not self._groups
        if read_now:
            self._unread, self._blind = set(), set()
        try:
            async with asyncio.TaskGroup() as group:
                usage_task = group.create_task(self._partial(problems, "datastore usage", self._usage, stores))
                jobs_task = group.create_task(self._jobs(timezone, problems))
                tasks_task = group.create_task(self._tasks(server_now, problems))
                if read_now:
                    read_task = group.create_task(self._read_groups(stores, set(stores), problems))
        except BaseExceptionGroup as failed:
            # A TaskGroup wraps what its tasks raise; the collector needs the SourceError itself (its message,
            # whether it is permanent), not "internal error".
            error = first_source_error(failed)
            if error is None:
                raise
            raise error from None
        jobs, prune_keys, verify_last = jobs_task.result()
        new_tasks = tasks_task.result()
        usage = usage_task.result() or {}
        # An estimate is past or not by the board's clock, as PBS's own GUI tells by the browser's: a PBS clock
        # gone wrong must not turn every store's estimate into "not growing".
        datastores = [
            parse_usage(self.name, usage.get(s) or [{"store": s}], maintenance[s], observed_at, problems)
            for s in stores
        ]
        refresh = self._stores_with_new_verification(new_tasks, verify_last, server_now)
        self._record_runs(new_tasks, prune_keys, server_now, problems)
        if read_now:
            # A verification that ended while the lists were being read may be missing from them, and it is now
            # seen: its store is read again next time.
            ended = _verified_since(new_tasks, jobs, server_now)
            self._refresh_pending = (set(stores) - read_task.result()) | (ended & set(stores))
        else:
            # A store is marked done only once its snapshot lists were read again without failure.
            refresh = (refresh | self._refresh_pending) & set(stores)
            self._unread, self._blind = set(), set()
            self._refresh_pending = refresh - await self._read_groups(stores, refresh, problems)
        self._unread_since = {
            key: self._unread_since.get(key, self._last_poll_at if key in self._groups else None)
            for key in self._unread
        }
        await self._remotes.refresh(
            self._get, self._partial, self._sync_items, self._groups, self._snapshots, server_now, problems
        )
        self._last_server_time = server_now
        self._last_poll_at = observed_at
        return self._observation(observed_at, timezone, datastores, jobs, problems)

    async def _usage(self, stores: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each wanted store's records in the usage list: one, unless PBS lists a store more than once."""
        items = await self._get("/status/datastore-usage", list)
        out: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if isinstance(item, dict) and item.get("store") in stores:
                out.setdefault(str(item["store"]), []).append(item)
        return out

    async def _jobs(self, timezone: str, problems: list[str]) -> tuple[list[Job], dict[Any, str], dict[str, str]]:
        async def listing(path: str, params: dict[str, Any] | None = None) -> list[Any]:
            try:
                return await self._get(path, list, params)
            except SourceProtocolError as exc:
                if path == "/admin/sync" and exc.http_status == 400:
                    return await self._get(path, list)  # PBS < 3.3 has no sync-direction parameter
                if path == "/admin/gc" and exc.http_status == 404:
                    return []  # PBS < 3.2 has no GC job view: not supported, not a problem (§3.9)
                raise

        kinds = [
            (JobKind.PRUNE, "/admin/prune", None),
            (JobKind.VERIFY, "/admin/verify", None),
            # Push jobs are hidden unless sync-direction=all is asked for (PBS >= 3.3, §3.9).
            (JobKind.SYNC, "/admin/sync", {"sync-direction": "all"}),
            (JobKind.GC, "/admin/gc", None),
        ]
        results = await asyncio.gather(
            *(self._partial(problems, f"{kind.value} jobs", listing, path, params) for kind, path, params in kinds)
        )
        jobs: list[Job] = []
        prune_keys: dict[Any, str] = {}
        verify_last: dict[str, str] = {}
        for (kind, _path, _params), items in zip(kinds, results, strict=True):
            if items is not None:
                self._job_items[kind] = list(items)
        listed = [self._job_items.get(kind, []) for kind, _path, _params in kinds]  # its problem is said meanwhile
        self._sync_items = listed[2]  # the remotes' side is read once the groups are known
        refused: list[str] = []
        for (kind, path, _params), items in zip(kinds, listed, strict=True):
            for item in items:
                try:
                    job = parse_job(self.name, kind, item, timezone, path, self._protocol)
                except SourceProtocolError as exc:  # one job PBS could not have written costs that job
                    refused.append(str(exc))
                    continue
                jobs.append(job)
                if kind is JobKind.PRUNE:
                    prune_keys.setdefault((job.store, str(item.get("ns") or "") or None), job.job_id)
                    if job.last_run is not None:
                        # Two prune jobs may share a store and namespace: the worker id cannot tell them apart,
                        # the job's own last-run UPID can.
                        self._prune_upids[job.last_run.run_id] = job.job_id
                if kind is JobKind.VERIFY and job.last_run and job.store:
                    verify_last[job.job_id] = f"{job.store}\0{job.last_run.run_id}"
        problems.extend(left_out(refused))  # one line, however many: a notice, not a flood
        return jobs, prune_keys, verify_last

    async def _tasks(self, server_now: datetime, problems: list[str]) -> list[dict[str, Any]]:
        if self._last_server_time is None:
            since = server_now - TASK_LOOKBACK
        else:
            since = self._last_server_time - TASK_OVERLAP
            # Tasks are filtered by *start* time: keep reading a running task until it has ended.
            running = [r.started_at for r in self._runs.values() if r.ended_at is None]
            running += self._verify_running.values()
            since = min([since, *running])
        tasks: list[dict[str, Any]] = []
        params: dict[str, Any] = {"since": int(since.timestamp()), "limit": TASK_PAGE, "start": 0}
        for _page in range(MAX_TASK_PAGES):
            payload = await self._client.get_json("/nodes/localhost/tasks", params)
            page = unwrap(payload, "/nodes/localhost/tasks", list, self._protocol)
            tasks += [t for t in page if isinstance(t, dict)]
            total = as_int(payload.get("total")) or 0  # approximate: returned + start, +1 if more (§3.7)
            if len(page) < TASK_PAGE or total <= params["start"] + len(page):
                break
            params["start"] += len(page)
        else:
            problems.append(older_tasks_not_read(f"task list: more than {MAX_TASK_PAGES * TASK_PAGE:,} tasks", since))
        return tasks

    def _stores_with_new_verification(
        self, tasks: list[dict[str, Any]], verify_last: dict[str, str], server_now: datetime
    ) -> set[str]:
        stores: set[str] = set()
        finished: set[str] = set()
        for task in tasks:
            if not str(task.get("worker_type", "")).startswith(VERIFY_PREFIX):
                continue
            upid = str(task.get("upid"))
            if task.get("endtime") is None:
                started = epoch(task.get("starttime")) or datetime.fromtimestamp(0, UTC)
                self._verify_running[upid] = started
                continue
            self._verify_running.pop(upid, None)
            finished.add(upid)
            if upid not in self._verify_seen:
                stores.add(str(task.get("worker_id") or "").split(":", 1)[0])
        # The overlap re-reads the last poll's tail, so remembering one batch is enough (and stays small).
        self._verify_seen = finished
        horizon = server_now - TASK_LOOKBACK  # a verification "running" for a week is not waited for any more
        self._verify_running = {u: at for u, at in self._verify_running.items() if at >= horizon}
        for job_id, marker in verify_last.items():
            # A verify job's last run can change without us seeing its task (task list filtered by privileges).
            if self._verify_last.get(job_id) != marker:
                stores.add(marker.split("\0", 1)[0])
        self._verify_last = verify_last
        return stores

    def _record_runs(
        self, tasks: list[dict[str, Any]], prune_keys: dict[Any, str], server_now: datetime, problems: list[str]
    ) -> None:
        refused: list[str] = []
        for task in tasks:
            job_key = task_job_key(self.name, task, prune_keys)
            if job_key is not None:
                try:
                    run = parse_task(self.name, task, job_key, "/nodes/localhost/tasks", self._protocol)
                except SourceProtocolError as exc:  # one task PBS could not have written costs that task
                    refused.append(str(exc))
                    continue
                if self._runs.get(run.run_id) != run:  # a task re-read unchanged keeps its object (and identity)
                    self._runs[run.run_id] = run
        problems.extend(left_out(refused))
        for upid, job_id in self._prune_upids.items():
            # Credit a prune run to the job whose last-run UPID it is (also a run recorded under its neighbour).
            known = self._runs.get(upid)
            job_key = f"{self.name}/prune/{job_id}"
            if known is not None and known.job_key != job_key and known.job_key.startswith(f"{self.name}/prune/"):
                self._runs[upid] = evolve(known, job_key=job_key)
        horizon = server_now - TASK_LOOKBACK
        # Runs still running after the look-back are dropped too: nothing may stay RUNNING forever.
        self._runs = {k: r for k, r in self._runs.items() if r.started_at >= horizon}
        self._prune_upids = {u: j for u, j in self._prune_upids.items() if u in self._runs}

    async def _read_groups(self, stores: list[str], refresh: set[str], problems: list[str]) -> set[str]:
        """Read every namespace's groups (and changed snapshot lists); return the stores read without failure."""
        listed = await asyncio.gather(
            *(self._partial(problems, f"datastore '{s}'", self._namespaces, s, problems) for s in stores)
        )
        pairs = [(store, ns) for store, names in zip(stores, listed, strict=True) for ns in names or []]
        unreadable = {store for store, names in zip(stores, listed, strict=True) if names is None}
        self._blind.update((store, None) for store in unreadable)
        results = await asyncio.gather(*(self._read_namespace(s, ns, s in refresh, problems) for s, ns in pairs))
        seen = {key for keys, _complete in results for key in keys}
        self._unread.update(key for key in self._groups if key[0] in unreadable)
        failed = unreadable | {
            store for (store, _ns), (_keys, complete) in zip(pairs, results, strict=True) if not complete
        }
        for key in list(self._groups):
            # Groups that vanished (pruned away) are forgotten; an unreadable store keeps its last known groups.
            if key not in seen and key[0] not in unreadable:
                self._groups.pop(key, None)
                self._unfinished.discard(key)
                self._assembled = None
                self._snapshots.pop(key, None)
                self._names.pop(key, None)
                self._newest_comment.pop(key, None)
                self._settled.pop(key[:2], None)
        return set(stores) - failed

    async def _namespaces(self, store: str, problems: list[str]) -> list[str]:
        """The store's namespaces, each once; an item PBS could not have written costs that item, not the store."""
        path = f"/admin/datastore/{segment(store)}/namespace"
        names: dict[str, None] = {}
        refused: list[str] = []
        for item in await self._get(path, list):
            try:
                names[require_name(item, "ns", path, self._protocol)] = None
            except SourceProtocolError as exc:
                refused.append(str(exc))
        problems.extend(left_out(refused))
        return list(names)

    async def _read_namespace(
        self, store: str, ns: str, refresh: bool, problems: list[str]
    ) -> tuple[list[GroupKey], bool]:
        """-> (the namespace's groups, whether everything that needed reading was read)."""
        what = f"datastore '{store}' namespace '{ns or '/'}'"
        path = f"/admin/datastore/{segment(store)}/groups"
        settled = None if refresh else self._settled.get((store, ns))
        listed = await self._partial(
            problems, what, self._group_list, path, ns, problems, settled[0] if settled else None
        )
        if listed is None:
            known = [key for key in self._groups if key[:2] == (store, ns)]
            self._unread.update(known)
            self._blind.add((store, ns))
            return known, False
        body, groups = listed
        if groups is None:
            assert settled is not None
            return list(settled[1]), True
        self._settled.pop((store, ns), None)
        current = {(store, ns, backup_type, backup_id): state for backup_type, backup_id, state in groups}
        complete = True
        changed = [
            key
            for key, state in current.items()
            if refresh or self._groups.get(key) != state or key in self._unfinished
        ]
        if changed:
            whole = len(changed) >= max(WHOLE_NAMESPACE_MIN, WHOLE_NAMESPACE_SHARE * len(current))
            fetched = await self._partial(problems, what, self._fetch_snapshots, store, ns, changed, whole, problems)
            complete = fetched is not None
            if fetched is None:
                self._unread.update(changed)  # as last read, if ever
            else:
                for key in changed:
                    series = fetched.get(key)
                    if series is None:  # a group without a snapshot (all pruned since its list was read)
                        self._snapshots.pop(key, None)
                    elif series != self._snapshots.get(key):  # the same again stays the very same object
                        self._snapshots[key] = series
                    if series is not None and series.unfinished():
                        self._unfinished.add(key)
                    else:
                        self._unfinished.discard(key)
                    self._groups[key] = current[key]
                self._assembled = None
        for key, state in current.items():
            name = state.comment or self._newest_comment.get(key) or f"{key[2]}/{key[3]}"
            if self._names.get(key) != name:
                self._names[key] = name
                self._assembled = None
        if complete and body is not None and self._unfinished.isdisjoint(current):
            self._settled[(store, ns)] = (body, list(current))
        return list(current), complete

    async def _group_list(
        self, path: str, ns: str, problems: list[str], settled: bytes | None
    ) -> tuple[bytes | None, list[tuple[str, str, GroupState]] | None]:
        """-> (the list as read, when it decoded as the API documents it; its groups, or None when it is the very
        list `settled` was)."""
        body = await self.client.get_body(path, {"ns": ns})
        if body == settled:
            return body, None
        typed = decode_group_page(body)
        if typed is not None:
            return body, typed
        items = unwrap(self.client.decode_json(body, path), path, list, self._protocol)
        groups, refused = [], []
        for item in items:
            try:
                groups.append(parse_group(item, path, self._protocol))
            except SourceProtocolError as exc:  # one group PBS could not have written costs that group
                refused.append(str(exc))
        problems.extend(left_out(refused))
        return None, groups

    async def _fetch_snapshots(
        self, store: str, ns: str, keys: list[GroupKey], whole: bool, problems: list[str]
    ) -> dict[GroupKey, SnapshotSeries]:
        path = f"/admin/datastore/{segment(store)}/snapshots"
        requests: list[dict[str, Any]] = [{"ns": ns}]  # the whole namespace in one answer
        if not whole:
            requests = [{"ns": ns, "backup-type": key[2], "backup-id": key[3]} for key in keys]
        refused: list[str] = []
        pages = await asyncio.gather(*(self._snapshot_page(path, params, store, ns, refused) for params in requests))
        problems.extend(left_out(refused))
        listed: dict[GroupKey, ListedGroup] = {}
        for page in pages:
            for group in page:
                key = (store, ns, group.backup_type, group.backup_id)
                if key in listed:
                    listed[key].merge(group)
                else:
                    listed[key] = group
        out: dict[GroupKey, SnapshotSeries] = {}
        twice: list[str] = []
        for key, group in listed.items():
            if group.comment is not None:
                self._newest_comment[key] = group.comment[1]
            out[key] = group.series(twice)
        problems.extend(left_out(twice))
        return out

    async def _snapshot_page(
        self, path: str, params: dict[str, Any], store: str, ns: str, refused: list[str]
    ) -> list[ListedGroup]:
        """The groups of one snapshot list; each record PBS could not have written costs itself, said in
        `refused`."""
        body = await self.client.get_body(path, params)
        typed = self._decoder.page(body, store=store, ns=ns, refused=refused)
        if typed is not None:
            return typed
        page = unwrap(self.client.decode_json(body, path), path, list, self._protocol)
        cluster = self._clusters.get(ns)
        parsed = []
        for item in page:  # one record PBS could not have written costs that record, not the namespace
            try:
                parsed.append(
                    parse_snapshot(
                        item, source=self.name, store=store, ns=ns, path=path, error=self._protocol, cluster=cluster
                    )
                )
            except SourceProtocolError as exc:
                refused.append(str(exc))
        return listed_groups(parsed)

    def _observation(
        self, observed_at: datetime, timezone: str, datastores: list[Datastore], jobs: list[Job], problems: list[str]
    ) -> Observation:
        if self._assembled is None:
            targets: dict[str, Target] = {}
            keys = sorted(self._groups)
            made = self._targets
            self._targets = {}
            for key in keys:
                name = self._names.get(key, f"{key[2]}/{key[3]}")
                target = made.get(key)
                if target is None or target.name != name:  # made once per group and name, not once per change
                    target = make_target(self.name, key[2], key[3], name, self._clusters.get(key[1]))
                self._targets[key] = target
                targets.setdefault(target.key, target)  # one guest backed up to several stores/namespaces
            series = tuple(self._snapshots[key] for key in keys if key in self._snapshots)
            self._assembled = (tuple(targets.values()), series)
        targets_out, series_out = self._assembled
        runs = sorted(self._runs.values(), key=attrgetter("started_at", "run_id"))
        if self._clusters:
            runs = self._attributed(runs)
        if (listed := tuple(runs)) != self._runs_out:  # the same tuple while nothing changed: history skips them
            self._runs_out = listed
        return Observation(
            source=self.name,
            kind=self.kind,
            observed_at=observed_at,
            timezone=timezone,
            targets=targets_out,
            series=series_out,
            jobs=tuple(jobs),
            runs=self._runs_out,
            datastores=tuple(datastores),
            problems=tuple(problems),
            remote_copies=self._remotes.copies,
            offsite_locations=self._offsite_locations(),
            endpoint=self._endpoint,
            remotes_visible=self._remotes.visible,
            unread=self._unread_targets(),
        )

    def _unread_targets(self) -> tuple[tuple[str, datetime | None], ...]:
        """Each target with a group this poll could not read, with the earliest since when of its groups (never
        read comes first)."""
        found: dict[str, datetime | None] = {}
        for key, since in self._unread_since.items():
            name = self._group_target(key)
            earlier = found.get(name, since)
            found[name] = None if since is None or earlier is None else min(since, earlier)
        for name in self._blind_targets():
            found.setdefault(name, None)  # never read where it may be
        return tuple(found.items())

    def _blind_targets(self) -> set[str]:
        """The targets a store's backup tasks name, where a group list of that store could not be read: their
        backups may be exactly there. A target whose group was read in another namespace of the store is left
        out (the task is its), unless the store's namespace list itself failed."""
        if not self._blind:
            return set()
        prefix = f"{self.name}/backup/"
        named: dict[str, set[str]] = {}  # store -> target keys of its backup tasks, without cluster
        for run in self._runs.values():
            if run.target_key is not None and run.job_key.startswith(prefix):
                named.setdefault(run.job_key.removeprefix(prefix), set()).add(run.target_key)
        read: dict[str, set[str]] = {store: set() for store in named}  # store -> targets of its groups read
        for key in self._groups:
            if key[0] in read and key not in self._unread:
                read[key[0]].add(self._group_target(key))
        out: set[str] = set()
        for store, ns in self._blind:
            if store in named:
                out |= {key for task_key in named[store] for key in self._keys_in(task_key, ns)} - read[store]
        return out

    def _keys_in(self, task_key: str, ns: str | None) -> set[str]:
        """The target keys a task's group has in namespace `ns` (None: in any namespace): a task names no
        namespace, and a guest in a namespace a PVE cluster claims is keyed by that cluster."""
        vmid = guest_vmid(task_key)
        if vmid is None:
            return {task_key}
        clusters = {None, *self._clusters.values()} if ns is None else {self._clusters.get(ns)}
        return {guest_key(vmid, cluster) for cluster in clusters}

    def _group_target(self, key: GroupKey) -> str:
        made = self._targets.get(key)
        return made.key if made is not None else target_key(self.name, key[2], key[3], self._clusters.get(key[1]))

    def _attributed(self, runs: list[JobRun]) -> list[JobRun]:
        """A backup task names store and group but not the namespace: with namespaces claimed by PVE clusters
        (`pbs_namespace`), a guest's task belongs to the one namespace of that store holding the guest, and to
        no guest when several do (two clusters reusing the VMID)."""
        homes: dict[tuple[str, int], set[str]] = {}
        for store, ns, backup_type, backup_id in self._groups:
            if backup_type in ("vm", "ct") and (vmid := vmid_of(backup_id)) is not None:  # "host/100" is no guest
                homes.setdefault((store, vmid), set()).add(ns)
        out = []
        for run in runs:
            vmid = guest_vmid(run.target_key or "")
            if vmid is not None:
                namespaces = homes.get((run.job_key.rsplit("/", 1)[-1], vmid), set())
                only = next(iter(namespaces)) if len(namespaces) == 1 else None
                key = guest_key(vmid, self._clusters.get(only)) if only is not None else None
                if key != run.target_key:
                    run = evolve(run, target_key=key)
            out.append(run)
        return out

    def _offsite_locations(self) -> tuple[str, ...]:
        """Locations ("store", "store/ns") the source's `offsite:` setting marks offsite."""
        setting = self._offsite
        if not setting:
            return ()
        out = set()
        for store, ns, _type, _id in self._groups:
            location = f"{store}/{ns}" if ns else store
            parts = location.split("/")
            names = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]  # the location and its parents
            if setting is True or offsite_named(setting, *names):
                out.add(location)
        return tuple(sorted(out))


def _verified_since(tasks: list[dict[str, Any]], jobs: list[Job], since: datetime) -> set[str]:
    """The stores a verification ended in at or after `since`, as its task or its job's last run tells."""
    stores = {
        str(task.get("worker_id") or "").split(":", 1)[0]
        for task in tasks
        if str(task.get("worker_type", "")).startswith(VERIFY_PREFIX)
        and (ended := epoch(task.get("endtime"))) is not None
        and ended >= since
    }
    for job in jobs:
        run = job.last_run
        if job.kind is JobKind.VERIFY and job.store and run and run.ended_at and run.ended_at >= since:
            stores.add(job.store)
    return stores


def create(config: PbsSourceConfig) -> PbsSource:
    return PbsSource(config)


__all__ = ["PbsSource", "create"]
