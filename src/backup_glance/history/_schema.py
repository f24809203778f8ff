"""The history schema and its migrations. `PRAGMA user_version` holds the version a file is at."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import suppress

from ..errors import HistoryError

log = logging.getLogger(__name__)


def _migrate_1_facts(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE snapshots (
            source TEXT NOT NULL, snapshot_id TEXT NOT NULL, target_key TEXT NOT NULL, location TEXT NOT NULL,
            taken_at INTEGER NOT NULL, finished INTEGER NOT NULL, size_bytes INTEGER,
            verification TEXT NOT NULL, verified_at INTEGER,
            first_seen_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL,
            PRIMARY KEY (source, snapshot_id)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX snapshots_by_time ON snapshots (taken_at)")
    conn.execute("CREATE INDEX snapshots_by_target ON snapshots (target_key, taken_at)")
    # target_key '' is a job-level run: NULL would not do, NULLs never collide in a primary key.
    conn.execute(
        """CREATE TABLE runs (
            source TEXT NOT NULL, run_id TEXT NOT NULL, target_key TEXT NOT NULL, job_key TEXT NOT NULL,
            started_at INTEGER NOT NULL, ended_at INTEGER, outcome TEXT NOT NULL, message TEXT NOT NULL,
            size_bytes INTEGER,
            PRIMARY KEY (source, run_id, target_key)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX runs_by_time ON runs (started_at)")
    conn.execute("CREATE INDEX runs_by_job ON runs (job_key, started_at)")


def _migrate_2_gone(conn: sqlite3.Connection) -> None:
    # Remember disappearances. A present snapshot's last sighting is its scope's last coverage (`scopes`), so
    # a steady-state poll rewrites one row per target instead of one per snapshot.
    conn.execute("ALTER TABLE snapshots ADD COLUMN gone_at INTEGER")
    conn.execute(
        """CREATE TABLE scopes (
            source TEXT NOT NULL, location TEXT NOT NULL, target_key TEXT NOT NULL,
            last_covered_at INTEGER NOT NULL,
            PRIMARY KEY (source, location, target_key)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """INSERT INTO scopes (source, location, target_key, last_covered_at)
           SELECT source, location, target_key, MAX(last_seen_at) FROM snapshots
           GROUP BY source, location, target_key"""
    )
    conn.execute(
        """CREATE INDEX snapshots_present ON snapshots (source, location, target_key)
           WHERE gone_at IS NULL"""
    )


def _migrate_3_notify(conn: sqlite3.Connection) -> None:
    # What each notification target was told (backup_glance.notify): per item ("service:ID", "source:NAME") the
    # status announced and when; per target the last digest; and the outbox of messages not yet accepted.
    conn.execute(
        """CREATE TABLE notify_targets (
            target TEXT PRIMARY KEY, created_at INTEGER NOT NULL, digest_at INTEGER NOT NULL
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE notify_state (
            target TEXT NOT NULL, item TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL,
            announced_at INTEGER NOT NULL, reminded_at INTEGER NOT NULL,
            PRIMARY KEY (target, item)
        ) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE notify_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, created_at INTEGER NOT NULL,
            not_before INTEGER NOT NULL, level TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
            body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute("CREATE INDEX notify_outbox_by_target ON notify_outbox (target, id)")


def _migrate_4_lookups(conn: sqlite3.Connection) -> None:
    # The earliest sighting and a job's latest job-level runs, found without scanning the tables: what a view
    # costs follows its window, not the years stored.
    conn.execute("CREATE INDEX snapshots_by_first_seen ON snapshots (first_seen_at)")
    conn.execute("CREATE INDEX runs_job_level ON runs (job_key, started_at) WHERE target_key = ''")


def _migrate_5_rowid_snapshots(conn: sqlite3.Connection) -> None:
    # A WITHOUT ROWID table repeats its long primary key (source, snapshot_id) in every index: four of them made
    # a big first poll's insert four times the cost of the table alone. With a rowid they carry eight bytes.
    # Two indexes go: `prune` reads the snapshots' scopes in one pass, and the present ones of a source are
    # found once per start through the unique index.
    conn.execute(
        """CREATE TABLE snapshots_with_rowid (
            source TEXT NOT NULL, snapshot_id TEXT NOT NULL, target_key TEXT NOT NULL, location TEXT NOT NULL,
            taken_at INTEGER NOT NULL, finished INTEGER NOT NULL, size_bytes INTEGER,
            verification TEXT NOT NULL, verified_at INTEGER,
            first_seen_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, gone_at INTEGER,
            UNIQUE (source, snapshot_id)
        )"""
    )
    columns = (
        "source, snapshot_id, target_key, location, taken_at, finished, size_bytes, verification, verified_at, "
        "first_seen_at, last_seen_at, gone_at"
    )
    conn.execute(f"INSERT INTO snapshots_with_rowid ({columns}) SELECT {columns} FROM snapshots ORDER BY first_seen_at")
    conn.execute("DROP TABLE snapshots")
    conn.execute("ALTER TABLE snapshots_with_rowid RENAME TO snapshots")
    conn.execute("CREATE INDEX snapshots_by_time ON snapshots (taken_at)")
    conn.execute("CREATE INDEX snapshots_by_first_seen ON snapshots (first_seen_at)")


def _migrate_6_target_names(conn: sqlite3.Connection) -> None:
    # The name each target last had: a service discovered from a source that is down at a start keeps the name
    # (and so the id, its alerts and its metrics) it had while the source answered.
    conn.execute(
        """CREATE TABLE target_names (
            source TEXT NOT NULL, target_key TEXT NOT NULL, name TEXT NOT NULL, named_at INTEGER NOT NULL,
            PRIMARY KEY (source, target_key)
        ) WITHOUT ROWID"""
    )


# Append only: a released migration never changes; new ones go at the end. Index + 1 = the version it makes.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_1_facts,
    _migrate_2_gone,
    _migrate_3_notify,
    _migrate_4_lookups,
    _migrate_5_rowid_snapshots,
    _migrate_6_target_names,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring the database at `where` to `SCHEMA_VERSION`, one transaction per step."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"the history database {where} has schema version {version}, but this backup-glance only knows "
            f"up to version {SCHEMA_VERSION}; upgrade backup-glance or point history.path at another file"
        )
    if version == 0:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if tables:
            raise HistoryError(
                f"{where} is an SQLite database but not a backup-glance history (it has the tables "
                f"{', '.join(sorted(tables))}); point history.path at another file"
            )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            # On a full disk SQLite may have rolled the step back itself: a second ROLLBACK would raise "no
            # transaction is active" in place of the reason. Either way the WAL it grew is given back.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            raise
        conn.execute("COMMIT")
        if version > 0:  # a new file is said once, below, not once per step it was made in
            log.info("history schema migrated", extra={"path": where, "version": number})
    if version == 0:
        log.info("history file created", extra={"path": where, "version": SCHEMA_VERSION})
    if 0 < version < SCHEMA_VERSION:  # an upgrade of a file in use, not a new one
        _give_back_free_pages(conn, where)


def _give_back_free_pages(conn: sqlite3.Connection, where: str) -> None:
    """A migration that rebuilt a table leaves the old one's pages free inside the file, which never shrinks by
    itself: after an upgrade that freed more than a quarter of it, the file is rewritten once (VACUUM)."""
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    if free * 4 > pages:
        try:
            conn.execute("VACUUM")
        except sqlite3.Error as exc:  # e.g. no room for the copy: the file works as it is, only larger
            log.warning("history database not compacted after the upgrade", extra={"path": where, "error": str(exc)})
            return
        log.info("history database compacted after the upgrade", extra={"path": where, "pages_freed": free})
