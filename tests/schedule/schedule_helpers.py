"""Shared by the schedule tests: a fixed start and the next runs as ISO strings (a failure prints timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime

from backup_glance.schedule import parse_schedule

NOW = datetime(2025, 1, 15, 10, 17, 23, tzinfo=UTC)  # a Wednesday, the vectors' base


def runs_of(dialect: str, expr: str, n: int = 3, tz: str = "UTC", start: datetime = NOW) -> list[str]:
    schedule = parse_schedule(expr, dialect, tz)
    out: list[str] = []
    when: datetime | None = start
    for _ in range(n):
        when = schedule.next_after(when) if when else None
        if when is None:
            break
        out.append(when.isoformat())
    return out
