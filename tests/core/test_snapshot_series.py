"""`SnapshotSeries`: a group's snapshots in columns read back as the very `Snapshot`s they were made of."""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup_glance.model import NO_SIZE, Snapshot, SnapshotSeries, Verification

PREFIX = "main/ns/vm/101/"
START = datetime(2000, 1, 1, tzinfo=UTC)


def snapshot(at: datetime, **fields: object) -> Snapshot:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Snapshot("guest:101", "pbs", f"{PREFIX}{stamp}", at, location="main/ns", **fields)  # type: ignore[arg-type]


records = st.builds(
    dict,
    finished=st.booleans(),
    size_bytes=st.none() | st.integers(0, 2**60),
    verification=st.sampled_from(list(Verification)),
    verified_at=st.none() | st.integers(0, 2**33).map(lambda s: START + timedelta(seconds=s)),
    encrypted=st.none() | st.booleans(),
    protected=st.booleans(),
)


@given(st.lists(st.tuples(st.integers(0, 2**33), records), min_size=1, max_size=30, unique_by=lambda r: r[0]))
def test_reads_back_what_it_was_made_of(listed: list[tuple[int, dict[str, object]]]) -> None:
    snapshots = [snapshot(START + timedelta(seconds=at), **fields) for at, fields in sorted(listed, key=lambda r: r[0])]
    series = SnapshotSeries.of(snapshots, PREFIX)
    assert list(series) == snapshots
    assert list(reversed(series)) == snapshots[::-1]
    assert series[-1] == snapshots[-1] and series[1:3] == snapshots[1:3] and len(series) == len(snapshots)
    for index, made in enumerate(snapshots):
        assert series.position(int(made.taken_at.timestamp())) == index
        assert series.snapshot_id(index) == made.snapshot_id
    assert SnapshotSeries.of(snapshots, PREFIX) == series


def test_equal_by_columns_not_by_identity() -> None:
    day = [snapshot(START + timedelta(days=n), size_bytes=n) for n in range(3)]
    series = SnapshotSeries.of(day, PREFIX)
    assert series == SnapshotSeries.of(list(day), PREFIX)
    assert hash(series) == hash(SnapshotSeries.of(list(day), PREFIX))
    assert series != SnapshotSeries.of([*day[:2], snapshot(day[2].taken_at, size_bytes=9)], PREFIX)
    assert series != SnapshotSeries.of([*day[:2], snapshot(day[2].taken_at, size_bytes=2, protected=True)], PREFIX)
    assert series != SnapshotSeries.of(day[:2], PREFIX)
    assert series.position(int(START.timestamp()) + 1) is None


@pytest.mark.parametrize(
    "snapshots",
    [
        [snapshot(START + timedelta(days=1)), snapshot(START)],  # out of order
        [snapshot(START), snapshot(START)],  # a time twice
        [snapshot(START + timedelta(microseconds=5))],  # not a whole second: it would not read back
        [snapshot(START, size_bytes=NO_SIZE)],  # the one size a series cannot hold
        [snapshot(START, size_bytes=2**64)],
        [snapshot(START, size_bytes=-1)],
        [snapshot(START, verified_at=datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))],  # the no-verification mark
        [snapshot(START), Snapshot("guest:102", "pbs", f"{PREFIX}x", START + timedelta(days=1), location="main/ns")],
        [Snapshot("guest:101", "pbs", "other/1", START, places=("a", "b"))],
        [],
    ],
)
def test_refuses_what_it_could_not_read_back(snapshots: list[Snapshot]) -> None:
    with pytest.raises(ValueError):
        SnapshotSeries.of(snapshots, PREFIX)


def test_columns_of_one_length() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        SnapshotSeries("k", "s", "l", "p/", array("q", [1]), array("Q"), array("q", [1]), b"\0")
    with pytest.raises(IndexError):
        SnapshotSeries.of([snapshot(START)], PREFIX)[1]


# --- health's reading of them (`health._held`) --------------------------------------------------------------


def group_of(source: str, store: str, seconds: list[int], **fields: object) -> list[Snapshot]:
    prefix = f"{store}/ns/vm/101/"
    made = []
    for at in sorted(set(seconds)):
        taken = START + timedelta(seconds=at)
        made.append(
            Snapshot(
                "guest:101",
                source,
                prefix + taken.strftime("%Y-%m-%dT%H:%M:%SZ"),
                taken,
                location=f"{store}/ns",
                **fields,
            )  # type: ignore[arg-type]
        )
    return made


times = st.lists(st.integers(0, 400), min_size=1, max_size=12)


@given(
    st.lists(st.tuples(st.sampled_from(["pbs", "pbs2"]), st.sampled_from(["a", "b", "c"]), times), max_size=3),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 999), st.booleans()), max_size=8),
    st.integers(0, 400),
    st.integers(0, 400),
)
def test_held_reads_as_the_sorted_list_of_its_parts(
    groups: list[tuple[str, str, list[int]]], loose: list[tuple[int, int, bool]], low: int, span: int
) -> None:
    from operator import attrgetter

    from backup_glance.health import _held

    order = attrgetter("taken_at", "source", "snapshot_id")
    series, seen = [], set()
    for source, store, seconds in groups:
        if (source, store) not in seen:
            seen.add((source, store))
            snaps = group_of(source, store, seconds, size_bytes=7)
            series.append(SnapshotSeries.of(snaps, snaps[0].snapshot_id[:-20]))
    others = sorted(
        (
            Snapshot(
                "guest:101",
                "restic",
                f"r/{n}",
                START + timedelta(seconds=at, microseconds=micro),
                location="r",
                size_bytes=n,
                protected=protected,
            )
            for n, (at, micro, protected) in enumerate(loose)
        ),
        key=order,
    )
    held = _held.Held(series, others)
    expected = sorted([*(s for one in series for s in one), *others], key=order)
    assert list(held) == expected and len(held) == len(expected)
    assert list(reversed(held)) == expected[::-1]
    assert [held[i] for i in range(-len(expected), 0)] == expected
    assert list(held.micros()) == [_held.micros(s.taken_at) for s in expected]
    lo, hi = START + timedelta(seconds=low, microseconds=500), START + timedelta(seconds=low + span)
    assert list(_held.taken_between(held, lo, hi)) == [s for s in expected if lo <= s.taken_at < hi]
    assert _held.protected(held) == sum(s.protected for s in expected)
    assert _held.sources(held) == {s.source for s in expected}
    assert list(_held.sized_since(held, lo)) == [(s.taken_at, s.size_bytes) for s in expected if s.taken_at >= lo]
    assert _held.by_place(held) == _held.by_place(expected)
    if expected:
        newest = expected[-1]
        same = [s.size_bytes for s in expected[:-1] if (s.source, s.location) == (newest.source, newest.location)]
        assert _held.earlier_sizes(held, newest, 5) == same[::-1][:5]
    runs = sorted(START + timedelta(seconds=at) for at, _m, _p in loose)
    for finished in (held, *series):
        merged = _held.success_times(finished, runs)
        reference = sorted([s.taken_at for s in finished] + runs)
        assert list(merged) == reference and len(merged) == len(reference)
        assert all(merged[i] == reference[i] for i in range(-len(reference), len(reference)))
