"""View builders and renderer mappings: every Status renders, problems sort first, filters and limits work."""

from __future__ import annotations

import doctest
import importlib
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from web_builders import NOW, ZONE, a_board, a_datastore, a_job, a_slot, a_source, a_verdict, every_status

from backup_glance.model import JobKind, Observation, RunOutcome, SlotOutcome, Status
from backup_glance.web.views import STATUS_WORD, widget_state
from backup_glance.web.widgets import calendar, datastores, status
from backup_glance.web.widgets.timeline import build_week

Z = ZoneInfo(ZONE)
WEB_MODULES = [
    "fmt",
    "views",
    "api",
    "params",
    "auth",
    "ics",
    "monitor",
    "widgets.timeline",
]


@pytest.mark.parametrize("name", WEB_MODULES)
def test_doctests_pass(name: str) -> None:
    module = importlib.import_module(f"backup_glance.web.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0


class TestStatusWords:
    def test_every_status_has_its_own_word(self) -> None:
        assert set(STATUS_WORD) == set(Status)

    def test_every_status_renders_a_row(self) -> None:
        view = status.build_view(a_board(every_status()), Z, status.Params())
        assert {r.word for r in view.rows} == set(STATUS_WORD.values())


class TestStatusView:
    def test_it_sorts_problems_first_then_by_name(self) -> None:
        board = a_board(
            (
                a_verdict("b-ok"),
                a_verdict("a-ok"),
                a_verdict("z-late", status=Status.LATE),
                a_verdict("gaps", status=Status.GAPS),
                a_verdict("unknown", status=Status.UNKNOWN),
            )
        )
        rows = status.build_view(board, Z, status.Params()).rows
        assert [r.service_id for r in rows] == ["z-late", "unknown", "gaps", "a-ok", "b-ok"]

    def test_it_shows_only_problems_when_asked(self) -> None:
        view = status.build_view(a_board(every_status()), Z, status.Params(problems_only=True))
        assert all(r.is_problem for r in view.rows)
        assert {r.word for r in view.rows} == {
            "gaps",
            "unverified",
            "late",
            "failed",
            "verify failed",
            "unprotected",
            "out of order",
            "unknown",
        }

    def test_it_filters_by_source(self) -> None:
        board = a_board((a_verdict("a", sources=("pbs-main",)), a_verdict("b", sources=("backrest",))))
        view = status.build_view(board, Z, status.Params(source="backrest"))
        assert [r.service_id for r in view.rows] == ["b"]

    def test_limit_turns_into_collapse_after_only_when_needed(self) -> None:
        board = a_board(tuple(a_verdict(f"s{i}") for i in range(6)))
        assert status.build_view(board, Z, status.Params(limit=4)).collapse_after == 4
        assert status.build_view(board, Z, status.Params(limit=10)).collapse_after is None

    def test_running_and_silenced_are_not_problems(self) -> None:
        board = a_board((a_verdict("r", status=Status.RUNNING), a_verdict("s", status=Status.SILENCED)))
        rows = status.build_view(board, Z, status.Params()).rows
        assert [(r.icon, r.is_problem) for r in rows] == [("running", False), ("silenced", False)]

    def test_last_success_is_epoch_seconds_with_fallback_text(self) -> None:
        rows = status.build_view(a_board((a_verdict(last_success_ago=timedelta(hours=9)),)), Z, status.Params()).rows
        assert rows[0].last_success is not None
        assert rows[0].last_success.epoch == int((NOW - timedelta(hours=9)).timestamp())
        assert rows[0].last_success.text == "9h"


class TestWidgetState:
    def test_a_failing_source_is_a_notice(self) -> None:
        board = a_board((a_verdict(),), sources=(a_source(error="pbs 'pbs-main': token rejected (HTTP 401)"),))
        state = widget_state(board)
        assert state.has_content
        assert state.notices == ("PBS 'pbs-main': token rejected (HTTP 401)",)

    def test_a_partly_readable_source_is_a_notice_naming_what_failed(self) -> None:
        observation = Observation(
            "pbs-main",
            "pbs",
            NOW,
            ZONE,
            problems=("datastore 'usb': HTTP 500 on /admin/datastore/usb/groups", "namespace 'a': HTTP 500"),
        )
        board = a_board((a_verdict(),), sources=(replace(a_source(), observation=observation),))
        assert widget_state(board).notices == (
            "PBS 'pbs-main': datastore 'usb': HTTP 500 on /admin/datastore/usb/groups (and 1 more)",
        )

    def test_no_data_at_all_is_an_error(self) -> None:
        state = widget_state(a_board(sources=()))
        assert not state.has_content
        assert "waiting for the first poll" in (state.error or "")


class TestDatastores:
    def test_it_shows_usage_full_in_and_maintenance_of_the_same_store(self) -> None:
        board = a_board(
            datastores=(a_datastore(used=0.95),),
            jobs=(
                a_job(JobKind.GC),
                a_job(JobKind.VERIFY, outcome=RunOutcome.FAILED, message="2 chunks bad"),
                a_job(JobKind.PRUNE, store="other"),
            ),
        )
        card = datastores.build_view(board, Z, datastores.Params()).cards[0]
        assert card.percent == 95 and card.is_high
        assert card.full_in == "full in 41d"
        assert card.dedup == "dedup ×7.3"
        assert [(t.label, t.mark) for t in card.tasks] == [("GC", "✓"), ("verify", "✗")]
        assert "2 chunks bad" in card.tasks[1].title

    def test_flat_usage_says_so(self) -> None:
        board = a_board(datastores=(a_datastore(usage_is_flat=True, estimated_full_at=None),))
        assert datastores.build_view(board, Z, datastores.Params()).cards[0].full_in == "usage flat"


class TestCalendar:
    def test_upcoming_lists_the_next_n_future_runs_in_order(self) -> None:
        slots = tuple(a_slot(f"job {h}", job_key=f"j/{h}", start=timedelta(hours=h)) for h in (5, 1, 3, -2))
        view = calendar.build_upcoming(a_board(slots=slots), Z, calendar.Params(n=2))
        assert [r.name for r in view.rows] == ["job 1", "job 3"]

    def test_week_has_seven_days_with_today_in_the_middle(self) -> None:
        days = build_week(a_board(), Z, [])
        assert len(days) == 7 and days[3].is_today and days[3].now_pct is not None

    def test_week_colours_past_by_outcome_and_future_neutral_and_flags_overlaps(self) -> None:
        slots = [
            a_slot(start=-timedelta(hours=2), job_key="a/vault", outcome=SlotOutcome.FAILED, overlaps=("db",)),
            a_slot(start=-timedelta(hours=2), job_key="b/db", outcome=SlotOutcome.MISSED),
            a_slot(start=timedelta(hours=2)),
        ]
        today = build_week(a_board(), Z, slots)[3]
        assert [(b.css, b.lane, b.is_overlap) for b in today.blocks] == [
            ("bkg-fail", 0, True),
            ("bkg-miss", 1, False),
            ("bkg-next", 0, False),
        ]
        assert today.lanes == 2

    def test_grid_marks_the_worst_outcome_of_each_day(self) -> None:
        slots = (
            a_slot(start=-timedelta(days=1, hours=2)),
            a_slot(start=-timedelta(days=1, hours=1), job_key="x", outcome=SlotOutcome.FAILED, detail="exit 1"),
            a_slot(start=timedelta(days=1)),
        )
        view = calendar.build_grid(a_board((a_verdict(),), slots=slots), Z, calendar.Params(view="grid", column="full"))
        cells = view.rows[0].cells
        assert len(cells) == 22
        assert cells[view.today_index - 1].css == "bkg-fail"
        assert "exit 1" in cells[view.today_index - 1].title
        assert cells[view.today_index + 1].css == "bkg-next"
        assert cells[0].css == ""

    def test_small_grid_shows_fewer_days_so_cells_and_names_stay_readable(self) -> None:
        view = calendar.build_grid(a_board((a_verdict(),)), Z, calendar.Params(view="grid", column="small"))
        assert len(view.rows[0].cells) == len(view.head) == 14
        assert view.head[view.today_index].is_today

    def test_grid_cell_title_names_the_job_and_says_the_outcome_once(self) -> None:
        slot = a_slot("nightly", start=-timedelta(hours=2), outcome=SlotOutcome.FAILED, detail="failed: 104")
        view = calendar.build_grid(a_board((a_verdict(),), slots=(slot,)), Z, calendar.Params(view="grid"))
        title = view.rows[0].cells[view.today_index].title
        assert "nightly: failed: 104" in title and "failed: failed" not in title

    def test_upcoming_is_compact_and_names_what_it_overlaps_and_waits_for(self) -> None:
        other = a_slot("verify main", job_key="pbs-main/verify/v-1", start=timedelta(days=1))
        slot = replace(
            a_slot("vault", start=timedelta(days=1), overlaps=("pbs-main/verify/v-1",)), after=("databasement",)
        )
        row = next(r for r in calendar.build_upcoming(a_board(slots=(slot, other)), Z, calendar.Params()).rows)
        assert row.overlaps == "overlaps verify main"
        assert row.after == "after databasement"
        assert row.duration == "takes 45m"
        assert "Nov" not in row.clock and len(row.clock) <= len("Sat 02:00")

    def test_week_flags_chained_runs_for_the_legend(self) -> None:
        chained = replace(a_slot(start=timedelta(hours=2)), after=("databasement",))
        view = calendar.build_week_view(a_board(slots=(chained,)), Z, calendar.Params(view="week"))
        block = view.days[3].blocks[0]
        assert block.is_chained and view.has_chains
        assert "waits for databasement" in block.title
