"""Small builders for web tests: each states only what a test is about (Healthchecks' bare `Check()` style).

NOW is fixed and aware; the display zone is Europe/Vienna so offsets show up in every ISO string.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from backup_glance.health import overall
from backup_glance.health.datastores import judge_datastore
from backup_glance.model import (
    STATUS_SEVERITY,
    Board,
    CalendarSlot,
    Datastore,
    GuestRef,
    Job,
    JobKind,
    JobRun,
    JobView,
    RunOutcome,
    ScheduleInfo,
    ScheduleRef,
    Silence,
    SlotOutcome,
    SourceState,
    Status,
    Verdict,
)

NOW = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # 14:00 in Vienna (CET, +01:00)
ZONE = "Europe/Vienna"
HOSTILE = "<img src=x onerror=alert(1)>"


def a_verdict(
    service_id: str = "vault",
    *,
    name: str | None = None,
    status: Status = Status.OK,
    reasons: tuple[str, ...] = (),
    sources: tuple[str, ...] = ("pbs-main",),
    last_success_ago: timedelta | None = timedelta(hours=9),
    next_run_in: timedelta | None = timedelta(hours=14),
    snapshot_count: int = 14,
    silence: Silence | None = None,
) -> Verdict:
    return Verdict(
        service_id=service_id,
        name=name if name is not None else service_id,
        status=status,
        severity=STATUS_SEVERITY[status],
        reasons=reasons,
        guest=GuestRef(vmid=101, type="qemu", node="pve1"),
        sources=sources,
        last_success_at=NOW - last_success_ago if last_success_ago is not None else None,
        last_attempt_at=NOW - timedelta(hours=9),
        last_outcome=RunOutcome.OK,
        snapshot_count=snapshot_count,
        newest_size_bytes=12 * 1024**3,
        schedule=ScheduleInfo("daily 04:00", "proxmox", ZONE, "pbs-main/backup/nightly", "nightly"),
        next_run_at=NOW + next_run_in if next_run_in is not None else None,
        previous_due_at=NOW - timedelta(hours=10),
        silence=silence,
        size_trend=((NOW - timedelta(hours=33), 11 * 1024**3), (NOW - timedelta(hours=9), 12 * 1024**3)),
    )


def a_slot(
    job_name: str = "vault backup",
    *,
    job_key: str = "pve/backup/vault",
    start: timedelta = -timedelta(hours=10),
    duration: timedelta = timedelta(minutes=45),
    outcome: SlotOutcome | None = None,
    timezone: str = ZONE,
    service_ids: tuple[str, ...] = ("vault",),
    overlaps: tuple[str, ...] = (),
    detail: str = "",
    source: str = "pve1",
    kind: JobKind = JobKind.BACKUP,
) -> CalendarSlot:
    if outcome is None:
        outcome = SlotOutcome.UPCOMING if start > timedelta(0) else SlotOutcome.SUCCEEDED
    return CalendarSlot(
        job_key=job_key,
        job_name=job_name,
        kind=kind,
        source=source,
        start_at=NOW + start,
        duration=duration,
        outcome=outcome,
        timezone=timezone,
        detail=detail,
        overlaps=overlaps,
        service_ids=service_ids,
    )


def a_job(
    kind: JobKind = JobKind.GC,
    *,
    store: str = "main",
    source: str = "pbs-main",
    outcome: RunOutcome | None = RunOutcome.OK,
    ago: timedelta = timedelta(hours=9),
    message: str = "",
) -> JobView:
    key = f"{source}/{kind.value}/{store}"
    run = None
    if outcome is not None:
        run = JobRun(key, source, f"UPID:{key}", NOW - ago, NOW - ago + timedelta(minutes=3), outcome, message)
    job = Job(key, source, kind, store, f"{kind.value} {store}", ScheduleRef("daily", "proxmox", ZONE), store=store)
    return JobView(job, NOW + timedelta(hours=15), run, timedelta(minutes=3), ())


def a_datastore(name: str = "main", *, source: str = "pbs-main", used: float = 0.78, **kw: object) -> Datastore:
    total = 4 * 1024**4
    fields: dict[str, object] = {
        "used_bytes": int(total * used),
        "total_bytes": total,
        "estimated_full_at": NOW + timedelta(days=41),
        "dedup_factor": 7.3,
    }
    fields.update(kw)
    return Datastore(key=f"{source}/{name}", source=source, name=name, **fields)  # type: ignore[arg-type]


def a_source(name: str = "pbs-main", *, kind: str = "pbs", error: str | None = None) -> SourceState:
    return SourceState(
        name=name,
        kind=kind,
        poll_interval=timedelta(minutes=5),
        last_attempt_at=NOW - timedelta(minutes=1),
        last_success_at=NOW - timedelta(minutes=1) if error is None else NOW - timedelta(minutes=30),
        error=error,
    )


def a_board(
    verdicts: tuple[Verdict, ...] = (),
    *,
    slots: tuple[CalendarSlot, ...] = (),
    jobs: tuple[JobView, ...] = (),
    datastores: tuple[Datastore, ...] = (),
    sources: tuple[SourceState, ...] | None = None,
) -> Board:
    sources = (a_source(),) if sources is None else sources
    views = tuple(judge_datastore(d, NOW) for d in datastores)
    return Board(
        generated_at=NOW,
        timezone=ZONE,
        verdicts=verdicts,
        jobs=jobs,
        datastores=views,
        sources=sources,
        slots=slots,
        overall=overall(verdicts, sources, views),
    )


def every_status() -> tuple[Verdict, ...]:
    """One service per Status value, with a reason for each non-ok one."""
    out = []
    for status in Status:
        reasons = () if STATUS_SEVERITY[status].value == "ok" else (f"{status.value}: because of a test",)
        silence = Silence("maintenance window") if status is Status.SILENCED else None
        out.append(a_verdict(f"svc-{status.value}", status=status, reasons=reasons, silence=silence))
    return tuple(out)


def a_full_board(services: int = 50) -> Board:
    """A busy homelab: `services` services, daily slots 14 days back and 7 ahead, PBS maintenance jobs."""
    statuses = list(Status)
    verdicts = []
    slots = []
    for i in range(services):
        status = statuses[i % len(statuses)] if i % 3 == 0 else Status.OK
        reasons = () if STATUS_SEVERITY[status].value == "ok" else (f"{status.value}: last backup 26 hours ago",)
        verdicts.append(a_verdict(f"svc{i:03d}", name=f"service {i:03d} web", status=status, reasons=reasons))
    for job in range(5):  # five vzdump jobs cover all services, like a real cluster
        ids = tuple(f"svc{i:03d}" for i in range(job, services, 5))
        for day in range(-14, 8):
            start = timedelta(days=day, hours=-9 + job) - timedelta(hours=0)
            outcome = None if day != -3 or job != 2 else SlotOutcome.FAILED
            slots.append(
                a_slot(f"nightly {job}", job_key=f"pve/backup/{job}", start=start, service_ids=ids, outcome=outcome)
            )
    jobs = tuple(a_job(k) for k in (JobKind.GC, JobKind.PRUNE, JobKind.VERIFY, JobKind.SYNC))
    return a_board(tuple(verdicts), slots=tuple(slots), jobs=jobs, datastores=(a_datastore(), a_datastore("offsite")))


DEMO_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # Thursday 13:00 in Madrid: the nightly runs are done


def demo_board(now: datetime = DEMO_NOW) -> Board:
    """The demo homelab's board, as the real collector makes it from its simulators (about 2 s). In a thread of
    its own: Playwright's sync API keeps an event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_demo_board, now).result()


def _demo_board(now: datetime) -> Board:
    from backup_glance.demo import DemoLab
    from backup_glance.runtime import build_runtime

    loop = asyncio.new_event_loop()
    try:
        with DemoLab(now=now) as lab:
            runtime = build_runtime(lab.config(), clock=lambda: now)
            try:
                return loop.run_until_complete(runtime.collector.poll_once())
            finally:
                loop.run_until_complete(runtime.collector.stop())
                if runtime.history is not None:
                    runtime.history.close()
    finally:
        loop.close()
