"""What a source listed last time, so that its next record works on the difference, not on every snapshot.

The PBS source hands back the very same `Snapshot` objects, in the same order, for the groups it did not read
again: `listdiff` finds the few places a quiet poll of 120,000 snapshots differs in. Everything else a record
needs (the snapshots by id, the locations it covers, its scopes) is carried over and adjusted by those few.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

from .. import listdiff
from ..model import Observation, Snapshot

Scope = tuple[str, str, str]  # source, location, target_key
K = TypeVar("K")
MOSTLY_CHANGED = 4  # more than 1 in this many snapshots new or gone: a full comparison costs about the same


@dataclass(slots=True)
class Listed:
    """One source's snapshot list as last recorded: one snapshot source, no problems, no id listed twice."""

    snapshots: tuple[Snapshot, ...]
    by_id: dict[str, Snapshot]
    locations: Counter[str]
    scopes: Counter[Scope]
    generation: int = 0  # of the store's present snapshots for this source, right after the record

    @classmethod
    def of(cls, observation: Observation, by_id: dict[str, Snapshot]) -> Listed | None:
        """What to keep of a fully compared observation; None when the next one must be compared fully too."""
        snapshots = observation.snapshots
        if observation.problems or not snapshots or len(by_id) != len(snapshots):
            return None
        scopes = Counter(map(_scope, snapshots))
        if any(source != observation.source for source, _, _ in scopes):  # a few thousand, not every snapshot
            return None
        locations: Counter[str] = Counter()
        for (_, location, _), count in scopes.items():
            locations[location] += count
        return cls(snapshots, by_id, locations, scopes)

    def followed_by(self, observation: Observation) -> Change | None:
        """What changed in `observation` since this list, or None when only a full comparison can tell.

        That is when the observation has problems (it speaks only for what it lists), lists another snapshot
        source, an id twice, a location more or less (what it covers changed), or is mostly new."""
        snapshots = observation.snapshots
        if observation.problems or not snapshots or observation.source != self.snapshots[0].source:
            return None
        difference = listdiff.difference(self.snapshots, snapshots, most=len(snapshots) // MOSTLY_CHANGED)
        if difference is None:
            return None
        appeared, vanished = difference
        if any(s.source != observation.source for s in appeared):
            return None
        by_id = self.by_id.copy()
        for snapshot in vanished:
            by_id.pop(snapshot.snapshot_id, None)
        for snapshot in appeared:
            by_id[snapshot.snapshot_id] = snapshot
        locations = _adjusted(self.locations, (s.location for s in vanished), (s.location for s in appeared))
        if len(by_id) != len(snapshots) or locations.keys() != self.locations.keys():
            return None
        scopes = _adjusted(self.scopes, map(_scope, vanished), map(_scope, appeared))
        return Change(Listed(snapshots, by_id, locations, scopes), appeared, vanished)


@dataclass(frozen=True, slots=True)
class Change:
    """A list next to the one before it: the new `Listed`, and the objects that appeared in it or left it."""

    listed: Listed
    appeared: list[Snapshot]
    vanished: list[Snapshot]

    def gone(self, present: dict[str, Snapshot]) -> list[str]:
        """Ids present before and listed no more. The covered locations did not change, so the list before
        spoke for every one of them and left no other id present there."""
        by_id = self.listed.by_id
        return [s.snapshot_id for s in self.vanished if s.snapshot_id not in by_id and s.snapshot_id in present]


# In C: a first record of a big source makes one for each of its hundreds of thousands of snapshots.
_scope: Callable[[Snapshot], Scope] = attrgetter("source", "location", "target_key")


def _adjusted(counts: Counter[K], removed: Iterable[K], added: Iterable[K]) -> Counter[K]:
    adjusted = counts.copy()
    adjusted.subtract(removed)
    adjusted.update(added)
    return +adjusted  # drops what no snapshot counts any more
