"""Hostile clients against the web server, longer than tests/hostile runs them: what a well-behaved client sees.

    .venv/bin/python bench/bench_attacks.py [--seconds 20] [--server guarded|uvicorn|hypercorn|granian|all]
                                            [--nofile 1024]

Each server runs in a child process with RLIMIT_NOFILE=--nofile (1,024: the common default) and serves the same
app over a fixed 50-service board (tests/web builders), with an auth_token. One attack at a time, while one
well-behaved client GETs /healthz and /glance/status on fresh connections every 20 ms:

- load: 8 clients on /glance/status, requests per second, on keep-alive connections and on a new connection per
  request (the hot path and the accept path, no attack; the Python client is the bottleneck, so compare
  servers within one run, not with bench_web.py);
- huge headers: 4 clients each streaming a 150 MB header;
- idle flood: 1,100 connections that never send a byte, held (beyond the open-file limit);
- slowloris: 50 clients sending a request head one byte a second;
- wrong tokens: pipelined requests with a wrong bearer token from 3 connections.

Printed per attack: the well-behaved client's p50/p99/max and failures, the server's peak RSS and open files
(summed over its process tree), how many bytes it logged, and what the attackers saw. `guarded` is what
`backup-glance serve` runs (serving.web_server: uvicorn + httpserver); `uvicorn` is plain uvicorn 0.55 with
httptools and timeout_keep_alive=5; `uvicorn-options` adds what uvicorn offers by itself (http=h11, whose
16 KiB incomplete-event limit bounds the head, and limit_concurrency at the same cap, answered with 503);
`hypercorn` (h11, keep_alive_timeout=5, read_timeout=5) and `granian`
(header_read_timeout=5 s) run when they are installed (`pip install hypercorn granian`: not project
dependencies). Bench scripts are run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "hostile"), str(ROOT / "tests" / "integration"), str(ROOT / "tests" / "web")]

from hostile_tools import TOKEN, Client, request  # noqa: E402

from backup_glance.httpserver import Limits  # noqa: E402

SERVERS = ("guarded", "uvicorn", "uvicorn-options", "hypercorn", "granian")
BEARER = f"Authorization: Bearer {TOKEN}\r\n"


# --- the child: one server over one app -------------------------------------------------------------------


def make_app() -> Any:
    from web_builders import ZONE, a_full_board

    from backup_glance.board import BoardStore
    from backup_glance.config import Config, ServerConfig
    from backup_glance.web import create_app

    config = Config(timezone=ZONE, server=ServerConfig(auth_token=TOKEN))
    return create_app(config, BoardStore(a_full_board(50)))


def child(server: str, port: int, nofile: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    if server == "granian":
        from granian.constants import Interfaces, Loops
        from granian.http import HTTP1Settings
        from granian.server import Server

        Server(
            "bench_attacks:make_app",
            port=port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=1,
            loop=Loops.uvloop,
            http1_settings=HTTP1Settings(header_read_timeout=5000),
            working_dir=Path(__file__).parent,
        ).serve()
        return

    import uvloop

    app = make_app()
    if server == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config as HypercornConfig

        config = HypercornConfig()
        config.bind = [f"127.0.0.1:{port}"]
        config.keep_alive_timeout = 5
        config.read_timeout = 5
        config.errorlog = "-"
        uvloop.run(hypercorn_serve(app, config))
        return
    from backup_glance.logs import setup_logging
    from backup_glance.serving import bind_socket, web_server

    sock = bind_socket("127.0.0.1", port)
    if server == "guarded":
        setup_logging()
        uvloop.run(web_server(app).serve(sockets=[sock]))
        return
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO)  # what the service logged before: every line, no rate limit
    options: dict[str, Any] = {}
    if server == "uvicorn-options":  # the closest uvicorn comes on its own: h11's 16 KiB head limit, a 503 cap
        options = {"http": "h11", "limit_concurrency": nofile - 192}
    plain = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_keep_alive=5, **options))
    uvloop.run(plain.serve(sockets=[sock]))


# --- the parent: attacks and measurements ------------------------------------------------------------------


class Child:
    def __init__(self, server: str, nofile: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.where = ("127.0.0.1", self.port)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", server, str(self.port), str(nofile)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])},
        )
        self.logged = 0
        threading.Thread(target=self._count_log, daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request(self.where, "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{server} did not start")

    def _count_log(self) -> None:
        assert self.process.stderr is not None
        while chunk := self.process.stderr.read1(65536):  # type: ignore[attr-defined]
            self.logged += len(chunk)

    def pids(self) -> list[int]:
        """The child and its descendants (granian serves from a worker process)."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, grown = {self.process.pid}, True
        while grown:
            more = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= more
            grown = bool(more)
        return sorted(tree)

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def fds(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += len(os.listdir(f"/proc/{pid}/fd"))
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure(child: Child, name: str, seconds: float, attack: Callable[[threading.Event], str]) -> dict[str, Any]:
    stop = threading.Event()
    outcome: list[str] = []
    logged, rss, fds = child.logged, child.rss_mb(), child.fds()
    peak_rss, peak_fds = rss, fds
    client = Client(child.where, extra=BEARER)
    client.start()
    thread = threading.Thread(target=lambda: outcome.append(attack(stop)), daemon=True)
    thread.start()
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        peak_rss, peak_fds = max(peak_rss, child.rss_mb()), max(peak_fds, child.fds())
        time.sleep(0.1)
    stop.set()
    thread.join(30)
    client.stop()
    return {
        "attack": name,
        **client.figures(),
        "rss_mb": f"{rss:.0f}->{peak_rss:.0f}",
        "fds": f"{fds}->{peak_fds}",
        "log_bytes": child.logged - logged,
        "attackers_saw": outcome[0] if outcome else "(still running)",
        "first_failure": client.failures[0][:70] if client.failures else "",
    }


def _read_answer(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    if not lengths:  # chunked
        while not body.endswith(b"0\r\n\r\n"):
            body += sock.recv(65536)
        return
    length = int(lengths[0].split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)


def load(where: tuple[str, int], seconds: float, *, keep_alive: bool) -> float:
    """Requests per second from 8 clients on /glance/status (no attack): on keep-alive connections, or on a new
    connection per request (which measures the accept path too)."""
    done = [0]
    stop = threading.Event()
    close = "" if keep_alive else "Connection: close\r\n"
    payload = f"GET /glance/status HTTP/1.1\r\nHost: localhost\r\n{BEARER}{close}\r\n".encode()

    def one() -> None:
        try:
            if keep_alive:
                with socket.create_connection(where, timeout=5) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    while not stop.is_set():
                        sock.sendall(payload)
                        _read_answer(sock)
                        done[0] += 1
            else:
                while not stop.is_set():
                    with socket.create_connection(where, timeout=5) as sock:
                        sock.sendall(payload)
                        _read_answer(sock)
                        done[0] += 1
        except OSError:
            pass

    threads = [threading.Thread(target=one, daemon=True) for _ in range(8)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(10)
    return done[0] / (time.monotonic() - began)


def huge_headers(where: tuple[str, int]) -> Callable[[threading.Event], str]:
    def attack(stop: threading.Event) -> str:
        seen: dict[str, int] = {}

        def one() -> None:
            while not stop.is_set():
                try:
                    with socket.create_connection(where, timeout=10) as sock:
                        sock.sendall(b"GET /glance/status HTTP/1.1\r\nHost: localhost\r\nX-Padding: ")
                        chunk = b"a" * 65536
                        try:
                            for _ in range(150 * 16):
                                if stop.is_set():
                                    break
                                sock.sendall(chunk)
                        except OSError:
                            pass
                        try:
                            answer = sock.recv(12).decode("latin-1") or "closed"
                        except OSError:
                            answer = "reset"
                except OSError as exc:
                    answer = type(exc).__name__
                seen[answer] = seen.get(answer, 0) + 1

        threads = [threading.Thread(target=one, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ", ".join(f"{k.strip()!r}x{v}" for k, v in seen.items())

    return attack


def idle_flood(where: tuple[str, int], count: int) -> Callable[[threading.Event], str]:
    def attack(stop: threading.Event) -> str:
        held, refused = [], 0
        for _ in range(count):
            try:
                held.append(socket.create_connection(where, timeout=3))
            except OSError:
                refused += 1
        stop.wait()
        closed = 0
        for sock in held:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            sock.close()
        return f"{len(held)} connected, {refused} refused, {closed} closed by the server by the end"

    return attack


def slowloris(where: tuple[str, int], count: int = 50) -> Callable[[threading.Event], str]:
    def attack(stop: threading.Event) -> str:
        head = b"GET /glance/status HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 10_000
        clients = [socket.create_connection(where, timeout=5) for _ in range(count)]
        began = time.monotonic()
        ended: dict[socket.socket, float] = {}
        sent = 0
        while not stop.is_set() and len(ended) < count:
            if time.monotonic() - began >= sent:
                for sock in clients:
                    if sock not in ended:
                        try:
                            sock.send(head[sent : sent + 1])
                        except OSError:
                            ended[sock] = time.monotonic() - began
                sent += 1
            readable, _, _ = select.select([s for s in clients if s not in ended], [], [], 0.1)
            for sock in readable:
                ended[sock] = time.monotonic() - began
        for sock in clients:
            sock.close()
        if not ended:
            return f"none of {count} cut off in {time.monotonic() - began:.0f} s"
        return f"{len(ended)}/{count} cut off, after {min(ended.values()):.1f}-{max(ended.values()):.1f} s"

    return attack


def wrong_tokens(where: tuple[str, int]) -> Callable[[threading.Event], str]:
    def attack(stop: threading.Event) -> str:
        sent = [0]
        wrong = b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong-token-xyz\r\n\r\n"

        batch = Limits().max_pipelined  # as many as may wait for their answers on one connection

        def one() -> None:
            with socket.create_connection(where, timeout=10) as sock:
                while not stop.is_set():
                    sock.sendall(wrong * batch)
                    buffer = b""
                    while buffer.count(b" 401 ") < batch:
                        buffer += sock.recv(1 << 20)
                    sent[0] += batch

        threads = [threading.Thread(target=one, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return f"{sent[0]} wrong-token requests"

    return attack


def run(server: str, seconds: float, nofile: int) -> list[dict[str, Any]]:
    child = Child(server, nofile)
    try:
        time.sleep(0.5)
        rows = [
            {"attack": "keep-alive load", "req_per_s": round(load(child.where, min(seconds, 5), keep_alive=True))},
            {"attack": "new-connection load", "req_per_s": round(load(child.where, min(seconds, 5), keep_alive=False))},
        ]
        rows.append(measure(child, "none (baseline)", min(seconds, 5), lambda stop: str(stop.wait()) and "-"))
        rows.append(measure(child, "huge headers 4x150MB", seconds, huge_headers(child.where)))
        rows.append(measure(child, f"idle flood {nofile + 76}", seconds, idle_flood(child.where, nofile + 76)))
        time.sleep(6)
        rows.append(measure(child, "slowloris 50", seconds, slowloris(child.where)))
        time.sleep(6)
        rows.append(measure(child, "wrong tokens", seconds, wrong_tokens(child.where)))
        time.sleep(1)
        rows.append({"attack": "log bytes in total", "log_bytes": child.logged})
    finally:
        child.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--server", choices=(*SERVERS, "all"), default="guarded")
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--child", nargs=3, metavar=("SERVER", "PORT", "NOFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = SERVERS if args.server == "all" else (args.server,)
    for server in servers:
        if server in ("hypercorn", "granian") and importlib.util.find_spec(server) is None:
            print(f"\n== {server}: not installed, skipped")
            continue
        print(f"\n== {server}  (open-file limit {args.nofile}, {args.seconds:g} s per attack)", flush=True)
        for row in run(server, args.seconds, args.nofile):
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
