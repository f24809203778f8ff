"""Backrest source against the simulator: Connect RPC over real HTTPS with a pinned certificate."""

from __future__ import annotations

import ssl
from datetime import timedelta

import httpx
import pytest

from backup_glance.config import BackrestSourceConfig
from backup_glance.errors import SourceAuthError, SourceProtocolError, SourceUnreachable
from backup_glance.model import JobKind, Observation, RunOutcome
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.backrest import (
    BackrestScenario,
    BrOperation,
    BrPlan,
    BrRepo,
    add_backup,
    create_app,
    ms,
)
from backup_glance.sources.backrest import BackrestSource

from .conftest import NOW

Sim = tuple[BackrestScenario, SimulatorServer]


def a_source(server: SimulatorServer, **overrides: object) -> BackrestSource:
    fields: dict[str, object] = {
        "name": "br",
        "type": "backrest",
        "url": server.url,
        "fingerprint": server.fingerprint,
        "username": "admin",
        "password": "hunter2-backrest-login",
        "timezone": "Europe/Madrid",
    }
    fields.update(overrides)
    return BackrestSource(BackrestSourceConfig.model_validate(fields), clock=lambda: NOW)


async def poll_once(source: BackrestSource) -> Observation:
    try:
        return await source.poll()
    finally:
        await source.aclose()


def job(obs: Observation, key: str):  # type: ignore[no-untyped-def]
    return next(j for j in obs.jobs if j.key == key)


class TestHappyPath:
    async def test_it_reports_one_target_and_one_job_per_plan(self, backrest: Sim) -> None:
        _scenario, server = backrest
        obs = await poll_once(a_source(server))
        assert [t.key for t in obs.targets] == [
            "backrest:br/vault",
            "backrest:br/app-configs",
            "backrest:br/databasement-dumps",
        ]
        vault = job(obs, "br/backup/vault")
        assert vault.kind is JobKind.BACKUP and vault.store == "nas"
        assert vault.schedule is not None
        assert (vault.schedule.expression, vault.schedule.dialect, vault.schedule.timezone) == (
            "15 2 * * *",
            "cron",
            "Europe/Madrid",
        )
        assert vault.next_run_at is not None and vault.next_run_at.isoformat() == "2026-08-07T00:15:00+00:00"

    async def test_the_late_plan_last_succeeded_three_days_ago(self, backrest: Sim) -> None:
        _scenario, server = backrest
        obs = await poll_once(a_source(server))
        late = job(obs, "br/backup/app-configs")
        assert late.last_run is not None
        assert late.last_run.started_at.isoformat() == "2026-08-03T00:20:00+00:00"
        assert late.last_run.outcome is RunOutcome.OK
        assert job(obs, "br/backup/vault").last_run.started_at.isoformat() == "2026-08-06T00:15:00+00:00"  # type: ignore[union-attr]

    async def test_it_reports_prune_and_check_jobs_with_their_schedules(self, backrest: Sim) -> None:
        _scenario, server = backrest
        obs = await poll_once(a_source(server))
        prune, check = job(obs, "br/prune/nas"), job(obs, "br/check/nas")
        assert (prune.kind, prune.schedule and prune.schedule.expression) == (JobKind.PRUNE, "0 6 * * 0")
        assert (check.kind, check.schedule and check.schedule.expression) == (JobKind.CHECK, "0 7 1 * *")
        assert prune.last_run is not None and prune.last_run.started_at.isoformat() == "2026-08-02T04:00:00+00:00"
        assert check.last_run is not None and check.last_run.started_at.isoformat() == "2026-08-01T05:00:00+00:00"

    async def test_it_emits_snapshots_with_sizes_parsed_from_int64_strings(self, backrest: Sim) -> None:
        _scenario, server = backrest
        obs = await poll_once(a_source(server))
        assert len(obs.snapshots) == 14 + 11 + 14
        newest = max(obs.snapshots, key=lambda s: s.taken_at)
        assert (newest.target_key, newest.size_bytes, newest.location) == (
            "backrest:br/databasement-dumps",
            5_368_709_120,
            "nas",
        )
        run = next(r for r in obs.runs if r.run_id == newest.snapshot_id or r.started_at == newest.taken_at)
        assert run.size_bytes == 40 * 1_048_576


class TestOutcomes:
    async def test_a_warning_is_a_failed_partial_backup(self, backrest: Sim) -> None:
        scenario, server = backrest
        message = "Partial backup, some files may not have been read completely."
        add_backup(scenario, scenario.plans[0], NOW - timedelta(hours=1), status="STATUS_WARNING", message=message)
        add_backup(scenario, scenario.plans[2], NOW - timedelta(hours=1), status="STATUS_ERROR", message="repo locked")
        add_backup(scenario, scenario.plans[1], NOW - timedelta(minutes=5), status="STATUS_INPROGRESS")
        obs = await poll_once(a_source(server))
        warning = job(obs, "br/backup/vault").last_run
        assert warning is not None and warning.outcome is RunOutcome.FAILED
        assert warning.message == f"partial backup (warnings); {message}"
        error = job(obs, "br/backup/databasement-dumps").last_run
        assert error is not None and (error.outcome, error.message) == (RunOutcome.FAILED, "repo locked")
        assert [t.key for t in obs.targets if t.backup_running] == ["backrest:br/app-configs"]
        assert len(obs.snapshots) == 14 + 11 + 14  # neither a partial nor a failed backup counts

    async def test_missing_zero_valued_fields_are_read_as_defaults(self, backrest: Sim) -> None:
        scenario, server = backrest
        repo = scenario.repos[0]
        op = BrOperation(9000, 9000, 9000, "vault", "nas", repo.guid, "backup", "STATUS_UNKNOWN", ms(NOW))
        scenario.operations.append(op)  # no status, end time, summary or snapshot on the wire
        obs = await poll_once(a_source(server))
        run = next(r for r in obs.runs if r.run_id == "9000")
        assert (run.outcome, run.ended_at, run.size_bytes) == (RunOutcome.UNKNOWN, None, None)

    async def test_interval_and_utc_schedules(self) -> None:
        scenario = BackrestScenario(
            repos=[BrRepo("r", "g" * 64)],
            plans=[
                BrPlan("hourly", "r", {"maxFrequencyHours": 6}),
                BrPlan("utc", "r", {"cron": "0 4 * * *", "clock": "CLOCK_UTC"}),
                BrPlan("off", "r", {"disabled": True}),
            ],
        )
        with SimulatorServer(create_app(scenario), tls=False) as server:
            obs = await poll_once(a_source(server, fingerprint=None, username=None, password=None, timezone=None))
        hourly, utc, off = obs.jobs
        assert (hourly.schedule and hourly.schedule.dialect, hourly.schedule and hourly.schedule.interval) == (
            "interval",
            timedelta(hours=6),
        )
        assert utc.schedule is not None and utc.schedule.timezone == "UTC"
        assert (off.schedule, off.enabled) == (None, False)
        assert obs.timezone == "UTC"  # no timezone configured: CLOCK_LOCAL is read as UTC


class TestSteadyState:
    async def test_a_second_poll_asks_only_for_changed_operations(self, backrest: Sim) -> None:
        scenario, server = backrest
        source = a_source(server)
        await source.poll()
        running = add_backup(scenario, scenario.plans[1], NOW, status="STATUS_INPROGRESS")
        before = len(scenario.requests)
        obs = await source.poll()
        steady = scenario.requests[before:]
        assert [m for m, _ in steady] == ["GetConfig", "GetSummaryDashboard", "GetOperations"]
        assert set(steady[2][1]["selector"]) == {"modnoGte"}
        assert job(obs, "br/backup/app-configs").last_run.started_at.isoformat() == "2026-08-03T00:20:00+00:00"  # type: ignore[union-attr]
        scenario.update(running, status="STATUS_SUCCESS", end_ms=ms(NOW) + 60_000, snapshot_id="ab" * 32)
        obs = await source.poll()
        await source.aclose()
        last = job(obs, "br/backup/app-configs").last_run
        assert last is not None and (last.started_at, last.outcome) == (NOW, RunOutcome.OK)

    async def test_operations_of_a_plan_that_had_none_are_picked_up(self) -> None:
        scenario = BackrestScenario(repos=[BrRepo("r", "g" * 64)], plans=[BrPlan("new", "r", {"cron": "0 1 * * *"})])
        with SimulatorServer(create_app(scenario), tls=False) as server:
            source = a_source(server, fingerprint=None, username=None, password=None)
            assert (await source.poll()).runs == ()
            add_backup(scenario, scenario.plans[0], NOW)
            obs = await source.poll()
            await source.aclose()
        assert [(r.job_key, r.outcome) for r in obs.runs] == [("br/backup/new", RunOutcome.OK)]

    async def test_without_summary_dashboard_the_pending_operation_gives_the_next_run(self, backrest: Sim) -> None:
        scenario, server = backrest
        scenario.has_summary = False
        source = a_source(server)
        obs = await source.poll()
        await source.poll()
        await source.aclose()
        assert job(obs, "br/backup/vault").next_run_at.isoformat() == "2026-08-07T00:15:00+00:00"  # type: ignore[union-attr]
        assert [m for m, _ in scenario.requests].count("GetSummaryDashboard") == 1

    async def test_a_failing_summary_dashboard_is_a_problem_not_a_failed_poll(self, backrest: Sim) -> None:
        scenario, server = backrest
        scenario.fault = "summary500"
        source = a_source(server)
        obs = await source.poll()
        scenario.fault = None
        again = await source.poll()
        await source.aclose()
        (problem,) = obs.problems
        assert problem.startswith("next-run times (GetSummaryDashboard):") and "HTTP 500" in problem
        assert len(obs.runs) == len(again.runs) > 0
        # Still the pending operation's time; and the dashboard is asked again once it answers.
        assert job(obs, "br/backup/vault").next_run_at.isoformat() == "2026-08-07T00:15:00+00:00"  # type: ignore[union-attr]
        assert again.problems == ()
        assert [m for m, _ in scenario.requests].count("GetSummaryDashboard") == 2


class TestFailures:
    async def test_it_reports_rejected_credentials_without_echoing_them(self, backrest: Sim) -> None:
        _scenario, server = backrest
        with pytest.raises(
            SourceAuthError, match=r"^backrest .*: username or password rejected \(HTTP 401\) on /v1.Backrest/GetConfig"
        ) as exc:
            await poll_once(a_source(server, password="not-the-S3CRET-pass"))
        assert "S3CRET" not in str(exc.value)

    async def test_it_reports_an_unreachable_server(self, closed_port: int) -> None:
        with pytest.raises(SourceUnreachable, match="cannot connect"):
            await poll_once(a_source(SimulatorServer(None, port=closed_port), fingerprint=None))

    @pytest.mark.parametrize(("fault", "message"), [("malformed", "malformed JSON"), ("truncated", "truncated JSON")])
    async def test_it_reports_a_broken_payload(self, backrest: Sim, fault: str, message: str) -> None:
        scenario, server = backrest
        scenario.fault = fault
        with pytest.raises(SourceProtocolError, match=message):
            await poll_once(a_source(server))

    async def test_it_reports_a_connect_error(self, backrest: Sim) -> None:
        scenario, server = backrest
        scenario.fault = "error500"
        with pytest.raises(SourceUnreachable, match=r"HTTP 500 on /v1\.Backrest/GetConfig: database is locked"):
            await poll_once(a_source(server))

    async def test_the_simulator_rejects_get_operations_without_a_selector(self, backrest: Sim) -> None:
        scenario, server = backrest
        context = ssl.create_default_context(cafile=server.ca_file)
        async with httpx.AsyncClient(verify=context, auth=("admin", scenario.password or "")) as client:
            reply = await client.post(f"{server.url}/v1.Backrest/GetOperations", json={})
        assert (reply.status_code, reply.json()) == (500, {"code": "unknown", "message": "empty selector"})

    async def test_repository_secrets_never_reach_the_observation(self, backrest: Sim) -> None:
        scenario, server = backrest
        source = a_source(server)
        obs = await poll_once(source)
        for secret in (scenario.repos[0].password, "s3cr3t-key-material", "hunter2-backrest-login"):
            assert secret not in repr(obs)
            assert secret not in repr(source.__dict__)

    async def test_an_empty_instance_gives_an_empty_observation(self) -> None:
        scenario = BackrestScenario()
        with SimulatorServer(create_app(scenario)) as server:
            obs = await poll_once(a_source(server, username=None, password=None))
        assert (obs.targets, obs.snapshots, obs.jobs, obs.runs) == ((), (), (), ())
