"""Plain typed records shared by every layer.

Data flows one way: sources produce an `Observation` per poll (facts, no verdicts); the collector keeps a
`SourceState` per source and records facts in history; `health` turns services + source states + history +
now into `Verdict`s, `JobView`s and `CalendarSlot`s, packed into one immutable `Board`; renderers format the
board. Nothing here does I/O or reads the clock. All datetimes are timezone-aware (UTC inside).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise
from typing import TypeVar, overload

import msgspec


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class Status(StrEnum):
    """A service's verdict. The severity of each is fixed (see `STATUS_SEVERITY`)."""

    OK = "ok"
    RUNNING = "running"
    GAPS = "gaps"
    UNVERIFIED = "unverified"
    LATE = "late"
    FAILED = "failed"
    VERIFY_FAILED = "verify_failed"
    UNPROTECTED = "unprotected"
    OUT_OF_ORDER = "out_of_order"  # ordering check: started before the job it depends on had finished
    AT_RISK = "at_risk"  # the latest backup is fine, but the protection policy is not met (see `Risk`)
    UNKNOWN = "unknown"
    SILENCED = "silenced"


STATUS_SEVERITY: dict[Status, Severity] = {
    Status.OK: Severity.OK,
    Status.RUNNING: Severity.OK,
    Status.SILENCED: Severity.OK,
    Status.GAPS: Severity.WARNING,
    Status.UNVERIFIED: Severity.WARNING,
    Status.OUT_OF_ORDER: Severity.WARNING,
    Status.AT_RISK: Severity.WARNING,
    Status.LATE: Severity.CRITICAL,
    Status.FAILED: Severity.CRITICAL,
    Status.VERIFY_FAILED: Severity.CRITICAL,
    Status.UNPROTECTED: Severity.CRITICAL,
    Status.UNKNOWN: Severity.UNKNOWN,
}

# Worst first: used to sort problems to the top and to pick the overall state.
SEVERITY_RANK: dict[Severity, int] = {
    Severity.CRITICAL: 0,
    Severity.UNKNOWN: 1,
    Severity.WARNING: 2,
    Severity.OK: 3,
}


class RiskKind(StrEnum):
    """A shortfall of a service's protection (README: Protection); `/api/v1/status` names them in `risks`."""

    COPIES = "copies"  # fewer locations hold a recent snapshot than the policy asks
    OFFSITE = "offsite"  # fewer of them are offsite
    OFFSITE_LAG = "offsite_lag"  # the newest offsite copy is further behind the newest copy than allowed
    UNENCRYPTED = "unencrypted"  # an offsite copy is not encrypted
    VERIFICATION_AGE = "verification_age"  # the newest snapshot's verification is older than the verify job allows
    RESTORE_TEST = "restore_test"  # no successful restore test recently enough
    SIZE_ANOMALY = "size_anomaly"  # the newest backup shrank far below the usual size
    DURATION_ANOMALY = "duration_anomaly"  # the newest run took far longer than usual
    RETENTION = "retention"  # failed runs leave fewer snapshots than the prune policy promises


class RunOutcome(StrEnum):
    """What one run (task, operation, dump attempt) of a job ended with."""

    OK = "ok"
    WARNING = "warning"  # finished with warnings; Backrest STATUS_WARNING (partial backup) is FAILED instead
    FAILED = "failed"
    RUNNING = "running"
    UNKNOWN = "unknown"


class Verification(StrEnum):
    OK = "ok"
    FAILED = "failed"
    NONE = "none"  # never verified


class JobKind(StrEnum):
    BACKUP = "backup"  # vzdump job, Databasement backup schedule, Backrest plan, restic schedule
    PRUNE = "prune"
    GC = "gc"
    VERIFY = "verify"
    SYNC = "sync"
    CHECK = "check"  # restic / Backrest integrity check
    RESTORE_TEST = "restore_test"


class SlotOutcome(StrEnum):
    """What happened at one scheduled slot of a job, for the calendar."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"
    RUNNING = "running"
    UPCOMING = "upcoming"


@dataclass(frozen=True, slots=True)
class ScheduleRef:
    """When a job is due: an expression in a dialect and zone, or a plain interval (Backrest maxFrequency)."""

    expression: str
    dialect: str  # "proxmox" | "cron" | "interval"
    timezone: str
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class GuestRef:
    vmid: int
    type: str  # "qemu" | "lxc"
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Something that gets backed up, as one source sees it.

    `key` is the same for the same thing across sources: PVE guest 101 and PBS groups ct/101 and vm/101 all use
    "guest:101"; a Databasement database is "databasement:<source>/<server>/<database>"; a Backrest plan is
    "backrest:<source>/<plan>"; a restic group is "restic:<source>/<group>".
    """

    key: str
    source: str
    name: str
    kind: str  # "guest" | "database" | "plan" | "restic"
    guest: GuestRef | None = None
    backup_running: bool = False  # e.g. PVE `lock: backup`
    template: bool = False


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """One backup that exists (or existed) for a target.

    A msgspec Struct rather than a dataclass: a big PBS holds hundreds of thousands of these, and a Struct is
    built several times faster, is smaller, and (holding no containers) stays out of the cyclic garbage
    collector's way. Copy with `msgspec.structs.replace`."""

    target_key: str
    source: str
    snapshot_id: str  # unique within the source, e.g. "main//ct/101/2025-01-15T04:00:05Z"
    taken_at: datetime
    finished: bool = True  # PBS: has `size`
    size_bytes: int | None = None
    verification: Verification = Verification.NONE
    verified_at: datetime | None = None
    location: str = ""  # datastore[/namespace], repository, volume
    # Added for protection (README: Protection); defaults keep older records and history rows valid.
    encrypted: bool | None = None  # PBS: every archive crypt-mode "encrypt"; restic: always; None: not known
    protected: bool = False  # PBS/PVE: exempt from pruning
    places: tuple[str, ...] = ()  # when one backup is stored in several places at once (Databasement volumes)


LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the last instant a `datetime` holds
NO_SIZE = 2**64 - 1  # `SnapshotSeries.sizes`: no size known
NOT_VERIFIED = -1  # `SnapshotSeries.verified`: no verification
_VERIFICATIONS = (Verification.NONE, Verification.OK, Verification.FAILED)
_ENCRYPTED = (None, False, True)
# `SnapshotSeries.flags`, a byte per snapshot: verification in bits 0-1, encryption in bits 2-3, then these.
PROTECTED = 16
_UNFINISHED = 32
ODD_SIZE = 64  # the source said a size no column holds (below 0, 2^64 - 1 or more): `sizes` says none
STORED_FLAGS = 3 | _UNFINISHED  # the flags history stores (verification, finished): not encryption, protection


def column_size(size: int | None) -> tuple[int, int]:
    """(what `SnapshotSeries.sizes` holds for a size, the flag to add to the snapshot's)."""
    if size is None:
        return NO_SIZE, 0
    if 0 <= size < NO_SIZE:
        return size, 0
    return NO_SIZE, ODD_SIZE


def snapshot_flags(verification: Verification, encrypted: bool | None, protected: bool, finished: bool) -> int:
    """The `SnapshotSeries.flags` byte of a snapshot."""
    return (
        _VERIFICATIONS.index(verification)
        | _ENCRYPTED.index(encrypted) << 2
        | (PROTECTED if protected else 0)
        | (0 if finished else _UNFINISHED)
    )


T = TypeVar("T")


class MadeOnAccess(Sequence[T]):
    """A sequence whose items are made when asked for (`_get`) and not kept: the columns they are made of are
    what is held."""

    __slots__ = ()

    def _get(self, index: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._get(index)

    def __iter__(self) -> Iterator[T]:
        return map(self._get, range(len(self)))

    def __reversed__(self) -> Iterator[T]:
        return map(self._get, range(len(self) - 1, -1, -1))


class SizeTrend(MadeOnAccess[tuple[datetime, int]]):
    """(taken at, bytes) pairs, oldest first, in two arrays: a verdict holds one for each of 10,000 services, and
    as tuples of a `datetime` and an `int` their points cost 140 bytes each, here 16."""

    __slots__ = ("_micros", "_sizes")

    def __init__(self, micros: array[int], sizes: array[int]) -> None:
        self._micros, self._sizes = micros, sizes

    @classmethod
    def of(cls, points: Iterable[tuple[datetime, int]]) -> SizeTrend:
        micros, sizes = array("q"), array("q")
        for at, size in points:
            micros.append(epoch_micros(at))
            sizes.append(size)
        return cls(micros, sizes)

    def __len__(self) -> int:
        return len(self._micros)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SizeTrend):
            return self._micros == other._micros and self._sizes == other._sizes
        if isinstance(other, tuple | list):
            return list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as the tuple of pairs it equals

    def __repr__(self) -> str:
        return f"SizeTrend({list(self)!r})"

    def _get(self, index: int) -> tuple[datetime, int]:
        return instant_of_micros(self._micros[index]), self._sizes[index]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
STAMP_LENGTH = len("2025-01-15T04:00:05Z")  # how a PBS snapshot's id ends: its backup time


def epoch_micros(at: datetime) -> int:
    """Epoch microseconds of an aware instant, exactly (no float on the way)."""
    return (at - _EPOCH) // _MICROSECOND


def instant_of_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def id_prefix_of(snapshot_id: str) -> str:
    """The group part of a PBS snapshot id ("store/ns/vm/101/"): what a `SnapshotSeries` names it by."""
    return snapshot_id[:-STAMP_LENGTH]


# A snapshot's id ends in its time, "2025-01-15T04:00:05Z", put together from the texts of its day and of its time of
# day (`strftime` for each of 600,000 ids took a second); its instant is the day's midnight plus the time of day (a
# quarter of what `fromtimestamp` costs).
@lru_cache(maxsize=4096)
def _midnight(day: int) -> datetime:
    return datetime.fromtimestamp(day * 86400, UTC)


def _instant(seconds: int) -> datetime:
    day, second = divmod(seconds, 86400)
    return _midnight(day) + _time_of_day(second)


@lru_cache(maxsize=4096)
def _day_text(day: int) -> str:
    return _midnight(day).strftime("%Y-%m-%dT")


@lru_cache(maxsize=20_000)
def _time_of_day(second: int) -> timedelta:
    return timedelta(seconds=second)


@lru_cache(maxsize=20_000)
def _clock_text(second: int) -> str:
    return f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


class SnapshotSeries(MadeOnAccess[Snapshot]):
    """One group's snapshots at one source and location, oldest first, held in columns.

    A big PBS lists 600,000 snapshots at 10,000 guests: as `Snapshot`s, with their ids, instants and sizes, that
    is about 170 MB; in columns it is 25 bytes a snapshot. A `Snapshot` is made when one is asked for and not
    kept. Ids are `id_prefix` plus the backup time ("2025-01-15T04:00:05Z"), as PBS names a snapshot; backup
    times are whole seconds, strictly increasing (PBS names a group's snapshots by them)."""

    __slots__ = ("flags", "id_prefix", "location", "sizes", "source", "target_key", "times", "verified")

    def __init__(
        self,
        target_key: str,
        source: str,
        location: str,
        id_prefix: str,
        times: array[int],
        sizes: array[int],
        verified: array[int],
        flags: bytes,
    ) -> None:
        if not len(times) == len(sizes) == len(verified) == len(flags):
            raise ValueError("a series' columns differ in length")
        self.target_key, self.source, self.location, self.id_prefix = target_key, source, location, id_prefix
        self.times, self.sizes, self.verified, self.flags = times, sizes, verified, flags

    def __len__(self) -> int:
        return len(self.times)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SnapshotSeries):
            return NotImplemented
        return (
            self.id_prefix == other.id_prefix
            and self.target_key == other.target_key
            and self.source == other.source
            and self.location == other.location
            and self.times == other.times
            and self.sizes == other.sizes
            and self.verified == other.verified
            and self.flags == other.flags
        )

    def __hash__(self) -> int:
        return hash((self.source, self.id_prefix, len(self.times)))

    def __repr__(self) -> str:
        return f"SnapshotSeries({self.source!r}, {self.id_prefix!r}, {len(self.times)} snapshots)"

    def taken_at(self, index: int) -> datetime:
        return _instant(self.times[index])

    def snapshot_id(self, index: int) -> str:
        day, second = divmod(self.times[index], 86400)
        return f"{self.id_prefix}{_day_text(day)}{_clock_text(second)}"

    @classmethod
    def of(cls, snapshots: Sequence[Snapshot], id_prefix: str) -> SnapshotSeries:
        """The series of one group's `snapshots` (oldest first, each time once, all of one target, source and
        location, each id `id_prefix` plus its time)."""
        if not snapshots:
            raise ValueError("a series holds at least one snapshot")
        first = snapshots[0]
        try:
            times = array("q", [int(s.taken_at.timestamp()) for s in snapshots])
            series = cls(
                first.target_key,
                first.source,
                first.location,
                id_prefix,
                times,
                array("Q", [NO_SIZE if s.size_bytes is None else s.size_bytes for s in snapshots]),
                array("q", [NOT_VERIFIED if (v := s.verified_at) is None else int(v.timestamp()) for s in snapshots]),
                bytes(snapshot_flags(s.verification, s.encrypted, s.protected, s.finished) for s in snapshots),
            )
        except (OverflowError, TypeError) as exc:  # a size beyond 64 bits or below 0, a naive instant
            raise ValueError(f"snapshots of {id_prefix} do not fit a series: {exc}") from None
        if any(later <= earlier for earlier, later in pairwise(times)):
            raise ValueError(f"snapshots of {id_prefix} not in time order, or a time twice")
        if list(series) != list(snapshots):  # another target, location or id, a fraction of a second, places
            raise ValueError(f"snapshots of {id_prefix} are not one group's")
        return series

    def finished(self, index: int) -> bool:
        return not self.flags[index] & _UNFINISHED

    def size(self, index: int) -> int | None:
        size = self.sizes[index]
        return None if size == NO_SIZE else size

    def verification(self, index: int) -> Verification:
        return _VERIFICATIONS[self.flags[index] & 3]

    def verified_at(self, index: int) -> int | None:
        """When the snapshot was verified (epoch seconds), if it was."""
        verified = self.verified[index]
        return None if verified == NOT_VERIFIED else verified

    def unfinished(self) -> int:
        """How many of its snapshots are not finished."""
        return sum(1 for flags in self.flags if flags & _UNFINISHED)

    def position(self, seconds: int) -> int | None:
        """The index of the snapshot taken at `seconds` (epoch), if there is one."""
        at = bisect_left(self.times, seconds)
        return at if at < len(self.times) and self.times[at] == seconds else None

    def _get(self, index: int) -> Snapshot:
        size, flags, verified = self.sizes[index], self.flags[index], self.verified[index]
        return Snapshot(
            self.target_key,
            self.source,
            self.snapshot_id(index),
            self.taken_at(index),
            not flags & _UNFINISHED,
            None if size == NO_SIZE else size,
            _VERIFICATIONS[flags & 3],
            None if verified == NOT_VERIFIED else _instant(verified),
            self.location,
            _ENCRYPTED[flags >> 2 & 3],
            bool(flags & PROTECTED),
        )


class JobRun(msgspec.Struct, frozen=True, gc=False):
    """One run of a job, or one target's part of it when the source tells per-target outcomes (a Struct for the
    same reason as `Snapshot`)."""

    job_key: str
    source: str
    run_id: str  # UPID, operation id, dump id: unique within the source (plus target_key)
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome = RunOutcome.UNKNOWN
    message: str = ""
    target_key: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job: vzdump job, PBS prune/GC/verify/sync, Databasement schedule, Backrest plan, ..."""

    key: str  # "<source>/<kind>/<id>", unique across sources
    source: str
    kind: JobKind
    job_id: str
    name: str
    schedule: ScheduleRef | None = None
    enabled: bool = True
    next_run_at: datetime | None = None  # as reported by the server, when it reports one
    last_run: JobRun | None = None
    target_keys: tuple[str, ...] = ()  # what a backup job covers, selection already resolved by the source
    store: str | None = None  # datastore / repository the job works on
    namespace: str | None = None  # PBS: the namespace a verify/prune job starts at ("" root; None: all)
    max_depth: int | None = None  # PBS: how many namespace levels below it the job reaches (None: all)
    comment: str = ""
    outdated_after: timedelta | None = None  # PBS verify job: a verification older than this is redone (stale)
    keep: tuple[tuple[str, int], ...] = ()  # prune policy: ("keep-last", 3), ("keep-daily", 7), ... in PBS's order


class RemoteCopy(msgspec.Struct, frozen=True, gc=False):
    """A target's backups on another system, seen through a sync job (PBS: the remote's group list).

    `endpoint` ("host:port/store[/ns]") says where that is, so that a remote which is also configured as a source
    of its own counts once. `newest_at` None: the other side could not be asked (permissions, unreachable).
    A Struct for the same reason as `Snapshot` (one per group and sync job, every poll); copy with
    `msgspec.structs.replace`."""

    target_key: str
    source: str  # the source that reported it
    location: str  # as shown: "<remote>:<store>[/<ns>]"
    endpoint: str = ""
    newest_at: datetime | None = None
    count: int | None = None
    encrypted: bool | None = None
    offsite: bool = True
    job_key: str = ""  # the sync job that keeps it


@dataclass(frozen=True, slots=True)
class Datastore:
    key: str  # "<source>/<name>"
    source: str
    name: str
    total_bytes: int | None = None
    used_bytes: int | None = None
    avail_bytes: int | None = None
    estimated_full_at: datetime | None = None
    usage_is_flat: bool = False  # PBS estimated-full-date 0: usage not growing
    dedup_factor: float | None = None
    error: str | None = None
    maintenance: str | None = None


@dataclass(frozen=True, slots=True)
class DatastoreView:
    """A datastore as the board shows it: its facts plus health's judgement of its space."""

    datastore: Datastore
    severity: Severity
    reasons: tuple[str, ...] = ()
    used_fraction: float | None = None
    full_in_days: float | None = None  # None: usage flat or unknown


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one poll of one source saw. Facts only; health decides what they mean."""

    source: str
    kind: str  # "pbs" | "pve" | "databasement" | "backrest" | "restic"
    observed_at: datetime
    timezone: str  # the zone the source evaluates its schedules in
    targets: tuple[Target, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    series: tuple[SnapshotSeries, ...] = ()  # a big source's snapshots, one group each (PBS)
    jobs: tuple[Job, ...] = ()
    runs: tuple[JobRun, ...] = ()
    datastores: tuple[Datastore, ...] = ()
    # Targets the source itself reports as in no job (PVE not-backed-up; counts disabled jobs as coverage).
    uncovered_target_keys: tuple[str, ...] = ()
    # Parts that could not be read while the rest could (an unreadable datastore, a namespace): partial content.
    problems: tuple[str, ...] = ()
    # Targets whose snapshots are in such a part: (key, when this source last read them in full; None: never). Their
    # snapshots here are as last read, or none: health does not call them fine for long on that.
    unread: tuple[tuple[str, datetime | None], ...] = ()
    # Protection facts (README: Protection). Copies on other systems seen through sync jobs; the locations (as in
    # `Snapshot.location` / `places`) the configuration or the URI makes offsite; how other systems reach this
    # source ("host:port", to recognise it in a remote's address); False when the source cannot see its remotes.
    remote_copies: tuple[RemoteCopy, ...] = ()
    offsite_locations: tuple[str, ...] = ()
    endpoint: str = ""
    remotes_visible: bool = True

    def all_snapshots(self) -> tuple[Snapshot, ...]:
        """Every snapshot listed, those of the series made into `Snapshot`s (each time it is called)."""
        return (*self.snapshots, *(snapshot for series in self.series for snapshot in series))


@dataclass(frozen=True, slots=True)
class SourceState:
    """The collector's view of one source: the last good observation plus how the latest poll went."""

    name: str
    kind: str
    poll_interval: timedelta
    observation: Observation | None = None  # last known good
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    error: str | None = None  # why the latest poll failed, for a person; never contains a secret
    last_poll_seconds: float | None = None  # how long the latest poll took, answered or failed


@dataclass(frozen=True, slots=True)
class Silence:
    reason: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service the user cares about: one or more targets judged together (configured or discovered)."""

    id: str
    name: str
    target_keys: tuple[str, ...]
    grace: timedelta
    max_age: timedelta
    lookback: timedelta
    silence: Silence | None = None
    after: tuple[str, ...] = ()  # service ids whose jobs must finish before this one's start
    source: str | None = None  # restrict matching to one source (optional)
    protection: ProtectionPolicy | None = None  # None: no protection policy (README: Protection)


@dataclass(frozen=True, slots=True)
class ProtectionPolicy:
    """What a service's backups must achieve beyond running: `defaults.protection` / `services[].protection`."""

    copies: int | None = None  # locations holding a snapshot no older than the lookback
    offsite: int | None = None  # of which offsite
    offsite_lag: timedelta | None = None  # newest offsite copy at most this much older than the newest copy
    encrypted_offsite: bool = False  # every offsite copy encrypted
    restore_test: timedelta | None = None  # a successful restore test within this long

    @property
    def is_empty(self) -> bool:
        return (
            self.copies is None
            and self.offsite is None
            and self.offsite_lag is None
            and not self.encrypted_offsite
            and self.restore_test is None
        )


@dataclass(frozen=True, slots=True)
class AnomalyPolicy:
    """`anomalies:` — on by default: a shrunken newest backup or a run far longer than usual is a risk."""

    enabled: bool = True
    size_drop: float = 0.5  # newest size below this share of the median of the earlier ones
    duration_rise: float = 3.0  # newest run longer than this many times the median of the earlier ones
    min_history: int = 7  # earlier snapshots or runs needed before anything is judged


@dataclass(frozen=True, slots=True)
class HistoryView:
    """What history remembers, restricted to the lookback window: evidence that survives pruning."""

    snapshots: tuple[Snapshot, ...] = ()
    # The series the sources listed last (present, as far as history knows), every one of its snapshots: those
    # taken within `series_span` (epoch seconds, from and before) are in the window.
    series: tuple[SnapshotSeries, ...] = ()
    series_span: tuple[int, int] = (0, 0)
    runs: tuple[JobRun, ...] = ()
    typical_durations: dict[str, timedelta] = field(default_factory=dict)  # job_key -> median duration
    recorded_since: datetime | None = None  # when history first recorded anything: it has watched since then
    target_names: dict[str, str] = field(default_factory=dict)  # target key -> the name it last had

    def all_snapshots(self) -> tuple[Snapshot, ...]:
        """Every snapshot in the window: history's own and those of its series, made into `Snapshot`s."""
        low, high = self.series_span
        in_series = (
            snapshot
            for series in self.series
            for snapshot in series[bisect_left(series.times, low) : bisect_left(series.times, high)]
        )
        return (*self.snapshots, *in_series)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    expression: str
    dialect: str
    timezone: str
    job_key: str
    job_name: str


@dataclass(frozen=True, slots=True)
class Verdict:
    service_id: str
    name: str
    status: Status
    severity: Severity
    reasons: tuple[str, ...]
    kind: str = "guest"
    guest: GuestRef | None = None
    sources: tuple[str, ...] = ()
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_outcome: RunOutcome | None = None
    snapshot_count: int = 0
    newest_size_bytes: int | None = None
    verification: Verification | None = None
    verified_at: datetime | None = None
    schedule: ScheduleInfo | None = None
    next_run_at: datetime | None = None
    previous_due_at: datetime | None = None
    missed_slots: tuple[datetime, ...] = ()
    silence: Silence | None = None
    # (taken_at, size) of the finished snapshots inside the lookback, oldest first: the backup's size trend.
    size_trend: Sequence[tuple[datetime, int]] = ()  # a `SizeTrend` (or a tuple of pairs)
    protection: Protection | None = None  # copies, encryption, verification and restore-test age, risks


# Risk, Copy and Protection are made for every service at every evaluation (thousands of each): msgspec Structs
# without cyclic-GC tracking, as `Snapshot`, so a big board does not give the garbage collector thousands of
# objects to walk. They hold no reference cycles. Copy with `msgspec.structs.replace`.


class Risk(msgspec.Struct, frozen=True, gc=False):
    kind: RiskKind
    detail: str  # for a person, as in the verdict's reasons


class Copy(msgspec.Struct, frozen=True, gc=False):
    """One location holding backups of a service: a datastore (namespace), repository, storage, or a remote."""

    location: str  # "main", "main/site-b", a repository id, "<remote>:<store>" for a copy seen through a sync job
    source: str
    offsite: bool
    newest_at: datetime | None  # its newest finished snapshot; None: not known (the remote could not be asked)
    snapshots: int | None = None
    encrypted: bool | None = None  # its newest snapshot encrypted; None: not known
    current: bool = True  # newest_at within the service's lookback: counts as a copy

    @property
    def known(self) -> bool:
        return self.newest_at is not None


class Protection(msgspec.Struct, frozen=True, gc=False):
    """How well a service is protected, as health found it (its `risks` are decided in health/protection.py).

    Renders as "2 copies · 1 offsite 3h behind · encrypted · restored 41d ago": `copy_count`, `offsite_count`,
    `offsite_lag`, `encrypted`, `last_restore_test_at`."""

    copies: tuple[Copy, ...] = ()  # every location, newest first
    offsite_lag: timedelta | None = None  # newest copy minus newest offsite copy; None: no offsite copy known
    encrypted: bool | None = None  # True: every current copy encrypted; False: one is not; None: not known
    protected_snapshots: int = 0  # snapshots exempt from pruning
    verified_at: datetime | None = None  # when the newest snapshot was last verified
    verification_stale_at: datetime | None = None  # when that verification counts as stale (verify job)
    last_restore_test_at: datetime | None = None  # when the last successful restore test ended
    risks: tuple[Risk, ...] = ()
    unknown: tuple[str, ...] = ()  # what could not be judged, and why (e.g. a remote that could not be asked)

    @property
    def copy_count(self) -> int:
        return sum(1 for c in self.copies if c.current and c.known)

    @property
    def offsite_count(self) -> int:
        return sum(1 for c in self.copies if c.current and c.known and c.offsite)


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the board shows it: next run from its schedule, last run and its outcome."""

    job: Job
    next_run_at: datetime | None
    last_run: JobRun | None
    typical_duration: timedelta | None
    service_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CalendarSlot:
    """One scheduled run of a job, past (with what happened) or future."""

    job_key: str
    job_name: str
    kind: JobKind
    source: str
    start_at: datetime
    duration: timedelta
    outcome: SlotOutcome
    timezone: str
    detail: str = ""
    overlaps: tuple[str, ...] = ()  # job keys running at the same time on the same datastore, repository or guest
    more_overlaps: int = 0  # how many more runs overlap it than `overlaps` names (it keeps a few dozen at most)
    service_ids: tuple[str, ...] = ()
    # A job that backs up several services can succeed for some and fail for others: (service id, outcome, detail).
    service_outcomes: tuple[tuple[str, SlotOutcome, str], ...] = ()
    after: tuple[str, ...] = ()  # what must finish before this run starts (the services' `after:`)
    # What this run did wrong for a service although it ran (its snapshot failed verification, it started out of
    # order): (service id, the status that fact stands for, what happened).
    problems: tuple[tuple[str, Status, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Board:
    """The immutable snapshot every renderer reads. Requests never touch a source."""

    generated_at: datetime
    timezone: str  # display zone
    verdicts: tuple[Verdict, ...] = ()
    jobs: tuple[JobView, ...] = ()
    datastores: tuple[DatastoreView, ...] = ()
    sources: tuple[SourceState, ...] = ()
    slots: tuple[CalendarSlot, ...] = ()
    overall: Severity = Severity.UNKNOWN  # decided by health; unknown until the first evaluation
    # Trouble of backup-glance itself that makes the board less trustworthy (the history cannot be written).
    notices: tuple[str, ...] = ()
    # The earliest moment the board could change without news from any source (a slot comes, a grace ends).
    next_change_at: datetime | None = None
    # Since when judging again has failed (a bug): the verdicts are those of `generated_at`, and may be out of date.
    judging_failed_at: datetime | None = None
