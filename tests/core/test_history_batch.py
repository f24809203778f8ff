"""History writes many rows in few statements: beside a thread that keeps the GIL busy, a row-by-row write waited for
the GIL at every row (sqlite3 lets go of it at each step) and a big record took minutes instead of a second."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_history import NOW, RETENTION, a_run, a_snapshot, an_observation, gone_at

from backup_glance.history import History
from backup_glance.history._batch import insert_rows, update_where_in

UPSERT = ("INSERT INTO t (k, v)", "(?, ?)", "ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE v IS NOT excluded.v")


@pytest.fixture
def statements() -> list[str]:
    return []


@pytest.fixture
def conn(statements: list[str]) -> Iterator[sqlite3.Connection]:
    opened = sqlite3.connect(":memory:", isolation_level=None)
    opened.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    opened.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # 5 rows of 2 values a statement
    opened.set_trace_callback(statements.append)
    yield opened
    opened.close()


def test_rows_beyond_one_statement_are_all_written_and_counted(conn: sqlite3.Connection, statements: list[str]) -> None:
    assert insert_rows(conn, *UPSERT, ((k, f"v{k}") for k in range(12))) == 12
    assert len(statements) == 3  # 5 + 5 + 2
    # Upserts: unchanged rows are not counted, changed ones are, new ones are added.
    assert insert_rows(conn, *UPSERT, [(k, "v5" if k == 5 else "new") for k in range(5, 14)]) == 8
    assert conn.execute("SELECT COUNT(*), SUM(v = 'new') FROM t").fetchone() == (14, 8)
    assert insert_rows(conn, *UPSERT, []) == 0


def test_an_update_names_its_keys_in_as_few_statements_as_the_limit_allows(
    conn: sqlite3.Connection, statements: list[str]
) -> None:
    insert_rows(conn, *UPSERT, ((k, "kept") for k in range(20)))
    statements.clear()
    update_where_in(conn, "UPDATE t SET v = ? WHERE k % ? = 0 AND k IN", ("gone", 1), range(0, 20, 2))
    assert len(statements) == 2  # 8 keys + 2 fixed values, then 2 keys
    assert [k for (k,) in conn.execute("SELECT k FROM t WHERE v = 'gone' ORDER BY k")] == list(range(0, 20, 2))


def test_a_big_record_is_not_held_up_by_a_thread_keeping_the_gil_busy(tmp_path: Path) -> None:
    snapshots = [a_snapshot(target=f"guest:{i}", taken_at=NOW - timedelta(hours=1, seconds=i)) for i in range(20_000)]
    runs = [a_run(run_id=f"UPID:{i}", target=f"guest:{i}") for i in range(20_000)]
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:  # what a big poll's decoding does to the event loop's thread, without its pauses
        until = time.monotonic() + 120
        while spinning.is_set() and time.monotonic() < until:
            sum(range(1000))

    with History.open(tmp_path / "history.sqlite3", retention=RETENTION) as history:
        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            began = time.monotonic()
            history.record(an_observation(snapshots=snapshots, runs=runs), defer=False)
            # Only what is gone is marked: one statement for 5,000 of them, not 5,000.
            history.record(an_observation(at=NOW + timedelta(minutes=5), snapshots=snapshots[5_000:], runs=runs))
            took = time.monotonic() - began
        finally:
            spinning.clear()
            spinner.join()
        # Row by row, the first record alone took about a minute here (80,000 rows: 224 s).
        assert took < 15, f"two records took {took:.1f} s beside a busy thread"
        assert gone_at(history, snapshots[0].snapshot_id) is not None
        assert gone_at(history, snapshots[5_000].snapshot_id) is None
        view = history.view(since=NOW - timedelta(days=1), until=NOW + timedelta(hours=1))
        assert len(view.snapshots) == 20_000 and len(view.runs) == 20_000
