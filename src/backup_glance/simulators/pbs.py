"""A faithful fake Proxmox Backup Server API (`/api2/json/...`) rendered from a `ProxmoxLab`.

Sits under `simulators/`: the PBS source's honest peer in tests and in the demo. Field names, absent-vs-null,
the `{"data": ...}` wrapper with top-level `total`/`digest`, plain-string error bodies and the token header all
follow PBS's own handlers (proxmox/proxmox-backup `src/api2/admin/datastore.rs`, `src/api2/node/tasks.rs`,
`src/api2/config/*.rs`; types in `pbs-api-types`). It must not invent behaviour they do not have.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..sources._proxmox import calendar_for
from ._pbs_items import counts, gc_status, group_item, snapshot_item, task_item, task_store
from ._proxmox_faults import Faults, ProxmoxFaultWrapper, split_token
from .proxmox_lab import PbsDatastore, PbsGroup, PbsJob, PbsRemote, PbsSnapshot, ProxmoxLab, zone_or_utc


class PbsError(Exception):
    """Answered as PBS does: the plain message as the body, status 400 unless it is an HTTP error."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _ok(data: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"data": data, **extra})


def _error_response(message: str, status: int) -> Response:
    # The body is the bare message even though the content type says JSON (reference §1.1).
    return Response(message, status_code=status, media_type="application/json;charset=UTF-8")


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "0").lower() in ("1", "true", "yes", "on")


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise PbsError(f"parameter verification errors\n\nparameter '{name}': value is not an integer") from None


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class _PbsApi:
    def __init__(self, lab: ProxmoxLab) -> None:
        self.lab = lab
        self._encoded: dict[int, tuple[PbsSnapshot, tuple[object, ...], bytes]] = {}

    def _store(self, request: Request, *, readable: bool = True) -> PbsDatastore:
        name = request.path_params["store"]
        store = self.lab.datastores.get(name)
        if store is None:
            raise PbsError(f"no such datastore '{name}'")
        if readable and store.unreadable:
            raise PbsError(store.unreadable)
        return store

    def _next_run(self, schedule: str | None, last: int) -> int | None:
        calendar = calendar_for(schedule, self.lab.pbs_timezone) if schedule else None
        slot = calendar.next_after(_utc(last)) if calendar else None
        return int(slot.timestamp()) if slot else None

    # --- datastores ---------------------------------------------------------------------------------------------

    async def datastores(self, request: Request) -> Response:
        with self.lab.lock:
            items = []
            for store in self.lab.datastores.values():
                item: dict[str, Any] = {"store": store.name, "comment": store.comment}  # comment: null when unset
                if store.maintenance:
                    item["maintenance"] = store.maintenance
                item |= {"mount-status": "nonremovable", "backend-type": "filesystem"}
                items.append(item)
        return _ok(items)

    async def status(self, request: Request) -> Response:
        with self.lab.lock:
            store = self._store(request)
            data: dict[str, Any] = {"total": store.total, "used": store.used, "avail": store.avail}
            if _flag(request, "verbose"):
                data["gc-status"] = gc_status(store)
                data["counts"] = counts(store)
            data["backend-type"] = "filesystem"
        return _ok(data)

    async def usage(self, request: Request) -> Response:
        with self.lab.lock:
            items = []
            now = self.lab.now_epoch()
            for store in self.lab.datastores.values():
                item: dict[str, Any] = {"store": store.name}
                if store.unreadable:
                    item["error"] = store.unreadable
                else:
                    fraction = round(store.used / store.total, 4) if store.total else None
                    item |= {"total": store.total, "used": store.used, "avail": store.avail}
                    item |= {"history": [fraction] * 48, "history-start": now - now % 1800 - 47 * 1800}
                    item |= {"history-delta": 1800, "gc-status": gc_status(store)}
                    if store.estimated_full_date is not None:
                        item["estimated-full-date"] = store.estimated_full_date
                item |= {"mount-status": "nonremovable", "backend-type": "filesystem"}
                items.append(item)
        return _ok(items)

    async def namespaces(self, request: Request) -> Response:
        with self.lab.lock:
            store = self._store(request)
            parent = request.query_params.get("parent", "")
            depth = _int(request, "max-depth", 7) or 0
            base = len(parent.split("/")) if parent else 0
            names = sorted(
                ns
                for ns in store.namespaces
                if (ns == parent or ns.startswith(parent + "/") or not parent)
                and (len(ns.split("/")) if ns else 0) - base <= depth
            )
        return _ok([{"ns": ns} for ns in names])

    def _groups_in(self, request: Request) -> tuple[PbsDatastore, dict[tuple[str, str], PbsGroup]]:
        store = self._store(request)
        ns = request.query_params.get("ns", "")
        if ns not in store.namespaces:
            raise PbsError(f"namespace '{ns}' does not exist")
        return store, store.namespaces[ns]

    async def groups(self, request: Request) -> Response:
        with self.lab.lock:
            _store, groups = self._groups_in(request)
            items = [group_item(group) for group in groups.values() if group.snapshots]
        return _ok(items)

    async def snapshots(self, request: Request) -> Response:
        with self.lab.lock:
            _store, groups = self._groups_in(request)
            wanted_type = request.query_params.get("backup-type")
            wanted_id = request.query_params.get("backup-id")
            items = [
                self._encoded_snapshot(group, snap)
                for group in groups.values()
                if (wanted_type is None or group.backup_type == wanted_type)
                and (wanted_id is None or group.backup_id == wanted_id)
                for snap in group.snapshots
            ]
        body = b'{"data":[' + b",".join(items) + b"]}"
        return Response(body, media_type="application/json")

    def _encoded_snapshot(self, group: PbsGroup, snap: PbsSnapshot) -> bytes:
        # Big labs (the bench) would otherwise spend seconds re-encoding unchanged snapshots on every request:
        # keep each snapshot's JSON until one of the fields it renders changes. Holding `snap` pins its id().
        state: tuple[object, ...] = (group.backup_type, group.backup_id, snap.backup_time, snap.size)
        state += (snap.verification, snap.verify_upid, snap.protected, snap.comment, snap.owner, snap.crypt_mode)
        cached = self._encoded.get(id(snap))
        if cached is not None and cached[0] is snap and cached[1] == state:
            return cached[2]
        encoded = json.dumps(snapshot_item(group, snap), separators=(",", ":")).encode()
        self._encoded[id(snap)] = (snap, state, encoded)
        return encoded

    async def datastore_gc(self, request: Request) -> Response:
        with self.lab.lock:
            return _ok(self._gc_job(self._store(request)))

    def _gc_job(self, store: PbsDatastore) -> dict[str, Any]:
        item: dict[str, Any] = {"store": store.name, **gc_status(store)}
        if store.gc_schedule:
            item["schedule"] = store.gc_schedule
            # GC's next-run counts from the last GC end time when there is one, else from now (§3.10).
            last = store.gc.endtime if store.gc.upid and store.gc.endtime else self.lab.now_epoch()
            next_run = self._next_run(store.gc_schedule, last)
            if next_run is not None:
                item["next-run"] = next_run
        if store.gc.endtime is not None:
            item["last-run-endtime"] = store.gc.endtime
            item["last-run-state"] = store.gc.state or "OK"
            if store.gc.upid:
                item["duration"] = store.gc.endtime - int(store.gc.upid.split(":")[5], 16)
        return item

    async def gc_list(self, request: Request) -> Response:
        wanted = request.query_params.get("store")
        with self.lab.lock:
            items = [self._gc_job(s) for s in self.lab.datastores.values() if wanted in (None, s.name)]
        return _ok(items)

    # --- jobs ---------------------------------------------------------------------------------------------------

    def _jobs(self, request: Request, kind: str) -> list[PbsJob]:
        wanted = request.query_params.get("store")
        jobs = [j for j in self.lab.pbs_jobs if j.kind == kind and wanted in (None, j.store)]
        if kind == "sync":
            # PBS >= 3.3 lists only pull jobs unless asked for `push` or `all` (reference §3.9).
            direction = request.query_params.get("sync-direction", "pull")
            jobs = [j for j in jobs if direction == "all" or j.options.get("sync-direction", "pull") == direction]
            if not self.lab.remote_audit:  # jobs with a remote need Remote.Audit on it: hidden, no error (§2.2)
                jobs = [j for j in jobs if not j.options.get("remote")]
        return jobs

    def _job_config(self, job: PbsJob) -> dict[str, Any]:
        item: dict[str, Any] = {"id": job.id, "store": job.store}
        if job.ns is not None:
            item["ns"] = job.ns
        if job.schedule is not None:
            item["schedule"] = job.schedule
        if job.disable:
            item["disable"] = True  # omitted when false
        if job.comment is not None:
            item["comment"] = job.comment
        return item | job.options

    def _job_status(self, job: PbsJob) -> dict[str, Any]:
        item = self._job_config(job)
        if job.last_upid is not None:
            item["last-run-upid"] = job.last_upid
            if job.last_endtime is not None:
                item["last-run-state"] = job.last_state or "unknown"
                item["last-run-endtime"] = job.last_endtime
        if not job.disable:
            # next-run counts from the last run's end (or the job's creation), not from now (§3.10).
            next_run = self._next_run(job.schedule, job.last_endtime or job.created or self.lab.now_epoch())
            if next_run is not None:
                item["next-run"] = next_run
        return item

    def job_status_route(self, kind: str) -> Any:
        async def endpoint(request: Request) -> Response:
            with self.lab.lock:
                return _ok([self._job_status(j) for j in self._jobs(request, kind)])

        return endpoint

    def job_config_route(self, kind: str) -> Any:
        async def endpoint(request: Request) -> Response:
            with self.lab.lock:
                return _ok([self._job_config(j) for j in self._jobs(request, kind)], digest=_digest(self.lab))

        return endpoint

    async def config_datastore(self, request: Request) -> Response:
        with self.lab.lock:
            items = []
            for store in self.lab.datastores.values():
                item: dict[str, Any] = {"name": store.name, "path": f"/mnt/datastore/{store.name}"}
                if store.comment is not None:
                    item["comment"] = store.comment
                if store.gc_schedule:
                    item["gc-schedule"] = store.gc_schedule
                if store.verify_new:
                    item["verify-new"] = True
                items.append(item)
        return _ok(items, digest=_digest(self.lab))

    # --- remotes (src/api2/config/remote.rs), permissions (src/api2/access/mod.rs) ------------------------------

    def _remote(self, request: Request) -> PbsRemote:
        name = request.path_params["name"]
        remote = self.lab.pbs_remotes.get(name)
        if not self.lab.remote_audit:
            raise PbsError("permission check failed", 403)
        if remote is None:
            raise PbsError(f"no such remote '{name}'")
        return remote

    async def remotes(self, request: Request) -> Response:
        with self.lab.lock:
            items = []
            for remote in self.lab.pbs_remotes.values() if self.lab.remote_audit else ():  # filtered, no error
                item: dict[str, Any] = {"name": remote.name, "host": remote.host, "auth-id": remote.auth_id}
                if remote.port is not None:
                    item["port"] = remote.port
                if remote.fingerprint is not None:
                    item["fingerprint"] = remote.fingerprint
                if remote.comment is not None:
                    item["comment"] = remote.comment
                items.append(item)  # the password is never returned (RemoteWithoutPassword)
        return _ok(items, digest=_digest(self.lab))

    def _remote_store(self, request: Request) -> tuple[PbsRemote, PbsDatastore]:
        remote = self._remote(request)
        if remote.unreachable:
            # The local PBS could not ask the other side: an HTTP 500 carrying its reason.
            raise PbsError(f"failed to scan remote '{remote.name}' - {remote.unreachable}", 500)
        store = remote.datastores.get(request.path_params["store"])
        if store is None:
            message = f"datastore '{request.path_params['store']}' does not exist"
            raise PbsError(f"failed to scan remote '{remote.name}' - {message}", 500)
        return remote, store

    async def remote_stores(self, request: Request) -> Response:
        with self.lab.lock:
            remote = self._remote(request)
            if remote.unreachable:
                raise PbsError(f"failed to scan remote '{remote.name}' - {remote.unreachable}", 500)
            items = [{"store": s.name, "comment": s.comment} for s in remote.datastores.values()]
        return _ok(items)

    async def remote_namespaces(self, request: Request) -> Response:
        with self.lab.lock:
            _remote, store = self._remote_store(request)
            items = [{"ns": ns} for ns in sorted(store.namespaces)]
        return _ok(items)

    async def remote_groups(self, request: Request) -> Response:
        with self.lab.lock:
            remote, store = self._remote_store(request)
            ns = request.query_params.get("namespace", "")
            if ns not in store.namespaces:
                raise PbsError(f"failed to scan remote '{remote.name}' - namespace '{ns}' does not exist", 500)
            items = [group_item(group) for group in store.namespaces[ns].values() if group.snapshots]
        return _ok(items)

    async def permissions(self, request: Request) -> Response:
        """The caller's own privileges per ACL path (role Audit on /, RemoteAudit on /remote when granted)."""
        audit = {"Sys.Audit": True, "Datastore.Audit": True}
        paths: dict[str, dict[str, bool]] = {"/": audit, "/datastore": audit, "/system": audit, "/access": audit}
        # Audit on / reaches /remote too (propagated); RemoteAudit adds Remote.Audit there.
        paths["/remote"] = audit | ({"Remote.Audit": True} if self.lab.remote_audit else {})
        wanted = request.query_params.get("path")
        items = {p: privs for p, privs in paths.items() if privs and (wanted is None or p == wanted)}
        return _ok(items)

    # --- tasks, time --------------------------------------------------------------------------------------------

    async def tasks(self, request: Request) -> Response:
        start = _int(request, "start", 0) or 0
        limit = _int(request, "limit", 50) or 0
        since, until = _int(request, "since"), _int(request, "until")
        typefilter = request.query_params.get("typefilter")
        store = request.query_params.get("store")
        running, errors = _flag(request, "running"), _flag(request, "errors")
        with self.lab.lock:
            ordered = sorted(self.lab.pbs_tasks, key=lambda t: (-t.starttime, t.upid))
            matches: list[dict[str, Any]] = []
            more = False
            for task in ordered:
                if since is not None and task.endtime is not None and task.endtime < since:
                    break  # the real handler stops at the first task that ended before `since` (§3.7)
                if since is not None and task.starttime < since:
                    continue
                if until is not None and task.starttime > until:
                    continue
                if typefilter and typefilter not in task.worker_type:  # substring, unlike PVE
                    continue
                if running and task.endtime is not None:
                    continue
                if errors and task.status == "OK":
                    continue
                if store and task_store(task) != store:
                    continue
                matches.append(task_item(task))
                if limit and len(matches) > start + limit:
                    more = True
                    break
        page = matches[start : start + limit] if limit else matches[start:]
        return _ok(page, total=start + len(page) + (1 if more else 0))

    async def time(self, request: Request) -> Response:
        now = self.lab.clock()
        offset = now.astimezone(zone_or_utc(self.lab.pbs_timezone)).utcoffset()
        seconds = int(offset.total_seconds()) if offset else 0
        epoch = int(now.timestamp())
        return _ok({"timezone": self.lab.pbs_timezone, "time": epoch, "localtime": epoch + seconds})


def _digest(lab: ProxmoxLab) -> str:
    return f"{abs(hash(tuple(j.id for j in lab.pbs_jobs))):064x}"[:64]


def create_pbs_app(
    lab: ProxmoxLab, *, token_id: str, token_secret: str, faults: Faults | None = None
) -> ProxmoxFaultWrapper:
    """The PBS API as an ASGI app. `app.faults`, `app.requests` and `app.lab` stay reachable for tests."""
    api = _PbsApi(lab)
    base = "/api2/json"
    routes = [
        Route(f"{base}/admin/datastore", api.datastores),
        Route(f"{base}/admin/datastore/{{store}}/status", api.status),
        Route(f"{base}/admin/datastore/{{store}}/namespace", api.namespaces),
        Route(f"{base}/admin/datastore/{{store}}/groups", api.groups),
        Route(f"{base}/admin/datastore/{{store}}/snapshots", api.snapshots),
        Route(f"{base}/admin/datastore/{{store}}/gc", api.datastore_gc),
        Route(f"{base}/status/datastore-usage", api.usage),
        Route(f"{base}/nodes/localhost/tasks", api.tasks),
        Route(f"{base}/nodes/localhost/time", api.time),
        Route(f"{base}/admin/gc", api.gc_list),
        Route(f"{base}/config/datastore", api.config_datastore),
        Route(f"{base}/config/remote", api.remotes),
        Route(f"{base}/config/remote/{{name}}/scan", api.remote_stores),
        Route(f"{base}/config/remote/{{name}}/scan/{{store}}/namespaces", api.remote_namespaces),
        Route(f"{base}/config/remote/{{name}}/scan/{{store}}/groups", api.remote_groups),
        Route(f"{base}/access/permissions", api.permissions),
    ]
    for kind in ("prune", "verify", "sync"):
        routes.append(Route(f"{base}/admin/{kind}", api.job_status_route(kind)))
        routes.append(Route(f"{base}/config/{kind}", api.job_config_route(kind)))

    async def pbs_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PbsError)
        return _error_response(str(exc), exc.status)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return _error_response(f"Path '{request.url.path}' not found.", status)

    app = Starlette(routes=routes, exception_handlers={PbsError: pbs_error, 404: not_found, 405: not_found})

    def check(header: str | None) -> bool:
        parsed = split_token(header, "PBSAPIToken", ":", last=False)
        return parsed == (token_id, token_secret)

    return ProxmoxFaultWrapper(
        app, check_token=check, unauthorized_body=b"authentication failed - invalid token", faults=faults, lab=lab
    )


__all__ = ["Faults", "create_pbs_app"]
