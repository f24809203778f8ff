"""PVE source against the PVE simulator over real HTTPS with a pinned fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import NOW, Clock, pve_config

from backup_glance.errors import SourceAuthError
from backup_glance.model import JobRun, RunOutcome
from backup_glance.simulators import pve as pve_sim
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.proxmox_lab import Guest, ProxmoxLab, PveStorage, PveTask, VzdumpJob
from backup_glance.sources import pve as pve_module
from backup_glance.sources._pve_wire import file_snapshot, guest_target, parse_vzdump_log, resolve_selection
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

    async def test_a_quiet_poll_hands_back_the_same_targets_and_a_change_shows(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        source = a_source(pve_server)
        try:
            before = await source.poll()
            first = before.targets
            again = await source.poll()
            assert again.targets is first  # nothing changed: downstream reuse holds
            assert again.runs is before.runs and before.runs  # the same runs: the very same tuple
            with lab.lock:
                wiki = next(g for g in lab.guests if g.vmid == 121)
                wiki.name, wiki.lock = "wiki-archive", "backup"
                lab.guests.append(Guest(131, "lxc", "new-one"))
            changed = (await source.poll()).targets
        finally:
            await source.aclose()
        by_key = {t.key: t for t in changed}
        assert (by_key["guest:121"].name, by_key["guest:121"].backup_running) == ("wiki-archive", True)
        assert by_key["guest:131"].name == "new-one" and len(changed) == len(first) + 1
        assert [t for t in changed if t.key not in ("guest:121", "guest:131")] == [
            t for t in first if t.key != "guest:121"
        ]

    async def test_lists_read_as_before_are_not_parsed_again_and_each_change_shows(
        self, lab: ProxmoxLab, pve_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The guest and job lists are parsed again only when their bytes, the guests or the zone changed; what
        they said stays said (a guest listed twice on every poll), and every change shows on the next poll."""
        parsed: list[str] = []
        real_parse_job, real_unique = pve_module.parse_job, pve_module._unique_guests

        def parse_job(*args: Any, **kwargs: Any) -> Any:
            parsed.append("job")
            return real_parse_job(*args, **kwargs)

        def unique_guests(*args: Any, **kwargs: Any) -> Any:
            parsed.append("guests")
            return real_unique(*args, **kwargs)

        monkeypatch.setattr(pve_module, "parse_job", parse_job)
        monkeypatch.setattr(pve_module, "_unique_guests", unique_guests)
        with lab.lock:
            wiki = next(g for g in lab.guests if g.vmid == 121)
            lab.guests.append(Guest(121, wiki.type, "wiki-twin", node="pve2"))
            lab.vzdump_jobs.append(VzdumpJob("everything", "05:00", all=True, exclude=(120,), storage="pbs-main"))
        source = a_source(pve_server)

        async def poll() -> tuple[Any, list[str]]:
            parsed.clear()
            obs = await source.poll()
            return obs, list(parsed)

        try:
            first, work = await poll()
            assert work.count("guests") == 1 and work.count("job") == len(lab.vzdump_jobs)
            twice = "guest 121: listed 2 times (nodes 'pve', 'pve2'); the one on 'pve' is used"
            again, work = await poll()
            assert work == []  # nothing read again
            assert again.problems == first.problems and twice in again.problems
            assert again.jobs == first.jobs and again.targets is first.targets

            with lab.lock:
                lab.guests.append(Guest(132, "lxc", "newcomer"))
            added, work = await poll()  # the job list is the same bytes, its "all" selection is not
            assert work.count("guests") == 1 and work.count("job") == len(lab.vzdump_jobs)
            everything = {j.job_id: j for j in added.jobs}["everything"]
            assert "guest:132" in everything.target_keys and "guest:120" not in everything.target_keys

            with lab.lock:
                next(j for j in lab.vzdump_jobs if j.id == "everything").schedule = "06:30"
            rescheduled, work = await poll()
            assert work == ["job"] * len(lab.vzdump_jobs)  # the guests were not read again
            everything = {j.job_id: j for j in rescheduled.jobs}["everything"]
            assert everything.schedule is not None and everything.schedule.expression == "06:30"

            with lab.lock:
                lab.pve_timezone = "America/New_York"
            moved, work = await poll()
            assert work == ["job"] * len(lab.vzdump_jobs)
            assert {j.schedule.timezone for j in moved.jobs if j.schedule} == {"America/New_York"}
            assert moved.timezone == "America/New_York" and twice in moved.problems
        finally:
            await source.aclose()

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

    async def test_a_change_of_jobs_files_finished_tasks_as_reading_their_logs_again_would(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        """A finished task's log is kept only as the runs made of it: when the weekly job is switched off, its
        last run is taken for a manual one, per guest too, exactly as a source reading every log afresh says."""
        source = a_source(pve_server)
        await source.poll()
        weekly = next(job for job in lab.vzdump_jobs if job.id == "weekly")
        weekly.enabled = False
        kept = await source.poll()
        fresh = a_source(pve_server)
        again = await fresh.poll()
        await source.aclose()
        await fresh.aclose()
        jellyfin = newest(kept.runs, "guest:113")
        assert jellyfin.job_key == "pve1/backup/manual" and jellyfin.outcome is RunOutcome.OK
        assert kept.runs == again.runs

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

    async def test_a_log_line_no_calendar_or_zone_holds_costs_that_line_not_the_poll(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        lab.node_timezones["pve"] = "Not/A_Zone"  # a node whose zone this machine does not know
        log = [
            "INFO: Starting Backup of VM 120 (lxc)",
            "INFO: Backup started at 2026-13-45 99:99:99",
            "INFO: Finished Backup of VM 120 (00:00:41)",
            "INFO: Starting Backup of VM " + "9" * 5000 + " (qemu)",
            "ERROR: Backup of VM " + "7" * 5000 + " failed - no such guest",
            "TASK OK",
        ]
        lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK", log)
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        run = newest(obs.runs, "guest:120")  # the task's start stands in for the time the log could not give
        assert (run.outcome, run.started_at) == (RunOutcome.OK, NOW - timedelta(hours=1))
        assert run.ended_at == NOW - timedelta(hours=1) + timedelta(seconds=41)
        assert not [r for r in obs.runs if r.target_key and len(r.target_key) > 100]

    async def test_odd_names_and_a_task_at_the_end_of_time_cost_their_part_only(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        lab.guests.append(Guest(140, "qemu", "odd", node="a/../b"))  # one segment of a path, not three
        lab.pve_storages.append(PveStorage("odd-type", ["dir"]))  # type: ignore[arg-type]  # a list, not a name
        end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # a second later is out of range
        lab.add_pve_task("vzdump", "", end, None, None, ["INFO: Starting Backup of VM 100 (qemu)"])
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert any("node a/../b" in p for p in obs.problems)  # said, not raised
        assert newest(obs.runs, "guest:113").outcome is RunOutcome.OK  # everything else is still read

    async def test_a_task_pve_could_not_have_written_costs_that_task_only(
        self, lab: ProxmoxLab, pve_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        log = ["INFO: Starting Backup of VM 120 (lxc)", "INFO: Finished Backup of VM 120 (00:00:41)", "TASK OK"]
        absurd = lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=3), NOW - timedelta(hours=2), "OK", log)
        no_id = lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=2), NOW - timedelta(hours=1), "OK", log)
        good = lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK", log)
        as_listed = pve_sim._task_item

        def hostile(task: PveTask) -> dict[str, Any]:
            item = as_listed(task)
            if task.upid == absurd.upid:
                return {**item, "starttime": 2**62}  # a time no calendar holds
            return {**item, "upid": ""} if task.upid == no_id.upid else item

        monkeypatch.setattr(pve_sim, "_task_item", hostile)
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert "tasks of node pve: 2 without an 'upid' or a start time left out" in obs.problems
        assert newest(obs.runs, "guest:120").run_id == good.upid  # the node's other tasks are all read

    async def test_a_task_list_longer_than_the_pages_read_says_so(
        self, lab: ProxmoxLab, clock: Clock, pve_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        log = ["INFO: Starting Backup of VM 120 (lxc)", "INFO: Finished Backup of VM 120 (00:00:41)", "TASK OK"]
        older = lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=3), NOW - timedelta(hours=2), "OK", log)
        newer = lab.add_pve_task("vzdump", "120", NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK", log)
        monkeypatch.setattr(pve_module, "TASK_PAGE", 1)
        monkeypatch.setattr(pve_module, "MAX_TASK_PAGES", 1)
        source = a_source(pve_server)
        obs = await source.poll()
        since = NOW - pve_module.TASK_LOOKBACK
        assert f"tasks of node pve: more than 1 backup tasks since {since:%Y-%m-%d %H:%M} UTC; older ones not read" in (
            obs.problems
        )
        assert {r.run_id for r in obs.runs} & {older.upid, newer.upid} == {newer.upid}  # newest first
        clock.now = NOW + timedelta(minutes=5)  # the next poll reads from the last one on: one page holds it
        later = await source.poll()
        await source.aclose()
        assert not any("older ones not read" in problem for problem in later.problems)

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


VZDUMP_LOG = """\
INFO: starting new backup job: vzdump 100 101 102 --mode snapshot --storage pbs-main
INFO: Starting Backup of VM 100 (qemu)
INFO: Backup started at 2026-03-29 01:59:50
INFO: status = running
INFO: include disk 'scsi0' 'local-lvm:vm-100-disk-0' 32G
INFO: creating Proxmox Backup Server archive 'vm/100/2026-03-29T00:59:50Z'
INFO:  10% (3.2 GiB of 32.0 GiB) in 3s, read: 1.1 GiB/s, write: 0 B/s
INFO: Finished Backup of VM 100 (00:00:31)
INFO: Backup finished at 2026-03-29 03:00:23
INFO: Starting Backup of VM 101 (lxc)
INFO: Backup started at 2026-03-29 03:00:22
ERROR: Backup of VM 101 failed - command 'lxc-freeze -n 101' failed: exit code 1
INFO: Failed at 2026-03-29 03:00:25
INFO: Starting Backup of VM 102 (qemu)
INFO: Backup started at 2026-03-29 03:00:26
INFO: Backup job finished with errors
TASK ERROR: job errors"""


def test_a_vzdump_log_gives_each_guest_its_times_and_result_across_a_dst_change() -> None:
    task_start = datetime(2026, 3, 29, 0, 59, 48, tzinfo=UTC)
    log = parse_vzdump_log(VZDUMP_LOG.splitlines(), task_start, "Europe/Berlin")  # 02:00 CET became 03:00 CEST
    found = {
        vmid: (g.started_at.strftime("%H:%M:%S"), g.ended_at and g.ended_at.strftime("%H:%M:%S"), g.outcome, g.message)
        for vmid, g in log.guests.items()
    }
    assert found == {
        100: ("00:59:50", "01:00:23", RunOutcome.OK, ""),  # the line, not start + duration (01:00:21)
        101: ("01:00:22", "01:00:25", RunOutcome.FAILED, "command 'lxc-freeze -n 101' failed: exit code 1"),
        102: ("01:00:26", None, None, ""),
    }


def test_a_time_in_a_vzdump_log_that_cannot_be_the_tasks_is_no_time() -> None:
    """A line "Backup started at 9999-12-31": the run was then refused at the edge with its failure, and the guest
    went from failed to late, its reason ("lxc-freeze ... failed") lost."""
    task_start = datetime(2026, 3, 29, 0, 59, 48, tzinfo=UTC)
    text = VZDUMP_LOG.replace("Backup started at 2026-03-29 03:00:22", "Backup started at 9999-12-31 00:00:00")
    text = text.replace("Failed at 2026-03-29 03:00:25", "Failed at 2000-01-01 00:00:00")
    guest = parse_vzdump_log(text.splitlines(), task_start, "Europe/Berlin").guests[101]
    assert (guest.started_at, guest.ended_at, guest.outcome) == (task_start, None, RunOutcome.FAILED)
    assert guest.message == "command 'lxc-freeze -n 101' failed: exit code 1"


def two_node_lab(lab: ProxmoxLab) -> None:
    """A second node `pve2` with guest 200, and a job "two-nodes" (09:00 Madrid = 08:00 UTC) over 150 and 200."""
    lab.guests.append(Guest(150, "qemu", "web", node="pve"))
    lab.guests.append(Guest(200, "qemu", "db2", node="pve2"))
    lab.vzdump_jobs.append(VzdumpJob("two-nodes", "09:00", vmids=(150, 200), storage="pbs-main"))


def guest_log(vmid: int, ok: bool, started_local: str | None = None) -> list[str]:
    lines = [f"INFO: Starting Backup of VM {vmid} (qemu)"]
    if started_local:
        lines.append(f"INFO: Backup started at {started_local}")
    if ok:
        return [*lines, f"INFO: Finished Backup of VM {vmid} (00:00:30)", "TASK OK"]
    return [*lines, f"ERROR: Backup of VM {vmid} failed - disk full", "TASK ERROR: job errors"]


SLOT = NOW.replace(hour=8, minute=0, second=0)


class TestClusters:
    async def test_a_permission_error_on_the_job_list_stays_a_permanent_auth_error(
        self, pve_server: SimulatorServer
    ) -> None:
        pve_server.app.faults.forbidden_paths = {"/cluster/backup"}
        source = a_source(pve_server)
        with pytest.raises(SourceAuthError, match=r"permission denied \(HTTP 403\) on /cluster/backup") as caught:
            await source.poll()
        await source.aclose()
        assert caught.value.permanent

    async def test_a_node_that_does_not_answer_is_a_problem_and_keeps_its_runs(
        self, lab: ProxmoxLab, clock: Clock, pve_server: SimulatorServer
    ) -> None:
        two_node_lab(lab)
        task = lab.add_pve_task("vzdump", "", SLOT, SLOT + timedelta(minutes=1), "OK", guest_log(200, True), "pve2")
        source = a_source(pve_server)
        first = await source.poll()
        assert newest(first.runs, "guest:200").run_id == task.upid
        lab.offline_nodes = {"pve2"}
        clock.now = NOW + timedelta(minutes=10)
        second = await source.poll()
        assert any(p.startswith("tasks of node pve2:") and "HTTP 595" in p for p in second.problems)
        assert newest(second.runs, "guest:200").run_id == task.upid  # still known
        # Back online: the node's tasks are read from where its last successful read left off.
        late = lab.add_pve_task(
            "vzdump", "150", NOW + timedelta(minutes=5), NOW + timedelta(minutes=6), "OK", [], "pve2"
        )
        lab.offline_nodes = set()
        clock.now = NOW + timedelta(minutes=20)
        third = await source.poll()
        await source.aclose()
        assert third.problems == ()
        assert any(r.run_id == late.upid for r in third.runs) and third.runs is not second.runs

    async def test_the_clock_comes_from_the_first_node_that_answers(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        two_node_lab(lab)
        lab.offline_nodes = {"pve"}  # sorted first
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert obs.timezone == "Europe/Madrid"
        assert any(p.startswith("tasks of node pve:") for p in obs.problems)

    async def test_a_running_task_of_a_node_no_longer_queried_does_not_run_forever(
        self, lab: ProxmoxLab, clock: Clock, pve_server: SimulatorServer
    ) -> None:
        two_node_lab(lab)
        task = lab.add_pve_task(
            "vzdump", "200", NOW - timedelta(minutes=5), None, None, guest_log(200, True)[:1], "pve2"
        )
        source = a_source(pve_server)
        first = await source.poll()
        assert [r.outcome for r in first.runs if r.run_id == task.upid and r.target_key is None] == [RunOutcome.RUNNING]
        with lab.lock:  # the node leaves the cluster (its guest with it) before the task is seen ending
            lab.guests = [g for g in lab.guests if g.node != "pve2"]
        clock.now = NOW + timedelta(minutes=10)
        second = await source.poll()
        await source.aclose()
        assert [r for r in second.runs if r.run_id == task.upid] == []

    async def test_a_job_on_two_nodes_takes_the_worst_task_of_the_slot(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        two_node_lab(lab)
        failed = lab.add_pve_task(
            "vzdump", "", SLOT + timedelta(seconds=2), SLOT + timedelta(minutes=1), "job errors",
            guest_log(200, False), "pve2",
        )  # fmt: skip
        lab.add_pve_task(
            "vzdump", "", SLOT + timedelta(seconds=9), SLOT + timedelta(minutes=2), "OK", guest_log(150, True), "pve"
        )
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        job = next(j for j in obs.jobs if j.job_id == "two-nodes")
        assert job.last_run and job.last_run.run_id == failed.upid and job.last_run.outcome is RunOutcome.FAILED

    async def test_task_logs_are_read_in_their_node_time_zone(
        self, lab: ProxmoxLab, pve_server: SimulatorServer
    ) -> None:
        two_node_lab(lab)
        lab.node_timezones = {"pve2": "America/New_York"}
        log = guest_log(200, True, started_local="2025-01-15 03:00:05")  # 08:00:05 UTC
        lab.add_pve_task("vzdump", "", SLOT, SLOT + timedelta(minutes=1), "OK", log, "pve2")
        source = a_source(pve_server)
        obs = await source.poll()
        await source.aclose()
        assert newest(obs.runs, "guest:200").started_at == SLOT + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"all": 1}, ("guest:99", "guest:100", "guest:1000", "guest:2001")),  # numbers, not text: 99 < 100 < 1000
        ({"all": 1, "exclude": "100"}, ("guest:99", "guest:1000", "guest:2001")),
        ({"vmid": "1000,99,1000,777"}, ("guest:99", "guest:777", "guest:1000")),  # 777 is gone: still named
        ({"all": 1, "node": "pve2"}, ("guest:1000",)),
        ({"pool": "db"}, ("guest:100", "guest:2001")),
    ],
)
def test_a_jobs_guests_are_in_vmid_order_each_once(job: dict[str, object], expected: tuple[str, ...]) -> None:
    guests: list[dict[str, object]] = [
        {"vmid": 2001, "node": "pve1", "pool": "db"},
        {"vmid": 1000, "node": "pve2"},
        {"vmid": "100", "node": "pve1", "pool": "db"},
        {"vmid": 99, "node": "pve1"},
    ]
    assert resolve_selection(job, guests) == expected
    assert resolve_selection(job, guests, "pve-b") == tuple(key.replace("guest:", "guest:pve-b/") for key in expected)


@pytest.mark.parametrize("vmid", [2**64, -5, 1e308, "abc", 0, True])
def test_a_vmid_pve_cannot_have_makes_no_guest_and_no_backup_file(vmid: object) -> None:
    """2^64 or 1e308 (read as a 309-digit number) became a guest in no job: an "unprotected" critical verdict."""
    assert guest_target("pve", {"vmid": vmid, "type": "lxc", "node": "pve", "name": "ghost"}) is None
    refused: list[str] = []
    volid = "local:backup/vzdump-lxc-x-2026_11_25-04_00_01.tar.zst"
    item = {"volid": volid, "vmid": vmid, "ctime": 1_795_000_000}
    assert file_snapshot("pve", "local", item, refused=refused) is None
    assert refused == [f"backup file {volid!r} on local: no VMID"]


def test_a_backup_file_without_a_time_is_named_when_left_out() -> None:
    refused: list[str] = []
    item = {"volid": "local:backup/vzdump-qemu-101-x.vma.zst", "vmid": 101, "ctime": "x"}
    assert file_snapshot("pve", "local", item, refused=refused) is None
    assert refused == ["backup file 'local:backup/vzdump-qemu-101-x.vma.zst' on local: no creation time"]
    good = file_snapshot("pve", "local", {**item, "ctime": 1_795_000_000}, refused=refused)
    assert good is not None and good.target_key == "guest:101" and len(refused) == 1


def test_a_node_name_that_is_no_text_is_no_node() -> None:
    """It was asked for as "/nodes/%7B%27a%27..." after being written as Python writes a dict."""
    target = guest_target("pve", {"vmid": 101, "type": "lxc", "node": {"a": 1}, "name": "vault"})
    assert target is not None and target.guest is not None and target.guest.node is None
