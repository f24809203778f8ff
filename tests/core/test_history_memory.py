"""History remembers what it wrote: a view from memory equals one read from the file, and quiet polls write nothing.

A long random sequence of polls (snapshots appear, change, vanish; runs start and finish; partial observations;
restarts) is recorded; after every step the view the store serves from memory must equal the view a fresh
store reads from the same file.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from backup_glance.errors import HistoryError
from backup_glance.history import History, _store
from backup_glance.history._listed import Listed
from backup_glance.model import HistoryView, Job, JobKind, JobRun, Observation, RunOutcome, Snapshot, Verification

START = datetime(2026, 3, 1, tzinfo=UTC)
RETENTION = timedelta(days=90)
WINDOW = timedelta(days=15)


def snapshot(target: int, at: datetime, *, size: int = 100, verified: Verification = Verification.NONE) -> Snapshot:
    location = f"store{target % 3}"
    return Snapshot(
        target_key=f"guest:{target}",
        source="pbs",
        snapshot_id=f"{location}/ct/{target}/{at.isoformat()}",
        taken_at=at,
        size_bytes=size,
        verification=verified,
        location=location,
    )


def run(index: int, at: datetime, *, done: bool) -> JobRun:
    return JobRun(
        job_key="pbs/backup/nightly",
        source="pbs",
        run_id=f"UPID:{index}",
        started_at=at,
        ended_at=at + timedelta(minutes=7) if done else None,
        outcome=RunOutcome.OK if done else RunOutcome.RUNNING,
        target_key=f"guest:{index % 5}",
    )


def comparable(view: HistoryView) -> tuple[object, ...]:
    return (view.snapshots, view.runs, view.recorded_since)


def polls(rng: random.Random, steps: int) -> Iterator[Observation]:
    """A random sequence of one PBS's observations: backups, prunes, verifications, runs that finish, and now and
    then a store that could not be read."""
    present: dict[str, Snapshot] = {}
    runs: dict[str, JobRun] = {}
    now = START
    snapshots_tuple: tuple[Snapshot, ...] = ()
    for step in range(steps):
        now += timedelta(minutes=rng.choice([5, 5, 5, 60, 600]))
        action = rng.random()
        if action < 0.3:  # a backup: a new snapshot and its run
            target = rng.randrange(8)
            fresh = snapshot(target, now - timedelta(minutes=rng.randrange(30)))
            present[fresh.snapshot_id] = fresh
            runs[f"UPID:{step}"] = run(step, now - timedelta(minutes=20), done=rng.random() < 0.7)
        elif action < 0.4 and present:  # prune at the source
            present.pop(rng.choice(sorted(present)))
        elif action < 0.5 and present:  # a verification changes a snapshot
            key = rng.choice(sorted(present))
            old = present[key]
            present[key] = snapshot(int(old.target_key.split(":")[1]), old.taken_at, verified=Verification.OK)
        elif action < 0.6 and runs:  # a running run finishes
            key = rng.choice(sorted(runs))
            if runs[key].ended_at is None:
                runs[key] = run(int(key.split(":")[1]), runs[key].started_at, done=True)
        if action < 0.6:
            snapshots_tuple = tuple(sorted(present.values(), key=lambda s: s.snapshot_id))
        problems = ("store1 unreadable",) if rng.random() < 0.1 else ()
        shown = tuple(s for s in snapshots_tuple if not problems or s.location != "store1")
        yield Observation(
            source="pbs",
            kind="pbs",
            observed_at=now,
            timezone="UTC",
            snapshots=snapshots_tuple if not problems else shown,
            runs=tuple(runs.values()),
            problems=problems,
        )


@pytest.mark.parametrize("seed", range(6))
def test_the_view_from_memory_equals_the_view_from_the_file(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "h.db"
    history = History.open(path, retention=RETENTION)
    try:
        for step, observation in enumerate(polls(rng, 120)):
            history.record(observation)
            if rng.random() < 0.05:  # a restart: memory starts over from the file
                history.close()
                history = History.open(path, retention=RETENTION)
            now = observation.observed_at
            since, until = now - WINDOW, now + timedelta(days=1)
            from_memory = history.view(since=since, until=until)
            with History.open(path, retention=RETENTION) as fresh:
                from_file = fresh.view(since=since, until=until)
            assert comparable(from_memory) == comparable(from_file), f"seed {seed}, step {step}"
    finally:
        history.close()


@pytest.fixture
def every_write_deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deferring record leaves every snapshot write for later, not only one as big as a first poll's."""
    monkeypatch.setattr(_store, "DEFERRED_ROWS", 1)


@pytest.mark.usefixtures("every_write_deferred")
@pytest.mark.parametrize("seed", range(6))
def test_a_view_before_deferred_rows_are_written_is_the_view_after(tmp_path: Path, seed: int) -> None:
    """Side by side, one store writes every record at once, the other leaves the snapshot rows for later (as the
    collector does until its board is out); restarts and first views included, their views and files agree."""
    rng = random.Random(seed)
    at_once, later = tmp_path / "at-once.db", tmp_path / "later.db"
    writing, deferring = History.open(at_once, retention=RETENTION), History.open(later, retention=RETENTION)
    try:
        for step, observation in enumerate(polls(rng, 120)):
            writing.record(observation)
            deferring.record(observation, defer=True)
            if rng.random() < 0.1:  # a restart, or a new start with the same file
                writing.close()
                deferring.close()  # writes what is left
                writing = History.open(at_once, retention=RETENTION)
                deferring = History.open(later, retention=RETENTION)
                writing.record(observation)
                deferring.record(observation, defer=True)  # the first record after a start: all again
            now = observation.observed_at
            since, until = now - WINDOW, now + timedelta(days=1)
            expected = comparable(writing.view(since=since, until=until))
            assert comparable(deferring.view(since=since, until=until)) == expected, f"seed {seed}, step {step}"
            if rng.random() < 0.5:
                deferring.flush()
                assert stored_snapshots(later) == stored_snapshots(at_once), f"seed {seed}, step {step}"
    finally:
        writing.close()
        deferring.close()
    assert stored_snapshots(later) == stored_snapshots(at_once)


def test_a_quiet_poll_writes_no_row(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    snapshots = tuple(snapshot(t, START - timedelta(days=d)) for t in range(50) for d in range(10))
    runs = tuple(run(i, START - timedelta(days=i % 10), done=True) for i in range(200))
    with History.open(path, retention=RETENTION) as history:
        first = Observation("pbs", "pbs", START, "UTC", snapshots=snapshots, runs=runs)
        history.record(first)
        history.view(since=START - WINDOW)
        assert history._conn is not None
        before = history._conn.total_changes
        for minutes in (5, 10, 15):
            quiet = Observation("pbs", "pbs", START + timedelta(minutes=minutes), "UTC", snapshots=snapshots, runs=runs)
            stats = history.record(quiet)
            assert (stats.snapshots_added, stats.snapshots_updated, stats.snapshots_gone, stats.runs_written) == (
                0,
                0,
                0,
                0,
            )
        assert history._conn.total_changes == before
        # An hour on, the coverage of each place is refreshed once (what a vanishing snapshot's last sighting uses).
        history.record(Observation("pbs", "pbs", START + timedelta(hours=1), "UTC", snapshots=snapshots, runs=runs))
        assert history._conn.total_changes - before == len({(s.location, s.target_key) for s in snapshots})


def test_the_same_task_list_again_is_skipped_but_a_job_run_beside_it_is_not(tmp_path: Path) -> None:
    listed = tuple(run(i, START - timedelta(hours=i), done=True) for i in range(20))
    gc_running = JobRun("pbs/gc/main", "pbs", "UPID:gc", START, None, RunOutcome.RUNNING)
    gc_done = JobRun("pbs/gc/main", "pbs", "UPID:gc", START, START + timedelta(minutes=3), RunOutcome.OK)
    worse = JobRun(
        listed[0].job_key, "pbs", listed[0].run_id, START, outcome=RunOutcome.RUNNING, target_key=listed[0].target_key
    )

    def job(last: JobRun) -> Job:
        return Job(last.job_key, "pbs", JobKind.GC, "main", "gc", last_run=last)

    with History.open(tmp_path / "h.db", retention=RETENTION) as history:
        history.record(Observation("pbs", "pbs", START, "UTC", runs=listed, jobs=(job(gc_running),)))
        later = START + timedelta(minutes=5)
        # The task list is the same tuple: it is not compared again, and the fuller account it gives of its own
        # runs still wins over a job's; the job's run that the list lacks is written when it changes.
        stats = history.record(Observation("pbs", "pbs", later, "UTC", runs=listed, jobs=(job(gc_done), job(worse))))
        assert stats.runs_written == 1
        view = history.view(since=START - timedelta(days=2))
    by_id = {r.run_id: r for r in view.runs}
    assert by_id["UPID:gc"] == gc_done
    assert by_id[listed[0].run_id] == listed[0]


def test_the_window_start_moves_with_the_clock(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db", retention=RETENTION) as history:
        old = snapshot(1, START - timedelta(days=20))
        new = snapshot(1, START)
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(old, new)))
        assert history.view(since=START - timedelta(days=30)).snapshots == (old, new)
        assert history.view(since=START - timedelta(days=15)).snapshots == (new,)
        assert history.view(since=START - timedelta(days=30)).snapshots == (old, new)  # read again from the file


def test_the_first_view_takes_present_snapshots_from_memory_and_the_rest_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    kept, pruned = snapshot(1, START - timedelta(days=2)), snapshot(2, START - timedelta(days=1))
    vanishing = snapshot(1, START - timedelta(days=1, hours=1))  # gone at the next listing: then only in the file
    elsewhere = msgspec.structs.replace(snapshot(3, START), source="other")
    with History.open(path, retention=RETENTION) as earlier:  # a previous run of the service
        earlier.record(Observation("pbs", "pbs", START, "UTC", snapshots=(kept, vanishing, pruned)))
        earlier.record(Observation("other", "pbs", START, "UTC", snapshots=(elsewhere,)))
    with History.open(path, retention=RETENTION) as history:
        listed = (snapshot(1, kept.taken_at), snapshot(4, START))  # equal to the stored row, and a new one
        history.record(Observation("pbs", "pbs", START + timedelta(minutes=5), "UTC", snapshots=listed))
        view = history.view(since=START - WINDOW)
    # One source's snapshots come from both: its gone ones from the file, its present ones from memory.
    assert view.snapshots == (kept, vanishing, pruned, elsewhere, listed[1])
    assert view.snapshots[4] is listed[1]  # the recorded object itself, not a second copy read from the file


def test_the_first_view_takes_runs_from_memory_only_where_the_file_agrees(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    finished = run(1, START - timedelta(hours=2), done=True)
    with History.open(path, retention=RETENTION) as earlier:
        earlier.record(Observation("pbs", "pbs", START, "UTC", runs=(finished,)))
    with History.open(path, retention=RETENTION) as history:  # a restart, then a stale task list
        stale = run(1, finished.started_at, done=False)
        fresh = run(2, START, done=True)
        history.record(Observation("pbs", "pbs", START + timedelta(minutes=5), "UTC", runs=(stale, fresh)))
        view = history.view(since=START - WINDOW)
    assert view.runs == (finished, fresh)  # the file keeps the finished run; a listing never undoes it
    assert view.runs[1] is fresh  # the recorded object itself, not a second copy read from the file
    window = history._memory.window
    assert window is not None
    (key,) = (key for key, held in window.runs.items() if held is fresh)
    assert key[1] is fresh.run_id  # and its key holds no second copy of the id read from the row:
    assert any(held is key for held in history._memory.runs)  # it is the key memory holds the run under


def test_a_failed_write_leaves_memory_as_it_was(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.db", retention=RETENTION) as history:
        first = snapshot(1, START)
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(first,)))
        history.view(since=START - WINDOW)
        assert history._conn is not None
        history._conn.execute("PRAGMA query_only = 1")
        second = (first, snapshot(2, START))
        with pytest.raises(Exception, match="readonly"):
            history.record(Observation("pbs", "pbs", START + timedelta(minutes=5), "UTC", snapshots=second))
        assert history.view(since=START - WINDOW).snapshots == (first,)
        history._conn.execute("PRAGMA query_only = 0")
        history.record(Observation("pbs", "pbs", START + timedelta(minutes=10), "UTC", snapshots=second))
        assert len(history.view(since=START - WINDOW).snapshots) == 2
        with sqlite3.connect(tmp_path / "h.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM snapshots").fetchone() == (2,)


@pytest.mark.usefixtures("every_write_deferred")
@pytest.mark.parametrize("with_new_row", [False, True])
def test_after_the_clock_was_set_back_history_starts_where_writing_at_once_says(
    tmp_path: Path, with_new_row: bool
) -> None:
    """A snapshot seen again after it was gone keeps its first sighting; a new one seen under a clock set back
    is the earliest. A view before the rows are written says the same as one after."""
    old, replacing, fresh = snapshot(1, START), snapshot(4, START), snapshot(7, START)  # all in one place
    earlier = START - timedelta(hours=5)  # the clock, set back
    listed = (old, fresh) if with_new_row else (old,)
    seen = []
    for defer in (False, True):
        path = tmp_path / f"h-{defer}.db"
        with History.open(path, retention=RETENTION) as history:
            history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(old,)))
            history.record(Observation("pbs", "pbs", START + timedelta(hours=1), "UTC", snapshots=(replacing,)))
        with History.open(path, retention=RETENTION) as history:  # a restart; `old` is gone in the file
            history.record(Observation("pbs", "pbs", earlier, "UTC", snapshots=listed), defer=defer)
            seen.append(history.view(since=START - WINDOW).recorded_since)
    assert seen[0] == seen[1] == (earlier if with_new_row else START)


@pytest.mark.usefixtures("every_write_deferred")
def test_deferred_rows_that_cannot_be_written_are_recorded_again_from_the_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    first = snapshot(1, START)
    with History.open(path, retention=RETENTION) as history:
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(first,)))
        both = (first, snapshot(2, START + timedelta(minutes=1)))
        history.record(Observation("pbs", "pbs", START + timedelta(minutes=5), "UTC", snapshots=both), defer=True)
        assert history.view(since=START - WINDOW).snapshots == both
        assert history._conn is not None
        history._conn.execute("PRAGMA query_only = 1")  # the file cannot be written any more
        with pytest.raises(HistoryError, match=r"write the new snapshots of 'pbs'.*readonly"):
            history.flush()
        assert history.problem is not None and "read-only" in history.problem
        # Memory started over from the file: it no longer holds what the file lacks.
        assert history.view(since=START - WINDOW).snapshots == (first,)
        history._conn.execute("PRAGMA query_only = 0")
        history.record(Observation("pbs", "pbs", START + timedelta(minutes=10), "UTC", snapshots=both), defer=True)
        history.flush()
        assert history.problem is None
    assert [row[1] for row in stored_snapshots(path)] == [s.snapshot_id for s in both]


@pytest.mark.usefixtures("every_write_deferred")
def test_whatever_reads_or_changes_the_file_writes_deferred_rows_first(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    taken = snapshot(1, START)
    listed = Observation("pbs", "pbs", START, "UTC", snapshots=(taken,))
    with History.open(path, retention=RETENTION) as history:
        history.record(listed, defer=True)
        assert stored_snapshots(path) == []
        sighting = history.sighting("pbs", taken.snapshot_id)
        assert sighting is not None and sighting.first_seen_at == START
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(snapshot(2, START),)), defer=True)
        assert history.prune(now=START) == 0  # pruning counts what the file holds, written first
        assert [row[1] for row in stored_snapshots(path)] == [taken.snapshot_id, snapshot(2, START).snapshot_id]
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=(snapshot(3, START),)), defer=True)
    assert len(stored_snapshots(path)) == 3  # closing wrote the last ones


def test_a_deferring_record_writes_a_small_change_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving a few rows for a transaction of their own would cost more than writing them in the record's."""
    monkeypatch.setattr(_store, "DEFERRED_ROWS", 50)
    path = tmp_path / "h.db"
    few = tuple(snapshot(t, START) for t in range(49))
    then = START + timedelta(hours=1)
    more = (*few, *(snapshot(t, then) for t in range(50)))
    with History.open(path, retention=RETENTION) as history:
        history.record(Observation("pbs", "pbs", START, "UTC", snapshots=few), defer=True)
        assert len(stored_snapshots(path)) == len(few)  # under DEFERRED_ROWS: written at once
        history.record(Observation("pbs", "pbs", then, "UTC", snapshots=more), defer=True)
        assert len(stored_snapshots(path)) == len(few)  # 50 new rows: left for later
        history.flush()
        assert len(stored_snapshots(path)) == len(more)


def stored_snapshots(path: Path) -> list[tuple[object, ...]]:
    """Every snapshot row as the file holds it, its sighting times and disappearance included."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT source, snapshot_id, target_key, location, taken_at, size_bytes, verification, first_seen_at, "
            "gone_at FROM snapshots ORDER BY source, snapshot_id"
        ).fetchall()


@pytest.mark.parametrize("seed", range(4))
def test_a_record_worked_out_from_the_last_list_equals_a_full_comparison(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One store keeps its memory and works on the difference; the other reopens for every record, so it reads
    # what is present from its file and compares every snapshot. Both must write and count the same.
    rng = random.Random(seed)
    differences = []
    followed_by = Listed.followed_by

    def counted(listed: Listed, observation: Observation) -> object:
        differences.append(change := followed_by(listed, observation))
        return change

    monkeypatch.setattr(Listed, "followed_by", counted)
    listed = [snapshot(target, START - timedelta(days=day)) for target in range(40) for day in range(5)]
    now = START
    shared = kept_in_place = 0
    with History.open(tmp_path / "kept.db", retention=RETENTION) as kept:
        for step in range(150):
            now += timedelta(minutes=10)
            listed = changed(rng, listed, now)
            problems = ("store1 unreadable",) if rng.random() < 0.05 else ()
            shown = [s for s in listed if not problems or s.location != "store1"]
            observation = Observation(
                source="pbs", kind="pbs", observed_at=now, timezone="UTC", snapshots=tuple(shown), problems=problems
            )
            calls, memory = len(differences), kept._memory
            was_shared = "pbs" in memory.listed and memory.listed["pbs"].by_id is memory.present.get("pbs")
            shared_before = memory.present.get("pbs") if was_shared else None
            stats = kept.record(observation)
            if len(differences) > calls and differences[-1] is not None and shared_before is not None:
                # worked out from a list that shared its dict with `present`: that dict serves on, not a copy
                assert kept._memory.present["pbs"] is shared_before, f"seed {seed}, step {step}"
                kept_in_place += 1
            with History.open(tmp_path / "full.db", retention=RETENTION) as full:
                assert full.record(observation) == stats, f"seed {seed}, step {step}"
            assert stored_snapshots(tmp_path / "kept.db") == stored_snapshots(tmp_path / "full.db"), step
            shared += kept_list_is_the_listing(kept, observation, f"seed {seed}, step {step}")
    worked_out = sum(change is not None for change in differences)
    assert len(differences) / 2 < worked_out < len(differences)  # both ways taken, the difference mostly
    assert 0 < shared < len(differences)  # the kept list shares its dict with what is present, and does not
    assert kept_in_place


def kept_list_is_the_listing(store: History, observation: Observation, step: str) -> bool:
    """What the store keeps for the next record names the listed snapshots by id (one dict with `present`
    when the two hold the same ids: a copy of 600,000 entries would cost 15 MB). -> whether the dict is shared."""
    memory = store._memory
    kept = memory.listed.get(observation.source)
    if kept is None:
        return False
    assert kept.snapshots is observation.snapshots, step
    assert kept.by_id == {s.snapshot_id: s for s in observation.snapshots}, step
    present = memory.present[observation.source]
    assert (present is kept.by_id) == (len(present) == len(kept.by_id)), step
    return present is kept.by_id


def changed(rng: random.Random, listed: list[Snapshot], now: datetime) -> list[Snapshot]:
    """The next poll's list: mostly the same objects in the same order, with what a PBS does between polls."""
    listed = list(listed)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        action, at = rng.random(), rng.randrange(len(listed) + 1)
        if action < 0.35:  # a new backup, listed among its group's
            listed.insert(at, snapshot(rng.randrange(45), now - timedelta(minutes=rng.randrange(9))))
        elif action < 0.55 and listed:  # pruned, anywhere, the list's end included
            del listed[min(at, len(listed) - 1) if rng.random() < 0.7 else -1]
        elif action < 0.7 and listed:  # verified: a new object in the old one's place
            old = listed[min(at, len(listed) - 1)]
            target = int(old.target_key.split(":")[1])
            listed[min(at, len(listed) - 1)] = snapshot(target, old.taken_at, verified=Verification.OK)
        elif action < 0.78:  # a stretch of the list in another order
            stretch = listed[at : at + 6]
            rng.shuffle(stretch)
            listed[at : at + 6] = stretch
        elif action < 0.84 and listed:  # the same facts as new objects (a group read again)
            listed[at : at + 5] = [msgspec.structs.replace(s) for s in listed[at : at + 5]]
        elif action < 0.88:  # a snapshot listed twice, as one object or as two
            one = listed[min(at, len(listed) - 1)]
            listed.insert(at, one if rng.random() < 0.5 else msgspec.structs.replace(one))
        elif action < 0.92:  # a datastore more, or one emptied
            if rng.random() < 0.5:
                listed.append(msgspec.structs.replace(listed[0], location="store9", snapshot_id=f"store9/{now}"))
            else:
                listed = [s for s in listed if s.location != "store9"]
    if rng.random() < 0.3:  # duplicates dropped again, so the list can be worked out from the next time on
        listed = list({s.snapshot_id: s for s in listed}.values())
    return listed
