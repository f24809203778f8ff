"""Merge what every source saw (last known good) with what history remembers, indexed for judging.

Pure: no clock, no I/O. Duplicates across the live observation and history collapse on their identity
(source + snapshot id, source + run id + target).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from operator import attrgetter

from ..model import (
    Datastore,
    HistoryView,
    Job,
    JobKind,
    JobRun,
    Observation,
    RemoteCopy,
    Snapshot,
    SourceState,
    Target,
)

_taken_at = attrgetter("taken_at")
_started_at = attrgetter("started_at")


@dataclass
class Evidence:
    states: dict[str, SourceState]
    targets: dict[str, list[Target]] = field(default_factory=lambda: defaultdict(list))
    snapshots: dict[str, list[Snapshot]] = field(default_factory=lambda: defaultdict(list))
    runs_by_target: dict[str, list[JobRun]] = field(default_factory=lambda: defaultdict(list))
    runs_by_job: dict[str, list[JobRun]] = field(default_factory=lambda: defaultdict(list))
    jobs: list[Job] = field(default_factory=list)
    backup_jobs_by_target: dict[str, list[Job]] = field(default_factory=lambda: defaultdict(list))
    uncovered: set[str] = field(default_factory=set)
    datastores: list[Datastore] = field(default_factory=list)
    # Sources that report guests and their backup jobs (PVE): only they can say "in no job".
    coverage_sources: set[str] = field(default_factory=set)
    # Snapshots that exist at the source right now (history also holds pruned ones), and how many of each target's
    # snapshots (in `snapshots`) they are.
    live_snapshots: set[tuple[str, str]] = field(default_factory=set)
    live_counts: dict[str, int] = field(default_factory=dict)
    # The live snapshots per target key: what an incremental evaluation compares to tell which targets changed.
    live_by_key: dict[str, list[Snapshot]] = field(default_factory=lambda: defaultdict(list))
    recorded_since: datetime | None = None  # history has watched since then
    # Protection facts: restore tests and copies seen through sync jobs, per target; jobs with a keep-* policy.
    restore_jobs_by_target: dict[str, list[Job]] = field(default_factory=lambda: defaultdict(list))
    remote_copies: dict[str, list[RemoteCopy]] = field(default_factory=lambda: defaultdict(list))
    prune_jobs: list[Job] = field(default_factory=list)

    # id(list) -> (the list, its instants); holding the list keeps its id from being reused while cached
    _times: dict[int, tuple[object, list[datetime]]] = field(default_factory=dict)

    def times_of(self, items: list[Snapshot] | list[JobRun]) -> list[datetime]:
        """The instants of a sorted evidence list (taken / started), made once per list for bisection."""
        cached = self._times.get(id(items))
        if cached is not None and cached[0] is items:
            return cached[1]
        times = [item.taken_at if isinstance(item, Snapshot) else item.started_at for item in items]
        self._times[id(items)] = (items, times)
        return times

    @cached_property
    def known_keys(self) -> frozenset[str]:
        """Every target key any source or history mentions."""
        keys = set(self.targets) | set(self.snapshots) | set(self.runs_by_target)
        return frozenset(keys | set(self.backup_jobs_by_target) | self.uncovered)

    def live(self, keys: Iterable[str], snapshots: list[Snapshot]) -> list[Snapshot]:
        """Those of `snapshots` (of the targets `keys`, from `snapshots`) that exist at the source right now, in
        their order. Most targets have nothing pruned in history: then that is all of them, known from the counts
        without looking at each snapshot."""
        if all(self.live_counts.get(key, 0) == len(self.snapshots.get(key, ())) for key in keys):
            return list(snapshots)
        live = self.live_snapshots
        return [s for s in snapshots if (s.source, s.snapshot_id) in live]

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


def gather(states: list[SourceState] | tuple[SourceState, ...], history: HistoryView) -> Evidence:
    evidence = Evidence(states={state.name: state for state in states}, recorded_since=history.recorded_since)
    seen_runs: set[tuple[str, str, str | None]] = set()
    # The loops over snapshots run once per snapshot (120,000 for a big PBS): plain local names, no calls.
    by_key, live, live_by_key = evidence.snapshots, evidence.live_snapshots, evidence.live_by_key
    live_counts = evidence.live_counts

    def add_run(run: JobRun) -> None:
        identity = (run.source, run.run_id, run.target_key)
        if identity in seen_runs:
            return
        seen_runs.add(identity)
        if run.target_key is None:
            evidence.runs_by_job[run.job_key].append(run)
        else:
            evidence.runs_by_target[run.target_key].append(run)
            evidence.runs_by_job.setdefault(run.job_key, [])

    # Live observations first: their copies are the freshest (a running run may have finished since).
    for state in states:
        observation = state.observation
        if observation is None:
            continue
        for target in observation.targets:
            evidence.targets[target.key].append(target)
        for snapshot in observation.snapshots:
            identity = (snapshot.source, snapshot.snapshot_id)
            key = snapshot.target_key
            if identity not in live:
                live.add(identity)
                by_key[key].append(snapshot)
                live_counts[key] = live_counts.get(key, 0) + 1
            live_by_key[key].append(snapshot)
        for run in observation.runs:
            add_run(run)
        for job in observation.jobs:
            evidence.jobs.append(job)
            if job.last_run is not None:
                add_run(job.last_run)
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
        evidence.datastores.extend(observation.datastores)
    # Every snapshot seen so far is live; one both live and in history (or live twice) is in the lists once.
    seen = set(live)
    for snapshot in history.snapshots:
        identity = (snapshot.source, snapshot.snapshot_id)
        if identity not in seen:
            seen.add(identity)
            by_key[snapshot.target_key].append(snapshot)
    for run in history.runs:
        add_run(run)
    for snapshots in by_key.values():
        snapshots.sort(key=_taken_at)
    for runs in (*evidence.runs_by_target.values(), *evidence.runs_by_job.values()):
        runs.sort(key=_started_at)
    return evidence
