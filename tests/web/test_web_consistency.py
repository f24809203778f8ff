"""The calendar never contradicts the status widget: boards made by health itself (the demo homelab, and one per
kind of trouble a calendar used to hide), rendered through the app in every calendar view, must mark every
service whose verdict is not ok — on its row, in its status colour, with its status word — and the run that
caused it. Also health's side of it: which slots carry a problem, and which overlaps are marked.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from web_builders import demo_board

from backup_glance.board import BoardStore
from backup_glance.config import Config
from backup_glance.health import Defaults, evaluate
from backup_glance.model import (
    Board,
    GuestRef,
    HistoryView,
    Job,
    JobKind,
    JobRun,
    Observation,
    RunOutcome,
    ScheduleRef,
    ServiceSpec,
    Severity,
    Snapshot,
    SourceState,
    Status,
    Target,
    Verification,
)
from backup_glance.web import create_app
from backup_glance.web.views import status_class, status_word

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ZONE = "Europe/Madrid"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # Thursday 13:00 in Madrid: the nightly runs are done
SLOT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # today's 04:00 Madrid slot
DAY = timedelta(days=1)
VIEWS = {
    "week-full": "view=week&column=full",
    "week-small": "view=week&column=small",
    "month-full": "view=month&column=full",
    "month-small": "view=month&column=small",
    "grid-full": "view=grid&column=full",
    "grid-small": "view=grid&column=small",
}


# --- boards made by health from plain observations -------------------------------------------------------------


def a_guest(vmid: int, name: str) -> Target:
    return Target(f"guest:{vmid}", "pve", name, "guest", guest=GuestRef(vmid, "lxc", "pve"))


def a_job(*vmids: int, job_id: str = "nightly", schedule: str = "04:00", enabled: bool = True) -> Job:
    return Job(
        key=f"pve/backup/{job_id}",
        source="pve",
        kind=JobKind.BACKUP,
        job_id=job_id,
        name=job_id,
        schedule=ScheduleRef(schedule, "proxmox", ZONE),
        enabled=enabled,
        target_keys=tuple(f"guest:{v}" for v in vmids),
        store="pbs-main",
    )


def snapshots(
    vmid: int, *, skip: tuple[int, ...] = (), newest: Verification = Verification.OK, location: str = "main"
) -> list[Snapshot]:
    """One finished snapshot five minutes after each 04:00 slot of the last 14 days (but the skipped ones)."""
    out = []
    for n in range(14):
        if n in skip:
            continue
        at = SLOT - n * DAY + timedelta(minutes=5)
        verification = newest if n == min(set(range(14)) - set(skip)) else Verification.OK
        snapshot_id = f"{location}/ct/{vmid}/{at.isoformat()}"
        out.append(
            Snapshot(
                f"guest:{vmid}", "pbs", snapshot_id, at, size_bytes=10**9, verification=verification, location=location
            )
        )
    return out


def a_run(vmid: int, start: datetime, end: datetime, outcome: RunOutcome, job_id: str = "nightly") -> JobRun:
    return JobRun(f"pve/backup/{job_id}", "pve", f"UPID:{vmid}:{start.timestamp()}", start, end, outcome,
                  "exit code 2" if outcome is RunOutcome.FAILED else "", target_key=f"guest:{vmid}")  # fmt: skip


@dataclass
class Lab:
    """What the sources of one fixture report."""

    guests: list[Target] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    runs: list[JobRun] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    pbs_jobs: list[Job] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)
    pbs_error: str | None = None

    def board(self) -> Board:
        pve = Observation("pve", "pve", NOW, ZONE, targets=tuple(self.guests), jobs=tuple(self.jobs),
                          runs=tuple(self.runs))  # fmt: skip
        pbs = Observation("pbs", "pbs", NOW, ZONE, snapshots=tuple(self.snapshots), jobs=tuple(self.pbs_jobs))
        quiet = NOW - timedelta(hours=2) if self.pbs_error else NOW
        states = (
            SourceState("pve", "pve", timedelta(minutes=5), pve, NOW, NOW),
            SourceState("pbs", "pbs", timedelta(minutes=5), pbs, NOW, quiet, self.pbs_error),
        )
        return evaluate(
            services=self.services,
            sources=states,
            history=HistoryView(),
            now=NOW,
            display_tz=ZONE,
            defaults=Defaults(),
            discover_rest=True,
        )


def healthy(lab: Lab, vmid: int, name: str) -> None:
    lab.guests.append(a_guest(vmid, name))
    lab.snapshots += snapshots(vmid)


def verify_failed() -> Board:
    lab = Lab(jobs=[a_job(101, 102)])
    healthy(lab, 102, "caddy")
    lab.guests.append(a_guest(101, "vaultwarden"))
    lab.snapshots += snapshots(101, newest=Verification.FAILED)
    return lab.board()


def failed() -> Board:
    lab = Lab(jobs=[a_job(101, 102)])
    healthy(lab, 102, "caddy")
    lab.guests.append(a_guest(101, "postgres"))
    lab.snapshots += snapshots(101, skip=(0,))
    lab.runs.append(a_run(101, SLOT, SLOT + timedelta(minutes=4), RunOutcome.FAILED))
    return lab.board()


def late() -> Board:
    lab = Lab(jobs=[a_job(101, 102)])
    healthy(lab, 102, "caddy")
    lab.guests.append(a_guest(101, "app-configs"))
    lab.snapshots += snapshots(101, skip=(0, 1, 2))
    return lab.board()


def gaps() -> Board:
    lab = Lab(jobs=[a_job(101)])
    lab.guests.append(a_guest(101, "wiki"))
    lab.snapshots += snapshots(101, skip=(3, 5))
    return lab.board()


def unprotected() -> Board:
    lab = Lab(jobs=[a_job(102), a_job(121, job_id="legacy", schedule="sun 01:00", enabled=False)])
    healthy(lab, 102, "caddy")
    lab.guests += [a_guest(120, "scratch"), a_guest(121, "old-wiki")]
    return lab.board()


def out_of_order() -> Board:
    """The files backup (04:00) must wait for the database dump (03:00), which ran until 04:30 today."""
    lab = Lab(jobs=[a_job(106, job_id="dumps", schedule="03:00"), a_job(105)])
    for vmid, name in ((105, "files"), (106, "db")):
        healthy(lab, vmid, name)
    lab.runs += [
        a_run(106, SLOT - timedelta(hours=1), SLOT + timedelta(minutes=30), RunOutcome.OK, job_id="dumps"),
        a_run(105, SLOT, SLOT + timedelta(minutes=5), RunOutcome.OK),
    ]
    spec = ServiceSpec("files", "files", ("guest:105",), timedelta(hours=1), timedelta(hours=26), timedelta(days=14),
                       after=("service:db",))  # fmt: skip
    lab.services.append(spec)
    return lab.board()


def unverified() -> Board:
    lab = Lab(jobs=[a_job(101)])
    lab.guests.append(a_guest(101, "grafana"))
    lab.snapshots += snapshots(101, newest=Verification.NONE)
    verify = Job("pbs/verify/v-main", "pbs", JobKind.VERIFY, "v-main", "v-main",
                 ScheduleRef("06:00", "proxmox", ZONE), store="main")  # fmt: skip
    lab.pbs_jobs.append(verify)
    return lab.board()


def unknown() -> Board:
    lab = Lab(jobs=[a_job(101)], pbs_error="pbs 'pbs': connection refused")
    lab.guests.append(a_guest(101, "jellyfin"))
    lab.snapshots += snapshots(101)
    return lab.board()


HIDDEN_TROUBLE: dict[str, Callable[[], Board]] = {
    "verify-failed": verify_failed,
    "failed": failed,
    "late": late,
    "gaps": gaps,
    "unprotected": unprotected,
    "out-of-order": out_of_order,
    "unverified": unverified,
    "unknown": unknown,
}
EXPECTED = {
    "verify-failed": {"vaultwarden": Status.VERIFY_FAILED},
    "failed": {"postgres": Status.FAILED},
    "late": {"app-configs": Status.LATE},
    "gaps": {"wiki": Status.GAPS},
    "unprotected": {"scratch": Status.UNPROTECTED, "old-wiki": Status.UNPROTECTED},
    "out-of-order": {"files": Status.OUT_OF_ORDER},
    "unverified": {"grafana": Status.UNVERIFIED},
    "unknown": {"jellyfin": Status.UNKNOWN},
}


@pytest.fixture(scope="module")
def demo() -> Board:
    return demo_board(NOW)


# --- reading marks back out of the HTML ------------------------------------------------------------------------


VOID = {"br", "img", "input", "hr", "meta", "wbr"}


@dataclass
class Marked:
    classes: set[str]
    text: str
    popover: str


class Marks(HTMLParser):
    """Every element with `data-mark`, with its classes, its text and its popover text; plus every cell's class."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, list[Marked]] = {}
        self._open: list[tuple[int, Marked]] = []
        self._depth = 0
        self.classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.classes.append(values.get("class") or "")
        if tag in VOID:
            return
        self._depth += 1
        if values.get("data-mark"):
            mark = Marked(set((values.get("class") or "").split()), "", values.get("data-popover-text") or "")
            self.found.setdefault(values["data-mark"] or "", []).append(mark)
            self._open.append((self._depth, mark))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while self._open and self._open[-1][0] >= self._depth:
            self._open.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for _, mark in self._open:
            mark.text += data


def marks_in(html: str) -> Marks:
    parser = Marks()
    parser.feed(html)
    return parser


def rendered(board: Board) -> dict[str, str]:
    client = TestClient(create_app(Config(timezone=ZONE), BoardStore(board)))
    return {name: client.get(f"/glance/calendar?{query}").text for name, query in VIEWS.items()}


def assert_every_problem_is_marked(board: Board) -> None:
    bad = [v for v in board.verdicts if v.severity is not Severity.OK]
    assert bad, "a fixture without trouble proves nothing"
    for view, html in rendered(board).items():
        marks = marks_in(html)
        for v in bad:
            found = marks.found.get(v.service_id)
            assert found, f"{view}: {v.service_id} ({v.status.value}) is not marked"
            css, word = status_class(v.status, v.severity), status_word(v.status)
            assert any(css in m.classes for m in found), f"{view}: {v.service_id} not in {css}"
            assert any(word in m.text or word in m.popover for m in found), f"{view}: {v.service_id} lacks {word!r}"
        fine = {v.service_id for v in board.verdicts if v.severity is Severity.OK}
        assert not fine & set(marks.found), f"{view}: ok services marked as trouble: {fine & set(marks.found)}"


# --- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HIDDEN_TROUBLE))
def test_every_hidden_trouble_gets_its_verdict(name: str) -> None:
    board = HIDDEN_TROUBLE[name]()
    actual = {v.service_id: v.status for v in board.verdicts if v.service_id in EXPECTED[name]}
    assert actual == EXPECTED[name], [(v.service_id, v.status, v.reasons) for v in board.verdicts]


@pytest.mark.parametrize("name", list(HIDDEN_TROUBLE))
def test_every_calendar_view_marks_every_service_that_is_not_ok(name: str) -> None:
    assert_every_problem_is_marked(HIDDEN_TROUBLE[name]())


def test_the_demo_calendar_marks_all_fifteen_problems(demo: Board) -> None:
    # 7 backup problems, and 8 services whose protection falls short (issue 13: every kind of risk once)
    assert sum(v.severity is not Severity.OK for v in demo.verdicts) == 15
    assert_every_problem_is_marked(demo)


def test_the_demo_marks_the_runs_behind_a_failed_verification_and_an_out_of_order_start(demo: Board) -> None:
    html = rendered(demo)
    for view in ("grid-full", "grid-small"):
        rows = {row.split('data-mark="', 1)[1].split('"', 1)[0]: row for row in html[view].split("<li>")[1:]
                if 'data-mark="' in row}  # fmt: skip
        assert "bkg-flag" in rows["vaultwarden"] and "snapshot failed verification" in rows["vaultwarden"]
        assert "bkg-flag" in rows["dump-folder"] and "after databasement failed" in rows["dump-folder"]
        assert "no enabled job covers this" in rows["scratch"] and "no enabled job covers this" in rows["old-wiki"]
    week = html["week-full"]
    assert "vaultwarden: snapshot failed verification" in week
    assert "Database dump folder: Database dump folder ran at Thu 26 Nov 02:30 after databasement failed" in week


def test_the_demo_week_has_a_lane_per_job_with_its_system(demo: Board) -> None:
    week = rendered(demo)["week-full"]
    for label in (
        "Databasement · Daily dumps",
        "Backrest · vault backup",
        "Backrest · app-configs backup",
        "Backrest · databasement-dumps",
        "PVE · critical-nightly backup",
        "PBS · prune-main-daily",
        "PBS · v-main-daily verify",
    ):
        assert f'<span class="color-highlight text-truncate">{label}</span>' in week, label
    assert "Mon 23 – Sun 29 Nov · 02:00–07:00, a line per hour" in week  # the busy hours, not 0-24


def test_the_demo_month_shows_the_monthly_check_and_saturdays_gc(demo: Board) -> None:
    month = rendered(demo)["month-full"]
    assert '07:00</span> <span class="color-highlight">Backrest · check nas' in month  # Tue 1 Dec, in the grid
    assert month.count("PBS · garbage collection main") >= 2  # every Saturday


class TestHealthMarksTheSlot:
    def test_a_snapshot_that_failed_verification_is_a_problem_of_its_slot(self) -> None:
        board = verify_failed()
        today = [s for s in board.slots if s.start_at == SLOT]
        assert [s.problems for s in today] == [(("vaultwarden", Status.VERIFY_FAILED, "snapshot failed verification"),)]
        assert not any(s.problems for s in board.slots if s.start_at < SLOT)

    def test_the_run_an_ordering_verdict_is_about_carries_it(self) -> None:
        board = out_of_order()
        flagged = [(s.job_key, s.start_at) for s in board.slots if s.problems]
        assert flagged == [("pve/backup/nightly", SLOT)]


class TestOverlapsThatMatter:
    def board(self, *jobs: Job) -> Board:
        lab = Lab(jobs=list(jobs))
        for vmid in {v for job in jobs for v in (int(k.split(":")[1]) for k in job.target_keys)}:
            healthy(lab, vmid, f"guest{vmid}")
        return lab.board()

    def test_two_jobs_backing_up_the_same_guest_at_once_overlap(self) -> None:
        board = self.board(a_job(101), a_job(101, job_id="again"))
        assert any(s.overlaps == ("pve/backup/again",) for s in board.slots)

    def test_two_jobs_on_the_same_datastore_overlap(self) -> None:
        board = self.board(a_job(101), a_job(102, job_id="other"))  # both into PVE storage pbs-main
        assert any(s.overlaps for s in board.slots)

    def test_runs_at_the_same_time_on_different_systems_do_not(self) -> None:
        elsewhere = replace(a_job(102, job_id="other"), store="local")
        lab = Lab(jobs=[a_job(101), elsewhere])
        healthy(lab, 101, "a")
        lab.guests.append(a_guest(102, "b"))
        lab.snapshots += snapshots(102, location="other-store")
        board = lab.board()
        assert not any(s.overlaps for s in board.slots)
