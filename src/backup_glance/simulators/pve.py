"""A faithful fake Proxmox VE API (`/api2/json/...`) for backups, rendered from a `ProxmoxLab`.

Sits under `simulators/`: the PVE source's honest peer in tests and in the demo. Booleans as 0/1, VMID lists as
comma strings, `next-run` from *now* even for disabled jobs, not-backed-up counting disabled jobs as coverage,
exact `typefilter`, `{"data": null, "message": ...}` errors and the `PVEAPIToken` header all follow
PVE's own handlers (proxmox/pve-manager `PVE/API2/Backup.pm`, `PVE/API2/Cluster/BackupInfo.pm`,
`PVE/API2/Tasks.pm`; proxmox/pve-storage `PVE/Storage.pm`). It must not invent behaviour they do not have.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..sources._proxmox import calendar_for
from ._proxmox_faults import Faults, ProxmoxFaultWrapper, split_token
from .proxmox_lab import Guest, ProxmoxLab, PveStorage, PveTask, VzdumpJob, zone_or_utc


class PveError(Exception):
    def __init__(self, message: str, status: int = 500, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


def _ok(data: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"data": data, **extra})


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise PveError(
            "Parameter verification failed.", 400, {name: f"type check ('integer') failed - got '{raw}'"}
        ) from None


def included_guests(lab: ProxmoxLab, job: VzdumpJob) -> list[Guest]:
    """Guest selection of a vzdump job: pool > vmid > all minus exclude, then the node restriction (§4.1)."""
    if job.pool:
        chosen = [g for g in lab.guests if g.pool == job.pool]
    elif job.vmids:
        chosen = [g for g in lab.guests if g.vmid in job.vmids]
    elif job.all:
        chosen = [g for g in lab.guests if g.vmid not in job.exclude]
    else:
        chosen = []
    return [g for g in chosen if job.node is None or g.node == job.node]


class _PveApi:
    def __init__(self, lab: ProxmoxLab) -> None:
        self.lab = lab

    def _node(self, request: Request) -> str:
        node = str(request.path_params["node"])
        nodes = self.lab.pve_nodes()
        if node == "localhost":
            return nodes[0]
        if node not in nodes:
            raise PveError(
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )
        if node in self.lab.offline_nodes:
            raise PveError(f"proxy loop detected or no route to host ({node})", 595)
        return node

    async def backup_jobs(self, request: Request) -> Response:
        now = self.lab.clock()
        with self.lab.lock:
            items = [self._job_item(job, now) for job in self.lab.vzdump_jobs]
        return _ok(items)

    def _job_item(self, job: VzdumpJob, now: datetime) -> dict[str, Any]:
        item: dict[str, Any] = {"id": job.id}
        if not job.legacy_cron:
            item["type"] = "vzdump"
        item |= {"enabled": 1 if job.enabled else 0, "schedule": job.schedule}
        if not job.legacy_cron:
            # Computed from now on the answering node, disabled or not (reference §4.1).
            calendar = calendar_for(job.schedule, self.lab.pve_timezone)
            slot = calendar.next_after(now) if calendar else None
            if slot is not None:
                item["next-run"] = int(slot.timestamp())
        if job.storage:
            item["storage"] = job.storage
        if job.pool:
            item["pool"] = job.pool
        if job.vmids:
            item["vmid"] = ",".join(map(str, job.vmids))
        if job.all:
            item["all"] = 1
        if job.exclude:
            item["exclude"] = ",".join(map(str, job.exclude))
        if job.node:
            item["node"] = job.node
        item |= {"mode": job.mode, "compress": "zstd", "notes-template": "{{guestname}}"}
        if job.prune_backups:
            item["prune-backups"] = dict(job.prune_backups)
        if job.comment:
            item["comment"] = job.comment
        return item

    async def not_backed_up(self, request: Request) -> Response:
        with self.lab.lock:
            # All jobs count as coverage, disabled ones too (reference §4.2).
            covered = {g.vmid for job in self.lab.vzdump_jobs for g in included_guests(self.lab, job)}
            items = [{"vmid": g.vmid, "type": g.type, "name": g.name} for g in self.lab.guests if g.vmid not in covered]
        return _ok(sorted(items, key=lambda item: item["vmid"]))

    async def resources(self, request: Request) -> Response:
        wanted = request.query_params.get("type")
        if wanted not in (None, "vm", "storage", "node", "sdn"):
            raise PveError(
                "Parameter verification failed.",
                400,
                {"type": f"value '{wanted}' does not have a value in the enumeration 'vm, storage, node, sdn'"},
            )
        items: list[dict[str, Any]] = []
        with self.lab.lock:
            if wanted in (None, "vm"):
                items += [_resource_item(g) for g in self.lab.guests]
        return _ok(items)

    def _task(self, request: Request) -> PveTask:
        self._node(request)
        upid = request.path_params["upid"]
        for task in self.lab.pve_tasks:
            if task.upid == upid:
                return task
        raise PveError(f"no such task '{upid}'", 500)

    async def tasks(self, request: Request) -> Response:
        node = self._node(request)
        start = _int_param(request, "start", 0) or 0
        limit = _int_param(request, "limit", 50) or 0
        since, until = _int_param(request, "since"), _int_param(request, "until")
        vmid = request.query_params.get("vmid")
        source = request.query_params.get("source", "archive")
        typefilter = request.query_params.get("typefilter")
        userfilter = (request.query_params.get("userfilter") or "").lower()
        errors = request.query_params.get("errors") in ("1", "true")
        with self.lab.lock:
            matches = []
            for task in sorted(self.lab.pve_tasks, key=lambda t: (-t.starttime, t.upid)):
                running = task.endtime is None
                if task.node != node or (running and source == "archive") or (not running and source == "active"):
                    continue
                if typefilter and task.type != typefilter:  # exact match, unlike PBS (§4.6)
                    continue
                if vmid is not None and task.id != vmid:
                    continue
                if since is not None and task.starttime < since:
                    continue
                if until is not None and task.starttime > until:
                    continue
                if userfilter and userfilter not in task.user.lower():
                    continue
                if errors and task.status == "OK":
                    continue
                matches.append(_task_item(task))
        page = matches[start : start + limit] if limit else matches[start:]
        return _ok(page, total=len(matches))

    async def task_log(self, request: Request) -> Response:
        start = _int_param(request, "start", 0) or 0
        limit = _int_param(request, "limit", 50) or 0
        with self.lab.lock:
            lines = list(self._task(request).log)
        chosen = lines[start : start + limit] if limit else lines[start:]
        return _ok([{"n": start + index + 1, "t": text} for index, text in enumerate(chosen)], total=len(lines))

    async def task_status(self, request: Request) -> Response:
        with self.lab.lock:
            task = self._task(request)
            # The status endpoint says running/stopped and moves the final text to `exitstatus` (§4.6).
            item = {k: v for k, v in _task_item(task).items() if k != "endtime"}
            item["status"] = "running" if task.endtime is None else "stopped"
            if task.endtime is not None:
                item["exitstatus"] = task.status
        return _ok(item)

    async def storages(self, request: Request) -> Response:
        self._node(request)
        content = request.query_params.get("content")
        with self.lab.lock:
            items = [
                _storage_item(s) for s in self.lab.pve_storages if content is None or content in s.content.split(",")
            ]
        return _ok(items)

    async def storage_content(self, request: Request) -> Response:
        node = self._node(request)
        name = request.path_params["storage"]
        content = request.query_params.get("content")
        vmid = _int_param(request, "vmid")
        with self.lab.lock:
            storage = next((s for s in self.lab.pve_storages if s.storage == name), None)
            if storage is None:
                raise PveError(f"storage '{name}' does not exist")
            if content not in (None, "backup") or "backup" not in storage.content.split(","):
                return _ok([])
            items = self._pbs_volumes(storage) if storage.type == "pbs" else self._file_volumes(storage, node)
        return _ok([item for item in items if vmid is None or item["vmid"] == vmid])

    def _pbs_volumes(self, storage: PveStorage) -> list[dict[str, Any]]:
        store = self.lab.datastores.get(storage.datastore or "")
        if store is None or store.unreadable:
            raise PveError(f"{storage.storage}: error fetching datastores - 500 Internal Server Error")
        items = []
        for group in store.namespaces.get(storage.namespace, {}).values():
            if group.backup_type not in ("vm", "ct") or not group.backup_id.isdigit():
                continue  # PVE ignores non-guest groups (reference §3.11)
            for snap in group.snapshots:
                stamp = datetime.fromtimestamp(snap.backup_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                item: dict[str, Any] = {
                    "volid": f"{storage.storage}:backup/{group.backup_type}/{group.backup_id}/{stamp}",
                    "content": "backup",
                    "format": f"pbs-{group.backup_type}",
                    "subtype": "qemu" if group.backup_type == "vm" else "lxc",
                    "vmid": int(group.backup_id),
                    "ctime": snap.backup_time,
                    "size": snap.size if snap.size is not None else 1,
                }
                if snap.comment:
                    item["notes"] = snap.comment
                if snap.protected:
                    item["protected"] = 1
                if snap.verification:
                    item["verification"] = {"state": snap.verification, "upid": snap.verify_upid}
                items.append(item)
        return items

    def _file_volumes(self, storage: PveStorage, node: str) -> list[dict[str, Any]]:
        zone = zone_or_utc(self.lab.pve_timezone)
        items = []
        for archive in self.lab.vzdump_files:
            if archive.storage != storage.storage:
                continue
            # The file name carries node-local time; PVE parses it back with timelocal (reference §4.4).
            stamp = archive.ctime.astimezone(zone).strftime("%Y_%m_%d-%H_%M_%S")
            ext = "vma.zst" if archive.guest_type == "qemu" else "tar.zst"
            item: dict[str, Any] = {
                "volid": f"{storage.storage}:backup/vzdump-{archive.guest_type}-{archive.vmid}-{stamp}.{ext}",
                "content": "backup",
                "format": ext,
                "subtype": archive.guest_type,
                "vmid": archive.vmid,
                "ctime": int(archive.ctime.timestamp()),
                "size": archive.size,
            }
            if archive.notes:
                item["notes"] = archive.notes
            if archive.protected:
                item["protected"] = 1
            items.append(item)
        return items

    async def time(self, request: Request) -> Response:
        node = self._node(request)
        zone = self.lab.node_timezones.get(node, self.lab.pve_timezone)
        now = self.lab.clock()
        offset = now.astimezone(zone_or_utc(zone)).utcoffset()
        epoch = int(now.timestamp())
        localtime = epoch + (int(offset.total_seconds()) if offset else 0)
        return _ok({"timezone": zone, "time": epoch, "localtime": localtime})

    async def schedule_analyze(self, request: Request) -> Response:
        schedule = request.query_params.get("schedule")
        if not schedule:
            raise PveError(
                "Parameter verification failed.", 400, {"schedule": "property is missing and it is not optional"}
            )
        starttime = _int_param(request, "starttime", self.lab.now_epoch()) or 0
        iterations = _int_param(request, "iterations", 10) or 10
        calendar = calendar_for(schedule, self.lab.pve_timezone)
        if calendar is None:
            raise PveError(
                "Parameter verification failed.", 400, {"schedule": "value does not look like a valid calendar event"}
            )
        items: list[dict[str, Any]] = []
        slot = calendar.next_after(datetime.fromtimestamp(starttime, UTC))
        while slot is not None and len(items) < iterations:
            items.append({"timestamp": int(slot.timestamp()), "utc": _perl_gmtime(slot)})
            slot = calendar.next_after(slot)
        return _ok(items)


def _perl_gmtime(at: datetime) -> str:
    """Perl's scalar(gmtime): 'Thu Jan 16 02:00:00 2025', day padded with a space."""
    at = at.astimezone(UTC)
    return f"{at:%a %b} {at.day:2d} {at:%H:%M:%S %Y}"


def _resource_item(guest: Guest) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": f"{guest.type}/{guest.vmid}",
        "type": guest.type,
        "vmid": guest.vmid,
        "name": guest.name,
        "node": guest.node,
        "status": guest.status,
        "template": 1 if guest.template else 0,
        "maxdisk": guest.maxdisk,
        "maxmem": 2 * 1024**3,
        "maxcpu": 2,
    }
    if guest.pool:
        item["pool"] = guest.pool
    if guest.lock:
        item["lock"] = guest.lock
    return item


def _task_item(task: PveTask) -> dict[str, Any]:
    item: dict[str, Any] = {
        "upid": task.upid,
        "node": task.node,
        "pid": task.pid,
        "pstart": task.pstart,
        "starttime": task.starttime,
        "type": task.type,
        "id": task.id,
        "user": task.user,
    }
    if task.tokenid:
        item["tokenid"] = task.tokenid
    if task.endtime is None:
        item["status"] = "RUNNING"
    else:
        item |= {"endtime": task.endtime, "status": task.status}
    return item


def _storage_item(storage: PveStorage) -> dict[str, Any]:
    return {
        "storage": storage.storage,
        "type": storage.type,
        "content": storage.content,
        "enabled": 1,
        "active": 1,
        "shared": 1 if storage.shared else 0,
        "total": storage.total,
        "used": storage.used,
        "avail": storage.total - storage.used,
        "used_fraction": storage.used / storage.total if storage.total else 0,  # snake_case on the wire (§1.2)
    }


def create_pve_app(
    lab: ProxmoxLab, *, token_id: str, token_secret: str, faults: Faults | None = None
) -> ProxmoxFaultWrapper:
    """The PVE API as an ASGI app. `app.faults`, `app.requests` and `app.lab` stay reachable for tests."""
    api = _PveApi(lab)
    base = "/api2/json"
    routes = [
        Route(f"{base}/cluster/backup", api.backup_jobs),
        Route(f"{base}/cluster/backup-info/not-backed-up", api.not_backed_up),
        Route(f"{base}/cluster/resources", api.resources),
        Route(f"{base}/cluster/jobs/schedule-analyze", api.schedule_analyze),
        Route(f"{base}/nodes/{{node}}/tasks", api.tasks),
        Route(f"{base}/nodes/{{node}}/tasks/{{upid}}/log", api.task_log),
        Route(f"{base}/nodes/{{node}}/tasks/{{upid}}/status", api.task_status),
        Route(f"{base}/nodes/{{node}}/storage", api.storages),
        Route(f"{base}/nodes/{{node}}/storage/{{storage}}/content", api.storage_content),
        Route(f"{base}/nodes/{{node}}/time", api.time),
    ]

    async def pve_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PveError)
        body: dict[str, Any] = {"data": None, "message": str(exc)}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status)

    async def not_implemented(request: Request, exc: Exception) -> Response:
        del exc  # PVE answers unknown paths with 501 "Method ... not implemented"
        path = request.url.path.removeprefix(base)
        return JSONResponse({"data": None, "message": f"Method 'GET {path}' not implemented"}, status_code=501)

    app = Starlette(routes=routes, exception_handlers={PveError: pve_error, 404: not_implemented, 405: not_implemented})

    def check(header: str | None) -> bool:
        return split_token(header, "PVEAPIToken", "=", last=True) == (token_id, token_secret)

    return ProxmoxFaultWrapper(
        app,
        check_token=check,
        unauthorized_body=b'{"data":null,"message":"authentication failure"}',
        faults=faults,
        lab=lab,
    )


__all__ = ["Faults", "create_pve_app", "included_guests"]
