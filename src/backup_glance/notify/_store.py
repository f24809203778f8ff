"""What each target was told, and what it has not accepted yet, in the history database (tables: history/_schema).

    store = NotifyStore.open(history_path)
    store.commit(target, decision, outbox=[(message, not_before)], now=now)   # state + messages, one transaction
    store.pending(target)                                                   # the outbox, oldest first
    store.delivered(ids)                                                    # the target accepted them
    store.dropped(ids)                                                      # or refused them for good

A change and the message announcing it are written together, in one transaction, the moment the change is
found; the message leaves the outbox only when its target accepts it. So a restart — graceful or `kill -9` —
never announces a state twice (the state says it was announced) and never forgets one (the message waits in
the outbox, and reminders keep `reminded_at`). Its own SQLite connection to the history file (WAL: the
collector's writes and these take short turns under SQLite's busy timeout); calls may come from any thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import HistoryError
from ..history._schema import migrate
from ._messages import DROPPED, Message, dropped_count, dropped_note
from ._policy import Announced, Decision, valid_text

# Per target: a target down for a month must not grow the file without bound. Beyond it the oldest messages are
# folded into one note that says how many were let go (`dropped_note`), so whoever reads the target learns it.
MAX_PENDING = 200
MAX_DETAIL = 2000  # of an announced reason, kept for reminders: a source's 1 MB error need not be stored per target


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    created_at: datetime
    not_before: datetime
    message: Message
    attempts: int


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class NotifyStore:
    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._where = where
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> NotifyStore:
        """A connection to the history database at `path` (migrated if needed); ":memory:" for tests."""
        where = str(path)
        try:
            if where != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, where)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the notification state in {where}: {exc}") from None
        return cls(conn, where)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    @contextmanager
    def _using(self, doing: str, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise HistoryError(f"cannot {doing}: the notification state in {self._where} is closed")
            conn = self._conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                if write:
                    conn.execute("COMMIT")
            except BaseException as exc:
                # Whatever went wrong (also a value sqlite3 cannot bind, a ValueError), the transaction ends here:
                # one left open would hold the history database's write lock, and the collector's writes with it.
                if write and conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | ValueError):
                    raise HistoryError(f"cannot {doing} in {self._where}: {exc}") from exc
                raise

    # --- targets and their state ---

    def prepare(self, targets: Iterable[str], now: datetime) -> dict[str, datetime]:
        """Make a row for every configured target (a new one's last digest is `now`: no digest for the past),
        forget targets no longer configured, and return each target's last digest time."""
        keys = list(targets)
        with self._using("prepare the notification targets", write=True) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO notify_targets (target, created_at, digest_at) VALUES (?, ?, ?)",
                [(key, _epoch(now), _epoch(now)) for key in keys],
            )
            marks = ",".join("?" * len(keys)) or "''"
            for table in ("notify_targets", "notify_state", "notify_outbox"):
                conn.execute(f"DELETE FROM {table} WHERE target NOT IN ({marks})", keys)
            rows = conn.execute("SELECT target, digest_at FROM notify_targets").fetchall()
        return {target: _instant(at) for target, at in rows}

    def load(self) -> dict[str, dict[str, Announced]]:
        """Every target's announced state."""
        state: dict[str, dict[str, Announced]] = {}
        with self._using("read the notification state") as conn:
            for target, item, status, detail, announced_at, reminded_at in conn.execute(
                "SELECT target, item, status, detail, announced_at, reminded_at FROM notify_state"
            ):
                state.setdefault(target, {})[item] = Announced(
                    status, detail, _instant(announced_at), _instant(reminded_at)
                )
        return state

    def commit(
        self,
        target: str,
        decision: Decision,
        *,
        now: datetime,
        outbox: Sequence[tuple[Message, datetime]] = (),
        digest_at: datetime | None = None,
    ) -> int:
        """The target's new state and the message that announces it, together or not at all. Returns how many
        messages a full outbox let go to make room (folded into a note that counts them)."""
        dropped = 0
        with self._using("record what was announced", write=True) as conn:
            conn.executemany(
                """INSERT INTO notify_state (target, item, status, detail, announced_at, reminded_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (target, item) DO UPDATE SET status = excluded.status, detail = excluded.detail,
                   announced_at = excluded.announced_at, reminded_at = excluded.reminded_at""",
                [
                    (
                        target,
                        valid_text(item),
                        a.status,
                        valid_text(a.detail[:MAX_DETAIL]),
                        _epoch(a.announced_at),
                        _epoch(a.reminded_at),
                    )
                    for item, a in decision.upserts.items()
                ],
            )
            conn.executemany(
                "DELETE FROM notify_state WHERE target = ? AND item = ?",
                [(target, valid_text(item)) for item in decision.deletes],
            )
            if digest_at is not None:
                conn.execute("UPDATE notify_targets SET digest_at = ? WHERE target = ?", (_epoch(digest_at), target))
            if outbox:
                conn.executemany(
                    """INSERT INTO notify_outbox (target, created_at, not_before, level, kind, title, body)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    [
                        (
                            target,
                            _epoch(now),
                            _epoch(not_before),
                            m.level,
                            m.kind,
                            valid_text(m.title),
                            valid_text(m.body),
                        )
                        for m, not_before in outbox
                    ],
                )
                dropped = _fold_overflow(conn, target)
        return dropped

    # --- the outbox ---

    def pending(self, target: str) -> list[Pending]:
        with self._using("read the notification outbox") as conn:
            rows = conn.execute(
                """SELECT id, created_at, not_before, level, kind, title, body, attempts FROM notify_outbox
                   WHERE target = ? ORDER BY id""",
                (target,),
            ).fetchall()
        return [
            Pending(row[0], _instant(row[1]), _instant(row[2]), Message(row[5], row[6], row[3], row[4]), row[7])
            for row in rows
        ]

    def delivered(self, ids: Iterable[int]) -> None:
        """The target accepted these: they leave the outbox."""
        self._remove(ids, "remove delivered messages")

    def dropped(self, ids: Iterable[int]) -> None:
        """The target refuses these for good (their content, not the moment): they leave the outbox too."""
        self._remove(ids, "remove refused messages")

    def _remove(self, ids: Iterable[int], doing: str) -> None:
        with self._using(doing, write=True) as conn:
            conn.executemany("DELETE FROM notify_outbox WHERE id = ?", [(i,) for i in ids])

    def attempted(self, ids: Iterable[int]) -> None:
        with self._using("count a delivery attempt", write=True) as conn:
            conn.executemany("UPDATE notify_outbox SET attempts = attempts + 1 WHERE id = ?", [(i,) for i in ids])


def _fold_overflow(conn: sqlite3.Connection, target: str) -> int:
    """Keep the target's outbox at MAX_PENDING rows: the oldest ones, and a note already among them, become one
    note in the place of the oldest (so it goes out first, where they would have). Returns how many messages it
    let go this time."""
    rows = conn.execute(
        "SELECT id, level, kind, title FROM notify_outbox WHERE target = ? ORDER BY id", (target,)
    ).fetchall()
    excess = len(rows) - MAX_PENDING
    if excess <= 0:
        return 0
    folded = rows[: excess + 1]  # the note takes one of the places
    stands_for = [dropped_count(Message(title, "", level, kind)) for _id, level, kind, title in folded]
    note = dropped_note(sum(stands_for), MAX_PENDING)
    conn.execute(
        "UPDATE notify_outbox SET level = ?, kind = ?, title = ?, body = ? WHERE id = ?",
        (note.level, note.kind, note.title, note.body, folded[0][0]),
    )
    conn.executemany("DELETE FROM notify_outbox WHERE id = ?", [(row[0],) for row in folded[1:]])
    return sum(1 for _id, _level, kind, _title in folded if kind != DROPPED)


__all__ = ["MAX_PENDING", "NotifyStore", "Pending"]
