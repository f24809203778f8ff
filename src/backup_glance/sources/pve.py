"""Proxmox VE source: guests, vzdump jobs, coverage, vzdump runs (per guest, from task logs) and backup files on
dir/NFS storages -> `Observation`.

Sits under `sources/`; owns the PVE wire (proxmox/pve-manager `PVE/API2/Backup.pm`, `Tasks.pm`) and makes no verdicts.
PBS-backed storages are not listed here: the PBS source reads those snapshots directly, with verification.
Task logs are fetched once per task (again only while a task is still running); tasks are read since the last
poll, so a poll's cost follows what changed, not how much history exists.
"""

from __future__ import annotations

import asyncio
import operator
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec.structs import replace as evolve

from ..config import PveSourceConfig
from ..errors import SourceError, SourceProtocolError
from ..model import Job, JobRun, Observation, RunOutcome, Snapshot, Target
from ..schedule import Schedule
from ._http import DEFAULT_MAX_BYTES
from ._proxmox import ProxmoxSource, epoch, first_source_error, older_tasks_not_read, unwrap, upid_node
from ._pve_wire import (
    JOB_MATCH_WINDOW,
    VzdumpLog,
    file_snapshot,
    guest_target,
    job_calendars,
    job_label,
    match_job,
    parse_job,
    parse_vzdump_log,
    selection_gaps,
    slot_of,
    task_runs,
)
from ._util import as_int, as_name, as_vmid, guest_key, guest_vmid, left_out, offsite_named, segment, vmid_of

TASK_LOOKBACK = timedelta(days=7)
_TARGET_FIELDS = ("vmid", "type", "node", "name", "lock", "template")  # all `guest_target` reads of a guest
# All that is read of a task item (its run, its log, its job): a week of tasks is kept, 10,000 at 10,000 guests.
_TASK_FIELDS = ("upid", "node", "starttime", "endtime", "status", "id")
TASK_OVERLAP = timedelta(minutes=2)
TASK_PAGE = 500
MAX_TASK_PAGES = 20
LOG_PAGE = 5000  # lines per log request; PVE's default is 50
FILE_STORAGE_TYPES_EXCLUDED = {"pbs"}  # read from PBS directly
# Of one job's runs in the same slot (one task per node), the worst decides the job's last run.
_OUTCOME_RANK = {
    RunOutcome.FAILED: 0,
    RunOutcome.UNKNOWN: 1,
    RunOutcome.WARNING: 2,
    RunOutcome.RUNNING: 3,
    RunOutcome.OK: 4,
}


class PveSource(ProxmoxSource):
    kind = "pve"
    auth_scheme = "PVEAPIToken"
    auth_separator = "="

    def __init__(
        self,
        config: PveSourceConfig,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(config, max_bytes=max_bytes, clock=clock)
        self._node_read: dict[str, datetime] = {}  # node -> server time of its last successful task read
        self._tasks: dict[str, dict[str, Any]] = {}  # upid -> task item, within TASK_LOOKBACK
        self._task_node: dict[str, str] = {}  # upid -> the node name whose task list returned it
        # upid -> parsed log of a finished task: final, never re-read (`_Done` once its runs are made)
        self._logs: dict[str, VzdumpLog | _Done] = {}
        self._run_cache: dict[str, tuple[tuple[object, ...], tuple[JobRun, ...]]] = {}
        # The runs handed out last poll: handed out again as the very same tuple while they are the same runs,
        # so that bounds and history skip them at once instead of comparing 20,000 runs (2,000 guests x 10 days).
        self._last_runs: tuple[JobRun, ...] = ()
        self._running_logs: dict[str, VzdumpLog] = {}  # upid -> log of a task that was running when read
        # With `pbs_namespace` set, this cluster's guests are "guest:<source>/<vmid>", as the PBS source keys
        # the groups in that namespace; otherwise plain "guest:<vmid>".
        self._cluster = config.name if config.pbs_namespace is not None else None
        self._offsite = config.offsite
        # The guest fields a Target is made of -> that Target, from the last poll; and the targets last handed
        # out, handed out again (the same tuple) while no guest changed, so downstream reuse holds.
        self._target_memo: dict[tuple[Any, ...], Target | None] = {}
        self._targets_out: tuple[Target, ...] = ()
        self._guests_read: _GuestsRead | None = None
        self._jobs_read: _JobsRead | None = None

    async def poll(self) -> Observation:
        observed_at = self._clock()
        problems: list[str] = []
        guests_read = await self._guests()
        problems.extend(guests_read.problems)
        nodes = guests_read.nodes
        clock_node, clock = await self._node_time(nodes)
        timezone = str(clock.get("timezone") or "UTC")
        server_now = epoch(clock.get("time")) or observed_at
        try:
            async with asyncio.TaskGroup() as group:
                jobs_task = group.create_task(self.client.get_body("/cluster/backup"))
                uncovered_task = group.create_task(
                    self._partial(problems, "not-backed-up", self._get, "/cluster/backup-info/not-backed-up", list)
                )
                group.create_task(self._read_tasks(nodes, server_now, problems))
                files_task = group.create_task(self._read_files(nodes, problems))
        except BaseExceptionGroup as failed:
            # A TaskGroup wraps what its tasks raise; the collector needs the SourceError itself (a 403 on
            # /cluster/backup is permanent), not "internal error".
            error = first_source_error(failed)
            if error is None:
                raise
            raise error from None
        jobs_read = self._jobs_of(jobs_task.result(), guests_read, timezone)
        problems.extend(jobs_read.problems)
        jobs, unread, targets = list(jobs_read.jobs), jobs_read.unread, guests_read.targets
        said = uncovered_task.result()
        uncovered = sorted(
            {
                guest_key(vmid, self._cluster)
                for item in said or []
                if isinstance(item, dict) and (vmid := as_vmid(item.get("vmid"))) is not None
            }
        )
        jobs = _place_unread(jobs, unread, targets, None if said is None else set(uncovered), problems)
        await self._read_logs({clock_node: timezone}, timezone, problems)
        calendars = job_calendars(jobs)
        runs = self._runs(jobs, calendars)
        if len(runs) != len(self._last_runs) or not all(map(operator.is_, runs, self._last_runs)):
            self._last_runs = tuple(runs)
        job_level: dict[str, list[JobRun]] = {}  # by job, grouped once: not every run read again for every job
        for run in runs:
            if run.target_key is None:
                job_level.setdefault(run.job_key, []).append(run)
        jobs = [self._with_last_run(job, job_level.get(job.key, []), calendars.get(job.key)) for job in jobs]
        snapshots = tuple(files_task.result())
        offsite = sorted({s.location for s in snapshots if offsite_named(self._offsite, s.location)})
        return Observation(
            source=self.name,
            kind=self.kind,
            observed_at=observed_at,
            timezone=timezone,
            targets=targets,
            snapshots=snapshots,
            jobs=tuple(jobs),
            runs=self._last_runs,
            uncovered_target_keys=tuple(uncovered),
            problems=tuple(problems),
            offsite_locations=tuple(offsite),
        )

    async def _guests(self) -> _GuestsRead:
        """The guests of `/cluster/resources`; a list that is the very bytes of the last poll's is not read again
        (a poll with no news at 2,000 guests spent a third of its time there)."""
        path = "/cluster/resources"
        body = await self.client.get_body(path, {"type": "vm"})
        if self._guests_read is None or body != self._guests_read.body:
            listed = [
                g
                for g in unwrap(self.client.decode_json(body, path), path, list, self._protocol)
                if isinstance(g, dict)
            ]
            nodes = sorted({node for g in listed if (node := as_name(g.get("node")))}) or ["localhost"]
            problems: list[str] = []
            guests = _unique_guests(listed, problems)
            self._guests_read = _GuestsRead(body, nodes, guests, tuple(problems), self._targets(guests))
        return self._guests_read

    def _jobs_of(self, body: bytes, guests: _GuestsRead, timezone: str) -> _JobsRead:
        """The vzdump jobs of `/cluster/backup`, read again only when that list, the guests or the zone changed."""
        known = self._jobs_read
        if known is not None and known.body == body and known.guests is guests and known.timezone == timezone:
            return known
        path = "/cluster/backup"
        problems: list[str] = []
        items = unwrap(self.client.decode_json(body, path), path, list, self._protocol)
        jobs, unread = self._jobs(items, guests.guests, timezone, problems)
        self._jobs_read = _JobsRead(body, guests, timezone, tuple(jobs), unread, tuple(problems))
        return self._jobs_read

    def _jobs(
        self, items: list[Any], guests: list[dict[str, Any]], timezone: str, problems: list[str]
    ) -> tuple[list[Job], dict[str, _Unread]]:
        """The vzdump jobs, each id once, and those whose guest selection could not be fully read."""
        jobs: dict[str, Job] = {}
        unread: dict[str, _Unread] = {}
        repeated: dict[str, tuple[str, int]] = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            said: list[str] = []
            job = parse_job(self.name, index, item, guests, timezone, self._cluster, said)
            if job.key in jobs:
                # Two jobs under one key would be one job downstream, with either's guests: the first listed (jobs.cfg
                # order) is kept, the same one every poll.
                label, count = repeated.get(job.key, (job_label(item, index), 1))
                repeated[job.key] = (label, count + 1)
                continue
            jobs[job.key] = job
            problems.extend(said)
            if selection_gaps(item):
                node = item.get("node")
                unread[job.key] = _Unread(job_label(item, index), node if isinstance(node, str) and node else None)
        problems.extend(f"backup job {label}: listed {n} times; the first is used" for label, n in repeated.values())
        return list(jobs.values()), unread

    def _targets(self, guests: list[dict[str, Any]]) -> tuple[Target, ...]:
        """The guests as targets, sorted; a guest whose fields are as last poll keeps its Target."""
        memo: dict[tuple[Any, ...], Target | None] = {}
        targets: list[Target] = []
        for guest in guests:
            values = [guest.get(name) for name in _TARGET_FIELDS]
            fields = (*values, *map(type, values))  # 1 and True are equal keys but not the same name
            try:
                known = fields in memo or fields in self._target_memo
            except TypeError:  # a field that is not a plain value: no memo for this guest
                target = guest_target(self.name, guest, self._cluster)
            else:
                if known:
                    target = memo[fields] if fields in memo else self._target_memo[fields]
                else:
                    target = guest_target(self.name, guest, self._cluster)
                memo[fields] = target
            if target is not None:
                targets.append(target)
        targets.sort(key=_target_order)
        self._target_memo = memo
        old = self._targets_out
        if len(old) != len(targets) or any(a is not b for a, b in zip(old, targets, strict=True)):
            self._targets_out = tuple(targets)
        return self._targets_out

    async def _node_time(self, nodes: list[str]) -> tuple[str, dict[str, Any]]:
        """`/nodes/X/time` of the first node that answers: one node down must not take the cluster with it."""
        failure: SourceError | None = None
        for node in nodes:
            try:
                return node, await self._get(f"/nodes/{segment(node)}/time", dict)
            except SourceError as exc:
                if not (isinstance(exc, SourceProtocolError) or (exc.http_status or 0) >= 500):
                    raise  # connection, TLS, timeout, auth: about the whole source, not this node
                failure = failure or exc
        assert failure is not None
        raise failure

    async def _read_tasks(self, nodes: list[str], server_now: datetime, problems: list[str]) -> None:
        horizon = server_now - TASK_LOOKBACK

        def since(node: str) -> datetime:
            last = self._node_read.get(node)
            if last is None:
                return horizon
            running = [
                epoch(t["starttime"])
                for upid, t in self._tasks.items()
                if t.get("endtime") is None and self._task_node.get(upid) == node
            ]
            # Tasks are listed by start time: reach back to this node's tasks that were still running.
            return max(horizon, min([last - TASK_OVERLAP, *(r for r in running if r is not None)]))

        pages = await asyncio.gather(
            *(
                self._partial(problems, f"tasks of node {node}", self._node_tasks, node, since(node), problems)
                for node in nodes
            )
        )
        for node, items in zip(nodes, pages, strict=True):
            if items is None:
                continue  # that node did not answer: keep what we knew of its tasks
            self._node_read[node] = server_now
            foreign: list[str] = []
            for item in items:
                upid = str(item["upid"])
                held = self._task_node.get(upid)
                if held is not None and held != node:
                    foreign.append(upid)
                    if upid_node(upid) != node:
                        continue  # the copy of the node that ran it (or the first read) stands
                self._tasks[upid] = {name: item[name] for name in _TASK_FIELDS if name in item}
                self._task_node[upid] = node
            if foreign:
                problems.append(
                    f"tasks of node {node}: {len(foreign)} also listed by another node; each is taken from the node"
                    f" its UPID names (first: {foreign[0][:120]!r})"
                )
        for upid, item in list(self._tasks.items()):
            started = epoch(item.get("starttime"))
            old = started is None or started < horizon
            # A task we saw running but can no longer ask about (its node left the cluster, or it is older than
            # the look-back) is forgotten rather than shown RUNNING forever.
            gone = item.get("endtime") is None and self._task_node.get(upid) not in nodes
            if old or gone:
                del self._tasks[upid]
                self._task_node.pop(upid, None)
                self._logs.pop(upid, None)
                self._running_logs.pop(upid, None)

    async def _node_tasks(self, node: str, since: datetime, problems: list[str]) -> list[dict[str, Any]]:
        path = f"/nodes/{segment(node)}/tasks"
        params: dict[str, Any] = {"typefilter": "vzdump", "source": "all", "since": int(since.timestamp())}
        params |= {"limit": TASK_PAGE, "start": 0}
        out: list[dict[str, Any]] = []
        unreadable = 0
        for _page in range(MAX_TASK_PAGES):
            payload = await self._client.get_json(path, params)
            page = unwrap(payload, path, list, self._protocol)
            for item in page:
                if not isinstance(item, dict) or not item.get("upid") or epoch(item.get("starttime")) is None:
                    unreadable += 1  # one task PVE could not have written costs that task, not the node's list
                    continue
                out.append(item)
            if len(page) < TASK_PAGE or (as_int(payload.get("total")) or 0) <= params["start"] + len(page):
                break
            params["start"] += len(page)
        else:
            listed = f"tasks of node {node}: more than {MAX_TASK_PAGES * TASK_PAGE:,} backup tasks"
            problems.append(older_tasks_not_read(listed, since))
        if unreadable:
            problems.append(f"tasks of node {node}: {unreadable} without an 'upid' or a start time left out")
        return out

    async def _read_logs(self, zones: dict[str, str], default_zone: str, problems: list[str]) -> None:
        """Read the logs of new and running tasks. Log times are node-local: each node's own time zone is asked
        for (once a poll, only for nodes with logs to read); `default_zone` stands in if a node does not say."""
        # Finished tasks are read once; a running task's log grows, so it is read again until it ends.
        wanted = [task for upid, task in self._tasks.items() if upid not in self._logs or task.get("endtime") is None]
        zones = dict(zones)

        async def zone_of(node: str) -> None:
            path = f"/nodes/{segment(node)}/time"
            clock = await self._partial(problems, f"time of node {node}", self._get, path, dict)
            zones[node] = str((clock or {}).get("timezone") or default_zone)

        log_nodes = {str(task.get("node") or "localhost") for task in wanted}
        await asyncio.gather(*(zone_of(node) for node in sorted(log_nodes - set(zones))))

        async def read(task: dict[str, Any]) -> None:
            upid = str(task["upid"])
            path = f"/nodes/{segment(str(task.get('node') or 'localhost'))}/tasks/{segment(upid)}/log"
            lines: list[str] = []
            while True:
                payload = await self._client.get_json(path, {"start": len(lines), "limit": LOG_PAGE})
                page = unwrap(payload, path, list, self._protocol)
                lines += [str(entry.get("t", "")) for entry in page if isinstance(entry, dict)]
                if len(page) < LOG_PAGE or len(lines) >= (as_int(payload.get("total")) or 0):
                    break
            started = epoch(task.get("starttime")) or datetime.fromtimestamp(0, UTC)
            parsed = parse_vzdump_log(lines, started, zones.get(str(task.get("node") or "localhost"), default_zone))
            if task.get("endtime") is not None:
                self._logs[upid] = parsed
                self._running_logs.pop(upid, None)
            else:
                self._running_logs[upid] = parsed

        await asyncio.gather(*(self._partial(problems, f"task log {t['upid']}", read, t) for t in wanted))

    async def _read_files(self, nodes: list[str], problems: list[str]) -> list[Snapshot]:
        seen_shared: set[str] = set()
        listings: list[tuple[str, str]] = []
        for node in nodes:
            path = f"/nodes/{segment(node)}/storage"
            storages = await self._partial(problems, f"storages of node {node}", self._get, path, list)
            for item in storages or []:
                if not isinstance(item, dict) or "backup" not in str(item.get("content", "")).split(","):
                    continue
                if str(item.get("type")) in FILE_STORAGE_TYPES_EXCLUDED:
                    continue
                name = str(item.get("storage"))
                if str(item.get("shared")) in ("1", "True", "true"):
                    if name in seen_shared:
                        continue  # a shared storage lists the same files on every node
                    seen_shared.add(name)
                listings.append((node, name))

        refused: list[str] = []

        async def content(node: str, storage: str) -> list[Snapshot]:
            path = f"/nodes/{segment(node)}/storage/{segment(storage)}/content"
            items = await self._get(path, list, {"content": "backup"})
            made = (file_snapshot(self.name, storage, i, self._cluster, refused) for i in items if isinstance(i, dict))
            return [s for s in made if s]

        results = await asyncio.gather(
            *(self._partial(problems, f"storage '{s}' on {n}", content, n, s) for n, s in listings)
        )
        problems.extend(left_out(refused))
        return [snap for snaps in results for snap in snaps or []]

    def _runs(self, jobs: list[Job], calendars: dict[str, Schedule | None]) -> list[JobRun]:
        jobs_signature = hash(tuple((j.key, j.enabled, j.schedule, j.target_keys) for j in jobs))
        runs: list[JobRun] = []
        cache: dict[str, tuple[tuple[object, ...], tuple[JobRun, ...]]] = {}
        for upid, task in sorted(self._tasks.items(), key=lambda kv: (as_int(kv[1].get("starttime")) or 0, kv[0])):
            parsed = self._logs.get(upid) or self._running_logs.get(upid)
            # Re-deriving thousands of per-guest runs from unchanged tasks each poll would make a quiet poll cost
            # as much as the first: reuse them while the task, its log and the jobs are the same.
            signature = (jobs_signature, task.get("endtime"), task.get("status"), id(parsed))
            cached = self._run_cache.get(upid)
            if cached is not None and cached[0] == signature:
                task_result = cached[1]
            else:
                vmids = set(parsed.vmids) if parsed else set()
                if (vmid := vmid_of(str(task.get("id") or ""))) is not None:
                    vmids.add(vmid)  # single-guest runs carry the VMID in the task id
                job = match_job(task, vmids, jobs, calendars)
                job_key = job.key if job else f"{self.name}/backup/manual"
                job_level = task_runs(self.name, task, job_key, None, self._cluster)
                finished = job_level[0].ended_at is not None
                if isinstance(parsed, _Done):
                    task_result = parsed.runs(job_level, job_key)
                    if not finished:  # a task listed as running again (no PVE does): its log is read again
                        self._logs.pop(upid, None)
                else:
                    task_result = task_runs(self.name, task, job_key, parsed, self._cluster)
                    if parsed is not None and finished and self._logs.get(upid) is parsed:
                        # A finished task's log says nothing more than the runs just made of it: those are kept.
                        parsed = self._logs[upid] = _Done(array("i", sorted(parsed.vmids)), task_result[1:])
                        signature = (*signature[:3], id(parsed))
            cache[upid] = (signature, task_result)
            runs.extend(task_result)
        self._run_cache = cache
        return runs

    @staticmethod
    def _with_last_run(job: Job, own: list[JobRun], calendar: Schedule | None) -> Job:
        """The job's newest run, from its job-level runs `own`; a job covering guests on several nodes runs one
        task per node for each slot, and the worst of that slot's tasks is its outcome (one node failing fails
        the run)."""
        if not own:
            return job

        def slot(run: JobRun) -> datetime:
            at = slot_of(calendar, run.started_at)
            return at if at is not None and run.started_at - at <= JOB_MATCH_WINDOW else run.started_at

        newest = slot(max(own, key=lambda r: r.started_at))
        same = [r for r in own if slot(r) == newest]
        worst = min(same, key=lambda r: (_OUTCOME_RANK.get(r.outcome, 1), -r.started_at.timestamp()))
        return replace(job, last_run=worst)


@dataclass(frozen=True, slots=True)
class _Done:
    """A finished task's log once its runs were made of it: the guests it named (to match the task to a job
    again) and its per-guest runs, which a change of jobs files under another job (the log holds nothing more;
    its per-guest results were 80,000 objects at 10,000 guests)."""

    vmids: array[int]
    guest_runs: tuple[JobRun, ...]

    def runs(self, job_level: tuple[JobRun, ...], job_key: str) -> tuple[JobRun, ...]:
        """The task's runs: its job-level run (made anew from the task) and the per-guest ones, under `job_key`."""
        return (*job_level, *(r if r.job_key == job_key else evolve(r, job_key=job_key) for r in self.guest_runs))


@dataclass(frozen=True, slots=True)
class _GuestsRead:
    """`/cluster/resources` as last read: its bytes and what was made of them."""

    body: bytes
    nodes: list[str]
    guests: list[dict[str, Any]]  # each VMID once
    problems: tuple[str, ...]
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class _JobsRead:
    """`/cluster/backup` as last read, with the guests and zone its jobs were resolved against."""

    body: bytes
    guests: _GuestsRead
    timezone: str
    jobs: tuple[Job, ...]
    unread: dict[str, _Unread]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Unread:
    """A job whose guest selection could not be fully read: how problem lines name it, and its `node`."""

    label: str
    node: str | None


def _unique_guests(guests: list[dict[str, Any]], problems: list[str]) -> list[dict[str, Any]]:
    """Each VMID once: PVE's VMIDs are cluster-wide, and two guests under one key would be one target with either's
    name and node. The one on the node first by name is kept, whatever order the list came in."""
    by_vmid: dict[int, list[dict[str, Any]]] = {}
    for guest in guests:
        if (vmid := as_vmid(guest.get("vmid"))) is not None:
            by_vmid.setdefault(vmid, []).append(guest)
    if all(len(same) == 1 for same in by_vmid.values()):
        return guests
    dropped: set[int] = set()
    for vmid, same in sorted(by_vmid.items()):
        if len(same) == 1:
            continue
        same.sort(key=lambda g: as_name(g.get("node")) or "")
        dropped.update(id(g) for g in same[1:])
        where = ", ".join(_shown_node(g) for g in same)
        problems.append(
            f"guest {vmid}: listed {len(same)} times (nodes {where}); the one on {_shown_node(same[0])} is used"
        )
    return [g for g in guests if id(g) not in dropped]


def _shown_node(guest: dict[str, Any]) -> str:
    return repr((as_name(guest.get("node")) or "")[:60])


def _place_unread(
    jobs: list[Job], unread: dict[str, _Unread], targets: tuple[Target, ...], said: set[str] | None, problems: list[str]
) -> list[Job]:
    """Jobs with a selection that could not be fully read take the guests PVE says are in a backup job (its
    not-backed-up does not list them) and no job read here holds: those are in a job not read in full, and calling
    them "in no backup job" would be this reader's failure shown as the guest's."""
    if not unread:
        return jobs
    if said is None:
        problems.extend(
            f"backup job {u.label}: its guests outside the part read may show as in no backup job"
            " (not-backed-up could not be read)"
            for u in unread.values()
        )
        return jobs
    placed = {key for job in jobs for key in job.target_keys}
    orphans = [t for t in targets if t.key not in placed and t.key not in said]
    out: list[Job] = []
    for job in jobs:
        where = unread.get(job.key)
        mine = (
            []
            if where is None
            else [t for t in orphans if where.node is None or (t.guest and t.guest.node == where.node)]
        )
        if where is None or not mine:
            out.append(job)
            continue
        named = ", ".join(str(t.guest.vmid) if t.guest else t.key for t in mine[:10])
        more = f" and {len(mine) - 10} more" if len(mine) > 10 else ""
        problems.append(
            f"backup job {where.label}: guests {named}{more} taken as in it: PVE says they are in a backup job,"
            " and no job read here holds them"
        )
        keys = sorted({*job.target_keys, *(t.key for t in mine)}, key=lambda k: (guest_vmid(k) or 0, k))
        out.append(replace(job, target_keys=tuple(keys)))
    return out


def _target_order(target: Target) -> int:
    return target.guest.vmid if target.guest else 0


def create(config: PveSourceConfig) -> PveSource:
    return PveSource(config)


__all__ = ["PveSource", "create"]
