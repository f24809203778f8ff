"""Evidence: the live observations and history merged, each snapshot and run once, indexed by target and job."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from backup_glance.health._evidence import gather
from backup_glance.model import HistoryView, JobRun, Observation, Snapshot, SourceState

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def reference(states: list[SourceState], history: HistoryView) -> dict[str, object]:
    """The merge one record at a time, as plainly as it can be said: the first copy of an identity wins, live
    before history; lists in time order (stable)."""
    snapshots: dict[str, list[Snapshot]] = defaultdict(list)
    live_by_key: dict[str, list[Snapshot]] = defaultdict(list)
    live: set[tuple[str, str]] = set()
    for state in states:
        assert state.observation is not None
        for snapshot in state.observation.snapshots:
            identity = (snapshot.source, snapshot.snapshot_id)
            if identity not in live:
                live.add(identity)
                snapshots[snapshot.target_key].append(snapshot)
            live_by_key[snapshot.target_key].append(snapshot)
    counts = {key: len(found) for key, found in snapshots.items()}
    seen = set(live)
    for snapshot in history.snapshots:
        if (snapshot.source, snapshot.snapshot_id) not in seen:
            seen.add((snapshot.source, snapshot.snapshot_id))
            snapshots[snapshot.target_key].append(snapshot)
    runs_by_target: dict[str, list[JobRun]] = defaultdict(list)
    runs_by_job: dict[str, list[JobRun]] = defaultdict(list)
    seen_runs: set[tuple[str, str, str | None]] = set()
    every_run = [run for state in states if state.observation for run in state.observation.runs]
    for run in [*every_run, *history.runs]:
        if (run.source, run.run_id, run.target_key) in seen_runs:
            continue
        seen_runs.add((run.source, run.run_id, run.target_key))
        if run.target_key is None:
            runs_by_job[run.job_key].append(run)
        else:
            runs_by_target[run.target_key].append(run)
            runs_by_job.setdefault(run.job_key, [])
    return {
        "snapshots": {key: sorted(found, key=lambda s: s.taken_at) for key, found in snapshots.items()},
        "live_by_key": dict(live_by_key),
        "live_counts": counts,
        "live": live,
        "runs_by_target": {key: sorted(found, key=lambda r: r.started_at) for key, found in runs_by_target.items()},
        "runs_by_job": {key: sorted(found, key=lambda r: r.started_at) for key, found in runs_by_job.items()},
    }


def a_snapshot(rng: random.Random, source: str, key: str, index: int) -> Snapshot:
    return Snapshot(key, source, f"{key}/{index}", T0 + timedelta(hours=rng.randrange(500)))


def a_run(rng: random.Random, source: str, key: str | None, index: int) -> JobRun:
    return JobRun(
        f"{source}/backup/{index % 3}",
        source,
        f"upid-{index}",
        T0 + timedelta(hours=rng.randrange(500)),
        target_key=key,
    )


def an_observation(rng: random.Random, name: str, *, interleaved: bool, mixed: bool, twice: bool) -> SourceState:
    keys = [f"guest:{n}" for n in range(rng.randrange(1, 8))]
    snapshots = [a_snapshot(rng, name, key, index) for key in keys for index in range(rng.randrange(0, 6))]
    if interleaved:
        rng.shuffle(snapshots)
    if mixed and snapshots:
        snapshots.append(a_snapshot(rng, "other", keys[0], 99))
    if twice and snapshots:
        snapshots.insert(rng.randrange(len(snapshots)), rng.choice(snapshots))
    runs = [a_run(rng, name, rng.choice([None, *keys]), index) for index in range(rng.randrange(0, 8))]
    if twice and runs:
        runs.append(rng.choice(runs))
    observation = Observation(name, "pbs", T0, "UTC", snapshots=tuple(snapshots), runs=tuple(runs))
    return SourceState(name=name, kind="pbs", poll_interval=timedelta(minutes=5), observation=observation)


@pytest.mark.parametrize("seed", range(60))
def test_the_merge_equals_the_one_record_at_a_time_reference(seed: int) -> None:
    rng = random.Random(seed)
    names = ["pbs", "pbs2", "pbs"] if seed % 5 == 0 else ["pbs", "pbs2"]  # a source name twice: its ids overlap
    states = [
        an_observation(rng, name, interleaved=rng.random() < 0.5, mixed=rng.random() < 0.3, twice=rng.random() < 0.3)
        for name in names
    ]
    live = [s for state in states if state.observation for s in state.observation.snapshots]
    pruned = [a_snapshot(rng, "pbs", f"guest:{rng.randrange(9)}", 1000 + n) for n in range(rng.randrange(0, 6))]
    remembered = rng.sample(live, min(len(live), 4)) + pruned + pruned[:1]
    old_runs = [r for state in states if state.observation for r in state.observation.runs][:3]
    history = HistoryView(snapshots=tuple(remembered), runs=(*old_runs, a_run(rng, "pbs", "guest:1", 500)))

    evidence = gather(states, history)
    expected = reference(states, history)

    assert dict(evidence.snapshots) == expected["snapshots"]
    assert dict(evidence.live_by_key) == expected["live_by_key"]
    assert evidence.live_counts == expected["live_counts"]
    assert {(source, i) for source, ids in evidence.live_ids.items() for i in ids} == expected["live"]
    assert dict(evidence.runs_by_target) == expected["runs_by_target"]
    assert dict(evidence.runs_by_job) == expected["runs_by_job"]
    for key, found in evidence.snapshots.items():
        assert evidence.live([key], found) == [s for s in found if (s.source, s.snapshot_id) in expected["live"]]
