"""What one gather keeps for the next, so that a quiet poll's evidence costs what changed, not every snapshot.

A quiet poll of a big PBS changes a few hundred of the 200,000 runs the evidence merges (and of its 10,000
snapshot series), yet `gather` merges them all again. `Gathering` finds what changed in each list it merges
(`listdiff`: the live listings, their runs, history's snapshots and runs; the series are put by key afresh, a
step per group, and a key whose series are not the very ones of the last gather changed), which target keys and
jobs that touches, and makes the values of only those again, from indexes of every list by key. Every other key
keeps the very value of the last evidence: the memo then sees it unchanged at one identity check.

The lists made again are exactly what `gather` makes: each key's items are merged in the order `gather` takes
them (live listings in state order, history last; the first copy of an identity wins) and sorted by an order
that their items alone decide. Where that cannot be told from the indexes (the sources changed, a listing names
a snapshot twice or another source's, a list is mostly new, one identity stands for runs of two jobs), it
gathers afresh. `tests/core/test_evidence.py` compares the two over long randomized runs of polls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar

from .. import listdiff
from ..model import HistoryView, JobRun, Snapshot, SnapshotSeries, SourceState
from ._evidence import (
    MOSTLY_CHANGED,
    Evidence,
    LiveIds,
    _lists,
    _run_order,
    _snapshot_order,
    add_context,
    gather,
    held,
    in_series,
    last_runs,
    series_snapshots,
)

T = TypeVar("T")
SMALL = 16  # changes a short list (a few jobs' last runs) may have and still be worked on by difference
_NONE: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Inputs:
    """The lists one gather merged, in its order: per observation its snapshots, then its runs and its jobs' last
    runs (a rank each), then history's runs (the last rank)."""

    shape: tuple[tuple[str, str | None], ...]  # (state, observation source) per state; None: no observation
    listings: list[tuple[Snapshot, ...]]
    series: list[tuple[SnapshotSeries, ...]]
    runs: list[Sequence[JobRun]]
    history: tuple[Snapshot, ...]

    @classmethod
    def of(cls, states: tuple[SourceState, ...], history: HistoryView) -> _Inputs:
        observations = [state.observation for state in states if state.observation is not None]
        runs: list[Sequence[JobRun]] = []
        for observation in observations:
            runs += [observation.runs, last_runs(observation)]
        shape = tuple((s.name, s.observation.source if s.observation else None) for s in states)
        listings, series = [o.snapshots for o in observations], [o.series for o in observations]
        return cls(shape, listings, series, [*runs, history.runs], history.snapshots)


@dataclass(slots=True)
class _Index:
    """Every merged list's items by key: history's snapshots by target, each rank's runs by target and by job."""

    history: defaultdict[str, list[Snapshot]]
    history_keys: dict[str, dict[str, str]]  # source -> snapshot id -> target key, of history's snapshots
    runs_by_target: list[defaultdict[str, list[JobRun]]]  # per rank
    runs_by_job: list[defaultdict[str, list[JobRun]]]  # per rank: the job-level runs
    job_of_run: dict[tuple[str, str], tuple[str, int]]  # a job-level run's (source, run id) -> its job, copies

    @classmethod
    def of(cls, inputs: _Inputs) -> _Index | None:
        """None when the lists break a rule the difference relies on (history names a snapshot twice, a job-level
        run is filed under two jobs): then every gather is made afresh until they do not."""
        history: defaultdict[str, list[Snapshot]] = defaultdict(list)
        history_keys: dict[str, dict[str, str]] = {}
        for snapshot in inputs.history:
            key = snapshot.target_key
            history[key].append(snapshot)
            ids = history_keys.get(snapshot.source)
            if ids is None:
                ids = history_keys[snapshot.source] = {}
            ids[snapshot.snapshot_id] = key
        if sum(map(len, history_keys.values())) != len(inputs.history):
            return None
        index = cls(history, history_keys, [], [], {})
        for runs in inputs.runs:
            by_target: defaultdict[str, list[JobRun]] = defaultdict(list)
            by_job: defaultdict[str, list[JobRun]] = defaultdict(list)
            for run in runs:
                target = run.target_key
                if target is not None:
                    by_target[target].append(run)
                elif not index.add_job_run(by_job, run):
                    return None
            index.runs_by_target.append(by_target)
            index.runs_by_job.append(by_job)
        return index

    def add_job_run(self, by_job: defaultdict[str, list[JobRun]], run: JobRun) -> bool:
        identity = (run.source, run.run_id)
        job, copies = self.job_of_run.get(identity, (run.job_key, 0))
        if job != run.job_key:
            return False
        self.job_of_run[identity] = (job, copies + 1)
        by_job[job].append(run)
        return True

    def remove_job_run(self, by_job: defaultdict[str, list[JobRun]], run: JobRun) -> bool:
        identity = (run.source, run.run_id)
        held = self.job_of_run.get(identity)
        if held is None or not _removed(by_job, run.job_key, run):
            return False
        if held[1] > 1:
            self.job_of_run[identity] = (held[0], held[1] - 1)
        else:
            del self.job_of_run[identity]
        return True


@dataclass(slots=True)
class _Gathered:
    inputs: _Inputs
    index: _Index
    evidence: Evidence
    extras: dict[str, list[Snapshot]]  # by key: history's series' snapshots not live (see `series_snapshots`)


class Gathering:
    """Pass the same one to every gather of one board: `gather(states, history)` is then `_evidence.gather`'s,
    made from the last one and the difference."""

    def __init__(self) -> None:
        self.live_ids = LiveIds()
        self._last: _Gathered | None = None
        self.incremental = False  # whether the last gather was made from the one before (for tests and benches)

    def gather(self, states: tuple[SourceState, ...], history: HistoryView) -> Evidence:
        inputs = _Inputs.of(states, history)
        last, self._last = self._last, None  # an index half adjusted is never used again
        self.incremental = False
        if last is not None and last.inputs.shape == inputs.shape:
            made = self._from_last(last, inputs, states, history)
            if made is not None:
                self.incremental = True
                self._last = _Gathered(inputs, last.index, made[0], made[1])
                return made[0]
        evidence = gather(states, history, self.live_ids)
        # Every listing with snapshots on the way `_from_last` follows: one source each, each id once.
        if len(evidence.shared_ids) == sum(1 for listing in inputs.listings if listing):
            index = _Index.of(inputs)
            if index is not None:
                extras: defaultdict[str, list[Snapshot]] = defaultdict(list)
                for snapshot in series_snapshots(history, evidence.live_series):
                    extras[snapshot.target_key].append(snapshot)
                self._last = _Gathered(inputs, index, evidence, extras)
        return evidence

    def _from_last(
        self, last: _Gathered, inputs: _Inputs, states: tuple[SourceState, ...], history: HistoryView
    ) -> tuple[Evidence, dict[str, list[Snapshot]]] | None:
        index, before = last.index, last.evidence
        dirty_snapshots: set[str] = set()
        dirty_runs: set[str] = set()
        dirty_jobs: set[str] = set()
        if not _history_followed(index, last.inputs.history, inputs.history, dirty_snapshots):
            return None
        live_ids: dict[str, set[str]] = {}
        appeared_by_key: defaultdict[str, list[Snapshot]] = defaultdict(list)
        vanished_by_key: defaultdict[str, set[int]] = defaultdict(set)
        names = [name for name, source in inputs.shape if source is not None]
        for name, old, new in zip(names, last.inputs.listings, inputs.listings, strict=True):
            if not old and not new:
                continue
            found = self.live_ids.of(name, new)
            change = self.live_ids.changes.get(name)
            if found is None or change is None or found[0] in live_ids:
                return None
            live_ids[found[0]] = found[1]
            appeared, vanished = change
            for snapshot in vanished:
                vanished_by_key[snapshot.target_key].add(id(snapshot))
            for snapshot in appeared:
                appeared_by_key[snapshot.target_key].append(snapshot)
            for snapshot in (*appeared, *vanished):  # its history copy is in the evidence, or no longer
                dirty_snapshots.add(snapshot.target_key)
                other = index.history_keys.get(snapshot.source, {}).get(snapshot.snapshot_id)
                if other is not None:
                    dirty_snapshots.add(other)
        for rank, (old_runs, new_runs) in enumerate(zip(last.inputs.runs, inputs.runs, strict=True)):
            if not _runs_followed(index, rank, old_runs, new_runs, dirty_runs, dirty_jobs):
                return None
        # Series: by key afresh (a step per group, not per snapshot); a key whose series are not the very ones of
        # the last gather is dirty, as is one whose snapshots from history's series changed.
        live_series: dict[tuple[str, str], SnapshotSeries] = {}
        series_by_key: defaultdict[str, list[SnapshotSeries]] = defaultdict(list)
        for listing in inputs.series:
            for series in listing:
                where = (series.source, series.id_prefix)
                if where in live_series:  # one source in two states: `gather` takes it apart
                    return None
                live_series[where] = series
                series_by_key[series.target_key].append(series)
        extras: defaultdict[str, list[Snapshot]] = defaultdict(list)
        for snapshot in series_snapshots(history, live_series):
            if snapshot.snapshot_id in index.history_keys.get(snapshot.source, {}):
                return None  # named by history twice: `gather` keeps one
            extras[snapshot.target_key].append(snapshot)
        for key in series_by_key.keys() | before.series_by_key.keys():
            if not _same_items(series_by_key.get(key, ()), before.series_by_key.get(key, ())):
                dirty_snapshots.add(key)
        for key in extras.keys() | last.extras.keys():
            if extras.get(key) != last.extras.get(key):
                dirty_snapshots.add(key)

        evidence = Evidence(states={state.name: state for state in states}, recorded_since=history.recorded_since)
        for state in states:
            if state.observation is not None:
                add_context(evidence, state.observation)
        evidence.live_ids = live_ids
        evidence.shared_ids = set(live_ids)
        evidence.live_series, evidence.series_by_key = live_series, series_by_key
        snapshots, live_by_key = defaultdict(list, before.snapshots), defaultdict(list, before.live_by_key)
        loose_live = dict(before.loose_live)
        live_counts = dict(before.live_counts)
        for key in dirty_snapshots:
            gone = vanished_by_key.get(key, ())
            listed = before.loose_live.get(key, ()) if key in before.series_by_key else before.live_by_key.get(key, ())
            live = [s for s in listed if id(s) not in gone]
            if len(listed) - len(live) != len(gone):  # one that left was listed as an equal copy before
                return None
            live += appeared_by_key.get(key, [])
            kept = [
                s
                for s in chain(index.history.get(key, ()), extras.get(key, ()))
                if s.snapshot_id not in live_ids.get(s.source, _NONE) and not in_series(live_series, s)
            ]
            in_order = sorted(live + kept, key=_snapshot_order)
            if in_order == live:  # as `gather` does: one list for both when they hold the same
                live = in_order
            its_series = series_by_key.get(key)
            live_counts.pop(key, None)
            loose_live.pop(key, None)
            if its_series:
                loose_live[key] = live
                entry, live_entry = held(its_series, in_order, live)
                # The value of the last gather when equal: the memo then sees it unchanged at an identity check.
                was = before.snapshots.get(key)
                snapshots[key] = was if was is not None and was == entry else entry
                was = before.live_by_key.get(key)
                live_by_key[key] = was if was is not None and was == live_entry else live_entry
                live_counts[key] = len(live) + sum(len(one) for one in its_series)
                continue
            _put(_lists(live_by_key), key, live)
            if live:
                live_counts[key] = len(live)
            _put(_lists(snapshots), key, in_order)
        evidence.loose_live = loose_live
        runs_by_target, runs_by_job = defaultdict(list, before.runs_by_target), defaultdict(list, before.runs_by_job)
        for key in dirty_runs:
            merged = _merged([by_target.get(key, ()) for by_target in index.runs_by_target])
            if merged is None:
                return None
            _put(runs_by_target, key, merged)
        for job in dirty_jobs:
            merged = _merged([by_job.get(job, ()) for by_job in index.runs_by_job])
            if merged is None:
                return None
            _put(runs_by_job, job, merged)
        evidence.snapshots, evidence.live_by_key, evidence.live_counts = snapshots, live_by_key, live_counts
        evidence.runs_by_target, evidence.runs_by_job = runs_by_target, runs_by_job
        return evidence, extras


def _history_followed(index: _Index, old: tuple[Snapshot, ...], new: tuple[Snapshot, ...], dirty: set[str]) -> bool:
    """Adjust the index by what changed in history's snapshots; their keys are dirty. False: gather afresh."""
    change = _difference(old, new)
    if change is None:
        return False
    appeared, vanished = change
    for snapshot in vanished:  # the gone ones first: a moved one is in both
        ids = index.history_keys.get(snapshot.source, {})
        if ids.pop(snapshot.snapshot_id, None) is None or not _removed(index.history, snapshot.target_key, snapshot):
            return False
        dirty.add(snapshot.target_key)
    for snapshot in appeared:
        ids = index.history_keys.setdefault(snapshot.source, {})
        if snapshot.snapshot_id in ids:  # named twice
            return False
        ids[snapshot.snapshot_id] = snapshot.target_key
        index.history[snapshot.target_key].append(snapshot)
        dirty.add(snapshot.target_key)
    return True


def _runs_followed(
    index: _Index, rank: int, old: Sequence[JobRun], new: Sequence[JobRun], dirty: set[str], dirty_jobs: set[str]
) -> bool:
    """Adjust one rank's runs in the index by what changed; their targets or jobs are dirty."""
    change = _difference(old, new)
    if change is None:
        return False
    appeared, vanished = change
    by_target, by_job = index.runs_by_target[rank], index.runs_by_job[rank]
    for run in vanished:
        if run.target_key is None:
            if not index.remove_job_run(by_job, run):
                return False
            dirty_jobs.add(run.job_key)
        else:
            if not _removed(by_target, run.target_key, run):
                return False
            dirty.add(run.target_key)
    for run in appeared:
        if run.target_key is None:
            if not index.add_job_run(by_job, run):
                return False
            dirty_jobs.add(run.job_key)
        else:
            by_target[run.target_key].append(run)
            dirty.add(run.target_key)
    return True


def _difference(old: Sequence[T], new: Sequence[T]) -> tuple[list[T], list[T]] | None:
    """What appeared in `new` and left `old`, or None when most of it is new (gathering afresh costs as much)."""
    if old is new:
        return [], []
    return listdiff.difference(old, new, most=max(len(new) // MOSTLY_CHANGED, SMALL))


def _merged(ranks: list[Sequence[JobRun]]) -> list[JobRun] | None:
    """One key's runs as `gather` merges them: ranks in order, the first copy of an identity wins. None when one
    rank holds two different copies of an identity: which comes first in it, the index does not say."""
    merged: list[JobRun] = []
    taken: dict[tuple[str, str], tuple[int, JobRun]] = {}
    for rank, runs in enumerate(ranks):
        for run in runs:
            identity = (run.source, run.run_id)
            first = taken.get(identity)
            if first is None:
                taken[identity] = (rank, run)
                merged.append(run)
            elif first[0] == rank and first[1] is not run and first[1] != run:
                return None
    merged.sort(key=_run_order)
    return merged


def _same_items(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _removed(by_key: defaultdict[str, list[T]], key: str, item: T) -> bool:
    """Remove the very `item` from `by_key[key]` (dropping the key when it is left empty); False if absent."""
    items = by_key.get(key)
    if items is None:
        return False
    for at, candidate in enumerate(items):
        if candidate is item:
            del items[at]
            if not items:
                del by_key[key]
            return True
    return False


def _put(lists: defaultdict[str, list[T]], key: str, items: list[T]) -> None:
    if items:
        lists[key] = items
    else:
        lists.pop(key, None)


__all__ = ["Gathering"]
