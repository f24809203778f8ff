"""Databasement source: REST API (Sanctum bearer token) -> one `Observation` per poll.

Sits at the start of the flow (sources -> observations -> health). It owns Databasement's wire (field
names, Laravel pagination, Spatie filters; see `reference/databasement-api.md`) and returns model records. It
makes no verdicts, never puts the token anywhere but the `Authorization` header, and never reads `metadata`
(it names hosts and users we have no use for).

What one poll reads:
- the inventory, every poll (small: one page per 100 servers): `/database-servers` (schedules are embedded in
  `backups[].backup_schedule`; the January 2026 shape has `backup.recurrence` instead), `/scheduled-restores`
  (absent before ~2026-03: a 404 means "no restore tests"), and `/backup-schedules` only when a restore test
  names a schedule no server embeds.
- dump attempts: `/snapshots?sort=-started_at` (one row per attempt, failed ones included). The API has no
  "newer than" filter, so the first poll pages through everything and later polls read newest-first and **stop
  at the first page that ends before the newest `started_at` already known** (rows are created at dispatch, so
  nothing new can appear behind that point). Attempts we last saw pending/running that did not show up again
  are re-read one by one (`/snapshots/{id}`; at most `_MAX_RECHECKS` a poll). Every `_FULL_RESYNC` the whole
  list is read again, which also forgets dumps that retention cleanup deleted upstream.
- error text: `/jobs?filter[type]=backup&filter[status]=failed&sort=-created_at`, only while a failed attempt
  still lacks its message, stopping as soon as every missing message is found or the rows get older than the
  oldest one missing.
- restore-test runs: `/jobs?filter[type]=restore&sort=-created_at` with the same "stop at what we know" rule.

Page URLs are built here (`page = meta.current_page + 1`): `links.next` drops `per_page`, filters and sort.

One bad record costs that record (or that field), named in `problems`, never the poll: a row without a usable
`id` is left out, rows sharing an id keep the first, a size that is no number is an unknown size, a listing that
does not end is read up to a bound. Error texts, restore tests and their runs are secondary: when their endpoint
fails on its own, the poll goes on without them and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..config import DatabasementSourceConfig
from ..errors import SourceError, SourceProtocolError
from ..model import Job, JobKind, JobRun, Observation, RunOutcome, ScheduleRef, Snapshot, Target
from ._http import HttpClient
from ._util import SourceBase, as_int, as_name, left_out, offsite_named, utc_now

KIND = "databasement"
API = "/api/v1"
_FULL_RESYNC = timedelta(hours=6)  # bounds how long a dump deleted upstream lingers in our view
_MAX_RECHECKS = 20  # individual re-reads of still-running attempts per poll; the rest wait for the next poll
_KEEP_RESTORE_RUNS = 1000  # newest restore-job rows kept between full resyncs; bounds a long-running collector
# January 2026 builds: `recurrence` was driven by BACKUP_DAILY_CRON / BACKUP_WEEKLY_CRON, not visible in the
# API; these are their defaults (reference §5.1). An operator who changed them sees a wrong next-run time.
_LEGACY_CRON = {"daily": "0 2 * * *", "weekly": "0 3 * * 0"}
_OUTCOME = {
    "completed": RunOutcome.OK,
    "failed": RunOutcome.FAILED,
    "cancelled": RunOutcome.FAILED,  # newest builds; no dump was made, which is what the dashboard must say
    "pending": RunOutcome.RUNNING,
    "running": RunOutcome.RUNNING,
}
_TERMINAL = {"completed", "failed", "cancelled"}
# One listing is read up to this many rows or bytes. Databasement pages at most 100 rows (reference §4) and keeps
# a row per dump attempt until retention cleanup (14 days by default): a real `/snapshots` is hundreds to tens of
# thousands of rows of about a kilobyte. Past either bound the answers are no list that ends (a server echoing
# `current_page` with `last_page` 1e9 had 642 MB kept by the poll's deadline): the rows read are used, and said.
_MAX_ROWS = 100_000
_MAX_LISTING_BYTES = 128 * 1024 * 1024  # 100,000 rows of 1.3 KB
# Volumes read per snapshot row: a dump copied to more than a few dozen volumes is no real setup, and 200,000 of
# them (14 MB in one row) held the event loop for minutes.
_MAX_VOLUMES = 32
_MAX_ERROR_TEXT = 4000  # characters kept of an error message: more than the board shows (1,000), never 30 MB
_REMOTE_VOLUMES = {"s3", "sftp", "ftp", "azure"}  # volume types on another machine: offsite unless configured


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One row of `/snapshots`, reduced to what we use."""

    id: str
    server_id: str
    server_name: str
    database: str
    status: str
    method: str
    started_at: datetime
    updated_at: datetime | None
    size: int | None  # None: unknown (a `file_size` that is no number), never a made-up 0
    job_id: str | None
    location: str
    encrypted: bool = False  # compression_type "encrypted" (reference §6)
    places: tuple[str, ...] = ()  # the volumes holding the dump, when more than one
    remote_places: frozenset[str] = frozenset()  # of the volumes, those on another machine (s3, sftp, ...)
    exists: bool = True  # some volume holds the dump (each copy failed or its file is gone: none does)
    notes: tuple[str, ...] = ()  # what of the row could not be read; said on every poll the attempt is kept

    @property
    def is_terminal(self) -> bool:
        return self.status in _TERMINAL or self.status not in _OUTCOME  # unknown status: don't chase it


@dataclass(frozen=True, slots=True)
class _Backup:
    """One backup configuration of a server: which databases, on which schedule."""

    schedule_key: str
    schedule_name: str
    expression: str
    databases: tuple[str, ...] | None  # None: "all" or "pattern" mode, i.e. whatever the dumps show
    include_pattern: str | None


@dataclass(frozen=True, slots=True)
class _Server:
    id: str
    name: str
    enabled: bool
    backups: tuple[_Backup, ...]


@dataclass(frozen=True, slots=True)
class _RestoreTest:
    id: str
    name: str
    source_server_id: str
    database: str
    target_server_id: str
    schema_name: str
    schedule_id: str | None
    enabled: bool


_R = TypeVar("_R", _Attempt, _Server, _RestoreTest)
_T = TypeVar("_T")


class DatabasementSource(SourceBase):
    """Polls one Databasement instance. Keeps the dump attempts it has seen so later polls read only news."""

    def __init__(
        self,
        config: DatabasementSourceConfig,
        *,
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = config.name
        self.kind = KIND
        self._config = config
        self._clock = clock
        token = config.token.get_secret_value() if config.token else ""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if config.organization_id:
            headers["X-Organization-Id"] = config.organization_id
        self._client = client or HttpClient.for_source(config, kind=KIND, headers=headers)
        self._attempts: dict[str, _Attempt] = {}
        self._unreadable: list[str] = []  # this poll's snapshot rows left out, and why
        self._problems: list[str] = []  # this poll's other problem lines: what was read only in part
        self._tests: list[_RestoreTest] = []  # the restore tests last read, for a poll that cannot read them
        self._messages: dict[str, str] = {}  # BackupJob id -> error_message
        self._restore_runs: dict[str, dict[str, Any]] = {}  # restore BackupJob id -> its row
        self._synced_at: datetime | None = None
        # Schedules only restore tests need (servers embed their own): re-read on a full resync or a new id.
        self._schedules: dict[str, tuple[str, str]] = {}

    @property
    def client(self) -> HttpClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- wire ------------------------------------------------------------------------------------------

    async def _pages(
        self, path: str, params: dict[str, Any], *, stop: Callable[[list[dict[str, Any]]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Every row of a paginated list, or fewer when `stop(page_rows)` says the rest is known, or the first ones
        of a list longer than `_MAX_ROWS` / `_MAX_LISTING_BYTES` (noted)."""
        rows: list[dict[str, Any]] = []
        page = 1
        start = self._client.bytes_received
        while True:
            body = await self._client.get_json(path, {**params, "per_page": self._config.per_page, "page": page})
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise self._protocol(f"{path}: expected a paginated object with `data`")
            data = [row for row in body["data"] if isinstance(row, dict)]
            self._unreadable.extend(
                f"a row of {path} that is no object ({type(row).__name__})"
                for row in body["data"]
                if not isinstance(row, dict)
            )
            rows.extend(data)
            if data and stop is not None and stop(data):
                return rows
            meta: dict[str, Any] = body["meta"] if isinstance(body.get("meta"), dict) else {}
            try:
                current = int(meta.get("current_page", page))
                last = int(meta.get("last_page", current))
            except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 decodes as infinity
                raise self._protocol(f"{path}: `meta.current_page`/`last_page` are not numbers") from None
            if current >= last or not data:
                return rows
            if current != page:  # asked for one page, given another: it would never end
                raise self._protocol(
                    f"{path}: page {page} came back as `meta.current_page` {current} (of {last}); not read further"
                )
            if len(rows) >= _MAX_ROWS or self._client.bytes_received - start >= _MAX_LISTING_BYTES:
                self._problems.append(
                    f"listing {path}: more than {_MAX_ROWS:,} rows or {_MAX_LISTING_BYTES >> 20} MB; "
                    f"read the first {len(rows):,}"
                )
                return rows
            page = current + 1

    async def _optional_pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        """A list that older builds lack: None on 404 (or 400 for an unknown filter)."""
        try:
            return await self._pages(path, params)
        except SourceError as exc:
            if exc.http_status in (400, 404):
                return None
            raise

    async def _degraded(self, what: str, reading: Awaitable[_T], fallback: _T) -> _T:
        """A secondary read (error texts, restore tests) that fails on its own (a server error, a broken or too big
        answer) costs only itself: the poll goes on with `fallback` and says so. A rejected token or a lost
        connection fails the source, as on any endpoint."""
        try:
            return await reading
        except SourceError as exc:
            if isinstance(exc, SourceProtocolError) or (exc.http_status or 0) >= 500:
                self._problems.append(f"{what}: {exc}")
                return fallback
            raise

    def _first_of_each(self, what: str, records: Iterable[_R], same: Callable[[_R], object]) -> list[_R]:
        """One record per id. An id read again for the same record is a row that moved to the next page while the
        list was read (a dump dispatched meanwhile): the later read is kept. An id shared by different records
        (all ids null, say) would merge them: the first is kept and the rest are counted in a problem line."""
        kept: dict[str, _R] = {}
        dropped: Counter[str] = Counter()
        for record in records:
            first = kept.get(record.id)
            if first is None or same(first) == same(record):
                kept[record.id] = record
            else:
                dropped[record.id] += 1
        if dropped:
            example, count = dropped.most_common(1)[0]
            self._problems.append(
                f"{what} rows reusing the id of a different {what}: {dropped.total():,} (e.g. id {example[:40]!r}, "
                f"listed {count + 1:,} times); kept the first of each, dropped the rest"
            )
        return list(kept.values())

    # --- poll ------------------------------------------------------------------------------------------

    async def poll(self) -> Observation:
        now = self._clock()
        self._unreadable, self._problems = [], []
        rows = await self._pages(f"{API}/database-servers", {})
        servers = self._first_of_each("database server", filter(None, map(self._server, rows)), same=lambda s: s)
        full = self._synced_at is None or now - self._synced_at >= _FULL_RESYNC
        await self._read_attempts(full)
        if full:
            self._synced_at = now
        await self._degraded("error texts of failed dumps", self._read_messages(), None)
        tests = self._tests = await self._degraded("restore tests", self._read_restore_tests(), self._tests)
        schedules = self._schedules
        schedules.update({b.schedule_key: (b.schedule_name, b.expression) for s in servers for b in s.backups})
        if tests:
            if full or any(t.schedule_id and t.schedule_id not in schedules for t in tests):
                await self._degraded("backup schedules", self._read_schedules(), None)
            await self._degraded("restore test runs", self._read_restore_runs(full), None)
        observation = self._observation(now, servers, tests, schedules)
        problems = (*left_out(self._unreadable), *self._problems, *self._read_in_part())
        if problems:
            observation = replace(observation, problems=(*observation.problems, *problems))
        return observation

    def _read_in_part(self) -> tuple[str, ...]:
        """One line per kind of field left unread (an unknown size, volumes past the bound), naming the first row."""
        rows: dict[str, list[str]] = {}
        for a in self._attempts.values():
            for note in a.notes:
                rows.setdefault(note, []).append(a.id)
        return tuple(
            f"snapshot row id {ids[0][:40]!r}{f' and {len(ids) - 1:,} more' if len(ids) > 1 else ''}: {note}"
            for note, ids in rows.items()
        )

    async def _read_attempts(self, full: bool) -> None:
        horizon = None if full or not self._attempts else max(a.started_at for a in self._attempts.values())
        # Rows dispatched in the same second as the newest known one: once all of them came back, the rest of
        # the list is known too (one run dispatches all its dumps at once, so it cannot gain members later).
        edge = {a.id for a in self._attempts.values() if a.started_at == horizon}
        seen: set[str] = set()

        def reached_known(page: list[dict[str, Any]]) -> bool:
            seen.update(str(row.get("id")) for row in page)
            started = _maybe_time(page[-1].get("started_at"))
            return horizon is not None and started is not None and (started < horizon or edge <= seen)

        rows = await self._pages(f"{API}/snapshots", {"sort": "-started_at"}, stop=reached_known)
        read = filter(None, map(self._attempt, rows))
        fresh = {a.id: a for a in self._first_of_each("snapshot", read, same=_dump)}
        if full:
            self._attempts = fresh
            jobs = {a.job_id for a in fresh.values()}
            self._messages = {job: text for job, text in self._messages.items() if job in jobs}
            return
        stale = [a.id for a in self._attempts.values() if not a.is_terminal and a.id not in fresh]
        self._attempts.update(fresh)
        for attempt_id in stale[:_MAX_RECHECKS]:
            try:
                body = await self._client.get_json(f"{API}/snapshots/{attempt_id}")
            except SourceError as exc:
                if exc.http_status == 404:  # deleted upstream
                    self._attempts.pop(attempt_id, None)
                    continue
                raise
            if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
                raise self._protocol(f"{API}/snapshots/{{id}}: expected an object with `data`")
            if (attempt := self._attempt(body["data"])) is not None:
                self._attempts[attempt_id] = attempt
            else:
                self._attempts.pop(attempt_id, None)

    async def _read_messages(self) -> None:
        wanted = {
            a.job_id: a.started_at
            for a in self._attempts.values()
            if a.status == "failed" and a.job_id and a.job_id not in self._messages
        }
        if not wanted:
            return
        try:
            oldest = min(wanted.values()) - timedelta(minutes=1)
        except OverflowError:  # an attempt "started" in the first minute of year 1: every row is newer
            oldest = datetime.min.replace(tzinfo=UTC)

        def done(page: list[dict[str, Any]]) -> bool:
            created = _maybe_time(page[-1].get("created_at"))
            return all(j in self._messages for j in wanted) or (created is not None and created < oldest)

        def collect(page: list[dict[str, Any]]) -> bool:
            for row in page:
                if job_id := as_name(row.get("id")):
                    self._messages[job_id] = _text(row.get("error_message"))
                else:
                    self._unreadable.append(f"a failed job without `id` ({_row(row)})")
            return done(page)

        params = {"filter[type]": "backup", "filter[status]": "failed", "sort": "-created_at"}
        await self._pages(f"{API}/jobs", params, stop=collect)

    async def _read_restore_runs(self, full: bool) -> None:
        """Restore-job rows, newest first, until the known ones. A full resync starts afresh (forgets rows deleted
        upstream); at most `_KEEP_RESTORE_RUNS` rows are kept."""
        runs = {} if full else dict(self._restore_runs)
        known = [r for r in runs.values() if isinstance(status := r.get("status"), str) and status in _TERMINAL]
        horizon = max((t for r in known if (t := _maybe_time(r.get("created_at")))), default=None)

        def reached_known(page: list[dict[str, Any]]) -> bool:
            created = _maybe_time(page[-1].get("created_at"))
            return horizon is not None and created is not None and created < horizon

        params = {"filter[type]": "restore", "sort": "-created_at"}
        for row in await self._pages(f"{API}/jobs", params, stop=reached_known):
            if not isinstance(row.get("restore"), dict):
                continue
            if run_id := as_name(row.get("id")):
                runs[run_id] = {**row, "error_message": _text(row.get("error_message"))}
            else:
                self._unreadable.append(f"a restore job without `id` ({_row(row)})")
        if len(runs) > _KEEP_RESTORE_RUNS:
            oldest_first = sorted(runs, key=lambda k: _maybe_time(runs[k].get("created_at")) or _EPOCH)
            for key in oldest_first[: len(runs) - _KEEP_RESTORE_RUNS]:
                del runs[key]
        self._restore_runs = runs

    async def _read_restore_tests(self) -> list[_RestoreTest]:
        rows = await self._optional_pages(f"{API}/scheduled-restores", {}) or []
        return self._first_of_each("restore test", filter(None, map(self._restore_test, rows)), same=lambda t: t)

    async def _read_schedules(self) -> None:
        """The schedules restore tests name (servers embed their own)."""
        for row in await self._optional_pages(f"{API}/backup-schedules", {}) or []:
            if schedule_id := as_name(row.get("id")):
                self._schedules[schedule_id] = (str(row.get("name", "")), str(row.get("expression", "")))
            else:
                self._unreadable.append(f"a backup schedule without `id` ({_row(row)})")

    # --- parsing ---------------------------------------------------------------------------------------

    def _server(self, row: dict[str, Any]) -> _Server | None:
        """None for a server row without `id` or `name` (noted in `_unreadable`): it costs that server."""
        server_id, name = as_name(row.get("id")), as_name(row.get("name"))
        if not server_id or not name:
            self._unreadable.append(f"a database server without `id` or `name` ({_row(row)})")
            return None
        backups: list[_Backup] = []
        configs = row.get("backups") or []
        # A field of the wrong JSON type ("backups": 5, "database_names": 5, "recurrence": ["daily"]) is read as
        # absent: it costs that field, not the server or the poll.
        for b in configs if isinstance(configs, list) else []:
            schedule = b.get("backup_schedule") if isinstance(b, dict) else None
            if not isinstance(schedule, dict):
                continue  # a backup config without a schedule only runs by hand
            names = b.get("database_names") if b.get("database_selection_mode") == "selected" else None
            pattern = b.get("database_include_pattern")
            backups.append(
                _Backup(
                    schedule_key=str(schedule.get("id")),
                    schedule_name=str(schedule.get("name", "")),
                    expression=str(schedule.get("expression", "")),
                    databases=tuple(str(n) for n in names) if isinstance(names, list) else None,
                    include_pattern=pattern if isinstance(pattern, str) else None,
                )
            )
        legacy = row.get("backup")
        recurrence = legacy.get("recurrence") if isinstance(legacy, dict) else None
        if isinstance(recurrence, str) and recurrence in _LEGACY_CRON:
            names = None if row.get("backup_all_databases") else row.get("database_names")
            databases = tuple(str(n) for n in names) if isinstance(names, list) else None
            backups.append(_Backup(recurrence, recurrence.title(), _LEGACY_CRON[recurrence], databases, None))
        return _Server(server_id, name, bool(row.get("backups_enabled", True)), tuple(backups))

    def _attempt(self, row: dict[str, Any]) -> _Attempt | None:
        """A snapshot row as an attempt; None for a row that cannot be one (noted in `_unreadable`): one bad row
        costs that row, not the source."""
        try:
            server = row.get("server") or {}
            job = row.get("job") or {}
            listed = found if isinstance(found := row.get("volumes"), list) else []
            volumes = [v for v in listed[:_MAX_VOLUMES] if isinstance(v, dict) and as_name(v.get("name"))]
            stored = [
                v for v in volumes if v.get("status", "completed") == "completed" and v.get("file_exists") is not False
            ]
            status = str(job.get("status") or "unknown")
            size = _size(row.get("file_size"))
            notes: list[str] = []
            if len(listed) > _MAX_VOLUMES:
                notes.append(f"lists more than {_MAX_VOLUMES} volumes; read the first {_MAX_VOLUMES}")
            if size is None and status == "completed":  # only a finished dump has a size to lose
                notes.append("`file_size` is no byte count; size unknown")
            return _Attempt(
                id=_name(row.get("id"), "id"),
                server_id=str(server.get("id", "")),
                server_name=str(server.get("name", "")),
                database=_name(row["database_name"], "database_name"),
                status=status,
                method=str(row.get("method") or "scheduled"),
                started_at=_time(row["started_at"]),
                updated_at=_time(row["updated_at"]) if row.get("updated_at") else None,
                size=size,
                job_id=as_name(job.get("id")) or None,
                # Where the dump really is: a volume whose copy failed or was deleted holds nothing.
                location=", ".join(str(v["name"]) for v in (stored or volumes)),
                encrypted=row.get("compression_type") == "encrypted",
                places=tuple(str(v["name"]) for v in stored) if len(stored) > 1 else (),
                remote_places=frozenset(str(v["name"]) for v in stored if str(v.get("type")) in _REMOTE_VOLUMES),
                exists=bool(stored) or not volumes,  # older Databasement lists no volumes per snapshot
                notes=tuple(notes),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            self._unreadable.append(f"unreadable snapshot row {_row(row)} ({exc.__class__.__name__}: {exc})")
            return None

    def _restore_test(self, row: dict[str, Any]) -> _RestoreTest | None:
        """None for a scheduled restore without a usable `id` (noted): several would merge into one job."""
        test_id = as_name(row.get("id"))
        if not test_id:
            self._unreadable.append(f"a scheduled restore without `id` ({_row(row)})")
            return None
        return _RestoreTest(
            id=test_id,
            name=str(row.get("name") or ""),
            source_server_id=str(row.get("source_server_id")),
            database=str(row.get("source_database_name") or ""),
            target_server_id=str(row.get("target_server_id")),
            schema_name=str(row.get("schema_name") or ""),
            schedule_id=str(row["backup_schedule_id"]) if row.get("backup_schedule_id") else None,
            enabled=bool(row.get("enabled", True)),
        )

    # --- records ---------------------------------------------------------------------------------------

    def _key(self, server: str, database: str) -> str:
        return f"databasement:{self.name}/{server}/{database}"

    def _observation(
        self,
        now: datetime,
        servers: list[_Server],
        tests: list[_RestoreTest],
        schedules: dict[str, tuple[str, str]],
    ) -> Observation:
        zone = self._config.timezone
        by_id = {s.id: s for s in servers}
        preflight = {b.include_pattern for s in servers for b in s.backups if b.include_pattern}
        seen: dict[str, set[str]] = {}  # server id -> databases that have dumps
        for a in self._attempts.values():
            if not _is_preflight(a.database, preflight):
                seen.setdefault(a.server_id, set()).add(a.database)
        targets: dict[str, Target] = {}
        covers: dict[str, list[str]] = {}  # job key -> target keys
        job_of: dict[tuple[str, str], str] = {}  # (server id, database) -> job key
        server_job: dict[str, str] = {}  # server id -> its first job, for dumps no selection names
        uncovered: list[str] = []
        for server in servers:
            names = set(seen.get(server.id, ()))
            for b in server.backups:
                names |= set(b.databases or ())
            for name in sorted(names):
                targets[self._key(server.name, name)] = Target(
                    self._key(server.name, name), self.name, f"{name} on {server.name}", "database"
                )
            for b in server.backups:
                job_key = f"{self.name}/backup/{b.schedule_key}"
                covered = sorted(b.databases if b.databases is not None else seen.get(server.id, ()))
                server_job.setdefault(server.id, job_key)
                for name in covered:
                    job_of.setdefault((server.id, name), job_key)
                    if server.enabled:
                        covers.setdefault(job_key, []).append(self._key(server.name, name))
            if not server.enabled:
                # Scheduled runs skip servers with backups disabled (reference §5.1): they are in no job.
                uncovered.extend(self._key(server.name, n) for n in sorted(names))

        snapshots: list[Snapshot] = []
        runs: list[JobRun] = []
        running: set[str] = set()
        for a in sorted(self._attempts.values(), key=lambda a: a.started_at):
            server_name = by_id[a.server_id].name if a.server_id in by_id else a.server_name
            is_preflight = _is_preflight(a.database, preflight)
            key = None if is_preflight else self._key(server_name, a.database)
            if key is not None and key not in targets:
                targets[key] = Target(key, self.name, f"{a.database} on {server_name}", "database")
            outcome = _OUTCOME.get(a.status, RunOutcome.UNKNOWN)
            if outcome is RunOutcome.RUNNING and key:
                running.add(key)
            # Manual dumps are real backups but say nothing about whether the schedule fires (reference §8.5).
            job_key = f"{self.name}/backup/manual"
            if a.method != "manual":
                job_key = job_of.get((a.server_id, a.database)) or server_job.get(a.server_id, job_key)
            message = self._messages.get(a.job_id or "", "") if a.status == "failed" else ""
            if a.status == "cancelled":
                message = "cancelled"
            if is_preflight:
                message = f"pre-flight failed ({a.database})" + (f": {message}" if message else "")
            runs.append(
                JobRun(
                    job_key=job_key,
                    source=self.name,
                    run_id=a.id,
                    started_at=a.started_at,
                    ended_at=a.updated_at if a.is_terminal else None,
                    outcome=outcome,
                    message=message,
                    target_key=key,
                    size_bytes=a.size or None,
                )
            )
            if a.status == "completed" and key is not None and a.exists:
                snapshots.append(
                    Snapshot(
                        key, self.name, a.id, a.started_at, size_bytes=a.size, location=a.location,
                        encrypted=a.encrypted, places=a.places,
                    )
                )  # fmt: skip

        jobs: list[Job] = []
        for server in servers:
            for b in server.backups:
                job_key = f"{self.name}/backup/{b.schedule_key}"
                if any(j.key == job_key for j in jobs):
                    continue
                jobs.append(
                    Job(
                        key=job_key,
                        source=self.name,
                        kind=JobKind.BACKUP,
                        job_id=b.schedule_key,
                        name=b.schedule_name or b.schedule_key,
                        schedule=ScheduleRef(b.expression, "cron", zone) if b.expression else None,
                        target_keys=tuple(dict.fromkeys(covers.get(job_key, ()))),
                    )
                )
        restore_runs = self._restore_job_runs(tests)
        runs.extend(restore_runs)
        for t in tests:
            source_server = by_id.get(t.source_server_id)
            name, expression = schedules.get(t.schedule_id or "", ("", ""))
            jobs.append(
                Job(
                    key=f"{self.name}/restore_test/{t.id}",
                    source=self.name,
                    kind=JobKind.RESTORE_TEST,
                    job_id=t.id,
                    name=t.name,
                    schedule=ScheduleRef(expression, "cron", zone) if expression else None,
                    enabled=t.enabled,
                    target_keys=(self._key(source_server.name, t.database),) if source_server else (),
                    comment=f"restores into {t.schema_name}" + (f" (schedule {name})" if name else ""),
                )
            )
        jobs = [replace(j, last_run=_last(runs, j.key)) for j in jobs]
        offsite: set[str] = set()
        for a in self._attempts.values():
            for place in a.places or (a.location,):
                named = offsite_named(self._config.offsite, place)
                if named or (named is None and place in a.remote_places):
                    offsite.add(place)
        return Observation(
            source=self.name,
            kind=KIND,
            observed_at=now,
            timezone=zone,
            targets=tuple(replace(t, backup_running=t.key in running) for t in targets.values()),
            snapshots=tuple(snapshots),
            jobs=tuple(jobs),
            runs=tuple(runs),
            uncovered_target_keys=tuple(uncovered),
            offsite_locations=tuple(sorted(offsite)),
        )

    def _restore_job_runs(self, tests: list[_RestoreTest]) -> list[JobRun]:
        runs: list[JobRun] = []
        by_target: dict[tuple[str, object], _RestoreTest] = {}  # a lookup, not a scan of every test per run
        for t in tests:
            by_target.setdefault((t.target_server_id, t.schema_name), t)
        for row in self._restore_runs.values():
            restore = row["restore"]
            target = restore.get("target_server") or {}
            if not isinstance(target, dict):  # "target_server": "srv2": no telling which restore test it ran
                self._unreadable.append(f"unreadable restore job {row.get('id')} (target_server is no object)")
                continue
            schema = restore.get("schema_name")
            test = by_target.get((str(target.get("id")), schema)) if isinstance(schema, str) else None
            if test is None:
                continue  # a restore run by hand, not a restore test
            status = str(row.get("status") or "unknown")
            started = _maybe_time(row.get("started_at")) or _maybe_time(row.get("created_at"))
            if started is None:
                continue  # not dispatched yet
            runs.append(
                JobRun(
                    job_key=f"{self.name}/restore_test/{test.id}",
                    source=self.name,
                    run_id=str(row.get("id")),
                    started_at=started,
                    ended_at=_maybe_time(row.get("completed_at")),
                    outcome=_OUTCOME.get(status, RunOutcome.UNKNOWN),
                    message=str(row.get("error_message") or ""),
                )
            )
        return sorted(runs, key=lambda r: r.started_at)


def _is_preflight(database: str, patterns: set[str]) -> bool:
    # BackupJobFactory::recordPreflightFailure names the row "(all databases)", "(preflight)" or the pattern.
    return (database.startswith("(") and database.endswith(")")) or database in patterns


def _last(runs: list[JobRun], job_key: str) -> JobRun | None:
    """Newest finished run of a job; of several started at the same moment, the worst one."""
    rank = {RunOutcome.FAILED: 0, RunOutcome.UNKNOWN: 1, RunOutcome.WARNING: 2, RunOutcome.OK: 3}
    done = [r for r in runs if r.job_key == job_key and r.outcome is not RunOutcome.RUNNING]
    return min(done, key=lambda r: (-r.started_at.timestamp(), rank.get(r.outcome, 1)), default=None)


def _maybe_time(value: object) -> datetime | None:
    try:
        return _time(value)
    except ValueError:
        return None


def _dump(a: _Attempt) -> tuple[str, str, datetime]:
    """What makes two snapshot rows the same dump attempt, whatever their status."""
    return a.server_id, a.database, a.started_at


def _name(value: Any, field: str) -> str:
    name = as_name(value)
    if name is None:
        raise ValueError(f"`{field}` is no name")
    if not name:
        raise ValueError(f"`{field}` is empty")
    return name


def _size(value: Any) -> int | None:
    """`file_size` in bytes; None (unknown) for null, true, NaN, 1e400, "12abc" or an integer too long to read
    (which the decoder makes null): never 0 or 1, which would read as an empty dump."""
    return None if isinstance(value, bool) else as_int(value)


def _text(value: Any) -> str:
    """An error message as kept: at most `_MAX_ERROR_TEXT` characters."""
    return str(value or "")[:_MAX_ERROR_TEXT]


def _row(row: dict[str, Any]) -> str:
    """Which row a notice is about: its id, short (the notice is cleaned of control characters downstream)."""
    found = row.get("id")
    return f"id {str(found)[:40]!r}" if found is not None else "with no id"


def _time(value: object) -> datetime:
    """Carbon `toJSON()` ("2026-08-06T02:00:04.000000Z") -> aware UTC datetime. A timestamp without an offset
    (a serializer that drops it) is taken as UTC, Laravel's default storage zone, never as this host's zone."""
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:30:00+01:00": in UTC it falls before year 1 (or after 9999)
        raise ValueError(f"timestamp outside the calendar: {value!r}") from None


_EPOCH = datetime.fromtimestamp(0, UTC)


def create(config: DatabasementSourceConfig) -> DatabasementSource:
    return DatabasementSource(config)


__all__ = ["DatabasementSource", "create"]
