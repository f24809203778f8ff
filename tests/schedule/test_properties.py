"""Property tests for both dialects: ordering, between == chained next_after, the backward mirror,
DST transition days, and that no input hangs or raises anything but ScheduleError."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_glance.schedule import Schedule, ScheduleError, parse_schedule

FRAGMENTS = ["mon", "fri..mon", "sat,sun", "Monday", "*-*-01", "*-02-29", "2026-*-1..7", "*-*-*/3",
             "02:00", "2:00/30", "*:0/15", "*/5", "0/7:00", "22", "*:*:0/20", "24:00", "12/2:5",
             "*:5/50", "1..10/2:00", "UTC", " ", "..", ",", "-", ":", "/", "*", "7", "59", "0", "daily"]  # fmt: skip
EXPRESSIONS = ["daily", "hourly", "02:30", "2:00/30", "mon..fri 02:00", "*:0/30", "sat *-1..7 15:00",
               "0/7:00", "*:5/50", "*-*-5/30", "fri..mon 03:00", "1/12:0/15", "*:*:0/20", "weekly",
               "*-*-31 01:00", "12/2:5", "01:30", "03:00", "mon,wed,fri 21:30", "*/45"]  # fmt: skip
CRON = ["0 2 * * *", "30 2 * * *", "*/15 * * * *", "0 * * * *", "0 3 1 * 1", "@weekly", "5 4 * * sun"]
ZONES = ["UTC", "Europe/Vienna", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
NO_DST = ["UTC", "Asia/Kolkata"]
# Open repetitions that overshoot a field (`*:5/50` at :55 jumps to :45 of the next hour) make forward
# search skip occurrences that other start points reach, so "previous of next" is only exact without them.
OVERSHOOTING = {"0/7:00", "*:5/50", "*-*-5/30", "*/45"}

instants = st.integers(min_value=1_600_000_000, max_value=1_900_000_000).map(lambda t: datetime.fromtimestamp(t, UTC))
grammarish = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map("".join)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def any_schedule() -> st.SearchStrategy[Schedule]:
    proxmox = st.builds(
        lambda e, z: parse_schedule(e, "proxmox", z), st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES)
    )
    cron = st.builds(lambda e, z: parse_schedule(e, "cron", z), st.sampled_from(CRON), st.sampled_from(ZONES))
    return st.one_of(proxmox, cron)


@fast
@given(any_schedule(), instants)
def test_next_after_is_strictly_increasing(schedule: Schedule, when: datetime) -> None:
    for _ in range(6):
        nxt = schedule.next_after(when)
        if nxt is None:
            return
        assert nxt > when
        when = nxt


@fast
@given(any_schedule(), instants, st.integers(min_value=1, max_value=3 * 86400))
def test_between_equals_repeated_next_after(schedule: Schedule, start: datetime, span: int) -> None:
    end = start + timedelta(seconds=span)
    chained = []
    when = schedule.next_after(start - timedelta(seconds=1))
    while when is not None and when < end:
        chained.append(when)
        when = schedule.next_after(when)
    assert list(schedule.between(start, end)) == chained


@fast
@given(any_schedule(), instants)
def test_previous_before_mirrors_next_after(schedule: Schedule, when: datetime) -> None:
    prev = schedule.previous_before(when)
    if prev is None:
        return
    assert prev < when
    after = schedule.next_after(prev)
    assert after is None or after >= when  # no occurrence strictly between prev and when


@fast
@given(st.sampled_from([e for e in EXPRESSIONS if e not in OVERSHOOTING]), st.sampled_from(NO_DST), instants)
def test_previous_of_next_is_at_or_before_the_start_without_dst(expr: str, tz: str, when: datetime) -> None:
    schedule = parse_schedule(expr, "proxmox", tz)
    nxt = schedule.next_after(when)
    if nxt is not None:
        prev = schedule.previous_before(nxt)
        assert prev is None or prev <= when


def parses_quickly(text: str, dialect: str) -> None:
    started = time.perf_counter()
    try:
        schedule = parse_schedule(text, dialect, "Europe/Vienna")
    except ScheduleError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
    else:
        when = datetime(2025, 10, 25, 22, 30, tzinfo=UTC)
        schedule.next_after(when)
        schedule.previous_before(when)
        schedule.describe()
    assert time.perf_counter() - started < 2.0


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=30), grammarish), st.sampled_from(["proxmox", "cron"]))
def test_any_text_gives_a_schedule_or_schedule_error_quickly(text: str, dialect: str) -> None:
    parses_quickly(text, dialect)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["0", "*", "*/5", "1-5", "L", "5L", "1#2", "MON", "JAN", "60", "a", ","]),
                min_size=1, max_size=7).map(" ".join))  # fmt: skip
def test_any_cron_like_text_gives_a_schedule_or_schedule_error(text: str) -> None:
    parses_quickly(text, "cron")


def runs(expr: str, tz: str, start: str, end: str) -> list[str]:
    s = parse_schedule(expr, "proxmox", tz)
    return [t.isoformat() for t in s.between(datetime.fromisoformat(start), datetime.fromisoformat(end))]


def test_vienna_spring_forward_skips_the_missing_half_hour() -> None:
    # Europe/Vienna 2025-03-30: 02:00 CET (+01:00) jumps to 03:00 CEST (+02:00), at 2025-03-30T01:00:00Z.
    assert runs("02:30", "Europe/Vienna", "2025-03-29T12:00+00:00", "2025-04-01T00:00+00:00") == [
        "2025-03-31T02:30:00+02:00"
    ]
    assert runs("hourly", "Europe/Vienna", "2025-03-30T00:30+01:00", "2025-03-30T04:00+02:00") == [
        "2025-03-30T01:00:00+01:00", "2025-03-30T03:00:00+02:00"
    ]  # fmt: skip


def test_vienna_fall_back_fires_the_repeated_time_once() -> None:
    # Europe/Vienna 2025-10-26: 03:00 CEST (+02:00) falls back to 02:00 CET (+01:00), at 2025-10-26T01:00:00Z.
    assert runs("02:30", "Europe/Vienna", "2025-10-25T12:00+00:00", "2025-10-27T00:00+01:00") == [
        "2025-10-26T02:30:00+02:00"
    ]
    # Which 02:00 depends on the search start, as in proxmox-time: from 01:00:00 the search normalises
    # 01:00:01 first (offset +02:00 remembered) and then reaches the first 02:00; from 01:30 it jumps straight
    # to 02:00 with glibc's fresh guess (UTC) and lands on the second one. Either way it fires once.
    assert runs("hourly", "Europe/Vienna", "2025-10-26T00:30+02:00", "2025-10-26T04:30+01:00") == [
        "2025-10-26T01:00:00+02:00", "2025-10-26T02:00:00+02:00", "2025-10-26T03:00:00+01:00",
        "2025-10-26T04:00:00+01:00",
    ]  # fmt: skip
    assert runs("hourly", "Europe/Vienna", "2025-10-26T01:30+02:00", "2025-10-26T04:30+01:00") == [
        "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00", "2025-10-26T04:00:00+01:00"
    ]  # fmt: skip


def test_new_york_spring_forward_and_fall_back() -> None:
    # America/New_York 2025-03-09: 02:00 EST (-05:00) -> 03:00 EDT (-04:00) at 07:00Z;
    # 2025-11-02: 02:00 EDT (-04:00) -> 01:00 EST (-05:00) at 06:00Z.
    assert runs("02:30", "America/New_York", "2025-03-08T12:00-05:00", "2025-03-11T00:00-04:00") == [
        "2025-03-10T02:30:00-04:00"
    ]
    # From outside the repeated hour a fresh glibc guesses offset 0 (UTC), which west of Greenwich
    # resolves 01:30 to the first (EDT) occurrence.
    assert (
        runs("01:30", "America/New_York", "2025-11-01T12:00-04:00", "2025-11-03T00:00-05:00")
        == ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"][:1]
    )


def test_lord_howe_shifts_by_thirty_minutes() -> None:
    # Australia/Lord_Howe 2025-10-05: 02:00 (+10:30) -> 02:30 (+11:00) at 2025-10-04T15:30:00Z;
    # 2025-04-06: 02:00 (+11:00) -> 01:30 (+10:30) at 2025-04-05T15:00:00Z.
    assert runs("02:15", "Australia/Lord_Howe", "2025-10-04T00:00+10:30", "2025-10-07T00:00+11:00") == [
        "2025-10-04T02:15:00+10:30", "2025-10-06T02:15:00+11:00"
    ]  # fmt: skip
    assert runs("01:45", "Australia/Lord_Howe", "2025-04-05T12:00+11:00", "2025-04-07T12:00+10:30") == [
        "2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30"
    ]  # fmt: skip


def test_kolkata_has_no_transitions() -> None:
    # Asia/Kolkata: +05:30 all year, no DST since 1945.
    got = runs("02:30", "Asia/Kolkata", "2025-03-29T00:00+05:30", "2025-04-01T00:00+05:30")
    assert got == ["2025-03-29T02:30:00+05:30", "2025-03-30T02:30:00+05:30", "2025-03-31T02:30:00+05:30"]


@fast
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(["Europe/Vienna", "America/New_York", "Australia/Lord_Howe"]),
       st.sampled_from(["2025-03-29", "2025-03-08", "2025-10-03", "2025-10-25", "2025-11-01", "2025-04-05"]),
       st.integers(min_value=0, max_value=3 * 86400))  # fmt: skip
def test_dst_days_keep_order_and_mirror(expr: str, tz: str, day: str, offset: int) -> None:
    # The days sampled hold the 2025 transitions of the three zones (see the tests above for the instants).
    schedule = parse_schedule(expr, "proxmox", tz)
    start = datetime.fromisoformat(day + "T00:00+00:00") + timedelta(seconds=offset)
    got = list(schedule.between(start, start + timedelta(days=2)))
    assert got == sorted(set(got))
    prev = schedule.previous_before(start)
    if prev is not None:
        nxt = schedule.next_after(prev)
        assert nxt is None or nxt >= start


# --- the repeated hour (fall-back), chained as Proxmox chains it ----------------------------------------------

DATA = Path(__file__).resolve().parents[1] / "data" / "calendar-dst-chains.tsv"
HOURLY_AND_MINUTE_LISTS = ["hourly", "*:0/30", "*:15,45", "41,59/28", "sun,sun..wed 41,59/28", "0/20", "*:59", "5,35",
                           "*/45", "2,3:0/20", "minutely", "*:0/7"]  # fmt: skip
# Each zone's 2025 fall-back: the instant the offset drops, and how much it drops (UTC and Kolkata have none).
FALL_BACK = {"Europe/Vienna": (1761440400, 3600), "America/New_York": (1762063200, 3600),
             "Australia/Lord_Howe": (1743865200, 1800), "UTC": (1761440400, 0),
             "Asia/Kolkata": (1761440400, 0)}  # fmt: skip


def test_after_an_event_before_the_repeated_hour_the_first_pass_fires() -> None:
    # The chain's previous result sets glibc's guess: from 01:59+02:00 proxmox-time fires at 02:41+02:00.
    schedule = parse_schedule("sun,sun..wed 41,59/28", "proxmox", "Europe/Vienna")
    after = schedule.next_after(datetime.fromisoformat("2025-10-26T01:59:00+02:00"))
    assert after is not None and after.isoformat() == "2025-10-26T02:41:00+02:00"
    chain = runs("sun,sun..wed 41,59/28", "Europe/Vienna", "2025-10-26T01:00+02:00", "2025-10-26T04:00+01:00")
    assert chain == [
        "2025-10-26T01:41:00+02:00", "2025-10-26T01:59:00+02:00", "2025-10-26T02:41:00+02:00",
        "2025-10-26T02:59:00+02:00", "2025-10-26T03:41:00+01:00", "2025-10-26T03:59:00+01:00",
    ]  # fmt: skip


def test_chains_across_the_repeated_hour_match_proxmox_time() -> None:
    rows = [line.split("\t") for line in DATA.read_text().splitlines() if line and not line.startswith("#")]
    assert {row[0] for row in rows} == set(ZONES) and len(rows) >= 100
    for tz, base, expr, expected in rows:
        schedule = parse_schedule(expr, "proxmox", tz)
        when = datetime.fromtimestamp(int(base), UTC)
        got = []
        for _ in expected.split(","):
            nxt = schedule.next_after(when)
            assert nxt is not None
            got.append(str(int(nxt.timestamp())))
            when = nxt
        assert ",".join(got) == expected, (tz, base, expr)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(HOURLY_AND_MINUTE_LISTS), st.sampled_from(ZONES), st.integers(min_value=0, max_value=6 * 3600))
def test_the_repeated_hour_fires_once_on_the_pass_the_chain_is_on(expr: str, tz: str, before: int) -> None:
    """In every zone the tests use: a chain fires each wall-clock time of the repeated hour at most once, and an
    occurrence there takes the offset of the occurrence before it (glibc resolves the ambiguous time with the
    offset of its previous call, which normalised that occurrence)."""
    instant, drop = FALL_BACK[tz]
    schedule = parse_schedule(expr, "proxmox", tz)
    start = datetime.fromtimestamp(instant - drop - before, UTC)
    chain = list(schedule.between(start, start + timedelta(hours=8)))
    assert chain == sorted(set(chain))
    walls = [t.replace(tzinfo=None) for t in chain]
    assert len(walls) == len(set(walls))  # no wall-clock time twice
    zone = schedule.tzinfo
    for previous, current in itertools.pairwise(chain):
        wall = current.replace(tzinfo=None)
        repeated = drop and {
            wall.replace(tzinfo=zone, fold=0).utcoffset(),
            wall.replace(tzinfo=zone, fold=1).utcoffset(),
        }
        if repeated and len(repeated) == 2:
            assert current.utcoffset() == previous.utcoffset(), (previous, current)


@pytest.mark.parametrize(
    ("text", "dialect"),
    [("*:0/" + "9" * 5000, "proxmox"), ("9" * 5000 + ":00", "proxmox"), ("*/" + "9" * 5000 + " * * * *", "cron")],
)
def test_a_number_of_thousands_of_digits_is_a_schedule_error(text: str, dialect: str) -> None:
    """int() refuses more than 4,300 digits: such a schedule must be an error the caller expects, not a crash."""
    with pytest.raises(ScheduleError, match="too long"):
        parse_schedule(text, dialect, "UTC")
    parses_quickly(text, dialect)
