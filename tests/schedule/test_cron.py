"""Cron dialect: cronsim semantics, descriptors, DST behaviour, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from schedule_helpers import NOW, runs_of

from backup_glance.schedule import ScheduleError, parse_schedule


def next_runs(expr: str, n: int = 3, tz: str = "UTC", start: datetime = NOW) -> list[str]:
    return runs_of("cron", expr, n, tz, start)


def test_it_ors_day_of_month_and_day_of_week_when_both_are_restricted() -> None:
    # the 13th OR any Friday (Debian/Vixie): Fri 17th, Fri 24th, Fri 31st, then Thu Feb 13th
    assert [d[:10] for d in next_runs("0 0 13 * 5", 4)] == ["2025-01-17", "2025-01-24", "2025-01-31", "2025-02-07"]


def test_it_ands_them_when_one_field_starts_with_a_star() -> None:
    # `*/2` in day-of-month switches to AND: odd days that are Fridays
    assert [d[:10] for d in next_runs("0 0 */2 * 5", 3)] == ["2025-01-17", "2025-01-31", "2025-02-07"]


@pytest.mark.parametrize(
    ("descriptor", "first"),
    [
        ("@hourly", "2025-01-15T11:00:00+00:00"),
        ("@daily", "2025-01-16T00:00:00+00:00"),
        ("@midnight", "2025-01-16T00:00:00+00:00"),
        ("@weekly", "2025-01-19T00:00:00+00:00"),
        ("@monthly", "2025-02-01T00:00:00+00:00"),
        ("@yearly", "2026-01-01T00:00:00+00:00"),
        ("@annually", "2026-01-01T00:00:00+00:00"),
    ],
)
def test_it_understands_descriptors(descriptor: str, first: str) -> None:
    assert next_runs(descriptor, 1) == [first]


def test_a_skipped_time_runs_after_the_gap_and_a_repeated_time_runs_once() -> None:
    # Europe/Vienna: 2025-03-30 02:00 CET -> 03:00 CEST at 01:00Z; 2025-10-26 03:00 CEST -> 02:00 CET at 01:00Z.
    # cronsim follows Debian cron: 02:30 on the spring-forward day runs at 03:00 CEST; on the fall-back
    # day it runs once, at the first (CEST) 02:30.
    spring = next_runs("30 2 * * *", 2, "Europe/Vienna", datetime(2025, 3, 29, 12, tzinfo=UTC))
    assert spring == ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]
    fall = next_runs("30 2 * * *", 2, "Europe/Vienna", datetime(2025, 10, 25, 12, tzinfo=UTC))
    assert fall == ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"]


def test_hourly_jobs_follow_real_time_across_dst() -> None:
    # Same Vienna transition: `0 * * * *` ticks in UTC, so the repeated 02:00 runs twice.
    runs = next_runs("0 * * * *", 3, "Europe/Vienna", datetime(2025, 10, 26, 0, 30, tzinfo=UTC))
    assert runs == ["2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00", "2025-10-26T04:00:00+01:00"]


def test_previous_before_mirrors_next_after() -> None:
    s = parse_schedule("30 2 * * 1-5", "cron", "Europe/Vienna")
    prev = s.previous_before(NOW)
    assert prev is not None and prev.isoformat() == "2025-01-15T02:30:00+01:00"
    assert s.next_after(prev) == s.next_after(NOW - (NOW - prev) / 2)


def test_it_describes_through_cronsim() -> None:
    assert parse_schedule("0 2 * * 1-5", "cron", "Europe/Vienna").describe() == (
        "At 02:00 on Monday through Friday (Europe/Vienna)"
    )
    assert parse_schedule("0 0 21,31 * *", "cron").describe() == "At 00:00 on the 21st and the 31st day of month (UTC)"


@pytest.mark.parametrize(
    ("expr", "message", "position"),
    [
        ("", "empty cron expression", 0),
        ("0 2 * *", "a cron expression has 5 fields .* got 4", 7),
        ("0 0 2 * * *", "a cron expression has 5 fields .* got 6", 10),
        ("61 2 * * *", "bad minute '61'", 0),
        ("0 24 * * *", "bad hour '24'", 2),
        ("0 0 32 * *", "bad day-of-month '32'", 4),
        ("0 0 30 2 *", "this never runs: day-of-month '30' never comes in month '2' at position 4$", 4),
        ("0 0 * 13 *", "bad month '13'", 6),
        ("0 0 * * 8", "bad day-of-week '8'", 8),
        ("*/0 * * * *", "bad minute", 0),
        ("@reboot", "@reboot is not a schedule", 0),
        ("@DAILY", "unknown descriptor '@DAILY'", 0),
        ("@daily 5", "descriptor '@daily' must stand alone", 7),
    ],
)
def test_it_names_the_bad_field(expr: str, message: str, position: int) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        parse_schedule(expr, "cron")
    assert info.value.position == position
