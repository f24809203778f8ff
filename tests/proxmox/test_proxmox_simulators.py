"""The simulators speak the reference's wire format, and the demo lab's history follows the real schedules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import NOW, PBS_SECRET, PBS_TOKEN_ID, PVE_SECRET, PVE_TOKEN_ID, Clock

from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import PbsDatastore, ProxmoxLab, demo_lab
from backup_glance.simulators.pve import create_pve_app
from backup_glance.sources._proxmox import escape_worker_id, pbs_upid, unescape_worker_id, upid_started_at

PBS_AUTH = {"Authorization": f"PBSAPIToken={PBS_TOKEN_ID}:{PBS_SECRET}"}
PVE_AUTH = {"Authorization": f"PVEAPIToken={PVE_TOKEN_ID}={PVE_SECRET}"}


async def pbs_get(lab: ProxmoxLab, path: str, headers: dict[str, str] = PBS_AUTH, **params: Any) -> httpx.Response:
    app = create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    app.faults.auth_failure_delay_s = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pbs") as client:
        return await client.get(f"/api2/json{path}", params=params, headers=headers)


async def pve_get(lab: ProxmoxLab, path: str, headers: dict[str, str] = PVE_AUTH, **params: Any) -> httpx.Response:
    app = create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=PVE_SECRET)
    app.faults.auth_failure_delay_s = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pve") as client:
        return await client.get(f"/api2/json{path}", params=params, headers=headers)


class TestUpids:
    def test_it_escapes_worker_ids_like_pbs(self) -> None:
        assert escape_worker_id("store1:vm/100") == "store1\\x3avm-100"
        assert escape_worker_id("store1:v-3f2a1b") == "store1\\x3av\\x2d3f2a1b"
        assert unescape_worker_id("store1\\x3avm-100") == "store1:vm/100"

    def test_it_builds_pbs_upids_in_the_reference_format(self) -> None:
        upid = pbs_upid(
            node="pbs1",
            pid=0x3F2,
            pstart=0xA1B2,
            task_id=5,
            starttime=0x678716A5,
            worker_type="backup",
            worker_id="store1:vm/100",
            auth_id="pve@pbs!pve-cluster",
        )
        assert upid == "UPID:pbs1:000003F2:0000A1B2:00000005:678716A5:backup:store1\\x3avm-100:pve@pbs!pve-cluster:"
        assert upid_started_at(upid) == datetime.fromtimestamp(0x678716A5, UTC)

    def test_it_reads_the_start_of_pve_upids(self) -> None:
        upid = "UPID:pve1:0002A1F3:01B2C3D4:678716A0:vzdump::root@pam:"
        assert upid_started_at(upid) == datetime.fromtimestamp(0x678716A0, UTC)
        assert upid_started_at("not a upid") is None


class TestDemoTimeline:
    @pytest.mark.parametrize(
        ("now", "newest_local"),
        [
            (datetime(2025, 1, 15, 2, 59, tzinfo=UTC), "2025-01-14 04:00"),  # 03:59 Madrid: before tonight's run
            (datetime(2025, 1, 15, 3, 30, tzinfo=UTC), "2025-01-15 04:00"),  # 04:30 Madrid: tonight's run done
            (datetime(2025, 7, 15, 2, 30, tzinfo=UTC), "2025-07-15 04:00"),  # summer time: 04:30 Madrid is 02:30Z
        ],
    )
    def test_the_newest_nightly_follows_the_schedule_in_madrid(self, now: datetime, newest_local: str) -> None:
        lab = demo_lab(now)
        group = lab.datastores["main"].namespaces[""][("ct", "101")]
        newest = datetime.fromtimestamp(max(s.backup_time for s in group.snapshots), UTC)
        from zoneinfo import ZoneInfo

        assert newest.astimezone(ZoneInfo("Europe/Madrid")).strftime("%Y-%m-%d %H:%M") == newest_local

    def test_a_run_in_progress_has_an_unfinished_snapshot_and_a_backup_lock(self) -> None:
        lab = demo_lab(datetime(2025, 1, 15, 3, 0, 30, tzinfo=UTC))  # 04:00:30 Madrid: vault is being backed up
        vault = lab.datastores["main"].namespaces[""][("ct", "101")].snapshots[-1]
        assert vault.size is None
        assert next(g for g in lab.guests if g.vmid == 101).lock == "backup"
        assert lab.pve_tasks[-1].endtime is None

    def test_old_snapshots_were_pruned_by_the_keep_policy(self) -> None:
        lab = demo_lab(NOW)
        group = lab.datastores["main"].namespaces[""][("ct", "101")]
        # As in PBS, days already kept by keep-last don't use up keep-daily's count (nor kept weeks keep-weekly's).
        assert len(group.snapshots) == 3 + 14 + 8
        oldest = datetime.fromtimestamp(group.snapshots[0].backup_time, UTC)
        assert timedelta(weeks=8) < NOW - oldest < timedelta(weeks=10)


class TestPbsWire:
    async def test_it_rejects_a_bad_token_with_a_plain_string(self, lab: ProxmoxLab) -> None:
        response = await pbs_get(lab, "/admin/datastore", headers={"Authorization": "PBSAPIToken=x:y"})
        assert response.status_code == 401
        assert response.text == "authentication failed - invalid token"

    async def test_it_accepts_the_space_form_of_the_token_header(self, lab: ProxmoxLab) -> None:
        headers = {"Authorization": f"PBSAPIToken {PBS_TOKEN_ID}:{PBS_SECRET}"}
        assert (await pbs_get(lab, "/admin/datastore", headers=headers)).status_code == 200

    async def test_a_datastore_comment_is_null_when_unset(self, lab: ProxmoxLab) -> None:
        lab.datastores["spare"] = PbsDatastore("spare")
        data = (await pbs_get(lab, "/admin/datastore")).json()["data"]
        assert data[1] == {
            "store": "spare",
            "comment": None,
            "mount-status": "nonremovable",
            "backend-type": "filesystem",
        }
        status = (await pbs_get(lab, "/admin/datastore/spare/status", verbose=1)).json()["data"]
        assert status["gc-status"]["upid"] is None and status["counts"]["ct"] is None

    async def test_an_unknown_datastore_is_a_400_with_the_message_as_body(self, lab: ProxmoxLab) -> None:
        response = await pbs_get(lab, "/admin/datastore/nope/groups")
        assert (response.status_code, response.text) == (400, "no such datastore 'nope'")

    async def test_task_typefilter_is_a_substring_and_total_is_virtual(self, lab: ProxmoxLab) -> None:
        body = (await pbs_get(lab, "/nodes/localhost/tasks", typefilter="job", limit=3)).json()
        assert {t["worker_type"] for t in body["data"]} <= {"prunejob", "verificationjob", "syncjob"}
        assert body["total"] == 4  # returned + start, plus one because more exist
        assert all("endtime" in t and "worker_id" in t for t in body["data"])

    async def test_a_running_task_has_no_endtime_or_status(self, lab: ProxmoxLab) -> None:
        lab.add_pbs_task("backup", "main:ct/101", NOW - timedelta(seconds=30), None)
        (task,) = (await pbs_get(lab, "/nodes/localhost/tasks", running=1)).json()["data"]
        assert "endtime" not in task and "status" not in task

    async def test_a_disabled_prune_job_has_no_next_run(self, lab: ProxmoxLab) -> None:
        lab.pbs_jobs[0].disable = True
        (job,) = (await pbs_get(lab, "/admin/prune")).json()["data"]
        assert job["disable"] is True and "next-run" not in job and job["last-run-state"] == "OK"

    async def test_namespaces_are_listed_recursively_with_the_anchor_first(self, lab: ProxmoxLab) -> None:
        lab.datastores["main"].namespaces |= {"a": {}, "a/b": {}, "c": {}}
        names = [n["ns"] for n in (await pbs_get(lab, "/admin/datastore/main/namespace")).json()["data"]]
        assert names == ["", "a", "a/b", "c"]
        names = [n["ns"] for n in (await pbs_get(lab, "/admin/datastore/main/namespace", parent="a")).json()["data"]]
        assert names == ["a", "a/b"]


class TestPveWire:
    async def test_errors_carry_data_null_and_a_message(self, lab: ProxmoxLab) -> None:
        response = await pve_get(lab, "/nodes/pve/tasks", limit="many")
        assert response.status_code == 400
        body = response.json()
        assert body["data"] is None and body["message"] == "Parameter verification failed."
        assert "limit" in body["errors"]

    async def test_a_bad_token_is_401(self, lab: ProxmoxLab) -> None:
        response = await pve_get(lab, "/cluster/backup", headers={"Authorization": f"PVEAPIToken={PVE_TOKEN_ID}=x"})
        assert response.status_code == 401

    async def test_typefilter_is_exact(self, lab: ProxmoxLab) -> None:
        assert (await pve_get(lab, "/nodes/pve/tasks", typefilter="vzdum")).json()["data"] == []
        body = (await pve_get(lab, "/nodes/pve/tasks", typefilter="vzdump", limit=2)).json()
        assert len(body["data"]) == 2 and body["total"] > 2

    async def test_schedule_analyze_iterates_in_the_node_zone(self, lab: ProxmoxLab) -> None:
        lab.clock = Clock()
        data = (await pve_get(lab, "/cluster/jobs/schedule-analyze", schedule="mon 04:00", iterations=2)).json()
        assert data["data"] == [
            {"timestamp": 1737342000, "utc": "Mon Jan 20 03:00:00 2025"},
            {"timestamp": 1737946800, "utc": "Mon Jan 27 03:00:00 2025"},
        ]

    async def test_a_pbs_storage_lists_volumes_from_the_datastore(self, lab: ProxmoxLab) -> None:
        data = (await pve_get(lab, "/nodes/pve/storage/pbs-main/content", content="backup", vmid=105)).json()["data"]
        newest = max(data, key=lambda v: v["ctime"])
        assert newest["volid"].startswith("pbs-main:backup/ct/105/2025-01-15T03:")
        assert newest["format"] == "pbs-ct" and newest["verification"]["state"] == "failed"
