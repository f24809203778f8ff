"""Notification delivery against receivers that are hostile or broken, on real loopback sockets: what they may
cost (time, memory, connections), where a redirect may carry the message, how refusals are retried, what a long
outage and a restart leave, and what hostile text from a source does to a message on its way out."""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import json
import logging
import os
import re
import socket
import sqlite3
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from notify_helpers import NOW, ZONE, Clock, Driving, Hit, Tally, a_board, a_verdict, raw_target, receiver

import backup_glance.notify._http
import backup_glance.notify._messages
from backup_glance.model import Board, Severity, Status
from backup_glance.notify import Heartbeat, Notifier, Target, _http, _store
from backup_glance.notify import heartbeat as heartbeat_module
from backup_glance.notify._deliver import AppriseSender, backoff
from backup_glance.notify._messages import MERGED_TEXT, Message
from backup_glance.notify._policy import Rule
from backup_glance.notify._store import NotifyStore

PASSWORD = "Receiver-Pass-0123"
PATH_TOKEN = "AbCdEf0123456789xyz"
HEADER_TOKEN = "S3cretHeaderValue42"
SECRETS = (PASSWORD, PATH_TOKEN, HEADER_TOKEN)
MESSAGE = Message("Backups: postgres: failed", "postgres: failed — out of space", "critical")
LOGGER = "backup_glance.notify"


# --- receivers ---


def read_request(conn: socket.socket, tally: Tally) -> bytes:
    """One HTTP request, head and Content-Length body, as the receiver got it."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while found and len(body) < int(found.group(1)):
        more = conn.recv(65536)
        if not more:
            break
        body += more
    tally.requests.append(head + b"\r\n\r\n" + body)
    return head


def send_until_cut_off(conn: socket.socket, tally: Tally, piece: bytes, limit: int = 256 << 20) -> None:
    """Send `piece` again and again until the client hangs up (or, for the old unbounded client, 256 MB)."""
    while tally.sent < limit and not tally.stop.is_set():
        conn.sendall(piece)
        tally.sent += len(piece)


def endless_chunked(conn: socket.socket, tally: Tally) -> None:
    """A 200 whose chunked body never ends."""
    read_request(conn, tally)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    send_until_cut_off(conn, tally, b"10000\r\n" + b"y" * 0x10000 + b"\r\n")


Respond = Callable[[Hit], tuple[int, dict[str, str]]]


@contextlib.contextmanager
def answering(respond: Respond) -> Iterator[tuple[int, list[Hit]]]:
    """An HTTP receiver whose status and headers `respond` chooses per request. -> (port, hits)"""
    hits: list[Hit] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            hit = Hit(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None)
            hits.append(hit)
            status, headers = respond(hit)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), hits
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def smtp_receiver() -> Iterator[tuple[int, list[bytes]]]:
    """Just enough of an SMTP server for Apprise's mailto:// (no TLS): -> (port, the DATA of every mail)."""
    mails: list[bytes] = []

    def session(conn: socket.socket, _tally: Tally) -> None:
        conn.settimeout(10)
        lines = conn.makefile("rb")
        conn.sendall(b"220 mx.test ESMTP\r\n")
        data: list[bytes] | None = None
        for line in lines:
            if data is not None:
                if line == b".\r\n":
                    mails.append(b"".join(data))
                    data = None
                    conn.sendall(b"250 queued\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                conn.sendall(b"235 ok\r\n")
            elif verb == b"DATA":
                data = []
                conn.sendall(b"354 go on\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    with raw_target(session) as (port, _tally):
        yield port, mails


# --- a notifier over a history file, its targets given as URLs ---


@dataclass
class Rig(Driving):
    db: Path
    clock: Clock = field(default_factory=Clock)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def notifier(self, *urls: str, retry: Callable[[int], float] = lambda failures: 0.05) -> Notifier:
        targets = [Target(f"t{n}", Rule(Severity.WARNING), AppriseSender(url)) for n, url in enumerate(urls, 1)]
        return Notifier(
            targets=targets,
            store=NotifyStore.open(self.db),
            clock=self.clock,
            timezone=ZONE,
            base_url="https://home.lan/backups/",
            retry=retry,
        )

    def step(self, notifier: Notifier, board: Board) -> None:
        notifier.on_board(board)
        self.loop.run_until_complete(notifier.step())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path / "history.sqlite3")
    yield made
    made.loop.close()


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in record.__dict__.values())
        for secret in SECRETS:
            assert secret not in text, (secret, record.getMessage())


def failing(*names: str, at: datetime = NOW, reason: str | None = None) -> Board:
    return a_board(*(a_verdict(n, Status.FAILED, at=at, reason=reason) for n in names), at=at)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- answers that would cost memory or time ---


class TestAnswersAreBounded:
    def test_a_200_with_a_body_of_gigabytes_is_accepted_after_at_most_a_megabyte(self) -> None:
        def gigabytes(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n")
            send_until_cut_off(conn, tally, b"x" * 65536)

        with raw_target(gigabytes) as (port, tally):
            sender = AppriseSender(f"json://127.0.0.1:{port}/hook")
            before = open_fds()
            began = time.monotonic()
            # Accepted: its status said so. Before, the whole body was read into memory, and as it never came
            # whole, the send counted as refused: sent again at the next try.
            assert sender.send(MESSAGE) is True
            assert time.monotonic() - began < 10
            assert tally.sent < 32 << 20, tally.sent  # a megabyte read, the rest left in socket buffers
            assert sender.last is not None and sender.last.cut_at == _http.MAX_ANSWER_BYTES
            deadline = time.monotonic() + 5
            while open_fds() > before and time.monotonic() < deadline:  # the receiver's end notices the close
                time.sleep(0.05)
            assert open_fds() <= before  # the connection is closed, not left open with the rest unread

    def test_an_endless_chunked_body_is_not_read_to_its_end(self) -> None:
        with raw_target(endless_chunked) as (port, tally):
            sender = AppriseSender(f"json://127.0.0.1:{port}/hook")
            assert sender.send(MESSAGE) is True
            assert tally.sent < 32 << 20, tally.sent

    def test_a_gzip_bomb_is_not_inflated_in_memory(self) -> None:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip format
        zeros = b"\0" * (1 << 20)
        bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()  # 200 MB in ~200 KB

        def gzip_bomb(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
            conn.sendall(head.encode() + bomb)
            tally.stop.wait(5)

        with raw_target(gzip_bomb) as (port, _tally):
            sender = AppriseSender(f"json://127.0.0.1:{port}/hook")
            tracemalloc.start()
            try:
                accepted = sender.send(MESSAGE)
                _now, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert accepted is True
            assert peak < 50 << 20, f"{peak >> 20} MB"  # before: the whole 200 MB, and twice that while joining

    def test_headers_then_a_body_that_never_comes_count_as_accepted_once(self, rig: Rig) -> None:
        def stalls(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            tally.stop.wait(30)  # the other 90 bytes never come

        with raw_target(stalls) as (port, tally):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook?rto=1")
            rig.step(notifier, failing("postgres"))
            began = time.monotonic()
            assert rig.flush(notifier) == {"t1": True}  # before: refused after the read timeout, so sent again
            assert time.monotonic() - began < 8
            assert rig.flush(notifier) == {"t1": None}
            assert len(tally.requests) == 1
            rig.close(notifier)

    def test_a_body_dripping_forever_is_given_up_on_after_its_deadline(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_http, "ANSWER_READ_S", 1.0)

        def drips(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            while not tally.stop.wait(0.2):  # a byte well within every read timeout, for ever
                conn.sendall(b"z")

        with raw_target(drips) as (port, tally):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            began = time.monotonic()
            assert rig.flush(notifier) == {"t1": True}  # before: Apprise gave up after 60 s, counted it refused
            assert time.monotonic() - began < 10
            assert rig.flush(notifier) == {"t1": None}
            assert len(tally.requests) == 1
            rig.close(notifier)

    @pytest.mark.parametrize("kind", ["silent", "a-byte-a-minute"])
    def test_a_receiver_that_does_not_answer_is_refused_after_the_read_timeout_and_says_so(
        self, rig: Rig, logged: pytest.LogCaptureFixture, kind: str
    ) -> None:
        # Already bounded (Apprise's 4 s read timeout; `rto=1` here); the log line now says why.
        def silent(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            if kind == "a-byte-a-minute":
                conn.sendall(b"H")
            tally.stop.wait(60)

        with raw_target(silent) as (port, _tally):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook?rto=1")
            rig.step(notifier, failing("postgres"))
            began = time.monotonic()
            assert rig.flush(notifier) == {"t1": False}
            assert time.monotonic() - began < 8
            (line,) = records(logged, "notification not accepted; will retry")
            assert line.problem == "no answer within the read timeout"  # type: ignore[attr-defined]
            assert len(NotifyStore.open(rig.db).pending("t1")) == 1  # kept for the next try
            rig.close(notifier)

    def test_a_receiver_that_thinks_for_seconds_before_it_answers_gets_the_message_once(self, rig: Rig) -> None:
        """A webhook running an automation took 6 s: Apprise's 4 s read timeout counted each send refused, and the
        same message went out five times in 91 s, for as long as the target stayed slow."""

        def slow(hit: Hit) -> tuple[int, dict[str, str]]:
            time.sleep(6)
            return 200, {}

        with answering(slow) as (port, hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            assert rig.flush(notifier) == {"t1": True}
            assert rig.flush(notifier) == {"t1": None}
            assert len(hits) == 1
            rig.close(notifier)

    def test_many_targets_that_hang_do_not_delay_one_that_answers(self, rig: Rig) -> None:
        def drips_headers(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not tally.stop.wait(0.3):  # a header that never ends, within every read timeout
                conn.sendall(b"x")

        with contextlib.ExitStack() as stack:
            hanging = [stack.enter_context(raw_target(drips_headers))[0] for _ in range(4)]
            inbox = stack.enter_context(receiver())
            urls = [f"json://127.0.0.1:{port}/hook" for port in hanging] + [inbox.url()]
            notifier = rig.notifier(*urls)

            async def go() -> float:
                notifier.start()
                notifier.on_board(failing("postgres"))
                began = time.monotonic()
                while not inbox.messages and time.monotonic() - began < 15:
                    await asyncio.sleep(0.05)
                took = time.monotonic() - began
                await notifier.stop()
                return took

            # Before: four threads for all targets, each held for a minute by a hanging one; the fifth waited.
            assert rig.loop.run_until_complete(go()) < 5
            assert len(inbox.messages) == 1


# --- redirects ---


class TestRedirects:
    @pytest.mark.parametrize("status", [302, 307, 308])
    def test_a_redirect_to_another_host_is_not_followed_and_carries_nothing_there(
        self, rig: Rig, logged: pytest.LogCaptureFixture, status: int
    ) -> None:
        with receiver() as elsewhere:
            away = f"http://localhost:{elsewhere.port}/collect"
            with answering(lambda hit: (status, {"Location": away})) as (port, hits):
                userinfo = f"bg:{PASSWORD}@127.0.0.1:{port}"
                notifier = rig.notifier(f"json://{userinfo}/hook/{PATH_TOKEN}?+X-Token={HEADER_TOKEN}")
                rig.step(notifier, failing("postgres"))
                # Before: followed. A 307 or 308 posted the message and the X-Token header to the other host; a
                # 302 turned it into a GET the other host answered with 200, and the message counted as sent.
                assert rig.flush(notifier) == {"t1": False}
                assert len(hits) == 1 and elsewhere.hits == []
                (line,) = records(logged, "notification not accepted; will retry")
                shown = f"HTTP {status} to http://localhost:{elsewhere.port}/… (not followed: if the target moved"
                assert line.problem.startswith(shown)  # type: ignore[attr-defined]
                assert len(NotifyStore.open(rig.db).pending("t1")) == 1  # not lost: waits for a fixed URL
                rig.close(notifier)

                # Only a URL that asks for it follows: `redirect=yes`.
                if status == 307:
                    assert AppriseSender(f"json://127.0.0.1:{port}/hook?redirect=yes").send(MESSAGE) is True
                    assert [hit.path for hit in elsewhere.hits] == ["/collect"]
        assert_no_secret_logged(logged)


# --- refusals ---


def refuse_once(status: int, headers: dict[str, str], stamps: list[float]) -> Respond:
    """Answer `status` with `headers` to the first request and 200 to the others; note when each came."""

    def respond(_hit: Hit) -> tuple[int, dict[str, str]]:
        stamps.append(time.monotonic())
        return (status, headers) if len(stamps) == 1 else (200, {})

    return respond


class TestRefusals:
    @pytest.mark.parametrize(
        ("header", "wait"),
        [
            ("120", 120.0),
            ("99999999999999999999", 3600.0),  # a day, a century: capped, or the target would be silenced
            ("Thu, 26 Nov 2026 12:05:00 GMT", 300.0),  # an HTTP date: five minutes after the clock's now
            ("Thu, 26 Nov 2026 11:00:00 GMT", 0.05),  # in the past: the backoff
            ("-30", 0.05),
            ("soon, maybe", 0.05),
        ],
    )
    def test_retry_after_of_a_429_is_honoured_within_bounds(self, rig: Rig, header: str, wait: float) -> None:
        with answering(lambda hit: (429, {"Retry-After": header})) as (port, _hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            assert rig.flush(notifier) == {"t1": False}
            assert notifier.workers["t1"].retry_in == wait  # before: always the backoff (5 s, here 0.05 s)
            rig.close(notifier)

    def test_the_worker_really_waits_what_retry_after_asks(self, rig: Rig) -> None:
        stamps: list[float] = []
        with answering(refuse_once(503, {"Retry-After": "1"}, stamps)) as (port, _hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")

            async def go() -> None:
                notifier.start()
                notifier.on_board(failing("postgres"))
                began = time.monotonic()
                while not notifier.workers["t1"].sent and time.monotonic() - began < 10:
                    await asyncio.sleep(0.01)
                await notifier.stop()

            rig.loop.run_until_complete(go())
        assert len(stamps) == 2
        assert stamps[1] - stamps[0] >= 0.9  # before: the next try 0.05 s later

    def test_5xx_forever_is_kept_and_retried_ever_more_slowly_and_logged_with_its_status(
        self, rig: Rig, logged: pytest.LogCaptureFixture
    ) -> None:
        with answering(lambda hit: (503, {})) as (port, hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook", retry=backoff)
            rig.step(notifier, failing("postgres"))
            waits = []
            for _ in range(4):
                assert rig.flush(notifier) == {"t1": False}
                waits.append(notifier.workers["t1"].retry_in)
            assert waits == [5.0, 10.0, 20.0, 40.0]
            (line,) = records(logged, "notification not accepted; will retry")  # the first; then every 10th
            assert line.levelno == logging.WARNING and line.problem == "HTTP 503"  # type: ignore[attr-defined]
            assert len(hits) == 4 and len(NotifyStore.open(rig.db).pending("t1")) == 1
            rig.close(notifier)

    def test_a_4xx_for_the_url_keeps_the_message_and_is_an_error(
        self, rig: Rig, logged: pytest.LogCaptureFixture
    ) -> None:
        with answering(lambda hit: (401, {})) as (port, _hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            for _ in range(5):
                assert rig.flush(notifier) == {"t1": False}
            # A wrong token: a fix on the server lets it through, so the message waits (the outbox is bounded).
            assert len(NotifyStore.open(rig.db).pending("t1")) == 1
            (line,) = records(logged, "notification not accepted; will retry")
            assert line.levelno == logging.ERROR and line.problem == "HTTP 401"  # type: ignore[attr-defined]
            rig.close(notifier)

    def test_a_message_refused_for_what_it_says_does_not_block_the_ones_after_it(
        self, rig: Rig, logged: pytest.LogCaptureFixture
    ) -> None:
        # Pushover refuses more than 1024 characters with a 400, Discord more than 2000, Telegram 4096: one such
        # message, merged with everything after it, was refused for ever.
        def refuse_postgres(hit: Hit) -> tuple[int, dict[str, str]]:
            return (413, {}) if "postgres" in json.dumps(hit.body) else (200, {})

        with answering(refuse_postgres) as (port, hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            assert rig.flush(notifier) == {"t1": False}
            rig.clock.now = NOW + timedelta(minutes=1)
            rig.step(notifier, failing("postgres", "wiki", at=rig.clock.now))
            outcomes = [rig.flush(notifier)["t1"] for _ in range(5)]
            assert outcomes == [False, False, False, True, None]  # merged; alone twice, dropped; then wiki
            accepted = [hit.body for hit in hits if "postgres" not in json.dumps(hit.body)]
            assert [body["title"] for body in accepted if body] == ["Backups: wiki: failed"]
            (drop,) = records(logged, "notification dropped: the target refuses it for what it says")
            assert drop.levelno == logging.ERROR and drop.title == "Backups: postgres: failed"  # type: ignore[attr-defined]
            assert NotifyStore.open(rig.db).pending("t1") == []
            rig.close(notifier)

    def test_a_target_whose_only_message_was_dropped_is_no_notice(self, rig: Rig) -> None:
        """Refused for what it says, three times, then let go: nothing waits, and the board says nothing of it."""
        with answering(lambda hit: (413, {})) as (_port, _hits):
            notifier = rig.notifier(f"json://127.0.0.1:{_port}/hook")
            rig.step(notifier, failing("postgres"))
            assert [rig.flush(notifier)["t1"] for _ in range(3)] == [False, False, False]
            rig.clock.now = NOW + timedelta(minutes=20)
            assert rig.flush(notifier) == {"t1": None}  # the worker's next look finds nothing waiting
            assert notifier.notices(rig.clock.now) == []
            rig.close(notifier)


# --- TLS ---


class TestTLS:
    def test_an_untrusted_certificate_is_refused_and_the_log_says_why(
        self, rig: Rig, logged: pytest.LogCaptureFixture
    ) -> None:
        authority = trustme.CA()  # trusted by nobody but itself
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(context)

        def tls(conn: socket.socket, tally: Tally) -> None:
            with context.wrap_socket(conn, server_side=True) as secure:
                read_request(secure, tally)
                secure.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        with raw_target(tls) as (port, tally):
            notifier = rig.notifier(f"jsons://127.0.0.1:{port}/hook/{PATH_TOKEN}")
            rig.step(notifier, failing("postgres"))
            assert rig.flush(notifier) == {"t1": False}
            assert tally.requests == []  # nothing went over the untrusted connection
            (line,) = records(logged, "notification not accepted; will retry")
            assert line.problem.startswith("TLS certificate not trusted (")  # type: ignore[attr-defined]
            rig.close(notifier)
        assert_no_secret_logged(logged)

    def test_a_receiver_closing_during_the_handshake_is_refused_at_once(
        self, rig: Rig, logged: pytest.LogCaptureFixture
    ) -> None:
        def hang_up(conn: socket.socket, tally: Tally) -> None:
            conn.recv(10)  # part of the ClientHello, then gone

        with raw_target(hang_up) as (port, _tally):
            notifier = rig.notifier(f"jsons://127.0.0.1:{port}/hook")
            rig.step(notifier, failing("postgres"))
            began = time.monotonic()
            assert rig.flush(notifier) == {"t1": False}
            assert time.monotonic() - began < 5
            (line,) = records(logged, "notification not accepted; will retry")
            assert line.problem in ("TLS handshake failed", "connection reset")  # type: ignore[attr-defined]
            rig.close(notifier)


# --- a long outage, and a restart in it ---


class TestOutage:
    def test_a_target_down_for_hours_gets_one_message_with_a_word_for_what_a_full_outbox_let_go(
        self, rig: Rig, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_store, "MAX_PENDING", 5)
        state = {"up": False}
        with answering(lambda hit: (200, {}) if state["up"] else (503, {})) as (port, hits):
            url = f"json://127.0.0.1:{port}/hook"
            notifier = rig.notifier(url)
            names = [f"s{n:02}" for n in range(1, 13)]
            for count in range(1, 13):  # twelve new failures, an hour apart, none accepted
                rig.clock.now = NOW + timedelta(hours=count)
                rig.step(notifier, failing(*names[:count], at=rig.clock.now))
                assert rig.flush(notifier) == {"t1": False}
            rig.close(notifier)  # a restart, in the middle of the outage

            state["up"] = True
            refused = len(hits)
            notifier = rig.notifier(url)
            rig.step(notifier, failing(*names, at=rig.clock.now))  # nothing new to say
            assert rig.flush(notifier) == {"t1": True}
            assert rig.flush(notifier) == {"t1": None}
            rig.close(notifier)
        assert len(hits) == refused + 1
        message = hits[-1].body
        assert message is not None
        text = message["message"]
        heads = re.findall(r"(?m)^\[[^\]]+\] (.+)$", text)  # each part under the time it was written
        # Before: the seven oldest were deleted without a word to the reader (and the log named no target).
        assert heads == ["Backups: 8 older messages not delivered"] + [
            f"Backups: s{n:02}: failed" for n in range(9, 13)
        ]
        assert "the oldest 8 messages were dropped" in text
        assert message["title"] == "Backups: s09: failed (+4 more messages)"
        warnings = records(logged, "notification outbox full; its oldest messages are now one note that counts them")
        assert sum(w.dropped for w in warnings) == 8  # type: ignore[attr-defined]
        assert all(w.target == f"json://127.0.0.1:{port}/hook" for w in warnings)  # type: ignore[attr-defined]

    def test_what_piled_up_goes_out_as_one_message_of_bounded_size_newest_in_full(self, rig: Rig) -> None:
        reason = "r" * 280
        names = [f"svc-{n:02}" for n in range(40)]
        state = {"up": False}
        with answering(lambda hit: (200, {}) if state["up"] else (503, {})) as (port, hits):
            notifier = rig.notifier(f"json://127.0.0.1:{port}/hook")
            for step in range(60):  # forty services failing (a 13 kB message), then all back, thirty times
                rig.clock.now = NOW + timedelta(minutes=step)
                at = rig.clock.now
                back = a_board(*(a_verdict(name, at=at) for name in names), at=at)
                board = failing(*names, at=at, reason=reason) if step % 2 == 0 else back
                rig.step(notifier, board)
            state["up"] = True
            assert rig.flush(notifier) == {"t1": True}
            rig.close(notifier)
        (message,) = [hit.body for hit in hits if hit.body]
        text = message["message"]
        assert len(text) <= MERGED_TEXT + 200, len(text)  # before: all sixty in full, about 420 kB
        parts = text.split("\n\n")
        assert parts[0].startswith("… ") and "older messages left out" in parts[0]
        assert parts[-1].startswith("Board: https://home.lan/backups/")  # the newest, in full, ends with the link
        stamps = [part[1:].split("]")[0] for part in parts if part.startswith("[")]
        when = [datetime.strptime(f"2026 {stamp}", "%Y %a %d %b %H:%M") for stamp in stamps]
        assert when == sorted(when) and len(when) > 2


# --- hostile text from a source ---


class TestHostileText:
    def test_a_name_with_invalid_unicode_crlf_and_a_megabyte_goes_out_clean_and_blocks_nothing(self, rig: Rig) -> None:
        evil_id = "vm\udcff-101"
        evil_name = "pg\r\nBcc: victim@evil.example\r\n\r\nforged body \udcff\u202e" + "n" * 1_000_000
        evil_reason = "failed: \ud800\x1b[2J\r\nX-Injected: 1 " + "r" * 1_000_000
        board = a_board(
            a_verdict(evil_id, Status.FAILED, name=evil_name, reason=evil_reason),
            a_verdict("postgres", Status.FAILED),
        )
        with receiver() as inbox, receiver() as other, smtp_receiver() as (smtp_port, mails):
            mailto = f"mailto://bg:{PASSWORD}@127.0.0.1:{smtp_port}?to=me@example.org&from=bg@example.org&mode=insecure"
            urls = (inbox.url("/a"), other.url("/b"), mailto)
            notifier = rig.notifier(*urls)
            rig.step(notifier, board)  # before: UnicodeEncodeError, for every target, at every step
            assert rig.flush(notifier) == {"t1": True, "t2": True, "t3": True}

            # The history database is not left locked: the collector can write at once.
            writer = sqlite3.connect(rig.db, timeout=1, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("ROLLBACK")
            writer.close()

            for message in (*inbox.messages, *other.messages):
                title, text = message["title"], message["message"]
                assert not re.search("[\r\x1b\u202e\ud800-\udfff]", title + text)
                assert "\n" not in title
                assert all(len(line) < 500 for line in text.splitlines())
                assert "pg Bcc: victim@evil.example forged body \ufffd" in text
            (mail,) = mails
            head = mail.split(b"\r\n\r\n", 1)[0].decode()
            assert [
                line.split(":")[0] for line in head.splitlines() if re.match(r"(?i)(bcc|subject|x-injected):", line)
            ] == ["Subject"]
            assert len(mail) < 20_000
            rig.close(notifier)

            # A restart announces nothing again: the keys read back the same as they were written.
            notifier = rig.notifier(*urls)
            rig.step(notifier, board)
            assert rig.flush(notifier) == {"t1": None, "t2": None, "t3": None}
            rig.close(notifier)
            assert len(inbox.messages) == len(other.messages) == len(mails) == 1


# --- the heartbeat: the same hostile receivers, for a GET ---


def ping_once(heartbeat: Heartbeat, within: float = 10.0) -> None:
    async def go() -> None:
        heartbeat.on_board(a_board(a_verdict("vault")))
        assert heartbeat._task is not None
        await asyncio.wait_for(asyncio.shield(heartbeat._task), within)
        await heartbeat.aclose()

    asyncio.run(go())


class TestHeartbeat:
    def test_a_redirect_is_no_ping_and_the_log_says_where_it_pointed(self, logged: pytest.LogCaptureFixture) -> None:
        with receiver() as elsewhere:
            login = f"http://localhost:{elsewhere.port}/login"
            with answering(lambda hit: (302, {"Location": login})) as (port, hits):
                heartbeat = Heartbeat(f"http://127.0.0.1:{port}/ping/{PATH_TOKEN}")
                ping_once(heartbeat)
            # Before: followed, and the login page of an auth proxy answering 200 counted as a ping.
            assert heartbeat.pings == 0 and len(hits) == 1 and elsewhere.hits == []
            (line,) = records(logged, "heartbeat ping failed")
            assert line.problem.startswith(f"HTTP 302 to http://localhost:{elsewhere.port}/… (redirects")  # type: ignore[attr-defined]
        assert_no_secret_logged(logged)

    def test_a_ping_answered_with_an_endless_body_costs_nothing(self) -> None:
        with raw_target(endless_chunked) as (port, tally):
            heartbeat = Heartbeat(f"http://127.0.0.1:{port}/ping")
            ping_once(heartbeat)
            assert heartbeat.pings == 1  # its status said so; the body is nobody's business
            assert tally.sent < 32 << 20, tally.sent  # before: read to the end (here, 256 MB), then refused

    def test_a_ping_answered_a_byte_at_a_time_ends_within_its_timeout(
        self, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(heartbeat_module, "TIMEOUT_S", 1.0)

        def drips(conn: socket.socket, tally: Tally) -> None:
            read_request(conn, tally)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not tally.stop.wait(0.2):  # within every read timeout, for ever
                conn.sendall(b"x")

        with raw_target(drips) as (port, _tally):
            heartbeat = Heartbeat(f"http://127.0.0.1:{port}/ping")
            began = time.monotonic()
            ping_once(heartbeat, within=5.0)  # before: never ended (httpx's timeout is per read)
            assert time.monotonic() - began < 3
            assert heartbeat.pings == 0
            (line,) = records(logged, "heartbeat ping failed")
            assert line.problem == "no answer within 1 s"  # type: ignore[attr-defined]


# --- the examples in the docstrings of what this file tests ---


@pytest.mark.parametrize("module", [backup_glance.notify._http, backup_glance.notify._messages], ids=str)
def test_docstring_examples_hold(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
