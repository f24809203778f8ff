"""A target's snapshots as the evidence holds them, oldest first: a list of `Snapshot`s (the small sources), a
`SnapshotSeries` (one PBS group, nothing else), or a `Held`: series and snapshots of their own merged in order.

A big PBS holds 600,000 snapshots at 10,000 guests: judging them must not make a `Snapshot` of each, let alone
several. What judging asks of all of a target's snapshots (their times, how many, which are protected, where
they are) is answered here from the columns, for any of the three; it makes the few `Snapshot`s it shows.

The order is `gather`'s: by time, then source, then id.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate, pairwise
from operator import attrgetter
from typing import TypeAlias

from ..model import (
    NO_SIZE,
    PROTECTED,
    MadeOnAccess,
    SizeTrend,
    Snapshot,
    SnapshotSeries,
    instant_of_micros,
)
from ..model import epoch_micros as micros

OrderKey = tuple[int, str, str]  # (epoch microseconds, source, snapshot id)


def _key_of(part: SnapshotSeries | tuple[Snapshot, ...], index: int) -> OrderKey:
    if isinstance(part, SnapshotSeries):
        return (part.times[index] * 1_000_000, part.source, part.snapshot_id(index))
    snapshot = part[index]
    return (micros(snapshot.taken_at), snapshot.source, snapshot.snapshot_id)


class Held(MadeOnAccess[Snapshot]):
    """Series and snapshots of their own (sorted in `gather`'s order), read as one list in that order. Nothing
    made on access is kept."""

    __slots__ = ("_codes", "_micros", "_offsets", "others", "parts", "series")

    def __init__(self, series: Sequence[SnapshotSeries], others: Sequence[Snapshot] = ()) -> None:
        self.series = tuple(series)
        self.others = tuple(others)
        parts: list[SnapshotSeries | tuple[Snapshot, ...]] = [s for s in self.series if len(s)]
        if self.others:
            parts.append(self.others)
        parts.sort(key=lambda part: _key_of(part, 0))
        self.parts = tuple(parts)
        self._micros: array[int] | None = None
        # Parts one after another in time (history's pruned snapshots before a group's live ones): the list is
        # their concatenation. Otherwise a code per snapshot says where it is: part << 32 | index.
        self._codes: array[int] | None = None
        self._offsets = [0, *accumulate(map(len, self.parts))]
        if any(_key_of(a, len(a) - 1) >= _key_of(b, 0) for a, b in pairwise(parts)):
            keyed = sorted(
                (_key_of(part, index), number << 32 | index)
                for number, part in enumerate(parts)
                for index in range(len(part))
            )
            self._codes = array("Q", (code for _key, code in keyed))

    def __len__(self) -> int:
        return self._offsets[-1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Held):
            return NotImplemented
        return (
            len(self.series) == len(other.series)
            and all(a is b or a == b for a, b in zip(self.series, other.series, strict=True))
            and self.others == other.others
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Held({len(self.series)} series, {len(self.others)} others, {len(self)} snapshots)"

    def where(self, index: int) -> tuple[SnapshotSeries | tuple[Snapshot, ...], int]:
        """The part and the index in it of the `index`-th snapshot."""
        if self._codes is not None:
            code = self._codes[index]
            return self.parts[code >> 32], code & 0xFFFFFFFF
        number = bisect_left(self._offsets, index + 1) - 1
        return self.parts[number], index - self._offsets[number]

    def micros(self) -> array[int]:
        """Every snapshot's time in epoch microseconds, in order (made once)."""
        if self._micros is None:
            values = array("q")
            for index in range(len(self)):
                part, at = self.where(index)
                if isinstance(part, SnapshotSeries):
                    values.append(part.times[at] * 1_000_000)
                else:
                    values.append(micros(part[at].taken_at))
            self._micros = values
        return self._micros

    def _get(self, index: int) -> Snapshot:
        part, at = self.where(index)
        return part[at]


Snapshots: TypeAlias = list[Snapshot] | SnapshotSeries | Held


class Instants(MadeOnAccess[datetime]):
    """Sorted instants held in an array (epoch seconds or microseconds): made into datetimes when read, as
    `bisect` does a few times."""

    __slots__ = ("_scale", "_values")

    def __init__(self, values: array[int], scale: int) -> None:
        self._values, self._scale = values, scale

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Instants):
            return self._scale == other._scale and self._values == other._values
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def _get(self, index: int) -> datetime:
        value = self._values[index]
        return instant_of_micros(value * 1_000_000 if self._scale == 1 else value)


def success_times(finished: Snapshots, starts: list[datetime]) -> Sequence[datetime]:
    """The times of `finished` and the run `starts` (sorted), as one sorted sequence: the snapshots' own times
    where they are held in columns, with the few run starts beside them (not a merged copy)."""
    if isinstance(finished, list):
        return sorted([s.taken_at for s in finished] + starts)
    if isinstance(finished, SnapshotSeries):
        held = Instants(finished.times, 1)
        ordered = sorted(starts)
        return Beside(held, ordered, [bisect_left(held, at) for at in ordered]) if ordered else held
    return Instants(array("q", sorted([*finished.micros(), *map(micros, starts)])), 1_000_000)


class Beside(MadeOnAccess[datetime]):
    """Sorted instants and a few more (sorted), read as one sorted sequence without merging them: `at[k]` is
    where `more[k]` would go among `instants` (before equal ones)."""

    __slots__ = ("_at", "_instants", "_more")

    def __init__(self, instants: Instants, more: list[datetime], at: list[int]) -> None:
        self._instants, self._more, self._at = instants, more, at

    def __len__(self) -> int:
        return len(self._instants) + len(self._more)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Beside):
            return self._instants == other._instants and self._more == other._more
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def _get(self, index: int) -> datetime:
        # `more[k]` sits at merged position at[k] + k; the instants fill the positions in between.
        for k, at in enumerate(self._at):
            if index == at + k:
                return self._more[k]
            if index < at + k:
                return self._instants[index - k]
        return self._instants[index - len(self._more)]


def taken_between(snapshots: Snapshots, low: datetime, high: datetime) -> Snapshots:
    """The snapshots taken in [low, high)."""
    if not snapshots:
        return snapshots
    if isinstance(snapshots, list):
        return snapshots[bisect_left(snapshots, low, key=_taken) : bisect_left(snapshots, high, key=_taken)]
    if isinstance(snapshots, SnapshotSeries):
        low_s, high_s = -(-micros(low) // 1_000_000), -(-micros(high) // 1_000_000)
        return snapshots[bisect_left(snapshots.times, low_s) : bisect_left(snapshots.times, high_s)]
    values = snapshots.micros()
    return snapshots[bisect_left(values, micros(low)) : bisect_left(values, micros(high))]


def finished_and_not(snapshots: Snapshots) -> tuple[Snapshots, list[Snapshot]]:
    """(the finished ones, the others), each in order: the very value when all are finished (the usual case)."""
    if isinstance(snapshots, SnapshotSeries):
        if not snapshots.unfinished():
            return snapshots, []
    elif isinstance(snapshots, Held):
        if not any(map(SnapshotSeries.unfinished, snapshots.series)) and all(s.finished for s in snapshots.others):
            return snapshots, []
    elif all(s.finished for s in snapshots):
        return snapshots, []
    listed = list(snapshots)
    return [s for s in listed if s.finished], [s for s in listed if not s.finished]


def sources(snapshots: Snapshots) -> set[str]:
    if isinstance(snapshots, SnapshotSeries):
        return {snapshots.source}
    if isinstance(snapshots, Held):
        return {s.source for s in snapshots.series} | {s.source for s in snapshots.others}
    return {s.source for s in snapshots}


def protected(snapshots: Snapshots) -> int:
    """How many are protected."""
    if isinstance(snapshots, SnapshotSeries):
        return sum(1 for flags in snapshots.flags if flags & PROTECTED)
    if isinstance(snapshots, Held):
        return sum(map(protected, snapshots.series)) + sum(1 for s in snapshots.others if s.protected)
    return sum(1 for s in snapshots if s.protected)


def by_place(snapshots: Snapshots) -> list[tuple[str, str, int, Snapshot]]:
    """(source, place, how many, the newest) for each place the snapshots are at, in the order first seen. A
    snapshot stored in several places (`places`) is at each."""
    if isinstance(snapshots, SnapshotSeries):
        return [(snapshots.source, snapshots.location, len(snapshots), snapshots[-1])] if len(snapshots) else []
    if isinstance(snapshots, list):
        return _by_place_of_list(snapshots)
    found: dict[tuple[str, str], tuple[OrderKey, OrderKey, int, Snapshot | SnapshotSeries]] = {}

    def note(
        at: tuple[str, str], first: OrderKey, last: OrderKey, count: int, newest: Snapshot | SnapshotSeries
    ) -> None:
        before = found.get(at)
        if before is None:
            found[at] = (first, last, count, newest)
        else:
            found[at] = (
                min(before[0], first),
                max(before[1], last),
                before[2] + count,
                newest if last > before[1] else before[3],
            )

    for series in snapshots.series:
        if len(series):
            end = len(series) - 1
            note((series.source, series.location), _key_of(series, 0), _key_of(series, end), len(series), series)
    for snap in snapshots.others:
        key = (micros(snap.taken_at), snap.source, snap.snapshot_id)
        for place in snap.places or (snap.location,):
            note((snap.source, place), key, key, 1, snap)
    ordered = sorted(found.items(), key=lambda item: item[1][0])
    return [
        (source, place, count, newest[-1] if isinstance(newest, SnapshotSeries) else newest)
        for (source, place), (_first, _last, count, newest) in ordered
    ]


def _by_place_of_list(snapshots: list[Snapshot]) -> list[tuple[str, str, int, Snapshot]]:
    newest: dict[tuple[str, str], Snapshot] = {}
    counts: dict[tuple[str, str], int] = {}
    for snap in snapshots:
        for place in snap.places or (snap.location,):
            at = (snap.source, place)
            newest[at] = snap
            counts[at] = counts.get(at, 0) + 1
    return [(source, place, counts[(source, place)], snap) for (source, place), snap in newest.items()]


def sized_since(snapshots: Snapshots, since: datetime) -> SizeTrend:
    """(time, size) of the snapshots taken at or after `since` that have a size, in order."""
    if isinstance(snapshots, SnapshotSeries):
        ceiling = -(-micros(since) // 1_000_000)
        start = bisect_left(snapshots.times, ceiling)
        kept = [i for i in range(start, len(snapshots)) if snapshots.sizes[i] != NO_SIZE]
        return SizeTrend(
            array("q", (snapshots.times[i] * 1_000_000 for i in kept)), array("q", (snapshots.sizes[i] for i in kept))
        )
    start = len(snapshots) - len(taken_between(snapshots, since, datetime.max.replace(tzinfo=UTC)))
    return SizeTrend.of((s.taken_at, s.size_bytes) for s in snapshots[start:] if s.size_bytes is not None)


def earlier_sizes(snapshots: Snapshots, newest: Snapshot, limit: int) -> list[int]:
    """The sizes of the snapshots before the newest at its source and location, newest first, at most `limit`."""
    found: list[int] = []
    if isinstance(snapshots, SnapshotSeries):
        for index in range(len(snapshots) - 2, -1, -1):
            size = snapshots.size(index)
            if size is not None:
                found.append(size)
                if len(found) == limit:
                    break
        return found
    for index in range(len(snapshots) - 2, -1, -1):
        part, at = snapshots.where(index) if isinstance(snapshots, Held) else (snapshots, index)
        if isinstance(part, SnapshotSeries):
            if part.source != newest.source or part.location != newest.location:
                continue
            size = part.size(at)
        else:
            snap = part[at]
            if snap.source != newest.source or snap.location != newest.location:
                continue
            size = snap.size_bytes
        if size is not None:
            found.append(size)
            if len(found) == limit:
                break
    return found


_taken = attrgetter("taken_at")
