"""View builders and renderer mappings: every Status renders, problems sort first, filters and limits work."""

from __future__ import annotations

import doctest
import gzip
import importlib
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup
from web_builders import NOW, ZONE, a_board, a_datastore, a_full_board, a_job, a_slot, a_source, a_verdict, every_status

from backup_glance.board import BoardStore
from backup_glance.model import (
    Board,
    Copy,
    Job,
    JobKind,
    JobRun,
    JobView,
    Observation,
    Protection,
    RunOutcome,
    SlotOutcome,
    Status,
    Verdict,
)
from backup_glance.web.page import build_page
from backup_glance.web.render import (
    FAST_GZIP_FROM,
    KEEP_ROWS_FOR_RENDERS,
    SWEEP_EVERY,
    WARM_FOR_S,
    WARM_KEYS,
    Payload,
    Renderer,
    VersionCache,
)
from backup_glance.web.views import STATUS_WORD, widget_state
from backup_glance.web.widgets import calendar, datastores, status
from backup_glance.web.widgets._names import Names, apply_job_config
from backup_glance.web.widgets._spec import View
from backup_glance.web.widgets.timeline import build_week_view, fit_axis

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
    "widgets.datastores",
    "widgets.month",
    "widgets._names",
    "widgets._marks",
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
            "at risk",
            "unknown",
        }

    def test_it_filters_by_source(self) -> None:
        board = a_board((a_verdict("a", sources=("pbs-main",)), a_verdict("b", sources=("backrest",))))
        view = status.build_view(board, Z, status.Params(source="backrest"))
        assert [r.service_id for r in view.rows] == ["b"]

    def test_limit_turns_into_collapse_after_only_when_needed(self) -> None:
        board = a_board(tuple(a_verdict(f"s{i}", status=Status.LATE, reasons=("late",)) for i in range(6)))
        assert status.build_view(board, Z, status.Params(limit=4)).collapse_after == 4
        assert status.build_view(board, Z, status.Params(limit=10)).collapse_after is None

    def test_running_and_silenced_are_not_problems(self) -> None:
        board = a_board((a_verdict("r", status=Status.RUNNING), a_verdict("s", status=Status.SILENCED)))
        rows = status.build_view(board, Z, status.Params()).rows
        assert [(r.icon, r.is_problem) for r in rows] == [("running", False), ("silenced", False)]

    def test_rows_of_the_same_verdicts_on_a_later_board_read_as_if_built_afresh(self) -> None:
        local = Copy("main", "pbs-main", False, NOW - timedelta(hours=2))
        tested = Protection((local,), last_restore_test_at=NOW - timedelta(days=3, hours=23, minutes=58))
        verdicts = (
            a_verdict("fresh", last_success_ago=timedelta(seconds=20), next_run_in=timedelta(minutes=1)),
            replace(a_verdict("tested", last_success_ago=None, next_run_in=None), protection=tested),
            a_verdict("late", status=Status.LATE, reasons=("late: last backup 26 hours ago",)),
            a_verdict("never", last_success_ago=None, next_run_in=None),
        )
        seen_texts = set()
        for later in (
            timedelta(0),
            timedelta(seconds=30),
            timedelta(minutes=3),
            timedelta(hours=2),
            timedelta(days=40),
            timedelta(seconds=40),  # the clock stepped back
        ):
            board = replace(a_board(verdicts), generated_at=NOW + later)
            rows = status.build_view(board, Z, status.Params()).rows
            fresh = [status.build_row(v, board, Z) for v in sorted(verdicts, key=status.sort_key)]
            assert rows == tuple(fresh), f"{later} later"
            seen_texts |= {
                (r.last_success.text if r.last_success else "", r.protection and r.protection.line) for r in rows
            }
        assert len(seen_texts) > 8, "the clock moved the texts on, and the rows with them"

    def test_a_row_follows_its_display_name_when_another_service_takes_the_same_name(self) -> None:
        web = a_verdict("web-1", name="web")
        alone = a_board((web,))
        assert status.build_view(alone, Z, status.Params()).rows[0].name == "web"
        crowded = a_board((web, a_verdict("web-2", name="web", sources=("backrest",))))
        rows = status.build_view(crowded, Z, status.Params()).rows
        assert rows == tuple(status.build_row(v, crowded, Z) for v in sorted(crowded.verdicts, key=status.sort_key))
        assert len({r.name for r in rows}) == 2

    def test_last_success_is_epoch_seconds_with_fallback_text(self) -> None:
        rows = status.build_view(a_board((a_verdict(last_success_ago=timedelta(hours=9)),)), Z, status.Params()).rows
        assert rows[0].last_success is not None
        assert rows[0].last_success.epoch == int((NOW - timedelta(hours=9)).timestamp())
        assert rows[0].last_success.text == "9h"


class TestProtectionLine:
    """The status widget's protection line formats what health found; it never decides a risk."""

    @staticmethod
    def protected(**kwargs: object) -> Protection:
        local = Copy("main", "pbs-main", False, NOW - timedelta(hours=9), snapshots=14, encrypted=True)
        offsite = Copy("b2", "backrest", True, NOW - timedelta(hours=12, minutes=5), snapshots=30, encrypted=True)
        fields: dict[str, object] = {"copies": (local, offsite), "offsite_lag": timedelta(hours=3, minutes=5)}
        fields.update(kwargs)
        return Protection(**fields)  # type: ignore[arg-type]

    def row(self, verdict: Verdict) -> status.StatusRow:
        return status.build_view(a_board((verdict,)), Z, status.Params()).rows[0]

    def test_it_names_copies_offsite_lag_encryption_and_restore_age(self) -> None:
        p = self.protected(encrypted=True, last_restore_test_at=NOW - timedelta(days=41, hours=5))
        row = self.row(replace(a_verdict(), protection=p))
        assert row.protection is not None
        assert row.protection.line == "2 copies · 1 offsite 3h behind · encrypted · restored 41d ago"

    def test_a_current_offsite_copy_is_not_behind_and_unknowns_stay_out(self) -> None:
        p = self.protected(offsite_lag=timedelta(minutes=4), encrypted=None)
        row = self.row(replace(a_verdict(), protection=p))
        assert row.protection is not None and row.protection.line == "2 copies · 1 offsite"

    def test_a_remote_nobody_could_ask_is_unknown_not_missing(self) -> None:
        local = Copy("main", "pbs-main", False, NOW - timedelta(hours=9))
        unasked = Copy("offsite:backups", "pbs-main", True, None)
        row = self.row(replace(a_verdict(), protection=Protection((local, unasked), encrypted=False)))
        assert row.protection is not None and row.protection.line == "1 copy · offsite unknown · unencrypted"

    def test_copies_outside_the_lookback_are_not_recent_copies(self) -> None:
        old = Copy("main", "pbs-main", False, NOW - timedelta(days=90), current=False)
        row = self.row(replace(a_verdict(status=Status.AT_RISK), protection=Protection((old,))))
        assert row.protection is not None and row.protection.line == "no recent copy"

    def test_no_facts_no_line(self) -> None:
        assert self.row(a_verdict()).protection is None


class TestRememberedRows:
    """Healthy rows are rendered once per distinct row and remembered across boards: the widget must read exactly
    as a renderer that never saw a board before renders it."""

    @staticmethod
    def html(renderer: Renderer, board: Board, query: dict[str, str]) -> str:
        zone = ZoneInfo(board.timezone)
        return renderer.widget_body(status.build_view(board, zone, status.parse_params(query))).decode()

    def test_a_board_after_another_reads_as_if_rendered_afresh(self) -> None:
        first = a_full_board(40)
        changed = list(first.verdicts)
        changed[1] = replace(changed[1], name="renamed <b>web</b>", snapshot_count=99)  # a healthy one
        changed[2] = replace(changed[2], last_success_at=NOW - timedelta(minutes=3))
        second = replace(first, verdicts=tuple(changed))
        remembering = Renderer()
        for query in ({}, {"column": "full"}, {"status": "problems"}):
            for board in (first, second, first):
                assert self.html(remembering, board, query) == self.html(Renderer(), board, query)
        fresh = self.html(Renderer(), second, {})
        assert "renamed &lt;b&gt;web&lt;/b&gt;: ok" in fresh and "99 snapshots" in fresh

    def test_a_later_board_renders_only_the_rows_that_changed(self) -> None:
        first = a_full_board(40)
        changed = list(first.verdicts)
        changed[1] = replace(changed[1], snapshot_count=99)  # two healthy services changed, 38 did not
        changed[2] = replace(changed[2], last_success_at=NOW - timedelta(minutes=3))
        renderer = Renderer()
        self.html(renderer, first, {})
        rendered = len(renderer._rows)
        self.html(renderer, replace(first, verdicts=tuple(changed)), {})
        assert len(renderer._rows) == rendered + 2

    def test_a_row_made_anew_but_equal_is_found_by_value(self) -> None:
        board = a_full_board(30)
        renderer = Renderer()
        first = {entry[0]: entry[1] for entry in [*self.rendered(renderer, board)]}
        status._built.clear()  # every row is built again: new objects, equal to the ones rendered
        again = self.rendered(renderer, board)
        assert again and all(row not in first or markup is first[row] for row, markup in again)
        assert sum(row in first for row, _markup in again) == len(first)

    def rendered(self, renderer: Renderer, board: Board) -> list[tuple[object, object]]:
        """(row, markup) for each row the last render used."""
        self.html(renderer, board, {})
        return [(row, markup) for row, markup, used in renderer._rows.values() if used == renderer._renders]

    def test_rows_not_used_lately_are_forgotten(self) -> None:
        first = a_full_board(60)
        later = replace(first, generated_at=NOW + timedelta(hours=3))  # every row's "last ok" text has moved on
        bounded = Renderer(max_rows=10)
        assert self.html(bounded, first, {}) == self.html(Renderer(), first, {})
        for _ in range(KEEP_ROWS_FOR_RENDERS + 1):
            assert self.html(bounded, later, {}) == self.html(Renderer(), later, {})
        healthy = len(status.build_view(later, ZoneInfo(later.timezone), status.parse_params({})).healthy)
        assert len(bounded._rows) == healthy, "only the rows the latest renders used are kept"
        assert len(bounded._by_value) == healthy, "and only their values"


class TestSweeps:
    def test_rows_not_used_lately_are_swept_now_and_then_not_at_every_render(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A page of 2,000 services uses more rows than MAX_REMEMBERED_ROWS: a sweep at every render walked them
        all six times a page."""
        board = a_full_board(40)
        zone = ZoneInfo(board.timezone)
        renderer = Renderer(max_rows=10)
        sweeps = []
        forget = renderer._forget_rows
        monkeypatch.setattr(renderer, "_forget_rows", lambda: (sweeps.append(renderer._renders), forget())[1])
        for hours in range(4 * SWEEP_EVERY):
            later = replace(board, generated_at=NOW + timedelta(hours=hours))  # new rows at every render
            renderer.widget_body(status.build_view(later, zone, status.parse_params({})))
        assert len(sweeps) == 4
        assert all(b - a == SWEEP_EVERY for a, b in pairwise(sweeps))
        assert len(renderer._rows) <= (KEEP_ROWS_FOR_RENDERS + SWEEP_EVERY) * 40

    def test_a_big_body_is_compressed_for_speed(self) -> None:
        small, big = Payload(b"<li>ok</li>" * 1000), Payload(bytes(range(256)) * (FAST_GZIP_FROM // 256 + 1))
        assert gzip.decompress(small.gzipped) == small.body and gzip.decompress(big.gzipped) == big.body
        assert small.gzipped == gzip.compress(small.body, compresslevel=6, mtime=0)
        assert big.gzipped == gzip.compress(big.body, compresslevel=3, mtime=0)


class TestGridRows:
    """The grid makes its rows anew for every board: they are found by value, and must stay found while rows
    equal to them are in use, through any number of renders."""

    def test_rows_made_anew_for_each_board_are_rendered_once(self) -> None:
        board = a_full_board(40)
        zone = ZoneInfo(board.timezone)
        params = calendar.Params(view="grid", column="full")
        renderer = Renderer(max_rows=10)  # every render sweeps
        first = renderer.widget_body(calendar.build_view(board, zone, params))
        encoded = {row: renderer._by_value[("grid_row", row)] for row in calendar.build_view(board, zone, params).rows}
        for _ in range(3 * KEEP_ROWS_FOR_RENDERS):
            view = calendar.build_view(board, zone, params)
            assert renderer.widget_body(view) == first
        again = calendar.build_view(board, zone, params).rows
        assert all(renderer._by_value[("grid_row", row)] is encoded[row] for row in again), "no row rendered again"
        assert len(renderer._by_value) == len(set(again))
        assert first == Renderer().widget_body(calendar.build_view(board, zone, params))


class TestSplicedRows:
    """A widget's remembered rows are put into its bytes after the template ran: the body must be, byte for byte,
    what the template makes with the rows joined in place, whatever the services are called."""

    @staticmethod
    def joined_in_place(board: Board, query: dict[str, str]) -> bytes:
        reference = Renderer()
        view = status.build_view(board, ZoneInfo(board.timezone), status.parse_params(query))

        def joined(macro: Callable[[object], str], rows: list[object]) -> Markup:
            return Markup("".join(str(macro(row)) for row in rows))

        return reference.env.get_template(view.template).render(view=view, remembered_rows=joined).encode("utf-8")

    @pytest.mark.parametrize(
        "query", [{}, {"column": "full"}, {"column": "small", "limit": "8"}, {"status": "problems"}]
    )
    def test_the_body_is_the_template_with_its_rows_in_place(self, query: dict[str, str]) -> None:
        first = a_full_board(60)
        names = ["Ελληνικά 🗄", "nul\x00rows-0123456789abcdef-0\x00 mark-alike", "<b>bold</b> & café"]
        verdicts = [replace(v, name=names[i % 3]) if i % 4 == 1 else v for i, v in enumerate(first.verdicts)]
        board = replace(first, verdicts=tuple(verdicts))
        renderer = Renderer()
        zone = ZoneInfo(board.timezone)
        for shown in (first, board, board):  # rows rendered afresh, then remembered
            body = renderer.widget_body(status.build_view(shown, zone, status.parse_params(query)))
            assert body == self.joined_in_place(shown, query)
        assert b"\x00" not in renderer.widget_body(status.build_view(first, zone, status.parse_params(query)))

    def test_a_render_holds_little_more_than_its_body(self) -> None:
        """3,000 remembered rows, in a widget whose CSS is not Latin-1: joined into the template's text they were
        copied four times over as a str of two bytes a character, and the render peaked at five times its body
        (2.7 times with the rows spliced in as bytes; the problem rows are rendered by the template itself)."""
        board = a_full_board(3000)
        renderer = Renderer()
        view = status.build_view(board, ZoneInfo(board.timezone), status.parse_params({"column": "full"}))
        renderer.widget_body(view)  # the rows are remembered from here on, as from the second board on
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            body = renderer.widget_body(view)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert "▸".encode() in body and len(body) > 500_000
        assert peak < 3.5 * len(body), f"a {len(body):,}-byte body peaked at {peak:,} bytes"

    def test_a_page_is_its_template_with_its_widgets_in_place(self) -> None:
        """The page's widgets go into its bytes after its template ran, as rows go into a widget's."""
        first = a_full_board(30)
        names = ["Ελληνικά 🗄", "nul\x00rows-0123456789abcdef-0\x00 mark-alike", "<b>bold</b> & café"]
        board = replace(first, verdicts=tuple(replace(v, name=names[i % 3]) for i, v in enumerate(first.verdicts)))
        page = build_page(board, ZoneInfo(board.timezone), "a demo <note>", lambda route: f"/sub{route}")
        plain = Renderer()

        def rendered(views: tuple[tuple[str, View], ...]) -> list[tuple[str, Markup]]:
            return [(title, Markup(plain.widget_body(view).decode())) for title, view in views]

        expected = plain.env.get_template("page.html").render(
            page=page, panels=rendered(page.panels), side=rendered(page.side)
        )
        body = Renderer().page(page)
        assert body == expected.encode("utf-8")
        assert "Ελληνικά 🗄".encode() in body and body.count(b"<section>") > 6


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


def _week(board: object, column: str = "full") -> calendar.WeekView:
    view = calendar.build_view(board, Z, calendar.Params(view="week", column=column))  # type: ignore[arg-type]
    assert isinstance(view, calendar.WeekView)
    return view


def a_job_view(key: str, name: str, *, source: str = "pve1", outcome: RunOutcome | None = RunOutcome.OK) -> JobView:
    run = None
    if outcome is not None:
        run = JobRun(key, source, "UPID:1", NOW - timedelta(hours=9), NOW - timedelta(hours=8), outcome)
    return JobView(Job(key, source, JobKind.BACKUP, name, name), None, run, None)


class TestNames:
    def test_services_that_read_alike_get_the_system_that_holds_their_backups(self) -> None:
        board = a_board(
            (
                a_verdict("vault", name="Vault", sources=("pbs-main", "pve")),
                a_verdict("vault-backrest", name="vault (Backrest)", sources=("backrest",)),
                a_verdict("vault-db", name="vault on postgres", sources=("databasement",)),
                a_verdict("caddy", sources=("pbs-main", "pve")),
                a_verdict("app", name="app-configs (Backrest)", sources=("backrest",)),
            ),
            sources=(
                a_source("pbs-main"),
                a_source("pve", kind="pve"),
                a_source("backrest", kind="backrest"),
                a_source("databasement", kind="databasement"),
            ),
        )
        names = Names(board)
        assert [names.service(s) for s in ("vault", "vault-backrest", "vault-db", "caddy", "app")] == [
            "Vault · PBS",
            "vault · Backrest",
            "vault on postgres · Databasement",
            "caddy",
            "app-configs · Backrest",
        ]

    def test_labels_follow_a_change_of_any_service_name_source_or_source_kind(self) -> None:
        verdicts = (
            a_verdict("vault", name="Vault", sources=("pbs-main",)),
            a_verdict("vault-b", name="vault (Backrest)", sources=("backrest",)),
        )
        sources = (a_source("pbs-main"), a_source("backrest", kind="backrest"))
        board = a_board(verdicts, sources=sources)
        assert Names(board).service("vault") == "Vault · PBS"
        moved = replace(verdicts[1], sources=("pbs-main",))
        assert Names(replace(board, verdicts=(verdicts[0], moved))).service("vault") == "Vault"
        assert Names(board).service("vault") == "Vault · PBS"
        alone = replace(verdicts[1], name="keys (Backrest)")
        assert Names(replace(board, verdicts=(verdicts[0], alone))).service("vault") == "Vault"
        kinds = (a_source("pbs-main"), a_source("backrest", kind="pbs"))
        assert Names(replace(board, sources=kinds)).service("vault-b") == "vault (Backrest) · PBS backrest"
        assert Names(board).service("vault") == "Vault · PBS"

    def test_jobs_carry_their_system_and_what_they_do(self) -> None:
        board = a_board(
            slots=(
                a_slot("Daily", job_key="databasement/backup/01k", source="databasement"),
                a_slot("v-main-daily", job_key="pbs-main/verify/v", source="pbs-main", kind=JobKind.VERIFY),
            ),
            sources=(a_source("pbs-main"), a_source("databasement", kind="databasement")),
        )
        names = Names(board)
        assert names.job("databasement/backup/01k") == "Databasement · Daily dumps"
        assert names.job("pbs-main/verify/v") == "PBS · v-main-daily verify"

    def test_a_right_to_left_name_is_set_apart_from_what_follows_it(self) -> None:
        """In "covers web, db, خادم النسخ +2" the count joined the Arabic run and showed before the name."""
        rtl = "خادم النسخ"
        ids = ("web", "db", "mail", "dns", "git", "backup-ar", "x1", "x2")
        verdicts = tuple(a_verdict(i, name=rtl if i == "backup-ar" else i) for i in ids)
        board = a_board(verdicts, slots=(a_slot("نسخ يومي", job_key="pve/backup/ar", service_ids=ids),))
        names = Names(board)
        assert names.service("backup-ar") == f"\u2068{rtl}\u2069" and names.service("web") == "web"
        assert names.job("pve/backup/ar") == "pve1 · \u2068نسخ يومي\u2069 backup"
        (lane,) = build_week_view(board, Z, list(board.slots), None).lanes
        assert lane.covers == f"web, db, mail, dns, git, \u2068{rtl}\u2069 +2"

    def test_config_renames_and_hides_jobs_on_the_calendar(self) -> None:
        from backup_glance.config import Config

        slots = (a_slot("v-main-daily", job_key="pbs/verify/v"), a_slot("legacy", job_key="pve/backup/legacy"))
        board = a_board(slots=slots)
        jobs = Config.model_validate(
            {"jobs": {"pbs/verify/v": {"name": "Verify main"}, "pve/backup/legacy": {"hide": True}, "nope": {}}}
        ).jobs
        shown = apply_job_config(board, jobs)
        assert [(s.job_key, s.job_name) for s in shown.slots] == [("pbs/verify/v", "Verify main")]
        assert apply_job_config(board, {}) is board


class TestUpcoming:
    def test_it_lists_the_next_n_future_runs_in_order(self) -> None:
        slots = tuple(a_slot(f"job {h}", job_key=f"j/{h}", start=timedelta(hours=h)) for h in (5, 1, 3, -2))
        view = calendar.build_upcoming(a_board(slots=slots), Z, calendar.Params(n=2))
        assert [r.run.label for r in view.rows] == ["pve1 · job 1 backup", "pve1 · job 3 backup"]

    def test_it_shows_each_jobs_last_outcome(self) -> None:
        slot = a_slot("nightly", job_key="pve/backup/n", start=timedelta(hours=3))
        board = a_board(slots=(slot,), jobs=(a_job_view("pve/backup/n", "nightly", outcome=RunOutcome.FAILED),))
        (row,) = calendar.build_upcoming(board, Z, calendar.Params()).rows
        assert (row.last_mark, row.last_css) == ("✗", "color-negative")
        assert row.last_at is not None and row.last_at.text == "8h"

    def test_it_names_what_it_overlaps_and_waits_for(self) -> None:
        other = a_slot("verify main", job_key="pbs-main/verify/v-1", start=timedelta(days=1), kind=JobKind.VERIFY)
        slot = replace(
            a_slot("vault", start=timedelta(days=1), overlaps=("pbs-main/verify/v-1",)), after=("databasement",)
        )
        row = calendar.build_upcoming(a_board(slots=(slot, other)), Z, calendar.Params()).rows[0]
        assert row.overlaps == "overlaps pve1 · verify main"
        assert row.after == "after databasement"
        assert row.duration == "takes 45m"
        assert "Nov" not in row.clock and len(row.clock) <= len("Sat 02:00")

    def test_hundreds_of_overlapping_jobs_are_named_a_few_then_counted(self) -> None:
        keys = tuple(f"rs/backup/group-{n:03}" for n in range(300))
        slot = a_slot("vault", start=timedelta(days=1), overlaps=keys)
        (row,) = calendar.build_upcoming(a_board(slots=(slot,)), Z, calendar.Params()).rows
        assert row.overlaps.endswith(" +298") and row.overlaps.count(",") == 1


class TestWeek:
    def test_the_axis_fits_the_busy_hours(self) -> None:
        slots = (
            a_slot("dumps", job_key="d", start=timedelta(hours=-12)),  # 02:00 Vienna
            a_slot("verify", job_key="v", start=timedelta(hours=-8), duration=timedelta(minutes=3)),  # 06:00
        )
        view = _week(a_board(slots=slots))
        assert (view.axis.start, view.axis.end) == (120, 420)
        assert [label for _, label in view.axis.labels()] == ["02", "04", "06"]
        assert "02:00–07:00, a line per hour" in view.caption

    def test_each_job_gets_its_own_labelled_lane_in_time_order(self) -> None:
        slots = [
            a_slot("b", job_key="pve/backup/b", start=timedelta(days=d, hours=-12, minutes=20)) for d in range(-3, 4)
        ] + [a_slot("a", job_key="pve/backup/a", start=timedelta(days=d, hours=-12)) for d in range(-3, 4)]
        view = _week(a_board(slots=tuple(slots)))
        assert [(lane.label, lane.clock) for lane in view.lanes] == [
            ("pve1 · a backup", "02:00"),
            ("pve1 · b backup", "02:20"),
        ]
        assert all(len(lane.days) == 7 and sum(len(d.blocks) for d in lane.days) == 7 for lane in view.lanes)
        today = view.lanes[0].days[view.today_index]
        assert today.is_today and today.blocks[0].left == 33.33  # 02:00 on a 01:00-04:00 axis

    def test_blocks_are_coloured_by_what_happened_and_flag_runs_that_hurt_a_service(self) -> None:
        slots = (
            a_slot(start=-timedelta(hours=10), job_key="a", outcome=SlotOutcome.FAILED, detail="exit 2"),
            replace(
                a_slot(start=-timedelta(days=1, hours=10), job_key="a"),
                problems=(("vault", Status.VERIFY_FAILED, "snapshot failed verification"),),
            ),
            a_slot(start=timedelta(hours=12), job_key="a"),
        )
        board = a_board((a_verdict(status=Status.VERIFY_FAILED, reasons=("newest snapshot failed",)),), slots=slots)
        (lane,) = _week(board).lanes
        css = [b.run.css for d in lane.days for b in d.blocks]
        assert css == ["bkg-ok bkg-flag bkg-flag-crit", "bkg-fail", "bkg-next"]
        assert [m.service_id for m in lane.marks] == ["vault"]

    def test_a_service_in_no_lane_is_listed_with_its_cause(self) -> None:
        board = a_board((a_verdict("scratch", status=Status.UNPROTECTED, reasons=("CT 120 is in no job",)),))
        (mark,) = _week(board).others
        assert (mark.service_id, mark.word, mark.cause) == ("scratch", "unprotected", "no enabled job covers this")

    def test_the_small_column_gets_an_agenda_that_folds_daily_routine(self) -> None:
        daily = [a_slot("daily", job_key="d", start=timedelta(days=d, hours=-12)) for d in range(-3, 4)]
        weekly = a_slot("weekly", job_key="w", start=timedelta(days=1, hours=-10))
        failed = replace(daily[2], outcome=SlotOutcome.FAILED, detail="exit 2")
        view = calendar.build_view(
            a_board(slots=(*daily[:2], failed, *daily[3:], weekly)), Z, calendar.Params(view="week")
        )
        assert isinstance(view, calendar.AgendaView)
        assert [[r.label for r in d.runs] for d in view.days] == [
            [],
            [],
            ["pve1 · daily backup"],
            [],
            ["pve1 · weekly backup"],
            [],
            [],
        ]
        assert view.days[0].folded_text == "1 ok" and view.days[5].folded_text == "1 planned"
        assert view.days[2].runs[0].glyph == "✗"


class TestMonth:
    def test_it_is_a_monday_first_grid_of_the_month_with_today(self) -> None:
        view = calendar.build_view(a_board(), Z, calendar.Params(view="month", column="full"))
        assert isinstance(view, calendar.MonthView)
        assert (view.title, view.year, len(view.weeks)) == ("November", 2026, 6)
        days = [d for week in view.weeks for d in week]
        assert (days[0].day, days[0].in_month, days[-1].day) == (26, False, 6)
        assert [d.day for d in days if d.is_today] == [26]
        assert view.since == ""  # no slots at all: nothing to say

    def test_days_list_runs_that_are_not_routine_and_fold_the_rest(self) -> None:
        daily = [a_slot("daily", job_key="d", start=timedelta(days=d, hours=-12)) for d in range(-10, 6)]
        monthly = a_slot("check", job_key="c", start=timedelta(days=5, hours=-7), kind=JobKind.CHECK)  # Tue 1 Dec
        view = calendar.build_view(a_board(slots=(*daily, monthly)), Z, calendar.Params(view="month", column="full"))
        assert isinstance(view, calendar.MonthView)
        first = next(d for week in view.weeks for d in week if d.label == "Tue 1 Dec")
        assert [r.label for r in first.listed] == ["pve1 · check"] and first.folded_text == "1 planned"
        assert view.since == "runs from Mon 16 Nov"
        yesterday = next(d for week in view.weeks for d in week if d.label == "Wed 25 Nov")
        assert yesterday.css == "bkg-ok" and not yesterday.listed and yesterday.folded_text == "1 ✓"

    def test_every_service_that_is_not_ok_is_listed_with_the_run_that_caused_it(self) -> None:
        failed = a_slot("nightly", start=-timedelta(hours=10), outcome=SlotOutcome.FAILED)
        board = a_board((a_verdict(status=Status.FAILED, reasons=("exit 2",)), a_verdict("fine")), slots=(failed,))
        view = calendar.build_view(board, Z, calendar.Params(view="month"))
        assert isinstance(view, calendar.MonthView)
        (item,) = view.attention
        assert item.mark.service_id == "vault" and item.run is not None and item.run.when == "Thu 26 Nov 04:00"


class TestGrid:
    def test_it_marks_the_worst_outcome_of_each_day(self) -> None:
        slots = (
            a_slot(start=-timedelta(days=1, hours=2)),
            a_slot(start=-timedelta(days=1, hours=1), job_key="x", outcome=SlotOutcome.FAILED, detail="exit 1"),
            a_slot(start=timedelta(days=1)),
        )
        view = calendar.build_view(a_board((a_verdict(),), slots=slots), Z, calendar.Params(view="grid", column="full"))
        assert isinstance(view, calendar.GridView)
        cells = view.rows[0].cells
        assert len(cells) == 22
        assert cells[view.today_index - 1].css == "bkg-fail"
        assert "exit 1" in cells[view.today_index - 1].tip and "Wed 25 Nov" in cells[view.today_index - 1].tip
        assert cells[view.today_index + 1].css == "bkg-next"
        assert cells[0].css == ""

    def test_dates_carry_weekday_and_month_and_a_caption_says_the_range(self) -> None:
        view = calendar.build_view(a_board((a_verdict(),)), Z, calendar.Params(view="grid", column="full"))
        assert isinstance(view, calendar.GridView)
        assert view.caption == "last 14 days · next 7 · 12 Nov – 3 Dec"
        assert [(h.weekday, h.day, h.month) for h in view.head[:2]] == [("T", "12", "Nov"), ("F", "13", "")]
        assert next(h for h in view.head if h.day == "1").month == "Dec"
        small = calendar.build_view(a_board((a_verdict(),)), Z, calendar.Params(view="grid"))
        assert isinstance(small, calendar.GridView)
        assert len(small.head) == 14 and small.head[small.today_index].label == "Thu 26"

    def test_a_service_that_is_not_ok_is_marked_on_its_row_and_on_the_cell_that_caused_it(self) -> None:
        flagged = replace(
            a_slot(start=-timedelta(hours=10)),
            problems=(("vault", Status.OUT_OF_ORDER, "vault ran before databasement finished"),),
        )
        board = a_board(
            (
                a_verdict(status=Status.OUT_OF_ORDER, reasons=("vault ran before databasement finished",)),
                a_verdict("scratch", status=Status.UNPROTECTED, reasons=("CT 120 is in no job",)),
            ),
            slots=(flagged,),
        )
        view = calendar.build_view(board, Z, calendar.Params(view="grid"))
        assert isinstance(view, calendar.GridView)
        scratch, vault = sorted(view.rows, key=lambda r: r.service_id)
        assert (scratch.css, scratch.note) == ("color-negative", "no enabled job covers this")
        assert vault.css == "bkg-warn" and vault.icon == "warning" and "out of order" in vault.tip
        cell = vault.cells[view.today_index]
        assert cell.css == "bkg-ok bkg-flag" and "before databasement" in cell.tip
        assert ("bkg-flag", "ran, with a problem for a service") in view.legend

    def test_limit_turns_into_collapse_after(self) -> None:
        board = a_board(tuple(a_verdict(f"s{i}") for i in range(6)))
        view = calendar.build_view(board, Z, calendar.Params(view="grid", limit=4))
        assert isinstance(view, calendar.GridView) and view.collapse_after == 4


def test_fit_axis_falls_back_to_the_whole_day_for_nothing() -> None:
    assert (fit_axis([]).start, fit_axis([]).end) == (0, 1440)


class TestVersionCache:
    """Answers are cached per board; a board published on another thread mid-render never gets the old one."""

    def test_an_answer_built_while_a_new_board_is_published_is_not_kept_for_the_new_board(self) -> None:
        old, new = a_board((a_verdict("old"),)), a_board((a_verdict("new"),))
        store = BoardStore(old)
        cache: VersionCache[str] = VersionCache(store)

        def build_while_publishing(board: Board) -> str:
            store.publish(new)  # the collector's worker thread, between the cache's read and its write
            return board.verdicts[0].service_id

        assert cache.get("status", build_while_publishing) == "old"
        assert cache.get("status", lambda board: board.verdicts[0].service_id) == "new"

    def test_answers_warmed_for_a_board_are_served_after_its_publish(self) -> None:
        old, new = a_board((a_verdict("old"),)), a_board((a_verdict("new"),))
        store = BoardStore(old)
        cache: VersionCache[str] = VersionCache(store)
        cache.warm(new, "status", lambda board: "warmed " + board.verdicts[0].service_id)
        store.publish(new)
        assert cache.get("status", lambda board: "built on request") == "warmed new"

    def test_an_answer_warmed_for_the_board_on_show_is_served_from_then_on(self) -> None:
        board = a_board((a_verdict("first"),))
        store = BoardStore(a_board(()))
        cache: VersionCache[str] = VersionCache(store)
        store.publish(board)  # the first board: on show before its answers are made
        cache.warm(board, "status", lambda board: "warmed " + board.verdicts[0].service_id)
        assert cache.get("status", lambda board: "built on request") == "warmed first"
        cache.warm(a_board((a_verdict("next"),)), "status", lambda board: "warmed next")  # not on show: kept aside
        assert cache.get("status", lambda board: "built on request") == "warmed first"

    def test_what_was_asked_for_lately_is_warmed_and_what_was_not_asked_for_a_day_is_not(self) -> None:
        now = [0.0]
        store = BoardStore(a_board((a_verdict("first"),)))
        cache: VersionCache[str] = VersionCache(store, clock=lambda: now[0])
        built: list[str] = []

        def builder(key: str) -> Callable[[Board], str]:
            def build(board: Board) -> str:
                built.append(key)
                return f"{key} of {board.verdicts[0].service_id}"

            return build

        cache.expect("status", builder("status"))  # announced at the start
        cache.expect("calendar", builder("calendar"))
        cache.warm_asked(a_board((a_verdict("second"),)))
        assert sorted(built) == ["calendar", "status"]  # nothing asked for yet: what was announced
        cache.get("calendar", builder("calendar"))  # the first request: the guesses not asked for are let go
        cache.get("datastores", builder("datastores"))
        now[0] = 3600.0
        third = a_board((a_verdict("third"),))
        built.clear()
        cache.warm_asked(third)
        store.publish(third)
        assert sorted(built) == ["calendar", "datastores"]
        assert cache.get("calendar", builder("calendar")) == "calendar of third" and len(built) == 2
        now[0] = WARM_FOR_S + 1  # the calendar was asked for again at 3600, the datastores not since 0
        built.clear()
        cache.warm_asked(a_board((a_verdict("fourth"),)))
        assert built == ["calendar"]

    def test_odd_query_strings_cannot_make_every_publish_render_more_than_a_few_answers(self) -> None:
        store = BoardStore(a_board((a_verdict("first"),)))
        cache: VersionCache[str] = VersionCache(store)
        for limit in range(WARM_KEYS * 10):
            cache.get(("status", limit), lambda board, limit=limit: str(limit))
        following = a_board((a_verdict("next"),))
        cache.warm_asked(following)
        store.publish(following)
        served = [cache.get(("status", limit), lambda board: "built on request") for limit in range(WARM_KEYS * 10)]
        warmed = [limit for limit, answer in enumerate(served) if answer != "built on request"]
        assert warmed == list(range(WARM_KEYS * 9, WARM_KEYS * 10))  # the latest asked, no more

    def test_answers_are_kept_up_to_a_number_of_bytes_and_then_made_per_request(self) -> None:
        """`limit=1..512` at 2,000 services: 512 alike answers of 1.6 MB (and their gzip) held 900 MB."""
        store = BoardStore(a_board((a_verdict("first"),)))
        cache: VersionCache[str] = VersionCache(store, weigh=len, max_bytes=100)
        made: list[int] = []

        def build(board: Board, limit: int) -> str:
            made.append(limit)
            return "x" * 30

        for limit in (1, 2, 3, 4, 1, 2, 3, 4):
            cache.get(("status", limit), lambda board, limit=limit: build(board, limit))
        assert made == [1, 2, 3, 4, 4]  # three answers fit in 100 bytes; the fourth is made each time

    def test_a_stream_of_odd_query_strings_does_not_push_out_what_glance_asks_for_again_and_again(self) -> None:
        store = BoardStore(a_board((a_verdict("first"),)))
        cache: VersionCache[str] = VersionCache(store)
        for _ in range(3):  # a Glance page, reloaded
            for widget in ("status", "calendar"):
                cache.get(widget, lambda board, widget=widget: widget)
        for limit in range(WARM_KEYS * 10):
            cache.get(("status", limit), lambda board, limit=limit: str(limit))
        built: list[str] = []
        following = a_board((a_verdict("next"),))
        cache.warm_asked(following)
        store.publish(following)
        for widget in ("status", "calendar"):
            assert cache.get(widget, lambda board: built.append("made") or "made") == widget
        assert built == []
