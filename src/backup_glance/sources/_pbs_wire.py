"""PBS wire items -> model records: groups, snapshots, job status items, tasks, datastore usage.

Sits under `sources/` next to `pbs.py`, which does the requests. Pure functions over decoded JSON; the PBS field
names (kebab-case, snake_case `worker_type`) stop here. Field presence follows
proxmox/proxmox-backup `pbs-api-types/src/datastore.rs` and `jobs.rs`. No I/O, no verdicts.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import groupby
from operator import attrgetter
from typing import Any

import msgspec

from ..clean import quoted
from ..errors import SourceProtocolError
from ..model import (
    LAST_SECOND,
    NO_SIZE,
    NOT_VERIFIED,
    ODD_SIZE,
    Datastore,
    GuestRef,
    Job,
    JobKind,
    JobRun,
    ScheduleRef,
    Snapshot,
    SnapshotSeries,
    Target,
    Verification,
    column_size,
    id_prefix_of,
    snapshot_flags,
)
from ._bounds import LATEST_FORECAST, MAX_BYTES
from ._proxmox import as_int, epoch, task_outcome, upid_started_at
from ._util import as_name, gc_paused, guest_key, vmid_of

ErrorFactory = Callable[[str], SourceProtocolError]
_GUEST_TYPES = {"vm": "qemu", "ct": "lxc"}


def require(item: Any, key: str, path: str, error: ErrorFactory) -> Any:
    if not isinstance(item, dict) or item.get(key) is None:
        raise error(f"unexpected payload on {path}: an item has no '{key}'")
    return item[key]


def require_name(item: Any, key: str, path: str, error: ErrorFactory) -> str:
    """A name or id: text (or a number, as a VMID may come), never a list or an object shown as Python writes
    it ("ct/['g1']"): such a record costs itself."""
    value = require(item, key, path, error)
    name = as_name(value)
    if name is None:
        raise error(f"unexpected payload on {path}: '{key}' is no name ({type(value).__name__})")
    return name


def target_key(source: str, backup_type: str, backup_id: str, cluster: str | None = None) -> str:
    """vm/ct groups with a numeric id are PVE guests ("guest:101" everywhere, "guest:<cluster>/101" in a
    namespace a PVE source claims with `pbs_namespace`); anything else stays PBS's own."""
    if backup_type in _GUEST_TYPES and (vmid := vmid_of(backup_id)) is not None:
        return guest_key(vmid, cluster)
    if backup_type == "host":
        return f"pbs-host:{source}/{backup_id}"
    return f"pbs-group:{source}/{backup_type}/{backup_id}"


def make_target(source: str, backup_type: str, backup_id: str, name: str, cluster: str | None = None) -> Target:
    key = target_key(source, backup_type, backup_id, cluster)
    vmid = vmid_of(backup_id) if key.startswith("guest:") else None
    if vmid is not None:
        guest = GuestRef(vmid, _GUEST_TYPES[backup_type])
        return Target(key=key, source=source, name=name, kind="guest", guest=guest)
    return Target(key=key, source=source, name=name, kind="host" if backup_type == "host" else "group")


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the cheap group list says; a change in either field means the snapshot list changed."""

    last_backup: int
    count: int
    comment: str | None


def parse_group(item: Any, path: str, error: ErrorFactory) -> tuple[str, str, GroupState]:
    backup_type = require_name(item, "backup-type", path, error)
    backup_id = require_name(item, "backup-id", path, error)
    last_backup = as_int(require(item, "last-backup", path, error))
    count = as_int(require(item, "backup-count", path, error))
    if last_backup is None or count is None:
        raise error(f"unexpected payload on {path}: 'last-backup'/'backup-count' are not integers")
    comment = item.get("comment")
    return backup_type, backup_id, GroupState(last_backup, count, comment if isinstance(comment, str) else None)


class _GroupItem(msgspec.Struct, rename="kebab", gc=False):
    backup_type: str
    backup_id: str
    last_backup: int
    backup_count: int
    comment: str | None = None


class _GroupPage(msgspec.Struct, gc=False):
    data: list[_GroupItem]


_GROUP_PAGE = msgspec.json.Decoder(_GroupPage)


def decode_group_page(body: bytes) -> list[tuple[str, str, GroupState]] | None:
    """`parse_group` over a whole group list, decoded typed (every poll reads every namespace's list); None when
    an item is not as the API documents it, and the caller takes the lenient path, item by item."""
    try:
        items = _GROUP_PAGE.decode(body).data
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return [(i.backup_type, i.backup_id, GroupState(i.last_backup, i.backup_count, i.comment)) for i in items]


_TAKEN_AT = attrgetter("taken_at")


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# Files outside the encryption: the manifest (signed at most) and the client log (reference: protection).
_NOT_ENCRYPTED_FILES = frozenset({"index.json.blob", "client.log.blob"})


class ArchiveFile(msgspec.Struct, rename="kebab", gc=False):
    """One of a snapshot's `files`, as far as its encryption goes."""

    filename: str
    crypt_mode: str | None = None


def files_encrypted(files: Iterable[ArchiveFile], finished: bool) -> bool | None:
    """PVE's rule: a snapshot is encrypted when every file except `index.json.blob` and `client.log.blob` has
    crypt-mode "encrypt" (`sign-only` and `none` are not; the snapshot's `fingerprint` is no proof, signed-only
    snapshots carry one too). None while unfinished (names only) or when there is nothing to tell by.

    >>> manifest = ArchiveFile("index.json.blob", "sign-only")
    >>> files_encrypted([ArchiveFile("drive-scsi0.img.fidx", "encrypt"), manifest], True)
    True
    >>> files_encrypted([ArchiveFile("root.pxar.didx", "sign-only"), manifest], True)
    False
    >>> files_encrypted([ArchiveFile("index.json.blob", "encrypt")], True) is None
    True
    """
    if not finished:
        return None
    encrypted = None
    for file in files:
        if file.filename not in _NOT_ENCRYPTED_FILES:
            if file.crypt_mode != "encrypt":
                return False
            encrypted = True
    return encrypted


def _wire_files(raw: Any) -> list[ArchiveFile]:
    files = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            mode = entry.get("crypt-mode")
            files.append(ArchiveFile(entry["filename"], mode if isinstance(mode, str) else None))
    return files


@dataclass(slots=True)
class ListedGroup:
    """One group's snapshots as a snapshot list gives them, in columns (see `SnapshotSeries`), with what `pbs.py`
    needs to know of them at once."""

    backup_type: str
    backup_id: str
    source: str
    target_key: str
    location: str
    id_prefix: str
    times: array[int] = field(default_factory=lambda: array("q"))
    sizes: array[int] = field(default_factory=lambda: array("Q"))
    verified: array[int] = field(default_factory=lambda: array("q"))
    flags: bytearray = field(default_factory=bytearray)
    # Each backup time later than the one before: already in time order, each once (as PBS lists them), so the
    # 600,000 snapshots of a big first poll are neither sorted nor checked for repeats again.
    in_order: bool = True
    comment: tuple[int, str] | None = None  # of its newest snapshot that has one (the first of equal times)

    @classmethod
    def of(cls, backup_type: str, backup_id: str, snapshot: Snapshot) -> ListedGroup:
        """An empty listing of the group `snapshot` (read on the lenient path) is of."""
        prefix = id_prefix_of(snapshot.snapshot_id)
        return cls(backup_type, backup_id, snapshot.source, snapshot.target_key, snapshot.location, prefix)

    def add(self, snapshot: Snapshot, comment: str | None) -> None:
        at = int(snapshot.taken_at.timestamp())
        if self.times and self.times[-1] >= at:
            self.in_order = False
        self.times.append(at)
        size, odd = column_size(snapshot.size_bytes)
        self.sizes.append(size)
        verified = snapshot.verified_at
        self.verified.append(NOT_VERIFIED if verified is None else int(verified.timestamp()))
        self.flags.append(
            snapshot_flags(snapshot.verification, snapshot.encrypted, snapshot.protected, snapshot.finished) | odd
        )
        if comment and (self.comment is None or self.comment[0] < at):
            self.comment = (at, comment)

    def merge(self, other: ListedGroup) -> None:
        """The same group listed again further on (a list PBS would not write, or a second page)."""
        self.in_order = False
        self.times.extend(other.times)
        self.sizes.extend(other.sizes)
        self.verified.extend(other.verified)
        self.flags.extend(other.flags)
        if other.comment is not None and (self.comment is None or self.comment[0] < other.comment[0]):
            self.comment = other.comment

    @property
    def snapshots(self) -> list[Snapshot]:
        """The records as listed (in the list's order, repeats and all)."""
        return list(self._columns())

    def series(self, twice: list[str]) -> SnapshotSeries:
        """The group's snapshots in time order, each once: a snapshot listed more than once is named in
        `twice`, and its worse record kept, the same whatever the order of the list."""
        listed = self._columns()
        if self.in_order:
            return listed
        kept = []  # indexes, in time order (a sort keeps a time's records in the list's order)
        for _at, same in groupby(sorted(range(len(self.times)), key=self.times.__getitem__), self.times.__getitem__):
            records = list(same)
            index = min(records, key=lambda i: _worse_first(listed[i]))
            if len(records) > 1:
                twice.append(
                    f"snapshot {listed.snapshot_id(index)} listed {len(records)} times "
                    f"(kept: verification {listed.verification(index)})"
                )
            kept.append(index)
        return SnapshotSeries(
            self.target_key,
            self.source,
            self.location,
            self.id_prefix,
            array("q", (self.times[i] for i in kept)),
            array("Q", (self.sizes[i] for i in kept)),
            array("q", (self.verified[i] for i in kept)),
            bytes(self.flags[i] for i in kept),
        )

    def _columns(self) -> SnapshotSeries:
        return SnapshotSeries(
            self.target_key,
            self.source,
            self.location,
            self.id_prefix,
            self.times,
            self.sizes,
            self.verified,
            bytes(self.flags),
        )


def listed_groups(records: Iterable[tuple[str, str, Snapshot, str | None]]) -> list[ListedGroup]:
    """(backup-type, backup-id, Snapshot, comment) records, as `parse_snapshot` gives them, by group: a group
    listed in two places is two groups here, as in the typed decoder's answer."""
    groups: list[ListedGroup] = []
    group: ListedGroup | None = None
    for backup_type, backup_id, snapshot, comment in records:
        if group is None or backup_id != group.backup_id or backup_type != group.backup_type:
            group = ListedGroup.of(backup_type, backup_id, snapshot)
            groups.append(group)
        group.add(snapshot, comment)
    return groups


# Of two records of one snapshot, the one that says less good is kept (`ListedGroup.series`): a failed verification
# must not hide behind a copy that says ok, whichever PBS lists first.
_WORSE = {Verification.FAILED: 0, Verification.NONE: 1, Verification.OK: 2}


def _worse_first(snapshot: Snapshot) -> tuple[object, ...]:
    """Orders the records of one snapshot, the one kept first, by every fact they may differ in."""
    return (
        _WORSE[snapshot.verification],
        snapshot.finished,
        snapshot.size_bytes is not None,
        snapshot.size_bytes or 0,
        snapshot.verified_at is not None,
        snapshot.verified_at or datetime.min.replace(tzinfo=UTC),
        snapshot.encrypted is None,
        snapshot.encrypted is True,
        snapshot.protected,
    )


def parse_snapshot(
    item: Any, *, source: str, store: str, ns: str, path: str, error: ErrorFactory, cluster: str | None = None
) -> tuple[str, str, Snapshot, str | None]:
    """-> (backup-type, backup-id, Snapshot, comment)."""
    backup_type = require_name(item, "backup-type", path, error)
    backup_id = require_name(item, "backup-id", path, error)
    taken_at = epoch(require(item, "backup-time", path, error))
    if taken_at is None:
        raise error(f"unexpected payload on {path}: 'backup-time' of {backup_type}/{backup_id} is no date")
    size = as_int(item.get("size"))
    if size is None and item.get("size") is not None:  # "big": not "in progress", which PBS says by no `size`
        raise error(f"unexpected payload on {path}: 'size' of {backup_type}/{backup_id} is not an integer")
    verification, verified_at = Verification.NONE, None
    raw = item.get("verification")
    if isinstance(raw, dict):  # absent if never verified (§3.6)
        verification = Verification.OK if raw.get("state") == "ok" else Verification.FAILED
        verified_at = upid_started_at(str(raw.get("upid") or ""))
    location = f"{store}/{ns}" if ns else store
    snapshot = Snapshot(
        target_key=target_key(source, backup_type, backup_id, cluster),
        source=source,
        snapshot_id=f"{store}/{ns}/{backup_type}/{backup_id}/{_stamp(taken_at)}",
        taken_at=taken_at,
        finished=size is not None,  # no `size` = in progress or unreadable manifest
        size_bytes=size,
        verification=verification,
        verified_at=verified_at,
        location=location,
        encrypted=files_encrypted(_wire_files(item.get("files")), size is not None),
        protected=item.get("protected") is True,  # always present on PBS (serde default)
    )
    comment = item.get("comment")
    return backup_type, backup_id, snapshot, comment if isinstance(comment, str) else None


class _VerificationItem(msgspec.Struct):
    state: str | None = None
    upid: str | None = None


# A snapshot's `files` are decoded on their own, from the raw bytes the page decode keeps: several times faster
# than nesting them, and the same bytes (a VM's archives keep their sizes) are read only once.
_FILES = msgspec.json.Decoder(list[ArchiveFile])


class _SnapshotItem(msgspec.Struct, rename="kebab"):
    backup_type: str
    backup_id: str
    backup_time: int
    size: int | None = None
    verification: _VerificationItem | None = None
    comment: str | None = None
    files: msgspec.Raw = msgspec.Raw(b"[]")
    protected: bool = False


class _SnapshotPage(msgspec.Struct):
    data: list[_SnapshotItem]


_SNAPSHOT_PAGE = msgspec.json.Decoder(_SnapshotPage)
# (verification 0/1/2, encrypted, protected, finished) -> the flags byte, for the typed decoder's loop
_FLAGS = {
    (verification, encrypted, protected, finished): snapshot_flags(
        (Verification.NONE, Verification.OK, Verification.FAILED)[verification], encrypted, protected, finished
    )
    for verification in range(3)
    for encrypted in (None, False, True)
    for protected in (False, True)
    for finished in (False, True)
}
_CACHE_LIMIT = 100_000
_FILES_LIMIT = 2_000  # `files` texts (a few hundred bytes each) whose encryption is known: 0.6 MB at most


class SnapshotDecoder:
    """A PBS snapshot list straight from its bytes into `Snapshot`s: typed decoding, shared strings.

    The big answer of a PBS (tens of thousands of snapshots per namespace) costs most of a first poll; a typed
    decode skips the intermediate dicts, and the keys, locations and verification times that repeat across a
    group's snapshots are made once. An answer the typed decoder refuses (a field of another type than the API
    documents) returns None, and the caller takes the lenient path item by item."""

    def __init__(self, source: str, guest_namespaces: dict[str, str] | None = None) -> None:
        self.source = source
        self.guest_namespaces = guest_namespaces or {}  # namespace -> PVE cluster whose guests back up there
        self._keys: dict[tuple[str, str, str | None], str] = {}
        self._verified: dict[str, int] = {}  # UPID -> its start (epoch), NOT_VERIFIED when it is no UPID
        self._encrypted: dict[bytes, bool | None] = {}

    def page(self, body: bytes, *, store: str, ns: str, refused: list[str] | None = None) -> list[ListedGroup] | None:
        """-> the page's groups, in the order listed."""
        try:
            with gc_paused(len(body)):
                items = _SNAPSHOT_PAGE.decode(body).data
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        location = f"{store}/{ns}" if ns else store
        prefix = f"{store}/{ns}/"
        cluster = self.guest_namespaces.get(ns)
        source, verified, by_files = self.source, self._verified, self._encrypted
        flags_of = _FLAGS
        groups: list[ListedGroup] = []
        # PBS lists a group's snapshots one after another: what depends only on the group (its key, the id's
        # prefix) is looked up when the group changes, not for every snapshot.
        backup_type: str | None = None
        backup_id: str | None = None
        key, group_prefix = "", ""
        # A group's listing starts at its first record kept: records refused in between do not split it (as on the
        # lenient path, which drops them before it groups).
        fresh = True
        listing = ListedGroup("", "", source, "", location, "")
        previous = -1  # the backup time of the listing's last snapshot
        with gc_paused(len(body)):
            for item in items:
                if item.backup_id != backup_id or item.backup_type != backup_type:
                    backup_type, backup_id = item.backup_type, item.backup_id
                    key = self._key(backup_type, backup_id, cluster)
                    group_prefix = f"{prefix}{backup_type}/{backup_id}/"
                    fresh = True
                at = item.backup_time
                # Before 1970 (as `epoch` reads it on the lenient path), or a day no calendar holds: no time, and
                # this record goes.
                if not 0 <= at <= LAST_SECOND:
                    if refused is not None:
                        refused.append(f"snapshot {group_prefix}{at}: 'backup-time' is no date")
                    continue
                verification, verified_at = 0, NOT_VERIFIED
                if item.verification is not None:
                    verification = 1 if item.verification.state == "ok" else 2
                    upid = item.verification.upid or ""
                    verified_at = verified[upid] if upid in verified else self._verified_at(upid)
                size = item.size
                encrypted = None
                if size is not None:
                    files = bytes(item.files)
                    encrypted = by_files[files] if files in by_files else self._files_encrypted(files)
                if fresh:
                    listing = groups[-1] if groups else listing
                    if not groups or listing.backup_id != backup_id or listing.backup_type != backup_type:
                        listing = ListedGroup(backup_type, backup_id, source, key, location, group_prefix)
                        groups.append(listing)
                        previous = -1
                    fresh = False
                # `ListedGroup.add`, inline: a call per snapshot cost a third of a second at 600,000.
                if at <= previous:
                    listing.in_order = False
                previous = at
                listing.times.append(at)
                flags = flags_of[(verification, encrypted, item.protected, size is not None)]
                if size is None:
                    size = NO_SIZE
                elif not 0 <= size < NO_SIZE:
                    size, flags = NO_SIZE, flags | ODD_SIZE
                listing.sizes.append(size)
                listing.verified.append(verified_at)
                listing.flags.append(flags)
                if item.comment and (listing.comment is None or listing.comment[0] < at):
                    listing.comment = (at, item.comment)
        return groups

    def _key(self, backup_type: str, backup_id: str, cluster: str | None = None) -> str:
        key = self._keys.get((backup_type, backup_id, cluster))
        if key is None:
            if len(self._keys) > _CACHE_LIMIT:
                self._keys.clear()
            key = self._keys[(backup_type, backup_id, cluster)] = target_key(
                self.source, backup_type, backup_id, cluster
            )
        return key

    def _files_encrypted(self, files: bytes) -> bool | None:
        """`files_encrypted` of a finished snapshot's raw `files`. Archive sizes are in those bytes, and they
        differ from one snapshot to the next on a real PBS: most calls decode, few find the bytes known."""
        if files in self._encrypted:
            return self._encrypted[files]
        if len(self._encrypted) > _FILES_LIMIT:
            self._encrypted.clear()
        try:
            known = files_encrypted(_FILES.decode(files), True)
        except (msgspec.ValidationError, msgspec.DecodeError):
            known = None  # an odd `files` costs its encryption fact, not the snapshot
        self._encrypted[files] = known
        return known

    def _verified_at(self, upid: str) -> int:
        if upid not in self._verified:
            if len(self._verified) > _CACHE_LIMIT:
                self._verified.clear()
            at = upid_started_at(upid)
            self._verified[upid] = NOT_VERIFIED if at is None else int(at.timestamp())
        return self._verified[upid]


def last_run(source: str, job_key: str, item: dict[str, Any], upid_field: str = "last-run-upid") -> JobRun | None:
    upid = item.get(upid_field)
    if not isinstance(upid, str):
        return None
    started = upid_started_at(upid) or epoch(item.get("last-run-endtime")) or datetime.fromtimestamp(0, UTC)
    ended = epoch(item.get("last-run-endtime"))
    state = item.get("last-run-state")
    outcome, message = task_outcome(state if isinstance(state, str) else None, running=ended is None)
    return JobRun(job_key, source, upid, started, ended, outcome, message)


def parse_job(source: str, kind: JobKind, item: Any, timezone: str, path: str, error: ErrorFactory) -> Job:
    job_id = require_name(item, "store" if kind is JobKind.GC else "id", path, error)
    key = f"{source}/{kind.value}/{job_id}"
    schedule = item.get("schedule")
    comment = item.get("comment") if isinstance(item.get("comment"), str) else ""
    name = {JobKind.GC: f"garbage collection {job_id}"}.get(kind, job_id)
    outdated = as_int(item.get("outdated-after")) if kind is JobKind.VERIFY else None
    return Job(
        key=key,
        source=source,
        kind=kind,
        job_id=job_id,
        name=name,
        schedule=ScheduleRef(schedule, "proxmox", timezone) if isinstance(schedule, str) else None,
        enabled=not bool(item.get("disable", False)),  # prune only; omitted when false (§3.8)
        next_run_at=epoch(item.get("next-run")),
        # GC status carries its last task as `upid` (from the GC status), the other jobs as `last-run-upid`.
        last_run=last_run(source, key, item, "upid" if kind is JobKind.GC else "last-run-upid"),
        store=str(item.get("store")) if item.get("store") is not None else None,
        namespace=str(item["ns"]) if isinstance(item.get("ns"), str) else None,
        max_depth=as_int(item.get("max-depth")),
        comment=str(comment),
        # 0 is deprecated and means "never outdated" (reference §3.8)
        outdated_after=timedelta(days=outdated) if outdated is not None and 0 < outdated <= 36500 else None,
        keep=keep_options(item) if kind is JobKind.PRUNE else (),
    )


KEEP_OPTIONS = ("keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly")


def keep_options(item: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """A prune policy's keep-* options in the order PBS applies them; PVE's `prune-backups` arrives as an object
    in GET, or as a property string ("keep-daily=7,keep-last=3").

    >>> keep_options({"keep-daily": 7, "keep-last": "3"}), keep_options({"prune-backups": "keep-weekly=4"})
    ((('keep-last', 3), ('keep-daily', 7)), (('keep-weekly', 4),))
    """
    source: Any = item.get("prune-backups", item)
    if isinstance(source, str):
        source = dict(part.split("=", 1) for part in source.split(",") if "=" in part)
    if not isinstance(source, dict):
        return ()
    out = []
    for name in KEEP_OPTIONS:
        value = as_int(source.get(name))
        if value is not None and 0 < value <= 1_000_000:
            out.append((name, value))
    return tuple(out)


def task_job_key(source: str, task: dict[str, Any], prune_jobs: dict[tuple[str, str | None], str]) -> str | None:
    """The job a task belongs to, from its worker type and id (§3.7); None for tasks we do not report."""
    worker_type, worker_id = str(task.get("worker_type")), str(task.get("worker_id") or "")
    store = worker_id.split(":", 1)[0]
    if worker_type == "backup":
        return f"{source}/backup/{store}"  # written by a PVE vzdump job or a client; not a PBS job
    if worker_type == "verificationjob":
        return f"{source}/verify/{worker_id.split(':', 1)[-1]}"
    if worker_type == "garbage_collection":
        return f"{source}/gc/{worker_id}"
    if worker_type == "syncjob":
        return f"{source}/sync/{worker_id.rsplit(':', 1)[-1]}"
    if worker_type == "prunejob":
        # The worker id names the store (and namespace), not the job: look the job up by both.
        ns = worker_id.split(":", 1)[1] if ":" in worker_id else None
        job_id = prune_jobs.get((store, ns)) or prune_jobs.get((store, None)) or worker_id
        return f"{source}/prune/{job_id}"
    return None


def parse_task(source: str, task: Any, job_key: str, path: str, error: ErrorFactory) -> JobRun:
    upid = require_name(task, "upid", path, error)
    started = epoch(require(task, "starttime", path, error))
    if started is None:
        raise error(f"unexpected payload on {path}: 'starttime' is not an integer")
    ended = epoch(task.get("endtime"))  # absent while running
    status = task.get("status")
    outcome, message = task_outcome(status if isinstance(status, str) else None, running=ended is None)
    target = None
    if task.get("worker_type") == "backup":
        _store, _, group = str(task.get("worker_id") or "").partition(":")
        backup_type, _, backup_id = group.partition("/")
        target = target_key(source, backup_type, backup_id) if backup_id else None
    return JobRun(job_key, source, upid, started, ended, outcome, message, target_key=target)


def _ratio(index_bytes: int | None, disk_bytes: int | None) -> float | None:
    """How many bytes the index holds per byte on disk; None without both, or for byte counts no float holds."""
    if not index_bytes or not disk_bytes:
        return None
    try:
        return round(index_bytes / disk_bytes, 2)
    except OverflowError:
        return None


_I64 = 2**63  # PBS sends its estimate as an i64: a number beyond that range is no estimate PBS could make


def _byte_count(item: dict[str, Any], key: str, said: list[str]) -> int | None:
    """A size as PBS sends it (a u64: a JSON integer) and a store can have (up to an exabyte, as the edge bounds
    allow), else None, and anything else (NaN, 1e999, 2.5, "5120", -5, 2^64) is named in `said`."""
    value = item.get(key)
    if value is None or (type(value) is int and 0 <= value <= MAX_BYTES):
        return value
    said.append(f"'{key}' is {quoted(value)}, not a possible byte count")
    return None


def _full_date(value: Any, now: datetime, said: list[str]) -> tuple[datetime | None, bool]:
    """PBS's estimate of when a store is full, as (that time, usage not growing).

    PBS computes it as `((1 - a) / b).floor() as i64` from a month of usage history (pbs `src/api2/status.rs`),
    and Rust's cast saturates, so every i64 is an honest answer. Absent: not enough history yet. `0`, or any time
    already past (negative too): usage is flat or falling ("If the estimate lies in the past, the usage is
    decreasing or not changing", pbs-api-types `DataStoreStatusListItem`). A time beyond the latest forecast the
    board takes (2200) comes from a slope near zero: not growing either, so as not to name a healthy store."""
    if value is None:
        return None, False
    if type(value) is not int or not -_I64 <= value < _I64:
        said.append(f"'estimated-full-date' is {quoted(value)}, not a time PBS can send")
        return None, False
    at = epoch(value)  # None before 1970 and after the year 9999
    if value <= now.timestamp() or at is None or at > LATEST_FORECAST:
        return None, True
    return at, False


def parse_datastore(
    source: str,
    item: dict[str, Any],
    maintenance: str | None,
    *,
    now: datetime,
    said: list[str],
) -> Datastore:
    """One record of `/status/datastore-usage`; what it holds that PBS could not have sent is left out and named
    in `said`. An estimate before `now` means usage is not growing."""
    name = str(item.get("store"))
    full_at, flat = _full_date(item.get("estimated-full-date"), now, said)
    raw_gc = item.get("gc-status")
    gc: dict[str, Any] = raw_gc if isinstance(raw_gc, dict) else {}
    index_bytes, disk_bytes = as_int(gc.get("index-data-bytes")), as_int(gc.get("disk-bytes"))
    error = item.get("error")
    return Datastore(
        key=f"{source}/{name}",
        source=source,
        name=name,
        total_bytes=_byte_count(item, "total", said),
        used_bytes=_byte_count(item, "used", said),
        avail_bytes=_byte_count(item, "avail", said),
        estimated_full_at=full_at,
        usage_is_flat=flat,
        dedup_factor=_ratio(index_bytes, disk_bytes),
        error=str(error) if error else None,
        maintenance=maintenance,
    )


def _says_less_good(store: Datastore) -> tuple[object, ...]:
    """Orders the records of one store by how bad they say its space is: an error, then the larger share used
    (one that does not add up counts for none), then the sooner full; last, the record's own text, so that
    records equal in all that still rank the same whatever their order."""
    used, total = store.used_bytes, store.total_bytes
    share = Fraction(used, total) if used is not None and total and 0 <= used <= total else Fraction(-1)
    full_at = store.estimated_full_at
    return (store.error is not None, share, -full_at.timestamp() if full_at else -math.inf, repr(store))


def parse_usage(
    source: str, items: list[dict[str, Any]], maintenance: str | None, now: datetime, problems: list[str]
) -> Datastore:
    """A store's usage from its records in `/status/datastore-usage`, which lists each store once. Listed more
    than once, the record that says least good is kept, whatever the order PBS sent them in (a store nearly full
    must not hide behind a copy that says empty), and the store is named once."""
    read: list[tuple[Datastore, list[str]]] = []
    for item in items:
        said: list[str] = []
        read.append((parse_datastore(source, item, maintenance, now=now, said=said), said))
    kept, said = max(read, key=lambda pair: (_says_less_good(pair[0]), pair[1]))
    name = quoted(kept.name)
    if said:
        problems.append(f"datastore {name}: {'; '.join(said)}; left out")
    if len(items) > 1:
        problems.append(f"datastore {name}: listed {len(items)} times in the usage list; the least good one is used")
    return kept


__all__ = [
    "KEEP_OPTIONS",
    "ArchiveFile",
    "GroupState",
    "ListedGroup",
    "files_encrypted",
    "keep_options",
    "last_run",
    "listed_groups",
    "make_target",
    "parse_datastore",
    "parse_group",
    "parse_job",
    "parse_snapshot",
    "parse_task",
    "parse_usage",
    "require",
    "require_name",
    "target_key",
    "task_job_key",
]
