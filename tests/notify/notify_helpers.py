"""Shared parts of the notify tests: a real HTTP receiver on loopback (what Apprise's json:// posts to, and what
a heartbeat pings), and small builders for boards that state only what a test is about."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from backup_glance.model import (
    STATUS_SEVERITY,
    Board,
    Datastore,
    DatastoreView,
    Job,
    JobKind,
    JobRun,
    JobView,
    RunOutcome,
    Severity,
    SourceState,
    Status,
    Verdict,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday; 13:00 in Madrid
ZONE = "Europe/Madrid"
HOSTILE = 'evil"name\\with\nnewline} {label="x"} <b>&'

if TYPE_CHECKING:
    from backup_glance.notify import Notifier


@dataclass
class Clock:
    """The time a test says it is (a notifier's, a runtime's `clock`)."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def local(self, text: str) -> None:
        """Set it to a wall time in the test zone, "2026-11-26T23:10"."""
        self.now = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE))


class Driving:
    """Runs a notifier's steps on the test's own event loop (`loop`), one at a time, with no background task."""

    loop: asyncio.AbstractEventLoop

    def flush(self, notifier: Notifier) -> dict[str, bool | None]:
        return self.loop.run_until_complete(notifier.flush())

    def close(self, notifier: Notifier) -> None:
        self.loop.run_until_complete(notifier.stop())


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Receiver:
    """Collects every request; `status` is what it answers (set 500 to refuse, a list to answer in turn)."""

    server: ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)
    status: int | list[int] = 200
    delay_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook", scheme: str = "json", userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}127.0.0.1:{self.port}{path}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [hit.body for hit in self.hits if hit.method == "POST" and hit.body is not None]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}: {self.messages}")

    def answer(self) -> int:
        with self._lock:
            if isinstance(self.status, list):
                return self.status.pop(0) if len(self.status) > 1 else self.status[0]
            return self.status


@contextmanager
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            me = holder[0]
            if me.delay_s:
                time.sleep(me.delay_s)
            with me._lock:
                me.hits.append(Hit(self.command, self.path, dict(self.headers), body))
            self.send_response(me.answer())
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()


def a_source(
    name: str = "pbs-main",
    *,
    kind: str = "pbs",
    error: str | None = None,
    last_success_ago: timedelta | None = timedelta(minutes=1),
    attempted: bool = True,
    at: datetime = NOW,
) -> SourceState:
    return SourceState(
        name=name,
        kind=kind,
        poll_interval=timedelta(minutes=5),
        last_attempt_at=at - timedelta(seconds=30) if attempted else None,
        last_success_at=at - last_success_ago if last_success_ago is not None else None,
        error=error,
        last_poll_seconds=0.25 if attempted else None,
    )


def a_verdict(
    service_id: str,
    status: Status = Status.OK,
    *,
    reason: str | None = None,
    name: str | None = None,
    sources: tuple[str, ...] = ("pbs-main",),
    at: datetime = NOW,
) -> Verdict:
    reasons = (reason,) if reason else (() if status is Status.OK else (f"{status.value} because of a test",))
    return Verdict(
        service_id=service_id,
        name=name or service_id,
        status=status,
        severity=STATUS_SEVERITY[status],
        reasons=reasons,
        sources=sources,
        last_success_at=at - timedelta(hours=9),
        next_run_at=at + timedelta(hours=15),
        snapshot_count=7,
        newest_size_bytes=1_234_567,
    )


def a_board(
    *verdicts: Verdict,
    sources: tuple[SourceState, ...] | None = None,
    at: datetime = NOW,
    datastores: tuple[DatastoreView, ...] = (),
) -> Board:
    from backup_glance.health import overall

    states = sources if sources is not None else (a_source(at=at),)
    return Board(
        generated_at=at,
        timezone=ZONE,
        verdicts=verdicts,
        sources=states,
        datastores=datastores,
        overall=overall(verdicts, states, datastores),
    )


def a_datastore(name: str = "main", *, full_in_days: float | None = 431.0) -> DatastoreView:
    store = Datastore(
        key=f"pbs-main/{name}", source="pbs-main", name=name, total_bytes=2_000_000_000_000, used_bytes=70_000_000_000
    )
    return DatastoreView(store, Severity.OK, (), used_fraction=0.035, full_in_days=full_in_days)


def a_job(key: str, outcome: RunOutcome) -> JobView:
    run = JobRun(job_key=key, source="pve", run_id="UPID:1", started_at=NOW - timedelta(hours=8), outcome=outcome)
    job = Job(key=key, source="pve", kind=JobKind.BACKUP, job_id=key, name=key, last_run=run)
    return JobView(job=job, next_run_at=NOW + timedelta(hours=16), last_run=run, typical_duration=None)


def a_metrics_board() -> Board:
    """Every kind of fact /metrics shows, hostile names included."""
    board = a_board(
        a_verdict("vault"),
        a_verdict("postgres", Status.FAILED),
        a_verdict(HOSTILE, Status.LATE, name=HOSTILE + " \udcff"),
        sources=(a_source(), a_source(HOSTILE, kind="restic", error="boom", last_success_ago=None)),
        datastores=(a_datastore(), a_datastore(HOSTILE, full_in_days=None)),
    )
    jobs = (a_job("pve/backup/nightly", RunOutcome.OK), a_job("pve/backup/" + HOSTILE, RunOutcome.FAILED))
    return replace(board, jobs=jobs)


@dataclass
class Tally:
    """What a raw receiver saw and did: connections, bytes it managed to send, requests it read."""

    connections: int = 0
    sent: int = 0
    requests: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def raw_target(handle: Callable[[socket.socket, Tally], None]) -> Iterator[tuple[int, Tally]]:
    """A TCP listener on loopback; each connection goes to `handle` in a thread of its own. -> (port, tally)"""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    tally = Tally()

    def serve(conn: socket.socket) -> None:
        with conn, suppress(OSError, ssl.SSLError):
            handle(conn, tally)

    def accept() -> None:
        while not tally.stop.is_set():
            with suppress(TimeoutError):
                conn, _ = listener.accept()
                tally.connections += 1
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], tally
    finally:
        tally.stop.set()
        acceptor.join(5)
        listener.close()


@contextmanager
def dripping_target() -> Iterator[tuple[int, Tally]]:
    """A webhook that reads the request, then answers one byte every half second, never finishing: what a broken
    proxy may do. -> (its port, what it saw)."""

    def drip(conn: socket.socket, tally: Tally) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        while not tally.stop.wait(0.5):  # a header that never ends
            conn.sendall(b"x")

    with raw_target(drip) as (port, tally):
        yield port, tally
