"""The `History` store: one SQLite connection, WAL, one writer (the collector), readers take turns.

WAL with `synchronous=NORMAL` means a killed process loses at most the transaction in flight, never the file.
The connection sits behind a lock (`check_same_thread=False`), so the collector's thread and a request thread
may both call in; every call is short.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from ..errors import HistoryError
from ..model import HistoryView, JobRun, Observation, Snapshot
from ._rows import (
    RUN_COLUMNS,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_FIELDS,
    RunKey,
    SnapshotFields,
    epoch,
    instant,
    instant_or_none,
    run_from_row,
    run_key,
    run_row,
    snapshot_fields,
    snapshot_from_row,
)
from ._schema import migrate

log = logging.getLogger(__name__)

DURATION_SAMPLE = 20  # a job's typical duration is the median of this many most recent finished runs
_END_OF_TIME = 2**62  # `until=None`: an epoch no instant reaches
_MEMORY = ":memory:"


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

_UPSERT_SNAPSHOT = f"""
INSERT INTO snapshots ({SNAPSHOT_COLUMNS}, first_seen_at, last_seen_at, gone_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (source, snapshot_id) DO UPDATE SET
    target_key = excluded.target_key, location = excluded.location, taken_at = excluded.taken_at,
    finished = excluded.finished, size_bytes = excluded.size_bytes, verification = excluded.verification,
    verified_at = excluded.verified_at, last_seen_at = excluded.last_seen_at, gone_at = NULL
WHERE snapshots.gone_at IS NOT NULL OR snapshots.target_key IS NOT excluded.target_key
    OR snapshots.location IS NOT excluded.location OR snapshots.taken_at IS NOT excluded.taken_at
    OR snapshots.finished IS NOT excluded.finished OR snapshots.size_bytes IS NOT excluded.size_bytes
    OR snapshots.verification IS NOT excluded.verification
    OR snapshots.verified_at IS NOT excluded.verified_at
"""

# A finished run never goes back to running: a stale task list must not undo what we already know.
_UPSERT_RUN = f"""
INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, run_id, target_key) DO UPDATE SET
    job_key = excluded.job_key, started_at = excluded.started_at, ended_at = excluded.ended_at,
    outcome = excluded.outcome, message = excluded.message, size_bytes = excluded.size_bytes
WHERE (runs.ended_at IS NULL OR excluded.ended_at IS NOT NULL) AND (
    runs.job_key IS NOT excluded.job_key OR runs.started_at IS NOT excluded.started_at
    OR runs.ended_at IS NOT excluded.ended_at OR runs.outcome IS NOT excluded.outcome
    OR runs.message IS NOT excluded.message OR runs.size_bytes IS NOT excluded.size_bytes)
"""

_UPSERT_SCOPE = """
INSERT INTO scopes (source, location, target_key, last_covered_at) VALUES (?, ?, ?, ?)
ON CONFLICT DO UPDATE SET last_covered_at = MAX(last_covered_at, excluded.last_covered_at)
"""

# Job-level runs are preferred; a job told only per target lasts from its first start to its last end.
_RECENT_JOB_LEVEL = """
SELECT job_key, started_at, ended_at FROM (
    SELECT job_key, started_at, ended_at,
           ROW_NUMBER() OVER (PARTITION BY job_key ORDER BY started_at DESC) AS recency
    FROM runs WHERE target_key = '' AND ended_at IS NOT NULL AND ended_at >= started_at
) WHERE recency <= ?"""
_RECENT_PER_TARGET = """
SELECT job_key, started_at, ended_at FROM (
    SELECT job_key, started_at, ended_at,
           ROW_NUMBER() OVER (PARTITION BY job_key ORDER BY started_at DESC) AS recency
    FROM (SELECT job_key, MIN(started_at) AS started_at, MAX(ended_at) AS ended_at FROM runs
          WHERE target_key <> '' GROUP BY job_key, source, run_id HAVING COUNT(ended_at) = COUNT(*))
    WHERE ended_at >= started_at
) WHERE recency <= ?"""


def covers(observation: Observation, snapshots: Collection[Snapshot]) -> Callable[[str, str], bool]:
    """Which stored snapshots this observation speaks for, as `covers(location, target_key)`.

    A complete observation speaks for every location it lists a snapshot in. One with problems (an unreadable
    namespace, a failed page) speaks only for the targets it lists, at those locations: what it left out may
    be exactly what it could not read. An observation listing nothing speaks for nothing.
    """
    if observation.problems:
        pairs = {(s.location, s.target_key) for s in snapshots}
        return lambda location, target_key: (location, target_key) in pairs
    locations = {s.location for s in snapshots}
    return lambda location, _target_key: location in locations


class History:
    """The history database. Build it with `History.open`."""

    def __init__(self, conn: sqlite3.Connection, *, path: str, retention: timedelta) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._retention = retention
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, *, retention: timedelta) -> History:
        """Open (creating directories and file) and migrate the database at `path`; ":memory:" works too."""
        where = str(path)
        try:
            if where != _MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history database {where}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, where)
        except sqlite3.Error as exc:
            conn.close()
            raise HistoryError(
                f"cannot use the history database {where}: {exc}; is it a backup-glance history file?"
            ) from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path=where, retention=retention)

    def close(self) -> None:
        """Checkpoint the WAL into the database and close: no -wal or -shm file is left behind."""
        with self._lock:
            if self._conn is not None:
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

    def record(self, observation: Observation) -> RecordStats:
        """Store what one poll saw, in one transaction. Recording the same facts again rewrites no row of them."""
        seen_at = epoch(observation.observed_at)
        by_source: dict[str, dict[str, Snapshot]] = {}
        for snapshot in observation.snapshots:
            by_source.setdefault(snapshot.source, {})[snapshot.snapshot_id] = snapshot
        runs: dict[RunKey, JobRun] = {run_key(run): run for run in observation.runs}
        for job in observation.jobs:
            if job.last_run is not None:  # the task list is the fuller account when both carry a run
                runs.setdefault(run_key(job.last_run), job.last_run)
        added = updated = gone = 0
        with self._transaction(f"record the observation of '{observation.source}'") as conn:
            for source, snapshots in by_source.items():
                a, u, g = _record_snapshots(conn, source, snapshots, observation, seen_at)
                added, updated, gone = added + a, updated + u, gone + g
            runs_written = max(conn.executemany(_UPSERT_RUN, map(run_row, runs.values())).rowcount, 0)
        stats = RecordStats(added, updated, gone, runs_written)
        log.debug("observation recorded", extra={"source": observation.source, "stats": stats})
        return stats

    def prune(self, *, now: datetime) -> int:
        """Forget what is older than the retention; return how many snapshots and runs were deleted.

        A snapshot is kept while it still exists at the source (not gone, seen within retention), however
        old: deleting it would only have the next poll record it again as new.
        """
        cutoff = epoch(now - self._retention)
        with self._transaction("prune old rows") as conn:
            snapshots = conn.execute(
                f"""DELETE FROM snapshots AS s
                    WHERE s.taken_at < ?1 AND (s.gone_at IS NOT NULL OR {_LAST_SEEN} < ?1)""",
                (cutoff,),
            ).rowcount
            runs = conn.execute("DELETE FROM runs WHERE started_at < ?", (cutoff,)).rowcount
            conn.execute(
                """DELETE FROM scopes WHERE last_covered_at < ? AND NOT EXISTS (SELECT 1 FROM snapshots s
                   WHERE s.source = scopes.source AND s.location = scopes.location
                     AND s.target_key = scopes.target_key)""",
                (cutoff,),
            )
        log.info("history pruned", extra={"snapshots": snapshots, "runs": runs})
        return snapshots + runs

    # --- reading ---

    def view(self, *, since: datetime, until: datetime | None = None) -> HistoryView:
        """Snapshots taken and runs started in [since, until), and the typical duration of every job seen."""
        window = (epoch(since), _END_OF_TIME if until is None else epoch(until))
        with self._reading("read the history view") as conn:
            snapshots = conn.execute(
                f"""SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE taken_at >= ? AND taken_at < ?
                    ORDER BY taken_at, source, snapshot_id""",
                window,
            ).fetchall()
            runs = conn.execute(
                f"""SELECT {RUN_COLUMNS} FROM runs WHERE started_at >= ? AND started_at < ?
                    ORDER BY started_at, source, run_id, target_key""",
                window,
            ).fetchall()
            durations = _typical_durations(conn)
            (first_seen,) = conn.execute("SELECT MIN(first_seen_at) FROM snapshots").fetchone()
        return HistoryView(
            snapshots=tuple(map(snapshot_from_row, snapshots)),
            runs=tuple(map(run_from_row, runs)),
            typical_durations=durations,
            recorded_since=instant(first_seen) if first_seen is not None else None,
        )

    def sighting(self, source: str, snapshot_id: str) -> Sighting | None:
        """When a snapshot was first and last seen and when it was found gone; None if never seen."""
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
                raise HistoryError(f"cannot {doing} in the history database {self._path}: {exc}") from exc

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


def _record_snapshots(
    conn: sqlite3.Connection,
    source: str,
    snapshots: dict[str, Snapshot],
    observation: Observation,
    seen_at: int,
) -> tuple[int, int, int]:
    """Upsert one source's snapshots, mark missing ones gone, refresh coverage; (added, updated, gone)."""
    stored: dict[str, SnapshotFields] = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT snapshot_id, {SNAPSHOT_FIELDS} FROM snapshots WHERE source = ? AND gone_at IS NULL",
            (source,),
        )
    }
    is_covered = covers(observation, snapshots.values())
    vanished = [
        (seen_at, source, snapshot_id)
        for snapshot_id, (target_key, location, *_) in stored.items()
        if snapshot_id not in snapshots and is_covered(location, target_key)
    ]
    # Mark gone first: the last sighting of a vanished snapshot is its scope's coverage *before* this poll.
    conn.executemany(
        f"""UPDATE snapshots AS s SET gone_at = ?, last_seen_at = {_LAST_SEEN}
            WHERE source = ? AND snapshot_id = ?""",
        vanished,
    )
    added = updated = 0
    changed: list[tuple[object, ...]] = []
    for snapshot_id, snapshot in snapshots.items():
        fields = snapshot_fields(snapshot)
        before = stored.get(snapshot_id)
        if before == fields:
            continue  # steady state: most snapshots are unchanged; skip them before SQLite has to look
        if before is None:
            added += 1
        else:
            updated += 1
        changed.append((source, snapshot_id, *fields, seen_at, seen_at))
    conn.executemany(_UPSERT_SNAPSHOT, changed)
    scopes = {(s.location, s.target_key) for s in snapshots.values()}
    conn.executemany(_UPSERT_SCOPE, ((source, location, target, seen_at) for location, target in scopes))
    return added, updated, len(vanished)


def _typical_durations(conn: sqlite3.Connection) -> dict[str, timedelta]:
    samples: dict[str, list[int]] = {}
    for job_key, started_at, ended_at in conn.execute(_RECENT_JOB_LEVEL, (DURATION_SAMPLE,)):
        samples.setdefault(job_key, []).append(ended_at - started_at)
    job_level = set(samples)
    for job_key, started_at, ended_at in conn.execute(_RECENT_PER_TARGET, (DURATION_SAMPLE,)):
        if job_key not in job_level:
            samples.setdefault(job_key, []).append(ended_at - started_at)
    return {key: timedelta(seconds=statistics.median(seconds)) for key, seconds in sorted(samples.items())}
