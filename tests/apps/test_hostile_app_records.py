"""One hostile value in an app source's answer costs that record or that field, never the whole poll.

Each test puts one value that used to escape Backrest, restic or Databasement as an exception other than
`SourceError` (the collector's "internal error while polling") into the simulator's JSON or a fake restic's
output, and checks that the poll still returns an Observation with the good records, naming any record it left
out in `problems`.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_glance.config import BackrestSourceConfig, DatabasementSourceConfig, ResticSourceConfig
from backup_glance.errors import SourceProtocolError
from backup_glance.model import JobKind, Observation, RunOutcome
from backup_glance.simulators import backrest as backrest_sim
from backup_glance.simulators import databasement as databasement_sim
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.backrest import BackrestScenario, BrOperation, BrPlan, BrRepo, add_backup
from backup_glance.simulators.databasement import DatabasementScenario, DbSnapshot, demo_databasement
from backup_glance.sources import databasement as databasement_source
from backup_glance.sources._bounds import EdgeBounds
from backup_glance.sources._http import DEFAULT_MAX_BYTES, HttpClient
from backup_glance.sources.backrest import BackrestSource
from backup_glance.sources.databasement import DatabasementSource
from backup_glance.sources.restic import ResticSource

from .conftest import NOW

INT64_MAX = "9223372036854775807"  # protojson int64 as a string: year 292278994 in epoch milliseconds
YEAR_ONE = "0001-01-01T00:30:00+01:00"  # 23:30 on 31 December of year 0 in UTC: before any datetime
YEAR_9999 = "9999-12-31T23:30:00-01:00"  # 00:30 on 1 January 10000 in UTC: after any datetime

Send = Callable[[dict[str, Any]], Awaitable[None]]


def rewritten(app: Any, path: str, change: Callable[[Any], Any]) -> Any:
    """`app`, with the JSON answers to `path` passed through `change`: for envelope fields no builder makes."""
    # allow_nan: float("inf") becomes Infinity
    return rewritten_bytes(app, path, lambda body: json.dumps(change(json.loads(body))).encode())


def spliced(app: Any, path: str, old: str, new: str) -> Any:
    """`app`, with the text `old` of its answers to `path` made `new`: for JSON no Python value dumps as (1e400,
    5,000 digits)."""
    return rewritten_bytes(app, path, lambda body: body.replace(old.encode(), new.encode()))


def failing(app: Any, path: str, when: Callable[[], bool] = lambda: True) -> Any:
    """`app`, answering Laravel's HTTP 500 on `path` whenever `when()` says so."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != path or not when():
            await app(scope, receive, send)
            return
        data = b'{"message": "Server Error"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return wrapper


def rewritten_bytes(app: Any, path: str, change: Callable[[bytes], bytes]) -> Any:
    """`app`, with the answers to `path` passed through `change` as bytes (the length header made to match)."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != path:
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            data = change(bytes(body))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

        await app(scope, receive, capture)

    return wrapper


# --- Backrest --------------------------------------------------------------------------------------------------


def a_backrest(server: SimulatorServer) -> BackrestSource:
    fields = {"name": "br", "type": "backrest", "url": server.url, "timezone": "UTC"}
    return BackrestSource(BackrestSourceConfig.model_validate(fields), clock=lambda: NOW)


def br_scenario(*plans: BrPlan) -> tuple[BackrestScenario, BrOperation, BrOperation]:
    """One plan (or `plans`), a good backup two days ago and the one to make hostile yesterday."""
    scenario = BackrestScenario(
        repos=[BrRepo("r", "g" * 64)], plans=list(plans) or [BrPlan("p", "r", {"cron": "0 2 * * *"})]
    )
    good = add_backup(scenario, scenario.plans[0], NOW - timedelta(days=2))
    bad = add_backup(scenario, scenario.plans[0], NOW - timedelta(days=1))
    return scenario, good, bad


def tamper_op(monkeypatch: pytest.MonkeyPatch, op_id: int, fields: dict[str, Any]) -> None:
    original = backrest_sim._op_json

    def patched(op: BrOperation, instance: str) -> dict[str, Any]:
        body = original(op, instance)
        return {**body, **fields} if op.id == op_id else body

    monkeypatch.setattr(backrest_sim, "_op_json", patched)


async def br_polls(scenario: BackrestScenario, count: int = 1, app: Any = None) -> list[Observation]:
    with SimulatorServer(app or backrest_sim.create_app(scenario, clock=lambda: NOW), tls=False) as server:
        source = a_backrest(server)
        try:
            return [await source.poll() for _ in range(count)]
        finally:
            await source.aclose()


class TestBackrest:
    @pytest.mark.parametrize(
        "start",
        [INT64_MAX, "100000000000000000000", 10**400],  # ValueError (year), OSError (time_t), OverflowError (float)
        ids=["int64-max", "1e20", "400-digits"],
    )
    async def test_an_operation_starting_at_no_date_is_left_out_and_named(
        self, monkeypatch: pytest.MonkeyPatch, start: object
    ) -> None:
        scenario, good, bad = br_scenario()
        tamper_op(monkeypatch, bad.id, {"unixTimeStartMs": start})
        first, second = await br_polls(scenario, 2)
        assert [r.run_id for r in first.runs] == [str(good.id)]
        assert len(first.snapshots) == 1
        assert first.problems == second.problems == (f"operation {bad.id}: start time is no date; left out",)

    async def test_an_operation_without_an_id_is_left_out_and_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        scenario, good, bad = br_scenario()
        tamper_op(monkeypatch, bad.id, {"id": None})
        first, second = await br_polls(scenario, 2)
        assert [r.run_id for r in first.runs] == [str(good.id)]
        assert first.problems == second.problems == ("an operation without an `id`; left out",)

    @pytest.mark.parametrize(
        "fields",
        [
            {"unixTimeEndMs": INT64_MAX},
            {"unixTimeEndMs": "-9223372036854775807"},
            {"operationBackup": {"lastStatus": "ok"}},
            {"operationBackup": {"lastStatus": {"summary": ["x"]}}},
        ],
        ids=["end-int64-max", "end-int64-min", "lastStatus-string", "summary-list"],
    )
    async def test_a_hostile_field_of_an_operation_costs_only_that_field(
        self, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any]
    ) -> None:
        scenario, good, bad = br_scenario()
        tamper_op(monkeypatch, bad.id, fields)
        (obs,) = await br_polls(scenario)
        runs = {r.run_id: r for r in obs.runs}
        assert set(runs) == {str(good.id), str(bad.id)} and obs.problems == ()
        assert runs[str(good.id)].size_bytes == good.data_added
        assert runs[str(bad.id)].outcome is RunOutcome.OK
        if "unixTimeEndMs" in fields:
            assert runs[str(bad.id)].ended_at is None
        else:
            assert runs[str(bad.id)].size_bytes is None

    async def test_a_next_backup_time_past_any_calendar_falls_back_to_the_pending_operation(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        scenario, _good, _bad = br_scenario()
        add_backup(scenario, scenario.plans[0], NOW + timedelta(hours=3), status="STATUS_PENDING")
        original = backrest_sim._summary
        monkeypatch.setattr(backrest_sim, "_summary", lambda *args: {**original(*args), "nextBackupTimeMs": INT64_MAX})
        (obs,) = await br_polls(scenario)
        (job,) = obs.jobs
        assert job.next_run_at == NOW + timedelta(hours=3) and len(obs.runs) == 2

    @pytest.mark.parametrize("plan_summaries", [5, True, "x"])
    async def test_plan_summaries_that_are_no_list_are_a_problem(self, plan_summaries: object) -> None:
        scenario, _good, _bad = br_scenario()
        app = rewritten(
            backrest_sim.create_app(scenario, clock=lambda: NOW),
            "/v1.Backrest/GetSummaryDashboard",
            lambda body: {**body, "planSummaries": plan_summaries},
        )
        (obs,) = await br_polls(scenario, app=app)
        assert obs.problems == ("next-run times (GetSummaryDashboard): `planSummaries` is not a list",)
        assert len(obs.runs) == 2

    @pytest.mark.parametrize(
        ("extra_plan", "extra_repo", "named"),
        [
            ({"repo": "r"}, None, "GetConfig: plan 2 has no `id`"),
            ({"id": ["vault"], "repo": "r"}, None, "GetConfig: plan 2 has no `id`"),  # not a plan "['vault']"
            ("plan-as-text", None, "GetConfig: plan 2 has no `id`"),
            (None, {"guid": "x"}, "GetConfig: repo 2 has no `id`"),
            (None, {"id": "r2", "prunePolicy": "weekly"}, None),  # a policy that is no object: no schedule
        ],
        ids=["plan-without-id", "plan-id-list", "plan-as-text", "repo-without-id", "policy-as-text"],
    )
    async def test_a_plan_or_repo_without_an_id_costs_only_itself(
        self, extra_plan: object, extra_repo: object, named: str | None
    ) -> None:
        """Either used to fail the whole source: every plan's service gone from the board."""
        scenario, _good, _bad = br_scenario()

        def change(body: dict[str, Any]) -> dict[str, Any]:
            config = body.get("config", body)
            if extra_plan is not None:
                config["plans"].append(extra_plan)
            if extra_repo is not None:
                config["repos"].append(extra_repo)
            return body

        app = rewritten(backrest_sim.create_app(scenario, clock=lambda: NOW), "/v1.Backrest/GetConfig", change)
        first, second = await br_polls(scenario, 2, app=app)
        for obs in (first, second):
            assert [j.job_id for j in obs.jobs if j.kind is JobKind.BACKUP] == ["p"] and len(obs.runs) == 2
            assert obs.problems == ((f"{named}; left out",) if named else ())

    @pytest.mark.parametrize(
        "schedule", [{"maxFrequencyDays": 2147483647}, {"maxFrequencyHours": "100000000000000000000"}]
    )
    async def test_an_interval_longer_than_any_schedule_is_no_schedule(self, schedule: dict[str, Any]) -> None:
        scenario, _good, _bad = br_scenario(BrPlan("p", "r", {"maxFrequencyHours": 6}), BrPlan("huge", "r", schedule))
        (obs,) = await br_polls(scenario)
        fine, huge = obs.jobs
        assert fine.schedule is not None and fine.schedule.interval == timedelta(hours=6)
        assert (huge.job_id, huge.schedule, huge.enabled) == ("huge", None, False)

    async def test_a_modno_of_4300_digits_does_not_become_the_change_cursor(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        scenario, good, bad = br_scenario()
        tamper_op(monkeypatch, bad.id, {"modno": int("9" * 4300)})  # a JSON integer: Python still reads it
        polls = await br_polls(scenario, 3)
        assert all(len(obs.runs) == 2 and obs.problems == () for obs in polls)
        cursors = [b["selector"]["modnoGte"] for m, b in scenario.requests if "modnoGte" in b.get("selector", {})]
        assert len(cursors) == 2 and all(len(c) < 20 for c in cursors)
        assert good.id in {int(r.run_id) for r in polls[-1].runs}


# --- restic ----------------------------------------------------------------------------------------------------

GOOD_SNAPSHOT = {"time": "2026-08-05T02:00:00Z", "id": "ab" * 32, "hostname": "h", "paths": ["/a"], "tags": ["t"]}


async def restic_poll(
    tmp_path: Path, items: list[dict[str, Any]] | str, group_by: list[str] | None = None
) -> Observation:
    output = tmp_path / "snapshots.json"
    output.write_text(items if isinstance(items, str) else json.dumps(items))
    binary = tmp_path / "fake-restic"
    binary.write_text(f"#!/bin/sh\ncat '{output}'\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    fields: dict[str, Any] = {
        "name": "rs", "type": "restic", "repository": "/r", "password_env": "PW", "restic_binary": str(binary),
        "timezone": "UTC", "schedule": "0 2 * * *",
    }  # fmt: skip
    if group_by:
        fields["group_by"] = group_by
    environ = {"PATH": os.environ.get("PATH", ""), "PW": "x"}
    source = ResticSource(ResticSourceConfig.model_validate(fields), environ=environ, clock=lambda: NOW)
    return await source.poll()


class TestRestic:
    async def test_output_nested_past_any_depth_is_malformed_json(self, tmp_path: Path) -> None:
        with pytest.raises(SourceProtocolError, match="malformed JSON"):
            await restic_poll(tmp_path, "[" * 100_000 + "]" * 100_000)

    @pytest.mark.parametrize("time", [YEAR_ONE, YEAR_9999])
    async def test_a_snapshot_time_no_calendar_holds_leaves_that_snapshot_out(self, tmp_path: Path, time: str) -> None:
        bad = {**GOOD_SNAPSHOT, "id": "cd" * 32, "time": time}
        obs = await restic_poll(tmp_path, [GOOD_SNAPSHOT, bad])
        assert [s.snapshot_id for s in obs.snapshots] == ["abababab"]
        (problem,) = obs.problems
        assert problem.startswith("unreadable snapshot entry (ValueError: timestamp outside the calendar")
        assert problem.endswith("; left out")

    async def test_a_snapshot_from_the_far_future_is_not_its_jobs_last_run_and_is_noted_once(
        self, tmp_path: Path
    ) -> None:
        bad = {**GOOD_SNAPSHOT, "id": "cd" * 32, "time": "9999-12-31T23:59:59Z"}
        obs = EdgeBounds().bound(await restic_poll(tmp_path, [GOOD_SNAPSHOT, bad]), NOW)
        (job,) = obs.jobs
        assert job.last_run is not None and job.last_run.run_id == "abababab"
        assert [s.snapshot_id for s in obs.snapshots] == [r.run_id for r in obs.runs] == ["abababab"]
        assert obs.problems == (
            "snapshots with impossible dates: cdcdcdcd at 9999-12-31T23:59:59+00:00",
            "runs with impossible dates: cdcdcdcd at 9999-12-31T23:59:59+00:00",
        )

    @pytest.mark.parametrize("field", ["backup_start", "backup_end"])
    async def test_a_summary_time_no_calendar_holds_is_absent(self, tmp_path: Path, field: str) -> None:
        summary = {"backup_start": "2026-08-06T02:00:00Z", "backup_end": "2026-08-06T02:05:00Z", field: YEAR_ONE}
        bad = {**GOOD_SNAPSHOT, "id": "cd" * 32, "time": "2026-08-06T02:00:00Z", "summary": summary}
        obs = await restic_poll(tmp_path, [GOOD_SNAPSHOT, bad])
        assert len(obs.snapshots) == 2 and obs.problems == ()
        run = next(r for r in obs.runs if r.run_id == "cdcdcdcd")
        if field == "backup_start":
            assert run.started_at.isoformat() == "2026-08-06T02:00:00+00:00"  # the snapshot's own time
        else:
            assert run.ended_at is None

    @pytest.mark.parametrize(("field", "value"), [("paths", 5), ("paths", True), ("tags", 5), ("tags", True)])
    async def test_paths_or_tags_that_are_no_list_name_nothing(self, tmp_path: Path, field: str, value: object) -> None:
        bad = {**GOOD_SNAPSHOT, "id": "cd" * 32, field: value}
        obs = await restic_poll(tmp_path, [GOOD_SNAPSHOT, bad], group_by=["host", field])
        assert sorted(t.name for t in obs.targets) == ["h:", "h:" + {"paths": "/a", "tags": "t"}[field]]
        assert len(obs.snapshots) == 2 and obs.problems == ()


# --- Databasement ----------------------------------------------------------------------------------------------


@pytest.fixture
def dbm() -> DatabasementScenario:
    return demo_databasement(NOW)


async def dbm_polls(
    scenario: DatabasementScenario, count: int = 1, app: Any = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Observation]:
    with SimulatorServer(app or databasement_sim.create_app(scenario), tls=False) as server:
        fields = {"name": "dbm", "type": "databasement", "url": server.url, "token": scenario.token}
        config = DatabasementSourceConfig.model_validate(fields)
        headers = {"Authorization": f"Bearer {scenario.token}", "Accept": "application/json"}
        client = HttpClient.for_source(config, kind="databasement", headers=headers, max_bytes=max_bytes)
        source = DatabasementSource(config, client=client, clock=lambda: NOW)
        try:
            return [await source.poll() for _ in range(count)]
        finally:
            await source.aclose()


def tamper(
    monkeypatch: pytest.MonkeyPatch, builder: str, pick: Callable[[Any], bool], change: Callable[[dict[str, Any]], None]
) -> None:
    """Make the simulator's `builder` (e.g. "_snapshot_json") answer `change`d JSON for the rows `pick` picks."""
    original = getattr(databasement_sim, builder)

    def patched(scenario: DatabasementScenario, row: Any) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(json.dumps(original(scenario, row)))  # a deep copy to change
        if pick(row):
            change(body)
        return body

    monkeypatch.setattr(databasement_sim, builder, patched)


def oldest_snapshot(scenario: DatabasementScenario) -> DbSnapshot:
    """The last row of `sort=-started_at` (the sort is stable: of one run's dumps, the last added)."""
    oldest = min(s.started_at for s in scenario.snapshots)
    return [s for s in scenario.snapshots if s.started_at == oldest][-1]


def failed_snapshot(scenario: DatabasementScenario) -> DbSnapshot:
    return next(s for s in scenario.snapshots if s.status == "failed")


def newest_vault(scenario: DatabasementScenario) -> DbSnapshot:
    return max((s for s in scenario.snapshots if s.database_name == "vault"), key=lambda s: s.started_at)


def completed(obs: Observation) -> int:
    return sum(1 for r in obs.runs if r.outcome is RunOutcome.OK and r.job_key.startswith("dbm/backup/"))


class TestDatabasement:
    async def test_a_snapshot_row_started_before_year_one_is_left_out_on_every_poll(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        bad = oldest_snapshot(dbm)  # the one `reached_known` looks at
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(started_at=YEAR_ONE))
        first, second = await dbm_polls(dbm, 2)
        assert completed(first) == completed(second) == len(dbm.snapshots) - 2  # the failed one, the hostile one
        assert first.problems == second.problems
        assert first.problems[0].startswith(
            f"unreadable snapshot row id '{bad.id}' (ValueError: timestamp outside the calendar"
        )

    async def test_a_failed_attempt_started_in_year_one_still_gets_its_message(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        bad = failed_snapshot(dbm)
        stamp = "0001-01-01T00:00:00Z"
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(started_at=stamp))
        for obs in await dbm_polls(dbm, 2):
            failed = next(r for r in obs.runs if r.outcome is RunOutcome.FAILED)
            assert failed.started_at.year == 1 and "Connection refused" in failed.message
            assert completed(obs) == len(dbm.snapshots) - 1 and obs.problems == ()

    async def test_a_failed_job_created_before_year_one_does_not_stop_the_poll(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        bad = failed_snapshot(dbm)
        tamper(monkeypatch, "_backup_job_json", lambda s: s is bad, lambda body: body.update(created_at=YEAR_ONE))
        (obs,) = await dbm_polls(dbm)
        failed = next(r for r in obs.runs if r.outcome is RunOutcome.FAILED)
        assert "Connection refused" in failed.message and obs.problems == ()

    @pytest.mark.parametrize("field", ["created_at", "started_at", "completed_at"])
    async def test_a_restore_job_time_past_year_9999_is_absent(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, field: str
    ) -> None:
        bad = min(dbm.restore_jobs, key=lambda j: j.created_at)  # the last row: the one `reached_known` looks at
        tamper(monkeypatch, "_restore_job_json", lambda j: j is bad, lambda body: body.update({field: YEAR_9999}))
        first, second = await dbm_polls(dbm, 2)
        for obs in (first, second):
            restores = {r.run_id: r for r in obs.runs if "/restore_test/" in r.job_key}
            assert set(restores) == {j.id for j in dbm.restore_jobs} and obs.problems == ()
        if field == "completed_at":
            assert restores[bad.id].ended_at is None

    async def test_a_restore_job_whose_target_server_is_no_object_is_left_out_and_named(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        bad = dbm.restore_jobs[0]

        def change(body: dict[str, Any]) -> None:
            body["restore"]["target_server"] = "srv2"

        tamper(monkeypatch, "_restore_job_json", lambda j: j is bad, change)
        (obs,) = await dbm_polls(dbm)
        restores = {r.run_id for r in obs.runs if "/restore_test/" in r.job_key}
        assert restores == {j.id for j in dbm.restore_jobs[1:]} and restores
        assert obs.problems == (f"unreadable restore job {bad.id} (target_server is no object); left out",)

    async def test_a_restore_job_status_that_is_no_string_is_read_as_unknown_on_every_poll(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        """It was looked up in a set from the second poll on: "unhashable type: 'list'", a crash every poll."""
        bad = dbm.restore_jobs[0]
        tamper(monkeypatch, "_restore_job_json", lambda j: j is bad, lambda body: body.update(status=["completed"]))
        for obs in await dbm_polls(dbm, 3):
            restores = {r.run_id: r for r in obs.runs if "/restore_test/" in r.job_key}
            assert set(restores) == {j.id for j in dbm.restore_jobs}
            assert restores[bad.id].outcome is RunOutcome.UNKNOWN

    async def test_a_database_name_that_is_no_text_costs_that_row(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        """It became a service named "{'b': 1} on postgres"."""
        bad = oldest_snapshot(dbm)
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(database_name={"b": 1}))
        (obs,) = await dbm_polls(dbm)
        assert not [t.key for t in obs.targets if "{" in t.key or "{" in t.name]
        assert obs.problems == (
            f"unreadable snapshot row id '{bad.id}' (ValueError: `database_name` is no name); left out",
        )

    @pytest.mark.parametrize("missing", ["id", "name"])
    async def test_a_server_without_an_id_or_a_name_costs_that_server(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, missing: str
    ) -> None:
        mariadb = next(s for s in dbm.servers if s.name == "mariadb")
        tamper(monkeypatch, "_server_json", lambda s: s is mariadb, lambda body: body.pop(missing))
        first, second = await dbm_polls(dbm, 2)
        for obs in (first, second):
            assert any(
                j.kind is JobKind.BACKUP and "databasement:dbm/postgres/vault" in j.target_keys for j in obs.jobs
            )
            assert not any(j.kind is JobKind.BACKUP and any("mariadb" in k for k in j.target_keys) for j in obs.jobs)
            assert obs.problems[0].startswith("a database server without `id` or `name` (")

    @pytest.mark.parametrize(
        "change",
        [
            lambda body: body.update(backups=5),
            lambda body: body["backups"][0].update(database_names=5),
            lambda body: body["backups"][0].update(database_include_pattern=["a"]),
        ],
        ids=["backups-5", "database_names-5", "include_pattern-list"],
    )
    async def test_a_hostile_server_field_costs_only_that_field(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, change: Callable[[dict[str, Any]], None]
    ) -> None:
        mariadb = next(s for s in dbm.servers if s.name == "mariadb")
        tamper(monkeypatch, "_server_json", lambda s: s is mariadb, change)
        (obs,) = await dbm_polls(dbm)
        assert completed(obs) == len(dbm.snapshots) - 1 and obs.problems == ()
        assert {t.key for t in obs.targets} >= {"databasement:dbm/mariadb/nextcloud", "databasement:dbm/postgres/vault"}
        assert any(j.kind is JobKind.BACKUP and "databasement:dbm/postgres/vault" in j.target_keys for j in obs.jobs)

    async def test_a_legacy_recurrence_that_is_no_string_is_no_schedule(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        dbm.legacy = True
        mariadb = next(s for s in dbm.servers if s.name == "mariadb")
        tamper(
            monkeypatch,
            "_server_json",
            lambda s: s is mariadb,
            lambda body: body["backup"].update(recurrence=["daily"]),
        )
        (obs,) = await dbm_polls(dbm)
        assert completed(obs) == len(dbm.snapshots) - 1 and obs.problems == ()
        (daily,) = [j for j in obs.jobs if j.kind is JobKind.BACKUP and j.job_id == "daily"]
        assert "databasement:dbm/postgres/vault" in daily.target_keys
        assert "databasement:dbm/mariadb/nextcloud" not in daily.target_keys

    @pytest.mark.parametrize("page", [float("inf"), float("-inf")])
    async def test_a_page_number_no_integer_holds_is_a_protocol_error(
        self, dbm: DatabasementScenario, page: float
    ) -> None:
        # The pagination envelope is no record: a broken one is the answer's frame, as "abc" already is.
        app = rewritten(
            databasement_sim.create_app(dbm),
            "/api/v1/snapshots",
            lambda body: {**body, "meta": {**body["meta"], "current_page": page, "last_page": page}},
        )
        with pytest.raises(SourceProtocolError, match="are not numbers"):
            await dbm_polls(dbm, app=app)

    async def test_pages_that_do_not_advance_are_a_protocol_error_not_a_poll_long_loop(
        self, dbm: DatabasementScenario
    ) -> None:
        """`current_page: 0` of 2 had page 1 asked for again and again (12,000 requests a minute) until the poll's
        deadline, which then blamed a slow source."""
        app = rewritten(
            databasement_sim.create_app(dbm),
            "/api/v1/database-servers",
            lambda body: {**body, "meta": {**body["meta"], "current_page": 0, "last_page": 2}},
        )
        with pytest.raises(SourceProtocolError, match=r"page 1 came back as `meta.current_page` 0 \(of 2\)"):
            await dbm_polls(dbm, app=app)

    async def test_a_snapshot_row_with_thousands_of_volumes_is_read_up_to_the_bound(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        """200,000 volumes in one row held the event loop for minutes (a look-up in a tuple per volume), and
        20,000 made one dump 20,001 copies in 20,000 offsite places."""
        bad = newest_vault(dbm)
        volumes = [
            {"id": f"v{i}", "name": f"vol{i}", "type": "s3", "status": "completed", "file_exists": True}
            for i in range(5000)
        ]
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(volumes=volumes))
        for obs in await dbm_polls(dbm, 2):
            (snap,) = [s for s in obs.snapshots if s.snapshot_id == bad.id]
            assert snap.places == tuple(f"vol{i}" for i in range(32)) and len(obs.offsite_locations) == 32
            assert obs.problems == (f"snapshot row id {bad.id!r}: lists more than 32 volumes; read the first 32",)

    @pytest.mark.parametrize(("bound", "value"), [("_MAX_ROWS", 200), ("_MAX_LISTING_BYTES", 1 << 20)])
    async def test_a_listing_that_never_ends_is_read_up_to_a_bound_and_said(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, bound: str, value: int
    ) -> None:
        """A server echoing `current_page` with `last_page` 1e9 had every page kept until the poll's deadline
        (642 MB of 2 MB pages), and then the source failed for being slow."""
        monkeypatch.setattr(databasement_source, bound, value)
        first_page: list[dict[str, Any]] = []

        def endless(body: dict[str, Any]) -> dict[str, Any]:
            first_page[:] = first_page or body["data"]
            page = body["meta"]["current_page"]
            data = [{**row, "id": f"{row['id']}-{page}"} for row in first_page]
            return {**body, "data": data, "meta": {**body["meta"], "last_page": 10**9}}

        (obs,) = await dbm_polls(dbm, app=rewritten(databasement_sim.create_app(dbm), "/api/v1/snapshots", endless))
        pages = len([p for p in dbm.requests if p.startswith("/api/v1/snapshots?")])
        assert 1 < pages < 30 and len([r for r in obs.runs if "/backup/" in r.job_key]) == 70 * pages
        rows, megabytes = databasement_source._MAX_ROWS, databasement_source._MAX_LISTING_BYTES >> 20
        assert obs.problems == (
            f"listing /api/v1/snapshots: more than {rows:,} rows or {megabytes} MB; read the first {70 * pages:,}",
        )

    async def test_snapshot_rows_without_an_id_are_left_out_and_named(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        """Every row with "id": null became one dump "None": 70 rows made one run, and no word was said."""
        tamper(monkeypatch, "_snapshot_json", lambda s: True, lambda body: body.update(id=None))
        (obs,) = await dbm_polls(dbm)
        assert not [r for r in obs.runs if "/backup/" in r.job_key] and not obs.snapshots
        assert obs.problems == (
            "unreadable snapshot row with no id (ValueError: `id` is no name) and 69 more; left out",
        )

    async def test_snapshot_rows_sharing_an_id_keep_the_first_and_say_how_many_were_dropped(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        tamper(monkeypatch, "_snapshot_json", lambda s: True, lambda body: body.update(id="SAME"))
        (obs,) = await dbm_polls(dbm)
        (run,) = [r for r in obs.runs if "/backup/" in r.job_key]
        assert run.run_id == "SAME" and run.started_at == max(s.started_at for s in dbm.snapshots)
        assert obs.problems == (
            "snapshot rows reusing the id of a different snapshot: 69 (e.g. id 'SAME', listed 70 times); kept the "
            "first of each, dropped the rest",
        )

    async def test_a_row_listed_again_on_the_next_page_is_no_problem(self, dbm: DatabasementScenario) -> None:
        """While a list is paged, a dump dispatched meanwhile pushes every row one place down: the last row of a
        page comes again at the top of the next one. That is the same dump, not a clash of ids."""
        app = rewritten(
            databasement_sim.create_app(dbm), "/api/v1/snapshots", lambda body: {**body, "data": body["data"] * 2}
        )
        (obs,) = await dbm_polls(dbm, app=app)
        assert completed(obs) == len(dbm.snapshots) - 1 and obs.problems == ()

    @pytest.mark.parametrize("repeat_server", [False, True], ids=["restore-tests", "servers"])
    async def test_servers_and_restore_tests_without_an_id_or_sharing_one_are_named(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, repeat_server: bool
    ) -> None:
        """Restore tests with "id": null became jobs of one key "dbm/restore_test/None"."""
        if repeat_server:
            postgres, mariadb = dbm.servers
            tamper(monkeypatch, "_server_json", lambda s: s is mariadb, lambda body: body.update(id=postgres.id))
        test = dbm.scheduled_restores[0]
        extra = [{"id": None, "name": "a"}, {"id": test.id, "name": "b", "schema_name": "other"}]
        app = rewritten(
            databasement_sim.create_app(dbm),
            "/api/v1/scheduled-restores",
            lambda body: {**body, "data": [*body["data"], *body["data"], *extra]},  # the same one twice: no clash
        )
        (obs,) = await dbm_polls(dbm, app=app)
        (job,) = [j for j in obs.jobs if j.kind is JobKind.RESTORE_TEST]
        assert job.key == f"dbm/restore_test/{test.id}" and job.name == test.name
        clash = (
            "{0} rows reusing the id of a different {0}: 1 (e.g. id {1!r}, listed 2 times); kept the first of each, "
            "dropped the rest"
        )
        expected = [
            "a scheduled restore without `id` (with no id); left out",
            *([clash.format("database server", dbm.servers[0].id)] if repeat_server else []),
            clash.format("restore test", test.id),
        ]
        assert list(obs.problems) == expected

    async def test_a_server_error_on_the_job_list_costs_only_the_error_texts_and_restore_runs(
        self, dbm: DatabasementScenario
    ) -> None:
        """It failed the whole source: every service unknown for want of one error message."""
        (obs,) = await dbm_polls(dbm, app=failing(databasement_sim.create_app(dbm), "/api/v1/jobs"))
        assert completed(obs) == len(dbm.snapshots) - 1
        (failed,) = [r for r in obs.runs if r.outcome is RunOutcome.FAILED]
        assert failed.message == "" and [j.name for j in obs.jobs if j.kind is JobKind.RESTORE_TEST]
        assert obs.problems == (
            "error texts of failed dumps: databasement 'dbm': HTTP 500 on /api/v1/jobs: Server Error",
            "restore test runs: databasement 'dbm': HTTP 500 on /api/v1/jobs: Server Error",
        )

    async def test_a_server_error_on_the_restore_tests_keeps_the_ones_last_read(
        self, dbm: DatabasementScenario
    ) -> None:
        asked = itertools.count()
        app = failing(databasement_sim.create_app(dbm), "/api/v1/scheduled-restores", when=lambda: next(asked) > 0)
        first, second = await dbm_polls(dbm, 2, app=app)
        assert first.problems == ()
        assert second.problems == (
            "restore tests: databasement 'dbm': HTTP 500 on /api/v1/scheduled-restores: Server Error",
        )
        assert first.jobs == second.jobs and completed(second) == len(dbm.snapshots) - 1

    async def test_an_error_text_is_kept_to_a_few_kilobytes(self, dbm: DatabasementScenario) -> None:
        failed_snapshot(dbm).error_message = "E" * 100_000
        dbm.restore_jobs[0].status, dbm.restore_jobs[0].error_message = "failed", "R" * 100_000
        (obs,) = await dbm_polls(dbm)
        messages = {r.message for r in obs.runs if r.outcome is RunOutcome.FAILED}
        assert messages == {"E" * 4000, "R" * 4000}

    async def test_a_job_list_too_big_to_read_costs_only_the_error_texts(self, dbm: DatabasementScenario) -> None:
        """Two failed dumps with a 30 MB error_message each pushed `/jobs` past the 64 MB answer limit (here: two of
        600 KB past 1 MB), and the whole source failed."""
        oldest_snapshot(dbm).status = "failed"
        for snap in dbm.snapshots:
            if snap.status == "failed":
                snap.error_message = "E" * 600_000
        (obs,) = await dbm_polls(dbm, max_bytes=1 << 20)
        assert completed(obs) == len(dbm.snapshots) - 2
        assert obs.problems == (
            "error texts of failed dumps: databasement 'dbm': response on /api/v1/jobs is larger than 1 MB; refused",
        )

    @pytest.mark.parametrize(
        "size",
        ["null", "true", "NaN", "1e400", '"12abc"', "9" * 5000],
        ids=["null", "true", "NaN", "1e400", "12abc", "5000-digits"],
    )
    async def test_a_file_size_that_is_no_byte_count_costs_only_the_size(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario, size: str
    ) -> None:
        """NaN, 1e400 or "12abc" cost the whole dump (its service went falsely late); null, true or 5,000 digits
        became 0 B or 1 B (a false "the newest backup is 0 B")."""
        bad = newest_vault(dbm)
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(file_size="@size@"))
        app = spliced(databasement_sim.create_app(dbm), "/api/v1/snapshots", '"@size@"', size)
        (obs,) = await dbm_polls(dbm, app=app)
        (snap,) = [s for s in obs.snapshots if s.snapshot_id == bad.id]
        (run,) = [r for r in obs.runs if r.run_id == bad.id]
        assert snap.size_bytes is None and run.size_bytes is None and run.outcome is RunOutcome.OK
        assert obs.problems == (f"snapshot row id {bad.id!r}: `file_size` is no byte count; size unknown",)

    async def test_rows_that_are_no_object_are_named(self, dbm: DatabasementScenario) -> None:
        app = rewritten(
            databasement_sim.create_app(dbm),
            "/api/v1/snapshots",
            lambda body: {**body, "data": [*body["data"], None, 5, "x", []]},
        )
        (obs,) = await dbm_polls(dbm, app=app)
        assert completed(obs) == len(dbm.snapshots) - 1
        assert obs.problems == ("a row of /api/v1/snapshots that is no object (NoneType) and 3 more; left out",)

    async def test_an_empty_database_name_costs_that_row(
        self, monkeypatch: pytest.MonkeyPatch, dbm: DatabasementScenario
    ) -> None:
        """It became a service " on postgres", keyed "databasement:dbm/postgres/"."""
        bad = oldest_snapshot(dbm)
        tamper(monkeypatch, "_snapshot_json", lambda s: s is bad, lambda body: body.update(database_name=""))
        (obs,) = await dbm_polls(dbm)
        assert not [t.key for t in obs.targets if t.key.endswith("/")]
        assert obs.problems == (
            f"unreadable snapshot row id {bad.id!r} (ValueError: `database_name` is empty); left out",
        )
