"""PVE source against the PVE simulator over real HTTPS with a pinned fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import NOW, Clock, pve_config

from backup_glance.model import JobRun, RunOutcome
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.proxmox_lab import Guest, ProxmoxLab, VzdumpJob
from backup_glance.sources.pve import PveSource


def a_source(server: SimulatorServer) -> PveSource:
    return PveSource(pve_config(server), clock=Clock())


def newest(runs: tuple[JobRun, ...], target_key: str | None) -> JobRun:
    return max((r for r in runs if r.target_key == target_key), key=lambda r: r.started_at)


class TestDemoLab:
    async def test_it_lists_every_guest(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert [t.key for t in obs.targets][-3:] == ["guest:113", "guest:120", "guest:121"]
        wiki = obs.targets[-1]
        assert (wiki.name, wiki.guest and wiki.guest.type, wiki.guest and wiki.guest.node) == (
            "old-wiki",
            "qemu",
            "pve",
        )
        assert obs.timezone == "Europe/Madrid" and obs.problems == ()

    async def test_it_resolves_job_selections(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        jobs = {j.job_id: j for j in obs.jobs}
        assert jobs["critical-nightly"].target_keys == tuple(f"guest:{i}" for i in range(101, 107))
        assert jobs["weekly"].target_keys == ("guest:110", "guest:111", "guest:112", "guest:113")
        assert jobs["critical-nightly"].schedule and jobs["critical-nightly"].schedule.expression == "04:00"
        assert jobs["critical-nightly"].next_run_at == datetime(2025, 1, 16, 3, 0, tzinfo=UTC)
        assert jobs["critical-nightly"].store == "pbs-main"

    async def test_scratch_is_uncovered_and_old_wiki_only_by_a_disabled_job(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert obs.uncovered_target_keys == ("guest:120",)
        legacy = next(j for j in obs.jobs if j.job_id == "legacy")
        assert not legacy.enabled and legacy.target_keys == ("guest:121",)
        assert legacy.next_run_at == datetime(2025, 1, 19, 0, 0, tzinfo=UTC)  # PVE computes it even when disabled

    async def test_postgres_failed_last_night_per_the_task_log(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        postgres = newest(obs.runs, "guest:104")
        assert postgres.job_key == "pve1/backup/critical-nightly"
        assert postgres.outcome is RunOutcome.FAILED
        assert postgres.message.startswith("zfs error: cannot create snapshot")
        assert postgres.started_at.date().isoformat() == "2025-01-15"
        vault = newest(obs.runs, "guest:101")
        assert vault.outcome is RunOutcome.OK and vault.ended_at and vault.ended_at > vault.started_at
        job = next(j for j in obs.jobs if j.job_id == "critical-nightly")
        assert job.last_run and job.last_run.outcome is RunOutcome.FAILED and job.last_run.message == "job errors"
        earlier = [r for r in obs.runs if r.target_key == "guest:104" and r is not postgres]
        assert earlier and all(r.outcome is RunOutcome.OK for r in earlier)

    async def test_weekly_runs_map_to_the_weekly_job(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        jellyfin = newest(obs.runs, "guest:113")
        assert jellyfin.job_key == "pve1/backup/weekly" and jellyfin.outcome is RunOutcome.OK
        assert jellyfin.started_at.astimezone(UTC).date().isoformat() == "2025-01-13"  # Monday

    async def test_it_reads_vzdump_files_on_dir_storages_only(self, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert {s.target_key for s in obs.snapshots} == {"guest:121"}
        assert all(
            s.location == "local" and s.snapshot_id.startswith("local:backup/vzdump-qemu-121-") for s in obs.snapshots
        )
        assert [r for _p, r in pve_server.app.requests.matching("/storage/pbs-main")] == []


class TestTasks:
    async def test_a_manual_single_guest_run_is_not_taken_for_a_job(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        log = ["INFO: Starting Backup of VM 120 (lxc)", "INFO: Finished Backup of VM 120 (00:00:41)", "TASK OK"]
        lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK", log)
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        run = newest(obs.runs, "guest:120")
        assert run.job_key == "pve1/backup/manual" and run.outcome is RunOutcome.OK
        assert run.ended_at == NOW - timedelta(hours=1) + timedelta(seconds=41)

    async def test_a_running_task_and_the_backup_lock_show_as_running(
        self, lab: ProxmoxLab, clock: Clock, pve_server: SimulatorServer
    ) -> None:
        lab.guests.append(Guest(130, "qemu", "build", lock="backup"))
        lab.vzdump_jobs.append(VzdumpJob("hourly", "*:00", all=True, exclude=(120, 121), node="pve"))
        log = ["INFO: starting new backup job: vzdump --all 1", "INFO: Starting Backup of VM 130 (qemu)"]
        task = lab.add_pve_task("vzdump", "", NOW - timedelta(minutes=17), None, None, log)
        source = a_source(pve_server)
        obs = await source.poll()
        hourly = next(j for j in obs.jobs if j.job_id == "hourly")
        assert "guest:130" in hourly.target_keys and "guest:120" not in hourly.target_keys
        assert next(t for t in obs.targets if t.key == "guest:130").backup_running
        run = newest(obs.runs, "guest:130")
        assert (run.job_key, run.outcome, run.ended_at) == ("pve1/backup/hourly", RunOutcome.RUNNING, None)
        # It finishes: the next poll reads it again (it started before `since`) and re-reads its log.
        with lab.lock:
            task.log += ["ERROR: Backup of VM 130 failed - interrupted by signal", "TASK ERROR: job errors"]
            task.endtime, task.status = int((NOW + timedelta(minutes=3)).timestamp()), "job errors"
        clock.now = NOW + timedelta(minutes=10)
        obs = await source.poll()
        await source.aclose()
        run = newest(obs.runs, "guest:130")
        assert (run.outcome, run.message) == (RunOutcome.FAILED, "interrupted by signal")

    async def test_logs_are_fetched_once_per_task(self, lab: ProxmoxLab, pve_server: SimulatorServer) -> None:
        source = a_source(pve_server)
        await source.poll()
        first = len(pve_server.app.requests.matching("/log"))
        assert first == 8  # a week: 7 nightly runs and 1 weekly run
        pve_server.app.requests.clear()
        await source.poll()
        await source.aclose()
        assert pve_server.app.requests.matching("/log") == []

    async def test_legacy_cron_jobs_without_id_still_appear(self, lab: ProxmoxLab, pve_server: SimulatorServer) -> None:
        lab.vzdump_jobs.append(VzdumpJob("", "sat 02:30", vmids=(120,), storage="local", legacy_cron=True))
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        legacy = obs.jobs[-1]
        assert legacy.key == "pve1/backup/vzdump-cron-4" and legacy.next_run_at is None
        assert legacy.target_keys == ("guest:120",) and legacy.enabled
