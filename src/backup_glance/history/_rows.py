"""Records <-> SQLite rows. Instants are integer epoch seconds (UTC); enums are their string values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..model import JobRun, RunOutcome, Snapshot, Verification

JOB_LEVEL = ""  # the stored target_key of a job-level run (see the runs table)

# The stored fields of a snapshot that a later observation may change, in column order.
SNAPSHOT_FIELDS = "target_key, location, taken_at, finished, size_bytes, verification, verified_at"

SNAPSHOT_COLUMNS = f"source, snapshot_id, {SNAPSHOT_FIELDS}"
RUN_COLUMNS = "source, run_id, target_key, job_key, started_at, ended_at, outcome, message, size_bytes"
RunKey = tuple[str, str, str]  # source, run_id, target_key

# The stored text of each enum member: `.value` goes through a Python descriptor, and a first poll of a big PBS
# stores hundreds of thousands of rows.
VERIFICATION_TEXT = {member: member.value for member in Verification}
OUTCOME_TEXT = {member: member.value for member in RunOutcome}


def epoch(at: datetime) -> int:
    if at.tzinfo is None:
        raise _naive(at)
    return int(at.timestamp())


def _naive(at: datetime) -> ValueError:
    return ValueError(f"naive datetime {at.isoformat()} given to history; all instants must be aware")


def epoch_or_none(at: datetime | None) -> int | None:
    return None if at is None else epoch(at)


def instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def instant_or_none(seconds: int | None) -> datetime | None:
    return None if seconds is None else instant(seconds)


def snapshot_row(s: Snapshot, seen_at: int) -> tuple[object, ...]:
    """The row that stores `s` as seen at `seen_at` (first and last sighting), in `SNAPSHOT_COLUMNS` order.

    Written out rather than built from `epoch`: a first poll of a big PBS stores hundreds of thousands."""
    taken_at, verified_at = s.taken_at, s.verified_at
    if taken_at.tzinfo is None:
        raise _naive(taken_at)
    if verified_at is not None and verified_at.tzinfo is None:
        raise _naive(verified_at)
    return (
        s.source,
        s.snapshot_id,
        s.target_key,
        s.location,
        int(taken_at.timestamp()),
        int(s.finished),
        s.size_bytes,
        VERIFICATION_TEXT[s.verification],
        None if verified_at is None else int(verified_at.timestamp()),
        seen_at,
        seen_at,
    )


def snapshot_from_row(row: tuple[Any, ...]) -> Snapshot:
    source, snapshot_id, target_key, location, taken_at, finished, size_bytes, verification, verified_at = row
    return Snapshot(
        target_key=target_key,
        source=source,
        snapshot_id=snapshot_id,
        taken_at=instant(taken_at),
        finished=bool(finished),
        size_bytes=size_bytes,
        verification=Verification(verification),
        verified_at=instant_or_none(verified_at),
        location=location,
    )


def run_key(run: JobRun) -> RunKey:
    return (run.source, run.run_id, run.target_key or JOB_LEVEL)


def run_row(run: JobRun) -> tuple[object, ...]:
    return (
        *run_key(run),
        run.job_key,
        epoch(run.started_at),
        epoch_or_none(run.ended_at),
        OUTCOME_TEXT[run.outcome],
        run.message,
        run.size_bytes,
    )


def run_from_row(row: tuple[Any, ...]) -> JobRun:
    source, run_id, target_key, job_key, started_at, ended_at, outcome, message, size_bytes = row
    return JobRun(
        job_key=job_key,
        source=source,
        run_id=run_id,
        started_at=instant(started_at),
        ended_at=instant_or_none(ended_at),
        outcome=RunOutcome(outcome),
        message=message,
        target_key=target_key or None,
        size_bytes=size_bytes,
    )
