"""What one service is judged on, gathered once from the evidence: its targets, snapshots, attempts, jobs. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from operator import attrgetter

from ..model import Job, JobRun, ServiceSpec, Snapshot, Target
from ._common import SUCCESS
from ._evidence import Evidence
from ._held import Snapshots, finished_and_not, success_times

# The kind of target a key's prefix names (the sources' own `Target.kind` for it), for a service none of whose
# targets was seen yet: its kind still tells which sources may hold its backups.
KIND_OF_PREFIX = {
    "guest": "guest",
    "pbs-host": "host",
    "pbs-group": "group",
    "databasement": "database",
    "backrest": "plan",
    "restic": "restic",
}
# Which kinds of target a source can hold backups of.
SOURCE_COVERS = {
    "pbs": ("guest", "host", "group"),
    "pve": ("guest",),
    "databasement": ("database",),
    "backrest": ("plan",),
    "restic": ("restic",),
}


@dataclass
class Facts:
    keys: list[str]
    targets: list[Target]
    snapshots: Snapshots  # finished, oldest first (live + history)
    unfinished: list[Snapshot]
    runs: list[JobRun]  # attempts for these targets, oldest first
    jobs: list[Job]  # backup jobs covering them, enabled or not
    success_times: Sequence[datetime]  # sorted
    judged_from: datetime | None  # before this, an empty slot means "no data", not "missed"
    named: tuple[str, ...] = ()  # the keys and patterns the service is configured with

    @property
    def kind(self) -> str:
        """What the service backs up: its targets' kind; before any was seen, what its keys name."""
        if self.targets:
            return self.targets[0].kind
        for key in (*self.keys, *self.named):
            prefix, sep, _rest = key.partition(":")
            if sep and prefix in KIND_OF_PREFIX:
                return KIND_OF_PREFIX[prefix]
        return "guest"


def unanswered_sources(spec: ServiceSpec, facts: Facts, evidence: Evidence) -> list[str]:
    """The sources that never answered yet and may hold the service's backups: until they do, nothing that is
    missing is certain to be missing."""
    kind = facts.kind
    return [
        state.name
        for state in evidence.states.values()
        if state.observation is None and kind in SOURCE_COVERS.get(state.kind, ()) and spec.source in (None, state.name)
    ]


def matching_keys(spec: ServiceSpec, evidence: Evidence) -> list[str]:
    """The target keys a service stands for: its exact keys, plus every known key its patterns match."""
    known = evidence.known_keys
    keys = {pattern for pattern in spec.target_keys if pattern in known}
    patterns = [p for p in spec.target_keys if p not in known and any(c in p for c in "*?[")]
    if patterns:
        keys |= {key for key in known if any(fnmatchcase(key, p) for p in patterns)}
    return sorted(keys)


def gather_facts(spec: ServiceSpec, evidence: Evidence) -> Facts:
    keys = matching_keys(spec, evidence)

    def wanted(source: str) -> bool:
        return spec.source is None or source == spec.source

    targets = [t for k in keys for t in evidence.targets.get(k, []) if wanted(t.source)]
    finished, unfinished = _finished_and_not(keys, spec.source, evidence)
    runs = [r for k in keys for r in evidence.runs_by_target.get(k, []) if wanted(r.source)]
    jobs: dict[str, Job] = {}
    for key in keys:
        for job in evidence.backup_jobs_by_target.get(key, []):
            if wanted(job.source):
                jobs[job.key] = job
    if not runs:
        # Sources that report runs per job only (one plan = one target): use them when the job is ours alone.
        for job in jobs.values():
            if set(job.target_keys) <= set(keys):
                runs.extend(evidence.runs_by_job.get(job.key, []))
    runs.sort(key=lambda r: r.started_at)
    success = success_times(finished, [r.started_at for r in runs if r.outcome in SUCCESS])
    return Facts(
        keys,
        targets,
        finished,
        unfinished,
        runs,
        list(jobs.values()),
        success,
        judged_from(success, runs, evidence.recorded_since),
        spec.target_keys,
    )


def _finished_and_not(keys: list[str], source: str | None, evidence: Evidence) -> tuple[Snapshots, list[Snapshot]]:
    """The targets' finished and unfinished snapshots of the wanted source, each in time order. The usual service,
    one target of any source whose snapshots all finished, gets the evidence's own value (sorted by time first):
    at 10,000 guests a copy for each was 600,000 list slots more (evidence values are replaced, never changed)."""
    if len(keys) == 1 and source is None:
        return finished_and_not(evidence.snapshots.get(keys[0], []))
    wanted = [s for k in keys for s in evidence.snapshots.get(k, []) if source is None or s.source == source]
    finished = sorted((s for s in wanted if s.finished), key=_taken)
    unfinished = sorted((s for s in wanted if not s.finished), key=_taken)
    return finished, unfinished


_taken: Callable[[Snapshot], datetime] = attrgetter("taken_at")


def judged_from(
    success_times: Sequence[datetime], runs: list[JobRun], recorded_since: datetime | None
) -> datetime | None:
    """From when an empty slot can be called missed.

    Not before the first evidence of the service at all. And a source prunes old snapshots (keep-daily 7 leaves
    gaps behind it), so older slots count only where something could have seen them: history, from the day it
    started recording, or the source's own run list (PBS/PVE tasks reach back a week).
    """
    first = min([*success_times[:1], *(r.started_at for r in runs[:1])], default=None)
    if first is None or recorded_since is None:
        return first
    watched = min([recorded_since, *(r.started_at for r in runs[:1])])
    return max(first, watched)
