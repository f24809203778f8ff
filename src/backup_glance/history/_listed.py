"""What a source listed last time, so that its next record works on the difference, not on every snapshot.

For the sources that list their snapshots one by one (PVE storage, Databasement, Backrest, restic; a PBS lists
series, see `_series`): they hand back the very same `Snapshot` objects, in the same order, for what they did not
read again, and `listdiff` finds the few places a quiet poll differs in. Everything else a record needs (the
snapshots by id, the locations it covers, its scopes) is carried over and adjusted by those few.
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
        # The ids the new list names, told from the few that changed: the list before named each of its ids once,
        # so the new one does when no id appeared twice and none appeared that stays listed.
        left = {s.snapshot_id for s in vanished}
        relisted = {s.snapshot_id for s in appeared}
        by_id = self.by_id
        if len(relisted) != len(appeared) or any(i in by_id and i not in left for i in relisted):
            return None
        locations = _adjusted(self.locations, (s.location for s in vanished), (s.location for s in appeared))
        if locations.keys() != self.locations.keys():
            return None
        scopes = _adjusted(self.scopes, map(_scope, vanished), map(_scope, appeared))
        return Change(self, snapshots, locations, scopes, appeared, vanished, relisted)


@dataclass(frozen=True, slots=True)
class Change:
    """A list next to the one before it: the objects that appeared in it or left it, and what the new `Listed`
    will hold (made by `listed`, once the store's present snapshots were brought up to date)."""

    before: Listed
    snapshots: tuple[Snapshot, ...]
    locations: Counter[str]
    scopes: Counter[Scope]
    appeared: list[Snapshot]
    vanished: list[Snapshot]
    relisted: set[str]  # the ids of `appeared`

    def gone(self, present: dict[str, Snapshot]) -> list[str]:
        """Ids present before and listed no more. The covered locations did not change, so the list before
        spoke for every one of them and left no other id present there."""
        relisted = self.relisted
        return [s.snapshot_id for s in self.vanished if s.snapshot_id not in relisted and s.snapshot_id in present]

    def listed(self, present: dict[str, Snapshot]) -> Listed:
        """The new list, after the record applied this change to `present`. When the list before shared its dict
        with `present` (`_Memory.share_present`), that dict now holds the new list's ids: it serves again, where a
        copy cost a quiet poll 15 MB at 10,000 guests. The appeared objects go in either way, as into a copy: where
        the record found one equal to the snapshot present, that one is let go for the listed one."""
        by_id = self.before.by_id
        if by_id is not present:
            by_id = by_id.copy()
            for snapshot in self.vanished:
                by_id.pop(snapshot.snapshot_id, None)
        for snapshot in self.appeared:
            by_id[snapshot.snapshot_id] = snapshot
        return Listed(self.snapshots, by_id, self.locations, self.scopes)


# In C: a first record of a big source makes one for each of its hundreds of thousands of snapshots.
_scope: Callable[[Snapshot], Scope] = attrgetter("source", "location", "target_key")


def _adjusted(counts: Counter[K], removed: Iterable[K], added: Iterable[K]) -> Counter[K]:
    adjusted = counts.copy()
    adjusted.subtract(removed)
    adjusted.update(added)
    return +adjusted  # drops what no snapshot counts any more
