"""History records a source's series as it records the same snapshots one by one: the same rows, the same view.

A random sequence of one PBS's polls (backups, prunes, verifications, groups that vanish, a store that could not
be read, restarts, deferred writes) is recorded twice, once as series and once as the very snapshots the series
stand for, into two files; after every step both files hold the same rows and both stores give the same view.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_glance.history import History
from backup_glance.model import Observation, Snapshot, SnapshotSeries, Verification

START = datetime(2026, 3, 1, tzinfo=UTC)
RETENTION = timedelta(days=90)
WINDOW = timedelta(days=15)
ROWS = (
    "SELECT source, snapshot_id, target_key, location, taken_at, finished, size_bytes, verification, verified_at, "
    "first_seen_at, last_seen_at, gone_at FROM snapshots ORDER BY source, snapshot_id"
)


def prefix_of(group: int) -> str:
    return f"store{group % 3}/ns/ct/{group}/"


def snapshot(group: int, at: datetime, **fields: object) -> Snapshot:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    location = f"store{group % 3}/ns"
    return Snapshot(f"guest:{group}", "pbs", prefix_of(group) + stamp, at, location=location, **fields)  # type: ignore[arg-type]


def polls(rng: random.Random, steps: int) -> Iterator[tuple[datetime, dict[int, list[Snapshot]], bool]]:
    """(when, the groups' snapshots oldest first, whether a store could not be read)."""
    groups: dict[int, list[Snapshot]] = {}
    now = START
    for _ in range(steps):
        now += timedelta(minutes=rng.choice([5, 60, 600, 1440]))
        action = rng.random()
        group = rng.randrange(10)
        snaps = groups.setdefault(group, [])
        if action < 0.4:  # a backup
            at = (now - timedelta(minutes=rng.randrange(30))).replace(microsecond=0)
            if not snaps or at > snaps[-1].taken_at:
                finished = rng.random() < 0.9
                snaps.append(
                    snapshot(group, at, finished=finished, size_bytes=rng.randrange(10**9) if finished else None)
                )
        elif action < 0.55 and snaps:  # prune at the source
            del snaps[0 if rng.random() < 0.7 else rng.randrange(len(snaps))]
        elif action < 0.7 and snaps:  # a verification
            at = rng.randrange(len(snaps))
            state = rng.choice([Verification.OK, Verification.FAILED])
            snaps[at] = snapshot(
                group, snaps[at].taken_at, finished=True, size_bytes=snaps[at].size_bytes, verification=state,
                verified_at=now.replace(microsecond=0),
            )  # fmt: skip
        elif action < 0.75:  # the group is gone
            groups.pop(group, None)
        if not snaps:
            groups.pop(group, None)
        yield now, {g: list(s) for g, s in groups.items()}, rng.random() < 0.1


def as_series(groups: dict[int, list[Snapshot]], kept: dict[int, SnapshotSeries]) -> tuple[SnapshotSeries, ...]:
    """The groups as series; a group that did not change is the very series of the last poll, as PBS gives it."""
    made = []
    for group, snaps in sorted(groups.items()):
        series = SnapshotSeries.of(snaps, prefix_of(group))
        if kept.get(group) == series:
            series = kept[group]
        kept[group] = series
        made.append(series)
    return tuple(made)


def rows(path: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(ROWS).fetchall()


def view_of(history: History, now: datetime) -> list[Snapshot]:
    view = history.view(since=now - WINDOW, until=now + timedelta(days=1))
    return sorted(view.all_snapshots(), key=lambda s: (s.taken_at, s.snapshot_id))


@pytest.mark.parametrize("seed", range(6))
def test_series_are_recorded_as_their_snapshots_are(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    paths = (tmp_path / "series.sqlite3", tmp_path / "snapshots.sqlite3")
    stores = [History.open(path, retention=RETENTION) for path in paths]
    kept: dict[int, SnapshotSeries] = {}
    for step, (now, groups, partial) in enumerate(polls(rng, 150)):
        series = as_series(groups, kept)
        if partial:  # a store could not be read: the poll lists (and speaks for) the rest only
            series = tuple(s for s in series if not s.location.startswith("store0"))
        problems = ("datastore 'store0': unreadable",) if partial else ()
        loose = tuple(s for one in series for s in one)
        observations = (
            Observation("pbs", "pbs", now, "UTC", series=series, problems=problems),
            Observation("pbs", "pbs", now, "UTC", snapshots=loose, problems=problems),
        )
        defer = rng.random() < 0.2
        stats = [store.record(obs, defer=defer) for store, obs in zip(stores, observations, strict=True)]
        assert (stats[0].snapshots_added, stats[0].snapshots_gone) == (
            stats[1].snapshots_added,
            stats[1].snapshots_gone,
        ), f"step {step}"
        assert view_of(stores[0], now) == view_of(stores[1], now), f"step {step}"
        if rng.random() < 0.3:
            for store in stores:
                store.flush()
            assert rows(paths[0]) == rows(paths[1]), f"step {step}"
        if rng.random() < 0.1:  # a restart: memory starts over from the file
            for store in stores:
                store.close()
            stores = [History.open(path, retention=RETENTION) for path in paths]
    for store in stores:
        store.close()
    assert rows(paths[0]) == rows(paths[1])
    assert any(row[-1] is not None for row in rows(paths[0]))  # snapshots went, and were marked gone


def test_a_quiet_poll_of_the_same_series_writes_nothing(tmp_path: Path) -> None:
    snaps = [snapshot(1, START + timedelta(days=n), size_bytes=n) for n in range(5)]
    series = (SnapshotSeries.of(snaps, prefix_of(1)),)
    with History.open(tmp_path / "h.sqlite3", retention=RETENTION) as history:
        first = history.record(Observation("pbs", "pbs", START + timedelta(days=5), "UTC", series=series))
        again = history.record(Observation("pbs", "pbs", START + timedelta(days=5, minutes=5), "UTC", series=series))
        equal = (SnapshotSeries.of(list(snaps), prefix_of(1)),)
        later = history.record(Observation("pbs", "pbs", START + timedelta(days=5, minutes=9), "UTC", series=equal))
        view = history.view(since=START, until=START + timedelta(days=6))
    assert first.snapshots_added == 5
    assert (again.snapshots_added, again.snapshots_updated, again.snapshots_gone) == (0, 0, 0)
    assert (later.snapshots_added, later.snapshots_updated, later.snapshots_gone) == (0, 0, 0)
    assert view.series == equal and not view.snapshots  # present: in the series, not one by one


def test_a_restart_compares_the_series_with_the_stored_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    snaps = [snapshot(1, START + timedelta(days=n), size_bytes=n) for n in range(4)]
    with History.open(path, retention=RETENTION) as history:
        history.record(
            Observation(
                "pbs", "pbs", START + timedelta(days=4), "UTC", series=(SnapshotSeries.of(snaps, prefix_of(1)),)
            )
        )
    verified = snapshot(1, snaps[2].taken_at, size_bytes=2, verification=Verification.OK, verified_at=START)
    later = [*snaps[1:2], verified, snaps[3], snapshot(1, START + timedelta(days=4), size_bytes=4)]
    with History.open(path, retention=RETENTION) as history:
        stats = history.record(
            Observation(
                "pbs", "pbs", START + timedelta(days=5), "UTC", series=(SnapshotSeries.of(later, prefix_of(1)),)
            )
        )
        view = history.view(since=START - timedelta(days=1), until=START + timedelta(days=6))
    assert (stats.snapshots_added, stats.snapshots_updated, stats.snapshots_gone) == (1, 1, 1)
    assert [s.snapshot_id for s in view.snapshots] == [snaps[0].snapshot_id]  # gone: history's own now
    assert sorted(s.snapshot_id for s in view.all_snapshots()) == sorted(s.snapshot_id for s in [snaps[0], *later])
