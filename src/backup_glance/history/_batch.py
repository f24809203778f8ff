"""Many rows in few statements.

Python's sqlite3 lets go of the GIL around every step of a statement, and `executemany` steps once per row. While
another thread keeps the GIL busy (a big poll decoding on the event loop, a judging), each row then waits to get it
back, up to the switch interval (5 ms): 80,000 runs took 3.5 s to write beside a 10,000-guest poll instead of
0.25 s, and 224 s beside a thread that never let go. One statement of several hundred rows steps once for them all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain, islice

# Values bound in one statement. SQLite allows 32,766, but parsing that many takes memory out of proportion: a
# statement of 3,640 runs held 80 MB for a moment, one of 900 runs 3 MB; and 90 statements for 80,000 runs are
# still few (0.6 s beside a thread that never let go).
VALUES_PER_STATEMENT = 8_192


def _per_statement(conn: sqlite3.Connection, width: int) -> int:
    return max(1, min(VALUES_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)) // width)


def insert_rows(conn: sqlite3.Connection, head: str, row: str, tail: str, rows: Iterable[Sequence[object]]) -> int:
    """`head VALUES row, row, ... tail` for `rows`, each filling the `?`s of `row`, in as few statements as
    SQLite's limit on bound values allows; -> how many rows were inserted or updated."""
    width = row.count("?")
    per = _per_statement(conn, width)
    full = f"{head} VALUES {', '.join([row] * per)} {tail}"
    changed = 0
    pending = iter(rows)
    while chunk := list(islice(pending, per)):
        sql = full if len(chunk) == per else f"{head} VALUES {', '.join([row] * len(chunk))} {tail}"
        changed += conn.execute(sql, list(chain.from_iterable(chunk))).rowcount
    return changed


def update_where_in(conn: sqlite3.Connection, statement: str, fixed: Sequence[object], keys: Iterable[object]) -> None:
    """`statement`, which ends in `IN`, for all of `keys` in as few statements as the limit allows: `fixed` values
    bind the `?`s before the list."""
    per = _per_statement(conn, 1) - len(fixed)
    pending = iter(keys)
    while chunk := list(islice(pending, per)):
        conn.execute(f"{statement} ({', '.join('?' * len(chunk))})", [*fixed, *chunk])


__all__ = ["insert_rows", "update_where_in"]
