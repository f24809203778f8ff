"""Clients that never finish a request: huge headers, idle connections past the open-file limit, slowloris.

Each attack runs against a real `serve` (the demo homelab) started with an open-file limit of 1,024, the common
default, while a well-behaved client keeps asking for /healthz and /glance/status on fresh connections: it must
get every answer, quickly. Run with `pytest -s` to see the figures.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvicorn
from hostile_tools import address, log_bytes, open_fds, own_fd_room, report, rss_mb, serve, well_behaved
from serve_process import ServeProcess

from backup_glance.httpserver import GuardedProtocol, GuardedServer, Limits
from backup_glance.serving import bind_socket

P99_BOUND_MS = 500.0  # generous: two shared CI cores run the server, the attackers and the measuring client
NOFILE = 1024
DEADLINE_S = 5.0  # httpserver.Limits.head_deadline_s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serve(tmp_path_factory.mktemp("home"), nofile=NOFILE) as process:
        yield process


def _pid(server: ServeProcess) -> int:
    assert server.process is not None
    return server.process.pid


def _assert_served(name: str, figures: dict[str, float], failures: list[str]) -> None:
    assert not failures, f"{name}: the well-behaved client failed: {failures[:5]}"
    assert figures["requests"] > 20, figures
    assert figures["p99_ms"] < P99_BOUND_MS, figures


def test_huge_headers_are_refused_and_memory_stays_flat(server: ServeProcess) -> None:
    where, pid = address(server), _pid(server)
    outcomes: list[bytes] = []
    stop = threading.Event()

    def stream_headers() -> None:
        while not stop.is_set():
            with socket.create_connection(where, timeout=5) as sock:
                sock.sendall(b"GET /glance/status HTTP/1.1\r\nHost: localhost\r\nX-Padding: ")
                chunk = b"a" * 65536
                try:
                    for _ in range(100 * 16):  # up to 100 MB
                        sock.sendall(chunk)
                except OSError:
                    pass
                try:
                    outcomes.append(sock.recv(64) or b"closed")
                except OSError:
                    outcomes.append(b"reset")

    rss_before = rss_mb(pid)
    peak = rss_before
    with well_behaved(where) as client:
        attackers = [threading.Thread(target=stream_headers, daemon=True) for _ in range(4)]
        for thread in attackers:
            thread.start()
        until = time.monotonic() + 5
        while time.monotonic() < until:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)
        stop.set()
        for thread in attackers:
            thread.join(15)
    figures = client.figures()
    report(
        "huge headers",
        attempts=len(outcomes),
        rss_before_mb=round(rss_before, 1),
        rss_peak_mb=round(peak, 1),
        **figures,
    )
    assert outcomes, "no attack finished"
    assert all(o.startswith(b"HTTP/1.1 431") or o in (b"closed", b"reset") for o in outcomes), set(outcomes)
    assert any(o.startswith(b"HTTP/1.1 431") for o in outcomes), set(outcomes)
    assert peak - rss_before < 100, f"RSS grew from {rss_before:.0f} MB to {peak:.0f} MB"
    _assert_served("huge headers", figures, client.failures)


def test_idle_connections_past_the_open_file_limit(server: ServeProcess) -> None:
    count = 1200
    if own_fd_room() < count + 200:
        pytest.skip("this test process may not open enough sockets (raise the hard open-file limit)")
    where, pid = address(server), _pid(server)
    fds_before = open_fds(pid)
    logged_before = log_bytes(server)
    held: list[socket.socket] = []
    peak_fds = fds_before
    with well_behaved(where) as client:
        time.sleep(0.3)
        began = time.monotonic()
        for _ in range(count):
            held.append(socket.create_connection(where, timeout=5))
        opened_in = time.monotonic() - began
        while time.monotonic() - began < 3:
            peak_fds = max(peak_fds, open_fds(pid))
            time.sleep(0.05)
        during_flood = client.figures()
        failures = list(client.failures)
        # Every one of them is closed by the server: shed at the connection cap, or at the head deadline.
        while time.monotonic() - began < opened_in + DEADLINE_S + 2.5:
            time.sleep(0.1)
    logged = log_bytes(server) - logged_before
    closed = sum(_closed_by_peer(sock) for sock in held)
    for sock in held:
        sock.close()
    fds_after = open_fds(pid)
    report(
        "idle flood",
        connections=count,
        opened_in_s=round(opened_in, 2),
        server_fds_before=fds_before,
        server_fds_peak=peak_fds,
        server_fds_after=fds_after,
        closed_by_server=closed,
        log_bytes=logged,
        **during_flood,
    )
    _assert_served("idle flood", during_flood, failures)
    assert peak_fds < NOFILE - 64, "the server came close to its open-file limit"
    assert closed == count
    assert logged < 100_000
    assert fds_after <= fds_before + 5


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_is_closed_at_the_head_deadline(server: ServeProcess) -> None:
    where = address(server)
    head = b"GET /glance/status HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
    clients = [socket.create_connection(where, timeout=5) for _ in range(40)]
    began = time.monotonic()
    ended: dict[socket.socket, tuple[float, bytes]] = {}
    sent = 0
    with well_behaved(where) as client:
        while len(ended) < len(clients) and time.monotonic() - began < DEADLINE_S + 6:
            if time.monotonic() - began >= sent:  # one byte a second
                for sock in clients:
                    if sock not in ended:
                        try:
                            sock.send(head[sent : sent + 1])
                        except OSError:
                            ended[sock] = (time.monotonic() - began, b"send failed")
                sent += 1
            readable, _, _ = select.select([s for s in clients if s not in ended], [], [], 0.1)
            for sock in readable:
                try:
                    answer = sock.recv(64) or b"closed"
                except OSError:
                    answer = b"reset"
                ended[sock] = (time.monotonic() - began, answer)
    for sock in clients:
        sock.close()
    figures = client.figures()
    times = sorted(t for t, _ in ended.values())
    report(
        "slowloris",
        clients=len(clients),
        closed=len(ended),
        first_closed_s=round(times[0], 2) if times else None,
        last_closed_s=round(times[-1], 2) if times else None,
        **figures,
    )
    assert len(ended) == len(clients), "a slow client was never cut off"
    assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in ended.values()), {a for _, a in ended.values()}
    assert times[0] >= DEADLINE_S - 0.5 and times[-1] <= DEADLINE_S + 2.0, times
    _assert_served("slowloris", figures, client.failures)


def _exchange(where: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(where, timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def test_head_limits_count_header_lines_and_pipelined_heads(server: ServeProcess) -> None:
    where = address(server)
    many = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101))
    refused = _exchange(where, many + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431") and refused.endswith(b"at most 100 header lines\n")
    assert b"x-content-type-options: nosniff" in refused and b"content-security-policy: default-src 'none'" in refused
    fine = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(90))
    assert _exchange(where, fine + b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    # A second head in the same write as the first: counted from the parsed headers.
    small = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    big = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    answer = _exchange(where, small + big)
    assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 431" in answer, answer[:300]
    # Pipelining within the limits still works.
    answer = _exchange(where, small * 3 + b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200") == 4


def test_requests_sent_ahead_of_their_answers_are_bounded_and_let_go(server: ServeProcess) -> None:
    """20,000 pipelined requests per connection, then a hang-up: each waiting request held the connection and
    the connection them, a cycle only the hourly full collection freed (RSS 82 -> 599 MB from 20 of them)."""
    where, pid = address(server), _pid(server)
    small = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    answer = _exchange(where, small * 20)
    assert answer.count(b"HTTP/1.1 200") == 17  # one answered, 16 waiting: the next is refused after them
    assert b"HTTP/1.1 429 Too Many Requests" in answer and answer.endswith(b"at most 16 sent ahead of their answers\n")
    before = rss_mb(pid)
    for _ in range(20):
        with socket.create_connection(where, timeout=10) as sock:
            sock.sendall(small * 20_000)
            time.sleep(0.2)
    time.sleep(1)
    after = rss_mb(pid)
    report("pipelining flood", rss_before_mb=before, rss_after_mb=after)
    assert after - before < 40, (before, after)
    assert _exchange(where, small[:-2] + b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_malformed_and_upgrade_requests_end_cleanly(server: ServeProcess) -> None:
    where = address(server)
    assert _exchange(where, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64))).startswith(
        b"HTTP/1.1 400"
    )
    upgrade = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert _exchange(where, upgrade).startswith(b"HTTP/1.1 200")  # answered as plain HTTP, then closed


def test_the_server_is_still_answering_afterwards(server: ServeProcess) -> None:
    with well_behaved(address(server)) as client:
        time.sleep(1)
    assert not client.failures
    assert "Traceback" not in server.output


async def test_at_the_cap_the_oldest_silent_connection_makes_room() -> None:
    """In process, with a cap of 20: the 21st to 30th connections each push out the oldest silent one, and a
    client that then sends a request at once is answered."""

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=GuardedProtocol, ws="none", log_config=None, lifespan="off")
    server = GuardedServer(config, Limits(max_connections=20))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    silent = []
    for _ in range(30):
        silent.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    closed = [n for n, (reader, _) in enumerate(silent) if await _at_eof(reader)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    server.should_exit = True
    await task
    sock.close()
    for _, silent_writer in silent:
        silent_writer.close()
    assert closed == list(range(10))
    assert answer.startswith(b"HTTP/1.1 200")


async def _at_eof(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.05) == b""
    except TimeoutError:
        return False


async def test_at_the_cap_an_answer_nobody_reads_makes_room() -> None:
    """Clients that send a request and never read fill the cap with answers stuck on their way out; they were
    never shed (only connections waiting for a head were), so a newcomer waited for the 30 s write-stall limit,
    and an attacker who reconnects kept the cap full. Now the answer that has waited longest goes."""

    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        parts = 64 if scope["path"] == "/big" else 1  # 64 MiB: more than any socket buffer holds
        body = b"x" * (1024 * 1024) if parts > 1 else b"ok"
        length = b"%d" % (len(body) * parts)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        for _ in range(parts):
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=GuardedProtocol, ws="none", log_config=None, lifespan="off")
    server = GuardedServer(config, Limits(max_connections=20, write_stall_s=60))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    stuck = []
    for _ in range(20):
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")  # and never read
        stuck.append(client)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if len(server.guard.stalled) == 20:
            break
    assert len(server.guard.stalled) == 20 and not server.guard.waiting, "the cap is full of unread answers"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    shed = server.guard.counters.shed
    for client in stuck:
        client.close()
    server.should_exit = True
    await task
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert shed == 1, "one stuck answer made room"
