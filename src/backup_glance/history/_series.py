"""History's side of `SnapshotSeries`: rows made from columns, and what changed between two series of one group.

A big PBS lists its snapshots as series, one per group; history keeps the series it recorded last (not a
`Snapshot` and an id per snapshot: 600,000 at 10,000 guests) and compares a group listed again with that one,
position by position, on the fields a row stores (encryption and protection are not stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import STORED_FLAGS, Snapshot, SnapshotSeries
from ._rows import VERIFICATION_TEXT

Positions = Sequence[int]  # indexes into one series


@dataclass
class SeriesChange:
    """What one record does to a source's series: positions to write (new, or a stored field changed), and the
    snapshots present before and listed no more where the record speaks for them."""

    added: list[tuple[SnapshotSeries, Positions]] = field(default_factory=list)
    updated: list[tuple[SnapshotSeries, Positions]] = field(default_factory=list)
    gone: list[Snapshot] = field(default_factory=list)  # made from the series they were in: a few a day

    @property
    def added_count(self) -> int:
        return sum(len(positions) for _series, positions in self.added)

    @property
    def updated_count(self) -> int:
        return sum(len(positions) for _series, positions in self.updated)


def series_rows(written: Iterable[tuple[SnapshotSeries, Positions]], seen_at: int) -> Iterator[tuple[object, ...]]:
    """The rows (`SNAPSHOT_COLUMNS`, then first and last sighting) that store these positions, as `snapshot_row`
    makes them from the `Snapshot`s they stand for."""
    for series, positions in written:
        source, target_key, location = series.source, series.target_key, series.location
        for index in positions:
            yield (
                source,
                series.snapshot_id(index),
                target_key,
                location,
                series.times[index],
                int(series.finished(index)),
                series.size(index),
                VERIFICATION_TEXT[series.verification(index)],
                series.verified_at(index),
                seen_at,
                seen_at,
            )


def stored_as(series: SnapshotSeries, index: int, row: tuple[Any, ...]) -> bool:
    """Whether `row` (snapshot_id, then SNAPSHOT_FIELDS) stores what the series says at `index`."""
    return bool(
        row[5] == series.size(index)
        and row[6] == VERIFICATION_TEXT[series.verification(index)]
        and row[4] == series.finished(index)
        and row[7] == series.verified_at(index)
        and row[3] == series.times[index]
        and row[1] == series.target_key
        and row[2] == series.location
    )


def compared(old: SnapshotSeries, new: SnapshotSeries) -> tuple[list[int], list[int], list[int]]:
    """(positions of `new` not in `old`, positions of `new` whose stored fields changed, positions of `old` not in
    `new`): two series of one group (one id prefix), matched by backup time."""
    common_changed = old.target_key != new.target_key or old.location != new.location
    if old.times == new.times:
        if common_changed:
            return [], list(range(len(new))), []
        return [], _differing(old, new, range(len(new)), range(len(new))), []
    added: list[int] = []
    gone: list[int] = []
    kept_old: list[int] = []
    kept_new: list[int] = []
    i = j = 0
    old_times, new_times = old.times, new.times
    while i < len(old_times) and j < len(new_times):
        if old_times[i] == new_times[j]:
            kept_old.append(i)
            kept_new.append(j)
            i, j = i + 1, j + 1
        elif old_times[i] < new_times[j]:
            gone.append(i)
            i += 1
        else:
            added.append(j)
            j += 1
    gone.extend(range(i, len(old_times)))
    added.extend(range(j, len(new_times)))
    updated = kept_new if common_changed else _differing(old, new, kept_old, kept_new)
    return added, updated, gone


def _differing(old: SnapshotSeries, new: SnapshotSeries, at_old: Sequence[int], at_new: Sequence[int]) -> list[int]:
    """Of the matched positions, those of `new` whose size, verification, finish or verification time changed."""
    old_sizes, new_sizes, old_verified, new_verified = old.sizes, new.sizes, old.verified, new.verified
    old_flags, new_flags = old.flags, new.flags
    return [
        j
        for i, j in zip(at_old, at_new, strict=True)
        if old_sizes[i] != new_sizes[j]
        or old_verified[i] != new_verified[j]
        or (old_flags[i] ^ new_flags[j]) & STORED_FLAGS
    ]
