"""Databasement source against the simulator over real HTTPS with a pinned certificate."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from backup_glance.config import DatabasementSourceConfig
from backup_glance.errors import SourceAuthError, SourceProtocolError, SourceTLSError, SourceUnreachable
from backup_glance.model import JobKind, Observation, RunOutcome
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.databasement import (
    DatabasementScenario,
    DbServer,
    add_daily_run,
    create_app,
    ulid,
)
from backup_glance.sources import databasement as databasement_source
from backup_glance.sources.databasement import DatabasementSource

from .conftest import NOW

Sim = tuple[DatabasementScenario, SimulatorServer]


def a_source(server: SimulatorServer, token: str, **overrides: object) -> DatabasementSource:
    fields: dict[str, object] = {
        "name": "dbm",
        "type": "databasement",
        "url": server.url,
        "fingerprint": server.fingerprint,
        "token": token,
        "timezone": "Europe/Madrid",
    }
    fields.update(overrides)
    return DatabasementSource(DatabasementSourceConfig.model_validate(fields), clock=lambda: NOW)


async def poll_once(source: DatabasementSource) -> Observation:
    try:
        return await source.poll()
    finally:
        await source.aclose()


def key(server: str, database: str) -> str:
    return f"databasement:dbm/{server}/{database}"


class TestHappyPath:
    async def test_it_reports_one_target_per_database(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token))
        assert sorted(t.key for t in obs.targets) == [
            key("mariadb", "nextcloud"),
            key("postgres", "databasement"),
            key("postgres", "grafana"),
            key("postgres", "n8n"),
            key("postgres", "vault"),
        ]
        assert {t.name for t in obs.targets} >= {"vault on postgres", "nextcloud on mariadb"}
        assert all(t.kind == "database" for t in obs.targets)

    async def test_it_reports_the_failed_nextcloud_dump_with_its_error(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token))
        failed = [r for r in obs.runs if r.outcome is RunOutcome.FAILED]
        assert len(failed) == 1
        assert failed[0].target_key == key("mariadb", "nextcloud")
        assert failed[0].message == "SQLSTATE[HY000] [2002] Connection refused (mariadb:3306)"
        assert failed[0].started_at.isoformat() == "2026-08-06T00:00:00+00:00"  # 02:00 CEST

    async def test_it_emits_a_snapshot_per_successful_dump_and_a_run_per_attempt(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token))
        backup_runs = [r for r in obs.runs if r.job_key.startswith("dbm/backup/")]
        assert len(backup_runs) == 14 * 5
        assert len(obs.snapshots) == 14 * 5 - 1
        vault = max((s for s in obs.snapshots if s.target_key == key("postgres", "vault")), key=lambda s: s.taken_at)
        assert vault.taken_at.isoformat() == "2026-08-06T00:00:00+00:00"
        assert vault.size_bytes == 20_000_000 + 6 * 4096
        assert vault.location == "NAS dumps"

    async def test_it_reports_the_daily_schedule_as_a_cron_job(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token))
        (job,) = [j for j in obs.jobs if j.kind is JobKind.BACKUP]
        assert job.name == "Daily"
        assert (job.schedule.expression, job.schedule.dialect, job.schedule.timezone) == (
            "0 2 * * *",
            "cron",
            "Europe/Madrid",
        )
        assert len(job.target_keys) == 5
        assert job.last_run is not None and job.last_run.outcome is RunOutcome.FAILED

    async def test_it_reports_the_weekly_restore_test(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token))
        (job,) = [j for j in obs.jobs if j.kind is JobKind.RESTORE_TEST]
        assert job.schedule is not None and job.schedule.expression == "0 3 * * 0"
        assert job.target_keys == (key("postgres", "vault"),)
        runs = [r for r in obs.runs if r.job_key == job.key]
        assert [r.started_at.isoformat() for r in runs] == ["2026-07-26T01:00:02+00:00", "2026-08-02T01:00:02+00:00"]
        assert all(r.outcome is RunOutcome.OK for r in runs)


class TestPagination:
    async def test_it_builds_page_urls_itself_because_links_next_drops_the_query(self, databasement: Sim) -> None:
        scenario, server = databasement
        obs = await poll_once(a_source(server, scenario.token, per_page=7))
        assert len([r for r in obs.runs if r.job_key.startswith("dbm/backup/")]) == 70
        pages = [parse_qs(urlsplit(p).query) for p in scenario.requests if p.startswith("/api/v1/snapshots?")]
        assert [q["page"] for q in pages] == [[str(n)] for n in range(1, 11)]
        assert all(q["per_page"] == ["7"] and q["sort"] == ["-started_at"] for q in pages)

    async def test_a_steady_poll_reads_only_the_newest_page(self, databasement: Sim) -> None:
        scenario, server = databasement
        source = a_source(server, scenario.token, per_page=5)
        await source.poll()
        first = len(scenario.requests)
        add_daily_run(scenario, NOW + timedelta(hours=1))
        obs = await source.poll()
        await source.aclose()
        steady = scenario.requests[first:]
        assert len([p for p in steady if p.startswith("/api/v1/snapshots?")]) == 2  # 5 new rows + the known edge
        assert len([r for r in obs.runs if r.job_key.startswith("dbm/backup/")]) == 75

    async def test_it_rereads_attempts_that_were_still_running(self, databasement: Sim) -> None:
        scenario, server = databasement
        add_daily_run(scenario, NOW - timedelta(minutes=1))
        for snap in scenario.snapshots[-5:]:
            snap.status, snap.completed_at = "running", None
        source = a_source(server, scenario.token, per_page=100)
        obs = await source.poll()
        assert len([t for t in obs.targets if t.backup_running]) == 5
        for snap in scenario.snapshots[-5:]:
            snap.status, snap.completed_at = "completed", NOW
        scenario.snapshots.append(scenario.snapshots.pop(-1))
        obs = await source.poll()
        await source.aclose()
        assert not [t for t in obs.targets if t.backup_running]
        newest = [r for r in obs.runs if r.started_at == NOW - timedelta(minutes=1)]
        assert {r.outcome for r in newest} == {RunOutcome.OK}


class TestFailures:
    async def test_it_reports_a_rejected_token_without_echoing_it(self, databasement: Sim) -> None:
        _scenario, server = databasement
        wrong = "7|WRONG-token-abcdefghijklmnopqrstuvwxyz0123456789"
        with pytest.raises(SourceAuthError, match=r"token rejected \(HTTP 401\) on /api/v1/database-servers") as exc:
            await poll_once(a_source(server, wrong))
        assert "WRONG" not in str(exc.value) and "WRONG" not in repr(exc.value)

    async def test_it_reports_an_organization_it_cannot_access(self, databasement: Sim) -> None:
        scenario, server = databasement
        scenario.organization_id = "01k0orgallowed0000000000000"
        with pytest.raises(SourceAuthError, match=r"permission denied \(HTTP 403\)"):
            await poll_once(a_source(server, scenario.token, organization_id="01k0orgother000000000000000"))
        obs = await poll_once(a_source(server, scenario.token, organization_id="01k0orgallowed0000000000000"))
        assert len(obs.targets) == 5

    async def test_it_rejects_a_certificate_that_does_not_match_the_pin(self, databasement: Sim) -> None:
        scenario, server = databasement
        with pytest.raises(SourceTLSError, match="fingerprint mismatch"):
            await poll_once(a_source(server, scenario.token, fingerprint="ab" * 32))

    async def test_it_reports_an_unreachable_server(self, closed_port: int) -> None:
        source = a_source(SimulatorServer(None, port=closed_port), "1|x", fingerprint=None)
        with pytest.raises(SourceUnreachable, match="cannot connect"):
            await poll_once(source)

    @pytest.mark.parametrize(("fault", "message"), [("malformed", "malformed JSON"), ("truncated", "truncated JSON")])
    async def test_it_reports_a_broken_payload(self, databasement: Sim, fault: str, message: str) -> None:
        scenario, server = databasement
        scenario.fault = fault
        with pytest.raises(SourceProtocolError, match=message):
            await poll_once(a_source(server, scenario.token))

    async def test_it_reports_a_payload_of_the_wrong_shape(self, databasement: Sim) -> None:
        scenario, server = databasement
        scenario.fault = "shape"
        with pytest.raises(SourceProtocolError, match="expected a paginated object with `data`"):
            await poll_once(a_source(server, scenario.token))

    async def test_it_reports_a_server_error(self, databasement: Sim) -> None:
        scenario, server = databasement
        scenario.fault = "error500"
        with pytest.raises(SourceUnreachable, match="HTTP 500 on /api/v1/database-servers: Server Error"):
            await poll_once(a_source(server, scenario.token))

    async def test_the_token_never_appears_in_an_observation(self, databasement: Sim) -> None:
        scenario, server = databasement
        source = a_source(server, scenario.token)
        obs = await poll_once(source)
        assert scenario.token not in repr(obs)
        assert scenario.token.split("|")[1] not in repr(source.__dict__)


class TestShapes:
    async def test_an_empty_instance_gives_an_empty_observation(self) -> None:
        scenario = DatabasementScenario()
        with SimulatorServer(create_app(scenario)) as server:
            obs = await poll_once(a_source(server, scenario.token))
        assert (obs.targets, obs.snapshots, obs.jobs, obs.runs) == ((), (), (), ())

    async def test_the_january_2026_shape_maps_recurrence_to_cron(self) -> None:
        scenario = DatabasementScenario(legacy=True)
        pg = DbServer(ulid(), "pg", "postgres", ["app"], recurrence="weekly")
        scenario.servers.append(pg)
        add_daily_run(scenario, datetime(2026, 1, 25, 3, 0, tzinfo=UTC))
        with SimulatorServer(create_app(scenario)) as server:
            obs = await poll_once(a_source(server, scenario.token, timezone="UTC"))
        (job,) = obs.jobs
        assert (job.name, job.schedule and job.schedule.expression) == ("Weekly", "0 3 * * 0")
        assert job.target_keys == (key("pg", "app"),)
        assert len(obs.snapshots) == 1

    async def test_a_server_with_backups_disabled_is_in_no_job(self, databasement: Sim) -> None:
        scenario, server = databasement
        scenario.servers[1].backups_enabled = False
        obs = await poll_once(a_source(server, scenario.token))
        assert obs.uncovered_target_keys == (key("mariadb", "nextcloud"),)
        (job,) = [j for j in obs.jobs if j.kind is JobKind.BACKUP]
        assert key("mariadb", "nextcloud") not in job.target_keys

    async def test_manual_dumps_are_snapshots_but_not_schedule_runs(self, databasement: Sim) -> None:
        scenario, server = databasement
        add_daily_run(scenario, NOW - timedelta(hours=1))
        for snap in scenario.snapshots[-5:]:
            snap.method = "manual"
        obs = await poll_once(a_source(server, scenario.token))
        manual = [r for r in obs.runs if r.job_key == "dbm/backup/manual"]
        assert len(manual) == 5
        assert len(obs.snapshots) == 74


class TestReviewFixes:
    def test_a_timestamp_without_offset_is_utc_not_the_host_zone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            parsed = databasement_source._time("2026-08-06T02:00:04.000000")
        finally:
            monkeypatch.undo()
            time.tzset()
        assert parsed == datetime(2026, 8, 6, 2, 0, 4, tzinfo=UTC)
        assert databasement_source._time("2026-08-06T02:00:04.000000Z") == parsed

    async def test_restore_runs_deleted_upstream_are_forgotten_on_the_full_resync(self, databasement: Sim) -> None:
        scenario, server = databasement
        now = [NOW]
        source = a_source(server, scenario.token)
        source._clock = lambda: now[0]
        first = await source.poll()
        assert len([r for r in first.runs if "/restore_test/" in r.job_key]) == 2
        oldest = min(scenario.restore_jobs, key=lambda j: j.created_at)
        scenario.restore_jobs.remove(oldest)  # retention cleaned it up
        now[0] = NOW + timedelta(hours=7)
        second = await source.poll()
        await source.aclose()
        runs = [r for r in second.runs if "/restore_test/" in r.job_key]
        assert [r.started_at.isoformat() for r in runs] == ["2026-08-02T01:00:02+00:00"]

    async def test_restore_runs_kept_are_bounded(self, databasement: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
        scenario, server = databasement
        monkeypatch.setattr(databasement_source, "_KEEP_RESTORE_RUNS", 1)
        obs = await poll_once(a_source(server, scenario.token))
        runs = [r for r in obs.runs if "/restore_test/" in r.job_key]
        assert [r.started_at.isoformat() for r in runs] == ["2026-08-02T01:00:02+00:00"]
