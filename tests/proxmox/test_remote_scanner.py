"""The far side of a PBS sync job, poll after poll: `RemoteScanner` builds a (job, namespace)'s copies again only
when what they are made of changed, and hands back the very same tuple while nothing did. A changed scan, a job
that ran, a new local snapshot (encryption is read from it) or a new local group must show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_glance.errors import SourceError, SourceProtocolError
from backup_glance.model import RemoteCopy, Snapshot
from backup_glance.sources._pbs_remotes import SCAN_EVERY, RemoteScanner

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GroupKey = tuple[str, str, str, str]


class FarSide:
    """What the local PBS answers: one push job store0 -> offsite:backups, the remote's groups, and who asked."""

    def __init__(self) -> None:
        self.marker = "UPID:1"
        self.groups: dict[str, int] = {"101": int((NOW - timedelta(hours=3)).timestamp())}
        self.reachable = True
        self.asked: list[str] = []

    def sync_items(self) -> list[dict[str, Any]]:
        return [
            {
                "id": "s-offsite",
                "store": "store0",
                "remote": "offsite",
                "remote-store": "backups",
                "sync-direction": "push",
                "last-run-upid": self.marker,
            }
        ]

    async def get(self, path: str, _type: type[Any], params: dict[str, Any] | None) -> Any:
        self.asked.append(path)
        if path == "/access/permissions":
            return {"/remote": {"Remote.Audit": True}}
        if path == "/config/remote":
            return [{"name": "offsite", "host": "pbs-offsite.lan"}]
        if not self.reachable:
            raise SourceProtocolError("error trying to connect", source="pbs", kind="pbs", http_status=400)
        if path.endswith("/namespaces"):
            return [{"ns": ""}]
        assert path.endswith("/groups")
        return [
            {"backup-type": "vm", "backup-id": vmid, "last-backup": last, "backup-count": 3}
            for vmid, last in self.groups.items()
        ]


async def partial(problems: list[str], what: str, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        return await call(*args)
    except SourceError as exc:
        problems.append(f"{what}: {exc}")
        return None


def snapshots_of(vmid: str, *, encrypted: bool, hours_ago: tuple[int, ...] = (27, 3)) -> tuple[Snapshot, ...]:
    return tuple(
        Snapshot(
            target_key=f"guest:{vmid}",
            source="pbs",
            snapshot_id=f"store0//vm/{vmid}/{hours}",
            taken_at=NOW - timedelta(hours=hours),
            encrypted=encrypted,
            location="store0",
        )
        for hours in hours_ago
    )


async def refresh(
    scanner: RemoteScanner, far: FarSide, local: dict[GroupKey, tuple[Snapshot, ...]], now: datetime = NOW
) -> tuple[RemoteCopy, ...]:
    problems: list[str] = []
    await scanner.refresh(far.get, partial, far.sync_items(), local, local, now, problems)
    return scanner.copies


async def test_a_quiet_poll_hands_back_the_same_copies_without_asking_the_far_side() -> None:
    far, scanner = FarSide(), RemoteScanner("pbs", None, {})
    local = {("store0", "", "vm", "101"): snapshots_of("101", encrypted=True)}
    first = await refresh(scanner, far, local)
    assert [(c.target_key, c.encrypted, c.newest_at) for c in first] == [("guest:101", True, NOW - timedelta(hours=3))]
    far.asked.clear()
    again = await refresh(scanner, far, dict(local), NOW + timedelta(minutes=5))
    assert again is first
    assert not any("/scan/" in path for path in far.asked)


async def test_a_changed_scan_changes_the_copies() -> None:
    far, scanner = FarSide(), RemoteScanner("pbs", None, {})
    local = {
        ("store0", "", "vm", "101"): snapshots_of("101", encrypted=True),
        ("store0", "", "vm", "102"): snapshots_of("102", encrypted=False),
    }
    first = await refresh(scanner, far, local)
    assert {c.target_key for c in first} == {"guest:101"}
    far.marker = "UPID:2"  # the push job ran again: it pushed 102 as well, and 101's newest
    far.groups = {"101": int((NOW - timedelta(minutes=30)).timestamp()), "102": int(NOW.timestamp()) - 1800}
    second = await refresh(scanner, far, local, NOW + timedelta(minutes=5))
    assert {c.target_key: c.newest_at for c in second} == {
        "guest:101": NOW - timedelta(minutes=30),
        "guest:102": NOW - timedelta(minutes=30),
    }
    assert {c.target_key: c.encrypted for c in second} == {"guest:101": True, "guest:102": False}


async def test_the_same_scan_read_again_keeps_the_copies() -> None:
    far, scanner = FarSide(), RemoteScanner("pbs", None, {})
    local = {("store0", "", "vm", "101"): snapshots_of("101", encrypted=True)}
    first = await refresh(scanner, far, local)
    far.asked.clear()
    later = NOW + SCAN_EVERY + timedelta(minutes=1)  # scanned again, same answer
    assert await refresh(scanner, far, local, later) is first
    assert any(path.endswith("/groups") for path in far.asked)


async def test_a_new_local_snapshot_is_read_for_the_encryption_of_the_far_copy() -> None:
    """The far side holds what was synced; a group's snapshots read again (a new tuple) are looked at again."""
    far, scanner = FarSide(), RemoteScanner("pbs", None, {})
    key = ("store0", "", "vm", "101")
    first = await refresh(scanner, far, {key: snapshots_of("101", encrypted=False)})
    assert [c.encrypted for c in first] == [False]
    # The group was read again: now its snapshot up to the far side's last-backup is encrypted.
    second = await refresh(scanner, far, {key: snapshots_of("101", encrypted=True)}, NOW + timedelta(minutes=5))
    assert second is not first and [c.encrypted for c in second] == [True]


async def test_an_unanswered_scan_follows_the_local_groups() -> None:
    far, scanner = FarSide(), RemoteScanner("pbs", None, {})
    far.reachable = False
    local = {("store0", "", "vm", "101"): snapshots_of("101", encrypted=True)}
    first = await refresh(scanner, far, local)
    assert [(c.target_key, c.newest_at) for c in first] == [("guest:101", None)]
    local[("store0", "", "vm", "102")] = snapshots_of("102", encrypted=False)  # a new group appeared locally
    second = await refresh(scanner, far, local, NOW + timedelta(minutes=5))
    assert [(c.target_key, c.newest_at, c.encrypted) for c in second] == [
        ("guest:101", None, True),
        ("guest:102", None, False),
    ]
    assert await refresh(scanner, far, dict(local), NOW + timedelta(minutes=10)) is second
