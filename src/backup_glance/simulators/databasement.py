"""Fake Databasement (Laravel + Sanctum) for the demo homelab, the tests and the bench.

Speaks the wire of `reference/databasement-api.md`: `/api/v1/*` behind a Sanctum bearer token (401
`{"message": "Unauthenticated."}`; a login redirect without `Accept: application/json`), the Laravel
pagination envelope whose `links.next` drops filters and sort (§4), Spatie filters/sorts with HTTP 400 for
unknown names, `X-Organization-Id`, ULID ids and Carbon timestamps with microseconds. `legacy=True` serves the
January 2026 shape (single `backup` with `recurrence`, no schedules, no scheduled restores, no
`database_server_id` filter).

Test and demo scaffolding only: nothing in `sources/` may import it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_ids = itertools.count(1)


def ulid() -> str:
    """A lowercase 26-character ULID-looking id; unique within the process, stable in order."""
    n = next(_ids) + (1 << 80)
    out = ""
    while n:
        n, rem = divmod(n, 32)
        out = _CROCKFORD[rem] + out
    return ("01k" + out.rjust(23, "0"))[-26:]


def carbon(at: datetime | None) -> str | None:
    """Carbon's `toJSON()`: UTC, microseconds, `Z`."""
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class DbSchedule:
    id: str
    name: str
    expression: str


@dataclass
class DbServer:
    id: str
    name: str
    database_type: str
    databases: list[str]
    schedule_id: str | None = None
    recurrence: str = "daily"  # legacy shape only
    backups_enabled: bool = True
    host: str = "db.lan"
    port: int = 5432
    created_at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))


@dataclass
class DbSnapshot:
    """One dump attempt and its BackupJob (the simulator keeps them together)."""

    id: str
    server_id: str
    database_name: str
    started_at: datetime
    status: str  # pending | running | completed | failed | cancelled
    file_size: int = 0
    completed_at: datetime | None = None
    error_message: str | None = None
    method: str = "scheduled"
    job_id: str = field(default_factory=ulid)
    encrypted: bool = False  # compression_type "encrypted" (Databasement's encrypted dumps)
    # (id, name, type) of the volumes holding the dump; empty: the demo's one local volume
    volumes: tuple[tuple[str, str, str], ...] = ()
    failed_volumes: tuple[str, ...] = ()  # names of volumes whose copy failed (`status: failed`, no file)


@dataclass
class DbScheduledRestore:
    id: str
    name: str
    source_server_id: str
    source_database_name: str
    target_server_id: str
    schema_name: str
    backup_schedule_id: str
    enabled: bool = True
    last_executed_at: datetime | None = None


@dataclass
class DbRestoreJob:
    id: str
    target_server_id: str
    schema_name: str
    created_at: datetime
    status: str
    completed_at: datetime | None = None
    error_message: str | None = None


@dataclass
class DatabasementScenario:
    token: str = "3|demo-token-f3k2l1m9n8b7v6c5x4z3a2s1d0f9g8h7j6k5l4m3a1b2c3d4"
    organization_id: str | None = None  # when set, another X-Organization-Id gets 403
    schedules: list[DbSchedule] = field(default_factory=list)
    servers: list[DbServer] = field(default_factory=list)
    snapshots: list[DbSnapshot] = field(default_factory=list)
    scheduled_restores: list[DbScheduledRestore] = field(default_factory=list)
    restore_jobs: list[DbRestoreJob] = field(default_factory=list)
    legacy: bool = False
    fault: str | None = None  # "malformed" | "truncated" | "shape" | "error500" | "slow"
    requests: list[str] = field(default_factory=list)  # paths with query, for tests and the bench


def _server(scenario: DatabasementScenario, server_id: str) -> DbServer | None:
    return next((s for s in scenario.servers if s.id == server_id), None)


def _schedule(scenario: DatabasementScenario, schedule_id: str | None) -> DbSchedule | None:
    return next((s for s in scenario.schedules if s.id == schedule_id), None)


def _server_json(scenario: DatabasementScenario, server: DbServer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": server.id,
        "name": server.name,
        "host": server.host,
        "port": server.port,
        "database_type": server.database_type,
        "description": None,
        "backups_enabled": server.backups_enabled,
        "ssh_config_id": None,
        "agent_id": None,
        "extra_config": None,
        "managed_by": None,
        "created_at": carbon(server.created_at),
        "updated_at": carbon(server.created_at),
    }
    if scenario.legacy:
        body["database_names"] = server.databases
        body["backup_all_databases"] = False
        body["backup"] = {"id": server.id[::-1], "recurrence": server.recurrence, "volume_id": "01k0vvvolume"}
        return body
    schedule = _schedule(scenario, server.schedule_id)
    body["backups"] = [
        {
            "id": server.id[::-1],
            "backup_schedule_id": server.schedule_id,
            "backup_schedule": None
            if schedule is None
            else {"id": schedule.id, "name": schedule.name, "expression": schedule.expression},
            "volume_ids": ["01k0vvvolume"],
            "volume_id": "01k0vvvolume",
            "path": "",
            "retention_policy": "days",
            "retention_days": 14,
            "database_selection_mode": "selected",
            "database_names": server.databases,
            "database_include_pattern": None,
        }
    ]
    return body


def _snapshot_json(scenario: DatabasementScenario, snap: DbSnapshot) -> dict[str, Any]:
    server = _server(scenario, snap.server_id)
    name = server.name if server else "?"
    done = snap.status == "completed"
    volumes = snap.volumes or (("01k0vvvolume", "NAS dumps", "local"),)
    local = snap.started_at.astimezone(ZoneInfo("Europe/Madrid")).strftime("%Y-%m-%d-%H%M%S")
    duration = None
    if snap.completed_at is not None:
        duration = f"{(snap.completed_at - snap.started_at).total_seconds():.1f}s"
    return {
        "id": snap.id,
        "database_name": snap.database_name,
        "database_type": server.database_type if server else "postgres",
        "metadata": {"database_server": {"host": "db.lan", "port": 5432, "database_name": snap.database_name}},
        "filename": f"{name}-{snap.database_name}-{local}.sql.gz" if done else "",
        "file_size": snap.file_size if done else 0,
        "file_size_human": f"{snap.file_size / 1048576:.1f} MB" if done else "0 B",
        "checksum": None,
        "compression_type": "encrypted" if snap.encrypted else "gzip",
        "method": snap.method,
        "started_at": carbon(snap.started_at),
        "created_at": carbon(snap.started_at),
        "updated_at": carbon(snap.completed_at or snap.started_at),
        "server": {"id": snap.server_id, "name": name},
        "volumes": [
            {
                "id": vid,
                "name": label,
                "type": kind,
                "status": "failed" if label in snap.failed_volumes else "completed",
                "file_exists": done and label not in snap.failed_volumes,
            }
            for vid, label, kind in volumes
        ],
        # deprecated: the first completed copy
        "volume": {"id": volumes[0][0], "name": volumes[0][1], "type": volumes[0][2]} if done else None,
        "triggered_by": None,
        "job": {"id": snap.job_id, "status": snap.status, "duration": duration},
    }


def _backup_job_json(scenario: DatabasementScenario, snap: DbSnapshot) -> dict[str, Any]:
    server = _server(scenario, snap.server_id)
    return {
        "id": snap.job_id,
        "job_id": str(abs(hash(snap.job_id)) % 100000),
        "status": snap.status,
        "started_at": None if snap.status == "pending" else carbon(snap.started_at + timedelta(seconds=3)),
        "completed_at": carbon(snap.completed_at),
        "duration": None,
        "error_message": snap.error_message,
        "created_at": carbon(snap.started_at),
        "updated_at": carbon(snap.completed_at or snap.started_at),
        "type": "backup",
        "snapshot": {
            "id": snap.id,
            "metadata": {},
            "database_name": snap.database_name,
            "database_type": server.database_type if server else "postgres",
            "server": {"id": snap.server_id, "name": server.name if server else "?"},
            "triggered_by": None,
        },
        "restore": None,
    }


def _restore_job_json(scenario: DatabasementScenario, job: DbRestoreJob) -> dict[str, Any]:
    server = _server(scenario, job.target_server_id)
    return {
        "id": job.id,
        "job_id": "r" + job.id[-4:],
        "status": job.status,
        "started_at": carbon(job.created_at + timedelta(seconds=2)),
        "completed_at": carbon(job.completed_at),
        "duration": None,
        "error_message": job.error_message,
        "created_at": carbon(job.created_at),
        "updated_at": carbon(job.completed_at or job.created_at),
        "type": None,  # reference §6: restore jobs most likely show type null and snapshot null
        "snapshot": None,
        "restore": {
            "id": job.id[::-1],
            "schema_name": job.schema_name,
            "target_server": {"id": job.target_server_id, "name": server.name if server else "?"},
            "triggered_by": None,
        },
    }


# (filters: name -> predicate(row, value)), (sorts: name -> key(row)), default sort
_Spec = tuple[dict[str, Callable[[Any, str], bool]], dict[str, Callable[[Any], Any]], str]


def _in(value: str, actual: object) -> bool:
    return str(actual) in value.split(",")


def _snapshot_spec(scenario: DatabasementScenario) -> _Spec:
    filters: dict[str, Callable[[Any, str], bool]] = {
        "database_name": lambda s, v: v.lower() in s.database_name.lower(),
        "database_type": lambda s, v: _in(
            v, (_server(scenario, s.server_id) or DbServer("", "", "", [])).database_type
        ),
        "method": lambda s, v: _in(v, s.method),
        "status": lambda s, v: _in(v, s.status),
        "search": lambda s, v: v.lower() in s.database_name.lower(),
    }
    if not scenario.legacy:
        filters["database_server_id"] = lambda s, v: _in(v, s.server_id)
    sorts: dict[str, Callable[[Any], Any]] = {
        "started_at": lambda s: s.started_at,
        "created_at": lambda s: s.started_at,
        "file_size": lambda s: s.file_size,
        "database_name": lambda s: s.database_name,
    }
    return filters, sorts, "-started_at"


def _job_spec() -> _Spec:
    filters: dict[str, Callable[[Any, str], bool]] = {
        "status": lambda j, v: _in(v, j[1]["status"]),
        "type": lambda j, v: _in(v, "backup" if j[1]["snapshot"] is not None else "restore"),
        "search": lambda j, v: v.lower() in str(j[1]).lower(),
    }
    sorts: dict[str, Callable[[Any], Any]] = {
        "created_at": lambda j: j[0],
        "started_at": lambda j: j[1]["started_at"] or "",
        "completed_at": lambda j: j[1]["completed_at"] or "",
        "status": lambda j: j[1]["status"],
    }
    return filters, sorts, "-created_at"


def _query(request: Request, rows: list[Any], spec: _Spec) -> list[Any] | JSONResponse:
    """Spatie QueryBuilder: `filter[x]=` (comma = IN), `sort=[-]field`; unknown names are HTTP 400."""
    filters, sorts, default_sort = spec
    for key, value in request.query_params.items():
        if key.startswith("filter[") and key.endswith("]"):
            name = key[7:-1]
            if name not in filters:
                allowed = ", ".join(filters)
                message = f"Requested filter(s) `{name}` are not allowed. Allowed filter(s) are `{allowed}`."
                return JSONResponse({"message": message}, status_code=400)
            rows = [row for row in rows if filters[name](row, value)]
    sort = request.query_params.get("sort", default_sort)
    for part in reversed(sort.split(",")):
        name = part.lstrip("-")
        if name not in sorts:
            return JSONResponse({"message": f"Requested sort(s) `{name}` is not allowed."}, status_code=400)
        rows = sorted(rows, key=sorts[name], reverse=part.startswith("-"))
    return rows


def _paginate(request: Request, rows: list[Any], to_json: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    try:
        per_page = max(1, min(int(request.query_params.get("per_page", "15")), 100))
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        per_page, page = 15, 1
    total = len(rows)
    last_page = max(1, math.ceil(total / per_page))
    chunk = rows[(page - 1) * per_page : page * per_page]
    path = str(request.url.replace(query=""))

    def link(n: int) -> str | None:
        # Laravel paginate() without withQueryString(): the page links carry `page` only (reference §4).
        return f"{path}?page={n}" if 1 <= n <= last_page else None

    return {
        "data": [to_json(row) for row in chunk],
        "links": {"first": link(1), "last": link(last_page), "prev": link(page - 1), "next": link(page + 1)},
        "meta": {
            "current_page": page,
            "from": (page - 1) * per_page + 1 if chunk else None,
            "last_page": last_page,
            "links": [],
            "path": path,
            "per_page": per_page,
            "to": (page - 1) * per_page + len(chunk) if chunk else None,
            "total": total,
        },
    }


def create_app(scenario: DatabasementScenario) -> Starlette:
    """The ASGI app; `scenario` may be mutated between requests (new dumps, faults)."""

    async def guard(request: Request) -> Response | None:
        scenario.requests.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
        if scenario.fault == "slow":
            await asyncio.sleep(5)
        authorized = request.headers.get("authorization") == f"Bearer {scenario.token}"
        if not authorized and "application/json" not in request.headers.get("accept", ""):
            # Laravel's auth middleware redirects browsers to the login page (reference §9).
            return RedirectResponse("/login", status_code=302)
        if not authorized:
            return JSONResponse({"message": "Unauthenticated."}, status_code=401)
        org = request.headers.get("x-organization-id") or request.query_params.get("org_id")
        if org and scenario.organization_id and org != scenario.organization_id:
            return JSONResponse({"message": "You do not have access to this organization."}, status_code=403)
        if scenario.fault == "error500":
            return JSONResponse({"message": "Server Error"}, status_code=500)
        return None

    def reply(body: dict[str, Any]) -> Response:
        if scenario.fault == "malformed":
            return Response('{"data": [{"id": 01k, "message": Whoops}]}', media_type="application/json")
        if scenario.fault == "shape":  # valid JSON, wrong envelope: `data` an object instead of a list
            body = {**body, "data": {"unexpected": True}}
        response = JSONResponse(body)
        if scenario.fault == "truncated":
            return Response(response.body[: len(response.body) // 2], media_type="application/json")
        return response

    async def servers(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        rows = sorted(scenario.servers, key=lambda s: s.created_at, reverse=True)
        return reply(_paginate(request, rows, lambda s: _server_json(scenario, s)))

    async def snapshots(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        rows = _query(request, list(scenario.snapshots), _snapshot_spec(scenario))
        if isinstance(rows, JSONResponse):
            return rows
        return reply(_paginate(request, rows, lambda s: _snapshot_json(scenario, s)))

    async def snapshot(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        snap = next((s for s in scenario.snapshots if s.id == request.path_params["id"]), None)
        if snap is None:
            return JSONResponse({"message": "No query results for model [App\\Models\\Snapshot]."}, status_code=404)
        return reply({"data": _snapshot_json(scenario, snap)})

    async def jobs(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        kind = request.query_params.get("filter[type]", "backup,restore").split(",")
        status = request.query_params.get("filter[status]")
        # Pre-selection so a 20,000-dump bench instance answers quickly; `_query` still applies every filter.
        dumps = [s for s in scenario.snapshots if status is None or s.status in status.split(",")]
        everything = [(s.started_at, _backup_job_json(scenario, s)) for s in dumps] if "backup" in kind else []
        if "restore" in kind:
            everything += [(j.created_at, _restore_job_json(scenario, j)) for j in scenario.restore_jobs]
        rows = _query(request, everything, _job_spec())
        if isinstance(rows, JSONResponse):
            return rows
        return reply(_paginate(request, rows, lambda j: j[1]))

    async def schedules(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        if scenario.legacy:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        rows = sorted(scenario.schedules, key=lambda s: s.name)
        return reply(_paginate(request, rows, lambda s: {"id": s.id, "name": s.name, "expression": s.expression}))

    async def scheduled_restores(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        if scenario.legacy:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        rows = sorted(scenario.scheduled_restores, key=lambda r: r.name)
        fields = ("id", "name", "source_server_id", "source_database_name", "target_server_id", "schema_name")
        return reply(
            _paginate(
                request,
                rows,
                lambda r: {
                    **{f: getattr(r, f) for f in fields},
                    "backup_schedule_id": r.backup_schedule_id,
                    "options": {},
                    "enabled": r.enabled,
                    "last_executed_at": carbon(r.last_executed_at),
                    "last_skip_reason": None,
                },
            )
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"success": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/api/v1/database-servers", servers),
            Route("/api/v1/snapshots", snapshots),
            Route("/api/v1/snapshots/{id}", snapshot),
            Route("/api/v1/jobs", jobs),
            Route("/api/v1/backup-schedules", schedules),
            Route("/api/v1/scheduled-restores", scheduled_restores),
        ]
    )


def add_daily_run(
    scenario: DatabasementScenario,
    at: datetime,
    *,
    failed: dict[str, str] | None = None,
    size: int = 20_000_000,
) -> None:
    """Append one scheduled dump of every database of every enabled server, dispatched at `at`."""
    failed = failed or {}
    for server in scenario.servers:
        if not server.backups_enabled:
            continue
        for index, name in enumerate(server.databases):
            error = failed.get(name)
            scenario.snapshots.append(
                DbSnapshot(
                    id=ulid(),
                    server_id=server.id,
                    database_name=name,
                    started_at=at,
                    status="failed" if error else "completed",
                    file_size=0 if error else size + index * 1_048_576 + at.day * 4096,
                    completed_at=at + timedelta(seconds=8 if error else 40 + index * 5),
                    error_message=error,
                )
            )


def demo_databasement(now: datetime) -> DatabasementScenario:
    """The demo homelab: postgres (vault, n8n, grafana, databasement) and mariadb (nextcloud), dumped daily at
    02:00 Europe/Madrid for 14 days; the latest nextcloud dump failed; a weekly restore test of vault."""
    zone = ZoneInfo("Europe/Madrid")
    daily = DbSchedule(ulid(), "Daily", "0 2 * * *")
    weekly = DbSchedule(ulid(), "Weekly", "0 3 * * 0")
    postgres = DbServer(ulid(), "postgres", "postgres", ["vault", "n8n", "grafana", "databasement"], daily.id)
    mariadb = DbServer(ulid(), "mariadb", "mysql", ["nextcloud"], daily.id, port=3306)
    scenario = DatabasementScenario(schedules=[daily, weekly], servers=[postgres, mariadb])
    local_now = now.astimezone(zone)
    latest = local_now.replace(hour=2, minute=0, second=0, microsecond=0)
    if latest > local_now:
        latest -= timedelta(days=1)
    for days_ago in range(13, -1, -1):
        day = (latest - timedelta(days=days_ago)).replace(tzinfo=None)
        at = day.replace(tzinfo=zone).astimezone(UTC)  # re-attach: 02:00 local on that date, whatever the offset
        failed = {"nextcloud": "SQLSTATE[HY000] [2002] Connection refused (mariadb:3306)"} if days_ago == 0 else None
        add_daily_run(scenario, at, failed=failed)
    restore = DbScheduledRestore(
        ulid(), "vault restore test", postgres.id, "vault", postgres.id, "vault_restore", weekly.id
    )
    scenario.scheduled_restores.append(restore)
    for days_ago in range(14):
        day = (local_now - timedelta(days=days_ago)).replace(hour=3, minute=0, second=0, microsecond=0)
        if day.weekday() == 6 and day < local_now:
            at = day.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)
            scenario.restore_jobs.append(
                DbRestoreJob(ulid(), postgres.id, "vault_restore", at, "completed", at + timedelta(seconds=95))
            )
            restore.last_executed_at = restore.last_executed_at or at
    return scenario


def add_protection_demo(scenario: DatabasementScenario) -> None:
    """The newest grafana dump shrank to a tenth (a table was dropped by mistake?) and the newest n8n dump took
    a quarter of an hour instead of a minute: both anomalies of the demo homelab."""
    newest: dict[str, DbSnapshot] = {}
    for snap in scenario.snapshots:
        if snap.status == "completed" and (
            snap.database_name not in newest or snap.started_at > newest[snap.database_name].started_at
        ):
            newest[snap.database_name] = snap
    if "grafana" in newest:
        newest["grafana"].file_size //= 10
    if "n8n" in newest:
        newest["n8n"].completed_at = newest["n8n"].started_at + timedelta(minutes=15, seconds=12)


__all__ = [
    "DatabasementScenario",
    "DbRestoreJob",
    "DbSchedule",
    "DbScheduledRestore",
    "DbServer",
    "DbSnapshot",
    "add_daily_run",
    "add_protection_demo",
    "create_app",
    "demo_databasement",
    "ulid",
]
