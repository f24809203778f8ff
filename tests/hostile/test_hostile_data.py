"""One hostile record, a crawling source or a broken disk must never take the board down.

The real collector polls the demo homelab's simulators over HTTPS, each with one fault switched on; the real
web app renders what it published. Every case asserts that the bad part is refused or said plainly and that
everything else stays on the board and every endpoint answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from backup_glance.board import BoardStore
from backup_glance.commands.check import render_table
from backup_glance.config import Config
from backup_glance.demo import DemoLab
from backup_glance.history import History
from backup_glance.model import Board, Observation, Severity, Status, Verdict
from backup_glance.runtime import Runtime, build_runtime
from backup_glance.simulators import backrest as backrest_sim
from backup_glance.web import create_app

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ENDPOINTS = (
    "/",
    "/api/v1/status",
    "/glance/status",
    "/glance/status?column=full",
    "/glance/datastores",
    "/glance/calendar?view=upcoming",
    "/glance/calendar?view=week",
    "/glance/calendar?view=grid",
    "/calendar.ics",
    "/health",
    "/health/vault",
    "/healthz",
)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Lab:
    demo: DemoLab
    clock: Clock
    loop: asyncio.AbstractEventLoop
    runtimes: list[Runtime]
    folder: Path

    def start(self, edit: Callable[[str], str] = lambda text: text) -> Runtime:
        text = edit(self.demo.config_text())
        text = text.replace(f"path: {Path(self.demo._dir.name) / 'history.sqlite3'}", f"path: {self.folder / 'h.db'}")
        runtime = build_runtime(self.demo.config(text), clock=self.clock)
        self.runtimes.append(runtime)
        return runtime

    def poll(self, runtime: Runtime) -> Board:
        return self.loop.run_until_complete(runtime.collector.poll_once())

    def stop(self, runtime: Runtime) -> None:
        self.loop.run_until_complete(runtime.collector.stop())
        if runtime.history is not None:
            runtime.history.close()
        self.runtimes.remove(runtime)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    loop = asyncio.new_event_loop()
    with DemoLab(now=NOW) as demo:
        harness = Lab(demo, Clock(), loop, [], tmp_path)
        yield harness
        for runtime in list(harness.runtimes):
            harness.stop(runtime)
    loop.close()


def all_endpoints_answer(board: Board) -> dict[str, str]:
    """Every endpoint over the real app: 200 (503 for /health while something is not ok), never 500."""
    client = TestClient(create_app(_config_for(board), BoardStore(board)))
    bodies = {}
    for path in ENDPOINTS:
        response = client.get(path)
        expected = (200, 503) if path.startswith("/health/") or path == "/health" else (200,)
        assert response.status_code in expected, (path, response.status_code, response.text[:300])
        bodies[path] = response.text
    return bodies


def _config_for(board: Board) -> Config:
    return Config(timezone=board.timezone)


def verdict(board: Board, service_id: str) -> Verdict:
    (found,) = [v for v in board.verdicts if v.service_id == service_id]
    return found


def problems_of(board: Board, source: str) -> tuple[str, ...]:
    (state,) = [s for s in board.sources if s.name == source]
    assert state.observation is not None
    return state.observation.problems


class TestImpossibleRecords:
    def test_a_snapshot_dated_9999_costs_that_snapshot_only(self, lab: Lab) -> None:
        lab.demo.lab.add_snapshot("main", "", "ct", "101", datetime(9999, 12, 31, tzinfo=UTC), 1024)
        board = lab.poll(lab.start())
        assert verdict(board, "vault").status is Status.OK  # its real snapshots still count
        assert any("snapshots with impossible dates" in p and "9999-12-31" in p for p in problems_of(board, "pbs-main"))
        bodies = all_endpoints_answer(board)
        assert "impossible dates" in bodies["/glance/status"]  # said on the board, per source
        # ... and in the API and by `check`, which said "ok" and nothing else
        (pbs,) = [s for s in json.loads(bodies["/api/v1/status"])["sources"] if s["name"] == "pbs-main"]
        assert pbs["problems"] == list(problems_of(board, "pbs-main")) and pbs["healthy"] is True
        table = render_table(board).splitlines()
        at = table.index("source pbs-main (pbs): read in part")
        assert "impossible dates" in table[at + 1] and table[at + 1].startswith("      - ")

    def test_check_prints_the_board_notices_and_marks_a_cut_line(
        self, lab: Lab, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A damaged history database was said only by `check --json`: the text showed `overall: unknown` alone."""
        board = replace(lab.poll(lab.start()), notices=("history database h.sqlite3 is damaged; " + "x" * 300,))
        monkeypatch.setenv("COLUMNS", "100")
        table = render_table(board).splitlines()
        assert table[-2] == ("notice: history database h.sqlite3 is damaged; " + "x" * 300)[:99] + "…"
        assert table[-1].startswith("overall: ") and all(len(line) <= 100 for line in table)

    def test_a_byte_no_utf8_has_in_one_comment_costs_that_text_only(self, lab: Lab) -> None:
        """A namespace's whole snapshot list was refused for it: every guest of it at 0 snapshots (and a failed
        verification no longer seen)."""
        faults = lab.demo.apps["pbs"].faults
        faults.rewrites["/admin/datastore/main/snapshots"] = (b'"comment":"', b'"comment":"\xff')
        runtime = lab.start()
        board = lab.poll(runtime)
        lab.stop(runtime)
        faults.rewrites.clear()
        clean = lab.poll(lab.start())
        assert verdict(clean, "vault").snapshot_count > 1
        assert problems_of(board, "pbs-main") == problems_of(clean, "pbs-main")
        for before in clean.verdicts:
            after = verdict(board, before.service_id)
            assert (after.status, after.snapshot_count) == (before.status, before.snapshot_count), before.service_id
        all_endpoints_answer(board)

    def test_snapshots_a_source_could_not_read_do_not_stay_fine_for_long(self, lab: Lab) -> None:
        """A namespace whose snapshot list failed showed its guests ok, with 0 snapshots, from their PVE tasks."""
        faults = lab.demo.apps["pbs"].faults
        faults.rewrites["/admin/datastore/main/snapshots"] = (b'{"data":', b'{"data":,')  # malformed JSON
        runtime = lab.start()
        runtime.collector._sources["pbs-main"]._clock = lab.clock  # type: ignore[attr-defined]  # its own, else
        never = verdict(lab.poll(runtime), "vault")
        assert never.status is Status.UNKNOWN and never.snapshot_count == 0
        assert "its backups on source 'pbs-main' could not be read yet: datastore 'main'" in never.reasons[0]
        faults.rewrites.clear()
        lab.clock.now = NOW + timedelta(minutes=1)
        read = lab.poll(runtime)
        assert verdict(read, "vault").status is Status.OK and verdict(read, "vault").snapshot_count > 1
        lab.demo.lab.datastores["main"].unreadable = "datastore is locked"  # now its namespaces cannot be listed
        lab.clock.now = NOW + timedelta(minutes=2)
        quiet = lab.poll(runtime)
        soon = verdict(quiet, "vault")  # a poll interval after the last full read: as last read
        assert (soon.status, soon.snapshot_count) == (Status.OK, verdict(read, "vault").snapshot_count)
        # Polls that bring nothing new are not judged again: the board itself says when to look again.
        assert quiet.next_change_at is not None
        assert quiet.next_change_at <= NOW + timedelta(minutes=3, microseconds=1)
        lab.clock.now = NOW + timedelta(minutes=4)
        board = lab.poll(runtime)
        late = verdict(board, "vault")
        assert late.status is Status.UNKNOWN and late.snapshot_count == soon.snapshot_count
        assert late.reasons[0] == (
            "its backups on source 'pbs-main' unreadable since Thu 26 Nov 13:01: datastore 'main': pbs 'pbs-main': "
            "HTTP 400 on /admin/datastore/main/namespace: datastore is locked"
        )
        assert verdict(board, "vault-backrest").status is verdict(read, "vault-backrest").status  # stored elsewhere
        all_endpoints_answer(board)

    @pytest.mark.parametrize("seconds", [10**12, 2**62, -(2**62)])
    def test_a_time_no_calendar_holds_costs_that_snapshot_only(self, lab: Lab, seconds: int) -> None:
        absurd = lab.demo.lab.add_snapshot("main", "", "ct", "101", datetime(2026, 1, 1, tzinfo=UTC), 1024)
        absurd.backup_time = seconds  # year 33658 and beyond: Python's datetime cannot hold it
        board = lab.poll(lab.start())
        (state,) = [s for s in board.sources if s.name == "pbs-main"]
        assert state.error is None and state.observation is not None
        assert verdict(board, "vault").status is Status.OK and verdict(board, "vault").snapshot_count > 1
        (named,) = [p for p in problems_of(board, "pbs-main") if "'backup-time'" in p]
        assert named.endswith("is no date; left out") and "ct/101" in named  # not dropped unsaid
        all_endpoints_answer(board)

    @pytest.mark.parametrize("size", ["big", {"bytes": 1}, [1]])
    def test_a_size_that_is_no_integer_costs_that_snapshot_and_makes_no_backup_in_progress(
        self, lab: Lab, size: object
    ) -> None:
        """Read as "no size", which PBS says of a backup still running: vault was late "running since 04:00"."""
        group = lab.demo.lab.datastores["main"].group("", "ct", "101")
        newest = max(group.snapshots, key=lambda s: s.backup_time)
        newest.size = size  # type: ignore[assignment]
        board = lab.poll(lab.start())
        vault = verdict(board, "vault")
        assert not [r for r in vault.reasons if "running" in r]
        assert vault.status is not Status.RUNNING
        (named,) = [p for p in problems_of(board, "pbs-main") if "'size'" in p]
        assert "'size' of ct/101 is not an integer; left out" in named
        all_endpoints_answer(board)

    @pytest.mark.parametrize("guest_id", ["\u00b2", "9" * 5000])  # "²".isdigit() is true; int() refuses both
    def test_a_guest_id_no_integer_holds_costs_that_group_only(self, lab: Lab, guest_id: str) -> None:
        lab.demo.lab.add_snapshot("main", "", "vm", guest_id, NOW - timedelta(minutes=30), 1024)
        lab.demo.lab.add_pve_task("vzdump", guest_id, NOW - timedelta(hours=1), NOW - timedelta(minutes=59), "OK", [])
        board = lab.poll(lab.start())
        for name in ("pbs-main", "pve"):
            (state,) = [s for s in board.sources if s.name == name]
            assert state.error is None, (name, state.error)
        assert not [v.service_id for v in board.verdicts if v.status is Status.UNKNOWN]
        all_endpoints_answer(board)

    def test_a_databasement_row_that_is_no_snapshot_costs_that_row(
        self, lab: Lab, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from backup_glance.simulators import databasement as databasement_sim

        as_listed = databasement_sim._snapshot_json
        first = lab.demo.databasement.snapshots[0].id

        def one_row_broken(
            scenario: databasement_sim.DatabasementScenario, snap: databasement_sim.DbSnapshot
        ) -> dict[str, Any]:
            row = as_listed(scenario, snap)
            return {**row, "started_at": "the day after tomorrow"} if snap.id == first else row

        monkeypatch.setattr(databasement_sim, "_snapshot_json", one_row_broken)
        board = lab.poll(lab.start())
        (state,) = [s for s in board.sources if s.name == "databasement"]
        assert state.error is None and state.observation is not None
        assert len(state.observation.snapshots) + len(state.observation.runs) > 0  # the other rows still count
        (problem,) = problems_of(board, "databasement")
        assert (
            problem.startswith("unreadable snapshot row id ")
            and "(ValueError" in problem
            and problem.endswith("left out")
        )
        all_endpoints_answer(board)

    def test_a_time_zone_this_machine_does_not_know_is_read_as_the_boards_and_said(self, lab: Lab) -> None:
        """Read as UTC, a node's 04:00 schedule was an hour off: every guest "late" while their backups were fine
        (before that, its jobs kept the zone: every schedule unreadable, every guest unknown)."""
        clean = lab.start()
        expected = {v.service_id: v.status for v in lab.poll(clean).verdicts}
        lab.stop(clean)
        lab.demo.lab.pbs_timezone = "Mars/Olympus"  # or a zone newer than this machine's tzdata
        lab.demo.lab.pve_timezone = "Mars/Olympus"
        board = lab.poll(lab.start())
        for name in ("pbs-main", "pve"):
            (state,) = [s for s in board.sources if s.name == name]
            assert state.error is None and state.observation is not None, (name, state.error)
            assert state.observation.timezone == board.timezone == "Europe/Madrid"
            assert any(
                "time zone unknown to this machine (its times are read as Europe/Madrid)" in p and "Mars/Olympus" in p
                for p in problems_of(board, name)
            )
        assert verdict(board, "vault").snapshot_count > 0
        assert {v.service_id: v.status for v in board.verdicts} == expected
        all_endpoints_answer(board)

    def test_a_future_row_already_in_history_is_ignored_and_pruned(self, lab: Lab) -> None:
        runtime = lab.start()
        lab.poll(runtime)
        assert runtime.history is not None
        path = lab.folder / "h.db"
        lab.stop(runtime)
        with sqlite3.connect(path) as conn:  # as a version without the edge bounds would have stored it
            conn.execute(
                "UPDATE snapshots SET taken_at = ? WHERE snapshot_id = (SELECT MIN(snapshot_id) FROM snapshots)",
                (int(datetime(9999, 12, 31, tzinfo=UTC).timestamp()),),
            )
        runtime = lab.start()
        board = lab.poll(runtime)
        all_endpoints_answer(board)
        assert runtime.history is not None
        runtime.history.prune(now=NOW)
        with sqlite3.connect(path) as conn:
            (future,) = conn.execute(
                "SELECT COUNT(*) FROM snapshots WHERE taken_at > ?", (int(NOW.timestamp()) + 86400,)
            ).fetchone()
        assert future == 0

    @pytest.mark.parametrize("size", [2**64 - 1, 10**30, -5])
    def test_an_absurd_size_costs_that_field_and_history_still_writes(self, lab: Lab, size: int) -> None:
        lab.demo.lab.add_snapshot("main", "", "ct", "101", NOW - timedelta(minutes=30), size)
        runtime = lab.start()
        board = lab.poll(runtime)
        assert any("impossible snapshot sizes" in p for p in problems_of(board, "pbs-main"))
        assert runtime.history is not None and runtime.history.problem is None
        assert runtime.history.view(since=NOW - timedelta(days=1), until=NOW + timedelta(days=1)).all_snapshots()
        vault = verdict(board, "vault")
        assert vault.status is Status.OK and vault.newest_size_bytes is None
        all_endpoints_answer(board)

    def test_a_lone_surrogate_in_a_message_is_replaced(self, lab: Lab) -> None:
        scenario = lab.demo.backrest
        plan = scenario.plans[0]
        backrest_sim.add_backup(
            scenario, plan, NOW - timedelta(hours=1), status="STATUS_ERROR", message="disk \ud800 gone"
        )
        runtime = lab.start()
        board = lab.poll(runtime)
        assert runtime.history is not None and runtime.history.problem is None
        messages = [r.message for s in board.sources if s.observation for r in s.observation.runs]
        assert any("disk \ufffd gone" in m for m in messages)
        bodies = all_endpoints_answer(board)
        assert "\ud800" not in "".join(bodies.values())

    def test_a_megabyte_guest_name_is_cut_and_every_output_stays_small(self, lab: Lab) -> None:
        guest = next(g for g in lab.demo.lab.guests if g.vmid == 101)
        guest.name = "vault-" + "x" * 1_000_000
        board = lab.poll(lab.start())
        bodies = all_endpoints_answer(board)
        assert max(len(v.name) for v in board.verdicts) <= 200
        assert len(bodies["/calendar.ics"]) < 1_000_000 and len(bodies["/api/v1/status"]) < 1_000_000

    def test_a_source_error_cannot_forge_a_log_line(self, lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
        forged = b"boom\n2026-11-26 12:00:00,000 CRITICAL backup_glance: all backups deleted\x1b[2J"
        lab.demo.apps["pbs"].faults.error_body = forged
        caplog.set_level(logging.WARNING)
        board = lab.poll(lab.start())
        (state,) = [s for s in board.sources if s.name == "pbs-main"]
        assert state.error is not None and "\n" not in state.error and "\x1b" not in state.error
        failed = [r for r in caplog.records if r.getMessage() == "poll failed"]
        assert failed and all("\n" not in str(getattr(r, "error", "")) for r in failed)


class TestCrawlingSource:
    def test_a_source_trickling_bytes_misses_its_deadline_and_is_not_called_fresh(self, lab: Lab) -> None:
        lab.demo.apps["pve"].faults.trickle_bytes_per_s = 20  # each read comes in time; the whole answer never does
        runtime = lab.start(
            lambda t: t.replace(
                "    poll_interval: 1m\n", "    poll_interval: 1m\n    timeout: 2s\n    poll_deadline: 3s\n", 1
            )
        )
        board = lab.poll(runtime)
        (pve,) = [s for s in board.sources if s.name == "pve"]
        assert pve.error is not None and "did not finish within 3s" in pve.error
        assert pve.last_success_at is None
        assert board.overall is not Severity.OK


class TestWorseNeverLooksBetter:
    def test_a_failed_service_stays_failed_while_its_source_is_unreachable(self, lab: Lab) -> None:
        runtime = lab.start()
        assert verdict(lab.poll(runtime), "postgres").status is Status.FAILED
        lab.demo.apps["pbs"].faults.down = True
        lab.demo.apps["pve"].faults.down = True
        lab.clock.now = NOW + timedelta(minutes=10)  # several poll intervals: the sources count as unreachable
        board = lab.poll(runtime)
        postgres = verdict(board, "postgres")
        assert postgres.status is Status.FAILED and postgres.severity is Severity.CRITICAL
        assert any("unreachable since" in r for r in postgres.reasons), postgres.reasons
        vault = verdict(board, "vault")
        assert vault.status is Status.UNKNOWN  # it was fine: now we do not know, and say so


class TestHistoryTrouble:
    def test_a_full_disk_shows_on_the_board_and_writes_resume_when_space_returns(self, lab: Lab) -> None:
        runtime = lab.start()
        lab.poll(runtime)
        history = runtime.history
        assert history is not None and history._conn is not None
        (pages,) = history._conn.execute("PRAGMA page_count").fetchone()
        history._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        for minute in range(300):  # more than the free space left in the file's pages
            lab.demo.lab.add_snapshot("main", "", "vm", str(5000 + minute), NOW - timedelta(minutes=minute), 2048)
        lab.clock.now = NOW + timedelta(minutes=2)
        board = lab.poll(runtime)
        assert board.notices and "the disk is full" in board.notices[0]
        assert board.overall is not Severity.OK
        client = TestClient(create_app(_config_for(board), BoardStore(board)))
        health = client.get("/health")
        assert health.status_code == 503 and "the disk is full" in health.text
        assert "the disk is full" in client.get("/glance/status").text
        history._conn.execute("PRAGMA max_page_count = 1073741823")
        lab.clock.now = NOW + timedelta(minutes=4)
        board = lab.poll(runtime)
        assert board.notices == () and history.problem is None

    def test_a_corrupted_database_is_noticed_at_start(self, lab: Lab) -> None:
        runtime = lab.start()
        lab.poll(runtime)
        lab.stop(runtime)
        path = lab.folder / "h.db"
        data = bytearray(path.read_bytes())
        page = 4096
        for offset in range(page * 2, min(len(data), page * 6)):  # scribble over a few b-tree pages
            data[offset] = 0x5A
        path.write_bytes(bytes(data))
        runtime = lab.start()
        board = lab.poll(runtime)
        assert runtime.history is not None and runtime.history.problem is not None
        assert any("damaged" in n for n in board.notices), board.notices
        all_endpoints_answer(board)


def test_a_history_opened_read_only_is_a_notice_not_a_crash(tmp_path: Path) -> None:
    history = History.open(tmp_path / "h.db", retention=timedelta(days=90))
    assert history._conn is not None
    history._conn.execute("PRAGMA query_only = 1")
    with pytest.raises(Exception, match=r"readonly|read-only"):
        history.prune(now=NOW)
    assert history.problem is not None and "read-only" in history.problem
    history._conn.execute("PRAGMA query_only = 0")
    history.record(Observation(source="x", kind="pbs", observed_at=NOW, timezone="UTC"))
    assert history.problem is None
    history.close()
