"""PBS lists that fail or lie, over real HTTPS: what could not be read is said and stays unknown, never green.

A namespace or group list that fails on a first poll, one namespace PBS could not have written, a snapshot
listed twice with other facts, a remote scan that fails: each costs only itself, is named in a problem line,
and leaves what it hides unread (health's "unknown"), not empty (health's "fine with nothing")."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import NOW, PBS_SECRET, PBS_TOKEN_ID, Clock, pbs_config
from rewriting import Rewriting, Rule, Status

from backup_glance.errors import SourceError, SourceProtocolError
from backup_glance.model import Observation, Verification
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import ProxmoxLab
from backup_glance.sources._pbs_remotes import RETRY_FAILED, RemoteScanner
from backup_glance.sources.pbs import PbsSource

GUESTS = [f"guest:{i}" for i in (101, 102, 103, 104, 105, 106, 110, 111, 112, 113)]  # all back up to `main`


@pytest.fixture
def rules() -> dict[str, Rule]:
    return {}


@pytest.fixture
def server(lab: ProxmoxLab, rules: dict[str, Rule]) -> Iterator[SimulatorServer]:
    app = create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    with SimulatorServer(Rewriting(app, rules)) as running:
        yield running


async def first_poll(server: SimulatorServer) -> Observation:
    source = PbsSource(pbs_config(server), clock=Clock())
    try:
        return await source.poll()
    finally:
        await source.aclose()


def null(_data: Any) -> None:
    return None


class TestAListThatFailsOnTheFirstPoll:
    @pytest.mark.parametrize("answer", [500, null], ids=["http-500", "data-null"])
    @pytest.mark.parametrize("path", ["/admin/datastore/main/namespace", "/admin/datastore/main/groups"])
    async def test_the_guests_its_backup_tasks_name_are_unread_not_empty(
        self, server: SimulatorServer, rules: dict[str, Rule], path: str, answer: Rule
    ) -> None:
        rules[path] = answer
        obs = await first_poll(server)
        assert obs.problems and "datastore 'main'" in obs.problems[0]
        assert not obs.all_snapshots()  # nothing of the store was read ...
        assert dict(obs.unread) == dict.fromkeys(GUESTS)  # ... so its guests are never read, not backup-less

    async def test_a_namespace_that_fails_leaves_out_the_guests_read_in_another(
        self, lab: ProxmoxLab, server: SimulatorServer, rules: dict[str, Rule]
    ) -> None:
        lab.datastores["main"].namespaces["b"] = {}
        lab.add_pbs_task("backup", "main:vm/150", NOW - timedelta(hours=2), NOW - timedelta(hours=1), "OK")

        def groups(data: Any) -> Any:  # the root's list is honest, the one of "b" fails
            return data or Status(500)

        rules["/admin/datastore/main/groups"] = groups
        obs = await first_poll(server)
        assert len(obs.problems) == 1 and "namespace 'b'" in obs.problems[0]
        assert dict(obs.unread) == {"guest:150": None}  # backed up to `main`, in no group read: in "b", maybe
        assert {t.key for t in obs.targets} == set(GUESTS)


class TestANamespacePbsCouldNotHaveWritten:
    async def test_it_costs_that_namespace_only(
        self, lab: ProxmoxLab, server: SimulatorServer, rules: dict[str, Rule]
    ) -> None:
        lab.datastores["main"].namespaces["a"] = {}
        lab.add_snapshot("main", "a", "host", "files", NOW - timedelta(hours=3), 10**9)
        rules["/admin/datastore/main/namespace"] = lambda data: [*data, {"ns": None}, {"ns": "a"}]
        obs = await first_poll(server)
        (problem,) = obs.problems
        assert "/admin/datastore/main/namespace: an item has no 'ns'" in problem and problem.endswith("left out")
        assert {t.key for t in obs.targets} == {*GUESTS, "pbs-host:pbs1/files"}  # every other namespace is read
        assert {s.location for s in obs.all_snapshots()} == {"main", "main/a"}
        assert obs.unread == ()


def listed_twice(copy_first: bool) -> Rule:
    """Vault's newest snapshot listed again, smaller and failed: before or after the honest record."""

    def rule(data: Any) -> Any:
        newest = max((item for item in data if item["backup-id"] == "101"), key=lambda item: item["backup-time"])
        copy = {**newest, "size": 5, "verification": {"state": "failed", "upid": None}}
        at = data.index(newest)
        return [*data[:at], *([copy, newest] if copy_first else [newest, copy]), *data[at + 1 :]]

    return rule


class TestASnapshotListedTwice:
    @pytest.mark.parametrize("copy_first", [True, False], ids=["copy-first", "copy-second"])
    async def test_it_is_named_and_its_worse_record_kept_in_either_order(
        self, server: SimulatorServer, rules: dict[str, Rule], copy_first: bool
    ) -> None:
        rules["/admin/datastore/main/snapshots"] = listed_twice(copy_first)
        obs = await first_poll(server)
        vault = sorted((s for s in obs.all_snapshots() if s.target_key == "guest:101"), key=lambda s: s.taken_at)
        assert len({s.snapshot_id for s in vault}) == len(vault)
        assert (vault[-1].verification, vault[-1].size_bytes) == (Verification.FAILED, 5)
        (problem,) = obs.problems
        assert vault[-1].snapshot_id in problem and "listed 2 times" in problem


class FailingFarSide:
    """A push job whose remote never answers its scan."""

    def __init__(self) -> None:
        self.asked = 0
        self.sync_items = [
            {"id": "s-off", "store": "main", "remote": "off", "remote-store": "b", "sync-direction": "push"},
        ]

    async def get(self, path: str, _type: type[Any], _params: dict[str, Any] | None) -> Any:
        if path == "/access/permissions":
            return {"/remote": {"Remote.Audit": True}}
        if path == "/config/remote":
            return [{"name": "off", "host": "pbs-off.lan"}]
        self.asked += 1
        raise SourceProtocolError("internal error", source="pbs1", kind="pbs", http_status=500)


async def partial(problems: list[str], what: str, call: Callable[..., Any], *args: Any) -> Any:
    try:
        return await call(*args)
    except SourceError as exc:
        problems.append(f"{what}: {exc}")
        return None


class TestARemoteScanThatFails:
    async def test_it_is_said_at_every_poll_and_asked_again_soon(self) -> None:
        far = FailingFarSide()
        scanner = RemoteScanner("pbs1", None, {})
        key = ("main", "", "vm", "101")

        async def poll(at: datetime) -> list[str]:
            problems: list[str] = []
            await scanner.refresh(far.get, partial, far.sync_items, [key], {key: ()}, at, problems)
            return problems

        first = await poll(NOW)
        assert len(first) == 1 and "remote 'off'" in first[0] and far.asked == 1
        assert await poll(NOW + timedelta(minutes=1)) == first  # not asked again yet, still said
        assert far.asked == 1 and [c.newest_at for c in scanner.copies] == [None]
        assert await poll(NOW + RETRY_FAILED) == first
        assert far.asked == 2  # asked again well before a good scan would be


def commented(data: Any) -> Any:
    """Every third snapshot of a group with a note; the newest noted one's is the group's name when the group
    list says none."""
    return [
        {**item, "comment": f"note {item['backup-time'] % 97}"} if item["backup-time"] % 3 else item for item in data
    ]


def without_comments(data: Any) -> Any:
    return [{key: value for key, value in item.items() if key != "comment"} for item in data]


class TestASnapshotListInAnyOrder:
    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("interleaved", [False, True], ids=["grouped", "interleaved"])
    @pytest.mark.parametrize("lenient", [False, True], ids=["typed", "lenient"])
    async def test_reads_as_the_same_list_in_pbs_order(
        self, server: SimulatorServer, rules: dict[str, Rule], seed: int, interleaved: bool, lenient: bool
    ) -> None:
        """A group's snapshots in any order (PBS lists a group's directory as it reads it), and groups interleaved
        (a list PBS would not write): the same snapshots in time order and the same names (the newest note) as the
        list in time order. A record of another shape sends the whole list down the lenient path, which must group
        as the typed one does."""
        rng = random.Random(seed)
        odd = [{"backup-type": "vm", "backup-id": "101", "backup-time": "soon"}] if lenient else []
        rules["/admin/datastore/main/groups"] = without_comments
        rules["/admin/datastore/main/snapshots"] = lambda data: [*commented(data), *odd]
        in_order = await first_poll(server)

        def shuffled(data: Any) -> Any:
            items = [*commented(data), *odd]
            rng.shuffle(items)
            return items if interleaved else sorted(items, key=lambda item: (item["backup-type"], item["backup-id"]))

        rules["/admin/datastore/main/snapshots"] = shuffled
        shuffled_poll = await first_poll(server)
        assert len(in_order.all_snapshots()) > 100 and any(t.name.startswith("note ") for t in in_order.targets)
        assert shuffled_poll.all_snapshots() == in_order.all_snapshots()
        assert [(t.key, t.name) for t in shuffled_poll.targets] == [(t.key, t.name) for t in in_order.targets]
        assert shuffled_poll.problems == in_order.problems
        assert bool(in_order.problems) is lenient
