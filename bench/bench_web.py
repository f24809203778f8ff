"""Web layer load test: uvicorn in a subprocess, 50 concurrent keep-alive clients, p50/p99 and throughput.

    .venv/bin/python bench/bench_web.py [--seconds 3] [--rounds 3] [--clients 50] [--client auto|wrk|python]
                                        [--status-services 50] [--api-services 500] [--no-protection]

Targets: /glance/status (50 services) p99 < 10 ms and throughput >= half of /healthz in the same run;
/api/v1/status (500 services) p99 < 20 ms. The same checks are printed for other sizes (e.g. 2,000 guests:
`--status-services 2000 --api-services 2000`). Every service carries protection facts (issue 13: a local and an
offsite copy, offsite lag, encryption, restore test; every fourth healthy one at_risk with its risks), so the
status widget's protection line, the API's `protection`/`risks` and the page's columns are rendered; with
--no-protection the board is the plain one of tests/web. The server runs uvicorn with httptools and uvloop when they are
installed (as `uvicorn` picks by itself). The load generator shares the CPU with it, so it is kept cheap: `wrk`
(Debian package `wrk`, one thread, no pipelining) when it is on the PATH, else a small asyncio raw-socket
HTTP/1.1 client (on uvloop when available), so the numbers measure the server rather than a client library.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
Result = tuple[float, float, float, int]  # p50 ms, p99 ms, requests/s, requests

# wrk prints exact figures from its own histogram (microseconds) in `done`; errors fail the bench.
WRK_SCRIPT = """
wrk.headers["Accept-Encoding"] = "gzip"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def server_stack() -> dict[str, Any]:
    """What uvicorn would pick with "auto", said explicitly so the printout shows what ran."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return {"http": http, "loop": loop}


def bench_board(services: int, protection: bool) -> Any:
    """tests/web's busy homelab of `services` services, with protection facts on every verdict if asked."""
    sys.path.insert(0, str(ROOT / "tests" / "web"))
    from dataclasses import replace
    from datetime import timedelta

    from web_builders import NOW, a_full_board

    from backup_glance.health import overall
    from backup_glance.model import STATUS_SEVERITY, Copy, Protection, Risk, RiskKind, Status

    board = a_full_board(services)
    if not protection:
        return board
    verdicts = []
    for i, v in enumerate(board.verdicts):
        local = Copy("main/site-a", "pbs-main", False, NOW - timedelta(hours=9), snapshots=60, encrypted=True)
        far_at = NOW - timedelta(hours=9 + (i % 4) * 20)
        far = Copy("offsite:backups/site-a", "pbs-main", True, far_at, snapshots=58, encrypted=i % 5 != 0)
        restored = NOW - timedelta(days=10 + i % 120)
        risks: list[Risk] = []
        if v.status in (Status.OK, Status.AT_RISK) and (i % 4 == 1 or v.status is Status.AT_RISK):
            risks.append(Risk(RiskKind.OFFSITE_LAG, f"newest offsite copy is {9 + (i % 4) * 20}h old; 2d allowed"))
            risks.append(Risk(RiskKind.UNENCRYPTED, "offsite copy offsite:backups/site-a is not encrypted"))
            risks.append(Risk(RiskKind.RESTORE_TEST, "last successful restore test 2026-07-01, more than 90d ago"))
        p = Protection(
            copies=(local, far),
            offsite_lag=local.newest_at - far_at if local.newest_at else None,
            encrypted=i % 5 != 0,
            protected_snapshots=1,
            verified_at=NOW - timedelta(hours=5),
            verification_stale_at=NOW + timedelta(days=25),
            last_restore_test_at=restored,
            risks=tuple(risks),
        )
        status = Status.AT_RISK if risks and v.status is Status.OK else v.status
        reasons = v.reasons + tuple(r.detail for r in risks) if status is Status.AT_RISK else v.reasons
        verdicts.append(replace(v, status=status, severity=STATUS_SEVERITY[status], reasons=reasons, protection=p))
    return replace(board, verdicts=tuple(verdicts), overall=overall(verdicts, board.sources, board.datastores))


def serve(port: int, services: int, protection: bool = True) -> None:
    """Child process: one app over a fixed board of `services` services (tests/web builders)."""
    sys.path.insert(0, str(ROOT / "tests" / "web"))
    import uvicorn
    from web_builders import ZONE

    from backup_glance.board import BoardStore
    from backup_glance.config import Config
    from backup_glance.web import create_app

    app = create_app(Config(timezone=ZONE), BoardStore(bench_board(services, protection)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **server_stack())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    # Accept-Encoding as Go's http.Client (Glance, custom-api) sends it by default.
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _client(port: int, path: str, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            status = await _get(reader, writer, path)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
    finally:
        writer.close()


async def load(port: int, path: str, clients: int, seconds: float) -> Result:
    latencies: list[float] = []
    # Warm up: the first request renders and caches the board version.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _get(reader, writer, path)
    writer.close()
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, path, start + seconds, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return quantiles[49] * 1000, quantiles[98] * 1000, len(latencies) / elapsed, len(latencies)


def run_client(coro: Coroutine[Any, Any, T]) -> T:
    """The Python client on uvloop when there is one: less client CPU taken from the server."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def load_wrk(port: int, path: str, clients: int, seconds: float) -> Result:
    url = f"http://127.0.0.1:{port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:  # warm up: render and cache the board version
        response.read()
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "5s", "-s", script.name, url]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, duration_us, p50_us, p99_us, bad_status, socket_errors = map(int, found.groups())
    if bad_status or socket_errors:
        raise RuntimeError(f"{path}: {bad_status} non-2xx answers, {socket_errors} socket errors")
    return p50_us / 1000, p99_us / 1000, requests / (duration_us / 1e6), requests


async def _app_cost(app: object, path: str, n: int = 2000) -> float:
    """Microseconds per request through the whole ASGI stack (auth, routing, cache), without any network."""
    path_part, _, query = path.partition("?")
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": path_part,
        "raw_path": path_part.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept-encoding", b"gzip")], "server": ("bench", 80),
        "client": ("127.0.0.1", 1),
    }  # fmt: skip

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        return None

    await app(dict(scope), receive, send)  # type: ignore[operator]
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1e6


def app_costs(plan: list[tuple[int, tuple[str, ...]]], protection: bool) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests" / "web"))
    from web_builders import ZONE

    from backup_glance.board import BoardStore
    from backup_glance.config import Config
    from backup_glance.web import create_app

    out: dict[str, float] = {}
    for services, paths in plan:
        app = create_app(Config(timezone=ZONE), BoardStore(bench_board(services, protection)))
        for path in paths:
            out[f"{path} ({services} services)"] = asyncio.run(_app_cost(app, path))
    return out


def _start(services: int, protection: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", str(port), str(services)]
    proc = subprocess.Popen(command + ([] if protection else ["--no-protection"]))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _medians(measured: list[Result]) -> Result:
    """Each figure's median over the rounds (a round of a shared 2-core machine can be slowed by a neighbour)."""
    p50, p99, rps, n = (statistics.median(r[i] for r in measured) for i in range(4))
    return p50, p99, rps, int(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per endpoint; medians are reported")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    parser.add_argument("--status-services", type=int, default=50, help="services for /healthz, /glance/status")
    parser.add_argument("--api-services", type=int, default=500, help="services for /api/v1/status")
    parser.add_argument("--no-protection", action="store_true", help="no protection facts on the verdicts")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "SERVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    protection = not args.no_protection
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), protection)
        return 0
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
    small, big = args.status_services, args.api_services
    plan = [(small, ("/healthz", "/glance/status")), (big, ("/api/v1/status",))]
    rounds: dict[str, list[Result]] = {}
    for services, paths in plan:
        proc, port = _start(services, protection)
        try:
            for _ in range(args.rounds):  # interleaved, so a busy moment of the shared machine hits every endpoint
                for path in paths:
                    label = f"{path} ({services} services)"
                    if use_wrk:
                        measured = load_wrk(port, path, args.clients, args.seconds)
                    else:
                        measured = run_client(load(port, path, args.clients, args.seconds))
                    rounds.setdefault(label, []).append(measured)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    results = {label: _medians(measured) for label, measured in rounds.items()}
    stack = server_stack()
    client = "wrk -t1 (no pipelining)" if use_wrk else "python asyncio raw sockets"
    print(
        f"{args.clients} concurrent keep-alive clients, {args.seconds:.0f} s per endpoint and round, "
        f"{args.rounds} rounds (medians), load from {client}"
    )
    print(f"server: uvicorn http={stack['http']} loop={stack['loop']}, one worker")
    print("board: " + ("protection facts on every service" if protection else "no protection facts"))
    for label, (p50, p99, rps, n) in results.items():
        print(f"  {label:36} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rps:8.0f} req/s  ({n} requests)")
        print(f"  {'':36} p99 of each round: " + "  ".join(f"{r[1]:.2f}" for r in rounds[label]) + " ms")
    print("app cost per request, in process (no network, one at a time):")
    for label, micros in app_costs(plan, protection).items():
        print(f"  {label:36} {micros:7.1f} µs")
    healthz = results[f"/healthz ({small} services)"]
    status = results[f"/glance/status ({small} services)"]
    api = results[f"/api/v1/status ({big} services)"]
    # On a shared 2-core box the client and uvicorn compete for CPU; the in-process cost above is the floor.
    checks = {
        f"/glance/status ({small}) p99 < 10 ms": status[1] < 10,
        f"/glance/status ({small}) throughput >= half of /healthz": status[2] >= healthz[2] / 2,
        f"/api/v1/status ({big}) p99 < 20 ms": api[1] < 20,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
