"""PBS source against the PBS simulator over real HTTPS with a pinned fingerprint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import NOW, Clock, pbs_config

from backup_glance.errors import SourceProtocolError
from backup_glance.model import JobKind, RunOutcome, Verification
from backup_glance.simulators import pbs as pbs_sim
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.proxmox_lab import PbsDatastore, PbsGroup, PbsJob, PbsTask, ProxmoxLab
from backup_glance.sources import pbs as pbs_module
from backup_glance.sources._pbs_wire import GroupState, decode_group_page, parse_group, parse_snapshot
from backup_glance.sources.pbs import PbsSource


def a_source(server: SimulatorServer, **overrides: object) -> PbsSource:
    return PbsSource(pbs_config(server, **overrides), clock=Clock())


def snapshot_calls(server: SimulatorServer) -> list[dict[str, str]]:
    return [query for _path, query in server.app.requests.matching("/snapshots")]


class TestDemoLab:
    async def test_it_lists_every_guest_group_as_a_guest_target(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        keys = [t.key for t in obs.targets]
        assert keys == [f"guest:{i}" for i in (101, 102, 103, 104, 105, 106, 110, 111, 112, 113)]
        vault = obs.targets[0]
        assert (vault.name, vault.kind, vault.guest and vault.guest.type) == ("vault", "guest", "lxc")
        assert obs.timezone == "Europe/Madrid"
        assert obs.problems == ()

    async def test_it_keeps_two_weeks_of_nightlies_and_weeks_of_weeklies(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        vault = sorted(s.taken_at for s in obs.all_snapshots() if s.target_key == "guest:101")
        jellyfin = sorted(s.taken_at for s in obs.all_snapshots() if s.target_key == "guest:113")
        assert NOW - vault[0] > timedelta(days=14)
        assert vault[-1].isoformat() == "2025-01-15T03:00:02+00:00"  # today 04:00:02 in Madrid
        assert len(jellyfin) >= 6 and NOW - jellyfin[0] > timedelta(weeks=6)
        snap = next(s for s in obs.all_snapshots() if s.target_key == "guest:101" and s.taken_at == vault[-1])
        assert snap.snapshot_id == "main//ct/101/2025-01-15T03:00:02Z"
        assert snap.location == "main" and snap.finished and (snap.size_bytes or 0) > 10**9

    async def test_postgres_has_no_snapshot_from_last_night(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        newest = max(s.taken_at for s in obs.all_snapshots() if s.target_key == "guest:104")
        assert newest.date().isoformat() == "2025-01-14"

    async def test_vaultwarden_newest_snapshot_failed_verification(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        newest = max((s for s in obs.all_snapshots() if s.target_key == "guest:105"), key=lambda s: s.taken_at)
        assert newest.verification is Verification.FAILED
        # verified_at comes from the hex start time inside the verify task's UPID: today 06:00 Madrid
        assert newest.verified_at == datetime(2025, 1, 15, 5, 0, tzinfo=UTC)
        vault = max((s for s in obs.all_snapshots() if s.target_key == "guest:101"), key=lambda s: s.taken_at)
        assert vault.verification is Verification.OK

    async def test_it_reports_prune_verify_and_gc_jobs(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        jobs = {job.key: job for job in obs.jobs}
        assert set(jobs) == {"pbs1/prune/prune-main-daily", "pbs1/verify/v-main-daily", "pbs1/gc/main"}
        prune = jobs["pbs1/prune/prune-main-daily"]
        assert prune.kind is JobKind.PRUNE and prune.schedule and prune.schedule.expression == "05:00"
        assert prune.schedule.timezone == "Europe/Madrid"
        assert prune.next_run_at == datetime(2025, 1, 16, 4, 0, tzinfo=UTC)
        assert prune.last_run and prune.last_run.outcome is RunOutcome.OK
        gc = jobs["pbs1/gc/main"]
        assert gc.schedule and gc.schedule.expression == "sat 03:00" and gc.store == "main"
        assert gc.last_run and gc.last_run.ended_at and gc.last_run.ended_at.weekday() == 5

    async def test_it_maps_tasks_to_runs(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        backups = [r for r in obs.runs if r.target_key == "guest:103"]
        assert backups and all(r.job_key == "pbs1/backup/main" and r.outcome is RunOutcome.OK for r in backups)
        verify = [r for r in obs.runs if r.job_key == "pbs1/verify/v-main-daily"]
        prune = [r for r in obs.runs if r.job_key == "pbs1/prune/prune-main-daily"]
        assert len(verify) == 7 and len(prune) == 7  # a week of daily runs (first poll reads 7 days)

    async def test_it_reports_datastore_usage_and_dedup(self, pbs_server: SimulatorServer) -> None:
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        (store,) = obs.datastores
        assert store.key == "pbs1/main" and store.total_bytes == 2 * 1024**4
        assert store.dedup_factor == 9.4 and not store.usage_is_flat
        assert store.estimated_full_at and store.estimated_full_at > NOW


def add_store(lab: ProxmoxLab) -> None:
    offsite = PbsDatastore("offsite", namespaces={"": {}, "site-b": {}, "site-b/prod": {}})
    offsite.estimated_full_date = 0
    lab.datastores["offsite"] = offsite
    lab.add_snapshot("offsite", "site-b/prod", "vm", "300", NOW - timedelta(hours=5), 5 * 10**9, comment="erp")
    lab.add_snapshot("offsite", "site-b/prod", "vm", "300", NOW - timedelta(minutes=3), None)
    lab.add_snapshot("offsite", "site-b", "host", "fileserver", NOW - timedelta(hours=2), 7 * 10**9)


class TestNamespacesAndPartialFailure:
    async def test_it_iterates_every_namespace(self, lab: ProxmoxLab, pbs_server: SimulatorServer) -> None:
        add_store(lab)
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        erp = sorted((s for s in obs.all_snapshots() if s.target_key == "guest:300"), key=lambda s: s.taken_at)
        assert [s.location for s in erp] == ["offsite/site-b/prod"] * 2
        assert erp[0].finished and not erp[1].finished  # in progress: no `size` on the wire
        assert erp[1].size_bytes is None
        host = next(t for t in obs.targets if t.key == "pbs-host:pbs1/fileserver")
        assert host.kind == "host" and host.guest is None
        offsite = next(d for d in obs.datastores if d.name == "offsite")
        assert offsite.usage_is_flat and offsite.estimated_full_at is None

    async def test_an_unreadable_datastore_is_a_problem_not_a_failure(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer
    ) -> None:
        add_store(lab)
        lab.datastores["offsite"].unreadable = "unable to open chunk store 'offsite' - No such file or directory"
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        assert len(obs.problems) == 1
        assert "datastore 'offsite'" in obs.problems[0] and "unable to open chunk store" in obs.problems[0]
        assert {s.location for s in obs.all_snapshots()} == {"main"}
        offsite = next(d for d in obs.datastores if d.name == "offsite")
        assert offsite.error and "unable to open chunk store" in offsite.error
        assert len(obs.targets) == 10

    async def test_a_job_or_task_pbs_could_not_have_written_costs_that_record_only(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lab.pbs_jobs.append(PbsJob("verify", "no-id", "main", "daily", options={"id": None}))
        broken = lab.add_pbs_task("backup", "main:ct/101", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
        also = lab.add_pbs_task("backup", "main:ct/102", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
        as_listed = pbs_sim.task_item

        def without_start(task: PbsTask) -> dict[str, Any]:
            item = as_listed(task)
            return {k: v for k, v in item.items() if k != "starttime"} if task.upid in bad else item

        bad = {broken.upid, also.upid}

        monkeypatch.setattr(pbs_sim, "task_item", without_start)
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        assert any("/admin/verify: an item has no 'id'" in p for p in obs.problems)
        assert len([p for p in obs.problems if "has no 'starttime' and 1 more; left out" in p]) == 1  # one line
        assert {j.kind for j in obs.jobs} >= {JobKind.PRUNE, JobKind.VERIFY}  # the other jobs are all there
        assert obs.runs and not bad & {r.run_id for r in obs.runs}

    async def test_a_group_pbs_could_not_have_written_costs_that_group_only(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        as_listed = pbs_sim.group_item
        assert any(g.backup_id == "101" for g in lab.datastores["main"].namespaces[""].values())

        def one_broken(group: PbsGroup) -> dict[str, Any]:
            item = as_listed(group)  # a count that is no number: the typed list refuses the page, then this item
            return {**item, "backup-count": "many"} if group.backup_id == "101" else item

        monkeypatch.setattr(pbs_sim, "group_item", one_broken)
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        assert any("are not integers; left out" in p for p in obs.problems)
        keys = {s.target_key for s in obs.all_snapshots()}
        assert "guest:101" not in keys and len(keys) > 1  # the namespace's other groups are all read

    async def test_a_running_verify_at_no_time_and_a_namespace_that_is_a_list_cost_nothing_else(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lab.pbs_jobs.append(PbsJob("prune", "odd-ns", "main", "daily", ns=["a", "b"]))  # type: ignore[arg-type]
        running = lab.add_pbs_task("verificationjob", "main:v-odd", NOW - timedelta(minutes=5), None, None)
        as_listed = pbs_sim.task_item

        def at_no_time(task: PbsTask) -> dict[str, Any]:
            item = as_listed(task)
            return {**item, "starttime": 2**62} if task.upid == running.upid else item

        monkeypatch.setattr(pbs_sim, "task_item", at_no_time)
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        assert any(j.job_id == "odd-ns" for j in obs.jobs) and obs.all_snapshots()

    async def test_it_restricts_to_configured_datastores(self, lab: ProxmoxLab, pbs_server: SimulatorServer) -> None:
        add_store(lab)
        source = a_source(pbs_server, datastores=["offsite"])
        obs = await source.poll()
        await source.aclose()
        assert [d.name for d in obs.datastores] == ["offsite"]
        assert {t.key for t in obs.targets} == {"guest:300", "pbs-host:pbs1/fileserver"}


class TestSyncJobs:
    async def test_it_asks_for_push_jobs_too(self, lab: ProxmoxLab, pbs_server: SimulatorServer) -> None:
        lab.pbs_jobs.append(PbsJob("sync", "s-pull", "main", "06:00", options={"remote": "far", "remote-store": "x"}))
        push = {"remote": "far", "remote-store": "y", "sync-direction": "push"}
        lab.pbs_jobs.append(PbsJob("sync", "s-push", "main", None, options=push))
        lab.add_pbs_task("syncjob", "far:x:main::s-pull", NOW - timedelta(hours=4), NOW, "connection refused")
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        sync = {j.job_id: j for j in obs.jobs if j.kind is JobKind.SYNC}
        assert set(sync) == {"s-pull", "s-push"}
        assert sync["s-push"].schedule is None and sync["s-push"].next_run_at is None
        (run,) = [r for r in obs.runs if r.job_key == "pbs1/sync/s-pull"]
        assert run.outcome is RunOutcome.FAILED and run.message == "connection refused"


GROUP_ITEM = {"backup-type": "vm", "backup-id": "101", "last-backup": 1736906405, "backup-count": 14, "comment": "db"}


class TestGroupLists:
    """Every poll reads every namespace's group list: decoded typed, and leniently when an item is not as the
    API documents it, with the same result."""

    def test_the_typed_and_the_lenient_decoders_agree(self) -> None:
        typed = decode_group_page(json.dumps({"data": [GROUP_ITEM, {**GROUP_ITEM, "comment": None}]}).encode())
        lenient = [
            parse_group(item, "/g", SourceProtocolError) for item in (GROUP_ITEM, {**GROUP_ITEM, "comment": None})
        ]
        assert (
            typed
            == lenient
            == [
                ("vm", "101", GroupState(1736906405, 14, "db")),
                ("vm", "101", GroupState(1736906405, 14, None)),
            ]
        )

    @pytest.mark.parametrize("odd", [{"backup-count": "14"}, {"backup-id": 101}, {"comment": 7}, {"backup-id": None}])
    def test_an_undocumented_item_takes_the_lenient_path(self, odd: dict[str, object]) -> None:
        assert decode_group_page(json.dumps({"data": [{**GROUP_ITEM, **odd}]}).encode()) is None


class TestIncrementalPolling:
    async def test_a_second_poll_without_change_reads_no_snapshot_list(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer
    ) -> None:
        source = a_source(pbs_server)
        first = await source.poll()
        assert len(snapshot_calls(pbs_server)) == 1  # the first poll reads the namespace in one go
        pbs_server.app.requests.clear()
        second = await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == []
        assert second.series is first.series and second.runs is first.runs  # history skips them by identity

    async def test_a_new_snapshot_refetches_only_its_group(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        source = a_source(pbs_server)
        await source.poll()
        pbs_server.app.requests.clear()
        clock.now = NOW + timedelta(minutes=10)
        lab.add_snapshot("main", "", "ct", "104", NOW + timedelta(minutes=5), 7 * 10**9, comment="postgres")
        lab.add_pbs_task("backup", "main:ct/104", NOW + timedelta(minutes=5), NOW + timedelta(minutes=9), "OK")
        obs = await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == [{"ns": "", "backup-type": "ct", "backup-id": "104"}]
        newest = max(s.taken_at for s in obs.all_snapshots() if s.target_key == "guest:104")
        assert newest == NOW + timedelta(minutes=5)
        (task_call,) = [q for _p, q in pbs_server.app.requests.matching("/tasks")]
        assert int(task_call["since"]) == int((NOW - timedelta(minutes=2)).timestamp())
        assert any(r.target_key == "guest:104" and r.started_at == NOW + timedelta(minutes=5) for r in obs.runs)

    async def test_a_group_list_read_again_byte_for_byte_is_not_decoded_again(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        add_store(lab)
        decoded: list[bytes] = []

        def counting(body: bytes) -> Any:
            decoded.append(body)
            return decode_group_page(body)

        monkeypatch.setattr(pbs_module, "decode_group_page", counting)
        source = a_source(pbs_server)

        async def poll(minutes: int) -> tuple[int, dict[str, int]]:
            decoded.clear()
            clock.now = NOW + timedelta(minutes=minutes)
            obs = await source.poll()
            per_target: dict[str, int] = {}
            for snapshot in obs.all_snapshots():
                per_target[snapshot.target_key] = per_target.get(snapshot.target_key, 0) + 1
            return len(decoded), per_target

        first = await poll(0)
        assert first[0] == 4  # main, and the three namespaces of offsite
        # Only site-b/prod is read again: it holds a snapshot still being written.
        assert await poll(1) == (1, first[1])
        lab.add_snapshot("offsite", "site-b", "host", "fileserver", NOW + timedelta(minutes=1), 10**9)
        decodes, counts = await poll(2)
        assert decodes == 2 and counts["pbs-host:pbs1/fileserver"] == first[1]["pbs-host:pbs1/fileserver"] + 1
        gone = lab.datastores["offsite"].namespaces.pop("site-b")
        assert "pbs-host:pbs1/fileserver" not in (await poll(3))[1]
        lab.datastores["offsite"].namespaces["site-b"] = gone  # back, its group list the same bytes as before
        decodes, again = await poll(4)
        await source.aclose()
        assert decodes == 2 and again == counts

    async def test_a_task_read_again_unchanged_keeps_its_run_object(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        lab.add_pbs_task("backup", "main:ct/104", NOW - timedelta(minutes=1), NOW - timedelta(seconds=20), "OK")
        source = a_source(pbs_server)
        first = {r.run_id: r for r in (await source.poll()).runs}
        clock.now = NOW + timedelta(minutes=1)
        lab.add_pbs_task("backup", "main:ct/104", NOW + timedelta(seconds=30), NOW + timedelta(seconds=50), "OK")
        second = (await source.poll()).runs
        await source.aclose()
        (task_call,) = [q for _p, q in pbs_server.app.requests.matching("/tasks")][1:]
        assert int(task_call["since"]) <= int((NOW - timedelta(minutes=1)).timestamp())  # the overlap re-read it
        assert len(second) == len(first) + 1
        assert all(run is first[run.run_id] for run in second if run.run_id in first)  # history and bounds skip them

    async def test_a_group_read_again_is_a_new_series_and_the_others_stay_as_they_were(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        source = a_source(pbs_server)
        first = {series.id_prefix: series for series in (await source.poll()).series}
        oldest = lab.datastores["main"].group("", "ct", "104").snapshots[0]
        oldest.protected = True
        clock.now = NOW + timedelta(minutes=10)
        lab.add_snapshot("main", "", "ct", "104", NOW + timedelta(minutes=5), 7 * 10**9, comment="postgres")
        second = {series.id_prefix: series for series in (await source.poll()).series}
        await source.aclose()
        assert second.keys() == first.keys()
        before, after = list(first.pop("main//ct/104/")), list(second.pop("main//ct/104/"))
        assert len(after) == len(before) + 1
        assert after[0].protected and not before[0].protected
        assert after[1:-1] == before[1:]
        assert after[-1].taken_at == NOW + timedelta(minutes=5)
        assert all(second[prefix] is series for prefix, series in first.items())

    async def test_a_renamed_guest_gets_a_new_target_and_the_others_stay_as_they_were(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        source = a_source(pbs_server)
        before = {t.key: t for t in (await source.poll()).targets}
        clock.now = NOW + timedelta(minutes=10)
        lab.add_snapshot("main", "", "ct", "104", NOW + timedelta(minutes=5), 7 * 10**9, comment="postgres-17")
        after = {t.key: t for t in (await source.poll()).targets}
        await source.aclose()
        assert (before["guest:104"].name, after["guest:104"].name) == ("postgres", "postgres-17")
        assert set(after) == set(before)
        assert all(after[key] is before[key] for key in before if key != "guest:104")

    async def test_a_finished_verify_job_refetches_the_store(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        lab.add_snapshot("main", "", "ct", "104", NOW - timedelta(minutes=30), 7 * 10**9)
        source = a_source(pbs_server)
        first = await source.poll()
        unverified = [s for s in first.all_snapshots() if s.verification is Verification.NONE]
        assert [s.target_key for s in unverified] == ["guest:104"]
        pbs_server.app.requests.clear()
        clock.now = NOW + timedelta(minutes=20)
        lab.finish_verify_job("v-main-daily", NOW + timedelta(minutes=10), NOW + timedelta(minutes=13))
        obs = await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == [{"ns": ""}]
        assert not [s for s in obs.all_snapshots() if s.verification is Verification.NONE]

    async def test_a_first_poll_reads_the_lists_while_it_pages_through_the_tasks(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        lab.finish_verify_job("v-main-daily", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
        pbs_server.app.faults.slow_paths = {"/nodes/localhost/tasks": 1.0}
        source = a_source(pbs_server)
        first = await source.poll()
        pbs_server.app.faults.slow_paths = {}
        timed = pbs_server.app.requests.timed()
        tasks_asked = min(at for path, _q, at in timed if path.endswith("/nodes/localhost/tasks"))
        lists_asked = min(at for path, _q, at in timed if path.endswith("/snapshots"))
        assert lists_asked - tasks_asked < 0.5  # not after the task list's answer, a second later
        pbs_server.app.requests.clear()
        clock.now = NOW + timedelta(minutes=10)
        second = await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == []  # the verification ended before the lists were read
        assert second.all_snapshots() == first.all_snapshots()

    async def test_a_verification_that_ends_during_the_first_poll_has_its_store_read_again(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        # Its end is the server's "now": the lists, read at the same time as the task list, may predate it.
        lab.finish_verify_job("v-main-daily", NOW - timedelta(minutes=3), NOW)
        source = a_source(pbs_server)
        await source.poll()
        pbs_server.app.requests.clear()
        clock.now = NOW + timedelta(minutes=10)
        await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == [{"ns": ""}]

    async def test_an_in_progress_snapshot_is_read_again_until_it_finishes(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        snap = lab.add_snapshot("main", "", "ct", "104", NOW - timedelta(minutes=1), None)
        source = a_source(pbs_server)
        first = await source.poll()
        assert [s.finished for s in first.all_snapshots() if s.taken_at == NOW - timedelta(minutes=1)] == [False]
        with lab.lock:
            snap.size = 7 * 10**9  # same count, same last-backup: only the unfinished flag says "look again"
        pbs_server.app.requests.clear()
        obs = await source.poll()
        await source.aclose()
        assert snapshot_calls(pbs_server) == [{"ns": "", "backup-type": "ct", "backup-id": "104"}]
        assert [s.finished for s in obs.all_snapshots() if s.taken_at == NOW - timedelta(minutes=1)] == [True]


class TestReviewFixes:
    async def test_a_source_error_inside_the_task_group_stays_a_source_error(self, pbs_server: SimulatorServer) -> None:
        pbs_server.app.faults.missing_paths = {"/nodes/localhost/tasks"}
        source = a_source(pbs_server)
        with pytest.raises(SourceProtocolError, match="HTTP 404 on /nodes/localhost/tasks"):
            await source.poll()
        await source.aclose()

    async def test_a_long_verification_is_seen_when_it_finishes(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        snap = lab.add_snapshot("main", "", "ct", "104", NOW - timedelta(minutes=30), 7 * 10**9)
        task = lab.add_pbs_task("verify_snapshot", "main:ct/104/678716A5", NOW - timedelta(minutes=10), None, None)
        source = a_source(pbs_server)
        first = await source.poll()
        assert [s.verification for s in first.all_snapshots() if s.taken_at == NOW - timedelta(minutes=30)] == [
            Verification.NONE
        ]
        with lab.lock:  # it ends after the next poll's `since` has moved past its start
            task.endtime, task.status = int((NOW + timedelta(minutes=3)).timestamp()), "OK"
            snap.verification, snap.verify_upid = "failed", task.upid
        clock.now = NOW + timedelta(minutes=10)
        pbs_server.app.requests.clear()
        obs = await source.poll()
        await source.aclose()
        (task_call,) = [q for _p, q in pbs_server.app.requests.matching("/tasks")]
        assert int(task_call["since"]) <= task.starttime
        assert [s.verification for s in obs.all_snapshots() if s.taken_at == NOW - timedelta(minutes=30)] == [
            Verification.FAILED
        ]

    async def test_a_failed_refetch_after_a_verification_is_retried(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer
    ) -> None:
        lab.add_snapshot("main", "", "ct", "104", NOW - timedelta(minutes=30), 7 * 10**9)
        source = a_source(pbs_server)
        await source.poll()
        clock.now = NOW + timedelta(minutes=20)
        lab.finish_verify_job("v-main-daily", NOW + timedelta(minutes=10), NOW + timedelta(minutes=13))
        pbs_server.app.faults.missing_paths = {"/admin/datastore/main/snapshots"}
        second = await source.poll()
        assert second.problems and "snapshots" in second.problems[0]
        assert [s for s in second.all_snapshots() if s.verification is Verification.NONE]
        pbs_server.app.faults.missing_paths = set()
        clock.now = NOW + timedelta(minutes=30)
        third = await source.poll()
        await source.aclose()
        assert third.problems == ()
        assert not [s for s in third.all_snapshots() if s.verification is Verification.NONE]

    async def test_prune_runs_go_to_the_job_whose_last_run_they_are(
        self, lab: ProxmoxLab, pbs_server: SimulatorServer
    ) -> None:
        weekly = PbsJob("prune", "prune-main-weekly", "main", "sun 06:00", options={"keep-weekly": 8})
        lab.pbs_jobs.append(weekly)
        task = lab.add_pbs_task("prunejob", "main", NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK")
        weekly.last_upid, weekly.last_state, weekly.last_endtime = task.upid, "OK", task.endtime
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        (run,) = [r for r in obs.runs if r.run_id == task.upid]
        assert run.job_key == "pbs1/prune/prune-main-weekly"
        daily = [r for r in obs.runs if r.job_key == "pbs1/prune/prune-main-daily"]
        assert len(daily) == 7  # its own week of runs, and not the weekly job's

    async def test_a_pbs_without_the_gc_job_view_has_no_gc_job_and_no_problem(
        self, pbs_server: SimulatorServer
    ) -> None:
        pbs_server.app.faults.missing_paths = {"/admin/gc"}  # PBS < 3.2
        source = a_source(pbs_server)
        obs = await source.poll()
        await source.aclose()
        assert obs.problems == ()
        assert not [j for j in obs.jobs if j.kind is JobKind.GC]
        assert {j.kind for j in obs.jobs} == {JobKind.PRUNE, JobKind.VERIFY}

    async def test_a_job_list_that_fails_once_keeps_the_jobs_last_read(self, pbs_server: SimulatorServer) -> None:
        """A busy PBS answered /admin/verify with an error once: its verify jobs vanished for that poll, and with
        them the services' `unverified` (the board looked better while PBS said less)."""
        source = a_source(pbs_server)
        before = await source.poll()
        pbs_server.app.faults.missing_paths = {"/admin/verify", "/admin/prune"}
        during = await source.poll()
        await source.aclose()
        kinds = (JobKind.VERIFY, JobKind.PRUNE)
        assert {j.key for j in during.jobs if j.kind in kinds} == {j.key for j in before.jobs if j.kind in kinds}
        assert any(j.kind is JobKind.VERIFY for j in during.jobs)
        assert any(p.startswith("verify jobs: ") for p in during.problems), during.problems
        assert any(p.startswith("prune jobs: ") for p in during.problems), during.problems


class TestLongTaskLists:
    async def test_a_task_list_longer_than_the_pages_read_says_so_and_one_that_fits_does_not(
        self, lab: ProxmoxLab, clock: Clock, pbs_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        since = NOW - pbs_module.TASK_LOOKBACK
        listed = [t for t in lab.pbs_tasks if t.starttime >= since.timestamp()]
        monkeypatch.setattr(pbs_module, "TASK_PAGE", 10)
        monkeypatch.setattr(pbs_module, "MAX_TASK_PAGES", -(-len(listed) // 10))  # pages enough for all of them
        fits = a_source(pbs_server)
        notice = f"task list: more than {pbs_module.MAX_TASK_PAGES * 10} tasks since {since:%Y-%m-%d %H:%M} UTC"
        assert not any(notice in problem for problem in (await fits.poll()).problems)
        await fits.aclose()
        for _ in range(pbs_module.MAX_TASK_PAGES * 10 - len(listed) + 1):  # one task more than those pages hold
            lab.add_pbs_task("garbage_collection", "main", NOW - timedelta(minutes=30), NOW - timedelta(minutes=29))
        cut = a_source(pbs_server)
        obs = await cut.poll()
        assert any(problem.startswith(f"{notice}; older ones not read") for problem in obs.problems), obs.problems
        clock.now = NOW + timedelta(minutes=5)  # the next poll reads from the last one on
        later = await cut.poll()
        await cut.aclose()
        assert not any("older ones not read" in problem for problem in later.problems)


@pytest.mark.parametrize("backup_id", [["g1"], {"a": 1}, True, 1.5])
def test_a_group_or_snapshot_id_that_is_no_name_costs_that_record(backup_id: object) -> None:
    """A list was written as Python writes it: a group "ct/['g1']" on the board."""

    def error(message: str) -> SourceProtocolError:
        return SourceProtocolError(message, source="pbs", kind="pbs")

    group = {"backup-type": "ct", "backup-id": backup_id, "last-backup": 1_795_000_000, "backup-count": 1}
    with pytest.raises(SourceProtocolError, match="'backup-id' is no name"):
        parse_group(group, "/admin/datastore/main/groups", error)
    snapshot = {"backup-type": "ct", "backup-id": backup_id, "backup-time": 1_795_000_000, "size": 1}
    with pytest.raises(SourceProtocolError, match="'backup-id' is no name"):
        parse_snapshot(snapshot, source="pbs", store="main", ns="", path="/snapshots", error=error)
    assert parse_group({**group, "backup-id": 101}, "/groups", error)[1] == "101"  # a number is a fine id
