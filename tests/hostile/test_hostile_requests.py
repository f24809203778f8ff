"""Requests that are complete but unwelcome: wrong tokens by the hundred thousand, foreign Host headers (DNS
rebinding), and the security headers every answer must carry. Real `serve` processes: the demo homelab (no
token), and a config with auth_token and calendar_key."""

from __future__ import annotations

import logging
import re
import shlex
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
from hostile_tools import TOKEN, address, report, request, serve, token_config, well_behaved
from serve_process import ServeProcess

from backup_glance.httpserver import Limits
from backup_glance.logs import ContextFormatter
from backup_glance.web.auth import FailureLog, TokenAuth

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BEARER = f"Authorization: Bearer {TOKEN}\r\n"
ATTACKER = "127.0.0.2"  # Linux answers the whole 127/8 on the loopback interface
ROUTES = ["/", "/glance/status", "/api/v1/status", "/calendar.ics", "/health", "/healthz"]
CSP = re.compile(
    r"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    r"frame-ancestors \S"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serve(tmp_path_factory.mktemp("demo-home")) as process:
        yield process


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("token-home")
    with serve(folder, args=("--config", str(token_config(folder)))) as process:
        yield process


def _secure(headers: dict[str, str]) -> bool:
    return (
        bool(CSP.match(headers.get("content-security-policy", "")))
        and headers.get("x-content-type-options") == "nosniff"
        and headers.get("referrer-policy") == "no-referrer"
    )


class TestSecurityHeaders:
    def test_every_route_of_the_demo(self, demo: ServeProcess) -> None:
        where = address(demo)
        for path in [*ROUTES, "/no-such-page"]:
            status, headers, _ = request(where, path)
            assert status in (200, 404, 503), (path, status)
            assert _secure(headers), (path, headers)
        assert "frame-ancestors 'self'" in request(where, "/")[1]["content-security-policy"]

    def test_every_route_with_a_token_and_the_refusals(self, guarded: ServeProcess) -> None:
        where = address(guarded)
        for path in ROUTES:
            status, headers, _ = request(where, path, extra=BEARER)
            assert status in (200, 503), (path, status)
            assert _secure(headers), (path, headers)
        status, headers, _ = request(where, "/api/v1/status")
        assert status == 401 and _secure(headers)
        status, headers, _ = request(where, "/no-such-page", extra=BEARER)
        assert status == 404 and _secure(headers)

    def test_a_refused_host_carries_them_too(self, demo: ServeProcess) -> None:
        status, headers, _ = request(address(demo), "/", host="evil.example.com")
        assert status == 421 and _secure(headers)


class TestHostHeader:
    @pytest.mark.parametrize(
        "host", ["evil.example.com", "evil.example.com:8765", "localhost.evil.example.com", "127.0.0.1.nip.io"]
    )
    def test_without_a_token_a_foreign_name_is_refused(self, demo: ServeProcess, host: str) -> None:
        status, headers, body = request(address(demo), "/api/v1/status", host=host)
        assert status == 421
        assert headers["content-type"].startswith("text/plain")
        assert b"evil" not in body and b"nip.io" not in body and len(body) < 200
        assert b"services" not in body

    @pytest.mark.parametrize(
        "host", ["localhost", "localhost:8765", "127.0.0.1", "[::1]:8765", "192.168.1.20", "backup-glance", "nas"]
    )
    def test_without_a_token_loopback_addresses_and_single_labels_are_served(
        self, demo: ServeProcess, host: str
    ) -> None:
        status, _, body = request(address(demo), "/api/v1/status", host=host)
        assert status == 200 and b"services" in body

    def test_a_second_host_header_or_none_at_all_is_a_bad_request(self, demo: ServeProcess) -> None:
        """One Host checked and another read by a proxy in front would disagree on whom the board answers: RFC 9112
        (§3.2) asks for 400, as for an HTTP/1.1 request without one. `Host: 127.0.0.1` then `Host: evil...` was
        a 200, the reverse a 421."""
        where = address(demo)
        for hosts in (("127.0.0.1", "evil.example.com"), ("evil.example.com", "127.0.0.1"), ("localhost", "localhost")):
            extra = "".join(f"Host: {host}\r\n" for host in hosts[1:])
            status, headers, body = request(where, "/api/v1/status", host=hosts[0], extra=extra)
            assert (status, body) == (400, b"400 bad request: more than one Host header.\n") and _secure(headers)
        with socket.create_connection(where, timeout=5) as sock:
            sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 400 ")
        with socket.create_connection(where, timeout=5) as sock:  # HTTP/1.0 had no Host: still answered
            sock.sendall(b"GET /api/v1/status HTTP/1.0\r\n\r\n")
            assert sock.makefile("rb").readline().startswith(b"HTTP/1.1 200 ")

    def test_healthz_answers_any_host(self, demo: ServeProcess) -> None:
        assert request(address(demo), "/healthz", host="backup-glance.service.consul")[0] == 200

    @pytest.mark.parametrize("host", ["evil.example.com", "localhost", "192.168.1.20", "backups.example.org"])
    def test_with_a_token_every_host_is_served(self, guarded: ServeProcess, host: str) -> None:
        where = address(guarded)
        assert request(where, "/api/v1/status", host=host, extra=BEARER)[0] == 200
        assert request(where, "/api/v1/status", host=host)[0] == 401

    def test_no_answer_reflects_the_host(self, guarded: ServeProcess, demo: ServeProcess) -> None:
        for where, extra in ((address(guarded), BEARER), (address(demo), "")):
            for path in ("/glance/status", "/", "/glance/calendar?view=week"):
                status, headers, body = request(where, path, host="rebind.attacker.example", extra=extra)
                assert "attacker" not in str(headers), headers
                assert b"attacker" not in body
                if status == 200:
                    assert "widget-title-url" not in headers or "attacker" not in headers["widget-title-url"]


class TestFailedAuthentication:
    def test_a_flood_of_wrong_tokens_leaves_a_handful_of_lines(self, guarded: ServeProcess) -> None:
        where = address(guarded)
        logged_before = len(guarded.lines)
        sent = [0]
        stop = threading.Event()
        wrong = [
            b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer not-the-token-at-all\r\n\r\n",
            b"GET /glance/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"GET /calendar.ics?key=wrong-calendar-key HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ]

        def flood() -> None:
            batch = Limits().max_pipelined  # pipelined: the cheapest way for one client to send many requests
            payload = b"".join(wrong[i % 3] for i in range(batch))
            # From an address of its own, so no earlier test's failure window counts these.
            with socket.create_connection(where, timeout=10, source_address=(ATTACKER, 0)) as sock:
                while not stop.is_set():
                    sock.sendall(payload)
                    seen = 0
                    buffer = b""
                    while seen < batch:
                        buffer += sock.recv(1 << 20)
                        seen = buffer.count(b"HTTP/1.1 401")
                    sent[0] += batch

        began = time.monotonic()
        with well_behaved(where, extra=BEARER) as client:
            threads = [threading.Thread(target=flood, daemon=True) for _ in range(3)]
            for thread in threads:
                thread.start()
            time.sleep(4)
            stop.set()
            for thread in threads:
                thread.join(10)
        flood_s = time.monotonic() - began
        # The count of the window arrives when the window closes (10 s after the first line).
        while time.monotonic() - began < 14 and _failures(guarded.lines[logged_before:], ATTACKER) < sent[0]:
            time.sleep(0.2)
        lines = [line for line in guarded.lines[logged_before:] if f"client={ATTACKER} " in line]
        figures = client.figures()
        report(
            "wrong-token flood",
            wrong_requests=sent[0],
            per_second=round(sent[0] / flood_s),
            log_lines=len(lines),
            logged_failures=_failures(lines),
            **figures,
        )
        assert sent[0] > 1000
        assert 1 <= len(lines) <= 4, lines
        assert all(f"client={ATTACKER} " in line and "path=/" in line and "reason=" in line for line in lines), lines
        assert _failures(lines) == sent[0], "the lines must account for every failure"
        assert TOKEN not in guarded.output and "not-the-token-at-all" not in guarded.output
        assert "wrong-calendar-key" not in guarded.output
        assert not client.failures and figures["p99_ms"] < 500, figures


def _failures(lines: list[str], client: str = "") -> int:
    found = (re.search(r"failures=(\d+)", line) for line in lines if f"client={client}" in line)
    return sum(int(m.group(1)) for m in found if m)


def test_each_failure_says_why_and_never_what_was_sent(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("must not be reached")

    auth = TokenAuth(app, token="s3cret-token-value", calendar_key="calendar-key-value", failures=FailureLog(every=0))
    client = TestClient(auth, client=("192.0.2.7", 50000))  # no `with`: no lifespan, which TokenAuth would pass on
    with caplog.at_level(logging.WARNING, logger="backup_glance.web.auth"):
        assert client.get("/api/v1/status").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
        assert client.get("/calendar.ics?key=nope-nope-nope").status_code == 401
        # Escapes beyond ASCII in the query were a 500 and a traceback, for anyone who can reach the feed
        for query in ("key=%ff", "key=%C3%A9", "x=%C3%A9&key=nope"):
            assert client.get(f"/calendar.ics?{query}").status_code == 401
        assert client.get("/", auth=("glance", "wrong-password")).status_code == 401
    reasons = [(r.path, r.reason, r.client) for r in caplog.records]  # type: ignore[attr-defined]
    assert reasons == [
        ("/api/v1/status", "no credentials", "192.0.2.7"),
        ("/", "wrong token", "192.0.2.7"),
        ("/calendar.ics", "wrong calendar key", "192.0.2.7"),
        *[("/calendar.ics", "wrong calendar key", "192.0.2.7")] * 3,
        ("/", "wrong token", "192.0.2.7"),
    ]
    assert "nope" not in caplog.text and "wrong-password" not in caplog.text


def test_a_path_cannot_pose_as_fields_of_the_failed_login_line(caplog: pytest.LogCaptureFixture) -> None:
    """fail2ban and Loki read `client=` from the line: a path with spaces in it wrote a second one."""

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("must not be reached")

    client = TestClient(TokenAuth(app, token="s3cret-token-value", failures=FailureLog(every=0)), client=("::1", 1))
    with caplog.at_level(logging.WARNING, logger="backup_glance.web.auth"):
        client.get("/x%20reason=wrong%20token%20failures=1%20client=192.168.1.66%E2%80%AE")
    (record,) = caplog.records
    line = ContextFormatter("%(message)s").format(record)
    assert line == (
        'authentication failed client=::1 path="/x reason=wrong token failures=1 client=192.168.1.66\\u202e"'
        ' reason="no credentials" failures=1'
    )
    fields = [word.partition("=") for word in shlex.split(line) if "=" in word]  # as a logfmt reader splits it
    assert [(key, value) for key, _, value in fields if key == "client"] == [("client", "::1")]


def test_a_client_address_that_is_no_address_is_one_client(caplog: pytest.LogCaptureFixture) -> None:
    """A proxy on this host passes X-Forwarded-For as it came: a new text for each failure had a line of its own
    (and pushed the real clients' lines into "similar lines suppressed")."""

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("must not be reached")

    auth = TokenAuth(app, token="s3cret-token-value", failures=FailureLog(every=10))
    with caplog.at_level(logging.WARNING, logger="backup_glance.web.auth"):
        for n in range(5):
            TestClient(auth, client=(f'evil value {n} "quoted" path=/fake', 1)).get("/api/v1/status")
    assert [r.client for r in caplog.records] == ["(not an address)"]  # type: ignore[attr-defined]


def test_the_failure_log_folds_a_flood_per_client() -> None:
    now = [0.0]
    lines: list[tuple[str, int]] = []
    failures = FailureLog(every=10, max_clients=3, clock=lambda: now[0])
    logger = logging.getLogger("backup_glance.web.auth")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((record.client, record.failures))  # type: ignore[attr-defined]

    keep = Keep()
    logger.addHandler(keep)
    try:
        for _ in range(1000):
            failures.failed("10.0.0.1", "/", "wrong token")
            now[0] += 0.01
        for n in range(10):  # more addresses than it keeps: the rest share one line
            failures.failed(f"10.0.1.{n}", "/", "no credentials")
        now[0] = 30.0
        failures.failed("10.0.0.1", "/", "wrong token")
    finally:
        logger.removeHandler(keep)
    assert lines == [
        ("10.0.0.1", 1),
        ("10.0.1.0", 1),
        ("10.0.1.1", 1),
        ("(many)", 1),
        ("10.0.0.1", 1000),  # no loop to time the window: its count goes out with the next line
    ]


def test_the_token_never_reaches_the_log_even_in_a_path(guarded: ServeProcess) -> None:
    status, _, _ = request(address(guarded), f"/{TOKEN}?x={TOKEN}")
    assert status == 401
    time.sleep(0.3)
    assert TOKEN not in guarded.output
