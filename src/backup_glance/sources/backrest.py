"""Backrest source: Connect RPC (`POST /v1.Backrest/<Method>`, protojson) -> one `Observation` per poll.

Sits at the start of the flow (sources -> observations -> health). It owns Backrest's wire (see
`reference/backrest-restic.md` Part A): int64 values arrive as strings, zero values are omitted (every field is
read with a default), enums are names. It makes no verdicts.

`GetConfig` returns repository passwords and env secrets in plain text (A.4). The response is reduced at once to
plan ids, repo ids/guids and schedules (`_parse_config`); nothing else of it is kept, logged or forwarded.

What one poll reads:
- `GetConfig` (plans, repos, schedules) and `GetSummaryDashboard` (next run per plan; v1.6.0+, skipped for good
  once the server answers `unimplemented`/404; the PENDING operation gives the next run otherwise).
- operations: the first poll (and every `_FULL_RESYNC`) asks per plan for the newest `_INITIAL_OPS` operations
  (`{"selector": {"planId": ...}, "lastN": ...}`; a bare `{}` is rejected, A.6) and per repo for the newest
  `_SYSTEM_OPS` `_system_` operations (prune, check). Later polls send one request,
  `{"selector": {"modnoGte": <highest modno seen + 1>}}`: the oplog gives every insert *and* update a new,
  higher modno, so this returns exactly the operations that appeared or changed since (a running backup that
  finished, a pending one that started). If it returns `_MAX_CHANGES` or more, or a plan/repo appears that we
  have no history for, that part is read again in full. The first change query after a full read reaches back
  `_OVERLAP` modnos, for updates that landed while the full read's requests were in flight. A modno far above
  the others is not trusted as that cursor (`_advance_cursor`).

Operations are held between polls, so what is kept of each is bounded (`_MAX_MESSAGE`, `_MAX_ID`). A plan id or
repo guid that cannot be one (too long, or a lone surrogate no request can carry) costs that plan or repo.

Schedules: cron with `CLOCK_LOCAL`/default is evaluated in the Backrest host's zone, which the API does not
expose: `config.timezone`, or "UTC" when unset (set it when the host is not on UTC). `CLOCK_UTC` -> "UTC".
`maxFrequencyDays/Hours` -> an "interval" ScheduleRef.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import httpx

from ..clean import MARK, quoted
from ..config import BackrestSourceConfig
from ..errors import SourceError, SourceProtocolError
from ..model import Job, JobKind, JobRun, Observation, RunOutcome, ScheduleRef, Snapshot, Target
from ._bounds import clean_key
from ._http import HttpClient
from ._util import SourceBase, as_int, as_name, is_remote_uri, left_out, offsite_named, utc_now

log = logging.getLogger(__name__)

KIND = "backrest"
RPC = "/v1.Backrest/"
SYSTEM_PLAN = "_system_"  # prune, check, repo-level forget and stats ops use this plan id (A.5)
_INITIAL_OPS = 400  # per plan: one run makes ~3-4 ops (backup, index, forget), so ~100 runs of history
_SYSTEM_OPS = 200
_MAX_CHANGES = 2000  # more changes than this between two polls: resynchronise instead of trusting the delta
_OVERLAP = 256  # modnos re-read once after a full read (see `_read_changes`)
_KEEP_RUNS = 500  # per job, bounds memory of a long-running collector
_FULL_RESYNC = timedelta(hours=6)  # forgets operations Backrest garbage-collected
_INT64_MAX = 2**63 - 1  # oplog modnos are int64; a larger one is no oplog's and must not become our cursor
# The oplog's modno is one counter for the whole server, +1 for every insert and every update (sqlitestore.go),
# and a running backup updates its operation at most once a second (taskbackup.go): ten million is four months
# of that. A modno further than this above the next one below it is no step of that counter (`_advance_cursor`).
_MODNO_STEP = 10_000_000
_MAX_MESSAGE = 2000  # characters of an operation's message kept (the board shows 1,000)
_MAX_ID = 200  # plan, repo and snapshot ids, statuses: Backrest's own are a few dozen characters
# maxFrequencyDays/Hours beyond ten years is no schedule anyone means, and health adds it to dates: refuse it.
_MAX_INTERVAL_HOURS = 10 * 366 * 24
_OUTCOME = {
    "STATUS_SUCCESS": (RunOutcome.OK, ""),
    # A restic partial backup (exit 3): some files were not read, so the backup is not whole (A.5).
    "STATUS_WARNING": (RunOutcome.FAILED, "partial backup (warnings)"),
    "STATUS_ERROR": (RunOutcome.FAILED, ""),
    "STATUS_INPROGRESS": (RunOutcome.RUNNING, ""),
    "STATUS_USER_CANCELLED": (RunOutcome.FAILED, "cancelled by a user"),
    "STATUS_SYSTEM_CANCELLED": (RunOutcome.FAILED, "cancelled by Backrest"),
}
_KINDS = {
    "operationBackup": "backup",
    "operationPrune": "prune",
    "operationCheck": "check",
    "operationRestore": "restore",  # a restore of one of the plan's snapshots: the restore test (A.5)
}


@dataclass(frozen=True, slots=True)
class _Plan:
    id: str
    repo: str
    schedule: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Repo:
    id: str
    guid: str
    prune: dict[str, Any] | None
    check: dict[str, Any] | None
    remote: bool = False  # the URI is on another host (decided from it at once; the URI itself is not kept)


@dataclass(frozen=True, slots=True)
class _Op:
    """An operation reduced to what we use; `kind` is backup | prune | check."""

    id: int
    modno: int
    flow_id: int
    plan_id: str
    repo_id: str
    kind: str
    status: str
    started: datetime
    ended: datetime | None
    message: str
    snapshot_id: str
    data_added: int | None
    total_bytes: int | None
    dry_run: bool
    copies: int = 1  # > 1: one answer listed it that many times (an oplog lists an operation once)

    @property
    def key(self) -> _Key:
        """What tells operations apart: the id, and what an update never changes, so that operations a broken
        server gave one id (all "7") stay apart while an update still replaces the operation it updates."""
        return (self.id, self.kind, self.plan_id, self.repo_id, self.flow_id)


_Key = tuple[int, str, str, str, int]


def _with_ids(items: list[Any], what: str, refused: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(id, item) for each item that is an object with an id; the others are named in `refused`, as are an id
    that cannot be one (`_unsendable`) and a second item with the same id."""
    found: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items, 1):
        item_id = as_name(item.get("id")) if isinstance(item, dict) else None
        if not item_id:
            refused.append(f"GetConfig: {what} {index} has no `id`")
        elif (why := _unsendable(item_id)) is not None:
            refused.append(f"GetConfig: {what} {quoted(item_id, 60)} {why}")
        elif item_id in found:
            refused.append(f"GetConfig: {what} {quoted(item_id, 60)} is listed twice (the first is read)")
        else:
            found[item_id] = item
    return list(found.items())


class BackrestSource(SourceBase):
    """Polls one Backrest instance; remembers operations by id so later polls ask only for changes."""

    def __init__(
        self,
        config: BackrestSourceConfig,
        *,
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = config.name
        self.kind = KIND
        self._zone = config.timezone or "UTC"
        self._clock = clock
        self._offsite = config.offsite
        auth = None
        if config.username and config.password is not None:
            auth = httpx.BasicAuth(config.username, config.password.get_secret_value())
        self._client = client or HttpClient.for_source(
            config, kind=KIND, headers={"Connect-Protocol-Version": "1"}, auth=auth
        )
        self._ops: dict[_Key, _Op] = {}
        self._unreadable: dict[int, str] = {}  # operation id -> why it is left out (until it is read fine)
        self._modno = -1
        self._seen: list[tuple[int, int | None]] = []  # this poll's (modno, operation id), for `_advance_cursor`
        self._known: set[str] = set()  # plan ids and repo guids whose history we have read
        self._has_summary = True
        self._catch_up = False
        self._synced_at: datetime | None = None

    @property
    def client(self) -> HttpClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self._client.post_json(RPC + method, body, reads_only=True)  # every call here is a query
        if not isinstance(reply, dict):
            raise self._protocol(f"{method}: expected a JSON object")
        return reply

    async def poll(self) -> Observation:
        now = self._clock()
        problems: list[str] = []
        self._seen = []
        plans, repos = self._parse_config(await self._call("GetConfig", {}), problems)
        next_runs = await self._read_summary(problems)
        if self._synced_at is None or now - self._synced_at >= _FULL_RESYNC or not await self._read_changes():
            self._ops, self._known, self._modno, self._catch_up = {}, set(), -1, True
            self._unreadable, self._seen = {}, []
            self._synced_at = now
        for plan in plans:
            if plan.id not in self._known:
                self._merge(await self._operations({"planId": plan.id}, _INITIAL_OPS))
                self._known.add(plan.id)
        for repo in repos:
            if repo.guid and repo.guid not in self._known:
                self._merge(await self._operations({"repoGuid": repo.guid, "planId": SYSTEM_PLAN}, _SYSTEM_OPS))
                self._known.add(repo.guid)
        self._advance_cursor(problems)
        self._trim()
        problems.extend(left_out(self._unreadable.values()))
        shared = self._shared_ids(problems)
        return self._observation(now, plans, repos, next_runs, problems, shared)

    # --- wire --------------------------------------------------------------------------------------------

    def _parse_config(self, config: dict[str, Any], problems: list[str]) -> tuple[list[_Plan], list[_Repo]]:
        """Plans, repos and schedules only. Passwords, env and hooks are dropped here, unread (A.4). A plan or repo
        without a usable `id` or guid (or that is no object) costs itself, named in `problems`."""
        plans, repos = config.get("plans", []), config.get("repos", [])
        if not isinstance(plans, list) or not isinstance(repos, list):
            raise self._protocol("GetConfig: `plans` and `repos` must be lists")
        refused: list[str] = []
        read_plans = [
            _Plan(plan_id, str(as_name(p.get("repo")) or ""), p.get("schedule"))
            for plan_id, p in _with_ids(plans, "plan", refused)
        ]
        read_repos = []
        for repo_id, r in _with_ids(repos, "repo", refused):
            guid = as_name(r.get("guid") or "")  # null is protojson's "not set", as an omitted guid (older servers)
            why = "is no name" if guid is None else _unsendable(guid)
            if guid is None or why is not None:
                refused.append(f"GetConfig: repo {quoted(repo_id, 60)}: its guid {why}")
                continue
            prune, check = r.get("prunePolicy"), r.get("checkPolicy")
            read_repos.append(
                _Repo(
                    repo_id,
                    guid,
                    prune.get("schedule") if isinstance(prune, dict) else None,
                    check.get("schedule") if isinstance(check, dict) else None,
                    is_remote_uri(str(r.get("uri") or "")),
                )
            )
        problems.extend(left_out(refused))
        return read_plans, read_repos

    async def _read_summary(self, problems: list[str]) -> dict[str, datetime]:
        """Next backup time per plan id, from GetSummaryDashboard (v1.6.0+). Optional: when it fails on its own
        (a server error, a broken answer) the poll goes on without it and says so in `problems`."""
        if not self._has_summary:
            return {}
        try:
            summary = await self._call("GetSummaryDashboard", {})
        except SourceError as exc:
            if exc.http_status in (404, 501):  # Connect `unimplemented` / no such route: an older Backrest
                self._has_summary = False
                log.info("no GetSummaryDashboard; using pending operations", extra={"source": self.name})
                return {}
            if isinstance(exc, SourceProtocolError) or (exc.http_status or 0) >= 500:
                problems.append(f"next-run times (GetSummaryDashboard): {exc}")
                return {}
            raise
        items = summary.get("planSummaries") or []
        if not isinstance(items, list):
            problems.append("next-run times (GetSummaryDashboard): `planSummaries` is not a list")
            return {}
        out: dict[str, datetime] = {}
        for item in items:
            next_ms = as_int(item.get("nextBackupTimeMs")) if isinstance(item, dict) else None
            if next_ms and (at := _at(next_ms)) is not None:  # a time past any calendar: no next-run time
                out[str(item.get("id", ""))] = at
        return out

    async def _operations(self, selector: dict[str, Any], last_n: int | None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"selector": selector}
        if last_n:
            body["lastN"] = str(last_n)  # int64: sent as a string, as protojson does
        ops = (await self._call("GetOperations", body)).get("operations", [])
        if not isinstance(ops, list):
            raise self._protocol("GetOperations: `operations` must be a list")
        return [op for op in ops if isinstance(op, dict)]

    async def _read_changes(self) -> bool:
        """Merge operations created or updated since the last poll; False if there were too many to trust."""
        since = self._modno + 1
        if self._catch_up:
            # The first poll's per-plan requests are not one snapshot: an operation updated between two of them
            # got a modno below the highest we saw. Reach back once, as upstream's own sync does (scanOverlap).
            since, self._catch_up = max(since - _OVERLAP, 0), False
        ops = await self._operations({"modnoGte": str(since)}, _MAX_CHANGES)
        if len(ops) >= _MAX_CHANGES:
            return False
        self._merge(ops)
        return True

    def _merge(self, ops: list[dict[str, Any]]) -> None:
        listed: dict[_Key, _Op] = {}  # this answer's operations
        for raw in ops:
            modno = as_int(raw.get("modno")) or 0
            if 0 <= modno <= _INT64_MAX:  # else `str(modno + 1)` may pass Python's 4,300-digit limit, every poll
                self._seen.append((modno, as_int(raw.get("id"))))
            op = self._op(raw)
            if op is None:
                continue
            if (twin := listed.get(op.key)) is not None:  # listed twice in one answer: two operations, one id
                op = replace(op, copies=twin.copies + 1)
            listed[op.key] = self._ops[op.key] = op
            self._unreadable.pop(op.id, None)

    def _advance_cursor(self, problems: list[str]) -> None:
        """Move the change cursor to the highest modno read, unless that one stands alone far above the rest.

        The cursor only works if it stays at or below the server's counter: one operation with a modno of 2^63-2
        (a broken server, or an operation synced from a multihost peer, which keeps the peer's modno) would
        otherwise put every later change below it, unseen until the next full read. A modno more than
        `_MODNO_STEP` above the next lower one (or above the cursor) is no step of that counter: it is not used,
        and said. Its operation is read as usual, and read again by every change query while it stays above the
        cursor. (Gaps lower down are history: a plan idle for years, operations Backrest forgot.)"""
        seen = sorted(self._seen, key=itemgetter(0))
        if not seen:
            return
        ladder = [(self._modno, None), *seen] if self._modno >= 0 else seen
        trusted = len(ladder)
        while trusted > 1 and ladder[trusted - 1][0] - ladder[trusted - 2][0] > _MODNO_STEP:
            trusted -= 1
        if trusted < len(ladder):
            modno, op_id = ladder[trusted]
            others = len(ladder) - trusted - 1
            more = f" (and {others} more)" if others else ""
            problems.append(f"operation {op_id}: modno {modno} is far above the others{more}; not trusted")
        self._modno = max(self._modno, ladder[trusted - 1][0])

    def _op(self, raw: dict[str, Any]) -> _Op | None:
        kind = next((k for key, k in _KINDS.items() if key in raw), None)
        op_id = as_int(raw.get("id"))
        if op_id is None:  # no telling which run it is: left out, and said until the next full read
            self._unreadable[-1 - (as_int(raw.get("modno")) or 0)] = "an operation without an `id`"
            return None
        if kind is None:
            return None  # index snapshot, forget, hooks, stats: the backup op already says what we need
        plan_id, repo_id = _op_name(raw.get("planId")), _op_name(raw.get("repoId"))
        if plan_id is None or repo_id is None:  # ["vault"] is no plan "['vault']": whose run it is, is unknown
            which = "planId" if plan_id is None else "repoId"
            self._unreadable[op_id] = f"operation {op_id}: `{which}` {quoted(raw.get(which), 60)} is no id"
            return None
        flow_id = as_int(raw.get("flowId")) or 0
        start = raw.get("unixTimeStartMs")
        start_ms = as_int(start)
        started = _at(start_ms) if start_ms else None
        if started is None:  # every run and snapshot needs its start: without one the operation is left out
            self._ops.pop((op_id, kind, plan_id, repo_id, flow_id), None)
            why = "is no date" if start_ms else f"{quoted(start, 60)} is unreadable"  # NaN, 1e400, 5,000 digits
            self._unreadable[op_id] = f"operation {op_id}: start time {why}"
            return None
        end_ms = as_int(raw.get("unixTimeEndMs")) or 0
        # Each level may be something other than an object ("lastStatus": "ok"): then it says nothing.
        detail = raw.get(next(key for key, k in _KINDS.items() if k == kind))
        detail = detail if isinstance(detail, dict) else {}
        status = detail.get("lastStatus")
        summary = status.get("summary") if isinstance(status, dict) else None
        summary = summary if isinstance(summary, dict) else {}
        snapshot_id = as_name(raw.get("snapshotId") or summary.get("snapshotId")) or ""
        return _Op(
            id=op_id,
            modno=as_int(raw.get("modno")) or 0,
            flow_id=flow_id,
            plan_id=plan_id,
            repo_id=repo_id,
            kind=kind,
            status=_text(raw.get("status") or "STATUS_UNKNOWN", _MAX_ID) or quoted(raw.get("status"), 60),
            started=started,
            ended=_at(end_ms) if end_ms else None,  # an end past any calendar: not ended, as far as we know
            message=_text(raw.get("displayMessage"), _MAX_MESSAGE),
            snapshot_id=snapshot_id if len(snapshot_id) <= _MAX_ID else clean_key(snapshot_id),  # stays unique
            data_added=as_int(summary.get("dataAdded")) if summary else None,
            total_bytes=as_int(summary.get("totalBytesProcessed")) if summary else None,
            dry_run=bool(detail.get("dryRun")),
        )

    def _trim(self) -> None:
        by_job: dict[tuple[str, str, str], list[_Op]] = {}
        for op in self._ops.values():
            by_job.setdefault((op.kind, op.plan_id, op.repo_id), []).append(op)
        for ops in by_job.values():
            if len(ops) > _KEEP_RUNS:
                for op in sorted(ops, key=lambda o: o.id)[:-_KEEP_RUNS]:
                    del self._ops[op.key]

    def _shared_ids(self, problems: list[str]) -> set[int]:
        """Ids held by more than one operation (an oplog gives each its own), named in `problems`. Each is kept."""
        uses: Counter[int] = Counter()
        for op in self._ops.values():
            uses[op.id] += op.copies
        shared = [(op_id, count) for op_id, count in uses.items() if count > 1]
        if shared:
            more = f" (and {len(shared) - 1} more ids)" if len(shared) > 1 else ""
            problems.append(f"operation id {shared[0][0]} is used by {shared[0][1]} operations{more}")
        return {op_id for op_id, _count in shared}

    # --- records -----------------------------------------------------------------------------------------

    def _schedule(self, schedule: dict[str, Any] | None, owner: str, problems: list[str]) -> ScheduleRef | None:
        if not isinstance(schedule, dict) or schedule.get("disabled") is True:
            return None
        if schedule.get("disabled") not in (None, False):  # "false" is text: protojson has true and false only
            problems.append(f"{owner}: schedule `disabled` is {quoted(schedule['disabled'], 60)}, not true or false")
        zone = "UTC" if schedule.get("clock") == "CLOCK_UTC" else self._zone
        if schedule.get("cron"):
            return ScheduleRef(str(schedule["cron"]), "cron", zone)
        days = as_int(schedule.get("maxFrequencyDays")) or 0
        hours = days * 24 or as_int(schedule.get("maxFrequencyHours")) or 0
        if not 0 < hours <= _MAX_INTERVAL_HOURS:  # none, negative, or longer than any schedule (2**31 days)
            return None
        return ScheduleRef("", "interval", zone, interval=timedelta(hours=hours))

    def _run(self, op: _Op, job_key: str, target_key: str | None, shared: set[int]) -> JobRun:
        outcome, text = _OUTCOME.get(op.status, (RunOutcome.UNKNOWN, f"status {op.status}"))
        message = "; ".join(part for part in (text, op.message) if part)
        return JobRun(
            job_key=job_key,
            source=self.name,
            run_id=f"{op.id}/{op.flow_id}" if op.id in shared else str(op.id),  # runs are told apart by run id
            started_at=op.started,
            ended_at=op.ended,
            outcome=outcome,
            message=message,
            target_key=target_key,
            size_bytes=op.data_added,
        )

    def _observation(
        self,
        now: datetime,
        plans: list[_Plan],
        repos: list[_Repo],
        next_runs: dict[str, datetime],
        problems: list[str],
        shared: set[int],
    ) -> Observation:
        ops = sorted(self._ops.values(), key=lambda o: (o.started, o.id))
        targets: list[Target] = []
        jobs: list[Job] = []
        runs: list[JobRun] = []
        snapshots: list[Snapshot] = []
        for plan in plans:
            key = f"backrest:{self.name}/{plan.id}"
            job_key = f"{self.name}/backup/{plan.id}"
            mine = [o for o in ops if o.kind == "backup" and o.plan_id == plan.id and not o.dry_run]
            pending = [o.started for o in mine if o.status == "STATUS_PENDING"]
            done = [o for o in mine if o.status != "STATUS_PENDING"]
            plan_runs = [self._run(o, job_key, key, shared) for o in done]
            runs.extend(plan_runs)
            snapshots.extend(
                Snapshot(
                    key, self.name, o.snapshot_id, o.started, size_bytes=o.total_bytes, location=plan.repo,
                    encrypted=True,  # restic repositories are always encrypted
                )
                for o in done
                if o.status == "STATUS_SUCCESS" and o.snapshot_id
            )  # fmt: skip
            running = any(r.outcome is RunOutcome.RUNNING for r in plan_runs)
            targets.append(Target(key, self.name, f"{plan.id} (Backrest)", "plan", backup_running=running))
            next_run = next_runs.get(plan.id) or (max(pending) if pending else None)
            schedule = self._schedule(plan.schedule, f"plan {quoted(plan.id, 60)}", problems)
            jobs.append(
                Job(
                    key=job_key,
                    source=self.name,
                    kind=JobKind.BACKUP,
                    job_id=plan.id,
                    name=plan.id,
                    schedule=schedule,
                    enabled=schedule is not None,
                    next_run_at=next_run,
                    last_run=_last(plan_runs),
                    target_keys=(key,),
                    store=plan.repo,
                )
            )
            restores = [o for o in ops if o.kind == "restore" and o.plan_id == plan.id and o.status != "STATUS_PENDING"]
            if restores:  # restore drills of the plan's snapshots, kept as its restore test (job-level runs)
                restore_key = f"{self.name}/restore_test/{plan.id}"
                restore_runs = [self._run(o, restore_key, None, shared) for o in restores]
                runs.extend(restore_runs)
                jobs.append(
                    Job(
                        key=restore_key,
                        source=self.name,
                        kind=JobKind.RESTORE_TEST,
                        job_id=plan.id,
                        name=f"restore {plan.id}",
                        last_run=_last(restore_runs),
                        target_keys=(key,),
                        store=plan.repo,
                    )
                )
        for repo in repos:
            for kind, job_kind, policy in (("prune", JobKind.PRUNE, repo.prune), ("check", JobKind.CHECK, repo.check)):
                mine = [o for o in ops if o.kind == kind and o.repo_id == repo.id and o.plan_id == SYSTEM_PLAN]
                if policy is None and not mine:
                    continue
                job_key = f"{self.name}/{kind}/{repo.id}"
                job_runs = [self._run(o, job_key, None, shared) for o in mine if o.status != "STATUS_PENDING"]
                pending = [o.started for o in mine if o.status == "STATUS_PENDING"]
                runs.extend(job_runs)
                schedule = self._schedule(policy, f"{kind} of repo {quoted(repo.id, 60)}", problems)
                jobs.append(
                    Job(
                        key=job_key,
                        source=self.name,
                        kind=job_kind,
                        job_id=repo.id,
                        name=f"{kind} {repo.id}",
                        schedule=schedule,
                        enabled=schedule is not None,
                        next_run_at=max(pending) if pending else None,
                        last_run=_last(job_runs),
                        store=repo.id,
                    )
                )
        offsite = [r.id for r in repos if (named := offsite_named(self._offsite, r.id)) or (named is None and r.remote)]
        return Observation(
            source=self.name,
            kind=KIND,
            observed_at=now,
            timezone=self._zone,
            targets=tuple(targets),
            snapshots=tuple(snapshots),
            jobs=tuple(jobs),
            runs=tuple(runs),
            problems=tuple(problems),
            offsite_locations=tuple(offsite),
        )


def _last(runs: list[JobRun]) -> JobRun | None:
    finished = [r for r in runs if r.outcome is not RunOutcome.RUNNING]
    return max(finished, key=lambda r: r.started_at, default=None)


def _at(epoch_ms: int) -> datetime | None:
    """Epoch milliseconds -> aware UTC; None for a time no calendar holds (int64 max is year 292278994)."""
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (ValueError, OSError, OverflowError):  # past year 9999 / the platform's time_t / a float
        return None


def _text(value: Any, limit: int) -> str:
    """Free text kept from an operation, at most `limit` characters (cut with a mark); "" for none. Operations are
    held between polls, up to `_KEEP_RUNS` a job, and one message may be megabytes."""
    text = value if isinstance(value, str) else ""
    return text if len(text) <= limit else text[: limit - 1] + MARK


def _op_name(value: Any) -> str | None:
    """An operation's plan or repo id: "" when not set (omitted, or null: protojson reads both as the default),
    None for a value that is no id (a list, an object, longer than any)."""
    if value is None:
        return ""
    name = as_name(value)
    return name if name is not None and len(name) <= _MAX_ID else None


def _unsendable(name: str) -> str | None:
    """Why `name` cannot be a plan or repo id (plan ids and repo guids go in requests), or None. JSON may hold a
    lone surrogate ("\\ud800"), which no UTF-8 request body can."""
    if len(name) > _MAX_ID:
        return f"is {len(name):,} characters long, too long to be an id"
    if not name.isascii() and any("\ud800" <= char <= "\udfff" for char in name):
        return "holds a lone surrogate (half a character)"
    return None


def create(config: BackrestSourceConfig) -> BackrestSource:
    return BackrestSource(config)


__all__ = ["BackrestSource", "create"]
