"""Protection facts from PBS and PVE (issue 13): crypt-mode, protected, verify outdated-after, keep-* policies,
sync jobs both ways with the remote's group list, a token without Remote.Audit, a remote that does not answer,
and guests matched by (namespace, VMID) when two clusters reuse VMIDs. Simulators first, then the sources."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import NOW, PBS_SECRET, PBS_TOKEN_ID, PVE_SECRET, PVE_TOKEN_ID, Clock, pbs_config, pve_config

from backup_glance.config import PbsSourceConfig
from backup_glance.health import evaluate
from backup_glance.model import HistoryView, JobKind, Observation, SourceState, _clock_text
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import (
    Guest,
    PbsDatastore,
    PbsJob,
    PbsRemote,
    ProxmoxLab,
    VzdumpJob,
    demo_lab,
    sync_snapshots,
)
from backup_glance.simulators.pve import create_pve_app
from backup_glance.sources._pbs_wire import SnapshotDecoder, listed_groups, parse_snapshot
from backup_glance.sources.pbs import PbsSource
from backup_glance.sources.pve import PveSource

PBS_AUTH = {"Authorization": f"PBSAPIToken={PBS_TOKEN_ID}:{PBS_SECRET}"}
PVE_AUTH = {"Authorization": f"PVEAPIToken={PVE_TOKEN_ID}={PVE_SECRET}"}
DAY = timedelta(days=1)


async def pbs_get(lab: ProxmoxLab, route: str, **params: Any) -> httpx.Response:
    app = create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pbs") as client:
        return await client.get(f"/api2/json{route}", params=params, headers=PBS_AUTH)


@pytest.fixture
def protected_lab(clock: Clock) -> ProxmoxLab:
    lab = demo_lab(NOW, protection=True)
    lab.clock = clock
    return lab


@pytest.fixture
def protected_server(protected_lab: ProxmoxLab) -> Iterator[SimulatorServer]:
    app = create_pbs_app(protected_lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    with SimulatorServer(app) as server:
        yield server


async def poll(source: PbsSource | PveSource) -> Observation:
    try:
        return await source.poll()
    finally:
        await source.aclose()


# --- the PBS simulator --------------------------------------------------------------------------------------------


class TestPbsSimulator:
    async def test_snapshots_carry_crypt_mode_fingerprint_and_protected(self, protected_lab: ProxmoxLab) -> None:
        items = (await pbs_get(protected_lab, "/admin/datastore/main/snapshots", ns="")).json()["data"]
        vault = [i for i in items if i["backup-id"] == "101" and "size" in i][-1]
        caddy = [i for i in items if i["backup-id"] == "102" and "size" in i][-1]
        modes = {f["filename"]: f.get("crypt-mode") for f in vault["files"]}
        assert modes["root.pxar.didx"] == "encrypt" and modes["index.json.blob"] == "sign-only"
        assert "client.log.blob" in modes and modes["client.log.blob"] is None  # extra files: name only
        assert "fingerprint" in vault and "fingerprint" not in caddy
        assert all(f.get("crypt-mode") in ("none", None) for f in caddy["files"])
        assert all(isinstance(i["protected"], bool) for i in items)  # always present (serde default)
        assert any(i["protected"] for i in items if i["backup-id"] == "101")

    async def test_sync_jobs_pull_by_default_all_with_sync_direction(self, protected_lab: ProxmoxLab) -> None:
        pulled = (await pbs_get(protected_lab, "/admin/sync")).json()["data"]
        both = (await pbs_get(protected_lab, "/admin/sync", **{"sync-direction": "all"})).json()["data"]
        assert pulled == [] and [j["id"] for j in both] == ["s-offsite"]
        (push,) = both
        assert (push["sync-direction"], push["remote"], push["remote-store"]) == ("push", "offsite", "backups")
        assert push["last-run-state"] == "sync failed with some errors."

    async def test_verify_jobs_show_outdated_after(self, protected_lab: ProxmoxLab) -> None:
        jobs = {j["id"]: j for j in (await pbs_get(protected_lab, "/admin/verify")).json()["data"]}
        assert jobs["v-archive"]["outdated-after"] == 30 and "schedule" not in jobs["v-archive"]
        assert jobs["v-main-daily"]["ns"] == "" and jobs["v-main-daily"]["max-depth"] == 0

    async def test_remotes_and_their_scan_need_remote_audit(self, protected_lab: ProxmoxLab) -> None:
        (remote,) = (await pbs_get(protected_lab, "/config/remote")).json()["data"]
        assert remote["name"] == "offsite" and remote["host"] == "pbs-offsite.lan" and "password" not in remote
        spaces = (await pbs_get(protected_lab, "/config/remote/offsite/scan/backups/namespaces")).json()["data"]
        assert spaces == [{"ns": ""}]
        groups = (await pbs_get(protected_lab, "/config/remote/offsite/scan/backups/groups")).json()["data"]
        assert sorted(g["backup-id"] for g in groups) == ["101", "106", "111"]
        assert all({"last-backup", "backup-count", "files"} <= set(g) for g in groups)
        privileges = (await pbs_get(protected_lab, "/access/permissions", path="/remote")).json()["data"]
        assert privileges["/remote"]["Remote.Audit"] is True
        protected_lab.remote_audit = False
        assert (await pbs_get(protected_lab, "/config/remote")).json()["data"] == []  # filtered, no error
        assert (await pbs_get(protected_lab, "/admin/sync", **{"sync-direction": "all"})).json()["data"] == []
        assert (await pbs_get(protected_lab, "/config/remote/offsite/scan/backups/groups")).status_code == 403
        privileges = (await pbs_get(protected_lab, "/access/permissions", path="/remote")).json()["data"]
        assert "Remote.Audit" not in privileges["/remote"]

    async def test_a_remote_that_cannot_be_reached_fails_the_scan_with_pbs_error(
        self, protected_lab: ProxmoxLab
    ) -> None:
        protected_lab.pbs_remotes["offsite"].unreachable = "error trying to connect: Connection refused"
        response = await pbs_get(protected_lab, "/config/remote/offsite/scan/backups/groups")
        assert response.status_code == 500 and "failed to scan remote 'offsite'" in response.text


class TestPveSimulator:
    async def test_vzdump_jobs_carry_prune_backups_as_an_object(self, lab: ProxmoxLab) -> None:
        lab.vzdump_jobs[0].prune_backups = {"keep-daily": 7, "keep-last": 3}
        app = create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=PVE_SECRET)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pve") as client:
            jobs = (await client.get("/api2/json/cluster/backup", headers=PVE_AUTH)).json()["data"]
        assert jobs[0]["prune-backups"] == {"keep-daily": 7, "keep-last": 3}


# --- the PBS source -----------------------------------------------------------------------------------------------


class TestPbsSource:
    async def test_encryption_and_protection_of_each_snapshot(self, protected_server: SimulatorServer) -> None:
        obs = await poll(PbsSource(pbs_config(protected_server), clock=Clock()))
        by_key: dict[str, list[Any]] = {}
        for s in obs.all_snapshots():
            by_key.setdefault(s.target_key, []).append(s)
        assert all(s.encrypted is True for s in by_key["guest:101"] if s.finished)
        assert all(s.encrypted is False for s in by_key["guest:102"] if s.finished)
        assert sum(s.protected for s in by_key["guest:101"]) == 1
        assert not any(s.protected for s in by_key["guest:102"])

    def test_the_typed_and_the_lenient_decoders_agree(self) -> None:
        files = [
            {"filename": "root.pxar.didx", "crypt-mode": "sign-only", "size": 10},
            {"filename": "index.json.blob", "crypt-mode": "sign-only", "size": 498},
            {"filename": "client.log.blob"},
        ]
        base = {"backup-type": "ct", "backup-id": "7", "backup-time": 1736906405, "size": 508, "protected": True}
        encrypted = [{**f, "crypt-mode": "encrypt"} if f["filename"] == "root.pxar.didx" else f for f in files]
        for given, expected in ((files, False), (encrypted, True)):  # signed-only: not encrypted, fingerprint or not
            item = {**base, "files": given, "fingerprint": "a1:b2"}
            lenient = parse_snapshot(item, source="p", store="s", ns="", path="/x", error=ValueError)[2]  # type: ignore[arg-type]
            body = httpx.Response(200, json={"data": [item]}).content
            typed_page = SnapshotDecoder("p").page(body, store="s", ns="")
            assert typed_page is not None
            typed = typed_page[0].snapshots[0]
            assert (lenient.encrypted, typed.encrypted) == (expected, expected)
            assert lenient.protected is typed.protected is True
        unfinished = {k: v for k, v in base.items() if k != "size"} | {"files": [{"filename": "root.pxar.didx"}]}
        assert (
            parse_snapshot(unfinished, source="p", store="s", ns="", path="/x", error=ValueError)[2].encrypted is None
        )  # type: ignore[arg-type]

    @pytest.mark.parametrize("seed", range(8))
    def test_a_typed_page_equals_the_lenient_reading_of_each_item(self, seed: int) -> None:
        """Groups one after another or interleaved, ids PBS would refuse: the typed page gives what the lenient
        parser gives item by item."""
        rng = random.Random(seed)
        groups = [("vm", "100"), ("ct", "100"), ("vm", "2"), ("host", "nas"), ("ct", ""), ("", "")]
        upids = ["UPID:pbs:00000001:00000002:00000003:6790A0C5:verify:s:root@pam:", "not a upid"]
        items = []
        for _ in range(rng.randrange(1, 60)):
            group = rng.choice(groups)
            item: dict[str, Any] = {"backup-type": group[0], "backup-id": group[1], "protected": rng.random() < 0.2}
            item["backup-time"] = rng.choice(
                [1736906405, 1736906405 + 86400, rng.randrange(2**31), 2**62, -86400, -1, 253402300799, 253402300800]
            )
            if rng.random() < 0.8:
                item["size"] = rng.randrange(10**6)
                # Archives whose sizes differ from one snapshot to the next (as on a real PBS), the two files
                # outside the encryption, archives of mixed or no crypt-mode, and none at all.
                files = [
                    {
                        "filename": name,
                        "crypt-mode": rng.choice(["encrypt", "none", "sign-only"]),
                        "size": rng.randrange(10**9),
                    }
                    for name in rng.sample(
                        ["root.pxar.didx", "catalog.pcat1.didx", "index.json.blob"], rng.randrange(4)
                    )
                ]
                if rng.random() < 0.3:
                    files.append({"filename": "client.log.blob", "size": rng.randrange(10**4)})
                if rng.random() < 0.2:
                    files.append({"filename": "drive-scsi1.img.fidx"})
                if rng.random() < 0.5:
                    files = [
                        {**file, "crypt-mode": "encrypt"} if file["filename"].endswith("idx") else file
                        for file in files
                    ]
                item["files"] = files
            if rng.random() < 0.5:
                item["verification"] = {"state": rng.choice(["ok", "failed"]), "upid": rng.choice(upids)}
            if rng.random() < 0.3:
                item["comment"] = rng.choice(["db", ""])
            items.append(item)
        if rng.random() < 0.5:
            items.sort(key=lambda i: (i["backup-type"], i["backup-id"]))  # as PBS lists them

        def lenient(item: dict[str, Any]) -> tuple[str, str, Any, str | None] | None:
            try:
                return parse_snapshot(item, source="p", store="s", ns="n", path="/x", error=ValueError)  # type: ignore[arg-type]
            except ValueError:
                return None

        expected = [found for found in map(lenient, items) if found is not None]
        body = httpx.Response(200, json={"data": items}).content
        typed = SnapshotDecoder("p").page(body, store="s", ns="n")
        assert typed == listed_groups(expected)
        assert [s for group in typed or [] for s in group.snapshots] == [s for _, _, s, _ in expected]

    def test_ids_and_times_of_a_typed_page_are_the_lenient_ones_at_every_edge_of_a_day(self) -> None:
        """A series puts an id's time together from the texts of its day and its time of day, kept from one page
        to the next and let go when there are too many: every id and instant as the lenient parser gives."""
        edges = [0, 86399, 86400, 951782400, 1835395199, 1835395200, 253402300799]  # 1970, 29 Feb 2000/2028, 9999
        # More times of day than the cache keeps (7 s apart, wrapping past midnight), on three days.
        kept = _clock_text.cache_info().maxsize
        assert kept is not None
        spread = [1736906405 + 86400 * (second % 3) + 7 * second for second in range(kept + 2000)]
        decoder = SnapshotDecoder("p")
        assert len({at % 86400 for at in spread}) > kept
        for times in (edges, spread, edges):
            items = [{"backup-type": "ct", "backup-id": str(i % 7), "backup-time": at} for i, at in enumerate(times)]
            typed = decoder.page(httpx.Response(200, json={"data": items}).content, store="s", ns="n")
            lenient = [
                parse_snapshot(item, source="p", store="s", ns="n", path="/x", error=ValueError) for item in items
            ]  # type: ignore[arg-type]
            assert typed is not None
            assert [(s.snapshot_id, s.taken_at) for group in typed for s in group.snapshots] == [
                (s.snapshot_id, s.taken_at) for _, _, s, _ in lenient
            ]
        assert typed[-1].snapshots[-1].snapshot_id == "s/n/ct/6/9999-12-31T23:59:59Z"

    async def test_verify_outdated_after_and_prune_keep_are_read(self, protected_server: SimulatorServer) -> None:
        obs = await poll(PbsSource(pbs_config(protected_server), clock=Clock()))
        jobs = {j.key: j for j in obs.jobs}
        assert jobs["pbs1/verify/v-archive"].outdated_after == timedelta(days=30)
        assert jobs["pbs1/verify/v-main-daily"].outdated_after == timedelta(days=30)
        keep = jobs["pbs1/prune/prune-main-daily"].keep
        assert keep == (("keep-last", 3), ("keep-daily", 14), ("keep-weekly", 8))
        assert jobs["pbs1/sync/s-offsite"].kind is JobKind.SYNC

    async def test_a_push_job_gives_each_group_its_offsite_copy(self, protected_server: SimulatorServer) -> None:
        obs = await poll(PbsSource(pbs_config(protected_server), clock=Clock()))
        copies = {c.target_key: c for c in obs.remote_copies}
        assert set(copies) == {"guest:101", "guest:106", "guest:111"}
        vault, glance, ntfy = copies["guest:101"], copies["guest:106"], copies["guest:111"]
        assert vault.location == "offsite:backups" and vault.endpoint == "pbs-offsite.lan:8007/backups"
        assert vault.offsite and vault.job_key == "pbs1/sync/s-offsite"
        newest_local = max(s.taken_at for s in obs.all_snapshots() if s.target_key == "guest:101" and s.finished)
        assert vault.newest_at == newest_local and vault.encrypted is True
        assert glance.newest_at is not None and newest_local - glance.newest_at > 3 * DAY  # its push fails
        assert ntfy.encrypted is False
        assert obs.remotes_visible and obs.endpoint == f"127.0.0.1:{protected_server.port}"
        assert obs.problems == ()

    async def test_the_far_side_is_scanned_again_only_after_the_job_ran(
        self, protected_lab: ProxmoxLab, protected_server: SimulatorServer, clock: Clock
    ) -> None:
        source = PbsSource(pbs_config(protected_server), clock=clock)
        try:
            await source.poll()
            protected_server.app.requests.clear()
            clock.now = NOW + timedelta(minutes=5)
            await source.poll()
            assert not protected_server.app.requests.matching("/scan/")
            job = next(j for j in protected_lab.pbs_jobs if j.id == "s-offsite")
            task = protected_lab.add_pbs_task("syncjob", "offsite:backups:main::s-offsite", clock.now, clock.now)
            job.last_upid, job.last_endtime = task.upid, task.endtime
            clock.now = NOW + timedelta(minutes=10)
            await source.poll()
            assert protected_server.app.requests.matching("/scan/backups/groups")
        finally:
            await source.aclose()

    async def test_a_sync_list_that_fails_once_keeps_the_copies_it_had(
        self, protected_server: SimulatorServer, clock: Clock
    ) -> None:
        source = PbsSource(pbs_config(protected_server), clock=clock)
        try:
            before = {c.target_key: c.newest_at for c in (await source.poll()).remote_copies}
            protected_server.app.faults.missing_paths = {"/admin/sync"}
            clock.now = NOW + timedelta(minutes=5)
            failed = await source.poll()
            assert any("sync jobs" in p for p in failed.problems)
            assert {c.target_key: c.newest_at for c in failed.remote_copies} == before != {}
        finally:
            protected_server.app.faults.missing_paths = set()
            await source.aclose()

    async def test_without_remote_audit_the_source_says_it_cannot_see_its_remotes(
        self, protected_lab: ProxmoxLab, protected_server: SimulatorServer
    ) -> None:
        protected_lab.remote_audit = False
        obs = await poll(PbsSource(pbs_config(protected_server), clock=Clock()))
        assert obs.remotes_visible is False and obs.remote_copies == ()
        assert not any(j.kind is JobKind.SYNC for j in obs.jobs)  # PBS hides them: an empty list, no error

    async def test_a_remote_that_does_not_answer_leaves_the_copies_unknown(
        self, protected_lab: ProxmoxLab, protected_server: SimulatorServer
    ) -> None:
        protected_lab.pbs_remotes["offsite"].unreachable = "error trying to connect: Connection refused"
        obs = await poll(PbsSource(pbs_config(protected_server), clock=Clock()))
        assert obs.remote_copies and all(c.newest_at is None for c in obs.remote_copies)
        assert any("remote 'offsite'" in p and "Connection refused" in p for p in obs.problems)

    async def test_offsite_setting_names_datastores_and_remotes(self, protected_server: SimulatorServer) -> None:
        obs = await poll(PbsSource(pbs_config(protected_server, offsite=["main/archive"]), clock=Clock()))
        assert obs.offsite_locations == ("main/archive",)
        assert not any(c.offsite for c in obs.remote_copies)  # a list names what is offsite: not this remote
        own = await poll(PbsSource(pbs_config(protected_server, offsite=True), clock=Clock()))
        assert set(own.offsite_locations) == {"main", "main/archive"} and not any(c.offsite for c in own.remote_copies)


class TestPullFromARemote:
    async def test_the_originals_on_the_remote_are_a_copy_too(self, clock: Clock) -> None:
        """An offsite PBS pulling from home: its own store is the offsite copy, home's groups the other one."""
        home = PbsDatastore("home")
        source_lab = ProxmoxLab()
        source_lab.datastores["main"] = PbsDatastore("main")
        for days in range(5, 0, -1):
            source_lab.add_snapshot("main", "", "ct", "101", NOW - days * DAY, 10**9)
        sync_snapshots(source_lab.datastores["main"], "", home, "", {"ct/101"})
        lab = ProxmoxLab(clock=clock)
        lab.datastores["copies"] = PbsDatastore("copies")
        sync_snapshots(home, "", lab.datastores["copies"], "", {"ct/101"}, until=int((NOW - 2 * DAY).timestamp()))
        lab.pbs_remotes["home"] = PbsRemote("home", "pbs.home.lan", port=8007, datastores={"main": home})
        lab.pbs_jobs.append(
            PbsJob("sync", "s-home", "copies", "21:00", options={"remote": "home", "remote-store": "main"})
        )
        with SimulatorServer(create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)) as server:
            obs = await poll(PbsSource(pbs_config(server, offsite=True), clock=clock))
        (copy,) = obs.remote_copies
        assert copy.location == "home:main" and copy.endpoint == "pbs.home.lan:8007/main"
        assert copy.offsite is False  # `offsite: true` marks this PBS's own stores: home is not offsite
        assert copy.newest_at == NOW - DAY and obs.offsite_locations == ("copies",)
        board = evaluate(
            services=[],
            sources=[SourceState("pbs1", "pbs", timedelta(minutes=5), obs, NOW, NOW)],
            history=HistoryView(),
            now=NOW,
            display_tz="UTC",
        )
        (verdict,) = board.verdicts
        assert verdict.protection is not None
        assert (verdict.protection.copy_count, verdict.protection.offsite_count) == (2, 1)
        assert verdict.protection.offsite_lag == 2 * DAY  # the local copy lags home's newest


# --- two clusters reusing VMIDs in one PBS ------------------------------------------------------------------------


def two_clusters(clock: Clock) -> ProxmoxLab:
    """Two PVE clusters with a guest 101 each, backing up into the root and into namespace site-b of one PBS."""
    lab = ProxmoxLab(clock=clock)
    lab.datastores["main"] = PbsDatastore("main", namespaces={"": {}, "site-b": {}})
    for ns, name, hours in (("", "vault", 3), ("site-b", "wiki", 5)):
        for days in range(3, 0, -1):
            at = NOW - days * DAY - timedelta(hours=hours)
            lab.add_snapshot("main", ns, "ct", "101", at, 10**9, comment=name)
            lab.add_pbs_task("backup", "main:ct/101", at, at + timedelta(minutes=2))
    lab.guests = [Guest(101, "lxc", "wiki")]  # the PVE cluster in site-b
    lab.vzdump_jobs = [VzdumpJob("nightly", "05:00", vmids=(101,), storage="pbs-main")]
    return lab


class TestNamespaces:
    async def test_a_cluster_naming_its_namespace_keeps_its_guests_apart(self, clock: Clock) -> None:
        lab = two_clusters(clock)
        with (
            SimulatorServer(create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)) as pbs_server,
            SimulatorServer(create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=PVE_SECRET)) as pve_server,
        ):
            config = pbs_config(pbs_server)
            config._guest_namespaces = {"site-b": "pve1"}  # what the config loader derives from pbs_namespace
            pbs_obs = await poll(PbsSource(config, clock=clock))
            pve_obs = await poll(PveSource(pve_config(pve_server, pbs_namespace="site-b"), clock=clock))
            plain = await poll(PbsSource(pbs_config(pbs_server), clock=clock))
        assert sorted(t.key for t in pbs_obs.targets) == ["guest:101", "guest:pve1/101"]
        assert {t.key for t in pve_obs.targets} == {"guest:pve1/101"}
        assert pve_obs.jobs[0].target_keys == ("guest:pve1/101",)
        # a backup task names no namespace: with 101 in two of them it belongs to neither guest
        assert {r.target_key for r in pbs_obs.runs} == {None}
        assert {t.key for t in plain.targets} == {"guest:101"}  # the simple case unchanged
        states = [
            SourceState("pbs1", "pbs", timedelta(minutes=5), pbs_obs, NOW, NOW),
            SourceState("pve1", "pve", timedelta(minutes=5), pve_obs, NOW, NOW),
        ]
        board = evaluate(services=[], sources=states, history=HistoryView(), now=NOW, display_tz="UTC")
        counts = {v.name: v.snapshot_count for v in board.verdicts}
        assert counts == {"vault": 3, "wiki": 3}

    def test_the_config_gives_each_pbs_source_its_clusters_namespaces(self) -> None:
        from backup_glance.config import parse_config

        text = """
sources:
  - {name: pbs-a, type: pbs, url: "https://a:8007", token_id: 'a@pbs!t', token_secret: s}
  - {name: pbs-b, type: pbs, url: "https://b:8007", token_id: 'a@pbs!t', token_secret: s}
  - {name: pve-b, type: pve, url: "https://p:8006", token_id: 'a@pbs!t', token_secret: s,
     pbs_namespace: {pbs-a: site-b, pbs-b: b-copy}}
  - {name: pve-c, type: pve, url: "https://q:8006", token_id: 'a@pbs!t', token_secret: s, pbs_namespace: site-c}
"""
        config = parse_config(text)
        a, b = (s for s in config.sources if isinstance(s, PbsSourceConfig))
        assert a.guest_namespaces == {"site-b": "pve-b", "site-c": "pve-c"}
        assert b.guest_namespaces == {"b-copy": "pve-b", "site-c": "pve-c"}


def test_vzdump_prune_backups_and_protected_files_reach_the_pve_source(lab: ProxmoxLab) -> None:
    from backup_glance.sources._pve_wire import file_snapshot, parse_job

    job = parse_job(
        "pve", 0, {"id": "j", "schedule": "04:00", "prune-backups": {"keep-last": 3, "keep-daily": 7}}, [], "UTC"
    )
    assert job.keep == (("keep-last", 3), ("keep-daily", 7))
    item = {"volid": "local:backup/x.tar.zst", "vmid": 101, "ctime": 1736658000, "size": 5, "protected": 1}
    snapshot = file_snapshot("pve", "local", item)
    assert snapshot is not None and snapshot.protected and snapshot.encrypted is False
    assert datetime.fromtimestamp(1736658000, UTC) == snapshot.taken_at
