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
import gzip
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_web import free_port, load, load_wrk, run_client

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


def _size(port: int) -> int:
    """Bytes of one gzip answer (this request also renders and caches the board version)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return len(response.read())


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
    port = free_port()
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
        size = _size(port)
        if use_wrk:
            p50, p99, rps, n = load_wrk(port, "/metrics", args.clients, args.seconds)
        else:
            p50, p99, rps, n = run_client(load(port, "/metrics", args.clients, args.seconds))
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
