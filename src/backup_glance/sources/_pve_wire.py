"""PVE wire items -> model records: guests, vzdump jobs (with their guest selection resolved), vzdump task logs
(per-guest results) and backup files on dir/NFS storages.

Sits under `sources/` next to `pve.py`, which does the requests. Pure functions over decoded JSON and log text;
PVE's field names and log phrasing stop here (proxmox/pve-manager `PVE/API2/Backup.pm`, `PVE/VZDump.pm`). No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..clean import quoted
from ..model import GuestRef, Job, JobKind, JobRun, RunOutcome, ScheduleRef, Snapshot, Target
from ..schedule import Schedule
from ._pbs_wire import keep_options
from ._proxmox import as_bool, as_int, calendar_for, epoch, task_outcome
from ._util import as_name, as_vmid, guest_key, guest_vmid

# vzdump log lines (reference §4.6); prefixes come from the plugin's debugmsg. One pattern for every line that
# tells something: a log is mostly other lines (settings, progress), and each of those then costs one failed
# match, not one per kind of line. Numbers are bounded (a VMID has at most 9 digits): a line of 5,000 digits is no
# event, where `int()` would refuse it and end the whole poll.
_EVENT = re.compile(
    r"^(?:INFO: Starting Backup of VM (?P<starting>\d{1,9}) \(\w+\)"
    r"|INFO: Backup started at (?P<started_at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
    r"|INFO: Finished Backup of VM (?P<finished>\d{1,9}) \((?P<hours>\d{1,6}):(?P<minutes>\d\d):(?P<seconds>\d\d)\)"
    r"|INFO: (?:Backup finished|Failed) at (?P<ended_at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
    r"|ERROR: Backup of VM (?P<failed>\d{1,9}) failed - (?P<reason>.*)$)",
    re.ASCII,
)
# A scheduled run starts within a minute or so of its slot (pvescheduler wakes each minute); allow some slack.
JOB_MATCH_WINDOW = timedelta(minutes=5)


def guest_target(source: str, item: dict[str, Any], cluster: str | None = None) -> Target | None:
    vmid = as_vmid(item.get("vmid"))
    guest_type = item.get("type")
    if vmid is None or guest_type not in ("qemu", "lxc"):
        return None
    node = as_name(item.get("node"))
    return Target(
        key=guest_key(vmid, cluster),
        source=source,
        name=str(item.get("name") or f"{guest_type}/{vmid}"),
        kind="guest",
        guest=GuestRef(vmid, str(guest_type), node),
        backup_running=item.get("lock") == "backup",  # vzdump holds this lock while it runs
        template=as_bool(item.get("template")),
    )


# PVE's `split_list`: a `pve-vmid-list` is VMIDs between commas, semicolons, white space or NULs; no ranges.
_LIST_SEPARATORS = re.compile(r"[\s,;\x00]+")
_SHOWN_PARTS = 5  # of the parts of a selection that cannot be read, this many are named


def _vmids(value: Any, gaps: list[str] | None = None) -> list[int]:
    """The VMIDs of a `pve-vmid-list`; a JSON list or number (not PVE's text) is read as what it holds. Each part
    that is no VMID goes to `gaps`: a guest it may have meant is then not known to be in the job."""
    if value is None or value == "":
        return []
    parts: list[Any]
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = [part for part in _LIST_SEPARATORS.split(value) if part]
    else:
        parts = [value]
    vmids: list[int] = []
    for part in parts:
        vmid = as_vmid(part)
        if vmid is None:
            if gaps is not None:
                gaps.append(quoted(part))
        else:
            vmids.append(vmid)
    return vmids


def _listed(parts: list[str]) -> str:
    more = len(parts) - _SHOWN_PARTS
    return ", ".join(parts[:_SHOWN_PARTS]) + (f" and {more} more" if more > 0 else "")


def selection_gaps(job: dict[str, Any]) -> list[str]:
    """What of a vzdump job's guest selection cannot be read, as a problem line's phrases; empty when all can."""
    gaps: list[str] = []
    _chosen(job, [], gaps)
    return gaps


def _chosen(job: dict[str, Any], guests: list[dict[str, Any]], gaps: list[str]) -> list[int]:
    """The VMIDs a job selects before its `node` restriction: pool > vmid > all minus exclude (reference §4.1).
    A `pool` or `node` that is no name selects nothing known: which guests PVE takes then cannot be told."""
    pool, node = job.get("pool"), job.get("node")
    if node not in (None, "") and not isinstance(node, str):
        gaps.append(f"node {quoted(node)} is no node name")
        return []
    if pool not in (None, ""):
        if not isinstance(pool, str):
            gaps.append(f"pool {quoted(pool)} is no pool name")
            return []
        return [vmid for g in guests if g.get("pool") == pool and (vmid := as_vmid(g.get("vmid"))) is not None]
    unread: list[str] = []
    if job.get("vmid") not in (None, ""):
        chosen = _vmids(job["vmid"], unread)
        field_name = "vmid"
    elif as_bool(job.get("all")):
        excluded = set(_vmids(job.get("exclude"), unread))
        chosen = [vmid for g in guests if (vmid := as_vmid(g.get("vmid"))) is not None and vmid not in excluded]
        field_name = "exclude"
    else:
        chosen = []
    if unread:
        gaps.append(f"{field_name} {_listed(unread)} {'is' if len(unread) == 1 else 'are'} no VMID (PVE has no ranges)")
    return chosen


def resolve_selection(
    job: dict[str, Any], guests: list[dict[str, Any]], cluster: str | None = None, gaps: list[str] | None = None
) -> tuple[str, ...]:
    """Which guests a vzdump job covers: pool > vmid > all minus exclude, then `node` (reference §4.1). What cannot
    be read goes to `gaps`."""
    chosen = _chosen(job, guests, [] if gaps is None else gaps)
    node = job.get("node")
    by_vmid = {as_vmid(g.get("vmid")): g for g in guests}
    kept = set()
    for vmid in chosen:
        guest = by_vmid.get(vmid)
        # A guest the cluster no longer knows stays listed: the job still names it, and that is worth seeing.
        if node and guest is not None and guest.get("node") != node:
            continue
        kept.add(vmid)
    # In VMID order, sorted as numbers before they become keys: an `all` job over 10,000 guests is then one sort
    # of integers, not 10,000 keys parsed back into numbers.
    return tuple(guest_key(vmid, cluster) for vmid in sorted(kept))


def job_label(job: dict[str, Any], index: int) -> str:
    """How a problem line names a job: its id, or the position-based id a legacy vzdump.cron entry gets."""
    return quoted(str(job.get("id") or f"vzdump-cron-{index + 1}"), 60)


def parse_job(
    source: str,
    index: int,
    item: dict[str, Any],
    guests: list[dict[str, Any]],
    timezone: str,
    cluster: str | None = None,
    problems: list[str] | None = None,
) -> Job:
    """A vzdump job; what of it cannot be used (its schedule, part of its selection) is said in `problems`."""
    # Legacy vzdump.cron entries may lack `id` and `type` (reference §4.1); give them a stable position-based id.
    job_id = str(item.get("id") or f"vzdump-cron-{index + 1}")
    enabled = as_bool(item.get("enabled"), default=True)
    said = [] if problems is None else problems
    gaps: list[str] = []
    target_keys = resolve_selection(item, guests, cluster, gaps)
    label = f"backup job {job_label(item, index)}"
    if gaps:
        said.append(f"{label}: its guest selection cannot be fully read: {'; '.join(gaps)}")
    elif _missing_pool(item, guests):
        said.append(f"{label}: no guest is in pool {quoted(item['pool'])}: the job backs up nothing")
    return Job(
        key=f"{source}/backup/{job_id}",
        source=source,
        kind=JobKind.BACKUP,
        job_id=job_id,
        name=job_id,
        schedule=_schedule(item.get("schedule"), enabled, timezone, label, said),
        enabled=enabled,
        next_run_at=epoch(item.get("next-run")),  # from now, even for disabled jobs: check `enabled`
        target_keys=target_keys,
        store=str(item["storage"]) if item.get("storage") else None,
        comment=str(item.get("comment") or ""),
        keep=keep_options({"prune-backups": item.get("prune-backups")}),  # GET gives an object (reference §4.1)
    )


def _missing_pool(job: dict[str, Any], guests: list[dict[str, Any]]) -> bool:
    pool = job.get("pool")
    return isinstance(pool, str) and bool(pool) and not any(g.get("pool") == pool for g in guests)


def _schedule(value: Any, enabled: bool, timezone: str, label: str, problems: list[str]) -> ScheduleRef | None:
    """An enabled job keeps a schedule even when it has none that can be read: its guests are in a job that
    cannot be judged (an unknown), not in no job at all (unprotected)."""
    if isinstance(value, str) and value:
        return ScheduleRef(value, "proxmox", timezone)
    if not enabled:
        return None
    problems.append(f"{label}: enabled, but its schedule {quoted(value)} is no calendar event")
    return ScheduleRef("", "proxmox", timezone)


@dataclass(slots=True)  # finished tasks' logs are kept: 80,000 of these at 10,000 guests, a third of the size
class _GuestResult:
    vmid: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: RunOutcome | None = None
    message: str = ""


@dataclass(slots=True)
class VzdumpLog:
    guests: dict[int, _GuestResult] = field(default_factory=dict)

    @property
    def vmids(self) -> set[int]:
        return set(self.guests)

    def guest(self, vmid: int, task_start: datetime) -> _GuestResult:
        """The guest's result so far; a guest first named by its result line started with the task."""
        found = self.guests.get(vmid)
        if found is None:
            found = self.guests[vmid] = _GuestResult(vmid, task_start)
        return found


_LOG_SLACK = timedelta(days=1)  # a node clock or zone a little off the task's start
_LONGEST_TASK = timedelta(days=31)  # a vzdump of many big guests runs for days, not for months


def parse_vzdump_log(lines: Iterable[str], task_start: datetime, timezone: str) -> VzdumpLog:
    """Per-guest results from a vzdump task log. Times in the log are node-local: in a zone this machine does not
    know, or where a line names a time no calendar holds, a guest keeps the task's start (and the end its
    duration gives)."""
    try:
        zone: ZoneInfo | None = ZoneInfo(timezone)
    except (KeyError, ValueError, OSError):  # not found (a KeyError), or not a zone name at all
        zone = None
    result = VzdumpLog()
    current: _GuestResult | None = None

    def local(text: str) -> datetime | None:
        # Node-local wall time -> UTC at the edge, so durations across a DST change stay right. A time that cannot
        # be this task's (a line saying 9999-12-31) is no time: the guest keeps the task's, and its result counts.
        if zone is None:
            return None
        try:
            at = datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)
        except (ValueError, OverflowError):  # month 13, or year 1 east of UTC
            return None
        return at if task_start - _LOG_SLACK <= at <= task_start + _LONGEST_TASK else None

    for line in lines:
        match = _EVENT.match(line)
        if match is None:
            continue
        starting, started_at, finished, ended_at, failed = match.group(
            "starting", "started_at", "finished", "ended_at", "failed"
        )
        if starting is not None:
            current = _GuestResult(int(starting), task_start)
            result.guests[current.vmid] = current
        elif started_at is not None:
            if current is not None and (at := local(started_at)) is not None:
                current.started_at = at
        elif finished is not None:
            guest = result.guest(int(finished), task_start)
            hours, minutes, seconds = map(int, match.group("hours", "minutes", "seconds"))
            guest.outcome = RunOutcome.OK
            with suppress(OverflowError):  # a start in the year 9999: no end, rather than no poll
                guest.ended_at = guest.started_at + timedelta(hours=hours, minutes=minutes, seconds=seconds)
            current = guest
        elif failed is not None:
            guest = result.guest(int(failed), task_start)
            guest.outcome, guest.message = RunOutcome.FAILED, match.group("reason").strip()
            current = guest
        elif ended_at is not None and current is not None and (at := local(ended_at)) is not None:
            current.ended_at = at
    return result


def task_runs(
    source: str, task: dict[str, Any], job_key: str, log: VzdumpLog | None, cluster: str | None = None
) -> tuple[JobRun, ...]:
    """One job-level run for the task plus one run per guest named in its log."""
    upid = str(task["upid"])
    started = epoch(task.get("starttime"))
    assert started is not None
    ended = epoch(task.get("endtime"))
    status = task.get("status")
    running = ended is None or status == "RUNNING"
    outcome, message = task_outcome(status if isinstance(status, str) else None, running=running)
    runs = [JobRun(job_key, source, upid, started, None if running else ended, outcome, message)]
    for guest in log.guests.values() if log else ():
        if guest.outcome is not None:
            guest_outcome, guest_message = guest.outcome, guest.message
        elif running:
            guest_outcome, guest_message = RunOutcome.RUNNING, ""
        else:
            guest_outcome, guest_message = RunOutcome.UNKNOWN, "no result for this guest in the task log"
        runs.append(
            JobRun(
                job_key,
                source,
                upid,
                guest.started_at,
                guest.ended_at if guest_outcome is not RunOutcome.RUNNING else None,
                guest_outcome,
                guest_message,
                target_key=guest_key(guest.vmid, cluster),
            )
        )
    return tuple(runs)


def slot_of(calendar: Schedule | None, started: datetime) -> datetime | None:
    """The calendar's slot at `started` or the last one before it; None without one, and for a start at the end
    of the year 9999 (a second later, or the zone's local time, is out of range). In UTC: two slots of the hour
    the clocks go back are equal by the zone's wall clock."""
    if calendar is None:
        return None
    try:
        slot = calendar.previous_before(started + timedelta(seconds=1))
    except OverflowError:
        return None
    return slot.astimezone(UTC) if slot is not None else None


def match_job(
    task: dict[str, Any], vmids: set[int], jobs: list[Job], calendars: dict[str, Schedule | None]
) -> Job | None:
    """The job a vzdump task ran for. PVE does not record it (reference §4.1), so: the enabled job with a
    schedule slot just before the task start whose guests overlap the task's guests the most."""
    started = epoch(task.get("starttime"))
    if started is None:
        return None
    best: tuple[int, Job] | None = None
    for job in jobs:
        if not job.enabled or job.schedule is None:
            continue
        calendar = calendars.get(job.key)
        slot = slot_of(calendar, started)
        if slot is None or started - slot > JOB_MATCH_WINDOW:
            continue
        overlap = len(vmids & {vmid for key in job.target_keys if (vmid := guest_vmid(key)) is not None})
        if vmids and not overlap:
            continue
        if best is None or overlap > best[0]:
            best = (overlap, job)
    return best[1] if best else None


def job_calendars(jobs: list[Job]) -> dict[str, Schedule | None]:
    return {
        job.key: calendar_for(job.schedule.expression, job.schedule.timezone) if job.schedule else None for job in jobs
    }


def file_snapshot(
    source: str, storage: str, item: dict[str, Any], cluster: str | None = None, refused: list[str] | None = None
) -> Snapshot | None:
    """A backup file as a snapshot; None for one that cannot be (no VMID, no time, no volume id), said in
    `refused`."""
    vmid = as_vmid(item.get("vmid"))
    taken_at = epoch(item.get("ctime"))
    if vmid is None or taken_at is None or not item.get("volid"):
        if refused is not None:
            what = "no volume id" if not item.get("volid") else "no VMID" if vmid is None else "no creation time"
            refused.append(f"backup file {str(item.get('volid') or '')[:200]!r} on {storage}: {what}")
        return None
    return Snapshot(
        target_key=guest_key(vmid, cluster),
        source=source,
        snapshot_id=str(item["volid"]),
        taken_at=taken_at,  # PVE parsed it from the file name in node-local time (reference §4.4)
        finished=True,
        size_bytes=as_int(item.get("size")),
        location=storage,
        encrypted=False,  # vzdump archives on a file storage are never encrypted (only PBS encrypts)
        protected=as_bool(item.get("protected")),
    )


__all__ = [
    "VzdumpLog",
    "file_snapshot",
    "guest_target",
    "job_calendars",
    "job_label",
    "match_job",
    "parse_job",
    "parse_vzdump_log",
    "resolve_selection",
    "selection_gaps",
    "task_runs",
]
