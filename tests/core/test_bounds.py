"""The edge bounds: impossible records cost themselves only, and checking a quiet poll again costs nothing."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from backup_glance.model import (
    GuestRef,
    Job,
    JobKind,
    JobRun,
    Observation,
    RunOutcome,
    ScheduleRef,
    Snapshot,
    SnapshotSeries,
    Target,
)
from backup_glance.schedule import ScheduleError, parse_schedule
from backup_glance.sources._bounds import EdgeBounds

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def snapshot(n: int, at: datetime = NOW - timedelta(hours=1), size: int | None = 10) -> Snapshot:
    return Snapshot(f"guest:{n}", "pbs", f"main/ct/{n}/{at.isoformat()}", at, size_bytes=size, location="main")


def observation(*snapshots: Snapshot, runs: tuple[JobRun, ...] = ()) -> Observation:
    return Observation("pbs", "pbs", NOW, "UTC", snapshots=snapshots, runs=runs)


def test_clean_records_pass_as_the_very_same_objects() -> None:
    given = observation(snapshot(1), snapshot(2))
    bounded = EdgeBounds().bound(given, NOW)
    assert bounded.snapshots is given.snapshots
    assert bounded.problems == ()


def test_a_quiet_poll_reuses_what_was_checked() -> None:
    bounds = EdgeBounds()
    first = observation(snapshot(1), snapshot(2))
    assert bounds.bound(first, NOW).snapshots is first.snapshots
    again = bounds.bound(observation(*first.snapshots), NOW)  # a new tuple, the same records
    assert all(a is b for a, b in zip(again.snapshots, first.snapshots, strict=True))
    same = bounds.bound(first, NOW + timedelta(minutes=5))
    assert same.snapshots is first.snapshots


def test_one_impossible_record_costs_that_record_and_is_named() -> None:
    future = snapshot(3, at=datetime(9999, 12, 31, tzinfo=UTC))
    huge = snapshot(4, size=2**64 - 1)
    bounded = EdgeBounds().bound(observation(snapshot(1), future, huge), NOW)
    assert [s.target_key for s in bounded.snapshots] == ["guest:1", "guest:4"]
    assert bounded.snapshots[1].size_bytes is None
    assert bounded.problems == (
        f"snapshots with impossible dates: {future.snapshot_id} at 9999-12-31T00:00:00+00:00",
        f"impossible snapshot sizes: {huge.snapshot_id}: 18446744073709551615",
    )


def test_a_record_refused_for_being_in_the_future_is_looked_at_again_later() -> None:
    bounds = EdgeBounds()
    soon = snapshot(5, at=NOW + timedelta(days=1, hours=1))  # a clock a little ahead
    given = observation(soon)
    assert bounds.bound(given, NOW).snapshots == ()
    assert bounds.bound(given, NOW + timedelta(hours=2)).snapshots == (soon,)


def test_runs_and_text_are_bounded_too() -> None:
    noisy = JobRun(
        "pbs/backup/x", "pbs", "UPID:1", NOW - timedelta(hours=2), NOW, RunOutcome.FAILED, "a\nb\x1b[2J\ud800"
    )
    backwards = JobRun("pbs/backup/x", "pbs", "UPID:2", NOW, NOW - timedelta(days=3), RunOutcome.OK)
    bounded = EdgeBounds().bound(observation(runs=(noisy, backwards)), NOW)
    assert [r.run_id for r in bounded.runs] == ["UPID:1"]
    assert bounded.runs[0].message == "a b[2J\ufffd"
    assert bounded.problems == ("runs with impossible dates: UPID:2 ended before it started",)


def nightly(schedule: ScheduleRef) -> Job:
    return Job("pve/backup/nightly", "pve", JobKind.BACKUP, "nightly", "nightly", schedule=schedule)


def test_a_schedule_longer_than_any_real_one_is_cut_so_that_it_no_longer_reads() -> None:
    """A 5 MB expression was copied into every service's reasons and answers: a 115 MB page."""
    huge = ScheduleRef("04:00," * 1_000_000, "proxmox", "UTC")
    bounded = EdgeBounds().bound(replace(observation(), jobs=(nightly(huge),)), NOW)
    (job,) = bounded.jobs
    assert job.schedule is not None and len(job.schedule.expression) == 200
    with pytest.raises(ScheduleError):
        parse_schedule(job.schedule.expression, dialect="proxmox", tz="UTC")
    assert bounded.problems == ("schedules too long to be one: nightly: 6,000,000 characters",)


def test_a_schedule_in_a_zone_this_machine_does_not_know_is_read_in_utc_and_said() -> None:
    """The node's zone was replaced, its jobs' zones were not: every PVE schedule unreadable, every guest unknown."""
    mars = ScheduleRef("04:00", "proxmox", "Mars/Olympus")
    bounded = EdgeBounds().bound(replace(observation(), timezone="Mars/Olympus", jobs=(nightly(mars),)), NOW)
    assert bounded.jobs[0].schedule == ScheduleRef("04:00", "proxmox", "UTC")
    assert parse_schedule("04:00", dialect="proxmox", tz=bounded.jobs[0].schedule.timezone) is not None
    assert bounded.problems == (
        "time zone unknown to this machine (its times are read as UTC): 2 ignored (e.g. Mars/Olympus)",
    )


def test_a_sane_schedule_is_passed_as_the_same_object() -> None:
    daily = ScheduleRef("mon..fri 04:00", "proxmox", "Europe/Vienna")
    assert EdgeBounds().bound(replace(observation(), jobs=(nightly(daily),)), NOW).jobs[0].schedule is daily


def test_targets_and_job_keys_rebuilt_equal_by_the_source_are_reused_and_still_bounded() -> None:
    hostile = "guest:1\x1b[2J" + "x" * 5000
    targets = (Target("guest:1", "pve", "vault\x00", "guest", GuestRef(1, "lxc")),)
    job = Job("pve/backup/nightly", "pve", JobKind.BACKUP, "nightly", "nightly", target_keys=("guest:1", hostile))
    bounds = EdgeBounds()
    first = bounds.bound(replace(observation(), targets=targets, jobs=(job,)), NOW)
    # The next poll decodes everything anew: equal values, other objects.
    again = bounds.bound(replace(observation(), targets=deepcopy(targets), jobs=(deepcopy(job),)), NOW)
    assert again.targets is first.targets and first.targets[0].name == "vault"
    assert again.jobs[0].target_keys is first.jobs[0].target_keys
    assert first.jobs[0].target_keys[0] == "guest:1" and len(first.jobs[0].target_keys[1]) < 1000
    renamed = bounds.bound(replace(observation(), targets=(replace(targets[0], name="vault2"),)), NOW)
    assert renamed.targets[0].name == "vault2"


def test_new_records_among_checked_ones_are_checked_and_keep_their_place() -> None:
    bounds = EdgeBounds()
    checked = tuple(snapshot(n) for n in range(5))
    bounds.bound(observation(*checked), NOW)
    huge, future = snapshot(7, size=2**64 - 1), snapshot(8, at=datetime(9999, 1, 1, tzinfo=UTC))
    fine = snapshot(9)
    given = (checked[0], huge, checked[1], future, fine, *checked[2:])
    bounded = bounds.bound(observation(*given), NOW).snapshots
    assert [s.target_key for s in bounded] == [
        "guest:0",
        "guest:7",
        "guest:1",
        "guest:9",
        "guest:2",
        "guest:3",
        "guest:4",
    ]
    assert bounded[1].size_bytes is None and bounded[0] is checked[0] and bounded[3] is fine
    only_fine = bounds.bound(observation(*checked, fine), NOW).snapshots
    assert only_fine == (*checked, fine)


def test_a_poll_after_a_clean_one_checks_the_records_that_appeared() -> None:
    bounds = EdgeBounds()
    listed = [snapshot(n) for n in range(40)]
    assert bounds.bound(observation(*listed), NOW).snapshots == tuple(listed)
    good, huge = snapshot(41), snapshot(42, size=2**64)
    later = observation(*listed[:10], good, *listed[11:], huge)  # one gone, two new, the rest the same objects

    bounded = bounds.bound(later, NOW)

    assert bounded.snapshots[:-1] == later.snapshots[:-1]
    assert bounded.snapshots[-1].size_bytes is None
    assert bounded.problems == (f"impossible snapshot sizes: {huge.snapshot_id}: {2**64}",)
    assert bounds.bound(observation(*listed[:10], good, *listed[11:]), NOW).snapshots[10] is good


# One field of one record made hostile in each way the edge refuses or mends.
HOSTILE: dict[str, dict[str, object]] = {
    "a date in the year 9999": {"taken_at": datetime(9999, 12, 31, tzinfo=UTC)},
    "a date before 2000": {"taken_at": datetime(1999, 12, 31, tzinfo=UTC)},
    "a naive date": {"taken_at": datetime(2026, 11, 26, 11)},
    "a verification in the future": {"verified_at": NOW + timedelta(days=400)},
    "a naive verification": {"verified_at": datetime(2026, 11, 26, 11)},
    "a negative size": {"size_bytes": -1},
    "a size of 2^64": {"size_bytes": 2**64},
    "a size that is a bool": {"size_bytes": True},
    "a size that is a float": {"size_bytes": 1.5},
    "a control character in the id": {"snapshot_id": "main/ct/1/\x1b[2J"},
    "an id of 301 characters": {"snapshot_id": "x" * 301},
    "a lone surrogate in the key": {"target_key": "guest:\ud800"},
    "a newline in the location": {"location": "main\nstore"},
    "a NUL in a place": {"places": ("a\x00b",)},
}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_one_hostile_field_among_many_clean_records_is_found(hostile: str) -> None:
    records = [snapshot(n) for n in range(300)]
    records[137] = msgspec.structs.replace(records[137], **HOSTILE[hostile])
    given = observation(*records)

    bounded = EdgeBounds().bound(given, NOW)

    assert bounded.snapshots is not given.snapshots
    assert bounded.snapshots[:137] == given.snapshots[:137]
    assert bounded.snapshots[-162:] == given.snapshots[-162:]


def test_clean_records_with_places_pass_untouched_too() -> None:
    records = [msgspec.structs.replace(snapshot(n), places=("main", "offsite")) for n in range(300)]
    given = observation(*records)

    assert EdgeBounds().bound(given, NOW).snapshots is given.snapshots


def test_text_that_would_display_in_another_order_than_it_reads_loses_its_direction_marks() -> None:
    """U+202E made "vault\u202egnp.exe" show as "vaultexe.png" on the page and in the terminal."""
    tricky = Target("guest:1", "pve", "vault\u202egnp.exe\u2066x\u2069\u200f", "guest", GuestRef(1, "lxc"))
    bounded = EdgeBounds().bound(replace(observation(), targets=(tricky,)), NOW)
    assert bounded.targets[0].name == "vaultgnp.exex"
    assert (
        EdgeBounds().bound(replace(observation(), targets=(replace(tricky, name="שלום vault"),)), NOW).targets[0].name
        == "שלום vault"
    )  # right-to-left text itself stays


def series_of(n: int, location: str, *snapshots: Snapshot) -> SnapshotSeries:
    return SnapshotSeries.of(list(snapshots), f"{location}/ct/{n}/")


def stamped(n: int, location: str, at: datetime, **fields: object) -> Snapshot:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Snapshot(f"guest:{n}", "pbs", f"{location}/ct/{n}/{stamp}", at, location=location, **fields)  # type: ignore[arg-type]


def test_a_series_is_cut_down_to_what_passes_and_passes_whole_when_it_can() -> None:
    hour = NOW.replace(minute=0) - timedelta(hours=1)
    clean = series_of(1, "main", stamped(1, "main", hour - timedelta(days=1)), stamped(1, "main", hour, size_bytes=5))
    hostile = series_of(
        2,
        "main\x07",
        stamped(2, "main\x07", hour - timedelta(days=2), size_bytes=2**61),  # more bytes than any disk holds
        stamped(2, "main\x07", hour, verified_at=datetime(1999, 1, 1, tzinfo=UTC)),
        stamped(2, "main\x07", NOW + timedelta(days=3)),  # from the future: gone now, looked at again later
    )
    given = Observation("pbs", "pbs", NOW, "UTC", series=(clean, hostile))
    bounds = EdgeBounds()
    first = bounds.bound(given, NOW)
    kept, cut = first.series
    assert kept is clean
    assert [s.taken_at for s in cut] == [hour - timedelta(days=2), hour]
    assert [s.size_bytes for s in cut] == [None, None] and cut[1].verified_at is None
    assert cut.location == "main" and all(s.snapshot_id.isprintable() for s in cut)
    assert {p.split(":")[0] for p in first.problems} == {
        "snapshots with impossible dates",
        "impossible snapshot sizes",
        "impossible verification times",
    }
    again = bounds.bound(given, NOW + timedelta(minutes=5))  # looked at again (a future record), the same cut
    assert again.series[0] is clean and again.series[1] is cut
    later = bounds.bound(given, NOW + timedelta(days=3))  # its day came: it passes
    assert [s.taken_at for s in later.series[1]][-1] == NOW + timedelta(days=3)
