"""How fast is history at homelab-and-then-some scale? Run: .venv/bin/python bench/bench_history.py [targets] [days]

One PBS source with `targets` backup groups (default 2,000), one snapshot per group per day for `days` days
(default 60, so 120,000 snapshots), 20 vzdump jobs with one job-level run per day and one backup task per guest
per day (each guest's part of its job's run). It times the first
recording, a steady-state poll (same facts again), a quiet poll (5 % of the groups got a snapshot, the other
records are the same objects, as the PBS source hands them back), the next day's poll (a new snapshot per group,
the oldest pruned at the source), a 14-day view and a retention prune, on a real file in a temp directory, and
prints the WAL's size after each write.

Then it asks whether history's cost follows the window rather than the total: two files with the same guests,
one holding 90 days and one 365 days, opened afresh in turn and asked for a 15-day view (median of 7 opens each).
Targets (issue 12): the two views within 20 % of each other, a quiet record under 50 ms, the WAL bounded.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import msgspec

from backup_glance.history import History
from backup_glance.history._store import WAL_LIMIT
from backup_glance.model import Job, JobKind, JobRun, Observation, RunOutcome, Snapshot, Verification

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
JOBS = 20
QUIET_SHARE = 0.05
WINDOW = timedelta(days=15)
STORED_DAYS = (90, 365)
OPENS = 7
T = TypeVar("T")


def an_observation(*, targets: int, days: int, today: datetime, first_target: int = 0) -> Observation:
    # The newest snapshot of each group is verified by the next day, so a day later 2,000 rows change.
    snapshots = tuple(
        Snapshot(
            target_key=f"guest:{100 + t}",
            source="pbs1",
            snapshot_id=f"main/vm/{100 + t}/{taken_at.isoformat()}",
            taken_at=taken_at,
            size_bytes=10_000_000_000 + t * 1_000 + taken_at.toordinal(),
            verification=Verification.OK if d > 0 else Verification.NONE,
            location="main",
        )
        for t in range(first_target, first_target + targets)
        for d in range(days)
        for taken_at in [today - timedelta(days=d, hours=10)]
    )
    runs = tuple(
        JobRun(
            job_key=f"pve1/backup/job{j}",
            source="pbs1",
            run_id=f"UPID:pve1:{j}:{(today - timedelta(days=d)).date().isoformat()}",
            started_at=today - timedelta(days=d, hours=10),
            ended_at=today - timedelta(days=d, hours=10) + timedelta(minutes=30 + j),
            outcome=RunOutcome.OK,
        )
        for j in range(JOBS)
        for d in range(days)
    ) + tuple(
        JobRun(  # each guest's own backup task on the PBS side: its part of the job's run
            job_key=f"pve1/backup/job{t % JOBS}",
            source="pbs1",
            run_id=f"UPID:pbs1:backup:{100 + t}:{started_at.isoformat()}",
            started_at=started_at,
            ended_at=started_at + timedelta(minutes=3),
            outcome=RunOutcome.OK,
            target_key=f"guest:{100 + t}",
        )
        for t in range(first_target, first_target + targets)
        for d in range(days)
        for started_at in [today - timedelta(days=d, hours=10) + timedelta(seconds=t)]
    )
    jobs = tuple(
        Job(key=f"pve1/backup/job{j}", source="pbs1", kind=JobKind.BACKUP, job_id=f"job{j}", name=f"job {j}")
        for j in range(JOBS)
    )
    return Observation(
        source="pbs1", kind="pbs", observed_at=today, timezone="UTC", snapshots=snapshots, runs=runs, jobs=jobs
    )


def quietly_changed(observation: Observation, *, share: float, at: datetime) -> Observation:
    """`share` of the groups got a new snapshot; every other record is the very same object as before."""
    newest: dict[str, Snapshot] = {}
    for snapshot in observation.snapshots:
        if snapshot.target_key not in newest or snapshot.taken_at > newest[snapshot.target_key].taken_at:
            newest[snapshot.target_key] = snapshot
    step = round(1 / share)
    added = tuple(
        msgspec.structs.replace(s, snapshot_id=f"{s.snapshot_id}+new", taken_at=at - timedelta(minutes=1))
        for s in list(newest.values())[::step]
    )
    return dataclasses.replace(observation, observed_at=at, snapshots=observation.snapshots + added)


def wal_mb(path: Path) -> float:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size / 1e6 if wal.exists() else 0.0


def timed(label: str, action: Callable[[], T], show: Callable[[T], object] = str) -> tuple[T, float]:
    started = time.perf_counter()
    result = action()
    took = time.perf_counter() - started
    print(f"{label:<50} {took:7.3f} s   {show(result)}")
    return result, took


def stored_for(path: Path, *, targets: int, days: int) -> None:
    """A history file holding `days` days of `targets` guests, recorded a slice of guests at a time."""
    per_slice = max(1, 20_000 // days)
    with History.open(path, retention=timedelta(days=days + 30)) as history:
        for first_target in range(0, targets, per_slice):
            slice_size = min(per_slice, targets - first_target)
            history.record(an_observation(targets=slice_size, days=days, today=NOW, first_target=first_target))


def cold_view_s(path: Path, *, days: int) -> float:
    """A fresh open's first 15-day view: what a restarted service pays for its first board."""
    with History.open(path, retention=timedelta(days=days + 30)) as history:
        started = time.perf_counter()
        history.view(since=NOW - WINDOW, until=NOW + timedelta(minutes=5))
        return time.perf_counter() - started


def window_cost(targets: int) -> None:
    print(f"\nDoes the cost follow the window? A {WINDOW.days}-day view of {targets} guests, median of {OPENS} opens")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {days: Path(tmp) / f"history-{days}.sqlite3" for days in STORED_DAYS}
        built = {}
        for days, path in paths.items():
            started = time.perf_counter()
            stored_for(path, targets=targets, days=days)
            built[days] = time.perf_counter() - started
        # The files opened in turn, not one after the other: the machine's speed drifts by a fifth within a
        # minute, as much as the difference this is looking for.
        times: dict[int, list[float]] = {days: [] for days in STORED_DAYS}
        for _ in range(OPENS):
            for days, path in paths.items():
                times[days].append(cold_view_s(path, days=days))
        for days, path in paths.items():
            size = path.stat().st_size / 1e6
            print(
                f"  {days:3} days stored ({targets * days:,} snapshots, {size:6.1f} MB, "
                f"built in {built[days]:5.1f} s): view {statistics.median(times[days]) * 1000:7.1f} ms"
            )
    short, long = (statistics.median(times[days]) for days in STORED_DAYS)
    ratio = long / short
    verdict = "PASS" if ratio <= 1.2 else "FAIL"
    print(f"  {verdict}  the view with {STORED_DAYS[1]} days stored within 20 % of {STORED_DAYS[0]} ({ratio:.2f}x)")


def main() -> None:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    print(f"{targets} targets x {days} days = {targets * days:,} snapshots, {(JOBS + targets) * days:,} runs")
    first = an_observation(targets=targets, days=days, today=NOW)
    steady = dataclasses.replace(first, observed_at=NOW + timedelta(minutes=5))
    quiet = quietly_changed(steady, share=QUIET_SHARE, at=NOW + timedelta(minutes=10))
    next_day = an_observation(targets=targets, days=days, today=NOW + timedelta(days=1))
    wal = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite3"
        with History.open(path, retention=timedelta(days=90)) as history:
            steps: list[tuple[str, Observation]] = [
                ("record, first time", first),
                ("record, steady state (same facts)", steady),
                (f"record, quiet ({QUIET_SHARE:.0%} of groups +1 snapshot)", quiet),
                ("record, next day (+1 snapshot/group, -1 pruned)", next_day),
            ]
            took = {}
            for label, observation in steps:
                _, took[label] = timed(label, partial(history.record, observation), lambda _: "")
                wal.append(wal_mb(path))
                print(f"{'':<50} WAL {wal[-1]:6.1f} MB")
            timed(
                "view, 14 days",
                lambda: history.view(since=NOW - timedelta(days=14)),
                lambda v: f"{len(v.snapshots):,} snapshots, {len(v.runs):,} runs, {len(v.typical_durations)} jobs",
            )
            timed("prune (retention 90 days, nothing old)", lambda: history.prune(now=NOW + timedelta(days=1)))
            timed("prune 30 days later", lambda: history.prune(now=NOW + timedelta(days=31)))
            wal.append(wal_mb(path))
        print(f"file size after close: {path.stat().st_size / 1e6:.1f} MB")
    quiet_s = took[steps[2][0]]
    print(f"  {'PASS' if quiet_s < 0.05 else 'FAIL'}  quiet record under 50 ms ({quiet_s * 1000:.1f} ms)")
    bound = WAL_LIMIT / 1e6
    after_first = max(wal[1:])
    print(
        f"  {'PASS' if after_first <= bound else 'FAIL'}  WAL after the first record at most {bound:.1f} MB "
        f"(largest {after_first:.1f} MB; {wal[0]:.1f} MB right after the first record)"
    )
    window_cost(targets)


if __name__ == "__main__":
    main()
