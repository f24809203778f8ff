"""Merge what every source saw (last known good) with what history remembers, indexed for judging.

Pure: no clock, no I/O. Duplicates across the live observation and history collapse on their identity
(source + snapshot id, source + run id + target).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from itertools import groupby
from operator import attrgetter
from typing import cast

from .. import listdiff
from ..model import (
    Datastore,
    HistoryView,
    Job,
    JobKind,
    JobRun,
    Observation,
    RemoteCopy,
    Snapshot,
    SnapshotSeries,
    SourceState,
    Target,
    id_prefix_of,
)
from ._held import Held, Snapshots

# Lists are in time order; two items of one time by source and id (each is in a list once): the order follows from
# the items alone, not from which source listed them first, so a list made again from its items reads the same.
_snapshot_order = attrgetter("taken_at", "source", "snapshot_id")
_run_order = attrgetter("started_at", "source", "run_id")
_target_key = attrgetter("target_key")
_snapshot_id = attrgetter("snapshot_id")
_source = attrgetter("source")
_NONE: frozenset[str] = frozenset()
MOSTLY_CHANGED = 4  # more than 1 in this many snapshots new or gone: finding them costs about a full count


@dataclass
class Evidence:
    states: dict[str, SourceState]
    targets: dict[str, list[Target]] = field(default_factory=lambda: defaultdict(list))
    # Per target key, oldest first: a list, or (where a big source lists it) a series or a `Held` (see `_held`).
    snapshots: dict[str, Snapshots] = field(default_factory=lambda: defaultdict(list))
    runs_by_target: dict[str, list[JobRun]] = field(default_factory=lambda: defaultdict(list))
    runs_by_job: dict[str, list[JobRun]] = field(default_factory=lambda: defaultdict(list))
    jobs: list[Job] = field(default_factory=list)
    backup_jobs_by_target: dict[str, list[Job]] = field(default_factory=lambda: defaultdict(list))
    uncovered: set[str] = field(default_factory=set)
    # Target key -> (source, since when, as of when) for each source that could not read its snapshots in its last
    # poll: both instants by the source's own clock.
    unread: dict[str, list[tuple[str, datetime | None, datetime]]] = field(default_factory=lambda: defaultdict(list))
    datastores: list[Datastore] = field(default_factory=list)
    # Sources that report guests and their backup jobs (PVE): only they can say "in no job".
    coverage_sources: set[str] = field(default_factory=set)
    # Snapshots that exist at the source right now (history also holds pruned ones): their ids by source, and how
    # many of each target's snapshots (in `snapshots`) they are.
    live_ids: dict[str, set[str]] = field(default_factory=dict)
    shared_ids: set[str] = field(default_factory=set)  # sources whose `live_ids` set belongs to a `LiveIds`
    live_counts: dict[str, int] = field(default_factory=dict)
    # The live snapshots per target key: what an incremental evaluation compares to tell which targets changed.
    live_by_key: dict[str, Snapshots] = field(default_factory=lambda: defaultdict(list))
    # The live series by (source, id prefix), and per target key (in the order listed).
    live_series: dict[tuple[str, str], SnapshotSeries] = field(default_factory=dict)
    series_by_key: dict[str, list[SnapshotSeries]] = field(default_factory=lambda: defaultdict(list))
    # Of the keys with series: the live snapshots of their own (what `live_by_key` holds of the others).
    loose_live: dict[str, list[Snapshot]] = field(default_factory=dict)
    recorded_since: datetime | None = None  # history has watched since then
    # Protection facts: restore tests and copies seen through sync jobs, per target; jobs with a keep-* policy.
    restore_jobs_by_target: dict[str, list[Job]] = field(default_factory=lambda: defaultdict(list))
    remote_copies: dict[str, list[RemoteCopy]] = field(default_factory=lambda: defaultdict(list))
    prune_jobs: list[Job] = field(default_factory=list)

    @cached_property
    def known_keys(self) -> frozenset[str]:
        """Every target key any source or history mentions."""
        keys = set(self.targets) | set(self.snapshots) | set(self.runs_by_target)
        return frozenset(keys | set(self.backup_jobs_by_target) | self.uncovered)

    def live(self, keys: Iterable[str], snapshots: Snapshots) -> Snapshots:
        """Those of `snapshots` (of the targets `keys`, from `snapshots`) that exist at the source right now, in
        their order. Most targets have nothing pruned in history: then that is all of them, known from the counts
        without looking at each snapshot."""
        if all(self.live_counts.get(key, 0) == len(self.snapshots.get(key, ())) for key in keys):
            return snapshots
        if isinstance(snapshots, SnapshotSeries):
            return snapshots if self.live_series.get((snapshots.source, snapshots.id_prefix)) is snapshots else []
        if isinstance(snapshots, Held):
            series = [s for s in snapshots.series if self.live_series.get((s.source, s.id_prefix)) is s]
            others = [s for s in snapshots.others if self.is_live(s)]
            return series[0] if len(series) == 1 and not others else Held(series, others)
        return [s for s in snapshots if self.is_live(s)]

    def is_live(self, snapshot: Snapshot) -> bool:
        """Whether the snapshot exists at its source right now (as a live listing says)."""
        return snapshot.snapshot_id in self.live_ids.get(snapshot.source, _NONE) or in_series(
            self.live_series, snapshot
        )

    @cached_property
    def blind_sources(self) -> frozenset[str]:
        """Sources that say they cannot see their remotes (a PBS token without Remote.Audit)."""
        return frozenset(
            name
            for name, state in self.states.items()
            if state.observation is not None and not state.observation.remotes_visible
        )

    def observation(self, source: str) -> Observation | None:
        state = self.states.get(source)
        return state.observation if state else None

    def observation_targets(self, source: str) -> tuple[Target, ...]:
        observation = self.observation(source)
        return observation.targets if observation else ()


def gather(
    states: list[SourceState] | tuple[SourceState, ...], history: HistoryView, live_ids: LiveIds | None = None
) -> Evidence:
    """`live_ids` (the same one every time) carries each source's live snapshot ids to the next gather."""
    evidence = Evidence(states={state.name: state for state in states}, recorded_since=history.recorded_since)
    seen_runs: set[tuple[str, str, str | None]] = set()
    # Live observations first: their copies are the freshest (a running run may have finished since).
    for state in states:
        observation = state.observation
        if observation is None:
            continue
        add_context(evidence, observation)
        _add_live(evidence, observation.snapshots, live_ids.of(state.name, observation.snapshots) if live_ids else None)
        _add_series(evidence, observation.series)
        _add_runs(evidence, observation.runs, seen_runs)
        _add_runs(evidence, last_runs(observation), seen_runs)
    for key, snapshots in evidence.snapshots.items():
        evidence.live_counts[key] = len(snapshots)
    for key, series in evidence.series_by_key.items():
        evidence.live_counts[key] = evidence.live_counts.get(key, 0) + sum(map(len, series))
    # Every snapshot seen so far is live; one both live and in history (or live twice) is in the lists once.
    by_key, from_history = _lists(evidence.snapshots), dict[str, set[str]]()
    for snapshot in history_snapshots(history, evidence.live_series):
        source, snapshot_id = snapshot.source, snapshot.snapshot_id
        if evidence.is_live(snapshot):
            continue
        seen = from_history.setdefault(source, set())
        if snapshot_id not in seen:
            seen.add(snapshot_id)
            by_key[snapshot.target_key].append(snapshot)
    _add_runs(evidence, history.runs, seen_runs)
    live_by_key = evidence.live_by_key
    for key, snapshots in by_key.items():
        snapshots.sort(key=_snapshot_order)
        if live_by_key.get(key) == snapshots:  # nothing but live ones, listed in time order: one list for both
            live_by_key[key] = snapshots
    for key, series in evidence.series_by_key.items():
        loose = _lists(evidence.live_by_key).get(key, [])
        evidence.loose_live[key] = loose
        evidence.snapshots[key], evidence.live_by_key[key] = held(
            series, _lists(evidence.snapshots).get(key, []), loose
        )
    for runs in (*evidence.runs_by_target.values(), *evidence.runs_by_job.values()):
        runs.sort(key=_run_order)
    return evidence


def held(
    series: list[SnapshotSeries], snapshots: Snapshots, live: Snapshots
) -> tuple[SnapshotSeries | Held, SnapshotSeries | Held]:
    """A key's (snapshots, live ones) where it has `series` besides the snapshots (sorted) and live ones (of
    them) of its own."""
    if not snapshots and len(series) == 1:
        return series[0], series[0]
    everything = Held(series, snapshots)
    if len(live) == len(snapshots):
        return everything, everything
    return everything, Held(series, live)


def history_snapshots(history: HistoryView, live: dict[tuple[str, str], SnapshotSeries]) -> Iterator[Snapshot]:
    """History's snapshots: its own, then `series_snapshots`."""
    yield from history.snapshots
    yield from series_snapshots(history, live)


def series_snapshots(history: HistoryView, live: dict[tuple[str, str], SnapshotSeries]) -> Iterator[Snapshot]:
    """The snapshots of history's series (taken in its span) that are not the very ones a live listing holds
    (the usual case: history recorded that listing)."""
    low, high = history.series_span
    for series in history.series:
        if live.get((series.source, series.id_prefix)) is series:
            continue
        yield from series[bisect_left(series.times, low) : bisect_left(series.times, high)]


def in_series(live: dict[tuple[str, str], SnapshotSeries], snapshot: Snapshot) -> bool:
    """Whether a live series holds `snapshot` (by its id: the series' prefix and its time)."""
    series = live.get((snapshot.source, id_prefix_of(snapshot.snapshot_id)))
    if series is None:
        return False
    index = series.position(int(snapshot.taken_at.timestamp()))
    return index is not None and series.snapshot_id(index) == snapshot.snapshot_id


def _add_series(evidence: Evidence, series: tuple[SnapshotSeries, ...]) -> None:
    """One observation's series into the evidence; one another observation listed already (a source named in
    two states) counts as its snapshots, each of them once."""
    live = evidence.live_series
    for one in series:
        where = (one.source, one.id_prefix)
        if where in live:
            _add_live(evidence, tuple(s for s in one if not in_series(live, s)))
        else:
            live[where] = one
            evidence.series_by_key[one.target_key].append(one)


def last_runs(observation: Observation) -> list[JobRun]:
    """The last run each job of `observation` reports (merged after its task list: that is the fuller account)."""
    return [job.last_run for job in observation.jobs if job.last_run is not None]


def add_context(evidence: Evidence, observation: Observation) -> None:
    """Everything of one observation but its snapshots and runs: targets, jobs, copies, coverage, datastores."""
    for target in observation.targets:
        evidence.targets[target.key].append(target)
    for job in observation.jobs:
        evidence.jobs.append(job)
        if job.kind is JobKind.BACKUP:
            for key in job.target_keys:
                evidence.backup_jobs_by_target[key].append(job)
        elif job.kind is JobKind.RESTORE_TEST:
            for key in job.target_keys:
                evidence.restore_jobs_by_target[key].append(job)
        if job.keep:
            evidence.prune_jobs.append(job)
    for copy in observation.remote_copies:
        evidence.remote_copies[copy.target_key].append(copy)
    if observation.kind == "pve":
        evidence.coverage_sources.add(observation.source)
    evidence.uncovered.update(observation.uncovered_target_keys)
    for key, since in observation.unread:
        evidence.unread[key].append((observation.source, since, observation.observed_at))
    evidence.datastores.extend(observation.datastores)


def _add_live(evidence: Evidence, snapshots: tuple[Snapshot, ...], unique: tuple[str, set[str]] | None = None) -> None:
    """One observation's snapshots into the evidence. Sources list a target's snapshots together and name each
    once: then this takes one step per target, not per snapshot (120,000 of them for a big PBS). `unique` is
    what `LiveIds.of` found for them, when it was asked."""
    if unique is None:
        unique = _unique_ids(snapshots)
    if unique is not None and unique[0] not in evidence.live_ids:
        evidence.live_ids[unique[0]] = unique[1]
        evidence.shared_ids.add(unique[0])
        for key, group in groupby(snapshots, _target_key):
            taken = list(group)
            _lists(evidence.snapshots)[key] += taken
            _lists(evidence.live_by_key)[key] += taken
        return
    for snapshot in snapshots:  # mixed sources or a snapshot named twice: the first copy counts
        if snapshot.source in evidence.shared_ids:  # a set LiveIds keeps for the next gather: added to, copied
            evidence.shared_ids.discard(snapshot.source)
            evidence.live_ids[snapshot.source] = set(evidence.live_ids[snapshot.source])
        live = evidence.live_ids.setdefault(snapshot.source, set())
        key = snapshot.target_key
        if snapshot.snapshot_id not in live:
            live.add(snapshot.snapshot_id)
            _lists(evidence.snapshots)[key].append(snapshot)
        _lists(evidence.live_by_key)[key].append(snapshot)


def _lists(by_key: dict[str, Snapshots]) -> defaultdict[str, list[Snapshot]]:
    """Evidence's snapshots by key while it is gathered: lists (series join them at the end)."""
    return cast("defaultdict[str, list[Snapshot]]", by_key)


def _unique_ids(snapshots: Sequence[Snapshot]) -> tuple[str, set[str]] | None:
    """(the one source of all `snapshots`, their ids) when there is one source and no id is listed twice."""
    sources = set(map(_source, snapshots))
    ids = set(map(_snapshot_id, snapshots))
    return (sources.pop(), ids) if len(sources) == 1 and len(ids) == len(snapshots) else None


class LiveIds:
    """Each observation's live snapshot ids (of the snapshots it lists one by one), kept from one gather to the
    next.

    Hashing tens of thousands of ids into a set costs more than all the rest of what a quiet poll's snapshots
    need here, yet such a poll changes a few of them: the set of the last gather is adjusted by those (see
    `listdiff`) instead. The set handed out is this object's own and changes at the next call."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[Snapshot, ...], str, set[str]]] = {}  # by observation (state name)
        # by observation: the snapshots that appeared in its listing and left it at the last call, or None when
        # the ids were found afresh
        self.changes: dict[str, tuple[list[Snapshot], list[Snapshot]] | None] = {}

    def of(self, name: str, snapshots: tuple[Snapshot, ...]) -> tuple[str, set[str]] | None:
        """What `_unique_ids` says of `snapshots`, the listing of the observation `name`."""
        last = self._last.pop(name, None)
        found, change = self._adjusted(last, snapshots) if last is not None else (None, None)
        if found is None:
            found = _unique_ids(snapshots)
        if found is not None:
            self._last[name] = (snapshots, *found)
        self.changes[name] = change
        return found

    @staticmethod
    def _adjusted(
        last: tuple[tuple[Snapshot, ...], str, set[str]], snapshots: tuple[Snapshot, ...]
    ) -> tuple[tuple[str, set[str]] | None, tuple[list[Snapshot], list[Snapshot]] | None]:
        listed, source, ids = last
        if listed is snapshots:
            return (source, ids), ([], [])
        change = listdiff.difference(listed, snapshots, most=len(snapshots) // MOSTLY_CHANGED)
        if change is None or not snapshots:
            return None, None
        appeared, vanished = change
        if any(snapshot.source != source for snapshot in appeared):
            return None, None
        ids -= set(map(_snapshot_id, vanished))  # the last listing named each id once: these are gone
        ids |= set(map(_snapshot_id, appeared))
        if len(ids) != len(snapshots):  # fewer: an id is listed twice now
            return None, None
        return (source, ids), change


def _add_runs(evidence: Evidence, runs: Iterable[JobRun], seen: set[tuple[str, str, str | None]]) -> None:
    """Runs into the evidence, each once (source, run id and target say which): a job-level run under its job,
    a run for one target under that target."""
    by_target, by_job = evidence.runs_by_target, evidence.runs_by_job
    for run in runs:
        key = run.target_key
        identity = (run.source, run.run_id, key)
        if identity in seen:
            continue
        seen.add(identity)
        if key is None:
            by_job[run.job_key].append(run)
        else:
            by_target[key].append(run)
