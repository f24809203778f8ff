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
    UNKNOWN = "unknown"
    SILENCED = "silenced"


STATUS_SEVERITY: dict[Status, Severity] = {
    Status.OK: Severity.OK,
    Status.RUNNING: Severity.OK,
    Status.SILENCED: Severity.OK,
    Status.GAPS: Severity.WARNING,
    Status.UNVERIFIED: Severity.WARNING,
    Status.OUT_OF_ORDER: Severity.WARNING,
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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One backup that exists (or existed) for a target."""

    target_key: str
    source: str
    snapshot_id: str  # unique within the source, e.g. "main//ct/101/2025-01-15T04:00:05Z"
    taken_at: datetime
    finished: bool = True  # PBS: has `size`
    size_bytes: int | None = None
    verification: Verification = Verification.NONE
    verified_at: datetime | None = None
    location: str = ""  # datastore[/namespace], repository, volume


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of a job, or one target's part of it when the source tells per-target outcomes."""

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


@dataclass(frozen=True, slots=True)
class HistoryView:
    """What history remembers, restricted to the lookback window: evidence that survives pruning."""

    snapshots: tuple[Snapshot, ...] = ()
    runs: tuple[JobRun, ...] = ()
    typical_durations: dict[str, timedelta] = field(default_factory=dict)  # job_key -> median duration
    recorded_since: datetime | None = None  # when history first recorded anything: it has watched since then


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
    as_of: datetime
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
    overlaps: tuple[str, ...] = ()  # job keys running at the same time
    service_ids: tuple[str, ...] = ()
    # A job that backs up several services can succeed for some and fail for others: (service id, outcome, detail).
    service_outcomes: tuple[tuple[str, SlotOutcome, str], ...] = ()
    after: tuple[str, ...] = ()  # what must finish before this run starts (the services' `after:`)


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
