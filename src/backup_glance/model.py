"""Plain typed records shared by every layer.

Data flows one way: sources produce an `Observation` per poll (facts, no verdicts); the collector keeps a
`SourceState` per source and records facts in history; `health` turns services + source states + history +
now into `Verdict`s, `JobView`s and `CalendarSlot`s, packed into one immutable `Board`; renderers format the
board. Nothing here does I/O or reads the clock. All datetimes are timezone-aware (UTC inside).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

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
    runs: tuple[JobRun, ...] = ()
    typical_durations: dict[str, timedelta] = field(default_factory=dict)  # job_key -> median duration
    recorded_since: datetime | None = None  # when history first recorded anything: it has watched since then
    target_names: dict[str, str] = field(default_factory=dict)  # target key -> the name it last had


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
    size_trend: tuple[tuple[datetime, int], ...] = ()
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
