"""Protection facts from Backrest, Databasement and restic (issue 13): restore operations as restore tests,
repositories always encrypted and offsite when their URI is remote, encrypted dumps and dumps kept on several
volumes. Against the simulators over HTTPS (restic from its JSON, no binary needed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from backup_glance.config import BackrestSourceConfig, DatabasementSourceConfig, ResticSourceConfig
from backup_glance.model import JobKind, Observation, RunOutcome
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.backrest import BackrestScenario, add_protection_demo, add_restore
from backup_glance.simulators.databasement import DatabasementScenario
from backup_glance.simulators.databasement import add_protection_demo as shrink_and_slow
from backup_glance.sources.backrest import BackrestSource
from backup_glance.sources.databasement import DatabasementSource
from backup_glance.sources.restic import ResticSource

from .conftest import NOW

DAY = timedelta(days=1)


def backrest_source(server: SimulatorServer, **overrides: object) -> BackrestSource:
    fields: dict[str, object] = {
        "name": "br",
        "type": "backrest",
        "url": server.url,
        "fingerprint": server.fingerprint,
        "username": "admin",
        "password": "hunter2-backrest-login",
        "timezone": "Europe/Madrid",
    }
    return BackrestSource(BackrestSourceConfig.model_validate(fields | overrides), clock=lambda: NOW)


def databasement_source(server: SimulatorServer, token: str, **overrides: object) -> DatabasementSource:
    fields: dict[str, object] = {
        "name": "dbm",
        "type": "databasement",
        "url": server.url,
        "fingerprint": server.fingerprint,
        "token": token,
        "timezone": "Europe/Madrid",
    }
    return DatabasementSource(DatabasementSourceConfig.model_validate(fields | overrides), clock=lambda: NOW)


async def poll(source: BackrestSource | DatabasementSource) -> Observation:
    try:
        return await source.poll()
    finally:
        await source.aclose()


class TestBackrest:
    async def test_restore_operations_are_the_plans_restore_test(
        self, backrest: tuple[BackrestScenario, SimulatorServer]
    ) -> None:
        scenario, server = backrest
        add_protection_demo(scenario, NOW)  # a drill four months ago
        plan = next(p for p in scenario.plans if p.id == "vault")
        add_restore(scenario, plan, NOW - 2 * DAY, "ab" * 32, status="STATUS_ERROR")
        obs = await poll(backrest_source(server))
        (job,) = [j for j in obs.jobs if j.kind is JobKind.RESTORE_TEST]
        assert job.key == "br/restore_test/vault" and job.target_keys == ("backrest:br/vault",)
        restores = sorted((r for r in obs.runs if r.job_key == job.key), key=lambda r: r.started_at)
        assert [r.outcome for r in restores] == [RunOutcome.OK, RunOutcome.FAILED]
        assert all(r.target_key is None for r in restores)  # a restore is no backup attempt of the plan
        assert restores[0].ended_at is not None and NOW - restores[0].ended_at > 120 * DAY

    async def test_repositories_are_encrypted_and_offsite_by_their_uri(
        self, backrest: tuple[BackrestScenario, SimulatorServer]
    ) -> None:
        scenario, server = backrest
        obs = await poll(backrest_source(server))
        assert obs.snapshots and all(s.encrypted is True for s in obs.snapshots)
        assert obs.offsite_locations == ()  # /mnt/nas/restic: on this machine
        scenario.repos[0].uri = "b2:homelab-backups:/restic"
        assert (await poll(backrest_source(server))).offsite_locations == ("nas",)
        assert (await poll(backrest_source(server, offsite=False))).offsite_locations == ()
        scenario.repos[0].uri = "rest:http://localhost:8000/"
        assert (await poll(backrest_source(server))).offsite_locations == ()
        assert (await poll(backrest_source(server, offsite=["nas"]))).offsite_locations == ("nas",)


class TestDatabasement:
    async def test_encrypted_dumps_and_dumps_on_several_volumes(
        self, databasement: tuple[DatabasementScenario, SimulatorServer]
    ) -> None:
        scenario, server = databasement
        newest = max((s for s in scenario.snapshots if s.database_name == "vault"), key=lambda s: s.started_at)
        newest.encrypted = True
        newest.volumes = (("v1", "NAS dumps", "local"), ("v2", "S3 dumps", "s3"))
        obs = await poll(databasement_source(server, scenario.token))
        vault = [s for s in obs.snapshots if s.target_key.endswith("/vault")]
        latest = max(vault, key=lambda s: s.taken_at)
        assert latest.encrypted is True and latest.places == ("NAS dumps", "S3 dumps")
        assert all(s.encrypted is False for s in vault if s is not latest)
        assert obs.offsite_locations == ("S3 dumps",)  # an s3 volume is on another machine
        named = await poll(databasement_source(server, scenario.token, offsite=["NAS dumps"]))
        assert named.offsite_locations == ("NAS dumps",)

    async def test_a_volume_whose_copy_failed_holds_nothing(
        self, databasement: tuple[DatabasementScenario, SimulatorServer]
    ) -> None:
        scenario, server = databasement
        vault = sorted((s for s in scenario.snapshots if s.database_name == "vault"), key=lambda s: s.started_at)
        vault[-1].volumes = vault[-2].volumes = (("v1", "NAS dumps", "local"), ("v2", "S3 dumps", "s3"))
        vault[-1].failed_volumes = ("NAS dumps",)  # only the offsite copy was written
        vault[-2].failed_volumes = ("NAS dumps", "S3 dumps")  # written nowhere
        obs = await poll(databasement_source(server, scenario.token))
        by_id = {s.snapshot_id: s for s in obs.snapshots}
        assert by_id[vault[-1].id].location == "S3 dumps" and by_id[vault[-1].id].places == ()
        assert vault[-2].id not in by_id  # a dump no volume holds is no backup
        assert obs.offsite_locations == ("S3 dumps",)

    async def test_the_demo_dumps_that_shrank_or_took_long(
        self, databasement: tuple[DatabasementScenario, SimulatorServer]
    ) -> None:
        scenario, server = databasement
        shrink_and_slow(scenario)
        obs = await poll(databasement_source(server, scenario.token))
        grafana = sorted((s for s in obs.snapshots if s.target_key.endswith("/grafana")), key=lambda s: s.taken_at)
        assert grafana[-1].size_bytes is not None and grafana[-2].size_bytes is not None
        assert grafana[-1].size_bytes * 5 < grafana[-2].size_bytes
        n8n = sorted((r for r in obs.runs if (r.target_key or "").endswith("/n8n")), key=lambda r: r.started_at)
        assert n8n[-1].ended_at is not None and n8n[-1].ended_at - n8n[-1].started_at > timedelta(minutes=15)


class TestRestic:
    def source(self, repository: str, tmp_path: Path, **overrides: object) -> ResticSource:
        secret = tmp_path / "pw"
        secret.write_text("x")
        fields: dict[str, object] = {
            "name": "r",
            "type": "restic",
            "repository": repository,
            "password_file": str(secret),
        }
        return ResticSource(ResticSourceConfig.model_validate(fields | overrides), environ={}, clock=lambda: NOW)

    ITEM: ClassVar[dict[str, object]] = {
        "time": "2026-08-06T02:00:05+02:00",
        "id": "9a" * 32,
        "short_id": "9a9a9a9a",
        "hostname": "nas",
        "paths": ["/d"],
    }

    def test_snapshots_are_encrypted_and_a_remote_repository_is_offsite(self, tmp_path: Path) -> None:
        local = self.source("/srv/restic", tmp_path)._observation(NOW, [self.ITEM])
        assert local.snapshots[0].encrypted is True and local.offsite_locations == ()
        for remote in ("s3:s3.amazonaws.com/bucket", "sftp:user@backup.example:/r", "rest:https://u:p@h:8000/r"):
            observation = self.source(remote, tmp_path)._observation(NOW, [self.ITEM])
            assert observation.offsite_locations == (observation.snapshots[0].location,), remote
            assert "u:p@" not in observation.snapshots[0].location  # the location never carries credentials
        forced = self.source("/srv/restic", tmp_path, offsite=True)._observation(NOW, [self.ITEM])
        assert forced.offsite_locations == ("/srv/restic",)
