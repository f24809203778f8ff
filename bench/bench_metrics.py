"""`/metrics` under load: 500 services, 50 concurrent keep-alive clients, p50/p99 and throughput.

    .venv/bin/python bench/bench_metrics.py [--services 500] [--clients 50] [--seconds 3] [--client auto|wrk|python]

Target: p99 under 10 ms at 50 clients for 500 services. The server is the real app (create_app) under uvicorn
with httptools and uvloop in a subprocess, over a fixed board (tests/web builders), as `serve` runs it; the
exposition is rendered once per board version in the metrics thread and served from cache. The load comes from
`wrk` (Debian package `wrk`, one thread) when it is on the PATH, else from a small asyncio raw-socket HTTP/1.1
client (on uvloop); either shares the 2 cores with the server and asks for gzip, as Prometheus does. Also
printed: what one render costs (once per board version) and the body's size.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "web"))


def serve(port: int, services: int) -> None:
    """Child process: the app over a fixed board of `services` services."""
    import uvicorn
    from web_builders import ZONE, a_full_board

    from backup_glance.board import BoardStore
    from backup_glance.config import Config
    from backup_glance.web import create_app

    app = create_app(Config(timezone=ZONE), BoardStore(a_full_board(services)))
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools", loop="uvloop"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, int]:
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept-Encoding: gzip\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), length


async def _client(port: int, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            status, _ = await _get(reader, writer)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"/metrics: HTTP {status}")
    finally:
        writer.close()


async def _load(port: int, clients: int, seconds: float) -> tuple[float, float, float, int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _, size = await _get(reader, writer)  # warm up: renders and caches this board version
    writer.close()
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, start + seconds, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000, len(latencies) / elapsed, len(latencies), size


# wrk's own histogram, in microseconds, printed by its `done` hook; any error fails the bench.
WRK_SCRIPT = """
wrk.headers["Accept-Encoding"] = "gzip"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def _load_wrk(port: int, clients: int, seconds: float) -> tuple[float, float, float, int, int]:
    url = f"http://127.0.0.1:{port}/metrics"
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:  # warm up: render and cache this version
        size = len(response.read())
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "5s", "-s", script.name, url]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, duration_us, p50_us, p99_us, errors = map(int, found.groups())
    if errors:
        raise RuntimeError(f"/metrics: {errors} errors under load")
    return p50_us / 1000, p99_us / 1000, requests / (duration_us / 1e6), requests, size


def render_cost(services: int) -> tuple[float, int, int, int]:
    """One render of the exposition (what each new board version costs once), its size and series count."""
    from web_builders import a_full_board

    from backup_glance.web.metrics import render_metrics

    board = a_full_board(services)
    render_metrics(board)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        body = render_metrics(board)
        runs.append(time.perf_counter() - start)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return statistics.median(runs) * 1000, len(body), len(gzip.compress(body, 6)), series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "SERVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]))
        return 0
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(args.services)])
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk") is not None)
        if use_wrk:
            p50, p99, rps, n, size = _load_wrk(port, args.clients, args.seconds)
        else:
            import uvloop

            p50, p99, rps, n, size = uvloop.run(_load(port, args.clients, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    render_ms, raw, packed, series = render_cost(args.services)
    client = "wrk -t1" if use_wrk else "python asyncio raw sockets"
    print(
        f"/metrics, {args.services} services, {args.clients} keep-alive clients, {args.seconds:.0f} s, load: {client}"
    )
    print(f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rps:8.0f} req/s  ({n} requests, {size} bytes gzip each)")
    print(f"  one render per board version: {render_ms:.1f} ms in the metrics thread, {series} series,")
    print(f"  {raw / 1024:.0f} KiB ({packed / 1024:.0f} KiB gzip)")
    print(f"  {'PASS' if p99 < 10 else 'MISS'}  p99 < 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
