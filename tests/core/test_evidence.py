"""Evidence: the live observations and history merged, each snapshot and run once, indexed by target and job."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from backup_glance.health._evidence import LiveIds, gather
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


def a_later_listing(rng: random.Random, before: tuple[Snapshot, ...], name: str, step: int) -> tuple[Snapshot, ...]:
    """`before` after a poll: most objects the same, a few new, a few gone, one maybe moved; now and then a
    listing of mostly new objects."""
    listing = list(before)
    if rng.random() < 0.1:
        return tuple(a_snapshot(rng, name, f"guest:{n % 5}", 5000 + step * 100 + n) for n in range(40, 90))
    for _ in range(rng.randrange(3)):
        if listing:
            listing.pop(rng.randrange(len(listing)))
    for n in range(rng.randrange(3)):
        listing.insert(rng.randrange(len(listing) + 1), a_snapshot(rng, name, f"guest:{n}", 2000 + step * 10 + n))
    if len(listing) > 1 and rng.random() < 0.2:
        listing.insert(rng.randrange(len(listing)), listing.pop())
    return tuple(listing)


def as_listed(rng: random.Random, listing: tuple[Snapshot, ...], step: int) -> tuple[Snapshot, ...]:
    """What a source hands over for `listing` this once: now and then with an id twice or another source's."""
    odd = list(listing)
    if odd and rng.random() < 0.15:
        odd.insert(rng.randrange(len(odd) + 1), rng.choice(odd))
    if odd and rng.random() < 0.1:
        odd.append(a_snapshot(rng, "other", "guest:0", 3000 + step))
    return tuple(odd)


@pytest.mark.parametrize("seed", range(40))
def test_live_ids_kept_between_gathers_give_the_same_evidence_as_a_fresh_gather(seed: int) -> None:
    rng = random.Random(seed)
    live_ids = LiveIds()
    listings = {
        name: tuple(a_snapshot(rng, name, f"guest:{n % 4}", n) for n in range(rng.randrange(40, 80)))
        for name in ("pbs", "pbs2")
    }
    adjusted = 0
    last: set[str] | None = None
    for step in range(30):
        listings = {name: a_later_listing(rng, listing, name, step) for name, listing in listings.items()}
        states = [
            SourceState(
                name=name,
                kind="pbs",
                poll_interval=timedelta(minutes=5),
                observation=Observation(name, "pbs", T0, "UTC", snapshots=as_listed(rng, listing, step)),
            )
            for name, listing in listings.items()
        ]
        if seed % 4 == 0:  # a second observation listing the first one's source: its ids are added to a copy
            extra = Observation(
                "pbs-b",
                "pbs",
                T0,
                "UTC",
                snapshots=tuple(a_snapshot(rng, "pbs", "guest:7", 9000 + n) for n in range(3)),
            )
            states.append(SourceState(name="pbs-b", kind="pbs", poll_interval=timedelta(minutes=5), observation=extra))
        history = HistoryView(snapshots=tuple(rng.sample(listings["pbs"], min(3, len(listings["pbs"])))))

        kept = gather(states, history, live_ids)
        fresh = gather(states, history)

        assert kept.live_ids == fresh.live_ids, f"step {step}"
        assert dict(kept.snapshots) == dict(fresh.snapshots), f"step {step}"
        assert kept.live_counts == fresh.live_counts, f"step {step}"
        for key, found in kept.snapshots.items():
            assert kept.live([key], found) == fresh.live([key], found)
        adjusted += last is not None and kept.live_ids.get("pbs2") is last
        last = kept.live_ids.get("pbs2")
    assert adjusted > 5  # the kept set was adjusted, not made anew, in most steps


def test_ids_another_observation_adds_to_a_kept_set_do_not_stay_in_it() -> None:
    """Another observation listing the same source adds its ids to that source's set, which must then be a
    copy: a later listing with an id twice has as many items as the kept set would have with the stale id."""
    rng = random.Random(1)
    listing = tuple(a_snapshot(rng, "pbs", f"guest:{n % 4}", n) for n in range(50))
    stray = Observation("pbs-b", "pbs", T0, "UTC", snapshots=(a_snapshot(rng, "pbs", "guest:9", 999),))

    def state(observation: Observation) -> SourceState:
        return SourceState(
            name=observation.source, kind="pbs", poll_interval=timedelta(minutes=5), observation=observation
        )

    live_ids = LiveIds()
    gather([state(Observation("pbs", "pbs", T0, "UTC", snapshots=listing)), state(stray)], HistoryView(), live_ids)
    twice = Observation("pbs", "pbs", T0, "UTC", snapshots=(*listing, listing[0]))

    kept = gather([state(twice)], HistoryView(), live_ids)

    assert kept.live_ids == gather([state(twice)], HistoryView()).live_ids == {"pbs": {s.snapshot_id for s in listing}}
