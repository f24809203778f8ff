"""Validators over real HTTP (the app behind the same hardened uvicorn `serve` runs, on a socket): a calendar app
that sends back the ETag or Last-Modified it got is answered 304 with no body until the feed's events change;
the page, the widgets, the API and the metrics revalidate by ETag alone. Also: `judging_failed_at` in the API, as
the collector publishes it."""

from __future__ import annotations

import asyncio
import doctest
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from icalendar import Calendar
from pydantic import SecretStr
from web_builders import NOW, ZONE, a_board, a_slot, a_source, a_verdict

import backup_glance.collector as collector_module
import backup_glance.web.app as app_module
from backup_glance.board import BoardStore
from backup_glance.collector import Collector
from backup_glance.config import Config, ServerConfig
from backup_glance.health import Defaults
from backup_glance.httpserver import GuardedProtocol, GuardedServer, Limits
from backup_glance.model import Board, CalendarSlot, SlotOutcome, SourceState
from backup_glance.serving import bind_socket
from backup_glance.web import conditional, create_app
from backup_glance.web.conditional import http_date

T = TypeVar("T")
TOKEN = "caching-test-token-0123456789"
KEY = "caching-calendar-key-0123456789"
PLAIN = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


@dataclass
class Served:
    url: str
    store: BoardStore

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> httpx.Response:
        # A fresh client per request: nothing of httpx's own is carried from one answer to the next.
        with httpx.Client(base_url=self.url, timeout=10) as client:
            return client.request(method, path, headers={**PLAIN, **(headers or {})})

    def publish(self, board: Board) -> None:
        self.store.prepare(board)
        self.store.publish(board)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """`serve(board, token=None, calendar_key=None)`: the app on 127.0.0.1, as `backup-glance serve` runs it."""
    running: list[tuple[GuardedServer, threading.Thread]] = []

    def start(board: Board | BoardStore, *, token: str | None = None, calendar_key: str | None = None) -> Served:
        store = board if isinstance(board, BoardStore) else BoardStore(board)
        settings = ServerConfig(
            auth_token=SecretStr(token) if token else None,
            calendar_key=SecretStr(calendar_key) if calendar_key else None,
        )
        config = Config(timezone=ZONE, server=settings)
        app = create_app(config, store)
        sock = bind_socket("127.0.0.1", 0)
        server = GuardedServer(
            uvicorn.Config(
                app,
                http=GuardedProtocol,
                ws="none",
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
            ),
            Limits(max_connections=20),
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return Served(f"http://127.0.0.1:{sock.getsockname()[1]}", store)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(10)


def _recent(ago: timedelta = timedelta(hours=1)) -> datetime:
    """A board time in the past of this machine's clock (Last-Modified is never later than the answer)."""
    return (datetime.now(UTC) - ago).replace(microsecond=0)


def _slot(
    at: datetime, start: timedelta, outcome: SlotOutcome | None = None, job_key: str = "pve/backup/vault"
) -> CalendarSlot:
    slot = a_slot(start=start, outcome=outcome, job_key=job_key)
    return replace(slot, start_at=at + start)


def _board_at(at: datetime, *slots: CalendarSlot) -> Board:
    return replace(a_board(slots=slots), generated_at=at)


def _vevents(response: httpx.Response) -> list[object]:
    return list(Calendar.from_ical(response.content).walk("VEVENT"))


def test_the_validators_doctests_pass() -> None:
    assert doctest.testmod(conditional).failed == 0


class TestCalendarFeed:
    def test_a_calendar_app_that_sends_the_etag_back_gets_304_without_a_body(
        self, serve: Callable[..., Served]
    ) -> None:
        served = serve(_board_at(_recent(), _slot(_recent(), timedelta(hours=3))))
        first = served.get("/calendar.ics")
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('"') and len(etag) == 34  # strong: no W/
        assert first.headers["cache-control"] == "no-store" and first.headers["vary"] == "Accept-Encoding"

        again = served.get("/calendar.ics", {"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-store"
        assert again.headers["last-modified"] == first.headers["last-modified"]
        assert "content-type" not in again.headers and "content-encoding" not in again.headers
        assert "content-security-policy" in again.headers  # the security headers stay on every answer

    @pytest.mark.parametrize(
        ("header", "status"),
        [("W/{tag}", 304), ('"other", {tag}', 304), ("*", 304), ('"other"', 200), ('W/"other"', 200)],
    )
    def test_if_none_match_is_compared_weakly_and_as_a_list(
        self, serve: Callable[..., Served], header: str, status: int
    ) -> None:
        served = serve(_board_at(_recent(), _slot(_recent(), timedelta(hours=3))))
        etag = served.get("/calendar.ics").headers["etag"]
        response = served.get("/calendar.ics", {"If-None-Match": header.format(tag=etag)})
        assert response.status_code == status
        assert (response.content == b"") is (status == 304)

    def test_head_has_the_same_validators_and_is_conditional_too(self, serve: Callable[..., Served]) -> None:
        served = serve(_board_at(_recent(), _slot(_recent(), timedelta(hours=3))))
        got = served.get("/calendar.ics")
        head = served.get("/calendar.ics", method="HEAD")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == got.headers["etag"]
        assert head.headers["last-modified"] == got.headers["last-modified"]
        assert head.headers["content-length"] == str(len(got.content))
        conditional_head = served.get("/calendar.ics", {"If-None-Match": got.headers["etag"]}, method="HEAD")
        assert conditional_head.status_code == 304 and conditional_head.content == b""

    def test_the_gzip_answer_has_a_tag_of_its_own(self, serve: Callable[..., Served]) -> None:
        at = _recent()
        served = serve(_board_at(at, *(_slot(at, timedelta(hours=h), job_key=f"j{h}") for h in range(1, 40))))
        plain = served.get("/calendar.ics")
        zipped = served.get("/calendar.ics", GZIP)
        assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
        assert zipped.headers["etag"] != plain.headers["etag"]
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert served.get("/calendar.ics", {**GZIP, "If-None-Match": zipped.headers["etag"]}).status_code == 304
        # A copy of the other coding is not what would be sent now: the whole answer, in the coding asked for.
        crossed = served.get("/calendar.ics", {**GZIP, "If-None-Match": plain.headers["etag"]})
        assert crossed.status_code == 200 and crossed.headers["content-encoding"] == "gzip"
        assert served.get("/calendar.ics", {"If-None-Match": zipped.headers["etag"]}).status_code == 200

    def test_the_calendar_key_opens_the_conditional_get_and_no_key_still_gets_401(
        self, serve: Callable[..., Served]
    ) -> None:
        served = serve(_board_at(_recent(), _slot(_recent(), timedelta(hours=3))), token=TOKEN, calendar_key=KEY)
        etag = served.get(f"/calendar.ics?key={KEY}").headers["etag"]
        refused = served.get("/calendar.ics", {"If-None-Match": etag})
        assert refused.status_code == 401 and "etag" not in refused.headers
        assert served.get(f"/calendar.ics?key={KEY}", {"If-None-Match": etag}).status_code == 304
        bearer = {"Authorization": f"Bearer {TOKEN}", "If-None-Match": etag}
        assert served.get("/calendar.ics", bearer).status_code == 304

    def test_last_modified_is_the_board_time_and_if_modified_since_is_honoured(
        self, serve: Callable[..., Served]
    ) -> None:
        at = _recent() + timedelta(microseconds=700_000)  # HTTP dates have whole seconds
        served = serve(_board_at(at, _slot(at, timedelta(hours=3))))
        first = served.get("/calendar.ics")
        assert first.headers["last-modified"] == http_date(at)
        since = first.headers["last-modified"]
        assert served.get("/calendar.ics", {"If-Modified-Since": since}).status_code == 304
        later = http_date(at + timedelta(minutes=5))
        assert served.get("/calendar.ics", {"If-Modified-Since": later}).status_code == 304
        earlier = http_date(at - timedelta(seconds=1))
        assert served.get("/calendar.ics", {"If-Modified-Since": earlier}).status_code == 200
        assert served.get("/calendar.ics", {"If-Modified-Since": "yesterday"}).status_code == 200
        future = http_date(datetime.now(UTC) + timedelta(days=1))  # no copy of ours is from then
        assert served.get("/calendar.ics", {"If-Modified-Since": future}).status_code == 200
        # If-None-Match decides when both are sent, and a tag that does not match wins over a date that would.
        both = {"If-Modified-Since": since, "If-None-Match": '"something-else"'}
        assert served.get("/calendar.ics", both).status_code == 200

    def test_a_board_with_the_same_events_keeps_the_feed_and_a_changed_outcome_makes_a_new_one(
        self, serve: Callable[..., Served]
    ) -> None:
        at = _recent(timedelta(hours=2))
        due = _slot(at, timedelta(minutes=30), SlotOutcome.UPCOMING)
        served = serve(_board_at(at, due))
        first = served.get("/calendar.ics")
        etag, since = first.headers["etag"], first.headers["last-modified"]

        # A poll brought news that changes no event: a new board, a later time, the same feed.
        quiet = at + timedelta(minutes=10)
        served.publish(_board_at(quiet, due))
        assert served.get("/calendar.ics", {"If-None-Match": etag}).status_code == 304
        assert served.get("/calendar.ics", {"If-Modified-Since": since}).status_code == 304
        same = served.get("/calendar.ics")
        assert same.content == first.content and same.headers["last-modified"] == since

        # The slot that was due has failed: the same event (UID), changed, with a later DTSTAMP.
        failed_at = at + timedelta(hours=1)
        served.publish(_board_at(failed_at, replace(due, outcome=SlotOutcome.FAILED, detail="exit 2")))
        changed = served.get("/calendar.ics", {"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.headers["last-modified"] == http_date(failed_at)
        assert served.get("/calendar.ics", {"If-Modified-Since": since}).status_code == 200
        (old,), (new,) = _vevents(first), _vevents(changed)
        assert new["uid"] == old["uid"]  # type: ignore[index]
        assert str(new["summary"]).startswith("✗") and not str(old["summary"]).startswith("✗")  # type: ignore[index]
        assert new.decoded("dtstamp") == failed_at > old.decoded("dtstamp") == at  # type: ignore[attr-defined]

    def test_two_feeds_within_one_second_leave_the_second_without_a_last_modified(
        self, serve: Callable[..., Served]
    ) -> None:
        at = _recent()
        served = serve(_board_at(at + timedelta(milliseconds=100), _slot(at, timedelta(hours=3))))
        first = served.get("/calendar.ics")
        since = first.headers["last-modified"]
        served.publish(_board_at(at + timedelta(milliseconds=900), _slot(at, timedelta(hours=3), SlotOutcome.RUNNING)))
        second = served.get("/calendar.ics")
        assert second.content != first.content
        assert "last-modified" not in second.headers  # its date would be the first one's
        assert served.get("/calendar.ics", {"If-Modified-Since": since}).status_code == 200
        assert served.get("/calendar.ics", {"If-None-Match": second.headers["etag"]}).status_code == 304

    def test_a_board_time_ahead_of_this_clock_is_no_last_modified(self, serve: Callable[..., Served]) -> None:
        ahead = datetime.now(UTC) + timedelta(hours=2)
        served = serve(_board_at(ahead, _slot(ahead, timedelta(hours=3))))
        response = served.get("/calendar.ics")
        assert response.status_code == 200 and "etag" in response.headers and "last-modified" not in response.headers
        assert served.get("/calendar.ics", {"If-Modified-Since": http_date(datetime.now(UTC))}).status_code == 200

    def test_dtstamp_is_when_the_events_last_changed_in_utc_and_there_is_no_sequence_or_last_modified(
        self, serve: Callable[..., Served]
    ) -> None:
        at = _recent(timedelta(hours=2)).astimezone(ZoneInfo(ZONE))  # board times in the display zone
        slot = _slot(at, timedelta(hours=3))
        served = serve(_board_at(at, slot))
        served.get("/calendar.ics")  # a calendar app fetched it
        served.publish(_board_at(at + timedelta(minutes=20), slot))  # news that changes no event
        text = served.get("/calendar.ics").text
        assert f"DTSTAMP:{at.astimezone(UTC):%Y%m%dT%H%M%S}Z" in text and "DTSTAMP;" not in text
        (event,) = Calendar.from_ical(text).walk("VEVENT")
        assert "SEQUENCE" not in event and "LAST-MODIFIED" not in event


class TestOtherAnswers:
    @pytest.mark.parametrize("path", ["/", "/api/v1/status", "/glance/status", "/glance/calendar", "/metrics"])
    def test_every_answer_revalidates_by_etag_and_has_no_last_modified(
        self, serve: Callable[..., Served], path: str
    ) -> None:
        served = serve(a_board(slots=(a_slot(),)))
        first = served.get(path)
        assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
        assert "last-modified" not in first.headers  # these change with polls the board's time does not show
        again = served.get(path, {"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert served.get(path, {"If-Modified-Since": http_date(datetime.now(UTC))}).status_code == 200

    @pytest.mark.parametrize(("path", "method", "status"), [("/nope", "GET", 404), ("/", "POST", 405)])
    def test_the_routers_own_answers_are_not_stored_either(
        self, serve: Callable[..., Served], path: str, method: str, status: int
    ) -> None:
        answer = serve(a_board()).get(path, method=method)
        assert answer.status_code == status and answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"

    def test_an_error_answer_carries_no_tag_and_is_never_304(self, serve: Callable[..., Served]) -> None:
        served = serve(a_board())
        good = served.get("/glance/status")
        assert good.status_code == 200 and "etag" in good.headers
        bad = served.get("/glance/status?column=wide", {"If-None-Match": "*"})
        assert bad.status_code == 400 and "etag" not in bad.headers and bad.content

    def test_a_poll_that_publishes_no_board_still_changes_the_api_tag(self, serve: Callable[..., Served]) -> None:
        served = serve(a_board())
        etag = served.get("/api/v1/status").headers["etag"]
        polled = replace(
            a_source(), last_attempt_at=NOW + timedelta(minutes=4), last_success_at=NOW + timedelta(minutes=4)
        )
        served.store.note_poll(polled)
        answer = served.get("/api/v1/status", {"If-None-Match": etag})
        assert answer.status_code == 200 and answer.headers["etag"] != etag
        assert answer.json()["sources"][0]["last_success_at"] == "2026-11-26T14:04:00+01:00"


class TestPageWidgets:
    """The page is made again after every poll (its sources' times), its widgets only when they read differently."""

    @staticmethod
    def counting(monkeypatch: pytest.MonkeyPatch) -> list[object]:
        made: list[object] = []
        real = app_module.panels_of

        def panels_of(board: Board, zone: ZoneInfo) -> object:
            made.append(board)
            return real(board, zone)

        monkeypatch.setattr(app_module, "panels_of", panels_of)
        return made

    @staticmethod
    def polled(at: datetime) -> SourceState:
        return replace(a_source(), last_attempt_at=at, last_success_at=at)

    def test_a_poll_without_news_keeps_the_widgets_and_a_publish_makes_them_again(
        self, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        made = self.counting(monkeypatch)
        served = serve(a_board((a_verdict(),), slots=(a_slot(),)))
        first = served.get("/").text
        served.store.note_poll(self.polled(NOW + timedelta(minutes=4)))
        second = served.get("/").text
        assert len(made) == 1, "the widgets of one board, read alike, are rendered once"
        assert "14:04" in second and "14:04" not in first  # when the source last answered: the latest poll
        assert second.replace("14:04", "13:59") == first  # and nothing else differs
        served.publish(a_board((a_verdict(name="renamed vault"),), slots=(a_slot(),)))
        assert "renamed vault" in served.get("/").text and len(made) == 2

    def test_widgets_that_would_read_differently_after_a_poll_are_made_again(
        self, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        made = self.counting(monkeypatch)
        never = replace(a_source(), last_attempt_at=None, last_success_at=None)
        served = serve(a_board((a_verdict(),), slots=(a_slot(),), sources=(never,)))
        assert served.get("/").text.count("not polled yet") >= 2  # the page's banner and its widgets' notices
        served.store.note_poll(self.polled(NOW + timedelta(minutes=4)))
        assert "not polled yet" not in served.get("/").text
        assert len(made) == 2

    def test_a_page_still_being_made_holds_up_no_other_answer(
        self, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """At 10,000 services the page takes half a second or more: it is made in a thread of its own."""
        held = Held()
        real = app_module.panels_of
        monkeypatch.setattr(app_module, "panels_of", lambda board, zone: held.then(real, board, zone))
        page = held.asked(serve(a_board((a_verdict(),), slots=(a_slot(),))), "/", others=("/glance/status",))
        assert page.status_code == 200 and "vault" in page.text

    def test_a_widget_still_being_made_holds_up_no_other_answer(
        self, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A widget not made yet for this board (say, asked for with ever other parameters) is made in a thread of
        its own too: on the event loop, 37 such requests a second held /healthz up for 1.3 s."""
        held = Held()
        spec = app_module.WIDGETS["calendar"]
        monkeypatch.setitem(
            app_module.WIDGETS, "calendar", replace(spec, build=lambda *args: held.then(spec.build, *args))
        )
        served = serve(a_board((a_verdict(),), slots=(a_slot(),)))
        path = "/glance/calendar?view=upcoming&n=7"
        widget = held.asked(served, path, others=("/api/v1/status",))  # other widgets wait their turn in its thread
        assert widget.status_code == 200
        assert served.get(path).text == widget.text, "kept for the board"


class Held:
    """An answer held up while it is being made, to see what else is answered meanwhile."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def then(self, make: Callable[..., T], *args: object) -> T:
        self.entered.set()
        self.release.wait(10)
        return make(*args)

    def asked(self, served: Served, path: str, *, others: tuple[str, ...]) -> httpx.Response:
        """`path`'s answer, asked for while /healthz and `others` are answered, each in well under its making."""
        with ThreadPoolExecutor(max_workers=1) as client:
            held = client.submit(served.get, path)
            try:
                assert self.entered.wait(10), f"{path} was never asked for"
                began = time.monotonic()
                for other in ("/healthz", *others):
                    assert served.get(other).status_code == 200, other
                assert time.monotonic() - began < 5 and not held.done()
            finally:
                self.release.set()
            return held.result(10)


class TestJudgingFailedAt:
    def test_the_api_says_since_when_judging_fails_and_null_while_it_works(
        self, serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = [NOW]
        store = BoardStore(timezone=ZONE)
        collector = Collector(
            sources=[],
            poll_intervals={},
            services=[],
            store=store,
            display_tz=ZONE,
            defaults=Defaults(),
            clock=lambda: clock[0],
        )
        served = serve(store)
        assert asyncio.run(collector.rebuild_or_say_why()) is True
        fine = served.get("/api/v1/status")
        assert fine.json()["judging_failed_at"] is None
        feed = served.get("/calendar.ics").headers["etag"]

        def broken(**_: object) -> Board:
            raise ValueError("a bug in judging")

        monkeypatch.setattr(collector_module, "evaluate", broken)
        clock[0] = NOW + timedelta(minutes=5, seconds=7)
        assert asyncio.run(collector.rebuild_or_say_why()) is False
        stuck = served.get("/api/v1/status", {"If-None-Match": fine.headers["etag"]})
        assert stuck.status_code == 200
        data = stuck.json()
        assert data["judging_failed_at"] == "2026-11-26T14:05:07+01:00"  # the display zone, as generated_at
        assert data["generated_at"] == "2026-11-26T14:00:00+01:00" and data["overall"] == "unknown"
        assert any(n.startswith("the board could not be judged again since 14:05") for n in data["notices"])
        # The feed shows no notice: the same events, the same feed.
        assert served.get("/calendar.ics", {"If-None-Match": feed}).status_code == 304

        clock[0] = NOW + timedelta(minutes=7)  # still failing: the time it began stays
        assert asyncio.run(collector.rebuild_or_say_why()) is False
        assert served.get("/api/v1/status").json()["judging_failed_at"] == "2026-11-26T14:05:07+01:00"
