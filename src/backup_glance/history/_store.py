"""The `History` store: one SQLite connection, WAL, one writer (the collector), readers take turns.

WAL with `synchronous=NORMAL` means a killed process loses at most the transaction in flight, never the file.
The connection sits behind a lock (`check_same_thread=False`), so the collector's thread and a request thread
may both call in; every call is short.

Cost follows change, not size: the store remembers what it last wrote (the present snapshots per source, the
runs and the view window), so a quiet poll compares in memory and writes only what changed, and a view is
served from memory after the first one. The file stays the truth: every memory is rebuilt from it after a
start, and a failed write leaves the memory as it was.

A source that lists its snapshots as series (a PBS, one per group) is remembered by those very series, not a
`Snapshot` and an id per snapshot; the view hands them on as they are (`HistoryView.series`), and holds as
snapshots of their own only what no series lists any more (`_series`).

A record may leave its new snapshot rows for later (`record(..., defer=True)`, then `flush`): the collector
publishes the board first, as a big first poll's rows take seconds to write. Memory already holds them, so a
view in between is the view after the write; any other use of the file writes them first, and a failed late
write makes memory start over from the file, as after a start.
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import statistics
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from ..errors import HistoryError
from ..model import HistoryView, JobRun, Observation, Snapshot, SnapshotSeries, Target, id_prefix_of
from ..paths import folder_trouble
from ._batch import insert_rows, update_where_in
from ._listed import Change, Listed, Scope
from ._rows import (
    OUTCOME_TEXT,
    RUN_COLUMNS,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_FIELDS,
    VERIFICATION_TEXT,
    RunKey,
    epoch,
    instant,
    instant_or_none,
    run_from_row,
    run_key,
    run_row,
    snapshot_from_row,
    snapshot_row,
)
from ._schema import migrate
from ._series import SeriesChange, compared, series_rows, stored_as

log = logging.getLogger(__name__)

DURATION_SAMPLE = 20  # a job's typical duration is the median of this many most recent finished runs
# A present snapshot's last sighting is its scope's coverage time, refreshed in the file at most this often: a
# quiet poll then writes nothing, and a snapshot found gone may show a last sighting up to this much early.
COVERAGE_REFRESH = 3600
BULK_ROWS = 20_000  # a snapshot write at least this big, and bigger than the table, sets its indexes aside
# A deferring record leaves a snapshot write at least this big for later; a smaller one is written at once: a
# transaction of its own would cost more (at 2,000 guests a quiet record took 15 ms at once, 23 ms deferred).
DEFERRED_ROWS = 10_000
READ_CHUNK = 10_000  # rows read from the file at a time where each is dealt with as it comes
WAL_LIMIT = 16 * 1024 * 1024  # the WAL is cut back to this after any write that left it larger
DURATION_REFRESH = 3600.0  # seconds between recomputations of typical durations (a slow-moving statistic)
FUTURE_SLACK = timedelta(days=1)  # rows dated later than this past "now" are broken facts: never in a view
# ... and deleted only this far ahead (a year 9999 an older build stored): a machine started with its clock days
# behind (a Pi without RTC, before NTP) deleted the last days of real history at its first prune.
PRUNE_FUTURE = timedelta(days=366)
_END_OF_TIME = 2**62  # `until=None`: an epoch no instant reaches
_MEMORY = ":memory:"
# SQLite result codes -> what a person needs to hear (sqlite3.Error.sqlite_errorname, Python 3.11+).
_TROUBLE = {
    "SQLITE_FULL": "the disk is full",
    "SQLITE_READONLY": "the database is read-only",
    "SQLITE_CORRUPT": "the database is corrupted",
    "SQLITE_NOTADB": "the file is not a database",
    "SQLITE_IOERR": "an I/O error",
    "SQLITE_CANTOPEN": "the file cannot be opened",
    "SQLITE_PERM": "permission denied",
    "SQLITE_BUSY": "another process holds the database locked",
    "SQLITE_LOCKED": "another process holds the database locked",
}


@dataclass(frozen=True, slots=True)
class RecordStats:
    """What one `History.record` call changed."""

    snapshots_added: int = 0  # new, or seen again after being marked gone
    snapshots_updated: int = 0  # fields changed (finished, size, verification, ...)
    snapshots_gone: int = 0
    runs_written: int = 0  # new runs plus runs that changed (running -> finished)


@dataclass(frozen=True, slots=True)
class Sighting:
    """When history first and last saw a snapshot, and when it noticed the snapshot had disappeared."""

    first_seen_at: datetime
    last_seen_at: datetime
    gone_at: datetime | None


# A present snapshot was last seen when its scope was last covered (see `_schema._migrate_2_gone`).
_LAST_SEEN = """CASE WHEN s.gone_at IS NOT NULL THEN s.last_seen_at ELSE MAX(s.last_seen_at, COALESCE(
    (SELECT c.last_covered_at FROM scopes c
     WHERE c.source = s.source AND c.location = s.location AND c.target_key = s.target_key), 0)) END"""

_MARK_GONE = f"UPDATE snapshots AS s SET gone_at = ?, last_seen_at = {_LAST_SEEN} WHERE source = ? AND snapshot_id IN"

# Upserts in three parts (`_batch.insert_rows`): the INSERT, one row's values, what a conflict does.
_UPSERT_SNAPSHOT = (
    f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS}, first_seen_at, last_seen_at, gone_at)",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
    """ON CONFLICT (source, snapshot_id) DO UPDATE SET
    target_key = excluded.target_key, location = excluded.location, taken_at = excluded.taken_at,
    finished = excluded.finished, size_bytes = excluded.size_bytes, verification = excluded.verification,
    verified_at = excluded.verified_at, last_seen_at = excluded.last_seen_at, gone_at = NULL
WHERE snapshots.gone_at IS NOT NULL OR snapshots.target_key IS NOT excluded.target_key
    OR snapshots.location IS NOT excluded.location OR snapshots.taken_at IS NOT excluded.taken_at
    OR snapshots.finished IS NOT excluded.finished OR snapshots.size_bytes IS NOT excluded.size_bytes
    OR snapshots.verification IS NOT excluded.verification
    OR snapshots.verified_at IS NOT excluded.verified_at""",
)

# A finished run never goes back to running: a stale task list must not undo what we already know.
_UPSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS})",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    """ON CONFLICT (source, run_id, target_key) DO UPDATE SET
    job_key = excluded.job_key, started_at = excluded.started_at, ended_at = excluded.ended_at,
    outcome = excluded.outcome, message = excluded.message, size_bytes = excluded.size_bytes
WHERE (runs.ended_at IS NULL OR excluded.ended_at IS NOT NULL) AND (
    runs.job_key IS NOT excluded.job_key OR runs.started_at IS NOT excluded.started_at
    OR runs.ended_at IS NOT excluded.ended_at OR runs.outcome IS NOT excluded.outcome
    OR runs.message IS NOT excluded.message OR runs.size_bytes IS NOT excluded.size_bytes)""",
)

_UPSERT_NAME = (
    "INSERT INTO target_names (source, target_key, name, named_at)",
    "(?, ?, ?, ?)",
    "ON CONFLICT DO UPDATE SET name = excluded.name, named_at = excluded.named_at",
)
_SELECT_NAMES = "SELECT source, target_key, name FROM target_names"

_UPSERT_SCOPE = (
    "INSERT INTO scopes (source, location, target_key, last_covered_at)",
    "(?, ?, ?, ?)",
    "ON CONFLICT DO UPDATE SET last_covered_at = MAX(last_covered_at, excluded.last_covered_at)",
)

# Job-level runs are preferred; a job told only per target lasts from its first start to its last end. Each
# query walks one job's index entries from the newest, so its cost follows the sample, not the years stored.
_JOB_KEYS = """
WITH RECURSIVE keys(job_key) AS (
    SELECT MIN(job_key) FROM runs
    UNION ALL
    SELECT (SELECT MIN(job_key) FROM runs WHERE job_key > keys.job_key) FROM keys WHERE keys.job_key IS NOT NULL
) SELECT job_key FROM keys WHERE job_key IS NOT NULL"""
_RECENT_JOB_LEVEL = """
SELECT started_at, ended_at FROM runs INDEXED BY runs_job_level
WHERE job_key = ? AND target_key = '' AND ended_at IS NOT NULL AND ended_at >= started_at
ORDER BY started_at DESC LIMIT ?"""
_RECENT_PER_TARGET = """
SELECT source, run_id, started_at, ended_at FROM runs INDEXED BY runs_by_job
WHERE job_key = ? AND target_key <> '' ORDER BY started_at DESC"""


def covers(
    observation: Observation, snapshots: Collection[Snapshot], series: Iterable[SnapshotSeries] = ()
) -> Callable[[str, str], bool]:
    """Which stored snapshots this observation speaks for, as `covers(location, target_key)`.

    A complete observation speaks for every location it lists a snapshot in. One with problems (an unreadable
    namespace, a failed page) speaks only for the targets it lists, at those locations: what it left out may
    be exactly what it could not read. An observation listing nothing speaks for nothing.
    """
    series = tuple(series)
    if observation.problems:
        pairs = {(s.location, s.target_key) for s in snapshots} | {(s.location, s.target_key) for s in series}
        return lambda location, target_key: (location, target_key) in pairs
    locations = {s.location for s in snapshots} | {s.location for s in series}
    return lambda location, _target_key: location in locations


class History:
    """The history database. Build it with `History.open`."""

    def __init__(self, conn: sqlite3.Connection, *, path: str, retention: timedelta) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._retention = retention
        # Re-entrant: `record` and `view` hold it across their SQL and their memory, the SQL helpers take it too.
        self._lock = threading.RLock()
        self._memory = _Memory()
        self._deferred: _Deferred | None = None  # snapshot rows a record left for `flush`
        self._write_trouble: str | None = None  # cleared by the next write that succeeds (space came back)
        self._integrity_trouble: str | None = None  # found by the check at start; stays until a restart

    @property
    def problem(self) -> str | None:
        """Why the history is not working right now, for the board; None when it is."""
        return self._integrity_trouble or self._write_trouble

    @classmethod
    def open(cls, path: str | Path, *, retention: timedelta) -> History:
        """Open (creating directories and file) and migrate the database at `path`; ":memory:" works too."""
        where = str(path)
        try:
            if where != _MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=10)
        except OSError as exc:
            raise HistoryError(f"cannot open the history database {where}: {folder_trouble(Path(path), exc)}") from None
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open the history database {where}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # The WAL grows to the largest transaction (a first poll of a big PBS); cut it back after checkpoints.
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
            migrate(conn, where)
        except sqlite3.Error as exc:
            conn.close()
            raise HistoryError(f"cannot use the history database {where}: {exc}{_what_to_do(where, exc)}") from None
        except BaseException:
            conn.close()
            raise
        history = cls(conn, path=where, retention=retention)
        history._check_integrity()
        return history

    def _check_integrity(self) -> None:
        """`PRAGMA quick_check` once at start: a damaged file would otherwise silently lose evidence."""
        try:
            rows = self._conn.execute("PRAGMA quick_check(5)").fetchall() if self._conn is not None else [("ok",)]
        except sqlite3.Error as exc:
            rows = [(str(exc),)]
        findings = [" ".join(str(row[0]).split()) for row in rows]
        if findings != ["ok"]:
            found = findings[0].removeprefix("*** in database main *** ")[:200]
            self._integrity_trouble = f"history database {self._path} is damaged ({found}); restore it or move it away"
            log.error("history database damaged", extra={"path": self._path, "finding": found})

    def close(self) -> None:
        """Write what a record left for later, checkpoint the WAL into the database and close: no -wal or -shm
        file is left behind."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._write_deferred()
                except HistoryError as exc:  # closing goes on: the next start reads the sources again
                    log.error("history write failed", extra={"error": str(exc)})
                with suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- writing ---

    def record(self, observation: Observation, *, defer: bool = False) -> RecordStats:
        """Store what one poll saw, in one transaction. Recording the same facts again rewrites no row of them.

        With `defer`, new and changed snapshots (when there are at least `DEFERRED_ROWS`) are written by `flush`
        (or whatever next needs the file), in a transaction of their own; a view before that includes them."""
        with self._lock:
            self._write_deferred()  # rows reach the file in the order they were seen
            return self._record(observation, defer)

    def flush(self) -> None:
        """Write the snapshot rows a deferred record left; nothing when none are left."""
        with self._lock:
            self._write_deferred()

    def _write_deferred(self) -> None:
        deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        sources = ", ".join(sorted({f"'{plan.source}'" for plan in deferred.plans}))
        try:
            with self._transaction(f"write the new snapshots of {sources}") as conn:
                for plan in deferred.plans:
                    _upsert_snapshots(conn, plan, deferred.seen_at)
        except BaseException:
            self._memory = _Memory()  # it holds rows the file lacks: start over from the file, as after a start
            raise

    def _record(self, observation: Observation, defer: bool) -> RecordStats:
        seen_at = epoch(observation.observed_at)
        memory = self._memory
        by_source: dict[str, dict[str, Snapshot]] = {}
        change: Change | None = None
        relisted = observation.snapshots is memory.recorded.get(observation.source)
        if not relisted:
            before = memory.listed.get(observation.source)
            if (
                before is not None
                and before.generation == memory.generations.get(observation.source, 0)
                and observation.source in memory.present
            ):
                change = before.followed_by(observation)
            if change is None:
                by_source = _by_source(observation.snapshots)
        listed = memory.recorded_runs.get(observation.source)
        # Of the jobs' last runs, whether the task list (the fuller account) names each: told from the last record
        # while the list is the same tuple, else from the list's keys (made for this record only: 100,000 runs).
        last_keys = {run_key(job.last_run): job.last_run for job in observation.jobs if job.last_run is not None}
        if listed is not None and listed[0] is observation.runs and last_keys.keys() <= listed[1].keys():
            runs: dict[RunKey, JobRun] = {}
            in_list = listed[1]
        else:
            runs = {run_key(run): run for run in observation.runs}
            in_list = {key: key in runs for key in last_keys}
        for key, last in last_keys.items():
            if not in_list[key]:
                runs.setdefault(key, last)
        new_runs = {key: run for key, run in runs.items() if memory.run_changes(key, run)}
        # A full comparison's list, made once: its scopes are what this record covers, and what the next works on.
        fresh = None
        if not relisted and change is None and observation.source in by_source:
            fresh = Listed.of(observation, by_source[observation.source])
        plans: list[_SnapshotPlan] = []
        with self._transaction(f"record the observation of '{observation.source}'") as conn:
            if change is not None:
                current = memory.present[observation.source]
                plan = _plan(observation.source, change.appeared, change.gone(current), current)
                _mark_gone(conn, plan, seen_at)
                plans.append(plan)
            series_plan = self._series_plan(conn, observation)
            if series_plan is not None:
                _mark_gone(conn, series_plan, seen_at)
                plans.append(series_plan)
            for source, snapshots in by_source.items():
                present = memory.present.get(source)
                whole = observation.snapshots if len(snapshots) == len(observation.snapshots) else snapshots
                if present is None:  # the source's first record since the start (a change follows a record)
                    plan, memory.present[source] = _first_plan(conn, source, snapshots, whole, observation)
                else:
                    plan = _plan(source, whole, _gone(snapshots, present, observation), present)
                _mark_gone(conn, plan, seen_at)
                plans.append(plan)
            deferring = defer and sum(plan.writes for plan in plans) >= DEFERRED_ROWS
            for plan in [] if deferring else plans:
                _upsert_snapshots(conn, plan, seen_at)
            counted = change.scopes if change is not None else fresh.scopes if fresh is not None else None
            scopes = memory.scopes_of(observation, counted)
            stale = [scope for scope in scopes if seen_at - memory.covered.get(scope, 0) >= COVERAGE_REFRESH]
            insert_rows(conn, *_UPSERT_SCOPE, ((*scope, seen_at) for scope in stale))
            runs_written = insert_rows(conn, *_UPSERT_RUN, map(run_row, new_runs.values()))
            renamed = self._renamed(conn, observation)
            insert_rows(conn, *_UPSERT_NAME, ((observation.source, key, name, seen_at) for key, name in renamed))
        memory.recorded[observation.source] = observation.snapshots
        memory.recorded_series[observation.source] = observation.series
        memory.recorded_runs[observation.source] = (observation.runs, in_list)
        memory.covered.update(dict.fromkeys(stale, seen_at))
        for plan in plans:
            memory.apply(plan, seen_at, by_source.get(plan.source))
        if not relisted:
            memory.list(observation, change.listed(memory.present[observation.source]) if change is not None else fresh)
            memory.share_present(observation.source)
        memory.note_runs(new_runs)
        memory.name(observation, renamed)
        if deferring:
            self._deferred = _Deferred([plan for plan in plans if plan.writes], seen_at)
        stats = RecordStats(
            sum(p.added_count for p in plans), sum(p.updated_count for p in plans), sum(len(p.gone) for p in plans),
            runs_written,
        )  # fmt: skip
        log.debug("observation recorded", extra={"source": observation.source, "stats": stats})
        return stats

    def _series_plan(self, conn: sqlite3.Connection, observation: Observation) -> _SnapshotPlan | None:
        """What the observation's series change (None: nothing, the very series recorded last, or none listed).

        A listing of no series speaks for nothing: what is present stays so."""
        source, given, memory = observation.source, observation.series, self._memory
        if not given or given is memory.recorded_series.get(source):
            return None
        by_prefix = {series.id_prefix: series for series in given if series.source == source}
        present = memory.series.get(source)
        if present is None:
            return _first_series_plan(conn, source, by_prefix, observation)
        change = SeriesChange()
        is_covered = covers(observation, (), by_prefix.values())
        after: dict[str, SnapshotSeries] = {}
        for prefix, old in present.items():
            if prefix not in by_prefix and not is_covered(old.location, old.target_key):
                after[prefix] = old  # a part this poll does not speak for: as last read
        for prefix, new in by_prefix.items():
            last = present.get(prefix)
            after[prefix] = new
            if last is new:
                continue
            if last is None:
                change.added.append((new, range(len(new))))
                continue
            added, updated, gone = compared(last, new)
            if added:
                change.added.append((new, added))
            if updated:
                change.updated.append((new, updated))
            change.gone += (last[index] for index in gone)
        for prefix, old in present.items():
            if prefix not in after:
                change.gone += old
        loose = memory.present.get(source)
        relisted, left = _relisted(loose, change, is_covered) if loose else ([], [])
        return _SnapshotPlan(
            source, [], [], [s.snapshot_id for s in change.gone], change, after,
            relisted=relisted, dropped=[*relisted, *left],
        )  # fmt: skip

    def _renamed(self, conn: sqlite3.Connection, observation: Observation) -> list[tuple[str, str]]:
        """(target key, name) of the observation's targets whose name is not the one stored for its source."""
        memory = self._memory
        if memory.named_targets.get(observation.source) is observation.targets:
            return []
        if memory.names is None:
            memory.names = {(source, key): name for source, key, name in conn.execute(_SELECT_NAMES)}
        names = memory.names
        return [
            (target.key, target.name)
            for target in observation.targets
            if target.name and names.get((observation.source, target.key)) != target.name
        ]

    def prune(self, *, now: datetime) -> int:
        """Forget what is older than the retention; return how many snapshots and runs were deleted.

        A snapshot is kept while it still exists at the source (not gone, seen within retention), however
        old: deleting it would only have the next poll record it again as new.
        """
        cutoff = epoch(now - self._retention)
        future = epoch(now + PRUNE_FUTURE)
        with self._lock:
            self._write_deferred()
            return self._prune(cutoff, future)

    def _prune(self, cutoff: int, future: int) -> int:
        with self._transaction("prune old rows") as conn:
            snapshots = conn.execute(
                f"""DELETE FROM snapshots AS s
                    WHERE (s.taken_at < :cutoff AND (s.gone_at IS NOT NULL OR {_LAST_SEEN} < :cutoff))
                    OR s.taken_at > :future""",
                {"cutoff": cutoff, "future": future},  # named: Python 3.14 refuses ?1 with a tuple
            ).rowcount
            runs = conn.execute("DELETE FROM runs WHERE started_at < ? OR started_at > ?", (cutoff, future)).rowcount
            conn.execute(  # names of targets nothing is kept of any more (a guest gone, a group renamed)
                """DELETE FROM target_names WHERE target_key NOT IN (SELECT target_key FROM snapshots)
                   AND target_key NOT IN (SELECT target_key FROM runs)"""
            )
            conn.execute(  # one pass over the snapshots (no index holds their scopes), not one per stale scope
                """DELETE FROM scopes WHERE last_covered_at < ? AND (source, location, target_key) NOT IN (
                   SELECT source, location, target_key FROM snapshots)""",
                (cutoff,),
            )
        self._memory = _Memory()  # rows left the file: rebuild what is remembered from it
        log.info("history pruned", extra={"snapshots": snapshots, "runs": runs})
        return snapshots + runs

    # --- reading ---

    def view(self, *, since: datetime, until: datetime | None = None) -> HistoryView:
        """Snapshots taken and runs started in [since, until), and the typical duration of every job seen.

        Rows dated in the future (a source's broken clock or record, stored before it was refused at the edge)
        are never part of a view: pass `until` as now, or a little after it. The first view reads the window
        from the file; later ones come from memory, kept current by `record`."""
        low, high = epoch(since), _END_OF_TIME if until is None else epoch(until)
        with self._lock:
            return self._view(low, high)

    def _view(self, low: int, high: int) -> HistoryView:
        memory = self._memory
        if memory.window is not None and low > memory.window.since + 86400:
            memory.window.forget_before(low)
        with self._reading("read the history view") as conn:
            if memory.window is None or low < memory.window.since:
                memory.window = _Window.read(conn, low, memory.present, memory.runs, set(memory.series))
            if memory.first_seen is _UNREAD:
                (stored,) = conn.execute("SELECT MIN(first_seen_at) FROM snapshots").fetchone()
                deferred = self._deferred
                memory.first_seen = stored if deferred is None else deferred.first_seen(conn, stored)
            if memory.durations is None or (memory.durations_dirty and memory.durations_age() > DURATION_REFRESH):
                memory.set_durations(_typical_durations(conn))
            if memory.names is None:
                memory.names = {(source, key): name for source, key, name in conn.execute(_SELECT_NAMES)}
        snapshots, runs = memory.window.between(low, high)
        first_seen = memory.first_seen
        return HistoryView(
            snapshots=snapshots,
            series=memory.all_series(),
            series_span=(low, high),
            runs=runs,
            typical_durations=dict(memory.durations or {}),
            recorded_since=instant(first_seen) if isinstance(first_seen, int) else None,
            target_names=memory.names_by_key(),
        )

    def sighting(self, source: str, snapshot_id: str) -> Sighting | None:
        """When a snapshot was first and last seen and when it was found gone; None if never seen."""
        with self._lock:
            self._write_deferred()
        with self._reading(f"read the sighting of '{snapshot_id}'") as conn:
            row = conn.execute(
                f"SELECT s.first_seen_at, {_LAST_SEEN}, s.gone_at FROM snapshots s "
                "WHERE s.source = ? AND s.snapshot_id = ?",
                (source, snapshot_id),
            ).fetchone()
        if row is None:
            return None
        return Sighting(instant(row[0]), instant(row[1]), instant_or_none(row[2]))

    # --- plumbing ---

    @contextmanager
    def _reading(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise HistoryError(f"cannot {doing}: the history database {self._path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                trouble = _TROUBLE.get(_base_code(exc))
                if trouble is not None:
                    self._note_trouble(exc, trouble)
                raise HistoryError(f"cannot {doing} in the history database {self._path}: {exc}") from exc
            except (OverflowError, ValueError) as exc:  # a value SQLite cannot hold: a bug upstream of here
                raise HistoryError(f"cannot {doing}: a value out of range ({exc})") from exc

    def _note_trouble(self, exc: sqlite3.Error, trouble: str) -> None:
        message = f"history database {self._path}: {trouble} ({exc}); new observations are not being kept"
        if _base_code(exc) in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            self._integrity_trouble = self._integrity_trouble or message
        else:
            self._write_trouble = message

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._reading(doing) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._write_trouble = None  # e.g. space came back: writing works again
            self._bound_wal(conn)

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        """Checkpoint and truncate a WAL that a large write (a first poll of a big PBS) grew past WAL_LIMIT.

        SQLite reuses a WAL from its start but leaves the file at its largest size until a later write resets
        it, which a quiet service may not make for hours; one stat per write bounds the disk it holds."""
        if self._path == _MEMORY:
            return
        try:
            grown = os.stat(self._path + "-wal").st_size > WAL_LIMIT
        except OSError:
            return
        if grown:
            with suppress(sqlite3.Error):  # a reader elsewhere holding the WAL: the next write tries again
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@dataclass(frozen=True, slots=True)
class _Deferred:
    """The new and changed snapshots of a record, written later (`History.flush`)."""

    plans: list[_SnapshotPlan]
    seen_at: int

    def first_seen(self, conn: sqlite3.Connection, stored: int | None) -> int | None:
        """The earliest first sighting once these rows are written, from the file's (`stored`). A row seen again
        after it was gone keeps its own; only one the file lacks is first seen now (a clock set back can make
        that the earliest)."""
        if stored is not None and stored <= self.seen_at:
            return stored
        for plan in self.plans:
            for snapshot in chain(plan.added, plan.series_added()):
                if (
                    stored is None
                    or not conn.execute(
                        "SELECT 1 FROM snapshots WHERE source = ? AND snapshot_id = ?",
                        (plan.source, snapshot.snapshot_id),
                    ).fetchone()
                ):
                    return self.seen_at
        return stored


@dataclass
class _SnapshotPlan:
    """What one record does to one source's snapshots; applied to memory only after the record's commit (which
    may leave its new rows for later, see `_Deferred`)."""

    source: str
    added: Sequence[Snapshot]  # a first record's: the observation's own tuple when it lists exactly these
    updated: list[Snapshot]
    gone: list[str]
    series: SeriesChange | None = None  # what the observation's series change
    series_after: dict[str, SnapshotSeries] | None = None  # the source's present series after the record
    kept: dict[str, Snapshot] | None = None  # rows of a first series record this poll does not speak for
    relisted: list[str] = field(default_factory=list)  # such rows, of an earlier record, listed in a series again
    dropped: list[str] = field(default_factory=list)  # those, and the ones gone

    @property
    def added_count(self) -> int:
        return len(self.added) + (self.series.added_count if self.series else 0)

    @property
    def updated_count(self) -> int:
        return len(self.updated) + (self.series.updated_count if self.series else 0)

    @property
    def writes(self) -> int:
        return self.added_count + self.updated_count

    def series_added(self) -> Iterator[Snapshot]:
        """The added positions of the series, as snapshots (made as they are asked for)."""
        for series, positions in self.series.added if self.series else ():
            yield from map(series.__getitem__, positions)


def _what_to_do(where: str, exc: sqlite3.Error) -> str:
    """A hint for a file SQLite refused as no database: a damaged history (it starts as every SQLite file does),
    or another file. Other errors (read-only, locked, no permission) say what they are already."""
    text = str(exc)
    if "disk is full" in text:
        try:
            size = os.stat(where).st_size
        except OSError:
            return ""
        return f"; free some space beside it: upgrading its schema may take about {2 * size / 1e6:,.0f} MB more"
    if "malformed" not in text and "not a database" not in text:
        return ""
    try:
        with open(where, "rb") as handle:
            damaged = handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        damaged = False
    if damaged:
        return "; the file is damaged (cut short?): restore it from a backup, or move it aside to start a new history"
    return "; is it a backup-glance history file?"


def _by_source(snapshots: tuple[Snapshot, ...]) -> dict[str, dict[str, Snapshot]]:
    """Snapshots by source and id (the last of an id listed twice). Most observations list one source's only: their
    dict is made in C, not a step of Python per snapshot (600,000 on the way to a first board)."""
    sources = set(map(_source, snapshots))
    if len(sources) == 1:
        return {sources.pop(): dict(zip(map(_snapshot_id, snapshots), snapshots, strict=True))}
    by_source: dict[str, dict[str, Snapshot]] = {}
    for snapshot in snapshots:
        by_source.setdefault(snapshot.source, {})[snapshot.snapshot_id] = snapshot
    return by_source


_source: Callable[[Snapshot], str] = attrgetter("source")
_snapshot_id: Callable[[Snapshot], str] = attrgetter("snapshot_id")


def _first_plan(
    conn: sqlite3.Connection,
    source: str,
    listed: dict[str, Snapshot],
    whole: tuple[Snapshot, ...] | dict[str, Snapshot],
    observation: Observation,
) -> tuple[_SnapshotPlan, dict[str, Snapshot]]:
    """A source's first record since the start, against the rows the file holds as present for it, compared as
    they are read, a chunk at a time. Made into snapshots first, a restart at 10,000 guests held 600,000 rows and
    600,000 snapshots beside the listing's own (860 MB at its peak), and rewrote every row whose snapshot knows
    more than a row says (encryption, protection). -> the plan, and what `present` starts as: the listing itself,
    plus any row this poll does not speak for (`{}` when the file held nothing: the plan's `apply` then shares it).
    `whole`: the listing as `_plan` takes it."""
    is_covered = covers(observation, listed.values())
    stored: set[str] = set()  # the listed ids the file holds
    updated: list[Snapshot] = []
    gone: list[str] = []
    kept: dict[str, Snapshot] = {}
    for row in _present_rows(conn, source):
        snapshot = listed.get(row[0])
        if snapshot is not None:
            stored.add(snapshot.snapshot_id)
            if not _stored_as(snapshot, row):
                updated.append(snapshot)
        elif is_covered(row[2], row[1]):
            gone.append(row[0])
        else:
            kept[row[0]] = snapshot_from_row((source, *row))
    if not stored and not kept:
        return _plan(source, whole, gone, {}), {}
    added = [s for s in listed.values() if s.snapshot_id not in stored] if len(stored) < len(listed) else []
    return _SnapshotPlan(source, added, updated, gone), {**kept, **listed} if kept else listed


def _present_rows(conn: sqlite3.Connection, source: str) -> Iterator[tuple[Any, ...]]:
    """(snapshot_id, then SNAPSHOT_FIELDS) of every row the file holds as present for `source`, read a chunk at a
    time. Without the source (one for all): one string object less to make for each of 600,000 rows."""
    rows = conn.execute(
        f"SELECT snapshot_id, {SNAPSHOT_FIELDS} FROM snapshots WHERE source = ? AND gone_at IS NULL", (source,)
    )
    while chunk := rows.fetchmany(READ_CHUNK):
        yield from chunk


def _stored_as(snapshot: Snapshot, row: tuple[Any, ...]) -> bool:
    """Whether `row` (snapshot_id, then SNAPSHOT_FIELDS) stores what `snapshot` says: field by field, the likeliest
    to differ first (one call instead of making the row and comparing, at each of 600,000 snapshots)."""
    verified_at = snapshot.verified_at
    return bool(
        row[5] == snapshot.size_bytes
        and row[6] == VERIFICATION_TEXT[snapshot.verification]
        and row[4] == snapshot.finished
        and row[7] == (None if verified_at is None else int(verified_at.timestamp()))
        and row[3] == int(snapshot.taken_at.timestamp())
        and row[1] == snapshot.target_key
        and row[2] == snapshot.location
    )


def _first_series_plan(
    conn: sqlite3.Connection, source: str, by_prefix: dict[str, SnapshotSeries], observation: Observation
) -> _SnapshotPlan:
    """A source's first record of series since the start, against the rows the file holds as present for it (as
    `_first_plan`, read a chunk at a time). A row is a series' snapshot when its id is the series' prefix plus its
    backup time; a row this poll does not speak for stays present, as a snapshot of its own."""
    is_covered = covers(observation, (), by_prefix.values())
    seen = {prefix: bytearray(len(series)) for prefix, series in by_prefix.items()}
    updated: dict[str, list[int]] = {}
    gone: list[str] = []
    kept: dict[str, Snapshot] = {}
    for row in _present_rows(conn, source):
        snapshot_id = row[0]
        prefix = id_prefix_of(snapshot_id)
        series = by_prefix.get(prefix)
        index = series.position(row[3]) if series is not None and type(row[3]) is int else None
        if series is not None and index is not None and series.snapshot_id(index) == snapshot_id:
            seen[prefix][index] = 1
            if not stored_as(series, index, row):
                updated.setdefault(prefix, []).append(index)
        elif is_covered(row[2], row[1]):
            gone.append(snapshot_id)
        else:
            kept[snapshot_id] = snapshot_from_row((source, *row))
    change = SeriesChange()
    for prefix, series in by_prefix.items():
        marks = seen[prefix]
        if not any(marks):
            change.added.append((series, range(len(series))))
        elif not all(marks):
            change.added.append((series, [index for index, mark in enumerate(marks) if not mark]))
        if prefix in updated:
            change.updated.append((series, updated[prefix]))
    return _SnapshotPlan(source, [], [], gone, change, dict(by_prefix), kept)


def _relisted(
    loose: dict[str, Snapshot], change: SeriesChange, is_covered: Callable[[str, str], bool]
) -> tuple[list[str], list[str]]:
    """Rows a first series record kept present as snapshots of their own (this poll did not speak for them),
    met again: one now in a series is that series' (added only where a stored field changed), one now spoken
    for and not listed is gone. -> (the ids of the first, of the second)."""
    relisted: dict[str, tuple[SnapshotSeries, int]] = {}
    for series, positions in change.added:
        for index in positions:
            snapshot_id = series.snapshot_id(index)
            if snapshot_id in loose:
                relisted[snapshot_id] = (series, index)
    if relisted:
        added: list[tuple[SnapshotSeries, Sequence[int]]] = []
        updated: list[tuple[SnapshotSeries, Sequence[int]]] = []
        for series, positions in change.added:
            fresh = [i for i in positions if series.snapshot_id(i) not in relisted]
            if fresh:
                added.append((series, fresh))
        for snapshot_id, (series, index) in relisted.items():
            if not _stored_as(loose[snapshot_id], _row_of(series[index])):
                updated.append((series, [index]))
        change.added, change.updated = added, [*change.updated, *updated]
    gone = [s for i, s in loose.items() if i not in relisted and is_covered(s.location, s.target_key)]
    change.gone += gone
    return list(relisted), [s.snapshot_id for s in gone]


def _row_of(snapshot: Snapshot) -> tuple[Any, ...]:
    """`snapshot_id, SNAPSHOT_FIELDS` as a row stores them."""
    return snapshot_row(snapshot, 0)[1:9]


def _gone(snapshots: dict[str, Snapshot], present: dict[str, Snapshot], observation: Observation) -> list[str]:
    is_covered = covers(observation, snapshots.values())
    return [
        snapshot_id
        for snapshot_id, stored in present.items()
        if snapshot_id not in snapshots and is_covered(stored.location, stored.target_key)
    ]


def _plan(
    source: str,
    listed: tuple[Snapshot, ...] | dict[str, Snapshot] | list[Snapshot],
    gone: list[str],
    present: dict[str, Snapshot],
) -> _SnapshotPlan:
    """`listed`: each id once (the observation's tuple when its ids are, or a dict's snapshots, or a change's)."""
    if not present:  # a first record: everything is new (600,000 at 10,000 guests: no copy of the tuple)
        return _SnapshotPlan(source, list(listed.values()) if isinstance(listed, dict) else listed, [], gone)
    added: list[Snapshot] = []
    updated: list[Snapshot] = []
    for snapshot in listed.values() if isinstance(listed, dict) else listed:
        before = present.get(snapshot.snapshot_id)
        if before is snapshot or before == snapshot:
            continue  # steady state: most snapshots are unchanged (often the very same object)
        (added if before is None else updated).append(snapshot)
    return _SnapshotPlan(source, added, updated, gone)


def _mark_gone(conn: sqlite3.Connection, plan: _SnapshotPlan, seen_at: int) -> None:
    # Before the scopes are written: the last sighting of a vanished snapshot is its scope's coverage *before*
    # this poll.
    update_where_in(conn, _MARK_GONE, (seen_at, plan.source), plan.gone)


def _upsert_snapshots(conn: sqlite3.Connection, plan: _SnapshotPlan, seen_at: int) -> None:
    # Made as written, a statement's worth at a time: a big first poll's 600,000 rows in a list would hold 90 MB
    # for the length of the write.
    rows = chain(
        (snapshot_row(s, seen_at) for s in chain(plan.added, plan.updated)),
        series_rows(chain(plan.series.added, plan.series.updated), seen_at) if plan.series else (),
    )
    with _indexes_set_aside(conn, plan.writes):
        insert_rows(conn, *_UPSERT_SNAPSHOT, rows)


@contextmanager
def _indexes_set_aside(conn: sqlite3.Connection, writing: int) -> Iterator[None]:
    """For a write of more rows than the table holds (a big source's first poll), the snapshots' secondary indexes
    are dropped and built again after it, inside its transaction: sorting once is cheaper than keeping them in
    order row by row (600,000 snapshots: 4.5 s -> 2.8 s). The unique index stays: the write looks rows up through
    it. The indexes are made again from the very statements the file has for them."""
    if writing < BULK_ROWS or writing < (conn.execute("SELECT MAX(rowid) FROM snapshots").fetchone()[0] or 0):
        yield
        return
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'snapshots' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    yield  # on an error the transaction is rolled back, and the dropped indexes with it
    for _, sql in indexes:
        conn.execute(sql)


_UNREAD = object()  # `first_seen` not read from the file yet


T = TypeVar("T")


_snapshot_order: Callable[[Snapshot], tuple[datetime, str, str]] = attrgetter("taken_at", "source", "snapshot_id")


def _run_order(run: JobRun) -> tuple[datetime, str, str, str]:
    return (run.started_at, run.source, run.run_id, run.target_key or "")


class _Timeline(Generic[T]):
    """Records in time order with their epoch seconds beside them: a view is two bisections and a slice.

    Sorted once; after that a record put in moves into place (a quiet poll changes a few hundred of 50,000)."""

    def __init__(
        self, records: Iterable[T], order: Callable[[T], tuple[Any, ...]], when: Callable[[T], datetime]
    ) -> None:
        self._order, self._when = order, when
        self.records = sorted(records, key=order)
        # Epoch seconds as `epoch` gives them; every instant here is aware (checked when it was recorded).
        # In an array: eight bytes an instant, not a list slot and an int object (600,000 snapshots: 24 -> 5 MB).
        self.times = array("q", [int(at.timestamp()) for at in map(when, self.records)])

    def put(self, before: T | None, record: T) -> None:
        if before is not None:
            at = bisect.bisect_left(self.records, self._order(before), key=self._order)
            while self.records[at] is not before:
                at += 1
            del self.records[at], self.times[at]
        at = bisect.bisect_left(self.records, self._order(record), key=self._order)
        self.records.insert(at, record)
        self.times.insert(at, epoch(self._when(record)))

    def between(self, low: int, high: int) -> tuple[T, ...]:
        return tuple(self.records[bisect.bisect_left(self.times, low) : bisect.bisect_left(self.times, high)])


@dataclass
class _Window:
    """The view window in memory: snapshots taken and runs started since `since` (epoch seconds)."""

    since: int
    snapshots: dict[str, dict[str, Snapshot]]  # source -> snapshot id -> snapshot (no key tuple per snapshot)
    runs: dict[RunKey, JobRun]
    _timelines: tuple[_Timeline[Snapshot], _Timeline[JobRun]] | None = None

    @classmethod
    def read(
        cls,
        conn: sqlite3.Connection,
        since: int,
        present: dict[str, dict[str, Snapshot]],
        written: dict[RunKey, JobRun],
        series_sources: Collection[str] = (),
    ) -> _Window:
        """Read the window from the file, except the snapshots memory holds as present: their rows were written
        (or, deferred, are yet to be) from those very objects, so they are taken as they are (no second copy of a
        big first poll). A run this process wrote is taken from memory too, when its row still says what that
        object says."""
        known = list(set(present) | set(series_sources))
        snapshots = conn.execute(
            f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE taken_at >= ? "
            f"AND (gone_at IS NOT NULL OR source NOT IN ({', '.join('?' * len(known))}))",
            (since, *known),
        )
        runs = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE started_at >= ?", (since,))
        window: dict[str, dict[str, Snapshot]] = {}
        for row in snapshots:
            window.setdefault(row[0], {})[row[1]] = snapshot_from_row(row)
        start = instant(since)  # for instants after 1970, `taken_at >= start` is `epoch(taken_at) >= since`
        for source, by_id in present.items():
            recent = {key: s for key, s in by_id.items() if s.taken_at >= start}
            if source in window:
                window[source].update(recent)
            else:
                window[source] = recent
        # Keyed by the key objects memory holds where it holds the run: no second copy of a run's id and key (a
        # first view at 10,000 guests meets 100,000 runs this process wrote: 32 MB of keys).
        canonical = {key: key for key in written}
        window_runs = {}
        for row in runs:
            key = (row[0], row[1], row[2])
            window_runs[canonical.get(key, key)] = _run_of(row, written)
        return cls(since, window, window_runs)

    def put_snapshot(self, snapshot: Snapshot) -> None:
        if epoch(snapshot.taken_at) >= self.since:
            by_id = self.snapshots.setdefault(snapshot.source, {})
            before = by_id.get(snapshot.snapshot_id)
            by_id[snapshot.snapshot_id] = snapshot
            if self._timelines is not None:
                self._timelines[0].put(before, snapshot)

    def drop(self, source: str, snapshot_ids: Iterable[str]) -> None:
        """Let go of snapshots a source lists again (present once more, in its series)."""
        by_id = self.snapshots.get(source)
        if not by_id:
            return
        for snapshot_id in snapshot_ids:
            before = by_id.pop(snapshot_id, None)
            if before is not None and self._timelines is not None:
                self._timelines = None

    def put_run(self, key: RunKey, run: JobRun) -> None:
        if epoch(run.started_at) >= self.since:
            before = self.runs.get(key)
            self.runs[key] = run
            if self._timelines is not None:
                self._timelines[1].put(before, run)

    def forget_before(self, since: int) -> None:
        """Move the window's start forward (the view's start moves with the clock)."""
        self.snapshots = {
            source: {key: s for key, s in by_id.items() if epoch(s.taken_at) >= since}
            for source, by_id in self.snapshots.items()
        }
        self.runs = {k: r for k, r in self.runs.items() if epoch(r.started_at) >= since}
        self.since = since
        self._timelines = None

    def between(self, low: int, high: int) -> tuple[tuple[Snapshot, ...], tuple[JobRun, ...]]:
        if self._timelines is None:
            self._timelines = (
                _Timeline(
                    chain.from_iterable(by_id.values() for by_id in self.snapshots.values()),
                    _snapshot_order,
                    attrgetter("taken_at"),
                ),
                _Timeline(self.runs.values(), _run_order, attrgetter("started_at")),
            )
        snapshots, runs = self._timelines
        return snapshots.between(low, high), runs.between(low, high)


def _run_of(row: tuple[Any, ...], written: dict[RunKey, JobRun]) -> JobRun:
    """The run a row stores: the object memory wrote it from, unless the row says otherwise (a finished run's
    row outlives a stale listing of it as running) or the object reads differently (target_key "" is None)."""
    mine = written.get((row[0], row[1], row[2]))
    if mine is None or mine.target_key == "" or mine.job_key != row[3] or OUTCOME_TEXT[mine.outcome] != row[6]:
        return run_from_row(row)
    ended = mine.ended_at
    if (  # `run_row(mine) == row`, field by field (a first view meets a hundred thousand of these)
        int(mine.started_at.timestamp()) == row[4]
        and (row[5] is None if ended is None else row[5] == int(ended.timestamp()))
        and mine.message == row[7]
        and mine.size_bytes == row[8]
    ):
        return mine
    return run_from_row(row)


class _Memory:
    """What the store remembers of the file between calls (see the module docstring)."""

    def __init__(self) -> None:
        self.present: dict[str, dict[str, Snapshot]] = {}  # per source: the snapshots the file holds as present
        self.recorded: dict[str, tuple[Snapshot, ...]] = {}  # per observed source: the tuple recorded last
        # per source: the series the file holds as present, by id prefix (the very objects last recorded)
        self.series: dict[str, dict[str, SnapshotSeries]] = {}
        self.recorded_series: dict[str, tuple[SnapshotSeries, ...]] = {}  # per observed source: as `recorded`
        self._all_series: tuple[SnapshotSeries, ...] | None = None
        self.listed: dict[str, Listed] = {}  # per observed source: that tuple, when the next can be diffed with it
        self.generations: dict[str, int] = {}  # per snapshot source: how many records changed `present`
        # per source: the runs recorded last, and whether they name each of its jobs' last runs
        self.recorded_runs: dict[str, tuple[tuple[JobRun, ...], dict[RunKey, bool]]] = {}
        # per source: ((snapshots, series) as listed, their scopes)
        self.scopes: dict[str, tuple[tuple[object, object], set[tuple[str, str, str]]]] = {}
        self.covered: dict[tuple[str, str, str], int] = {}  # scope -> coverage time last written
        self.runs: dict[RunKey, JobRun] = {}  # the version of each run last written
        self.window: _Window | None = None
        self.first_seen: object = _UNREAD
        self.durations: dict[str, timedelta] | None = None
        self.durations_dirty = False
        self._durations_at = 0.0
        self.names: dict[tuple[str, str], str] | None = None  # (source, target key) -> name, as stored
        self.named_targets: dict[str, tuple[Target, ...]] = {}  # per source: the targets whose names are stored
        self._by_key: dict[str, str] | None = None

    def name(self, observation: Observation, renamed: list[tuple[str, str]]) -> None:
        """Note the names just written for the observation's source."""
        self.named_targets[observation.source] = observation.targets
        if renamed and self.names is not None:
            self.names.update(((observation.source, key), name) for key, name in renamed)
            self._by_key = None

    def names_by_key(self) -> dict[str, str]:
        """Target key -> its name (of two sources naming one target differently: the first source by name)."""
        if self._by_key is None:
            by_key: dict[str, str] = {}
            for (_source, key), name in sorted((self.names or {}).items(), reverse=True):
                by_key[key] = name
            self._by_key = by_key
        return self._by_key

    def run_changes(self, key: RunKey, run: JobRun) -> bool:
        """Whether writing `run` would change its row (a finished run never goes back to running)."""
        before = self.runs.get(key)
        if before is None:
            return True
        if before.ended_at is not None and run.ended_at is None:
            return False
        return before != run

    def note_runs(self, runs: dict[RunKey, JobRun]) -> None:
        """Keep the runs just written, under the very key objects the record made (shared with its task list's
        keys and the window's: one tuple a run, not three)."""
        for key, run in runs.items():
            self.runs[key] = run
            if self.window is not None:
                self.window.put_run(key, run)
            self.durations_dirty = self.durations_dirty or run.ended_at is not None

    def scopes_of(self, observation: Observation, counted: Counter[Scope] | None) -> set[Scope]:
        """The scopes `observation` lists snapshots in (`counted`: of its list, when one was made of it)."""
        known = self.scopes.get(observation.source)
        listed = (observation.snapshots, observation.series)
        if known is not None and known[0][0] is listed[0] and known[0][1] is listed[1]:
            return known[1]
        if counted is not None:
            scopes = set(counted)
        else:
            scopes = {(s.source, s.location, s.target_key) for s in observation.snapshots}
        scopes |= {(s.source, s.location, s.target_key) for s in observation.series}
        self.scopes[observation.source] = (listed, scopes)
        return scopes

    def list(self, observation: Observation, listed: Listed | None) -> None:
        """Keep what the next record of this source needs to work on the difference (after `apply`): `listed`,
        or nothing when the next must compare fully."""
        if listed is None:
            self.listed.pop(observation.source, None)
        else:
            listed.generation = self.generations.get(observation.source, 0)
            self.listed[observation.source] = listed

    def share_present(self, source: str) -> None:
        """After `apply` and `list`: when the file holds as present exactly what the source listed, one dict
        serves as both (600,000 entries at 10,000 guests: 15 MB less). Every listed id is present after a
        record, so equal sizes mean equal ids, and the snapshots under them are equal if not the same objects.
        `apply` changes `present` in place: the `Listed` it is shared with has made its `Change` by then, and
        the `Listed` of that change is this very dict again (`Change.listed`)."""
        listed, present = self.listed.get(source), self.present.get(source)
        if listed is not None and present is not None and len(present) == len(listed.by_id):
            self.present[source] = listed.by_id

    def all_series(self) -> tuple[SnapshotSeries, ...]:
        """Every source's present series (one tuple while they do not change)."""
        if self._all_series is None:
            self._all_series = tuple(chain.from_iterable(by_prefix.values() for by_prefix in self.series.values()))
        return self._all_series

    def apply_series(self, plan: _SnapshotPlan, seen_at: int) -> None:
        assert plan.series is not None and plan.series_after is not None
        first = plan.source not in self.series
        self.series[plan.source] = plan.series_after
        self._all_series = None
        self.generations[plan.source] = self.generations.get(plan.source, 0) + 1
        if plan.kept:
            self.present.setdefault(plan.source, {}).update(plan.kept)
        for snapshot_id in plan.dropped:
            self.present[plan.source].pop(snapshot_id, None)
        if first:
            # The window read the source's present rows from the file as snapshots of their own: they are its
            # series now, and the next view reads the rest again.
            self.window = None
        elif self.window is not None:
            for snapshot in plan.series.gone:
                self.window.put_snapshot(snapshot)
            self.window.drop(plan.source, chain((s.snapshot_id for s in plan.series_added()), plan.relisted))
        if plan.series.added and self.first_seen is None:
            self.first_seen = seen_at

    def apply(self, plan: _SnapshotPlan, seen_at: int, listed: dict[str, Snapshot] | None = None) -> None:
        """`listed`: the record's snapshots of `plan.source` by id, when it made such a dict."""
        if plan.series is not None:
            self.apply_series(plan, seen_at)
            return
        present = self.present.setdefault(plan.source, {})
        self.generations[plan.source] = self.generations.get(plan.source, 0) + 1
        if not present and listed is not None and len(plan.added) == len(listed) and self.window is None:
            # A first record (nothing updated or gone with nothing present): that dict is what `present` would
            # become, 600,000 entries at 10,000 guests built again on the way to the first board.
            self.present[plan.source] = listed
        else:
            for snapshot_id in plan.gone:
                present.pop(snapshot_id, None)
            for snapshot in chain(plan.added, plan.updated):
                present[snapshot.snapshot_id] = snapshot
                if self.window is not None:
                    self.window.put_snapshot(snapshot)
        if plan.added and self.first_seen is None:  # the file was empty when last read
            self.first_seen = seen_at

    def set_durations(self, durations: dict[str, timedelta]) -> None:
        self.durations = durations
        self.durations_dirty = False
        self._durations_at = time.monotonic()

    def durations_age(self) -> float:
        return time.monotonic() - self._durations_at


def _base_code(exc: sqlite3.Error) -> str:
    """ "SQLITE_IOERR_WRITE" -> "SQLITE_IOERR": the primary result code."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    parts = name.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 else name


def _typical_durations(conn: sqlite3.Connection) -> dict[str, timedelta]:
    durations = {}
    for (job_key,) in conn.execute(_JOB_KEYS).fetchall():
        seconds = [end - start for start, end in conn.execute(_RECENT_JOB_LEVEL, (job_key, DURATION_SAMPLE))]
        if not seconds:
            seconds = _recent_per_target_spans(conn, job_key)
        if seconds:
            durations[job_key] = timedelta(seconds=statistics.median(seconds))
    return durations


def _recent_per_target_spans(conn: sqlite3.Connection, job_key: str) -> list[int]:
    """How long the job's latest finished runs took, each from its first part's start to its last part's end.

    Parts arrive newest first. A job's runs overlap little (one per node at a time), so when the walk meets a
    run beyond twice the sample, the runs met well before it are complete and the newest finished ones, the
    sample, are among them; only the oldest few met may lack early parts, and they are used last."""
    first_start: dict[tuple[str, str], int] = {}
    last_end: dict[tuple[str, str], int | None] = {}  # None while any of the run's parts is still running
    for source, run_id, started_at, ended_at in conn.execute(_RECENT_PER_TARGET, (job_key,)):
        run = (source, run_id)
        if run in first_start:
            end = last_end[run]
            last_end[run] = None if end is None or ended_at is None else max(end, ended_at)
        elif len(first_start) == 2 * DURATION_SAMPLE:
            break
        else:
            last_end[run] = ended_at
        first_start[run] = started_at  # newest first: this part started no later than the ones met before
    finished = sorted(
        ((start, end) for run, start in first_start.items() if (end := last_end[run]) is not None and end >= start),
        reverse=True,
    )
    return [end - start for start, end in finished[:DURATION_SAMPLE]]
