"""Routes through Starlette's TestClient: headers, status codes, params, JSON shape, monitor URLs, auth."""

from __future__ import annotations

import base64
import re
import typing
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import ClientFactory
from web_builders import NOW, a_board, a_full_board, a_slot, a_source, a_verdict, every_status

from backup_glance.model import STATUS_SEVERITY, Copy, Protection, Risk, RiskKind, Severity, SlotOutcome, Status
from backup_glance.web.api import ServiceDict, StatusDict

TOKEN = "t0ken-s3cret"
FRAGMENTS = [
    "/glance/status",
    "/glance/status?column=full",
    "/glance/status?status=problems&limit=3",
    "/glance/datastores",
    "/glance/datastores?column=full",
    "/glance/calendar",
    "/glance/calendar?view=week",
    "/glance/calendar?view=week&column=full",
    "/glance/calendar?view=month",
    "/glance/calendar?view=month&column=full",
    "/glance/calendar?view=grid",
    "/glance/calendar?view=grid&column=full",
    "/glance/calendar?view=grid&column=full&limit=10",
]
PROTECTED = ["/", "/api/v1/status", "/glance/status", "/health", "/health/vault", "/calendar.ics"]


class TestHealthz:
    def test_it_answers_ok_with_the_board_time(self, client_for: ClientFactory) -> None:
        response = client_for(a_board()).get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "board_generated_at": "2026-11-26T13:00:00+00:00"}


class TestGlanceHeaders:
    @pytest.mark.parametrize("url", FRAGMENTS)
    def test_every_fragment_has_glance_headers_and_no_script(self, client_for: ClientFactory, url: str) -> None:
        response = client_for(a_full_board(50)).get(url)
        assert response.status_code == 200
        assert response.headers["Widget-Content-Type"] == "html"
        assert response.headers["Widget-Title"]
        assert "Widget-Title-URL" not in response.headers  # never the Host header a client sent
        assert "<script" not in response.text.lower()
        assert len(response.content) < 40 * 1024, f"{url}: {len(response.content)} bytes"

    def test_title_url_is_the_configured_base_url(self, client_for: ClientFactory) -> None:
        client = client_for(a_board(), base_url="https://backups.lan")
        assert client.get("/glance/status").headers["Widget-Title-URL"] == "https://backups.lan/"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("/glance/status?column=wide", "bad column &#39;wide&#39;: use small or full"),
            ("/glance/status?limit=0", "bad limit &#39;0&#39;"),
            ("/glance/calendar?view=year", "bad view &#39;year&#39;: use upcoming or week or month or grid"),
            ("/glance/nope", "no widget &#39;nope&#39;: calendar, datastores, status"),
            # a typo in Glance's `parameters:` showed the defaults without a word; a list repeats the name
            ("/glance/status?limt=8", "unknown parameter &#39;limt&#39;: did you mean limit? (known: column, limit,"),
            ("/glance/datastores?n=5", "unknown parameter &#39;n&#39;: (known: column, source)"),
            ("/glance/calendar?limit=5&limit=8", "limit given 2 times: give it once"),
        ],
    )
    def test_bad_parameters_get_an_error_fragment_naming_them(
        self, client_for: ClientFactory, url: str, message: str
    ) -> None:
        response = client_for(a_board()).get(url)
        assert response.status_code in (400, 404)
        assert response.headers["Widget-Content-Type"] == "html"
        assert message in response.text
        assert "ERROR" in response.text


class TestStatusFragment:
    def test_status_icons_have_explicit_size_and_relative_times_are_seconds(self, client_for: ClientFactory) -> None:
        text = client_for(a_board(every_status())).get("/glance/status").text
        assert re.search(r'<svg[^>]* width="18" height="18"', text)
        assert f'data-dynamic-relative-time="{int((NOW - timedelta(hours=9)).timestamp())}"' in text

    def test_problem_reasons_go_in_a_glance_popover(self, client_for: ClientFactory) -> None:
        board = a_board((a_verdict("vault", status=Status.LATE, reasons=("due 04:00 + 1h grace",)),))
        text = client_for(board).get("/glance/status").text
        assert 'data-popover-type="html"' in text and '<div data-popover-html class="bkg-wrap">' in text
        assert "due 04:00 + 1h grace" in text

    @pytest.mark.parametrize("column", ["small", "full"])
    def test_a_problem_row_has_one_short_cause_line_and_every_reason_in_its_popover(
        self, client_for: ClientFactory, column: str
    ) -> None:
        reason = "last attempt failed: zfs error: cannot create snapshot 'rpool/data/subvol-104-disk-0': out of space"
        board = a_board((a_verdict("postgres", status=Status.FAILED, reasons=(reason, "no backup since 04:00")),))
        text = client_for(board).get(f"/glance/status?column={column}").text
        popover, row = text.split('<div data-popover-html class="bkg-wrap">', 1)[1].split("</div>", 1)
        escaped = reason.replace("'", "&#39;")
        assert escaped in popover and "no backup since 04:00" in popover
        assert escaped not in row  # the raw error stays out of the row
        assert 'class="size-h6 text-truncate"' in row and "Thu 05:00 run failed" in row  # one line, says when

    def test_limit_uses_glance_collapsible_list(self, client_for: ClientFactory) -> None:
        text = client_for(a_full_board(50)).get("/glance/status?limit=5").text
        assert 'class="bkg-rows-status list list-gap-10 list-with-separator collapsible-container"' in text
        assert 'data-collapse-after="5"' in text

    def test_problems_only_hides_ok_services_and_says_how_many_are_fine(self, client_for: ClientFactory) -> None:
        board = a_board((a_verdict("fine"), a_verdict("broken", status=Status.FAILED, reasons=("exit 2",))))
        text = client_for(board).get("/glance/status?status=problems").text
        assert "broken" in text and "fine" not in text
        assert '+ <span class="color-positive">1 ok</span>' in text

    def test_all_ok_with_problems_only_says_so(self, client_for: ClientFactory) -> None:
        text = client_for(a_board((a_verdict("fine"),))).get("/glance/status?status=problems").text
        assert "All 1 ok" in text

    def test_the_summary_line_comes_first(self, client_for: ClientFactory) -> None:
        text = client_for(a_board(every_status())).get("/glance/status").text
        summary = text.split('class="bkg-sum-status size-h5">', 1)[1].split("</p>", 1)[0]
        bad = sum(STATUS_SEVERITY[status] is not Severity.OK for status in Status)
        assert f">{bad} need attention</span> · " in summary and f">{len(Status) - bad} ok</span>" in summary
        assert summary and text.index("bkg-sum-status") < text.index("bkg-rows-status")

    def test_healthy_services_fold_into_one_row_in_the_small_column(self, client_for: ClientFactory) -> None:
        board = a_board((a_verdict("fine"), a_verdict("broken", status=Status.FAILED, reasons=("exit 2",))))
        small = client_for(board).get("/glance/status").text
        assert '<details class="bkg-ok-status"><summary class="size-h5"><span class="color-positive">✓ 1 ok' in small
        full = client_for(board).get("/glance/status?column=full").text
        assert "<details" not in full and "bkg-oks-status" in full

    def test_protection_shows_as_a_line_in_the_small_column_and_as_columns_in_the_full_one(
        self, client_for: ClientFactory
    ) -> None:
        local = Copy("main", "pbs-main", False, NOW - timedelta(hours=9), encrypted=True)
        offsite = Copy("b2", "backrest", True, NOW - timedelta(hours=14), encrypted=False)
        lagging = Protection(
            (local, offsite),
            offsite_lag=timedelta(hours=5),
            encrypted=False,
            last_restore_test_at=NOW - timedelta(days=41),
            risks=(Risk(RiskKind.UNENCRYPTED, "offsite copy b2 is not encrypted"),),
        )
        board = a_board(
            (
                replace(
                    a_verdict("risky", status=Status.AT_RISK, reasons=("offsite copy b2 is not encrypted",)),
                    protection=lagging,
                ),
                replace(a_verdict("fine"), protection=Protection((local,), encrypted=True)),
            )
        )
        client = client_for(board)
        small = client.get("/glance/status").text
        line = "2 copies · 1 offsite 5h behind · unencrypted · restored 41d ago"
        assert f'<div class="size-h6 color-subdue text-truncate">{line}</div>' in small
        assert '· 1 copy · no offsite · encrypted"' in small  # the healthy row's popover
        full = client.get("/glance/status?column=full").text
        assert ">Copies</span>" in full and ">Encrypted</span>" in full and ">Restore test</span>" in full
        assert '>2<span class="color-subdue"> · 1 offsite 5h behind</span></div>' in full and ">41d ago</div>" in full
        risks = next(s for s in client.get("/api/v1/status").json()["services"] if s["id"] == "risky")["risks"]
        assert risks == [{"kind": "unencrypted", "detail": "offsite copy b2 is not encrypted"}]

    def test_source_filter(self, client_for: ClientFactory) -> None:
        verdicts = (a_verdict("a", sources=("pbs-main",)), a_verdict("b", sources=("backrest",)))
        board = a_board(verdicts, sources=(a_source(), a_source("backrest", kind="backrest")))
        text = client_for(board).get("/glance/status?source=backrest").text
        assert ">b<" in text and ">a<" not in text

    @pytest.mark.parametrize("widget", ["status", "calendar", "datastores"])
    def test_a_source_the_board_does_not_have_is_an_error_naming_the_ones_it_has(
        self, client_for: ClientFactory, widget: str
    ) -> None:
        board = a_board((a_verdict("a", sources=("pbs-main",)),), sources=(a_source(), a_source("nas", kind="restic")))
        client = client_for(board)
        response = client.get(f"/glance/{widget}?source=pbs-mian")
        assert response.status_code == 400
        assert "unknown source &#39;pbs-mian&#39;: use one of nas, pbs-main" in response.text
        assert client.get(f"/glance/{widget}?source=nas").status_code == 200


class TestCalendarFragment:
    def test_the_week_says_what_a_run_waits_for_in_its_popover(self, client_for: ClientFactory) -> None:
        chained = replace(a_slot(start=timedelta(hours=2), outcome=SlotOutcome.RUNNING), after=("databasement",))
        text = client_for(a_board(slots=(chained,))).get("/glance/calendar?view=week&column=full").text
        assert "waits for databasement" in text.split('<div data-popover-html class="bkg-wrap">', 1)[1]

    def test_the_legend_lists_only_the_marks_shown(self, client_for: ClientFactory) -> None:
        text = client_for(a_board(slots=(a_slot(),))).get("/glance/calendar?view=week&column=full").text
        legend = text.split('class="bkg-key-cal', 1)[1]
        assert "ok</span>" in legend
        for word in ("failed", "missed", "running", "planned", "overlaps"):
            assert word not in legend, word

    def test_config_renames_and_hides_jobs_in_the_widgets_and_the_feed(self) -> None:
        import warnings

        from backup_glance.board import BoardStore
        from backup_glance.config import Config
        from backup_glance.web import create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from starlette.testclient import TestClient
        slots = (
            a_slot("v-main-daily", job_key="pbs-main/verify/v", start=timedelta(hours=2), source="pbs-main"),
            a_slot("legacy", job_key="pve/backup/legacy", start=timedelta(hours=3)),
        )
        jobs = {"pbs-main/verify/v": {"name": "Verify main"}, "pve/backup/legacy": {"hide": True}}
        config = Config.model_validate({"timezone": "Europe/Vienna", "jobs": jobs})
        client = TestClient(create_app(config, BoardStore(a_board(slots=slots))))
        upcoming = client.get("/glance/calendar?view=upcoming").text
        assert "PBS · Verify main" in upcoming and "legacy" not in upcoming
        feed = client.get("/calendar.ics").text
        assert "Verify main" in feed and "legacy" not in feed

    @pytest.mark.parametrize("view", ["week&column=full", "week", "month", "month&column=full", "grid"])
    def test_popovers_not_title_tooltips(self, client_for: ClientFactory, view: str) -> None:
        failed = a_slot(start=-timedelta(hours=3), outcome=SlotOutcome.FAILED, detail="exit 2")
        text = client_for(a_board((a_verdict(),), slots=(failed,))).get(f"/glance/calendar?view={view}").text
        assert " title=" not in text
        assert "data-popover-type=" in text and "exit 2" in text

    def test_running_is_drawn_differently_from_ok(self, client_for: ClientFactory) -> None:
        # Glance's default dark theme gives positive and primary the same colour: running must not rely on it.
        text = client_for(a_board(slots=(a_slot(),))).get("/glance/calendar?view=week").text
        ok = re.search(r"\.bkg-cal \.bkg-ok\{([^}]*)\}", text)
        run = re.search(r"\.bkg-cal \.bkg-run\{([^}]*)\}", text)
        assert ok and run and "gradient" in run.group(1) and "gradient" not in ok.group(1)


class TestApi:
    def test_it_has_the_declared_shape(self, client_for: ClientFactory) -> None:
        data = client_for(a_full_board(12)).get("/api/v1/status").json()
        assert set(data) == set(typing.get_type_hints(StatusDict))
        assert set(data["services"][0]) == set(typing.get_type_hints(ServiceDict))
        assert data["generated_at"] == "2026-11-26T14:00:00+01:00"
        assert {service["as_of"] for service in data["services"]} == {data["generated_at"]}  # judged with the board
        assert data["overall"] == "critical"
        assert sum(data["counts"]["status"].values()) == 12
        assert set(data["counts"]["severity"]) == {s.value for s in Severity}
        assert data["datastores"][0]["full_in_days"] == 41.0
        assert data["sources"][0]["healthy"] is True
        service = data["services"][0]
        assert service["guest"] == {"vmid": 101, "type": "qemu", "node": "pve1"}
        assert service["schedule"]["timezone"] == "Europe/Vienna"
        assert service["last_success_at"].endswith("+01:00")
        assert service["size_trend"] == [
            ["2026-11-25T05:00:00+01:00", 11 * 1024**3],
            ["2026-11-26T05:00:00+01:00", 12 * 1024**3],
        ]

    def test_it_is_serialised_once_per_board_version(self, client_for: ClientFactory) -> None:
        client = client_for(a_board((a_verdict(),)))
        first = client.get("/api/v1/status").content
        web = client.app.state.web  # type: ignore[attr-defined]
        web.store.publish(a_board((a_verdict("other"),)))
        second = client.get("/api/v1/status").content
        assert b'"vault"' in first and b'"other"' in second


class TestMonitor:
    def test_ok_service_is_200_and_late_is_503_with_why(self, client_for: ClientFactory) -> None:
        board = a_board(
            (
                a_verdict("db"),
                a_verdict(
                    "vault",
                    status=Status.LATE,
                    reasons=("last backup 2026-11-26 04:03, due 04:00 + 1h grace",),
                ),
            )
        )
        client = client_for(board)
        ok = client.get("/health/db")
        late = client.get("/health/vault")
        assert (ok.status_code, ok.text) == (200, "db: ok\n")
        assert late.status_code == 503
        assert late.text == "vault: late — last backup 2026-11-26 04:03, due 04:00 + 1h grace\n"
        assert late.headers["content-type"].startswith("text/plain")

    @pytest.mark.parametrize("status", [Status.OK, Status.RUNNING, Status.SILENCED])
    def test_severity_ok_statuses_are_200(self, client_for: ClientFactory, status: Status) -> None:
        assert client_for(a_board((a_verdict(status=status),))).get("/health/vault").status_code == 200

    def test_unknown_service_is_404(self, client_for: ClientFactory) -> None:
        response = client_for(a_board()).get("/health/nope")
        assert (response.status_code, response.text) == (404, "unknown service 'nope'\n")

    def test_overall_names_the_problems(self, client_for: ClientFactory) -> None:
        response = client_for(a_board(every_status())).get("/health")
        assert response.status_code == 503
        assert response.text.startswith("9 of 12 services need attention: ")

    def test_a_source_that_never_answered_is_503_naming_it(self, client_for: ClientFactory) -> None:
        failing = replace(a_source(error="token rejected (HTTP 401)"), observation=None, last_success_at=None)
        response = client_for(a_board(sources=(failing,))).get("/health")
        assert response.status_code == 503
        assert response.text == "source(s) not answering: pbs-main: token rejected (HTTP 401)\n"

    def test_overall_all_ok_is_200(self, client_for: ClientFactory) -> None:
        response = client_for(a_board((a_verdict(),))).get("/health")
        assert (response.status_code, response.text) == (200, "all 1 services ok\n")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class TestAuth:
    @pytest.mark.parametrize("url", PROTECTED)
    def test_missing_token_is_401_with_a_basic_challenge(self, client_for: ClientFactory, url: str) -> None:
        response = client_for(a_board((a_verdict(),)), token=TOKEN).get(url)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="backup-glance"'
        assert "vault" not in response.text and TOKEN not in response.text

    @pytest.mark.parametrize(
        "headers",
        [{"Authorization": f"Bearer {TOKEN}"}, _basic("glance", TOKEN), _basic("", TOKEN)],
        ids=["bearer", "basic", "basic-no-user"],
    )
    def test_right_token_passes(self, client_for: ClientFactory, headers: dict[str, str]) -> None:
        client = client_for(a_board((a_verdict(),)), token=TOKEN)
        for url in PROTECTED:
            assert client.get(url, headers=headers).status_code in (200, 503), url

    @pytest.mark.parametrize(
        "headers",
        [{"Authorization": "Bearer wrong"}, _basic("glance", "wrong"), _basic(TOKEN, ""), {"Authorization": TOKEN}],
        ids=["bearer", "basic", "token-as-user", "no-scheme"],
    )
    def test_wrong_token_is_401(self, client_for: ClientFactory, headers: dict[str, str]) -> None:
        response = client_for(a_board(), token=TOKEN).get("/api/v1/status", headers=headers)
        assert response.status_code == 401 and TOKEN not in response.text

    def test_healthz_stays_open(self, client_for: ClientFactory) -> None:
        assert client_for(a_board(), token=TOKEN).get("/healthz").status_code == 200

    def test_no_token_configured_means_open(self, client_for: ClientFactory) -> None:
        assert client_for(a_board()).get("/api/v1/status").status_code == 200


class TestPage:
    def test_it_shows_source_errors_and_the_demo_note_and_can_be_framed(self, client_for: ClientFactory) -> None:
        from web_builders import a_source

        board = a_board((a_verdict(),), sources=(a_source(error="pbs 'pbs-main': token rejected (HTTP 401)"),))
        response = client_for(board, demo_note="Demo: simulated homelab").get("/")
        assert response.status_code == 200
        assert "X-Frame-Options" not in response.headers
        assert "PBS &#39;pbs-main&#39;: token rejected (HTTP 401)" in response.text
        assert "Demo: simulated homelab" in response.text
        assert "<script" not in response.text and "<link" not in response.text


class TestCompression:
    def test_gzip_when_asked_as_go_clients_do(self, client_for: ClientFactory) -> None:
        client = client_for(a_full_board(50))
        zipped = client.get("/glance/status", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/glance/status", headers={"Accept-Encoding": "identity"})
        assert zipped.headers["Content-Encoding"] == "gzip" and "content-encoding" not in plain.headers
        assert zipped.text == plain.text

    @pytest.mark.parametrize(
        ("header", "gzipped"),
        [("gzip;q=0, identity", False), ("nogzip", False), ("GZIP", True), ("br, gzip;q=0.5", True), ("*", True)],
    )
    def test_gzip_only_when_the_client_accepts_it(self, client_for: ClientFactory, header: str, gzipped: bool) -> None:
        response = client_for(a_full_board(50)).get("/api/v1/status", headers={"Accept-Encoding": header})
        assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
        assert response.json()["services"]


class TestHostNeverEchoed:
    def test_a_trailing_slash_is_not_redirected_to_the_clients_host(self, client_for: ClientFactory) -> None:
        """Starlette's slash redirect answered "location: http://nas/api/v1/status" for "Host: nas"."""
        response = client_for(a_board()).get("/api/v1/status/", headers={"Host": "nas"}, follow_redirects=False)
        assert response.status_code == 404 and "location" not in response.headers
