"""How fast is history at homelab-and-then-some scale? Run: .venv/bin/python bench/bench_history.py [targets] [days]

One PBS source with `targets` backup groups (default 2,000), one snapshot per group per day for `days` days
(default 60, so 120,000 snapshots), 20 vzdump jobs with one job-level run per day. It times the first
recording, a steady-state poll (same facts again), the next day's poll (a new snapshot per group, the oldest
pruned at the source), a 14-day view, one size trend and a retention prune, on a real file in a temp directory.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from backup_glance.history import History
from backup_glance.model import Job, JobKind, JobRun, Observation, RunOutcome, Snapshot, Verification

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
JOBS = 20
T = TypeVar("T")


def an_observation(*, targets: int, days: int, today: datetime) -> Observation:
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
        for t in range(targets)
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
    )
    jobs = tuple(
        Job(key=f"pve1/backup/job{j}", source="pbs1", kind=JobKind.BACKUP, job_id=f"job{j}", name=f"job {j}")
        for j in range(JOBS)
    )
    return Observation(
        source="pbs1", kind="pbs", observed_at=today, timezone="UTC", snapshots=snapshots, runs=runs, jobs=jobs
    )


def timed(label: str, action: Callable[[], T], show: Callable[[T], object] = str) -> T:
    started = time.perf_counter()
    result = action()
    print(f"{label:<50} {time.perf_counter() - started:7.3f} s   {show(result)}")
    return result


def main() -> None:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    days = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    print(f"{targets} targets x {days} days = {targets * days:,} snapshots, {JOBS * days:,} runs")
    first = an_observation(targets=targets, days=days, today=NOW)
    steady = dataclasses.replace(first, observed_at=NOW + timedelta(minutes=5))
    next_day = an_observation(targets=targets, days=days, today=NOW + timedelta(days=1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite3"
        with History.open(path, retention=timedelta(days=90)) as history:
            timed("record, first time", lambda: history.record(first))
            timed("record, steady state (same facts)", lambda: history.record(steady))
            timed("record, next day (+1 snapshot/group, -1 pruned)", lambda: history.record(next_day))
            timed(
                "view, 14 days",
                lambda: history.view(since=NOW - timedelta(days=14)),
                lambda v: f"{len(v.snapshots):,} snapshots, {len(v.runs):,} runs, {len(v.typical_durations)} jobs",
            )
            timed("prune (retention 90 days, nothing old)", lambda: history.prune(now=NOW + timedelta(days=1)))
            timed("prune 30 days later", lambda: history.prune(now=NOW + timedelta(days=31)))
        print(f"file size after close: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
