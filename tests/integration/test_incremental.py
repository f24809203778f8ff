"""Incremental judging gives the board judging from scratch gives, step after step.

The collector keeps a `health.Memo` so that a quiet poll re-judges only the services whose evidence changed or
whose moment came (`health/_memo.py`, `health/_expiry.py`). A reused verdict that judging anew would not give is
a stale verdict on the dashboard, so this drives the demo homelab's real observations (PBS, PVE, Databasement,
Backrest: daily, weekly, monthly, cron and interval schedules, verify, prune, sync and restore-test jobs) through a
long randomized run of polls (new snapshots and runs, failures, running guests, removed snapshots, sync copies
moving, failing sources, jobs switched off or turned into interval plans), clock steps (small ones, exactly to the
deadlines health announces, where slots come and graces end, and exactly to the moments a verdict ages on its own:
an interval plan coming due, a copy leaving the lookback, a restore test or a verification growing old) and config
changes (grace, lookback, silences, patterns, discovery, protection policies, anomalies), and compares the whole
board, verdicts, calendar slots and job views, with a from-scratch evaluation each time. Removing any one of
`_expiry`'s rules (interval anchors, protection moments, copies leaving the lookback) fails at least one seed.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from demo_observations import observe_demo
from msgspec.structs import replace as evolve

from backup_glance.config import Config, service_specs
from backup_glance.health import Defaults, Memo, evaluate
from backup_glance.model import (
    AnomalyPolicy,
    Board,
    HistoryView,
    JobRun,
    ProtectionPolicy,
    RunOutcome,
    ScheduleRef,
    ServiceSpec,
    Silence,
    Snapshot,
    SnapshotSeries,
    SourceState,
    Verification,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPRING = datetime(2027, 3, 25, 12, 0, tzinfo=UTC)  # three days before Madrid's clocks go forward
ZONE = "Europe/Madrid"
WINDOW = timedelta(days=15)  # what the collector asks history for
STEPS = 400


@functools.cache
def observed(start: datetime) -> tuple[list[SourceState], Config]:
    return observe_demo(start)


@dataclass
class World:
    """What the collector would hand to `evaluate`, changed one random step at a time."""

    rng: random.Random
    states: list[SourceState]
    specs: list[ServiceSpec]
    now: datetime = NOW
    start: datetime = NOW
    defaults: Defaults = field(default_factory=Defaults)
    discover_rest: bool = True
    durations: dict[str, timedelta] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], Snapshot] = field(default_factory=dict)  # history: everything ever seen
    # History's present series, as a record leaves them: a series listed again replaces its group's, and the
    # snapshots it no longer lists are history's own from then on (as `snapshots`).
    series: dict[tuple[str, str], SnapshotSeries] = field(default_factory=dict)
    runs: dict[tuple[str, str, str | None], JobRun] = field(default_factory=dict)
    made: int = 0

    def record(self) -> None:
        for state in self.states:
            if state.observation is not None:
                self.snapshots.update({(s.source, s.snapshot_id): s for s in state.observation.snapshots})
                self.runs.update({(r.source, r.run_id, r.target_key): r for r in state.observation.runs})
                listed = {(s.source, s.id_prefix): s for s in state.observation.series}
                for where, before in list(self.series.items()):
                    if where[0] == state.observation.source and listed.get(where) is not before:
                        after = listed.get(where)
                        kept = set(after.times) if after is not None else set()
                        gone = (s for i, s in enumerate(before) if before.times[i] not in kept)
                        self.snapshots.update({(s.source, s.snapshot_id): s for s in gone})
                        del self.series[where]
                self.series.update(listed)

    def history(self) -> HistoryView:
        since, until = self.now - WINDOW, self.now + timedelta(days=1)
        present = {(s.source, s.snapshot_id) for one in self.series.values() for s in one}
        return HistoryView(
            snapshots=tuple(
                sorted(
                    (s for at, s in self.snapshots.items() if since <= s.taken_at < until and at not in present),
                    key=_taken,
                )
            ),
            series=tuple(self.series.values()),
            series_span=(-(-int(since.timestamp() * 1e6) // 10**6), -(-int(until.timestamp() * 1e6) // 10**6)),
            runs=tuple(sorted((r for r in self.runs.values() if since <= r.started_at < until), key=_started)),
            typical_durations=dict(self.durations),
            recorded_since=self.start - timedelta(days=20),
        )

    def evaluate(self, memo: Memo | None, *, loose: bool = False) -> Board:
        """`loose`: every series as the snapshots it holds, one by one (as the small sources list theirs)."""
        states, history = self.states, self.history()
        if loose:
            states = [
                replace(
                    state,
                    observation=replace(state.observation, snapshots=state.observation.all_snapshots(), series=()),
                )
                if state.observation is not None
                else state
                for state in states
            ]
            history = replace(history, snapshots=tuple(sorted(history.all_snapshots(), key=_taken)), series=())
        return evaluate(
            services=self.specs,
            sources=states,
            history=history,
            now=self.now,
            display_tz=ZONE,
            defaults=self.defaults,
            discover_rest=self.discover_rest,
            memo=memo,
        )

    def observed(self, what: str) -> int:
        """A random source whose observation has some `what` (snapshots, runs, targets, jobs)."""
        return self.rng.choice([i for i, s in enumerate(self.states) if s.observation and getattr(s.observation, what)])

    def change(self, index: int, **changes: object) -> None:
        state = self.states[index]
        assert state.observation is not None
        self.states[index] = replace(state, observation=replace(state.observation, **changes))  # type: ignore[arg-type]

    # --- polls ---

    def new_snapshot(self) -> None:
        index = self.observed("snapshots")
        snapshots = self.states[index].observation.snapshots  # type: ignore[union-attr]
        model = self.rng.choice(snapshots)
        self.made += 1
        size = model.size_bytes and (model.size_bytes // 10 if self.rng.random() < 0.2 else model.size_bytes)
        if self.rng.random() < 0.2:  # no size known: outside the size trend, its copy still leaves the lookback
            size = None
        snapshot = evolve(
            model,
            snapshot_id=f"{model.snapshot_id}#{self.made}",
            taken_at=self.now - timedelta(minutes=self.rng.randrange(0, 180)),
            finished=self.rng.random() > 0.15,
            size_bytes=size,
            verification=self.rng.choice(list(Verification)),
        )
        self.change(index, snapshots=(*snapshots, snapshot))

    def new_run(self) -> None:
        index = self.observed("runs")
        runs = self.states[index].observation.runs  # type: ignore[union-attr]
        model = self.rng.choice(runs)
        self.made += 1
        started = self.now - timedelta(minutes=self.rng.randrange(0, 300))
        outcome = self.rng.choice(list(RunOutcome))
        ended = None if outcome is RunOutcome.RUNNING else started + timedelta(minutes=self.rng.randrange(1, 200))
        run = evolve(model, run_id=f"{model.run_id}#{self.made}", started_at=started, ended_at=ended, outcome=outcome)
        self.change(index, runs=(*runs, run))

    def new_series_snapshot(self) -> None:  # a PBS group's next backup, or its verification changing
        index = self.observed("series")
        listing = list(self.states[index].observation.series)  # type: ignore[union-attr]
        at = self.rng.randrange(len(listing))
        model = list(listing[at])
        if self.rng.random() < 0.3:  # verified (or failed) since: the same snapshots, one record different
            changed = self.rng.randrange(len(model))
            verification = self.rng.choice(list(Verification))
            model[changed] = evolve(model[changed], verification=verification)
        else:
            newest = model[-1]
            taken = max(newest.taken_at + timedelta(seconds=1), self.now - timedelta(minutes=self.rng.randrange(180)))
            taken = taken.replace(microsecond=0)
            size = newest.size_bytes and (newest.size_bytes // 10 if self.rng.random() < 0.2 else newest.size_bytes)
            stamp = taken.strftime("%Y-%m-%dT%H:%M:%SZ")
            model.append(
                evolve(
                    newest,
                    snapshot_id=listing[at].id_prefix + stamp,
                    taken_at=taken,
                    finished=self.rng.random() > 0.15,
                    size_bytes=size if self.rng.random() > 0.2 else None,
                    verification=Verification.NONE,
                    verified_at=None,
                )
            )
        listing[at] = SnapshotSeries.of(model, listing[at].id_prefix)
        self.change(index, series=tuple(listing))

    def remove_series_snapshot(self) -> None:  # pruned at the source (the oldest, usually): history has it
        index = self.observed("series")
        listing = list(self.states[index].observation.series)  # type: ignore[union-attr]
        at = self.rng.randrange(len(listing))
        model = list(listing[at])
        del model[0 if self.rng.random() < 0.7 else self.rng.randrange(len(model))]
        if model:
            listing[at] = SnapshotSeries.of(model, listing[at].id_prefix)
        else:
            del listing[at]
        self.change(index, series=tuple(listing))

    def remove_snapshot(self) -> None:  # pruned at the source: history still has it
        index = self.observed("snapshots")
        snapshots = list(self.states[index].observation.snapshots)  # type: ignore[union-attr]
        del snapshots[self.rng.randrange(len(snapshots))]
        self.change(index, snapshots=tuple(snapshots))

    def remote_copy_moves(self) -> None:  # a sync job copied (or its remote could not be asked)
        index = self.observed("remote_copies")
        copies = list(self.states[index].observation.remote_copies)  # type: ignore[union-attr]
        at = self.rng.randrange(len(copies))
        newest = None if self.rng.random() < 0.15 else self.now - timedelta(hours=self.rng.randrange(0, 80))
        copies[at] = evolve(copies[at], newest_at=newest)
        self.change(index, remote_copies=tuple(copies))

    def guest_locked(self) -> None:
        index = self.observed("targets")
        targets = list(self.states[index].observation.targets)  # type: ignore[union-attr]
        at = self.rng.randrange(len(targets))
        targets[at] = replace(targets[at], backup_running=not targets[at].backup_running)
        self.change(index, targets=tuple(targets))

    def job_switched(self) -> None:
        index = self.observed("jobs")
        jobs = list(self.states[index].observation.jobs)  # type: ignore[union-attr]
        at = self.rng.randrange(len(jobs))
        if self.rng.random() < 0.5:
            jobs[at] = replace(jobs[at], enabled=not jobs[at].enabled)
        else:  # Backrest's maxFrequency: an interval counted from the last run instead of a calendar
            interval = timedelta(hours=self.rng.choice((6, 20, 30)))
            next_run = jobs[at].next_run_at if self.rng.random() < 0.5 else None  # none: due counts from the last run
            schedule = ScheduleRef("", "interval", ZONE, interval=interval)
            jobs[at] = replace(jobs[at], schedule=schedule, next_run_at=next_run)
        self.change(index, jobs=tuple(jobs))

    def source_fails_or_recovers(self) -> None:
        index = self.rng.randrange(len(self.states))
        state = self.states[index]
        if state.error is None:
            self.states[index] = replace(state, error=f"{state.name}: cannot connect", last_attempt_at=self.now)
        else:
            self.states[index] = replace(state, error=None, last_attempt_at=self.now, last_success_at=self.now)

    def durations_move(self) -> None:
        jobs = [j.key for s in self.states if s.observation for j in s.observation.jobs]
        self.durations[self.rng.choice(jobs)] = timedelta(minutes=self.rng.randrange(1, 120))

    # --- config ---

    def config_changes(self) -> None:
        rng, specs = self.rng, self.specs
        choice = rng.randrange(8)
        if choice == 0 and specs:
            at = rng.randrange(len(specs))
            specs[at] = replace(specs[at], grace=timedelta(minutes=rng.choice((0, 5, 30, 90, 240))))
        elif choice == 1 and specs:
            at = rng.randrange(len(specs))
            # Not only whole days: a slot then leaves the lookback at a moment no other slot marks.
            specs[at] = replace(specs[at], lookback=timedelta(hours=rng.choice((30, 60, 100, 24 * 7, 24 * 14))))
        elif choice == 2 and specs:
            at = rng.randrange(len(specs))
            until = self.now + timedelta(minutes=rng.randrange(1, 600))
            specs[at] = replace(specs[at], silence=None if specs[at].silence else Silence("maintenance", until))
        elif choice == 3 and len(specs) > 2:
            del specs[rng.randrange(len(specs))]
        elif choice == 4:
            if any(s.id == "all-guests" for s in specs):
                specs[:] = [s for s in specs if s.id != "all-guests"]
            else:
                specs.append(ServiceSpec("all-guests", "All guests", ("guest:1*",), *_timings(self.defaults)))
        elif choice == 5:
            self.discover_rest = not self.discover_rest
        elif choice == 6 and specs:  # a configured service's own policy: restore tests and copies that age soon
            at = rng.randrange(len(specs))
            restore = rng.choice((None, timedelta(hours=rng.choice((2, 7, 20))), timedelta(days=rng.choice((1, 2, 4)))))
            copies, offsite = rng.choice(((0, 0), (0, 0), (2, 0), (2, 1)))  # without copies: none of its moments
            policy = ProtectionPolicy(copies=copies, offsite=offsite, restore_test=restore)
            specs[at] = replace(specs[at], protection=rng.choice((None, policy, policy)))
        else:
            policy = ProtectionPolicy(copies=2, offsite=1, restore_test=timedelta(days=rng.choice((1, 7))))
            self.defaults = replace(
                self.defaults,
                grace=timedelta(minutes=rng.choice((30, 60, 120))),
                protection=None if self.defaults.protection else policy,
                anomalies=AnomalyPolicy(min_history=rng.choice((3, 7))),
            )

    # --- the clock ---

    def tick(self, board: Board) -> None:
        jitter = self.rng.choice((timedelta(0), timedelta(microseconds=1), timedelta(seconds=1)))
        roll = self.rng.random()
        moments = self.moments(board) if roll < 0.3 else []
        if moments:  # exactly where a verdict ages on its own, even where the collector need not wake
            self.now = min(moments) + jitter
        elif roll < 0.6 and board.next_change_at is not None:  # exactly where a slot or a grace ends
            self.now = board.next_change_at + jitter
        else:
            self.now += self.rng.choice((1, 30, 61, 600, 1800, 3600, 5 * 3600, 86400)) * timedelta(seconds=1)

    def moments(self, board: Board) -> list[datetime]:
        """The coming moments of one kind (picked at random) at which some verdict may change with the clock alone:
        an interval plan coming due (anchored on the last run or success), a copy leaving the lookback, a restore
        test or a verification growing too old. Read off the board, so a few may be moments of nothing."""
        specs = {spec.id: spec for spec in self.specs}
        intervals = {
            job.schedule.interval
            for state in self.states
            if state.observation is not None
            for job in state.observation.jobs
            if job.schedule is not None and job.schedule.interval is not None
        }
        kind = self.rng.choice(("interval", "copies", "restore", "verification"))
        found: list[datetime] = []
        for verdict in board.verdicts:
            spec = specs.get(verdict.service_id)
            lookback = spec.lookback if spec else self.defaults.lookback
            grace = spec.grace if spec else self.defaults.grace
            policy = spec.protection if spec else self.defaults.protection
            protection = verdict.protection
            if kind == "interval":
                for at in (verdict.last_attempt_at, verdict.last_success_at):
                    if at is not None:
                        found += [at + interval + extra for interval in intervals for extra in (timedelta(0), grace)]
            elif kind == "copies" and protection is not None:
                found += [c.newest_at + lookback for c in protection.copies if c.newest_at is not None]
            elif kind == "restore" and protection is not None and protection.last_restore_test_at is not None:
                if policy is not None and policy.restore_test is not None:
                    found.append(protection.last_restore_test_at + policy.restore_test)
            elif kind == "verification" and protection is not None and protection.verification_stale_at is not None:
                found.append(protection.verification_stale_at)
        return [moment for moment in found if self.now < moment < self.now + timedelta(hours=36)]  # not a leap


def _timings(defaults: Defaults) -> tuple[timedelta, timedelta, timedelta]:
    return defaults.grace, defaults.max_age, defaults.lookback


def _taken(snapshot: Snapshot) -> tuple[datetime, str, str]:
    return snapshot.taken_at, snapshot.source, snapshot.snapshot_id


def _started(run: JobRun) -> tuple[datetime, str, str, str]:
    return run.started_at, run.source, run.run_id, run.target_key or ""


def first_difference(incremental: Board, scratch: Board) -> str:
    for a, b in zip(incremental.verdicts, scratch.verdicts, strict=False):
        if a != b:
            fields = [name for name in a.__dataclass_fields__ if getattr(a, name) != getattr(b, name)]
            return f"verdict {b.service_id}: {fields}\n  incremental {a}\n  from scratch {b}"
    for name in ("verdicts", "slots", "jobs", "datastores", "overall", "next_change_at"):
        if getattr(incremental, name) != getattr(scratch, name):
            return f"{name} differ"
    return "boards differ"


@pytest.mark.parametrize(("seed", "start"), [(1, NOW), (2, NOW), (3, NOW), (4, SPRING)])
def test_incremental_boards_equal_boards_judged_from_scratch(seed: int, start: datetime) -> None:
    """Seed 4 starts three days before the clocks go forward: slots, graces and windows cross the gap."""
    states, config = observed(start)
    world = World(random.Random(seed), list(states), service_specs(config), now=start, start=start)
    if seed == 2:  # protection judged from the start: copies, offsite, restore tests age with the clock
        world.defaults = Defaults(protection=ProtectionPolicy(copies=2, offsite=1, restore_test=timedelta(days=2)))
        for at, spec in enumerate(world.specs):  # restore tests due every few hours or days, not every month
            restore = timedelta(hours=world.rng.choice((5, 20, 50)))
            world.specs[at] = replace(
                spec, protection=replace(spec.protection or ProtectionPolicy(), restore_test=restore)
            )
    world.record()
    memo = Memo()
    polls = (
        world.new_snapshot,
        world.new_series_snapshot,
        world.new_run,
        world.remove_snapshot,
        world.remove_series_snapshot,
        world.remote_copy_moves,
        world.guest_locked,
        world.job_switched,
        world.source_fails_or_recovers,
        world.durations_move,
    )
    reused = judged = sums_reused = 0
    for step in range(STEPS):
        scratch = world.evaluate(None)
        incremental = world.evaluate(memo)
        assert incremental == scratch, f"step {step} at {world.now}: {first_difference(incremental, scratch)}"
        if step % 5 == 0:  # series judged as the very snapshots they hold are
            loose = replace(world.evaluate(None, loose=True), sources=scratch.sources)  # the same but for the lists
            assert scratch == loose, f"step {step} at {world.now}: {first_difference(scratch, loose)}"
        reused, judged = reused + memo.reused, judged + len(scratch.verdicts)
        sums_reused += memo.sums_reused
        roll = world.rng.random()
        if roll < 0.45:
            world.tick(scratch)
        elif roll < 0.9:
            world.rng.choice(polls)()
            world.record()
        else:
            world.config_changes()
    assert world.now - start > timedelta(days=3)  # slots, graces and lookbacks were crossed, not only seconds
    assert world.now - start < timedelta(days=40)  # but the world did not leave its history far behind
    assert reused > judged / 3  # and the memo did spare work: this compared reuse, not only re-judging
    assert sums_reused > STEPS  # calendar slots too
