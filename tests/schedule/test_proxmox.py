"""Proxmox dialect: parsing, quirks, errors, search bounds, description."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from schedule_helpers import NOW, runs_of

from backup_glance.schedule import Schedule, ScheduleError, parse_schedule


def next_runs(expr: str, n: int = 3, tz: str = "UTC", start: datetime = NOW) -> list[str]:
    return runs_of("proxmox", expr, n, tz, start)


class TestParse:
    def test_it_exposes_expression_dialect_and_timezone(self) -> None:
        s = parse_schedule("mon..fri 02:00", dialect="proxmox", tz="Europe/Vienna")
        assert (s.expression, s.dialect, s.timezone) == ("mon..fri 02:00", "proxmox", "Europe/Vienna")
        assert isinstance(s, Schedule)

    def test_it_returns_the_same_object_for_the_same_arguments(self) -> None:
        assert parse_schedule("daily") is parse_schedule("daily", "proxmox", "UTC")

    def test_it_reads_a_lone_number_as_the_minute(self) -> None:
        assert next_runs("mon..fri 22", 2) == ["2025-01-15T10:22:00+00:00", "2025-01-15T11:22:00+00:00"]

    def test_it_reads_24_00_as_minute_24_second_0(self) -> None:
        assert next_runs("24:00", 2) == ["2025-01-15T10:24:00+00:00", "2025-01-15T11:24:00+00:00"]

    def test_it_lets_open_repetitions_overshoot_like_proxmox_time(self) -> None:
        # hours 0,7,14,21,28: after 21:00 the search jumps to "28:00" = 04:00 next day, then to 07:00
        assert next_runs("0/7:00", 3, start=datetime(2025, 1, 15, 20, tzinfo=UTC)) == [
            "2025-01-15T21:00:00+00:00", "2025-01-16T07:00:00+00:00", "2025-01-16T14:00:00+00:00"
        ]  # fmt: skip

    def test_it_wraps_weekday_ranges(self) -> None:
        assert [d[:10] for d in next_runs("fri..mon", 4)] == ["2025-01-17", "2025-01-18", "2025-01-19", "2025-01-20"]

    def test_it_ands_weekday_and_date(self) -> None:
        assert next_runs("fri *-*-13", 1) == ["2025-06-13T00:00:00+00:00"]

    def test_it_evaluates_a_utc_suffix_in_utc(self) -> None:
        assert next_runs("02:30 UTC", 1, tz="Europe/Vienna") == ["2025-01-16T03:30:00+01:00"]

    def test_it_trims_surrounding_whitespace(self) -> None:
        assert next_runs("\t 02:00 \n", 1) == ["2025-01-16T02:00:00+00:00"]

    def test_it_supports_seconds(self) -> None:
        assert next_runs("*:*:0/15", 2) == ["2025-01-15T10:17:30+00:00", "2025-01-15T10:17:45+00:00"]


class TestErrors:
    @pytest.mark.parametrize(
        ("expr", "message", "position"),
        [
            ("", "empty schedule expression", 0),
            ("   ", "empty schedule expression", 3),
            ("mon-fri 02:00", r"unexpected '-fri 02:00': weekday ranges are written with '\.\.'", 3),
            ("mon, wed 02:00", "no spaces are allowed after ','", 3),
            ("mon,xyz 02:00", "bad weekday 'xyz'", 4),
            ("not valid!", "bad weekday 'not'", 0),
            ("daily 02:00", "keyword 'daily' must stand alone", 0),
            ("Daily", "keyword 'Daily' must be lowercase", 0),
            ("12:60", "bad minute '60' in '12:60'", 3),
            ("61", "bad minute '61'", 0),
            ("10..5:00", r"bad range '10\.\.5'", 0),
            ("*/0", "repetition step of 0", 1),
            ("@12345", "Unix timestamps", 0),
            ("2020-03~01", "'~'", 0),
            ("10:00 Europe/Vienna", "only a trailing 'UTC' may name a time zone", 6),
            ("  mon 0 0", r"unexpected '0' after the schedule at position 8", 8),
            ("*-13-01", "unexpected '-01'", 4),
            ("UTC", "'UTC' needs a schedule", 0),
        ],
    )
    def test_it_names_the_offending_part(self, expr: str, message: str, position: int) -> None:
        with pytest.raises(ScheduleError, match=message) as info:
            parse_schedule(expr)
        assert info.value.position == position
        assert info.value.expression == expr
        assert f"at position {position}" in str(info.value)

    def test_it_rejects_an_unknown_time_zone(self) -> None:
        with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
            parse_schedule("daily", tz="Mars/Olympus")

    def test_it_rejects_an_unknown_dialect(self) -> None:
        with pytest.raises(ScheduleError, match="unknown dialect 'systemd'"):
            parse_schedule("daily", dialect="systemd")

    def test_schedule_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            parse_schedule("nope")

    def test_it_refuses_naive_datetimes(self) -> None:
        s = parse_schedule("daily")
        with pytest.raises(ValueError, match="naive datetime"):
            s.next_after(datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="naive datetime"):
            s.previous_before(datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="naive datetime"):
            list(s.between(datetime(2025, 1, 1), NOW))


class TestSearch:
    def test_impossible_dates_never_fire(self) -> None:
        assert next_runs("02-30") == []
        assert next_runs("2021-02-29") == []
        assert parse_schedule("02-30").previous_before(NOW) is None

    def test_a_past_one_shot_date_has_a_previous_run_but_no_next(self) -> None:
        s = parse_schedule("2015-10-21")
        assert s.next_after(NOW) is None
        prev = s.previous_before(NOW)
        assert prev is not None and prev.isoformat() == "2015-10-21T00:00:00+00:00"

    def test_it_gives_up_after_1000_steps(self) -> None:
        # A Friday Feb 29 takes a few steps per year and is found 11 years ahead; Feb 30 never matches,
        # and the search ends (None) after 1000 steps, i.e. a few hundred simulated years.
        assert next_runs("fri *-02-29", 1) == ["2036-02-29T00:00:00+00:00"]
        started = time.perf_counter()
        assert next_runs("fri *-02-30", 1) == []
        assert time.perf_counter() - started < 0.5

    def test_results_are_in_the_schedule_zone(self) -> None:
        got = parse_schedule("02:00", tz="Europe/Vienna").next_after(NOW)
        assert got is not None and got.tzinfo is not None and str(got.tzinfo) == "Europe/Vienna"

    def test_microseconds_are_respected(self) -> None:
        s = parse_schedule("*:*:*")
        when = datetime(2025, 1, 15, 10, 0, 0, 500_000, tzinfo=UTC)
        assert s.next_after(when) == datetime(2025, 1, 15, 10, 0, 1, tzinfo=UTC)
        assert s.previous_before(when) == datetime(2025, 1, 15, 10, 0, 0, tzinfo=UTC)

    def test_previous_before_is_strictly_before(self) -> None:
        s = parse_schedule("02:00")
        at = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
        assert s.previous_before(at) == at - timedelta(days=1)

    def test_between_includes_start_and_excludes_end(self) -> None:
        s = parse_schedule("*:0/30")
        start, end = datetime(2025, 1, 15, 10, 0, tzinfo=UTC), datetime(2025, 1, 15, 11, 0, tzinfo=UTC)
        assert [t.minute for t in s.between(start, end)] == [0, 30]

    def test_searches_near_the_end_of_time_return_none(self) -> None:
        s = parse_schedule("*:*:*")
        assert s.next_after(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) is None


class TestDescribe:
    @pytest.mark.parametrize(
        ("expr", "tz", "text"),
        [
            ("mon..fri 02:00", "Europe/Vienna", "Mon–Fri at 02:00 (Europe/Vienna)"),
            ("daily", "UTC", "Daily at 00:00 (UTC)"),
            ("02:30 UTC", "Europe/Vienna", "At 02:30 (UTC)"),
            ("*:0/15", "UTC", "Every 15 minutes (UTC)"),
            ("mon..fri 22", "UTC", "Mon–Fri every hour at :22 (UTC)"),
            ("sat *-1..7 15:00", "UTC", "Sat on days 1–7 of every month at 15:00 (UTC)"),
            ("2,22:30", "UTC", "At 02:30 and 22:30 (UTC)"),
            ("fri..mon 03:00", "UTC", "Fri–Mon at 03:00 (UTC)"),
            ("*-*-01 07:00", "UTC", "On the 1st of every month at 07:00 (UTC)"),
        ],
    )
    def test_it_describes_common_schedules(self, expr: str, tz: str, text: str) -> None:
        assert parse_schedule(expr, tz=tz).describe() == text
