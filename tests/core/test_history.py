"""History: real SQLite files in tmp_path, fixed instants, one concern per class."""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from backup_glance.errors import HistoryError
from backup_glance.history import History
from backup_glance.history import _store as history_store
from backup_glance.history._schema import MIGRATIONS, SCHEMA_VERSION, _give_back_free_pages, migrate
from backup_glance.history._store import _what_to_do
from backup_glance.model import Job, JobKind, JobRun, Observation, RunOutcome, Snapshot, Target, Verification
from backup_glance.runtime import claim_history

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
RETENTION = timedelta(days=90)
JOB = "pbs1/backup/daily"


def a_snapshot(
    *,
    target: str = "guest:101",
    taken_at: datetime = NOW - timedelta(hours=3),
    location: str = "main",
    source: str = "pbs1",
    size: int | None = 1_000,
    finished: bool = True,
    verification: Verification = Verification.NONE,
) -> Snapshot:
    return Snapshot(
        target_key=target,
        source=source,
        snapshot_id=f"{location}/{target}/{taken_at.isoformat()}",
        taken_at=taken_at,
        finished=finished,
        size_bytes=size,
        verification=verification,
        location=location,
    )


def a_run(
    *,
    run_id: str = "UPID:1",
    job: str = JOB,
    started_at: datetime = NOW - timedelta(hours=4),
    took: timedelta | None = timedelta(minutes=10),  # None: still running
    outcome: RunOutcome = RunOutcome.OK,
    target: str | None = None,
) -> JobRun:
    return JobRun(
        job_key=job,
        source="pbs1",
        run_id=run_id,
        started_at=started_at,
        ended_at=None if took is None else started_at + took,
        outcome=RunOutcome.RUNNING if took is None else outcome,
        target_key=target,
    )


def evolve_run(run: JobRun, *, run_id: str, target: str) -> JobRun:
    return msgspec.structs.replace(run, run_id=run_id, target_key=target)


def an_observation(
    *,
    at: datetime = NOW,
    snapshots: Sequence[Snapshot] = (),
    runs: Sequence[JobRun] = (),
    jobs: Sequence[Job] = (),
    problems: Sequence[str] = (),
) -> Observation:
    return Observation(
        source="pbs1",
        kind="pbs",
        observed_at=at,
        timezone="UTC",
        snapshots=tuple(snapshots),
        runs=tuple(runs),
        jobs=tuple(jobs),
        problems=tuple(problems),
    )


def iso(instants: Sequence[datetime | None]) -> list[str | None]:
    return [None if at is None else at.isoformat() for at in instants]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


@pytest.fixture
def history(db_path: Path) -> Iterator[History]:
    with History.open(db_path, retention=RETENTION) as opened:
        yield opened


def gone_at(history: History, snapshot_id: str, *, source: str = "pbs1") -> str | None:
    """When history found the snapshot gone (ISO), or None while the source still has it."""
    sighting = history.sighting(source, snapshot_id)
    assert sighting is not None, f"history never saw {snapshot_id}"
    return None if sighting.gone_at is None else sighting.gone_at.isoformat()


def pragma(path: Path, statement: str) -> object:
    """Run one PRAGMA on the file behind History's back and return its first value."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        row = conn.execute(f"PRAGMA {statement}").fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


def everything(history: History) -> tuple[Snapshot, ...]:
    return history.view(since=NOW - timedelta(days=3650)).snapshots


class TestRecordAndView:
    def test_it_returns_what_it_recorded(self, history: History) -> None:
        snapshot = a_snapshot(verification=Verification.OK)
        run = a_run()
        history.record(an_observation(snapshots=[snapshot], runs=[run]))

        view = history.view(since=NOW - timedelta(days=1))

        assert view.snapshots == (snapshot,)
        assert view.runs == (run,)

    def test_it_keeps_only_what_falls_in_the_half_open_window(self, history: History) -> None:
        days = [NOW - timedelta(days=n) for n in (3, 2, 1)]
        history.record(an_observation(snapshots=[a_snapshot(taken_at=at) for at in days]))

        view = history.view(since=days[0], until=days[2])

        assert iso([s.taken_at for s in view.snapshots]) == iso(days[:2])

    def test_it_reads_back_aware_utc_instants_for_any_input_zone(self, history: History, db_path: Path) -> None:
        vienna = NOW.astimezone(ZoneInfo("Europe/Vienna"))
        history.record(an_observation(snapshots=[a_snapshot(taken_at=vienna)]))
        history.close()

        with History.open(db_path, retention=RETENTION) as reopened:
            (snapshot,) = everything(reopened)

        assert snapshot.taken_at.isoformat() == "2025-03-14T12:00:00+00:00"
        assert snapshot.taken_at.tzinfo is UTC

    @pytest.mark.parametrize("field", ["taken_at", "verified_at"])
    def test_it_refuses_a_naive_instant_and_writes_nothing(self, history: History, field: str) -> None:
        naive = msgspec.structs.replace(a_snapshot(), **{field: NOW.replace(tzinfo=None)})

        with pytest.raises(HistoryError, match=r"naive datetime 2025-03-14T12:00:00 given to history"):
            history.record(an_observation(snapshots=[a_snapshot(target="guest:102"), naive]))

        assert everything(history) == ()

    def test_it_records_a_jobs_last_run(self, history: History) -> None:
        run = a_run(run_id="UPID:last")
        job = Job(key=JOB, source="pbs1", kind=JobKind.BACKUP, job_id="daily", name="daily", last_run=run)
        history.record(an_observation(jobs=[job]))

        assert history.view(since=NOW - timedelta(days=1)).runs == (run,)

    def test_it_rejects_naive_instants(self, history: History) -> None:
        with pytest.raises(ValueError, match="naive datetime 2025-03-14T12:00:00"):
            history.record(an_observation(at=NOW.replace(tzinfo=None)))

    def test_it_creates_missing_directories_and_uses_wal(self, db_path: Path) -> None:
        with History.open(db_path, retention=RETENTION):
            pass
        assert pragma(db_path, "journal_mode") == "wal"

    def test_it_remembers_each_targets_last_name_across_a_restart(self, history: History, db_path: Path) -> None:
        vault = Target("guest:101", "pbs1", "vault", "guest")
        history.record(replace(an_observation(snapshots=[a_snapshot()]), targets=(vault,)))
        history.record(replace(an_observation(at=LATER), targets=(replace(vault, name="vault-2"),)))
        assert history.view(since=NOW - timedelta(days=1)).target_names == {"guest:101": "vault-2"}
        history.close()

        with History.open(db_path, retention=RETENTION) as reopened:  # its source not polled yet
            assert reopened.view(since=NOW - timedelta(days=1)).target_names == {"guest:101": "vault-2"}
            reopened.record(an_observation(at=LATER))  # a target nothing is kept of is forgotten at a prune
            reopened.prune(now=LATER + RETENTION * 3)
            assert reopened.view(since=NOW - timedelta(days=1)).target_names == {}

    def test_it_works_in_memory(self) -> None:
        with History.open(":memory:", retention=RETENTION) as history:
            history.record(an_observation(snapshots=[a_snapshot()]))
            assert len(everything(history)) == 1


class TestIdempotence:
    def test_recording_the_same_observation_twice_changes_nothing(self, history: History) -> None:
        observation = an_observation(snapshots=[a_snapshot(), a_snapshot(target="guest:102")], runs=[a_run()])
        first = history.record(observation)
        view = history.view(since=NOW - timedelta(days=1))

        again = history.record(observation)

        assert (first.snapshots_added, first.runs_written) == (2, 1)
        assert (again.snapshots_added, again.snapshots_updated, again.snapshots_gone, again.runs_written) == (
            0,
            0,
            0,
            0,
        )
        assert history.view(since=NOW - timedelta(days=1)) == view

    def test_it_updates_a_snapshot_whose_fields_changed(self, history: History) -> None:
        history.record(an_observation(snapshots=[a_snapshot()]))

        failed = a_snapshot(verification=Verification.FAILED)

        stats = history.record(an_observation(at=LATER, snapshots=[failed]))

        assert stats.snapshots_updated == 1
        assert [s.verification for s in everything(history)] == [Verification.FAILED]


class TestRuns:
    def test_a_running_run_is_updated_in_place_when_it_finishes(self, history: History) -> None:
        history.record(an_observation(runs=[a_run(took=None)]))

        finished = a_run(took=timedelta(minutes=7), outcome=RunOutcome.FAILED)

        history.record(an_observation(at=LATER, runs=[finished]))

        (run,) = history.view(since=NOW - timedelta(days=1)).runs
        assert run.outcome is RunOutcome.FAILED
        assert iso([run.ended_at]) == iso([NOW - timedelta(hours=4) + timedelta(minutes=7)])

    def test_a_finished_run_never_goes_back_to_running(self, history: History) -> None:
        history.record(an_observation(runs=[a_run()]))

        stats = history.record(an_observation(at=LATER, runs=[a_run(took=None)]))

        assert stats.runs_written == 0
        assert [r.outcome for r in history.view(since=NOW - timedelta(days=1)).runs] == [RunOutcome.OK]

    def test_job_level_and_per_target_parts_of_one_run_are_kept_apart(self, history: History) -> None:
        parts = [a_run(), a_run(target="guest:101"), a_run(target="guest:102")]
        history.record(an_observation(runs=parts))

        assert [r.target_key for r in history.view(since=NOW - timedelta(days=1)).runs] == [
            None,
            "guest:101",
            "guest:102",
        ]


class TestEvidence:
    def test_a_snapshot_pruned_at_the_source_stays_in_the_view_marked_gone(self, history: History) -> None:
        old, new = a_snapshot(taken_at=NOW - timedelta(days=2)), a_snapshot(taken_at=NOW - timedelta(days=1))
        history.record(an_observation(snapshots=[old, new]))

        stats = history.record(an_observation(at=LATER, snapshots=[new]))

        assert stats.snapshots_gone == 1
        assert everything(history) == (old, new)
        assert gone_at(history, old.snapshot_id) == LATER.isoformat()
        assert gone_at(history, new.snapshot_id) is None

    def test_a_snapshot_pruned_after_a_restart_is_marked_gone_once(self, db_path: Path) -> None:
        """What the file held at start is what later polls compare with, not only what this run added."""
        first, second = a_snapshot(taken_at=NOW - timedelta(days=2)), a_snapshot(taken_at=NOW - timedelta(days=1))
        with History.open(db_path, retention=RETENTION) as before_restart:
            before_restart.record(an_observation(snapshots=[first, second]))
        third = a_snapshot(taken_at=NOW)
        with History.open(db_path, retention=RETENTION) as history:
            added = history.record(an_observation(at=LATER, snapshots=[first, second, third]))
            pruned = history.record(an_observation(at=LATER + timedelta(hours=1), snapshots=[first, third]))

            assert (added.snapshots_added, pruned.snapshots_added, pruned.snapshots_gone) == (1, 0, 1)
            assert gone_at(history, second.snapshot_id) == (LATER + timedelta(hours=1)).isoformat()
            assert gone_at(history, first.snapshot_id) is None

    def test_a_restart_compares_the_listing_with_the_stored_rows_field_by_stored_field(self, db_path: Path) -> None:
        """The first record after a start reads the file's present rows and compares what a row stores: a
        snapshot that knows more than its row (encrypted, protected) is no change; a changed size is; a stored one
        the listing lacks is gone where the poll speaks for its location and kept where it does not."""
        same = a_snapshot(taken_at=NOW - timedelta(days=3))
        grown = a_snapshot(taken_at=NOW - timedelta(days=2))
        pruned = a_snapshot(taken_at=NOW - timedelta(days=1))
        elsewhere = a_snapshot(taken_at=NOW - timedelta(days=1), location="offsite")
        with History.open(db_path, retention=RETENTION) as before_restart:
            before_restart.record(an_observation(snapshots=[same, grown, pruned, elsewhere]))
        relisted = [
            msgspec.structs.replace(same, encrypted=True, protected=True),
            msgspec.structs.replace(grown, size_bytes=5_000),
            a_snapshot(taken_at=NOW),
        ]
        with History.open(db_path, retention=RETENTION) as history:
            # A poll with a problem speaks only for what it lists: "offsite" holds nothing it lists.
            stats = history.record(an_observation(at=LATER, snapshots=relisted, problems=["store 'offsite' unread"]))

            assert (stats.snapshots_added, stats.snapshots_updated, stats.snapshots_gone) == (1, 1, 1)
            assert gone_at(history, pruned.snapshot_id) == LATER.isoformat()
            assert gone_at(history, elsewhere.snapshot_id) is None
            assert {s.snapshot_id: s.size_bytes for s in everything(history)}[grown.snapshot_id] == 5_000

            offsite_now = a_snapshot(taken_at=NOW, location="offsite")
            again = history.record(an_observation(at=LATER + timedelta(hours=1), snapshots=[*relisted, offsite_now]))
            # The next poll, complete and listing "offsite", speaks for it: the snapshot kept there is gone now.
            assert (again.snapshots_added, again.snapshots_updated, again.snapshots_gone) == (1, 0, 1)
            assert gone_at(history, elsewhere.snapshot_id) == (LATER + timedelta(hours=1)).isoformat()

    def test_a_restart_with_nothing_changed_writes_no_snapshot(self, db_path: Path) -> None:
        listed = [
            a_snapshot(target=f"guest:{i}", taken_at=NOW - timedelta(hours=i), verification=Verification.OK)
            for i in range(50)
        ]
        with History.open(db_path, retention=RETENTION) as before_restart:
            before_restart.record(an_observation(snapshots=listed))
        knowing_more = [msgspec.structs.replace(s, encrypted=False, protected=i == 0) for i, s in enumerate(listed)]
        with History.open(db_path, retention=RETENTION) as history:
            stats = history.record(an_observation(at=LATER, snapshots=knowing_more))
            assert (stats.snapshots_added, stats.snapshots_updated, stats.snapshots_gone) == (0, 0, 0)
            assert len(history.view(since=NOW - timedelta(days=3), until=LATER).snapshots) == 50

    def test_it_records_first_and_last_sighting(self, history: History) -> None:
        snapshot = a_snapshot()
        for hours in range(3):
            history.record(an_observation(at=NOW + timedelta(hours=hours), snapshots=[snapshot]))
        history.record(an_observation(at=NOW + timedelta(hours=3), snapshots=[a_snapshot(target="guest:102")]))

        sighting = history.sighting("pbs1", snapshot.snapshot_id)

        assert sighting is not None
        assert iso([sighting.first_seen_at, sighting.last_seen_at, sighting.gone_at]) == iso(
            [NOW, NOW + timedelta(hours=2), NOW + timedelta(hours=3)]
        )

    def test_it_knows_nothing_of_a_snapshot_it_never_saw(self, history: History) -> None:
        assert history.sighting("pbs1", "main/vm/999/2025-01-01T00:00:00Z") is None

    def test_a_snapshot_seen_again_is_no_longer_gone(self, history: History) -> None:
        snapshot = a_snapshot()
        history.record(an_observation(snapshots=[snapshot]))
        history.record(an_observation(at=LATER, snapshots=[a_snapshot(target="guest:102")]))

        history.record(an_observation(at=LATER + timedelta(hours=1), snapshots=[snapshot]))

        assert gone_at(history, snapshot.snapshot_id) is None

    def test_a_complete_observation_marks_a_deleted_backup_group_gone(self, history: History) -> None:
        deleted = a_snapshot(target="guest:102")
        history.record(an_observation(snapshots=[a_snapshot(), deleted]))

        history.record(an_observation(at=LATER, snapshots=[a_snapshot()]))

        assert gone_at(history, deleted.snapshot_id) == LATER.isoformat()

    def test_an_unreadable_datastore_marks_nothing_there_gone(self, history: History) -> None:
        elsewhere = a_snapshot(location="offsite")
        history.record(an_observation(snapshots=[a_snapshot(), elsewhere]))

        history.record(an_observation(at=LATER, snapshots=[a_snapshot()], problems=["datastore offsite: EIO"]))

        assert gone_at(history, elsewhere.snapshot_id) is None

    def test_a_partial_observation_marks_gone_only_for_targets_it_lists(self, history: History) -> None:
        pruned = a_snapshot(taken_at=NOW - timedelta(days=9))
        unlisted = a_snapshot(target="guest:102")
        history.record(an_observation(snapshots=[pruned, a_snapshot(), unlisted]))

        history.record(an_observation(at=LATER, snapshots=[a_snapshot()], problems=["namespace 'dev': 403"]))

        assert gone_at(history, pruned.snapshot_id) == LATER.isoformat()
        assert gone_at(history, unlisted.snapshot_id) is None

    def test_an_observation_without_snapshots_marks_nothing_gone(self, history: History) -> None:
        snapshot = a_snapshot()
        history.record(an_observation(snapshots=[snapshot]))

        history.record(an_observation(at=LATER))

        assert gone_at(history, snapshot.snapshot_id) is None

    def test_another_sources_snapshots_are_left_alone(self, history: History) -> None:
        theirs = a_snapshot(source="pbs2")
        history.record(an_observation(snapshots=[theirs, a_snapshot()]))

        history.record(an_observation(at=LATER, snapshots=[a_snapshot()]))

        assert gone_at(history, theirs.snapshot_id, source="pbs2") is None


class TestTypicalDurations:
    def test_it_is_the_median_of_the_last_20_finished_runs(self, history: History) -> None:
        # 25 runs: the 5 oldest last 100 minutes and must fall out of the sample; then 11 x 10 min, 9 x 30 min.
        minutes = [100] * 5 + [10] * 11 + [30] * 9
        runs = [
            a_run(run_id=f"UPID:{n}", started_at=NOW - timedelta(days=30 - n), took=timedelta(minutes=m))
            for n, m in enumerate(minutes)
        ]
        history.record(an_observation(runs=[*runs, a_run(run_id="UPID:now", started_at=NOW, took=None)]))

        assert history.view(since=NOW).typical_durations == {JOB: timedelta(minutes=10)}

    def test_job_level_runs_win_over_per_target_parts(self, history: History) -> None:
        history.record(
            an_observation(
                runs=[a_run(took=timedelta(minutes=20)), a_run(target="guest:101", took=timedelta(minutes=5))]
            )
        )

        assert history.view(since=NOW).typical_durations == {JOB: timedelta(minutes=20)}

    def test_per_target_parts_of_one_run_count_as_one_run_spanning_them_all(self, history: History) -> None:
        start = NOW - timedelta(hours=4)
        parts = [
            a_run(target="guest:101", started_at=start, took=timedelta(minutes=5)),
            a_run(target="guest:102", started_at=start + timedelta(minutes=5), took=timedelta(minutes=7)),
        ]
        history.record(an_observation(runs=parts))

        assert history.view(since=NOW).typical_durations == {JOB: timedelta(minutes=12)}

    def test_per_target_runs_give_the_median_of_the_newest_20_finished_runs(self, history: History) -> None:
        # 60 runs of 3 parts, newest last: the 40 oldest take hours and must fall out of the sample; of the 20
        # newest the latest is still running, so the sample reaches one run further back.
        runs = []
        spans = []
        for n in range(60):
            start = NOW - timedelta(days=60 - n)
            part = timedelta(hours=3) if n < 39 else timedelta(minutes=1 + n % 7)
            running = n == 59
            parts = [
                a_run(run_id=f"UPID:{n}:{k}", started_at=start + k * part, took=None if running and k == 2 else part)
                for k in range(3)
            ]
            runs += [evolve_run(run, run_id=f"UPID:{n}", target=f"guest:{101 + k}") for k, run in enumerate(parts)]
            if not running:
                spans.append(3 * part)
        history.record(an_observation(runs=runs))

        expected = statistics.median(spans[-20:])
        assert history.view(since=NOW).typical_durations == {JOB: expected}
        assert expected < timedelta(hours=1)  # the sample held no run of the oldest 40

    def test_a_job_with_only_running_runs_has_no_typical_duration(self, history: History) -> None:
        history.record(an_observation(runs=[a_run(took=None), a_run(run_id="x", target="guest:101", took=None)]))

        assert history.view(since=NOW).typical_durations == {}


class TestCostFollowsTheWindow:
    @staticmethod
    def stored(path: Path, *, days: int) -> None:
        """10 guests backed up daily for `days` days: a snapshot, its part of the job's run, a verify run."""
        snapshots, runs = [], []
        for day in range(days):
            start = NOW - timedelta(days=day, hours=4)
            for guest in range(101, 111):
                taken = start + timedelta(minutes=guest - 100)
                snapshots.append(a_snapshot(target=f"guest:{guest}", taken_at=taken))
                runs.append(a_run(run_id=f"UPID:{day}", started_at=taken, target=f"guest:{guest}"))
            runs.append(a_run(run_id=f"UPID:v{day}", job="pbs1/verify/v", started_at=start + timedelta(hours=1)))
        with History.open(path, retention=timedelta(days=days + 10)) as history:
            history.record(an_observation(snapshots=snapshots, runs=runs))

    @staticmethod
    def steps_of_a_fresh_view(path: Path) -> int:
        """SQLite's work (virtual machine steps, in hundreds) for a restarted service's first 15-day view."""
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        with History.open(path, retention=timedelta(days=3650)) as history:
            history._conn.set_progress_handler(count, 100)  # type: ignore[union-attr]
            view = history.view(since=NOW - timedelta(days=15), until=NOW)
        assert set(view.typical_durations) == {JOB, "pbs1/verify/v"} and len(view.snapshots) == 150
        return steps

    def test_a_fresh_views_work_is_the_same_for_a_month_and_a_year_stored(self, tmp_path: Path) -> None:
        self.stored(tmp_path / "month.sqlite3", days=30)
        self.stored(tmp_path / "year.sqlite3", days=365)

        month, year = (self.steps_of_a_fresh_view(tmp_path / f"{n}.sqlite3") for n in ("month", "year"))

        assert 0 < year <= 1.2 * month


class TestBulkWrite:
    """A snapshot write bigger than the table (a big source's first poll) builds the secondary indexes after the
    rows instead of along with them. Nothing of that may show in the file."""

    @staticmethod
    def written(path: Path, observations: Sequence[Observation]) -> tuple[list[tuple[object, ...]], list[str]]:
        """Record `observations`; return the file's snapshot rows and the SQL statements each record ran."""
        statements: list[str] = []
        with History.open(path, retention=RETENTION) as history:
            history._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
            for observation in observations:
                history.record(observation)
                statements.append("-- recorded")
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = conn.execute("SELECT * FROM snapshots ORDER BY source, snapshot_id").fetchall()
        return rows, statements

    @staticmethod
    def indexes(path: Path) -> list[tuple[str, str]]:
        with closing(sqlite3.connect(path)) as conn:
            return conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'snapshots' ORDER BY name"
            ).fetchall()

    def test_it_leaves_the_same_rows_and_indexes_as_a_write_row_by_row(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first = [a_snapshot(target=f"guest:{n}", taken_at=NOW - timedelta(hours=n)) for n in range(3000)]
        verified = [msgspec.structs.replace(s, verification=Verification.OK, verified_at=NOW) for s in first[:400]]
        polls = [an_observation(snapshots=first), an_observation(at=LATER, snapshots=[*verified, *first[400:2990]])]
        monkeypatch.setattr(history_store, "BULK_ROWS", 10**9)
        by_row, plain = self.written(tmp_path / "by_row.sqlite3", polls)
        monkeypatch.setattr(history_store, "BULK_ROWS", 100)
        in_bulk, bulk = self.written(tmp_path / "in_bulk.sqlite3", polls)

        assert in_bulk == by_row and len(in_bulk) == 3000
        assert self.indexes(tmp_path / "in_bulk.sqlite3") == self.indexes(tmp_path / "by_row.sqlite3")
        drops = [n for n, statement in enumerate(bulk) if statement.startswith("DROP INDEX")]
        assert len(drops) == 2 and drops[-1] < bulk.index("-- recorded"), "the first record sets the indexes aside"
        assert not any(statement.startswith("DROP INDEX") for statement in plain)
        second = bulk[bulk.index("-- recorded") :]  # 400 rows changed: fewer than the table holds
        assert not any(statement.startswith("DROP INDEX") for statement in second)

    def test_a_failed_bulk_write_leaves_the_indexes_and_no_row(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(history_store, "BULK_ROWS", 100)
        History.open(db_path, retention=RETENTION).close()
        before = self.indexes(db_path)
        snapshots = [a_snapshot(target=f"guest:{n}", taken_at=NOW - timedelta(hours=n)) for n in range(500)]
        naive = msgspec.structs.replace(snapshots[-1], taken_at=NOW.replace(tzinfo=None))

        with History.open(db_path, retention=RETENTION) as history:
            with pytest.raises(HistoryError, match="naive datetime"):
                history.record(an_observation(snapshots=[*snapshots[:-1], naive]))
            assert everything(history) == ()
            history.record(an_observation(snapshots=snapshots))
            assert len(everything(history)) == 500

        assert self.indexes(db_path) == before and len(before) == 3  # the unique one, by time, by first sighting


class TestWal:
    def test_a_write_that_grows_the_wal_past_its_limit_leaves_it_cut_back(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        limit = 64 * 1024
        monkeypatch.setattr(history_store, "WAL_LIMIT", limit)
        snapshots = [a_snapshot(target=f"guest:{n}", taken_at=NOW - timedelta(hours=n)) for n in range(3000)]
        wal = db_path.with_name(db_path.name + "-wal")
        with History.open(db_path, retention=RETENTION) as history:
            history.record(an_observation(snapshots=snapshots))

            assert wal.exists() and wal.stat().st_size <= limit
            assert len(everything(history)) == 3000
        with History.open(db_path, retention=RETENTION) as reopened:
            assert len(everything(reopened)) == 3000


class TestRetention:
    def test_it_deletes_gone_snapshots_and_runs_older_than_retention(self, history: History) -> None:
        ancient, recent = NOW - RETENTION - timedelta(days=1), NOW - timedelta(days=1)
        old_snapshot, new_snapshot = a_snapshot(taken_at=ancient), a_snapshot(taken_at=recent)
        history.record(
            an_observation(
                at=ancient,
                snapshots=[old_snapshot, new_snapshot],
                runs=[a_run(run_id="old", started_at=ancient), a_run(run_id="new", started_at=recent)],
            )
        )
        history.record(an_observation(snapshots=[new_snapshot]))  # the source pruned the old one

        deleted = history.prune(now=NOW)

        view = history.view(since=ancient - timedelta(days=1))
        assert deleted == 2
        assert view.snapshots == (new_snapshot,)
        assert [r.run_id for r in view.runs] == ["new"]

    def test_it_keeps_an_old_snapshot_the_source_still_has(self, history: History) -> None:
        monthly = a_snapshot(taken_at=NOW - RETENTION * 2)
        history.record(an_observation(snapshots=[monthly]))

        assert history.prune(now=NOW) == 0
        assert everything(history) == (monthly,)

    def test_it_deletes_an_old_snapshot_no_observation_has_covered_within_retention(self, history: History) -> None:
        stale = a_snapshot(taken_at=NOW - RETENTION * 2)
        history.record(an_observation(at=NOW - RETENTION - timedelta(days=1), snapshots=[stale]))

        assert history.prune(now=NOW) == 1
        assert everything(history) == ()

    def test_a_clock_days_behind_deletes_nothing_a_broken_far_future_row_goes(self, history: History) -> None:
        """A Pi started without its clock set (no RTC, NTP not there yet) pruned the last days of real history as
        "from the future". Only what no clock error explains (a year ahead and more, as an older build stored) goes."""
        real, broken = a_snapshot(taken_at=NOW - timedelta(hours=3)), a_snapshot(taken_at=NOW + timedelta(days=800))
        history.record(
            an_observation(
                snapshots=[real, broken],
                runs=[
                    a_run(run_id="real", started_at=NOW - timedelta(hours=3)),
                    a_run(run_id="broken", started_at=NOW + timedelta(days=800)),
                ],
            )
        )
        assert history.prune(now=NOW - timedelta(days=5)) == 2
        assert everything(history) == (real,)
        assert [r.run_id for r in history.view(since=NOW - timedelta(days=1)).runs] == ["real"]

    def test_it_forgets_a_place_once_no_snapshot_is_left_in_it(self, history: History, db_path: Path) -> None:
        long_ago = NOW - RETENTION - timedelta(days=10)
        old = a_snapshot(target="guest:101", location="main", taken_at=long_ago - timedelta(hours=1))
        dated_later = a_snapshot(target="guest:102", location="other", taken_at=NOW - timedelta(days=1))
        history.record(an_observation(at=long_ago, snapshots=[old, dated_later]))

        assert history.prune(now=NOW) == 1

        with closing(sqlite3.connect(db_path)) as conn:  # a place not covered since the cutoff, still holding one
            assert conn.execute("SELECT location, target_key FROM scopes").fetchall() == [("other", "guest:102")]


def a_version_1_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](conn)  # exactly what a backup-glance that knew only version 1 created
    conn.execute(
        "INSERT INTO snapshots VALUES ('pbs1', 'main/vm/101/a', 'guest:101', 'main', ?, 1, 5, 'ok', NULL, ?, ?)",
        (int((NOW - timedelta(days=1)).timestamp()), int(NOW.timestamp()) - 60, int(NOW.timestamp())),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.close()


class TestSchema:
    def test_a_new_database_is_at_the_latest_version(self, db_path: Path) -> None:
        History.open(db_path, retention=RETENTION).close()

        assert pragma(db_path, "user_version") == SCHEMA_VERSION == 6

    def test_a_new_file_is_said_once_and_an_upgrade_step_by_step(
        self, db_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A new user's first `check` printed six "history schema migrated" lines for a file it had just made.
        with caplog.at_level(logging.INFO, logger="backup_glance.history"):
            History.open(db_path, retention=RETENTION).close()
            assert [r.getMessage() for r in caplog.records] == ["history file created"]
            caplog.clear()
            old = db_path.parent / "old.sqlite3"
            a_version_1_database(old)
            History.open(old, retention=RETENTION).close()
        migrated = [r for r in caplog.records if r.getMessage() == "history schema migrated"]
        assert [r.version for r in migrated] == list(range(2, SCHEMA_VERSION + 1))  # type: ignore[attr-defined]

    def test_it_upgrades_a_version_1_database_keeping_its_rows(self, db_path: Path) -> None:
        db_path.parent.mkdir()
        a_version_1_database(db_path)

        with History.open(db_path, retention=RETENTION) as history:
            assert [s.snapshot_id for s in everything(history)] == ["main/vm/101/a"]
            sighting = history.sighting("pbs1", "main/vm/101/a")
            assert sighting is not None
            assert iso([sighting.last_seen_at, sighting.gone_at]) == iso([NOW, None])
            history.record(an_observation(at=LATER, snapshots=[a_snapshot()]))
            assert gone_at(history, "main/vm/101/a") == LATER.isoformat()
        assert pragma(db_path, "user_version") == SCHEMA_VERSION

    def test_it_moves_the_snapshots_of_a_version_4_database_to_a_rowid_table_keeping_every_column(
        self, db_path: Path
    ) -> None:
        db_path.parent.mkdir()
        conn = sqlite3.connect(db_path, isolation_level=None)
        for step in MIGRATIONS[:4]:
            step(conn)
        taken, seen = int((NOW - timedelta(days=1)).timestamp()), int(NOW.timestamp())
        rows = [
            ("pbs1", "main/vm/101/a", "guest:101", "main", taken, 1, 5, "ok", taken + 60, seen - 600, seen - 600, None),
            ("pbs1", "main/vm/102/b", "guest:102", "ns", taken, 0, None, "none", None, seen - 900, seen - 300, seen),
        ]
        rows += [  # enough rows that the old table's pages are most of the file
            ("pbs1", f"main/vm/{n}/c", f"guest:{n}", "main", taken, 1, n, "ok", None, seen, seen, None)
            for n in range(1000, 3000)
        ]
        conn.executemany("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("PRAGMA user_version = 4")
        conn.close()

        History.open(db_path, retention=RETENTION).close()

        with closing(sqlite3.connect(db_path)) as upgraded:
            assert upgraded.execute("SELECT * FROM snapshots ORDER BY snapshot_id").fetchall() == sorted(rows)
            assert upgraded.execute("SELECT COUNT(*), MIN(rowid), MAX(rowid) FROM snapshots").fetchone() == (
                2002,
                1,
                2002,
            )
            indexes = {name for (name,) in upgraded.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            assert upgraded.execute("PRAGMA freelist_count").fetchone() == (0,)  # the old table's pages given back
        assert {"snapshots_by_time", "snapshots_by_first_seen"} <= indexes
        assert not {"snapshots_by_target", "snapshots_present"} & indexes

    def test_a_compaction_that_fails_leaves_a_working_file_and_says_so(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        class NoRoomForVacuum:  # the connection as `migrate` uses it, on a disk without room for the copy
            def __init__(self, conn: sqlite3.Connection) -> None:
                self.conn = conn

            def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
                if sql == "VACUUM":
                    raise sqlite3.OperationalError("database or disk is full")
                return self.conn.execute(sql, *args)

        with closing(sqlite3.connect(tmp_path / "h.db", isolation_level=None)) as conn:
            conn.execute("CREATE TABLE old (a TEXT)")
            conn.executemany("INSERT INTO old VALUES (?)", [("x" * 1000,)] * 300)
            conn.execute("DROP TABLE old")

            _give_back_free_pages(NoRoomForVacuum(conn), "h.db")  # type: ignore[arg-type]

            assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 0
        assert "not compacted after the upgrade" in caplog.text

    def test_an_upgrade_that_fills_the_disk_says_so_and_gives_the_space_back(self, tmp_path: Path) -> None:
        """On SQLITE_FULL, SQLite may roll the step back itself: the ROLLBACK after it raised "cannot rollback - no
        transaction is active", which hid the reason, and the WAL it grew kept the disk full."""

        class FullDisk:  # the connection as `migrate` uses it, on a disk that fills during step 3
            def __init__(self, conn: sqlite3.Connection) -> None:
                self.conn, self.checkpoints = conn, []

            @property
            def in_transaction(self) -> bool:
                return self.conn.in_transaction

            def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
                if sql.startswith("PRAGMA wal_checkpoint"):
                    self.checkpoints.append(sql)
                if sql == "PRAGMA user_version = 3":
                    self.conn.execute("ROLLBACK")
                    raise sqlite3.OperationalError("database or disk is full")
                return self.conn.execute(sql, *args)

        with closing(sqlite3.connect(tmp_path / "h.db", isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            full = FullDisk(conn)
            with pytest.raises(sqlite3.OperationalError, match=r"^database or disk is full$"):
                migrate(full, "h.db")  # type: ignore[arg-type]
            assert conn.execute("PRAGMA user_version").fetchone() == (2,), "the steps before it stay done"
            assert full.checkpoints == ["PRAGMA wal_checkpoint(TRUNCATE)"]
        hint = _what_to_do(str(tmp_path / "h.db"), sqlite3.OperationalError("database or disk is full"))
        assert hint.startswith("; free some space beside it: upgrading its schema may take about "), hint

    def test_it_refuses_a_database_from_a_newer_version(self, db_path: Path) -> None:
        History.open(db_path, retention=RETENTION).close()
        pragma(db_path, f"user_version = {SCHEMA_VERSION + 1}")

        newer = rf"history\.sqlite3 has schema version {SCHEMA_VERSION + 1}.*only knows up to version {SCHEMA_VERSION}"
        with pytest.raises(HistoryError, match=newer):
            History.open(db_path, retention=RETENTION)

    def test_it_names_the_path_of_a_file_that_is_not_sqlite(self, db_path: Path) -> None:
        db_path.parent.mkdir()
        db_path.write_bytes(b"this is a backup manifest, not a database\n" * 100)

        with pytest.raises(HistoryError, match=rf"{re.escape(str(db_path))}: file is not a database"):
            History.open(db_path, retention=RETENTION)

    def test_only_a_file_sqlite_cannot_read_is_called_damaged(self, db_path: Path) -> None:
        with History.open(db_path, retention=RETENTION):
            pass
        for error in ("database is locked", "unable to open database file", "attempt to write a readonly database"):
            assert _what_to_do(str(db_path), sqlite3.OperationalError(error)) == ""  # it says what it is itself
        assert "damaged" in _what_to_do(str(db_path), sqlite3.DatabaseError("database disk image is malformed"))

    def test_a_history_cut_short_is_called_damaged(self, db_path: Path) -> None:
        with History.open(db_path, retention=RETENTION) as history:
            history.record(an_observation(snapshots=[a_snapshot(target=f"guest:{n}") for n in range(2000)]))
        db_path.write_bytes(db_path.read_bytes()[:8192])  # a copy that stopped early

        with pytest.raises(HistoryError, match=r"the file is damaged .*: restore it from a backup, or move it aside"):
            History.open(db_path, retention=RETENTION)

    def test_it_refuses_another_programs_sqlite_database(self, db_path: Path) -> None:
        db_path.parent.mkdir()
        with closing(sqlite3.connect(db_path)) as other:
            other.execute("CREATE TABLE moz_places (id INTEGER)")

        with pytest.raises(HistoryError, match=r"not a backup-glance history .*moz_places"):
            History.open(db_path, retention=RETENTION)

    def test_it_names_the_path_it_cannot_create(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")

        with pytest.raises(HistoryError, match=r"cannot open the history database .*file/history\.sqlite3"):
            History.open(tmp_path / "file" / "history.sqlite3", retention=RETENTION)

    def test_a_closed_history_says_so(self, db_path: Path) -> None:
        history = History.open(db_path, retention=RETENTION)
        history.close()

        with pytest.raises(HistoryError, match=r"history database .* is closed"):
            history.view(since=NOW)


class TestLockedByAnotherProcess:
    def test_a_database_another_process_locks_is_on_the_board_until_a_write_works(self, db_path: Path) -> None:
        """A backup tool copying the file (or a second backup-glance run by hand) holds it locked: every write
        failed in the log only, and the board said nothing."""
        with History.open(db_path, retention=RETENTION) as history:
            assert history._conn is not None
            history._conn.execute("PRAGMA busy_timeout = 50")  # not the 10 s a service waits
            with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
                other.execute("BEGIN EXCLUSIVE")
                with pytest.raises(HistoryError, match="database is locked"):
                    history.record(an_observation(snapshots=[a_snapshot()]))
                assert history.problem is not None and "another process holds the database locked" in history.problem
                other.execute("ROLLBACK")
            history.record(an_observation(snapshots=[a_snapshot()]))
            assert history.problem is None


class TestThreads:
    def test_a_request_thread_never_sees_half_an_observation(self, history: History) -> None:
        batch = 200
        observations = [
            an_observation(
                at=NOW + timedelta(minutes=n),
                snapshots=[a_snapshot(target=f"guest:{n}", taken_at=NOW - timedelta(minutes=m)) for m in range(batch)],
            )
            for n in range(30)
        ]
        failures: list[BaseException] = []

        def collector() -> None:
            try:
                for observation in observations:
                    history.record(observation)
            except BaseException as exc:  # handed to the main thread, which fails the test
                failures.append(exc)

        writer = threading.Thread(target=collector)
        writer.start()
        seen: list[int] = []
        while writer.is_alive():
            seen.append(len(history.view(since=NOW - timedelta(days=1)).snapshots))
        writer.join()

        assert failures == []
        assert [count for count in seen if count % batch] == []
        assert len(history.view(since=NOW - timedelta(days=1)).snapshots) == 30 * batch


# The child records one observation per round (the previous round's snapshots go gone, _ROUND new ones arrive)
# and says "start n" before and "done n" after each record(), so the parent can time a round, aim its kill at
# a point inside the next record() and know which rounds must have survived.
_ROUND = 2_000
_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from backup_glance.history import History
    from backup_glance.model import Observation, Snapshot

    start = datetime(2025, 3, 14, tzinfo=UTC)
    history = History.open(sys.argv[1], retention=timedelta(days=90))
    for n in range(100_000):
        at = start + timedelta(minutes=n)
        snapshots = tuple(
            Snapshot(target_key=f"guest:{i}", source="pbs1", snapshot_id=f"main/vm/{i}/{n}", taken_at=at,
                     location="main")
            for i in range(int(sys.argv[2]))
        )
        print("start", n, flush=True)
        history.record(Observation(source="pbs1", kind="pbs", observed_at=at, timezone="UTC", snapshots=snapshots))
        print("done", n, flush=True)
    """
)


def kill_writer_inside_a_record(db_path: Path, *, fraction: float) -> int:
    """Run the writer, SIGKILL it `fraction` of the way into its sixth record(); return the last round done."""
    done, took = -1, timedelta(0)
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path), str(_ROUND)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        try:
            started = time.monotonic()
            for line in child.stdout:
                event, number = line.split()
                if event == "start" and int(number) == 5:
                    time.sleep(took.total_seconds() * fraction)
                    break
                if event == "start":
                    started = time.monotonic()
                else:
                    done, took = int(number), max(took, timedelta(seconds=time.monotonic() - started))
        finally:
            os.kill(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL, "the writer ended on its own"
    return done


def round_of(snapshot: Snapshot) -> int:
    return int(snapshot.snapshot_id.rsplit("/", 1)[1])  # the writer's ids end in the round number


class TestCrashSafety:
    @pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
    def test_it_survives_being_killed_mid_write(self, db_path: Path, fraction: float) -> None:
        done = kill_writer_inside_a_record(db_path, fraction=fraction)

        assert pragma(db_path, "integrity_check") == "ok"
        with History.open(db_path, retention=RETENTION) as history:
            snapshots = history.view(since=datetime(2025, 3, 14, tzinfo=UTC)).snapshots
            rounds = Counter(round_of(s) for s in snapshots)
            present = Counter(round_of(s) for s in snapshots if gone_at(history, s.snapshot_id) is None)
            history.record(an_observation(at=datetime(2025, 4, 1, tzinfo=UTC), snapshots=[a_snapshot()]))
        assert set(range(done + 1)) <= set(rounds), "a committed round is missing"
        assert set(rounds.values()) == {_ROUND}, "a round was half written"
        assert present == {max(rounds): _ROUND}, "a round was half marked gone"


def test_a_serve_lock_on_a_symlink_loop_is_a_history_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(HistoryError, match=r"cannot use the history path .*/a"):
        claim_history(tmp_path / "a")


def test_a_history_path_below_a_file_names_that_file(tmp_path: Path) -> None:
    """It said "[Errno 17] File exists" (open) and "file exists" (the lock), naming neither the file nor the fix."""
    from backup_glance.runtime import claim_history

    (tmp_path / "afile").write_text("x")
    path = tmp_path / "afile" / "sub" / "h.sqlite3"
    with pytest.raises(HistoryError) as opened:
        History.open(path, retention=timedelta(days=30))
    assert str(opened.value) == f"cannot open the history database {path}: {tmp_path / 'afile'} is a file, not a folder"
    with pytest.raises(HistoryError, match=re.escape(f": {tmp_path / 'afile'} is a file, not a folder")):
        claim_history(path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_serve_lock_on_a_full_disk_holds_without_naming_its_process(tmp_path: Path) -> None:
    """Writing the process id into the lock failed on a full disk: `serve` ended in "internal error (a bug)"
    and a stray "Exception ignored" at the close. /dev/full refuses every write with ENOSPC, as a full disk does."""
    path = tmp_path / "history.sqlite3"
    (tmp_path / "history.sqlite3.lock").symlink_to("/dev/full")
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        claim = claim_history(path)
        claim.close()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert claim.closed and not unraisable


def test_a_new_history_beside_the_former_default_file_says_where_that_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first versions kept the history in ./data/history.sqlite3 when the config named none; a later one in
    the data folder. An upgrade then started afresh, saying only "history file created"."""
    from backup_glance.config import Config, HistoryConfig
    from backup_glance.runtime import build_runtime

    monkeypatch.chdir(tmp_path)
    History.open(tmp_path / "data" / "history.sqlite3", retention=RETENTION).close()
    config = Config(timezone="UTC", history=HistoryConfig(path=str(tmp_path / "state" / "history.sqlite3")))

    def warnings_at_start() -> list[logging.LogRecord]:
        caplog.clear()
        runtime = build_runtime(config)
        assert runtime.history is not None
        runtime.history.close()
        return [r for r in caplog.records if r.levelno == logging.WARNING]

    (told,) = warnings_at_start()
    assert told.former == str(tmp_path / "data" / "history.sqlite3")  # type: ignore[attr-defined]
    assert "move that file to the new place (or set history.path to it)" in told.getMessage()
    assert warnings_at_start() == [], "the second start finds its own file: nothing to say"
