"""Health decides every verdict; each status has a test that produces it from plain records."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace as evolve

from backup_glance.health import Defaults, Memo, discover, evaluate
from backup_glance.health._evidence import gather
from backup_glance.health.calendar import MAX_OVERLAPS_KEPT, MAX_SLOTS_PER_JOB, _mark_overlaps
from backup_glance.model import (
    Board,
    CalendarSlot,
    GuestRef,
    HistoryView,
    Job,
    JobKind,
    JobRun,
    Observation,
    RunOutcome,
    ScheduleRef,
    ServiceSpec,
    Severity,
    Silence,
    SlotOutcome,
    Snapshot,
    SourceState,
    Status,
    Target,
    Verdict,
    Verification,
)

ZONE = "Europe/Madrid"  # UTC+1 in November: the nightly 04:00 slot is 03:00 UTC
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thursday, 10:00 in Madrid
TODAY_SLOT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def a_guest(vmid: int = 101, name: str = "vault", *, running: bool = False) -> Target:
    return Target(
        key=f"guest:{vmid}",
        source="pve",
        name=name,
        kind="guest",
        guest=GuestRef(vmid, "lxc", "pve"),
        backup_running=running,
    )


def a_job(
    *vmids: int, schedule: str = "04:00", enabled: bool = True, job_id: str = "nightly", kind: JobKind = JobKind.BACKUP
) -> Job:
    return Job(
        key=f"pve/{kind.value}/{job_id}",
        source="pve",
        kind=kind,
        job_id=job_id,
        name=job_id,
        schedule=ScheduleRef(schedule, "proxmox", ZONE),
        enabled=enabled,
        target_keys=tuple(f"guest:{v}" for v in (vmids or (101,))),
    )


def a_verify_job(at: str = "06:00") -> Job:
    return Job(
        key="pbs/verify/v1",
        source="pbs",
        kind=JobKind.VERIFY,
        job_id="v1",
        name="v1",
        schedule=ScheduleRef(at, "proxmox", ZONE),
        store="main",
    )


def a_snapshot(
    at: datetime, *, vmid: int = 101, verification: Verification = Verification.OK, finished: bool = True
) -> Snapshot:
    return Snapshot(
        target_key=f"guest:{vmid}",
        source="pbs",
        snapshot_id=f"main/ct/{vmid}/{at.isoformat()}",
        taken_at=at,
        finished=finished,
        size_bytes=1_000_000,
        verification=verification,
        location="main",
    )


def nightly(days: int = 14, *, vmid: int = 101, skip: tuple[int, ...] = (), start: int = 0) -> list[Snapshot]:
    """A finished snapshot five minutes after each 04:00 slot, `start` days ago back to `days` ago."""
    return [
        a_snapshot(TODAY_SLOT - n * DAY + timedelta(minutes=5), vmid=vmid) for n in range(start, days) if n not in skip
    ]


def a_run(at: datetime, outcome: RunOutcome, *, vmid: int = 101, message: str = "", ended: bool = True) -> JobRun:
    return JobRun(
        job_key="pve/backup/nightly",
        source="pve",
        run_id=f"UPID:{at.timestamp()}",
        started_at=at,
        ended_at=at + timedelta(minutes=3) if ended else None,
        outcome=outcome,
        message=message,
        target_key=f"guest:{vmid}",
    )


def pve(
    *targets: Target, jobs: tuple[Job, ...] = (), runs: tuple[JobRun, ...] = (), uncovered: tuple[str, ...] = ()
) -> SourceState:
    observation = Observation(
        source="pve",
        kind="pve",
        observed_at=NOW,
        timezone=ZONE,
        targets=targets or (a_guest(),),
        jobs=jobs or (a_job(),),
        runs=runs,
        uncovered_target_keys=uncovered,
    )
    return SourceState("pve", "pve", timedelta(minutes=5), observation, NOW, NOW)


def pbs(
    snapshots: list[Snapshot], *, jobs: tuple[Job, ...] = (), error: str | None = None, age: timedelta = timedelta(0)
) -> SourceState:
    observation = Observation(
        source="pbs", kind="pbs", observed_at=NOW - age, timezone=ZONE, snapshots=tuple(snapshots), jobs=jobs
    )
    return SourceState("pbs", "pbs", timedelta(minutes=5), observation, NOW, NOW - age, error)


def judge(
    *states: SourceState,
    services: tuple[ServiceSpec, ...] = (),
    now: datetime = NOW,
    history: HistoryView | None = None,
) -> Board:
    return evaluate(
        services=services,
        sources=states,
        history=history or HistoryView(),
        now=now,
        display_tz=ZONE,
        defaults=Defaults(),
    )


def verdict(board: Board, service_id: str = "vault") -> Verdict:
    return next(v for v in board.verdicts if v.service_id == service_id)


def a_service(service_id: str = "vault", *keys: str, **changes: object) -> ServiceSpec:
    spec = ServiceSpec(
        id=service_id,
        name=service_id,
        target_keys=keys or ("guest:101",),
        grace=timedelta(hours=1),
        max_age=timedelta(hours=26),
        lookback=timedelta(days=14),
    )
    from dataclasses import replace

    return replace(spec, **changes)  # type: ignore[arg-type]


class TestOk:
    def test_it_is_ok_when_the_latest_due_run_produced_a_snapshot(self) -> None:
        v = verdict(judge(pve(), pbs(nightly())))
        assert v.status is Status.OK, v.reasons
        assert v.severity is Severity.OK
        assert v.reasons == ()
        assert v.snapshot_count == 14
        assert v.last_success_at == TODAY_SLOT + timedelta(minutes=5)
        assert v.previous_due_at == TODAY_SLOT
        assert v.next_run_at == TODAY_SLOT + DAY  # 04:00 in Madrid; every instant health gives is in UTC
        assert v.schedule is not None and v.schedule.expression == "04:00" and v.schedule.timezone == ZONE
        assert v.guest == GuestRef(101, "lxc", "pve")
        assert [at for at, _ in v.size_trend] == sorted(s.taken_at for s in nightly())

    def test_it_is_not_late_inside_the_grace_period(self) -> None:
        # 04:30 in Madrid: today's 04:00 run has not produced anything yet, grace (1h) still runs.
        now = TODAY_SLOT + timedelta(minutes=30)
        v = verdict(judge(pve(), pbs(nightly(start=1)), now=now))
        assert v.status is Status.OK, v.reasons


class TestLate:
    def test_it_marks_the_service_late_once_slot_plus_grace_has_passed(self) -> None:
        now = TODAY_SLOT + timedelta(hours=1, seconds=1)
        v = verdict(judge(pve(), pbs(nightly(start=1)), now=now))
        assert v.status is Status.LATE
        assert v.severity is Severity.CRITICAL
        assert "no backup since the run due Thu 26 Nov 04:00" in v.reasons[0]

    def test_a_backup_up_to_five_minutes_before_the_slot_counts_for_it(self) -> None:
        now = TODAY_SLOT + timedelta(hours=2)
        early = a_snapshot(TODAY_SLOT - timedelta(minutes=5))
        assert verdict(judge(pve(), pbs([*nightly(start=1), early]), now=now)).status is Status.OK
        too_early = a_snapshot(TODAY_SLOT - timedelta(minutes=5, seconds=1))
        assert verdict(judge(pve(), pbs([*nightly(start=1), too_early]), now=now)).status is Status.LATE

    def test_it_uses_max_age_when_no_schedule_is_known(self) -> None:
        # PBS alone: no PVE job tells when backups are due.
        old = [a_snapshot(NOW - timedelta(hours=30))]
        assert verdict(judge(pbs(old)), "101").status is Status.LATE
        assert "max_age" in verdict(judge(pbs(old)), "101").reasons[0]
        fresh = [a_snapshot(NOW - timedelta(hours=20))]
        assert verdict(judge(pbs(fresh)), "101").status is Status.OK


class TestFailed:
    def test_it_reports_the_failed_attempt_with_its_message(self) -> None:
        runs = (a_run(TODAY_SLOT, RunOutcome.FAILED, message="unable to open file"),)
        v = verdict(judge(pve(runs=runs), pbs(nightly(start=1))))
        assert v.status is Status.FAILED
        assert v.reasons[0] == "last attempt Thu 26 Nov 04:00 failed: unable to open file"
        assert any(r.startswith("no backup since") for r in v.reasons)  # late too, shown second
        assert v.last_outcome is RunOutcome.FAILED

    def test_a_later_success_clears_a_failure(self) -> None:
        runs = (a_run(TODAY_SLOT - timedelta(hours=2), RunOutcome.FAILED, message="boom"),)
        assert verdict(judge(pve(runs=runs), pbs(nightly()))).status is Status.OK


class TestGaps:
    def test_it_lists_due_runs_in_the_lookback_that_produced_nothing(self) -> None:
        v = verdict(judge(pve(), pbs(nightly(skip=(5,)))))
        assert v.status is Status.GAPS
        assert v.severity is Severity.WARNING
        assert v.missed_slots == (TODAY_SLOT - 5 * DAY,)

    def test_a_slot_owns_backups_from_five_minutes_before_it_to_five_minutes_before_the_next(self) -> None:
        slot = TODAY_SLOT - 5 * DAY
        first_second = a_snapshot(slot - timedelta(minutes=5))
        assert verdict(judge(pve(), pbs([*nightly(skip=(5,)), first_second]))).status is Status.OK
        last_second = a_snapshot(slot + DAY - timedelta(minutes=5, seconds=1))
        assert verdict(judge(pve(), pbs([*nightly(skip=(5,)), last_second]))).status is Status.OK
        next_slots = a_snapshot(slot + DAY - timedelta(minutes=5))
        assert verdict(judge(pve(), pbs([*nightly(skip=(5,)), next_slots]))).missed_slots == (slot,)

    def test_history_keeps_evidence_the_source_pruned(self) -> None:
        live = nightly(skip=(5,))
        pruned = [a_snapshot(TODAY_SLOT - 5 * DAY + timedelta(minutes=5))]
        v = verdict(judge(pve(), pbs(live), history=HistoryView(snapshots=tuple(pruned))))
        assert v.status is Status.OK, v.reasons
        assert v.snapshot_count == 13  # what exists now; history only proves the run happened


class TestRunning:
    def test_a_backup_in_progress_is_running_not_late(self) -> None:
        now = TODAY_SLOT + timedelta(hours=1, minutes=10)
        runs = (a_run(TODAY_SLOT, RunOutcome.RUNNING, ended=False),)
        v = verdict(judge(pve(a_guest(running=True), runs=runs), pbs(nightly(start=1)), now=now))
        assert v.status is Status.RUNNING, v.reasons
        assert v.severity is Severity.OK

    def test_running_far_beyond_its_usual_duration_is_late(self) -> None:
        now = TODAY_SLOT + timedelta(hours=2)
        runs = (a_run(TODAY_SLOT, RunOutcome.RUNNING, ended=False),)
        history = HistoryView(typical_durations={"pve/backup/nightly": timedelta(minutes=10)})
        v = verdict(judge(pve(a_guest(running=True), runs=runs), pbs(nightly(start=1)), now=now, history=history))
        assert v.status is Status.LATE
        assert "over 3x its usual 10m" in " ".join(v.reasons)


class TestVerification:
    def test_a_failed_verification_of_the_newest_snapshot_is_critical(self) -> None:
        snaps = [*nightly(start=1), a_snapshot(TODAY_SLOT + timedelta(minutes=5), verification=Verification.FAILED)]
        v = verdict(judge(pve(), pbs(snaps)))
        assert v.status is Status.VERIFY_FAILED
        assert v.verification is Verification.FAILED

    def test_unverified_when_a_verify_job_was_due_after_the_newest_snapshot(self) -> None:
        verify = a_verify_job("06:00")
        snaps = [*nightly(start=1), a_snapshot(TODAY_SLOT + timedelta(minutes=5), verification=Verification.NONE)]
        v = verdict(judge(pve(), pbs(snaps, jobs=(verify,))))
        assert v.status is Status.UNVERIFIED
        assert "verify job 'v1' was due Thu 26 Nov 06:00" in v.reasons[0]
        # Before the verify slot + grace, not verified yet is fine.
        early = verdict(judge(pve(), pbs(snaps, jobs=(verify,)), now=TODAY_SLOT + timedelta(hours=2, minutes=30)))
        assert early.status is Status.OK


class TestUnprotected:
    def test_a_guest_in_no_job_is_unprotected(self) -> None:
        board = judge(pve(a_guest(), a_guest(120, "scratch"), uncovered=("guest:120",)), pbs(nightly()))
        v = verdict(board, "scratch")
        assert v.status is Status.UNPROTECTED
        assert v.reasons == ("CT 120 (scratch) is in no backup job",)

    def test_a_guest_covered_only_by_a_disabled_job_is_unprotected(self) -> None:
        jobs = (a_job(), a_job(121, job_id="legacy", enabled=False, schedule="sun 01:00"))
        v = verdict(judge(pve(a_guest(), a_guest(121, "old-wiki"), jobs=jobs), pbs(nightly())), "old-wiki")
        assert v.status is Status.UNPROTECTED
        assert v.reasons == ("CT 121 (old-wiki) is only in disabled backup job(s): legacy",)

    def test_a_guest_whose_every_snapshot_is_gone_is_unprotected(self) -> None:
        # Its runs went fine and history remembers their snapshots, but the source lists none of them now (a group
        # deleted, a retention that kept nothing): nothing is left to restore. Before, it was ok.
        v = verdict(judge(pve(), pbs([]), history=HistoryView(snapshots=tuple(nightly(days=3)))))
        assert v.status is Status.UNPROTECTED and v.snapshot_count == 0
        (reason,) = v.reasons
        assert reason.startswith("no backup left: the 3 snapshots seen, the newest taken ")
        assert reason.endswith(", no longer exist on 'pbs'")
        one = verdict(judge(pve(), pbs([]), history=HistoryView(snapshots=tuple(nightly(days=1)))))
        assert one.reasons[0].startswith("no backup left: the one snapshot seen, taken ")

    def test_snapshots_a_source_cannot_show_now_are_not_called_gone(self) -> None:
        history = HistoryView(snapshots=tuple(nightly(days=3)))
        down = verdict(judge(pve(), pbs([], error="connection refused", age=timedelta(minutes=11)), history=history))
        assert down.status is Status.UNKNOWN  # not answering: they may well be there
        unconfigured = verdict(judge(pve(), history=history))  # their source is no longer configured
        assert unconfigured.status is not Status.UNPROTECTED, unconfigured.reasons
        one_left = verdict(judge(pve(), pbs(nightly(days=1)), history=history))
        assert one_left.status is Status.OK and one_left.snapshot_count == 1

    def test_an_unfinished_snapshot_holds_the_verdict_back_only_while_it_exists(self) -> None:
        writing = evolve(nightly(days=1)[0], snapshot_id="main//vm/101/writing", finished=False)
        history = HistoryView(snapshots=(*nightly(days=3), writing))
        running = verdict(judge(pve(), pbs([writing]), history=history))
        assert running.status is not Status.UNPROTECTED, running.reasons  # a backup on its way
        aborted = verdict(judge(pve(), pbs([]), history=history))  # it vanished unfinished: it was none
        assert aborted.status is Status.UNPROTECTED, aborted.reasons


class TestUnknown:
    def test_a_source_down_past_two_intervals_makes_its_services_unknown(self) -> None:
        v = verdict(judge(pve(), pbs(nightly(), error="connection refused", age=timedelta(minutes=11))))
        assert v.status is Status.UNKNOWN
        assert "source 'pbs' unreachable since" in v.reasons[0] and "connection refused" in v.reasons[0]

    def test_a_short_outage_keeps_the_last_known_good_verdict(self) -> None:
        v = verdict(judge(pve(), pbs(nightly(), error="connection refused", age=timedelta(minutes=6))))
        assert v.status is Status.OK

    def test_a_configured_service_no_source_reports_is_unknown(self) -> None:
        v = verdict(judge(pve(), pbs(nightly()), services=(a_service("ghost", "guest:999"),)), "ghost")
        assert v.status is Status.UNKNOWN
        assert v.reasons == ("never seen: no source reports guest:999",)


class TestSilenced:
    def test_a_silenced_service_is_ok_with_its_reason_and_end(self) -> None:
        silence = Silence("throwaway test box", datetime(2027, 1, 1, tzinfo=UTC))
        spec = a_service("vault", silence=silence)
        v = verdict(judge(pve(), pbs([]), services=(spec,)))
        assert v.status is Status.SILENCED
        assert v.severity is Severity.OK
        assert v.reasons[0].startswith("silenced until Fri 01 Jan 2027 01:00: throwaway test box (underneath: late)")

    def test_an_expired_silence_no_longer_hides_anything(self) -> None:
        spec = a_service("vault", silence=Silence("old", NOW - DAY))
        assert verdict(judge(pve(), pbs([]), services=(spec,))).status is Status.LATE


def ran(job: str, run_id: str, vmid: int, start_min: int, end_min: int, outcome: RunOutcome = RunOutcome.OK) -> JobRun:
    """A run of `job` for guest `vmid`, from start_min to end_min minutes after today's 04:00 slot."""
    start = TODAY_SLOT + timedelta(minutes=start_min)
    return JobRun(
        job,
        job.split("/")[0],
        run_id,
        start,
        TODAY_SLOT + timedelta(minutes=end_min),
        outcome,
        target_key=f"guest:{vmid}",
    )


class TestOrdering:
    SERVICES = (a_service("dumps", "guest:101"), a_service("files", "guest:102", after=("dumps",)))

    def judge_files(self, *runs: JobRun) -> Verdict:
        state = pve(a_guest(), a_guest(102, "files"), jobs=(a_job(101, 102),), runs=runs)
        return verdict(judge(state, pbs(nightly() + nightly(vmid=102)), services=self.SERVICES), "files")

    def test_it_warns_when_a_job_starts_before_the_one_it_depends_on_finished(self) -> None:
        v = self.judge_files(ran("db/backup/x", "d1", 101, 0, 40), ran("br/backup/y", "f1", 102, 30, 35))
        assert v.status is Status.OUT_OF_ORDER
        assert v.severity is Severity.WARNING
        assert v.reasons == ("files started Thu 26 Nov 04:30 before dumps finished (Thu 26 Nov 04:40)",)

    def test_a_failed_dump_retried_in_time_is_no_ordering_problem(self) -> None:
        failed = ran("db/backup/x", "d1", 101, 0, 2, RunOutcome.FAILED)
        retry = ran("db/backup/x", "d2", 101, 10, 20)
        assert self.judge_files(failed, retry, ran("br/backup/y", "f1", 102, 30, 35)).status is Status.OK

    def test_it_warns_when_the_job_it_depends_on_failed(self) -> None:
        failed = ran("db/backup/x", "d1", 101, 0, 2, RunOutcome.FAILED)
        v = self.judge_files(failed, ran("br/backup/y", "f1", 102, 30, 35))
        assert v.reasons == ("files ran at Thu 26 Nov 04:30 after dumps failed (Thu 26 Nov 04:00: 101)",)


def a_planned_run(job_key: str, start_minutes: int, minutes: int) -> CalendarSlot:
    return CalendarSlot(
        job_key=job_key,
        job_name="x",
        kind=JobKind.BACKUP,
        source="s",
        start_at=NOW + timedelta(minutes=start_minutes),
        duration=timedelta(minutes=minutes),
        outcome=SlotOutcome.UPCOMING,
        timezone="UTC",
    )


def overlapped_jobs(slot: CalendarSlot, slots: list[CalendarSlot], resources: dict[str, frozenset[str]]) -> set[str]:
    """By brute force: the other jobs with a run at the same time on a resource `slot`'s job uses."""
    return {
        other.job_key
        for other in slots
        if other.job_key != slot.job_key
        and resources[other.job_key] & resources[slot.job_key]
        and other.start_at < slot.start_at + slot.duration
        and slot.start_at < other.start_at + other.duration
    }


class TestCalendar:
    @pytest.mark.parametrize("schedule", ["*-06-01 03:00", "*-02-29 00:00", "mon *-06-1..7 05:00"])
    def test_a_job_with_no_run_in_the_calendars_window_is_judged_and_shows_no_slot(self, schedule: str) -> None:
        # Once a year: nothing to draw in the calendar's weeks, still a job to judge.
        yearly = a_job(102, schedule=schedule, job_id="yearly")
        board = judge(pve(a_guest(), a_guest(102, "archive"), jobs=(a_job(), yearly)), pbs(nightly()))
        assert not [s for s in board.slots if s.job_key == "pve/backup/yearly"]
        assert [s for s in board.slots if s.job_key == "pve/backup/nightly"]
        assert verdict(board).status is Status.OK
        (job,) = [j for j in board.jobs if j.job.key == "pve/backup/yearly"]
        assert job.next_run_at is not None and job.next_run_at > NOW + 14 * DAY

    def test_past_slots_are_coloured_by_what_happened_and_future_ones_are_upcoming(self) -> None:
        runs = (a_run(TODAY_SLOT - DAY, RunOutcome.FAILED, message="disk full"),)
        board = judge(pve(runs=runs), pbs(nightly(skip=(1, 3))))
        by_start = {s.start_at: s for s in board.slots if s.job_key == "pve/backup/nightly"}
        assert by_start[TODAY_SLOT].outcome is SlotOutcome.SUCCEEDED
        assert by_start[TODAY_SLOT - DAY].outcome is SlotOutcome.FAILED
        assert by_start[TODAY_SLOT - 3 * DAY].outcome is SlotOutcome.MISSED
        assert by_start[TODAY_SLOT + DAY].outcome is SlotOutcome.UPCOMING
        assert min(by_start) >= NOW - 14 * DAY and max(by_start) < NOW + 30 * DAY
        assert by_start[TODAY_SLOT].service_ids == ("vault",)

    @pytest.mark.parametrize("schedule", ["*:0/5", "*:*", "hourly"])
    def test_a_job_that_runs_every_few_minutes_shows_its_slots_around_now(self, schedule: str) -> None:
        board = judge(pve(jobs=(a_job(schedule=schedule),)), pbs(nightly()))
        starts = sorted(s.start_at for s in board.slots if s.job_key == "pve/backup/nightly")
        assert starts and starts[0] <= NOW <= starts[-1]
        assert len(starts) <= MAX_SLOTS_PER_JOB
        assert min(abs(start - NOW) for start in starts) <= timedelta(hours=1)

    def test_overlaps_are_the_other_jobs_running_at_the_same_time_on_a_shared_resource(self) -> None:
        rng = random.Random(12)
        for _ in range(200):
            resources = {
                f"job{j}": frozenset(rng.sample(["store:a", "store:b", "guest:1"], rng.randint(0, 2))) for j in range(6)
            }
            slots = [
                a_planned_run(f"job{rng.randrange(6)}", rng.randrange(0, 120, 5), rng.choice([1, 10, 30, 60]))
                for _ in range(rng.randint(0, 12))
            ]
            marked = _mark_overlaps(list(slots), resources)
            for slot in marked:
                expected = overlapped_jobs(slot, slots, resources)
                assert slot.overlaps == tuple(sorted(expected))

    def test_a_slot_names_a_few_dozen_overlapping_jobs_and_counts_the_rest(self) -> None:
        rng = random.Random(7)
        for jobs in (30, 80, 3000):
            slots = [
                a_planned_run(f"restore{j:04}", rng.randrange(0, 60, 5) if jobs < 3000 else 0, rng.choice([5, 10, 30]))
                for j in range(jobs)
            ]
            resources = {s.job_key: frozenset({"db:vault"}) for s in slots}
            marked = {s.job_key: s for s in _mark_overlaps(list(slots), resources)}
            for slot in slots if jobs < 3000 else slots[:50]:
                expected = overlapped_jobs(slot, slots, resources)
                got = marked[slot.job_key]
                assert set(got.overlaps) <= expected
                assert len(got.overlaps) == min(len(expected), MAX_OVERLAPS_KEPT)
                assert len(got.overlaps) + got.more_overlaps == len(expected)

    def test_overlap_counts_are_of_jobs_on_every_shared_resource_whatever_their_runs(self) -> None:
        # Jobs on several resources, jobs whose runs overlap one another, more jobs than a slot names.
        rng = random.Random(3)
        capped = 0
        for _ in range(30):
            resources = {
                f"job{j:02}": frozenset(rng.sample(["store:a", "store:b", "guest:1"], rng.randint(1, 2)))
                for j in range(60)
            }
            slots = [
                a_planned_run(job, rng.randrange(0, 240, 5) + run * 30, rng.choice([10, 45, 120]))
                for job in resources
                for run in range(rng.randint(1, 3))
            ]
            for slot in _mark_overlaps(list(slots), resources):
                expected = overlapped_jobs(slot, slots, resources)
                assert set(slot.overlaps) <= expected
                assert len(slot.overlaps) == min(len(expected), MAX_OVERLAPS_KEPT)
                assert len(slot.overlaps) + slot.more_overlaps == len(expected)
                capped += slot.more_overlaps > 0
        assert capped > 100  # the counting, not only the naming, was tested

    def test_a_job_for_several_services_tells_each_its_own_outcome(self) -> None:
        runs = (a_run(TODAY_SLOT, RunOutcome.FAILED, vmid=104, message="zfs error"),)
        state = pve(a_guest(), a_guest(104, "postgres"), jobs=(a_job(101, 104),), runs=runs)
        board = judge(state, pbs(nightly() + nightly(vmid=104, start=1)))
        (today,) = [s for s in board.slots if s.start_at == TODAY_SLOT]
        assert today.outcome is SlotOutcome.FAILED
        assert dict((sid, outcome) for sid, outcome, _ in today.service_outcomes) == {
            "vault": SlotOutcome.SUCCEEDED,
            "postgres": SlotOutcome.FAILED,
        }

    def test_a_snapshot_still_being_written_does_not_make_its_slot_green(self) -> None:
        snaps = [*nightly(skip=(2,)), a_snapshot(TODAY_SLOT - 2 * DAY + timedelta(minutes=1), finished=False)]
        board = judge(pve(), pbs(snaps))
        by_start = {s.start_at: s.outcome for s in board.slots if s.job_key == "pve/backup/nightly"}
        assert by_start[TODAY_SLOT - 2 * DAY] is SlotOutcome.MISSED
        assert by_start[TODAY_SLOT - DAY] is by_start[TODAY_SLOT - 3 * DAY] is SlotOutcome.SUCCEEDED

    def test_a_slot_whose_snapshot_failed_verification_names_the_service(self) -> None:
        snaps = [*nightly(skip=(4,)), a_snapshot(TODAY_SLOT - 4 * DAY, verification=Verification.FAILED)]
        board = judge(pve(), pbs(snaps))
        problems = {s.start_at: s.problems for s in board.slots if s.job_key == "pve/backup/nightly"}
        assert problems[TODAY_SLOT - 4 * DAY] == (("vault", Status.VERIFY_FAILED, "snapshot failed verification"),)
        assert problems[TODAY_SLOT - 3 * DAY] == problems[TODAY_SLOT - 5 * DAY] == ()

    def test_jobs_show_their_next_run_from_the_schedule(self) -> None:
        board = judge(pve(), pbs(nightly()))
        (view,) = [j for j in board.jobs if j.job.key == "pve/backup/nightly"]
        assert view.next_run_at == TODAY_SLOT + DAY
        assert view.service_ids == ("vault",)


def test_problems_sort_first_and_overall_is_the_worst() -> None:
    board = judge(pve(a_guest(), a_guest(120, "scratch"), uncovered=("guest:120",)), pbs(nightly()))
    assert [v.service_id for v in board.verdicts] == ["scratch", "vault"]
    assert board.overall is Severity.CRITICAL


def test_a_source_that_never_answered_keeps_the_overall_from_being_ok() -> None:
    never = SourceState("pbs", "pbs", timedelta(minutes=5), None, NOW, None, "pbs 'pbs': token rejected (HTTP 401)")
    board = judge(never)
    assert board.verdicts == ()
    assert board.overall is Severity.UNKNOWN
    assert judge(pve(), pbs(nightly())).overall is Severity.OK


def test_a_schedule_with_thousands_of_slots_is_judged_on_its_newest_ones() -> None:
    # Every minute for 14 days is 20,160 due slots: the newest must still decide "late".
    job = a_job(schedule="*:*")
    snaps = [a_snapshot(NOW - timedelta(minutes=30))]
    v = verdict(judge(pve(jobs=(job,)), pbs(snaps), services=(a_service(grace=timedelta(minutes=1)),)))
    assert v.status is Status.LATE
    assert v.previous_due_at == NOW - timedelta(minutes=1)


class TestDueRunsBeyondTheLookback:
    def test_a_monthly_job_that_stopped_is_late_however_short_the_lookback(self) -> None:
        job = a_job(schedule="sat *-1..7 02:00")
        old = [a_snapshot(datetime(2026, 9, 5, 1, 0, tzinfo=UTC))]
        v = verdict(judge(pve(jobs=(job,)), pbs(old)))
        assert v.status is Status.LATE
        assert v.reasons[0].startswith("no backup since the run due Sat 07 Nov 02:00")

    def test_an_interval_plan_that_never_ran_is_late(self) -> None:
        plan = Target("backrest:br/docs", "br", "docs", "plan")
        job = Job(
            "br/backup/docs",
            "br",
            JobKind.BACKUP,
            "docs",
            "docs",
            schedule=ScheduleRef("", "interval", "UTC", interval=DAY),
            target_keys=("backrest:br/docs",),
        )
        state = SourceState(
            "br",
            "backrest",
            timedelta(minutes=5),
            Observation("br", "backrest", NOW, "UTC", (plan,), jobs=(job,)),
            NOW,
            NOW,
        )
        v = verdict(judge(state), "docs")
        assert (v.status, v.reasons) == (Status.LATE, ("no successful backup found",))


class TestRunningEdges:
    def test_a_lock_without_a_run_counts_from_the_due_slot_not_the_last_backup(self) -> None:
        now = TODAY_SLOT + timedelta(minutes=2)
        history = HistoryView(typical_durations={"pve/backup/nightly": timedelta(minutes=10)})
        v = verdict(judge(pve(a_guest(running=True)), pbs(nightly(start=1)), now=now, history=history))
        assert v.status is Status.RUNNING
        assert v.reasons == ("backup in progress since Thu 26 Nov 04:00",)

    def test_a_hung_run_is_late_from_the_runs_seen_even_without_history(self) -> None:
        finished = tuple(
            a_run(TODAY_SLOT - n * DAY, RunOutcome.OK)
            for n in range(3, 8)  # 3 minutes each
        )
        hung = a_run(TODAY_SLOT - 2 * DAY, RunOutcome.RUNNING, ended=False)
        job_runs = tuple(evolve(r, target_key=None, run_id=f"job-{r.run_id}") for r in finished)
        v = verdict(judge(pve(runs=(*finished, *job_runs, hung)), pbs(nightly(start=3))))
        assert v.status is Status.LATE
        assert "over 3x its usual 3m" in v.reasons[0]


class TestEvidenceWindows:
    def test_pruned_dailies_are_not_gaps_when_history_only_started_recording_now(self) -> None:
        kept = [a_snapshot(TODAY_SLOT - n * DAY + timedelta(minutes=5)) for n in (*range(7), 10, 17, 24)]
        fresh = HistoryView(recorded_since=NOW - timedelta(minutes=5))
        assert verdict(judge(pve(), pbs(kept), history=fresh)).status is Status.OK
        # Once history has been watching for two weeks, the same holes are real misses.
        watched = HistoryView(recorded_since=NOW - 20 * DAY)
        assert verdict(judge(pve(), pbs(kept), history=watched)).status is Status.GAPS

    def test_a_nightly_backup_does_not_make_a_missed_weekly_slot_green(self) -> None:
        jobs = (a_job(), a_job(job_id="weekly", schedule="sun 01:00"))
        board = judge(pve(jobs=jobs), pbs(nightly()))
        weekly = [s for s in board.slots if s.job_key == "pve/backup/weekly" and s.start_at <= NOW]
        assert weekly and all(s.outcome is SlotOutcome.MISSED for s in weekly)

    def test_each_slot_uses_the_grace_of_its_own_services(self) -> None:
        now = TODAY_SLOT + timedelta(hours=1, minutes=30)
        services = (a_service("vault", grace=timedelta(hours=2)), a_service("other", "guest:102"))
        state = pve(a_guest(), a_guest(102, "other"), jobs=(a_job(101),))
        board = judge(state, pbs(nightly(start=1)), services=services, now=now)
        (today,) = [s for s in board.slots if s.start_at == TODAY_SLOT]
        assert today.outcome is SlotOutcome.UPCOMING
        assert verdict(board).status is Status.OK

    def test_a_guest_new_to_a_job_has_no_missed_slots_before_its_first_backup(self) -> None:
        state = pve(a_guest(), a_guest(104, "postgres"), jobs=(a_job(101, 104),))
        board = judge(state, pbs(nightly() + nightly(2, vmid=104)))
        cells = [
            outcome
            for s in board.slots
            for sid, outcome, _ in s.service_outcomes
            if sid == "postgres" and s.start_at <= NOW
        ]
        assert cells == [SlotOutcome.SUCCEEDED, SlotOutcome.SUCCEEDED]


def test_a_verify_job_for_another_namespace_does_not_make_root_snapshots_unverified() -> None:
    verify = Job(
        "pbs/verify/v-prod",
        "pbs",
        JobKind.VERIFY,
        "v-prod",
        "v-prod",
        schedule=ScheduleRef("06:00", "proxmox", ZONE),
        store="main",
        namespace="prod",
    )
    unverified = [evolve(s, verification=Verification.NONE) for s in nightly()]
    assert verdict(judge(pve(), pbs(unverified, jobs=(verify,)))).status is Status.OK
    in_prod = [evolve(s, location="main/prod") for s in unverified]
    assert verdict(judge(pve(), pbs(in_prod, jobs=(verify,)))).status is Status.UNVERIFIED


class TestDatastores:
    def a_store(self, **changes: object) -> SourceState:
        from backup_glance.model import Datastore

        store = replace(Datastore("pbs/main", "pbs", "main", total_bytes=100, used_bytes=50), **changes)  # type: ignore[arg-type]
        return SourceState(
            "pbs", "pbs", timedelta(minutes=5), Observation("pbs", "pbs", NOW, ZONE, datastores=(store,)), NOW, NOW
        )

    def test_a_datastore_filling_up_soon_is_critical_and_counts_in_the_overall(self) -> None:
        board = judge(pve(), self.a_store(estimated_full_at=NOW + 10 * DAY), pbs(nightly()))
        (view,) = board.datastores
        assert (view.severity, view.reasons) == (
            Severity.CRITICAL,
            ("datastore main is expected to be full in 10 days",),
        )
        assert view.full_in_days == 10.0 and view.used_fraction == 0.5
        assert board.overall is Severity.CRITICAL

    def test_thresholds_for_space(self) -> None:
        def severity(**changes: object) -> Severity:
            return judge(self.a_store(**changes)).datastores[0].severity

        assert severity(estimated_full_at=NOW + 45 * DAY) is Severity.WARNING
        assert severity(estimated_full_at=NOW + 200 * DAY) is Severity.OK
        assert severity(used_bytes=91) is Severity.WARNING
        assert severity(used_bytes=96) is Severity.CRITICAL
        assert severity(usage_is_flat=True, estimated_full_at=None) is Severity.OK
        assert severity(error="HTTP 500 on /admin/datastore/main/status") is Severity.UNKNOWN


def test_discovery_with_a_memo_hands_back_the_same_specs_until_a_name_a_key_or_a_default_changes() -> None:
    memo = Memo()
    guests = (a_guest(201, "vault"), a_guest(202, "wiki"))

    def discovered(
        *targets: Target, claimed_keys: frozenset[str] = frozenset(), grace: timedelta = timedelta(hours=1)
    ) -> list[ServiceSpec]:
        evidence = gather([pve(*targets)], HistoryView())
        found = discover(evidence, Defaults(grace=grace), claimed_keys=claimed_keys, memo=memo)
        assert found == discover(evidence, Defaults(grace=grace), claimed_keys=claimed_keys)  # as without a memo
        return found

    first = discovered(*guests)  # and guest:101, which the job names
    assert [s.id for s in first] == ["101", "vault", "wiki"]
    assert all(a is b for a, b in zip(discovered(*guests), first, strict=True))
    assert discovered(*guests, grace=timedelta(hours=3))[1].grace == timedelta(hours=3)
    assert discovered(*guests)[1].grace == Defaults().grace
    renamed = discovered(a_guest(201, "vault"), a_guest(202, "docs"))
    assert [s.name for s in renamed] == ["101", "vault", "docs"]
    discovered(*guests)
    moved = discovered(guests[0], a_guest(203, "wiki"))  # another guest, the same name
    assert [(s.name, s.target_keys) for s in moved][1:] == [("vault", ("guest:201",)), ("wiki", ("guest:203",))]
    assert [s.id for s in discovered(*guests, claimed_keys=frozenset({"guest:201"}))] == ["101", "wiki"]
    template = replace(guests[1], template=True)
    assert [s.id for s in discovered(guests[0], template)] == ["101", "vault"]
    assert discovered(*guests) is not first and discovered(*guests) == first


def test_a_service_found_while_its_source_is_down_keeps_the_name_and_id_history_last_saw() -> None:
    # At a start with the PBS down, the guest is known only from history's snapshots: its id must be the one its
    # alerts, /health URL and metrics had, not one made from its key.
    down = SourceState("pbs", "pbs", timedelta(minutes=5), None, NOW, None, "cannot connect")
    seen = HistoryView(snapshots=tuple(nightly(vmid=205)), recorded_since=NOW - 20 * DAY)
    unnamed = judge(down, history=seen)
    named = judge(down, history=replace(seen, target_names={"guest:205": "gitea"}))
    assert [(v.service_id, v.name) for v in unnamed.verdicts] == [("205", "205")]
    assert [(v.service_id, v.name, v.status) for v in named.verdicts] == [("gitea", "gitea", Status.UNKNOWN)]


class TestTheYearOfAMoment:
    """A reason names a moment's year when it is not the current one in the display zone: a backup from thirteen
    months ago must not read as last week's."""

    def test_a_backup_from_last_year_is_named_with_its_year(self) -> None:
        v = verdict(judge(pve(), pbs([a_snapshot(TODAY_SLOT - 400 * DAY)])))
        assert v.status is Status.LATE
        assert "the run due Thu 26 Nov 04:00 " in v.reasons[0], "this year's moment: no year"
        assert "last success Wed 22 Oct 2025 05:00" in v.reasons[0], v.reasons

    # 23:30 in Madrid on New Year's Eve, then 00:30 on New Year's Day: nothing else changes.
    EVE, NEW_YEAR = datetime(2026, 12, 31, 22, 30, tzinfo=UTC), datetime(2026, 12, 31, 23, 30, tzinfo=UTC)

    def board(self, now: datetime, memo: Memo | None) -> Board:
        snaps = [a_snapshot(datetime(2026, 12, 29, 3, 5, tzinfo=UTC) - n * DAY) for n in range(5)]
        observation = Observation(source="pbs", kind="pbs", observed_at=now, timezone=ZONE, snapshots=tuple(snaps))
        pbs_state = SourceState("pbs", "pbs", timedelta(minutes=5), observation, now, now)
        pve_state = replace(pve(), last_attempt_at=now, last_success_at=now)
        pve_state = replace(pve_state, observation=replace(pve_state.observation, observed_at=now))
        return evaluate(
            services=(), sources=(pve_state, pbs_state), history=HistoryView(), now=now, display_tz=ZONE, memo=memo
        )

    def test_the_year_appears_at_midnight_in_the_display_zone_with_a_memo_too(self) -> None:
        memo = Memo()
        eve = verdict(self.board(self.EVE, memo))
        assert eve.status is Status.LATE
        assert "the run due Thu 31 Dec 04:00 " in eve.reasons[0], eve.reasons
        after = verdict(self.board(self.NEW_YEAR, memo))
        assert after.reasons == verdict(self.board(self.NEW_YEAR, None)).reasons, "the memo judged again"
        assert "the run due Thu 31 Dec 2026 04:00 " in after.reasons[0], after.reasons
        assert "last success Tue 29 Dec 2026 04:05" in after.reasons[0]


class TestAcrossAClockChange:
    """Python adds a timedelta to a zoned time by the wall clock: 01:30 + 2 h is 03:30, one real hour later on
    the night the clocks go forward. A slot's grace is real time, as `late` has always counted it."""

    # Madrid, 28 March 2027: 02:00 CET becomes 03:00 CEST. The 01:30 slot is 00:30 UTC.
    SLOT = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)

    def board(self, now: datetime, snaps: list[Snapshot] | None = None, pbs_jobs: tuple[Job, ...] = ()) -> Board:
        job = a_job(schedule="01:30")
        if snaps is None:
            snaps = [a_snapshot(self.SLOT - n * DAY + timedelta(minutes=5)) for n in range(1, 8)]
        observation = Observation(
            source="pbs", kind="pbs", observed_at=now, timezone=ZONE, snapshots=tuple(snaps), jobs=pbs_jobs
        )
        pbs_state = SourceState("pbs", "pbs", timedelta(minutes=5), observation, now, now)
        pve_state = replace(pve(jobs=(job,)), last_attempt_at=now, last_success_at=now)
        pve_state = replace(pve_state, observation=replace(pve_state.observation, observed_at=now))
        return judge(pve_state, pbs_state, services=(a_service(grace=timedelta(hours=2)),), now=now)

    def test_the_calendar_waits_the_whole_grace_in_real_time(self) -> None:
        board = self.board(self.SLOT + timedelta(hours=1, minutes=30))  # 04:00 CEST: 1.5 real hours after it
        (slot,) = [s for s in board.slots if s.start_at == self.SLOT]
        assert slot.outcome is SlotOutcome.UPCOMING, "its 2 h grace is not over: not missed yet"
        assert verdict(board).status is Status.OK  # the verdict agrees
        nearly = self.board(self.SLOT + timedelta(hours=1, minutes=50))
        assert nearly.next_change_at == self.SLOT + timedelta(hours=2), "judged again when the grace ends"
        after = self.board(self.SLOT + timedelta(hours=2, minutes=1))
        (slot,) = [s for s in after.slots if s.start_at == self.SLOT]
        assert slot.outcome is SlotOutcome.MISSED and verdict(after).status is Status.LATE

    def test_a_backup_after_the_first_slot_past_the_gap_counts_for_it(self) -> None:
        """03:00 is the first time after the gap: 03:00 minus the slot's 5 minutes of tolerance, counted by the
        wall clock, was 02:55, a time that does not exist and reads as an hour later: a backup at 03:15 fell
        outside its own slot, the service was late and the calendar said missed."""
        slot = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 03:00 CEST
        job = a_job(schedule="03:00")
        madrid = ZoneInfo(ZONE)
        snaps = [a_snapshot(datetime(2027, 3, 28 - n, 3, 15, tzinfo=madrid).astimezone(UTC)) for n in range(7)]
        now = slot + timedelta(hours=8)
        pve_state = replace(pve(jobs=(job,)), last_attempt_at=now, last_success_at=now)
        pbs_state = replace(pbs(snaps), last_attempt_at=now, last_success_at=now)
        board = judge(pve_state, pbs_state, services=(a_service(),), now=now)
        assert verdict(board).status is Status.OK, verdict(board).reasons
        (today,) = [s for s in board.slots if s.start_at == slot]
        assert today.outcome is SlotOutcome.SUCCEEDED

    def test_every_slot_of_the_hour_the_clocks_go_back_is_a_slot_of_its_own(self) -> None:
        """The hour 02:00-03:00 happens twice: a half-hourly cron schedule is due at both 02:00 and both 02:30.
        Compared by the wall clock, the second 02:00 came before the first 02:30 and was merged into it."""
        job = replace(a_job(), schedule=ScheduleRef("*/30 * * * *", "cron", ZONE))
        first = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # midnight in Madrid
        slots = [first + n * timedelta(minutes=30) for n in range(13)]  # to 04:00 CET, the double hour between
        second_two = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET, after 02:00 and 02:30 CEST
        now = slots[-1] + timedelta(minutes=20)
        pve_state = replace(pve(jobs=(job,)), last_attempt_at=now, last_success_at=now)

        def board_with(snaps: list[Snapshot]) -> Board:
            pbs_state = replace(pbs(snaps), last_attempt_at=now, last_success_at=now)
            return judge(pve_state, pbs_state, services=(a_service(grace=timedelta(minutes=10)),), now=now)

        every = board_with([a_snapshot(at + timedelta(minutes=1)) for at in slots])
        assert verdict(every).status is Status.OK, verdict(every).reasons
        shown = {s.start_at: s.outcome for s in every.slots if first <= s.start_at <= slots[-1]}
        assert sorted(shown) == slots and set(shown.values()) == {SlotOutcome.SUCCEEDED}
        one_missing = board_with([a_snapshot(at + timedelta(minutes=1)) for at in slots if at != second_two])
        assert verdict(one_missing).status is Status.GAPS, verdict(one_missing).reasons
        assert verdict(one_missing).missed_slots == (second_two,)
        missed = [s.start_at for s in one_missing.slots if s.outcome is SlotOutcome.MISSED]
        assert missed == [second_two]

    def test_unverified_counts_the_verify_jobs_grace_in_real_time(self) -> None:
        snap = a_snapshot(self.SLOT + timedelta(minutes=5), verification=Verification.NONE)
        verify = a_verify_job("01:45")  # 00:45 UTC
        # 1 h 45 real minutes after the verify slot: within its 2 h grace
        board = self.board(self.SLOT + timedelta(hours=2), [snap], (verify,))
        assert verdict(board).status is not Status.UNVERIFIED, verdict(board).reasons
        later = self.board(self.SLOT + timedelta(hours=2, minutes=46), [snap], (verify,))
        assert verdict(later).status is Status.UNVERIFIED, "and once it is over, it is said"
