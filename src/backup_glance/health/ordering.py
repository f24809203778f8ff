"""Ordering checks: a job that must wait for another (`after:`) started too early, or after it failed. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..model import JobRun, RunOutcome, ServiceSpec
from ._facts import Facts
from ._text import when

# How far back a predecessor's runs may lie and still belong to "the batch before" the checked run.
ORDERING_WINDOW = timedelta(hours=12)


def ordering_reasons(
    spec: ServiceSpec,
    facts: Facts,
    predecessors: list[tuple[ServiceSpec, Facts]],
    tz: str,
    now: datetime,
) -> list[str]:
    """Why this service's latest run broke an `after:` rule: per predecessor target, its latest run before ours
    was still going when ours started, or had failed (a retry that succeeded in time is fine)."""
    if not facts.runs:
        return []
    run = facts.runs[-1]
    reasons = []
    for other, other_facts in predecessors:
        latest: dict[str | None, JobRun] = {}
        for candidate in other_facts.runs:  # oldest first: the last one kept per target is its latest
            if run.started_at - ORDERING_WINDOW <= candidate.started_at <= run.started_at:
                latest[candidate.target_key] = candidate
        unfinished = [r for r in latest.values() if r.ended_at is None or r.ended_at > run.started_at]
        failed = [r for r in latest.values() if r.outcome is RunOutcome.FAILED and r not in unfinished]
        if unfinished:
            ends = [r.ended_at for r in unfinished if r.ended_at is not None]
            finished = when(max(ends), tz, now) if len(ends) == len(unfinished) else "still running"
            started = when(run.started_at, tz, now)
            reasons.append(f"{spec.name} started {started} before {other.name} finished ({finished})")
        if failed:
            names = _labels(failed)
            reasons.append(
                f"{spec.name} ran at {when(run.started_at, tz, now)} after {other.name} failed "
                f"({when(failed[-1].started_at, tz, now)}{names})"
            )
    return reasons


def _labels(runs: list[JobRun]) -> str:
    """ ": nextcloud, vault" — which of the predecessor's targets failed (the last part of each key)."""
    names = sorted({r.target_key.split(":", 1)[-1].rsplit("/", 1)[-1] for r in runs if r.target_key})
    return (": " + ", ".join(names)) if names else ""
