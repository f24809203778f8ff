"""The real collector against the demo homelab's simulators over HTTPS: every verdict, every failure mode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from backup_glance.demo import DemoLab
from backup_glance.model import Board, RiskKind, Severity, Status, Verdict
from backup_glance.runtime import Runtime, build_runtime

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # Thursday 13:00 in Madrid: the nightly runs are done


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def lab() -> Iterator[DemoLab]:
    with DemoLab(now=NOW) as demo:
        yield demo


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop per test: a collector's HTTP connections belong to the loop that opened them."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture
def runtimes(lab: DemoLab, loop: asyncio.AbstractEventLoop) -> Iterator[list[Runtime]]:
    """Every runtime a test starts is closed before the simulators stop, so they shut down at once."""
    started: list[Runtime] = []
    yield started
    for runtime in started:
        loop.run_until_complete(runtime.collector.stop())
        if runtime.history is not None:
            runtime.history.close()


@dataclass
class Harness:
    lab: DemoLab
    clock: Clock
    loop: asyncio.AbstractEventLoop
    runtimes: list[Runtime]

    def start(self, edit: Callable[[str], str] = lambda text: text) -> Runtime:
        runtime = build_runtime(self.lab.config(edit(self.lab.config_text())), clock=self.clock)
        self.runtimes.append(runtime)
        return runtime

    def poll(self, runtime: Runtime) -> Board:
        return self.loop.run_until_complete(runtime.collector.poll_once())

    def board(self, edit: Callable[[str], str] = lambda text: text) -> Board:
        return self.poll(self.start(edit))


@pytest.fixture
def h(lab: DemoLab, loop: asyncio.AbstractEventLoop, runtimes: list[Runtime]) -> Harness:
    return Harness(lab, Clock(), loop, runtimes)


def verdict(board: Board, service_id: str) -> Verdict:
    matches = [v for v in board.verdicts if v.service_id == service_id]
    assert matches, f"no service {service_id!r} among {[v.service_id for v in board.verdicts]}"
    return matches[0]


def source_error(board: Board, name: str) -> str | None:
    return next(s.error for s in board.sources if s.name == name)


class TestTheDemoHomelab:
    def test_every_kind_of_trouble_gets_its_verdict(self, h: Harness) -> None:
        board = h.board()
        expected = {
            "vault": Status.OK,
            "caddy": Status.OK,
            "jellyfin": Status.OK,
            "postgres": Status.FAILED,
            "vaultwarden": Status.VERIFY_FAILED,
            "scratch": Status.UNPROTECTED,
            "old-wiki": Status.UNPROTECTED,
            "nextcloud-on-mariadb": Status.FAILED,
            "app-configs-backrest": Status.LATE,
            "dump-folder": Status.OUT_OF_ORDER,
        }
        actual = {service_id: verdict(board, service_id).status for service_id in expected}
        assert actual == expected
        assert all(s.error is None for s in board.sources)
        assert board.overall is Severity.CRITICAL

    def test_verdicts_carry_reasons_facts_and_the_schedule(self, h: Harness) -> None:
        board = h.board()
        postgres = verdict(board, "postgres")
        assert postgres.reasons[0].startswith("last attempt Thu 26 Nov 04:"), postgres.reasons
        vault = verdict(board, "vault")
        assert vault.guest is not None and (vault.guest.vmid, vault.guest.type, vault.guest.node) == (101, "lxc", "pve")
        assert vault.schedule is not None and vault.schedule.expression == "04:00"
        assert vault.schedule.timezone == "Europe/Madrid"
        assert vault.next_run_at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # 04:00 in Madrid
        assert vault.snapshot_count > 7 and vault.newest_size_bytes
        dump_folder = verdict(board, "dump-folder")
        assert any("after databasement failed" in r for r in dump_folder.reasons), dump_folder.reasons
        jobs = {j.job.kind.value for j in board.jobs}
        assert {"backup", "prune", "gc", "verify"} <= jobs
        (main,) = [d.datastore for d in board.datastores if d.datastore.name == "main"]
        assert main.total_bytes and main.dedup_factor and main.dedup_factor > 1

    def test_every_kind_of_protection_risk_shows_once(self, h: Harness) -> None:
        board = h.board()
        expected = {
            "n8n": {RiskKind.COPIES, RiskKind.OFFSITE},
            "glance": {RiskKind.OFFSITE_LAG},
            "ntfy": {RiskKind.UNENCRYPTED},
            "nas-archive": {RiskKind.VERIFICATION_AGE},
            "vault-backrest": {RiskKind.RESTORE_TEST},
            "grafana-on-postgres": {RiskKind.SIZE_ANOMALY},
            "n8n-on-postgres": {RiskKind.DURATION_ANOMALY},
            "immich": {RiskKind.RETENTION},
        }
        risks = {v.service_id: {r.kind for r in v.protection.risks} for v in board.verdicts if v.protection}
        assert {sid: risks[sid] for sid in expected} == expected
        assert set(RiskKind) == set().union(*expected.values())
        assert {sid for sid, kinds in risks.items() if kinds} == set(expected)
        assert verdict(board, "immich").status is Status.GAPS  # its failed nights name the verdict
        assert all(verdict(board, sid).status is Status.AT_RISK for sid in expected if sid != "immich")
        vault = verdict(board, "vault").protection  # all met: the status line's facts
        assert vault is not None and (vault.copy_count, vault.offsite_count, vault.encrypted) == (2, 1, True)
        assert vault.offsite_lag is not None and vault.offsite_lag < timedelta(days=1)
        assert vault.protected_snapshots == 1
        restored = verdict(board, "vault-on-postgres").protection
        assert restored is not None and restored.last_restore_test_at is not None

    def test_a_silenced_service_is_silenced(self, h: Harness) -> None:
        def silence_scratch(text: str) -> str:
            return text.replace(
                "services:\n",
                "services:\n  - id: scratch\n    guest: 120\n"
                "    silence: {reason: throwaway test box, until: 2027-01-01}\n",
            )

        scratch = verdict(h.board(silence_scratch), "scratch")
        assert scratch.status is Status.SILENCED
        assert scratch.reasons[0].startswith("silenced until Fri 01 Jan 2027 00:00: throwaway test box")


def test_backups_in_progress_are_running_not_late() -> None:
    during = datetime(2026, 11, 26, 3, 2, tzinfo=UTC)  # 04:02 in Madrid: the nightly vzdump job is running
    loop = asyncio.new_event_loop()
    with DemoLab(now=during) as lab:
        runtime = build_runtime(lab.config(), clock=lambda: during)
        try:
            board = loop.run_until_complete(runtime.collector.poll_once())
        finally:
            loop.run_until_complete(runtime.collector.stop())
            loop.close()
    running = [v for v in board.verdicts if v.status is Status.RUNNING]
    assert running, [(v.service_id, v.status) for v in board.verdicts]
    assert all(v.severity is Severity.OK and v.reasons[0].startswith("backup in progress") for v in running)
    assert not [v for v in board.verdicts if v.kind == "guest" and v.status is Status.LATE]


class TestFailingSources:
    def test_a_source_down_past_two_intervals_turns_its_services_unknown_and_the_rest_keeps_working(
        self, h: Harness
    ) -> None:
        runtime = h.start()
        first = h.poll(runtime)
        assert verdict(first, "caddy").status is Status.OK
        h.lab.apps["pbs"].faults.down = True
        h.clock.now = NOW + timedelta(minutes=1)
        soon = h.poll(runtime)
        assert "HTTP 503" in (source_error(soon, "pbs-main") or "")
        assert verdict(soon, "caddy").status is Status.OK  # last known good, within two intervals
        h.clock.now = NOW + timedelta(minutes=3)
        later = h.poll(runtime)
        assert verdict(later, "caddy").status is Status.UNKNOWN
        assert "source 'pbs-main' unreachable since" in verdict(later, "caddy").reasons[0]
        assert verdict(later, "vault-on-postgres").status is Status.OK  # Databasement is untouched
        assert source_error(later, "databasement") is None
        # Nothing recorded is lost: history still holds every snapshot PBS showed.
        assert runtime.history is not None
        view = runtime.history.view(since=NOW - timedelta(days=365))
        recorded = {s.snapshot_id for s in view.all_snapshots() if s.target_key == "guest:102"}
        assert len(recorded) >= verdict(first, "caddy").snapshot_count

    @pytest.mark.parametrize(
        ("fault", "message"),
        [("malformed_json", "malformed JSON"), ("truncated", "truncated"), ("wrong_shape", "data")],
    )
    def test_a_broken_answer_is_the_source_error_not_a_crash(self, h: Harness, fault: str, message: str) -> None:
        runtime = h.start()
        h.poll(runtime)
        setattr(h.lab.apps["pbs"].faults, fault, True)
        h.clock.now = NOW + timedelta(minutes=1)
        board = h.poll(runtime)
        error = source_error(board, "pbs-main") or ""
        assert error.startswith("pbs 'pbs-main': ") and message in error, error
        assert verdict(board, "caddy").status is Status.OK
        assert source_error(board, "pve") is None

    def test_a_huge_answer_is_refused(self, h: Harness) -> None:
        h.lab.apps["pbs"].faults.huge = True
        h.lab.apps["pbs"].faults.huge_bytes = 80 * 1024 * 1024
        board = h.board()
        assert "larger than 64 MB" in (source_error(board, "pbs-main") or "")
        assert verdict(board, "caddy").status is Status.UNKNOWN  # PBS never answered: no green
        assert verdict(board, "scratch").status is Status.UNPROTECTED  # PVE still judged
        assert verdict(board, "vault-on-postgres").status is Status.OK

    def test_a_rejected_token_is_named_and_never_echoed(self, h: Harness) -> None:
        secret = h.lab.secret("pbs")
        board = h.board(lambda t: t.replace("${secret:pbs_token}", "wrong-secret-123"))
        error = source_error(board, "pbs-main") or ""
        assert "token rejected (HTTP 401)" in error
        assert secret not in error and "wrong-secret-123" not in error
        assert verdict(board, "caddy").status is Status.UNKNOWN

    def test_a_certificate_that_does_not_match_the_pin_is_refused(self, h: Harness) -> None:
        pinned = h.lab.servers["pbs"].fingerprint or ""
        board = h.board(lambda t: t.replace(pinned, h.lab.servers["pve"].fingerprint or ""))
        assert "certificate fingerprint mismatch" in (source_error(board, "pbs-main") or "")
        assert source_error(board, "pve") is None


class TestWarnings:
    def test_a_night_without_a_backup_inside_the_lookback_is_a_gap(self, h: Harness) -> None:
        night = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # Monday's 04:00 run in Madrid
        window = (night.timestamp() - 600, night.timestamp() + 3600)
        lab = h.lab.lab
        group = lab.datastores["main"].group("", "ct", "106")
        group.snapshots = [s for s in group.snapshots if not window[0] <= s.backup_time <= window[1]]
        lab.pbs_tasks = [
            t for t in lab.pbs_tasks if not (t.worker_id == "main:ct/106" and window[0] <= t.starttime <= window[1])
        ]
        for task in lab.pve_tasks:
            if window[0] <= task.starttime <= window[1]:
                task.log = [line for line in task.log if "106" not in line]
        glance = verdict(h.board(), "glance")
        assert glance.status is Status.GAPS, glance.reasons
        assert glance.missed_slots == (night,)
        assert glance.reasons[0].startswith("1 due run(s) in the last 14d produced no backup: Mon 23 Nov 04:00")

    def test_a_newest_snapshot_the_verify_job_skipped_is_unverified(self, h: Harness) -> None:
        group = h.lab.lab.datastores["main"].group("", "ct", "102")
        newest = max(group.snapshots, key=lambda s: s.backup_time)
        newest.verification = None
        newest.verify_upid = None
        caddy = verdict(h.board(), "caddy")
        assert caddy.status is Status.UNVERIFIED, caddy.reasons
        assert "is not verified although verify job" in caddy.reasons[0]
