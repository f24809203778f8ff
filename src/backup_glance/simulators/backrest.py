"""Fake Backrest (Connect RPC over POST JSON) for the demo homelab, the tests and the bench.

Speaks the wire of `reference/backrest-restic.md` Part A: `POST /v1.Backrest/<Method>` with protojson bodies
(int64 as strings, zero values omitted, enum names, lowerCamelCase keys), Connect error JSON
`{"code": ..., "message": ...}` with the matching HTTP status, the auth middleware's plain-text 401, and
`GetOperations` semantics (selector required, `lastN` newest-first then re-sorted by id, `modnoGte`).
`has_summary=False` makes `GetSummaryDashboard` answer `unimplemented`, as builds before v1.6.0 do.

Test and demo scaffolding only: nothing in `sources/` may import it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

_HTTP_STATUS = {"invalid_argument": 400, "not_found": 404, "unauthenticated": 401, "unimplemented": 501}
_OP_KEYS = {
    "backup": "operationBackup",
    "index": "operationIndexSnapshot",
    "forget": "operationForget",
    "prune": "operationPrune",
    "check": "operationCheck",
    "restore": "operationRestore",
}


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class BrRepo:
    id: str
    guid: str
    uri: str = "/mnt/nas/restic"
    password: str = "correct-horse-battery-staple"
    env: list[str] = field(default_factory=lambda: ["AWS_SECRET_ACCESS_KEY=s3cr3t-key-material"])
    prune_schedule: dict[str, Any] | None = None
    check_schedule: dict[str, Any] | None = None


@dataclass
class BrPlan:
    id: str
    repo: str
    schedule: dict[str, Any]
    paths: list[str] = field(default_factory=lambda: ["/srv"])


@dataclass
class BrOperation:
    id: int
    modno: int
    flow_id: int
    plan_id: str
    repo_id: str
    repo_guid: str
    kind: str  # backup | index | forget | prune | check | restore
    status: str
    start_ms: int
    end_ms: int = 0
    snapshot_id: str = ""
    display_message: str = ""
    data_added: int = 0
    total_bytes: int = 0
    dry_run: bool = False


@dataclass
class BackrestScenario:
    instance: str = "nas01"
    username: str | None = None  # with a password: HTTP Basic required
    password: str | None = None
    repos: list[BrRepo] = field(default_factory=list)
    plans: list[BrPlan] = field(default_factory=list)
    operations: list[BrOperation] = field(default_factory=list)
    has_summary: bool = True
    fault: str | None = None  # "malformed" | "truncated" | "slow" | "error500" | "summary500"
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, op: BrOperation) -> BrOperation:
        self.operations.append(op)
        return op

    def update(self, op: BrOperation, **changes: Any) -> None:
        """Change an operation the way the oplog does: every update gets a new modno."""
        for key, value in changes.items():
            setattr(op, key, value)
        op.modno = self.next_id()


def _drop_zero(body: dict[str, Any]) -> dict[str, Any]:
    """protojson omits zero values: "", 0, false, empty lists and messages that became empty."""
    return {k: v for k, v in body.items() if v not in ("", 0, "0", False, None, [], {}) or k.startswith("operation")}


def _op_json(op: BrOperation, instance: str) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    if op.kind == "backup" and op.status not in ("STATUS_PENDING",):
        summary = _drop_zero(
            {
                "filesNew": str(op.data_added // 65536),
                "dataAdded": str(op.data_added),
                "totalFilesProcessed": str(op.total_bytes // 1048576),
                "totalBytesProcessed": str(op.total_bytes),
                "totalDuration": (op.end_ms - op.start_ms) / 1000 if op.end_ms else 0,
                "snapshotId": op.snapshot_id,
            }
        )
        inner = _drop_zero({"lastStatus": {"summary": summary} if summary else {}, "dryRun": op.dry_run})
    elif op.kind == "restore":  # OperationRestore {path, target, lastStatus: RestoreProgressEntry}
        inner = {"path": "/srv", "target": "/tmp/restore-drill"}
        if op.status not in ("STATUS_PENDING", "STATUS_INPROGRESS"):
            inner["lastStatus"] = _drop_zero({"messageType": "summary", "totalBytes": str(op.total_bytes)})
    elif op.kind == "index":
        inner = {
            "snapshot": _drop_zero(
                {
                    "id": op.snapshot_id,
                    "unixTimeMs": str(op.start_ms),
                    "hostname": instance,
                    "paths": ["/srv"],
                    "tags": [f"plan:{op.plan_id}", f"created-by:{instance}"],
                    "summary": _drop_zero(
                        {"dataAdded": str(op.data_added), "totalBytesProcessed": str(op.total_bytes)}
                    ),
                }
            )
        }
    return _drop_zero(
        {
            "id": str(op.id),
            "modno": str(op.modno),
            "flowId": str(op.flow_id),
            "repoId": op.repo_id,
            "repoGuid": op.repo_guid,
            "planId": op.plan_id,
            "instanceId": instance,
            "snapshotId": op.snapshot_id,
            "status": "" if op.status == "STATUS_UNKNOWN" else op.status,
            "unixTimeStartMs": str(op.start_ms),
            "unixTimeEndMs": str(op.end_ms),
            "displayMessage": op.display_message,
            _OP_KEYS[op.kind]: inner,
        }
    )


def _config_json(scenario: BackrestScenario) -> dict[str, Any]:
    repos = []
    for repo in scenario.repos:
        body: dict[str, Any] = {"id": repo.id, "uri": repo.uri, "guid": repo.guid, "password": repo.password}
        body["env"] = repo.env
        if repo.prune_schedule:
            body["prunePolicy"] = {"schedule": repo.prune_schedule, "maxUnusedPercent": 10}
        if repo.check_schedule:
            body["checkPolicy"] = {"schedule": repo.check_schedule, "readDataSubsetPercent": 5}
        body["autoUnlock"] = True
        repos.append(body)
    plans = [
        {"id": p.id, "repo": p.repo, "paths": p.paths, "schedule": p.schedule, "retention": {"policyKeepLastN": 30}}
        for p in scenario.plans
    ]
    users = [{"name": scenario.username, "passwordBcrypt": "********"}] if scenario.username else []
    return _drop_zero(
        {
            "modno": 42,
            "version": 6,
            "instance": scenario.instance,
            "repos": repos,
            "plans": plans,
            "auth": {"users": users} if users else {"disabled": True},
        }
    )


def _summary(scenario: BackrestScenario, key: str, ops: list[BrOperation], now_ms: int) -> dict[str, Any]:
    window = [o for o in ops if o.start_ms >= now_ms - 30 * 86_400_000 and o.status != "STATUS_PENDING"]
    window.sort(key=lambda o: o.start_ms, reverse=True)
    pending = [o for o in ops if o.status == "STATUS_PENDING"]
    recent = window[:60]

    def count(status: str) -> str:
        return str(sum(1 for o in window if o.status == status))

    return _drop_zero(
        {
            "id": key,
            "backupsFailed30days": count("STATUS_ERROR"),
            "backupsWarningLast30days": count("STATUS_WARNING"),
            "backupsSuccessLast30days": count("STATUS_SUCCESS"),
            "bytesAddedLast30days": str(sum(o.data_added for o in window)),
            "nextBackupTimeMs": str(min(o.start_ms for o in pending)) if pending else "",
            "recentBackups": _drop_zero(
                {
                    "flowId": [str(o.flow_id) for o in recent],
                    "timestampMs": [str(o.start_ms) for o in recent],
                    "durationMs": [str(max(o.end_ms - o.start_ms, 0)) for o in recent],
                    "status": [o.status for o in recent],
                    "bytesAdded": [str(o.data_added) for o in recent],
                }
            ),
        }
    )


def create_app(scenario: BackrestScenario, *, clock: Any = None) -> Starlette:
    """The ASGI app; `scenario` may be mutated between requests (new operations, faults)."""

    def error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_code=_HTTP_STATUS.get(code, 500))

    def reply(body: dict[str, Any]) -> Response:
        if scenario.fault == "malformed":
            return Response('{"operations": [{"id": 5120, status: STATUS_SUCCESS}]}', media_type="application/json")
        text = json.dumps(body, separators=(",", ":")).encode()
        if scenario.fault == "truncated":
            text = text[: len(text) // 2]
        return Response(text, media_type="application/json")

    async def rpc(request: Request) -> Response:
        method = request.path_params["method"]
        if scenario.username:
            # internal/auth/middleware.go answers in plain text, not Connect JSON.
            header = request.headers.get("authorization", "")
            if not header:
                return PlainTextResponse("Unauthorized (No Authorization Header)", status_code=401)
            expected = base64.b64encode(f"{scenario.username}:{scenario.password}".encode()).decode()
            if header != f"Basic {expected}":
                return PlainTextResponse("Unauthorized (Bad Token)", status_code=401)
        try:
            body = json.loads(await request.body() or b"{}")
        except ClientDisconnect:  # the client went away mid-request (the demo stopping): nobody to answer
            return Response(status_code=499)
        except json.JSONDecodeError:
            return error("invalid_argument", "unmarshal into *v1.OpSelector: invalid JSON")
        scenario.requests.append((method, body))
        if scenario.fault == "slow":
            await asyncio.sleep(5)
        if scenario.fault == "error500":
            return error("unknown", "database is locked")
        now_ms = ms(clock() if clock else datetime.now(UTC))
        if method == "GetConfig":
            return reply(_config_json(scenario))
        if method == "GetSummaryDashboard":
            if scenario.fault == "summary500":  # only the dashboard fails (its stats query), the rest answers
                return error("internal", "get summary dashboard: database is locked")
            if not scenario.has_summary:
                return error("unimplemented", "v1.Backrest.GetSummaryDashboard is not implemented")
            backups = [o for o in scenario.operations if o.kind == "backup" and not o.dry_run]
            return reply(
                {
                    "planSummaries": [
                        _summary(scenario, p.id, [o for o in backups if o.plan_id == p.id], now_ms)
                        for p in scenario.plans
                    ],
                    "repoSummaries": [
                        _summary(scenario, r.id, [o for o in backups if o.repo_id == r.id], now_ms)
                        for r in scenario.repos
                    ],
                    "configPath": "/config/config.json",
                    "dataPath": "/data",
                }
            )
        if method == "GetOperations":
            return operations(body)
        return error("unimplemented", f"v1.Backrest.{method} is not implemented")

    def operations(body: dict[str, Any]) -> Response:
        selector = body.get("selector")
        if not isinstance(selector, dict):
            return error("unknown", "empty selector")  # internal/protoutil/opselector.go
        ids = {int(i) for i in selector.get("ids", [])}
        if ids and len(selector) > 1:
            return error("unknown", "cannot specify both query and ids")
        ops = scenario.operations
        if ids:
            ops = [o for o in ops if o.id in ids]
        for key, attr in (("planId", "plan_id"), ("repoGuid", "repo_guid"), ("snapshotId", "snapshot_id")):
            if key in selector:
                ops = [o for o in ops if getattr(o, attr) == selector[key]]
        if "flowId" in selector:
            ops = [o for o in ops if o.flow_id == int(selector["flowId"])]
        if "modnoGte" in selector:
            ops = [o for o in ops if o.modno >= int(selector["modnoGte"])]
        last_n = int(body.get("lastN", 0) or 0)
        if last_n:
            # backresthandler.go: newest first, limited, then re-sorted ascending by id.
            ops = sorted(ops, key=lambda o: (o.start_ms, o.id), reverse=True)[:last_n]
        ops = sorted(ops, key=lambda o: o.id)
        return reply({"operations": [_op_json(o, scenario.instance) for o in ops]} if ops else {})

    return Starlette(routes=[Route("/v1.Backrest/{method}", rpc, methods=["POST"])])


def add_backup(
    scenario: BackrestScenario,
    plan: BrPlan,
    at: datetime,
    *,
    status: str = "STATUS_SUCCESS",
    message: str = "",
    data_added: int = 52_428_800,
    total_bytes: int = 5_368_709_120,
) -> BrOperation:
    """One plan run as Backrest records it: the backup op, then (if a snapshot was made) its index op."""
    repo = next(r for r in scenario.repos if r.id == plan.repo)
    op_id = scenario.next_id()
    snapshot = f"{op_id:08x}" * 8 if status in ("STATUS_SUCCESS", "STATUS_WARNING") else ""
    done = status not in ("STATUS_INPROGRESS", "STATUS_PENDING")
    end = ms(at) + 95_000 if done else 0
    data_added = data_added if done and status != "STATUS_ERROR" else 0
    op = scenario.add(
        BrOperation(
            op_id, scenario.next_id(), op_id, plan.id, repo.id, repo.guid, "backup", status, ms(at), end,
            snapshot, message, data_added, total_bytes if snapshot else 0,
        )
    )  # fmt: skip
    if snapshot:
        scenario.add(
            BrOperation(
                scenario.next_id(), scenario.next_id(), op_id, plan.id, repo.id, repo.guid, "index",
                "STATUS_SUCCESS", ms(at), end, snapshot, "", data_added, total_bytes,
            )
        )  # fmt: skip
    return op


def add_system(
    scenario: BackrestScenario, repo: BrRepo, kind: str, at: datetime, status: str = "STATUS_SUCCESS"
) -> None:
    op_id = scenario.next_id()
    end = ms(at) + 300_000 if status != "STATUS_PENDING" else 0
    scenario.add(
        BrOperation(op_id, scenario.next_id(), op_id, "_system_", repo.id, repo.guid, kind, status, ms(at), end)
    )


def add_restore(
    scenario: BackrestScenario, plan: BrPlan, at: datetime, snapshot_id: str, *, status: str = "STATUS_SUCCESS"
) -> BrOperation:
    """A restore of one of `plan`'s snapshots, as the UI starts it: an operation of the plan with the snapshot id."""
    repo = next(r for r in scenario.repos if r.id == plan.repo)
    op_id = scenario.next_id()
    end = ms(at) + 240_000 if status not in ("STATUS_PENDING", "STATUS_INPROGRESS") else 0
    return scenario.add(
        BrOperation(
            op_id, scenario.next_id(), op_id, plan.id, repo.id, repo.guid, "restore", status, ms(at), end,
            snapshot_id, "", 0, 2_147_483_648,
        )
    )  # fmt: skip


def _local(day: datetime, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def demo_backrest(now: datetime) -> BackrestScenario:
    """The demo homelab: plans vault 02:15, app-configs 02:20, databasement-dumps 02:30 (Europe/Madrid); prune
    Sundays 06:00, check on the 1st 07:00; 14 days of history; app-configs last succeeded 3 days ago."""
    zone = ZoneInfo("Europe/Madrid")
    repo = BrRepo(
        "nas", "3f1c" + "0" * 60,
        prune_schedule={"cron": "0 6 * * 0", "clock": "CLOCK_LOCAL"},
        check_schedule={"cron": "0 7 1 * *", "clock": "CLOCK_LOCAL"},
    )  # fmt: skip
    plans = [
        BrPlan("vault", "nas", {"cron": "15 2 * * *", "clock": "CLOCK_LOCAL"}, ["/srv/vault"]),
        BrPlan("app-configs", "nas", {"cron": "20 2 * * *", "clock": "CLOCK_LOCAL"}, ["/srv/configs"]),
        BrPlan("databasement-dumps", "nas", {"cron": "30 2 * * *", "clock": "CLOCK_LOCAL"}, ["/srv/dumps"]),
    ]
    scenario = BackrestScenario(repos=[repo], plans=plans)
    local_now = now.astimezone(zone)
    for days_ago in range(13, -1, -1):
        day = local_now - timedelta(days=days_ago)
        for plan, (hour, minute) in zip(plans, ((2, 15), (2, 20), (2, 30)), strict=True):
            at = _local(day, hour, minute, zone)
            if at > now:
                continue
            if plan.id == "app-configs" and at > now - timedelta(days=3):
                continue  # the late plan: its scheduler stalled, nothing has run since
            add_backup(scenario, plan, at, data_added=(40 + days_ago) * 1_048_576)
        if day.weekday() == 6 and _local(day, 6, 0, zone) <= now:
            add_system(scenario, repo, "prune", _local(day, 6, 0, zone))
        if day.day == 1 and _local(day, 7, 0, zone) <= now:
            add_system(scenario, repo, "check", _local(day, 7, 0, zone))
    tomorrow = local_now + timedelta(days=1)
    for plan, (hour, minute) in ((plans[0], (2, 15)), (plans[2], (2, 30))):
        at = _local(local_now if _local(local_now, hour, minute, zone) > now else tomorrow, hour, minute, zone)
        add_backup(scenario, plan, at, status="STATUS_PENDING")
    return scenario


def add_protection_demo(scenario: BackrestScenario, now: datetime) -> None:
    """One restore drill of the vault plan, four months ago: the demo's stale restore test."""
    plan = next(p for p in scenario.plans if p.id == "vault")
    add_restore(scenario, plan, now - timedelta(days=121, hours=3), "5eed" * 16)


__all__ = [
    "BackrestScenario",
    "BrOperation",
    "BrPlan",
    "BrRepo",
    "add_backup",
    "add_protection_demo",
    "add_restore",
    "add_system",
    "create_app",
    "demo_backrest",
]
