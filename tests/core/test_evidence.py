"""Evidence: the live observations and history merged, each snapshot and run once, indexed by target and job."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from msgspec.structs import replace as evolve

from backup_glance.health._evidence import LiveIds, gather
from backup_glance.health._gathering import Gathering
from backup_glance.model import HistoryView, JobRun, Observation, Snapshot, SourceState

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def reference(states: list[SourceState], history: HistoryView) -> dict[str, object]:
    """The merge one record at a time, as plainly as it can be said: the first copy of an identity wins, live
    before history; lists in time order, two of one time by source and id."""
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

    def in_time(items: list[Snapshot]) -> list[Snapshot]:
        return sorted(items, key=lambda s: (s.taken_at, s.source, s.snapshot_id))

    def runs_in_time(items: list[JobRun]) -> list[JobRun]:
        return sorted(items, key=lambda r: (r.started_at, r.source, r.run_id))

    return {
        "snapshots": {key: in_time(found) for key, found in snapshots.items()},
        "live_by_key": dict(live_by_key),
        "live_counts": counts,
        "live": live,
        "runs_by_target": {key: runs_in_time(found) for key, found in runs_by_target.items()},
        "runs_by_job": {key: runs_in_time(found) for key, found in runs_by_job.items()},
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


def a_later_run_list(rng: random.Random, before: tuple[JobRun, ...], name: str, step: int) -> tuple[JobRun, ...]:
    """`before` after a poll: a few runs new or gone, now and then one finished (an equal identity, a new object),
    one listed twice, one job-level run filed under another job, or a mostly new list."""
    runs = list(before)
    if rng.random() < 0.05:
        return tuple(a_run(rng, name, rng.choice([None, "guest:1", "guest:2"]), 7000 + step * 50 + n) for n in range(9))
    for _ in range(rng.randrange(3)):
        if runs:
            runs.pop(rng.randrange(len(runs)))
    for n in range(rng.randrange(3)):
        key = rng.choice([None, *(f"guest:{k}" for k in range(5))])
        runs.insert(rng.randrange(len(runs) + 1), a_run(rng, name, key, 4000 + step * 10 + n))
    if runs and rng.random() < 0.2:
        at = rng.randrange(len(runs))
        runs[at] = msgspec.structs.replace(runs[at], ended_at=runs[at].started_at + timedelta(minutes=5))
    return tuple(runs)


def runs_as_listed(rng: random.Random, runs: tuple[JobRun, ...], name: str) -> tuple[JobRun, ...]:
    """What a source hands over for `runs` this once: now and then a run twice, as the same object or as two
    copies, or a job-level run filed under another job too."""
    odd = list(runs)
    if odd and rng.random() < 0.05:
        odd.append(rng.choice(odd))
    if odd and rng.random() < 0.05:
        odd.append(msgspec.structs.replace(rng.choice(odd), message="another copy"))
    if odd and rng.random() < 0.05:
        copy = rng.choice([r for r in odd if r.target_key is None] or odd)
        odd.append(msgspec.structs.replace(copy, job_key=f"{name}/backup/other"))
    return tuple(odd)


def a_later_history(
    rng: random.Random, before: tuple[Snapshot, ...], listings: dict[str, tuple[Snapshot, ...]], step: int
) -> tuple[Snapshot, ...]:
    """History's view after a poll: mostly the same objects; the new live ones; now and then a pruned one, an
    equal copy read back from the file, one under another target, or one named twice."""
    view = [s for s in before if rng.random() > 0.01]
    known = {(s.source, s.snapshot_id) for s in view}
    for listing in listings.values():
        view += [s for s in listing if (s.source, s.snapshot_id) not in known and rng.random() < 0.7]
    if rng.random() < 0.3:
        view.append(a_snapshot(rng, "pbs", f"guest:{rng.randrange(6)}", 8000 + step))  # pruned at the source
    if view and rng.random() < 0.1:
        at = rng.randrange(len(view))
        view[at] = msgspec.structs.replace(view[at])  # read back from the file: equal, not the same
    if view and rng.random() < 0.05:
        at = rng.randrange(len(view))
        view[at] = msgspec.structs.replace(view[at], target_key="guest:9")  # another target for a live id
    return tuple(view)


def by_identity(snapshot: Snapshot) -> tuple[str, str]:
    return (snapshot.source, snapshot.snapshot_id)


@pytest.mark.parametrize("seed", range(40))
def test_a_gathering_gives_what_a_fresh_gather_gives_poll_after_poll(seed: int) -> None:
    rng = random.Random(seed)
    gathering = Gathering()
    listings = {
        name: tuple(a_snapshot(rng, name, f"guest:{n % 5}", n) for n in range(rng.randrange(30, 60)))
        for name in ("pbs", "pbs2")
    }
    runs = {name: tuple(a_run(rng, name, rng.choice([None, "guest:1"]), n) for n in range(12)) for name in listings}
    history: tuple[Snapshot, ...] = ()
    history_runs: tuple[JobRun, ...] = ()
    incremental = reused = 0
    before = None
    for step in range(60):
        listings = {name: a_later_listing(rng, listing, name, step) for name, listing in listings.items()}
        if rng.random() < 0.1:  # read again: equal snapshots, new objects (the last listing's copies stay behind)
            listings = {
                name: tuple(evolve(s) if rng.random() < 0.2 else s for s in found) for name, found in listings.items()
            }
        runs = {name: a_later_run_list(rng, listed, name, step) for name, listed in runs.items()}
        history = a_later_history(rng, history, listings, step)
        history_runs = tuple(r for r in history_runs if rng.random() > 0.05) + tuple(
            r for listed in runs.values() for r in listed if rng.random() < 0.1
        )
        states = []
        for name, listing in listings.items():
            if name == "pbs2" and rng.random() < 0.05:
                states.append(SourceState(name=name, kind="pbs", poll_interval=timedelta(minutes=5)))  # never polled
                continue
            listed = as_listed(rng, listing, step) if rng.random() < 0.2 else listing
            if rng.random() < 0.03:
                listed = ()
            listed_runs = runs_as_listed(rng, runs[name], name) if rng.random() < 0.3 else runs[name]
            observation = Observation(name, "pbs", T0, "UTC", snapshots=listed, runs=listed_runs)
            states.append(
                SourceState(name=name, kind="pbs", poll_interval=timedelta(minutes=5), observation=observation)
            )
        remembered = (*history, rng.choice(history)) if history and rng.random() < 0.03 else history  # one twice
        view = HistoryView(snapshots=remembered, runs=history_runs)

        kept = gathering.gather(tuple(states), view)
        fresh = gather(states, view)

        assert dict(kept.snapshots) == dict(fresh.snapshots), f"step {step}"
        assert kept.live_counts == fresh.live_counts, f"step {step}"
        assert kept.live_ids == fresh.live_ids, f"step {step}"
        assert {key: sorted(found, key=by_identity) for key, found in kept.live_by_key.items()} == {
            key: sorted(found, key=by_identity) for key, found in fresh.live_by_key.items()
        }, f"step {step}"
        assert dict(kept.runs_by_target) == dict(fresh.runs_by_target), f"step {step}"
        assert dict(kept.runs_by_job) == dict(fresh.runs_by_job), f"step {step}"
        assert kept.jobs == fresh.jobs and dict(kept.targets) == dict(fresh.targets), f"step {step}"
        for key, found in kept.snapshots.items():
            assert kept.live([key], found) == fresh.live([key], found), f"step {step}"
        incremental += gathering.incremental
        if gathering.incremental and before is not None:
            reused += sum(found is before.snapshots.get(key) for key, found in kept.snapshots.items())
        before = kept
    assert incremental > 5, "gathers were made from the last one"
    assert reused > 0, "a key nothing changed for keeps its very list"


def polled(name: str, snapshots: tuple[Snapshot, ...], runs: tuple[JobRun, ...] = ()) -> SourceState:
    observation = Observation(name, "pbs", T0, "UTC", snapshots=snapshots, runs=runs)
    return SourceState(name=name, kind="pbs", poll_interval=timedelta(minutes=5), observation=observation)


def test_a_gathering_sees_a_history_copy_filed_under_another_target_when_its_live_one_goes() -> None:
    """History may hold a live snapshot under another target (read back from the file after the mapping of
    namespaces to clusters changed): while the live one is listed it stands for both; once it goes, the copy
    counts for the other target. Only the live listing changed, yet that other target's list is made again."""
    rng = random.Random(3)
    listing = tuple(a_snapshot(rng, "pbs", f"guest:{n % 4}", n) for n in range(40))
    elsewhere = msgspec.structs.replace(listing[5], target_key="guest:9")
    history = HistoryView(snapshots=(elsewhere,))
    gathering = Gathering()
    assert "guest:9" not in gathering.gather((polled("pbs", listing),), history).snapshots

    gone = listing[:5] + listing[6:]
    kept = gathering.gather((polled("pbs", gone),), history)

    assert gathering.incremental
    assert kept.snapshots["guest:9"] == [elsewhere] == gather([polled("pbs", gone)], history).snapshots["guest:9"]


def test_a_gathering_gathers_afresh_when_one_run_is_filed_under_two_jobs() -> None:
    """The first copy of a run wins, whichever job it is filed under: a copy under another job is left out of
    that job's runs, which the index of runs by job cannot tell; the evidence is then gathered afresh."""
    rng = random.Random(4)
    runs = tuple(a_run(rng, "pbs", None, n) for n in range(30))
    listing = tuple(a_snapshot(rng, "pbs", "guest:1", n) for n in range(10))
    gathering = Gathering()
    gathering.gather((polled("pbs", listing, runs),), HistoryView())
    twice = (*runs, msgspec.structs.replace(runs[0], job_key="pbs/backup/other"))

    kept = gathering.gather((polled("pbs", listing, twice),), HistoryView())

    assert not gathering.incremental
    assert "pbs/backup/other" not in kept.runs_by_job
    assert dict(kept.runs_by_job) == dict(gather([polled("pbs", listing, twice)], HistoryView()).runs_by_job)
