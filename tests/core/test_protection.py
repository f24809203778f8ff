"""Protection (issue 13): every risk from plain records, and its absence where it would be a false alarm.

Copies and offsite copies, the offsite lag, encryption, verification age, restore tests, size and duration
anomalies, retention; the `at_risk` status and its place among the others; the moments the collector must wake
for; and how `/api/v1/status` and `/metrics` carry it all.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from msgspec.structs import replace as evolve

from backup_glance.health import Defaults, evaluate
from backup_glance.health.protection import kept
from backup_glance.model import (
    AnomalyPolicy,
    Board,
    GuestRef,
    HistoryView,
    Job,
    JobKind,
    JobRun,
    Observation,
    ProtectionPolicy,
    RemoteCopy,
    RiskKind,
    RunOutcome,
    ScheduleRef,
    ServiceSpec,
    Severity,
    Snapshot,
    SourceState,
    Status,
    Target,
    Verdict,
    Verification,
)
from backup_glance.web.api import build_status
from backup_glance.web.metrics import render_metrics

ZONE = "Europe/Madrid"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thursday 10:00 in Madrid
SLOT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # today's 04:00 in Madrid
DAY = timedelta(days=1)
GB = 1024**3
OFFSITE_POLICY = ProtectionPolicy(copies=2, offsite=1, offsite_lag=2 * DAY, encrypted_offsite=True)


def snap(
    at: datetime,
    *,
    source: str = "pbs",
    location: str = "main",
    size: int = GB,
    encrypted: bool | None = True,
    verified: datetime | None = None,
    protected: bool = False,
    key: str = "guest:101",
) -> Snapshot:
    return Snapshot(
        target_key=key,
        source=source,
        snapshot_id=f"{location}/ct/101/{at.isoformat()}",
        taken_at=at,
        size_bytes=size,
        verification=Verification.OK,
        verified_at=verified or at + timedelta(hours=2),
        location=location,
        encrypted=encrypted,
        protected=protected,
    )


def copies_of(verdict: Verdict) -> dict[tuple[str, str], tuple[int | None, datetime | None, bool | None]]:
    assert verdict.protection is not None
    return {(c.source, c.location): (c.snapshots, c.newest_at, c.encrypted) for c in verdict.protection.copies}


def taken(snapshot: Snapshot) -> datetime:
    return snapshot.taken_at


def replace_places(snapshot: Snapshot, places: tuple[str, ...]) -> Snapshot:
    return evolve(snapshot, places=places, snapshot_id=f"{snapshot.snapshot_id}@{'+'.join(places)}")


def nightly(days: int = 14, *, skip: tuple[int, ...] = (), **kw: Any) -> list[Snapshot]:
    return [snap(SLOT - n * DAY + timedelta(minutes=2), **kw) for n in range(days) if n not in skip]


def backup_job(keep: tuple[tuple[str, int], ...] = ()) -> Job:
    return Job(
        key="pve/backup/nightly",
        source="pve",
        kind=JobKind.BACKUP,
        job_id="nightly",
        name="nightly",
        schedule=ScheduleRef("04:00", "proxmox", ZONE),
        target_keys=("guest:101",),
        store="pbs-main",
        keep=keep,
    )


def state(
    name: str,
    kind: str,
    *,
    snapshots: list[Snapshot] = (),  # type: ignore[assignment]
    jobs: tuple[Job, ...] = (),
    runs: tuple[JobRun, ...] = (),
    targets: tuple[Target, ...] = (),
    **observation: Any,
) -> SourceState:
    obs = Observation(
        source=name,
        kind=kind,
        observed_at=NOW,
        timezone=ZONE,
        targets=targets,
        snapshots=tuple(snapshots),
        jobs=jobs,
        runs=runs,
        **observation,
    )
    return SourceState(name, kind, timedelta(minutes=5), obs, NOW, NOW)


def pve(*jobs: Job, runs: tuple[JobRun, ...] = ()) -> SourceState:
    guest = Target("guest:101", "pve", "vault", "guest", GuestRef(101, "lxc", "pve"))
    return state("pve", "pve", jobs=jobs or (backup_job(),), runs=runs, targets=(guest,))


def judge(
    *sources: SourceState,
    policy: ProtectionPolicy | None = None,
    now: datetime = NOW,
    anomalies: AnomalyPolicy | None = None,
    target_keys: tuple[str, ...] = ("guest:101",),
) -> Board:
    spec = ServiceSpec(
        id="vault",
        name="Vault",
        target_keys=target_keys,
        grace=timedelta(hours=1),
        max_age=timedelta(hours=26),
        lookback=timedelta(days=14),
        protection=policy,
    )
    return evaluate(
        services=[spec],
        sources=sources,
        history=HistoryView(),
        now=now,
        display_tz=ZONE,
        defaults=Defaults(anomalies=anomalies or AnomalyPolicy()),
    )


def vault(board: Board) -> Verdict:
    (verdict,) = [v for v in board.verdicts if v.service_id == "vault"]
    return verdict


def kinds(verdict: Verdict) -> list[RiskKind]:
    assert verdict.protection is not None
    return [r.kind for r in verdict.protection.risks]


def remote_copy(newest: datetime | None, *, encrypted: bool | None = True, endpoint: str = "") -> RemoteCopy:
    return RemoteCopy(
        target_key="guest:101",
        source="pbs",
        location="offsite:backups",
        endpoint=endpoint,
        newest_at=newest,
        count=14 if newest else None,
        encrypted=encrypted,
        offsite=True,
        job_key="pbs/sync/s-offsite",
    )


# --- copies and offsite -------------------------------------------------------------------------------------------


class TestCopies:
    def test_one_location_is_one_copy_and_falls_short_of_two(self) -> None:
        verdict = vault(judge(pve(), state("pbs", "pbs", snapshots=nightly()), policy=OFFSITE_POLICY))
        assert verdict.status is Status.AT_RISK and verdict.severity is Severity.WARNING
        assert kinds(verdict) == [RiskKind.COPIES, RiskKind.OFFSITE]
        assert verdict.reasons[0] == "1 copy with a backup from the last 14d (pbs:main); the policy asks for 2"
        assert verdict.protection is not None and verdict.protection.copy_count == 1

    def test_each_place_is_a_copy_with_its_newest_snapshot_and_its_count(self) -> None:
        """Two datastores of one PBS, interleaved in time; then a backup kept in two places at once as well (as
        Databasement's volumes): each place counts its own snapshots and shows its own newest."""
        main = nightly(5, encrypted=True)
        site = nightly(3, location="main/site-b", encrypted=False)
        pbs = state("pbs", "pbs", snapshots=sorted(main + site, key=taken))
        expected = {("pbs", "main"): (5, main[0].taken_at, True), ("pbs", "main/site-b"): (3, site[0].taken_at, False)}
        assert copies_of(vault(judge(pve(), pbs))) == expected
        both = replace_places(snap(SLOT - 2 * DAY, source="db", location="", encrypted=None), ("nas", "s3"))
        once = replace_places(snap(SLOT - DAY, source="db", location="", encrypted=None), ("nas",))
        databasement = state("db", "databasement", snapshots=[both, once])
        assert copies_of(vault(judge(pve(), pbs, databasement))) == {
            **expected,
            ("db", "nas"): (2, once.taken_at, None),
            ("db", "s3"): (1, both.taken_at, None),
        }

    def test_no_policy_no_risk_but_the_facts_are_there(self) -> None:
        verdict = vault(judge(pve(), state("pbs", "pbs", snapshots=nightly(protected=False))))
        assert verdict.status is Status.OK
        assert verdict.protection is not None and verdict.protection.copy_count == 1
        assert verdict.protection.encrypted is True and verdict.protection.risks == ()

    def test_a_pushed_copy_on_a_remote_is_the_offsite_copy_and_meets_the_policy(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(SLOT + timedelta(minutes=2)),))
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert verdict.status is Status.OK, verdict.reasons
        p = verdict.protection
        assert p is not None and (p.copy_count, p.offsite_count, p.offsite_lag) == (2, 1, timedelta(0))
        assert p.encrypted is True

    def test_a_copy_older_than_the_lookback_does_not_count(self) -> None:
        old = remote_copy(SLOT - 20 * DAY)
        verdict = vault(
            judge(pve(), state("pbs", "pbs", snapshots=nightly(), remote_copies=(old,)), policy=OFFSITE_POLICY)
        )
        assert RiskKind.COPIES in kinds(verdict) and RiskKind.OFFSITE in kinds(verdict)

    def test_the_same_pbs_seen_as_a_remote_and_as_a_source_counts_once_and_both_ways_agree(self) -> None:
        newest = SLOT - DAY + timedelta(minutes=2)
        offsite_snaps = [evolve(s, source="pbs-off", location="backups") for s in nightly()[1:]]  # up to yesterday
        via_remote = state(
            "pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(newest, endpoint="off.lan:8007/backups"),)
        )
        direct = state(
            "pbs-off", "pbs", snapshots=offsite_snaps, endpoint="off.lan:8007", offsite_locations=("backups",)
        )
        only_remote = vault(judge(pve(), via_remote, policy=OFFSITE_POLICY)).protection
        only_direct = vault(judge(pve(), state("pbs", "pbs", snapshots=nightly()), direct, policy=OFFSITE_POLICY))
        both = vault(judge(pve(), via_remote, direct, policy=OFFSITE_POLICY)).protection
        assert only_remote is not None and both is not None and only_direct.protection is not None
        facts = {(p.copy_count, p.offsite_count, p.offsite_lag) for p in (only_remote, only_direct.protection, both)}
        assert facts == {(2, 1, DAY)}

    def test_a_remote_that_could_not_be_asked_is_unknown_not_missing(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(None),))
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert verdict.status is Status.OK, verdict.reasons
        assert verdict.protection is not None and verdict.protection.risks == ()
        assert any("could not be asked" in u for u in verdict.protection.unknown)

    def test_without_remote_audit_a_missing_offsite_copy_is_unknown_not_an_alarm(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remotes_visible=False)
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert verdict.status is Status.OK, verdict.reasons
        assert verdict.protection is not None
        assert any("Remote.Audit" in u for u in verdict.protection.unknown)

    def test_offsite_locations_come_from_the_source(self) -> None:
        local = state("pbs", "pbs", snapshots=nightly())
        b2 = state(
            "restic-b2",
            "restic",
            snapshots=nightly(source="restic-b2", location="b2:bucket"),
            offsite_locations=("b2:bucket",),
        )
        verdict = vault(judge(pve(), local, b2, policy=ProtectionPolicy(copies=2, offsite=1)))
        assert verdict.status is Status.OK and verdict.protection is not None
        assert verdict.protection.offsite_count == 1

    def test_places_of_one_dump_are_copies_each(self) -> None:
        dump = [evolve(s, source="db", location="NAS, S3", places=("NAS", "S3")) for s in nightly()]
        verdict = vault(
            judge(
                pve(),
                state("db", "databasement", snapshots=dump, offsite_locations=("S3",)),
                policy=ProtectionPolicy(copies=2, offsite=1),
            )
        )
        assert verdict.status is Status.OK, verdict.reasons


class TestASourceThatNeverAnswered:
    """A Backrest whose password is wrong from day one: its plan's service was 'never seen', blamed PVE and PBS
    (answering or not) instead, and fell short of copies and restore tests it may well have."""

    @staticmethod
    def judge_plan(*sources: SourceState) -> Verdict:
        policy = ProtectionPolicy(copies=2, restore_test=90 * DAY)
        return vault(judge(*sources, policy=policy, target_keys=("backrest:backrest/vault",)))

    def test_its_own_source_is_named_and_nothing_is_missing_for_sure(self) -> None:
        rejected = SourceState("backrest", "backrest", timedelta(minutes=5), error="username or password rejected")
        verdict = self.judge_plan(pve(), state("pbs", "pbs", snapshots=nightly()), rejected)
        assert verdict.status is Status.UNKNOWN and verdict.kind == "plan"
        assert verdict.reasons[0] == "source 'backrest' has not answered yet: username or password rejected"
        assert verdict.protection is not None and verdict.protection.risks == ()
        assert [line.split(":")[0] for line in verdict.protection.unknown] == ["copies", "restore_test"]
        assert all(line.endswith("but source 'backrest' has not answered yet") for line in verdict.protection.unknown)

    def test_sources_that_cannot_hold_it_are_not_blamed(self) -> None:
        silent = [
            SourceState(kind, kind, timedelta(minutes=5), error="timed out") for kind in ("pve", "pbs", "backrest")
        ]
        verdict = self.judge_plan(*silent)
        assert [r for r in verdict.reasons if "has not answered" in r] == [
            "source 'backrest' has not answered yet: timed out"
        ]

    def test_once_it_answered_without_the_plan_the_shortfalls_are_certain(self) -> None:
        verdict = self.judge_plan(pve(), state("backrest", "backrest"))
        assert verdict.protection is not None and verdict.protection.unknown == ()
        assert kinds(verdict) == [RiskKind.COPIES, RiskKind.RESTORE_TEST]


class TestOffsiteLagAndEncryption:
    def test_an_offsite_copy_further_behind_than_allowed_is_a_lag_risk(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(SLOT - 4 * DAY),))
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert verdict.status is Status.AT_RISK and kinds(verdict) == [RiskKind.OFFSITE_LAG]
        assert "is 4d 2m behind the newest backup (Thu 26 Nov 04:02); the policy allows 2d" in verdict.reasons[0]
        assert verdict.protection is not None and verdict.protection.offsite_lag == 4 * DAY + timedelta(minutes=2)

    def test_an_unencrypted_offsite_copy_is_a_risk_only_when_asked(self) -> None:
        pbs = state(
            "pbs", "pbs", snapshots=nightly(encrypted=False), remote_copies=(remote_copy(SLOT, encrypted=False),)
        )
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert kinds(verdict) == [RiskKind.UNENCRYPTED]
        assert "offsite copy offsite:backups is not encrypted" in verdict.reasons[0]
        relaxed = replace(OFFSITE_POLICY, encrypted_offsite=False)
        assert vault(judge(pve(), pbs, policy=relaxed)).status is Status.OK

    def test_encryption_not_known_is_no_alarm(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(SLOT, encrypted=None),))
        verdict = vault(judge(pve(), pbs, policy=OFFSITE_POLICY))
        assert verdict.status is Status.OK and verdict.protection is not None
        assert verdict.protection.encrypted is None


# --- verification age, restore tests ------------------------------------------------------------------------------


def verify_job(outdated: timedelta | None, schedule: str | None = "06:00") -> Job:
    return Job(
        key="pbs/verify/v-main",
        source="pbs",
        kind=JobKind.VERIFY,
        job_id="v-main",
        name="v-main",
        schedule=ScheduleRef(schedule, "proxmox", ZONE) if schedule else None,
        store="main",
        outdated_after=outdated,
    )


class TestVerificationAge:
    def snapshots(self, verified: datetime) -> list[Snapshot]:
        return [snap(SLOT - n * DAY, verified=verified) for n in range(3)]

    def test_older_than_outdated_after_and_the_job_ran_since_is_stale(self) -> None:
        pbs = state("pbs", "pbs", snapshots=self.snapshots(NOW - 40 * DAY), jobs=(verify_job(30 * DAY),))
        verdict = vault(judge(pve(), pbs))
        assert kinds(verdict) == [RiskKind.VERIFICATION_AGE]
        assert verdict.protection is not None and verdict.protection.verification_stale_at is not None
        assert "older than its verify job's outdated-after" in verdict.reasons[0]

    def test_until_the_job_has_had_its_chance_it_is_not_stale(self) -> None:
        verified = NOW - 30 * DAY + timedelta(hours=1)  # outdated in an hour; the job runs tomorrow at 06:00
        pbs = state("pbs", "pbs", snapshots=self.snapshots(verified), jobs=(verify_job(30 * DAY),))
        verdict = vault(judge(pve(), pbs))
        assert verdict.status is Status.OK
        stale = verdict.protection and verdict.protection.verification_stale_at
        # the job's first slot after the verification became outdated (tomorrow 06:00 Madrid), plus 1h grace
        assert stale == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
        later = vault(judge(pve(), pbs, now=stale + timedelta(seconds=1)))
        assert RiskKind.VERIFICATION_AGE in kinds(later)

    def test_a_verify_job_without_outdated_after_keeps_todays_rule(self) -> None:
        pbs = state("pbs", "pbs", snapshots=self.snapshots(NOW - 400 * DAY), jobs=(verify_job(None),))
        verdict = vault(judge(pve(), pbs))
        assert verdict.status is Status.OK and verdict.protection is not None
        assert verdict.protection.verification_stale_at is None

    def test_a_job_without_schedule_is_stale_at_once(self) -> None:
        pbs = state("pbs", "pbs", snapshots=self.snapshots(NOW - 31 * DAY), jobs=(verify_job(30 * DAY, None),))
        assert kinds(vault(judge(pve(), pbs))) == [RiskKind.VERIFICATION_AGE]


def restore_job(*ended: datetime, outcome: RunOutcome = RunOutcome.OK) -> tuple[Job, tuple[JobRun, ...]]:
    job = Job(
        key="db/restore_test/r1",
        source="db",
        kind=JobKind.RESTORE_TEST,
        job_id="r1",
        name="restore drill",
        target_keys=("guest:101",),
    )
    runs = tuple(JobRun(job.key, "db", f"r{i}", at - timedelta(minutes=2), at, outcome) for i, at in enumerate(ended))
    return job, runs


class TestRestoreTests:
    def test_a_recent_restore_test_meets_the_policy(self) -> None:
        job, runs = restore_job(NOW - 41 * DAY, NOW - 3 * DAY)
        db = state("db", "databasement", jobs=(job,), runs=runs)
        verdict = vault(
            judge(pve(), state("pbs", "pbs", snapshots=nightly()), db, policy=ProtectionPolicy(restore_test=90 * DAY))
        )
        assert verdict.status is Status.OK
        assert verdict.protection is not None and verdict.protection.last_restore_test_at == NOW - 3 * DAY

    def test_a_stale_or_missing_restore_test_is_a_risk(self) -> None:
        job, runs = restore_job(NOW - 120 * DAY)
        failed_job, failed = restore_job(NOW - DAY, outcome=RunOutcome.FAILED)
        policy = ProtectionPolicy(restore_test=90 * DAY)
        pbs = state("pbs", "pbs", snapshots=nightly())
        stale = vault(judge(pve(), pbs, state("db", "databasement", jobs=(job,), runs=runs), policy=policy))
        assert kinds(stale) == [RiskKind.RESTORE_TEST] and "more than 90d ago" in stale.reasons[0]
        never = vault(judge(pve(), pbs, state("db", "databasement", jobs=(failed_job,), runs=failed), policy=policy))
        assert never.reasons[0] == "no successful restore test found"

    def test_the_moment_it_turns_stale_is_announced(self) -> None:
        job, runs = restore_job(NOW - 90 * DAY + timedelta(hours=1))
        db = state("db", "databasement", jobs=(job,), runs=runs)
        board = judge(
            pve(), state("pbs", "pbs", snapshots=nightly()), db, policy=ProtectionPolicy(restore_test=90 * DAY)
        )
        assert vault(board).status is Status.OK
        assert board.next_change_at is not None and board.next_change_at <= NOW + timedelta(hours=1)
        turned = NOW + timedelta(hours=1, seconds=1)
        assert (
            vault(
                judge(
                    pve(),
                    state("pbs", "pbs", snapshots=nightly()),
                    db,
                    policy=ProtectionPolicy(restore_test=90 * DAY),
                    now=turned,
                )
            ).status
            is Status.AT_RISK
        )


# --- anomalies ----------------------------------------------------------------------------------------------------


class TestSizeAnomaly:
    def test_a_dump_that_shrank_to_a_tenth_is_a_risk_showing_both_sizes(self) -> None:
        snaps = nightly(size=int(3.3 * GB))
        snaps[0] = evolve(snaps[0], size_bytes=350 * 1024**2)  # nightly() is newest first
        verdict = vault(judge(pve(), state("pbs", "pbs", snapshots=snaps)))
        assert verdict.status is Status.AT_RISK and kinds(verdict) == [RiskKind.SIZE_ANOMALY]
        assert "is 350 MB, usually 3.3 GB" in verdict.reasons[0]

    def test_growth_is_no_anomaly(self) -> None:
        snaps = nightly(size=GB)
        snaps[0] = evolve(snaps[0], size_bytes=20 * GB)
        assert vault(judge(pve(), state("pbs", "pbs", snapshots=snaps))).status is Status.OK

    def test_too_little_history_raises_nothing(self) -> None:
        snaps = nightly(7, size=GB)  # 6 earlier snapshots: fewer than min_history 7
        snaps[0] = evolve(snaps[0], size_bytes=GB // 10)
        assert vault(judge(pve(), state("pbs", "pbs", snapshots=snaps))).status is Status.OK

    def test_a_drop_inside_the_usual_spread_is_none(self) -> None:
        sizes = [GB, GB // 5] * 7  # a backup that alternates between full and small
        snaps = [evolve(s, size_bytes=sizes[i]) for i, s in enumerate(nightly())]
        snaps[0] = evolve(snaps[0], size_bytes=GB // 5)
        assert vault(judge(pve(), state("pbs", "pbs", snapshots=snaps))).status is Status.OK

    def test_anomalies_can_be_turned_off(self) -> None:
        snaps = nightly(size=GB)
        snaps[0] = evolve(snaps[0], size_bytes=GB // 10)
        board = judge(pve(), state("pbs", "pbs", snapshots=snaps), anomalies=AnomalyPolicy(enabled=False))
        assert vault(board).status is Status.OK


def runs(durations: list[timedelta]) -> tuple[JobRun, ...]:
    """Nightly per-guest runs, oldest first, with these durations."""
    out = []
    for n, took in enumerate(reversed(durations)):  # the last duration is tonight's
        start = SLOT - n * DAY
        out.append(
            JobRun("pve/backup/nightly", "pve", f"UPID:{n}", start, start + took, RunOutcome.OK, target_key="guest:101")
        )
    return tuple(sorted(out, key=lambda r: r.started_at))


class TestDurationAnomaly:
    def test_a_run_far_longer_than_usual_is_a_risk(self) -> None:
        verdict = vault(
            judge(
                pve(runs=runs([timedelta(minutes=4)] * 10 + [timedelta(minutes=41)])),
                state("pbs", "pbs", snapshots=nightly()),
            )
        )
        assert kinds(verdict) == [RiskKind.DURATION_ANOMALY]
        assert "took 41m, usually 4m (median of the 10 before it)" in verdict.reasons[0]

    def test_short_history_or_a_small_absolute_rise_is_none(self) -> None:
        few = runs([timedelta(minutes=4)] * 5 + [timedelta(minutes=41)])
        seconds = runs([timedelta(seconds=10)] * 10 + [timedelta(seconds=80)])  # 8x, but only 70 s longer
        for given in (few, seconds):
            assert vault(judge(pve(runs=given), state("pbs", "pbs", snapshots=nightly()))).status is Status.OK


# --- retention ----------------------------------------------------------------------------------------------------

KEEP = (("keep-last", 3), ("keep-daily", 14), ("keep-weekly", 8))


def prune_job() -> Job:
    return Job(
        key="pbs/prune/p",
        source="pbs",
        kind=JobKind.PRUNE,
        job_id="p",
        name="prune-main",
        schedule=ScheduleRef("05:00", "proxmox", ZONE),
        store="main",
        keep=KEEP,
    )


class TestRetention:
    def test_pbs_semantics_days_without_a_backup_do_not_count(self) -> None:
        zone = ZoneInfo(ZONE)
        every_day = [(SLOT - n * DAY, False) for n in range(30)]
        with_holes = [(at, p) for i, (at, p) in enumerate(every_day) if i not in (4, 5, 6)]
        policy = (("keep-daily", 7),)
        assert kept(every_day, policy, zone) == 7 and kept(with_holes, policy, zone) == 7  # reaches further back
        assert kept([*with_holes, (SLOT - 40 * DAY, True)], policy, zone) == 8  # protected ones are kept too

    def test_a_young_service_whose_runs_failed_has_fewer_snapshots_than_promised(self) -> None:
        snaps = nightly(10, skip=(3, 4, 5))  # ten days old, three nights failed
        failed = tuple(
            JobRun(
                "pve/backup/nightly",
                "pve",
                f"UPID:f{n}",
                SLOT - n * DAY,
                SLOT - n * DAY + timedelta(seconds=5),
                RunOutcome.FAILED,
                "lxc-freeze failed",
                "guest:101",
            )
            for n in (3, 4, 5)
        )
        verdict = vault(judge(pve(runs=failed), state("pbs", "pbs", snapshots=snaps, jobs=(prune_job(),))))
        assert verdict.status is Status.GAPS  # the gaps name the verdict; the retention risk is listed too
        assert kinds(verdict) == [RiskKind.RETENTION]
        assert any("keeps 7 snapshots at pbs:main" in r and "cost 3 of the 10" in r for r in verdict.reasons)

    def test_a_mature_service_keeps_what_the_policy_promises_despite_failed_runs(self) -> None:
        snaps = nightly(100, skip=(3, 4, 5))  # older than what the policy reaches back to (~11 weeks)
        verdict = vault(judge(pve(), state("pbs", "pbs", snapshots=snaps, jobs=(prune_job(),))))
        assert RiskKind.RETENTION not in kinds(verdict)

    def test_pve_prune_backups_apply_to_its_own_storage(self) -> None:
        files = [evolve(s, source="pve", location="pbs-main") for s in nightly(10, skip=(3, 4, 5))]
        job = backup_job(keep=(("keep-last", 10),))
        guest = Target("guest:101", "pve", "vault", "guest", GuestRef(101, "lxc", "pve"))
        verdict = vault(judge(state("pve", "pve", jobs=(job,), snapshots=files, targets=(guest,))))
        assert kinds(verdict) == [RiskKind.RETENTION]


# --- status, precedence, outputs ----------------------------------------------------------------------------------


class TestStatusAndOutputs:
    def test_a_critical_verdict_wins_and_its_reasons_list_the_risks_too(self) -> None:
        snaps = nightly()[1:]  # no backup last night
        verdict = vault(judge(pve(), state("pbs", "pbs", snapshots=snaps), policy=ProtectionPolicy(copies=2)))
        assert verdict.status is Status.LATE
        assert any(r.startswith("1 copy with a backup") for r in verdict.reasons[1:])

    def test_the_api_carries_risks_and_protection(self) -> None:
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(SLOT - 4 * DAY),))
        board = judge(pve(), pbs, policy=OFFSITE_POLICY)
        (service,) = build_status(board, ZoneInfo(ZONE))["services"]
        assert service["status"] == "at_risk"
        assert [r["kind"] for r in service["risks"]] == ["offsite_lag"]
        protection = service["protection"]
        assert protection is not None
        assert (protection["copies"], protection["offsite_copies"]) == (2, 1)
        assert protection["offsite_lag_s"] == (4 * DAY + timedelta(minutes=2)).total_seconds()
        assert protection["encrypted"] is True
        assert {loc["location"] for loc in protection["locations"]} == {"main", "offsite:backups"}
        assert build_status(board, ZoneInfo(ZONE))["counts"]["status"]["at_risk"] == 1

    def test_metrics_carry_copies_lag_restore_test_and_at_risk(self) -> None:
        job, restore_runs = restore_job(NOW - 5 * DAY)
        pbs = state("pbs", "pbs", snapshots=nightly(), remote_copies=(remote_copy(SLOT - 4 * DAY),))
        board = judge(pve(), pbs, state("db", "databasement", jobs=(job,), runs=restore_runs), policy=OFFSITE_POLICY)
        text = render_metrics(board).decode()
        assert 'backup_glance_service_copies{service="vault"} 2.0' in text
        lag = (4 * DAY + timedelta(minutes=2)).total_seconds()
        assert f'backup_glance_service_offsite_lag_seconds{{service="vault"}} {lag}' in text
        (restored,) = [line for line in text.splitlines() if line.startswith("backup_glance_service_last_restore")]
        assert restored.startswith('backup_glance_service_last_restore_test_timestamp_seconds{service="vault"} ')
        assert float(restored.rsplit(" ", 1)[1]) == (NOW - 5 * DAY).timestamp()
        assert 'backup_glance_service_at_risk{service="vault"} 1.0' in text
        assert 'backup_glance_service_status{name="Vault",service="vault",status="at_risk"} 1.0' in text

    def test_copies_leaving_the_lookback_are_announced_deadlines(self) -> None:
        snaps = [snap(NOW - 13 * DAY)]  # one copy, about to leave the 14-day lookback
        board = judge(state("pbs", "pbs", snapshots=snaps), policy=ProtectionPolicy(copies=1))
        assert board.next_change_at is not None and board.next_change_at <= NOW + DAY
        verdict = vault(board)
        assert RiskKind.COPIES not in kinds(verdict)
        after = vault(
            judge(
                state("pbs", "pbs", snapshots=snaps),
                policy=ProtectionPolicy(copies=1),
                now=NOW + DAY + timedelta(seconds=1),
            )
        )
        assert RiskKind.COPIES in kinds(after)


# --- configuration ------------------------------------------------------------------------------------------------

BASE = """
sources:
  - {name: pbs, type: pbs, url: "https://pbs:8007", token_id: 'a@pbs!t', token_secret: s, offsite: [b2-store]}
"""


class TestConfig:
    def test_service_keys_win_over_the_defaults_and_false_switches_it_off(self) -> None:
        from backup_glance.config import parse_config, service_specs

        config = parse_config(
            BASE
            + """
defaults: {protection: {copies: 2, offsite: 1, restore_test: 90d}}
services:
  - {id: a, guest: 101, protection: {copies: 3, offsite_lag: 2d, encrypted_offsite: true}}
  - {id: b, guest: 102}
  - {id: c, guest: 103, protection: false}
anomalies: {size_drop: 0.3, min_history: 10}
"""
        )
        a, b, c = service_specs(config)
        assert a.protection == ProtectionPolicy(
            copies=3, offsite=1, offsite_lag=2 * DAY, encrypted_offsite=True, restore_test=90 * DAY
        )
        assert b.protection == ProtectionPolicy(copies=2, offsite=1, restore_test=90 * DAY)
        assert c.protection is None
        assert (config.anomalies.size_drop, config.anomalies.min_history, config.anomalies.enabled) == (0.3, 10, True)

    def test_anomalies_switch_and_bad_values_are_named(self) -> None:
        from backup_glance.config import parse_config, parse_text

        assert parse_config(BASE + "anomalies: false\n").anomalies.enabled is False
        report = parse_text(
            BASE
            + """
anomalies: {size_drop: 2}
services:
  - {id: a, guest: 101, protection: {copies: 1, offsite: 2, offsite_lag: 0s}}
"""
        )
        text = "\n".join(str(p) for p in report.errors)
        assert "anomalies.size_drop" in text
        assert "services[0].protection.offsite: asks for more offsite copies than copies (1)" in text
        assert "services[0].protection.offsite_lag: must be more than 0s" in text

    def test_pbs_namespace_must_name_pbs_sources_and_stay_apart(self) -> None:
        from backup_glance.config import parse_text

        report = parse_text(
            BASE
            + """
  - {name: pve-a, type: pve, url: "https://a:8006", token_id: 'a@pbs!t', token_secret: s, pbs_namespace: site}
  - {name: pve-b, type: pve, url: "https://b:8006", token_id: 'a@pbs!t', token_secret: s, pbs_namespace: {pbx: site}}
  - {name: pve-c, type: pve, url: "https://c:8006", token_id: 'a@pbs!t', token_secret: s, pbs_namespace: site}
  - {name: pve-d, type: pve, url: "https://d:8006", token_id: 'a@pbs!t', token_secret: s, pbs_namespace: "bad ns!"}
"""
        )
        text = "\n".join(str(p) for p in report.errors)
        assert "no PBS source is named 'pbx' — did you mean 'pbs'?" in text
        assert "namespace 'site' on 'pbs' is already the one of PVE source 'pve-a'" in text
        assert "is not a PBS namespace" in text
