"""What does one request cost the client? Our transport (`sources/_transport.py`) against httpx's own.

Run: .venv/bin/python bench/bench_http.py [--rounds N]      (default 3)

The PBS simulator of bench_proxmox_poll (200 guests) runs in a child process over HTTPS with a pinned
certificate. The same `HttpClient` a source uses (8 connections, kept alive) sends 400 small requests
(`/admin/datastore`, about 300 bytes) and 40 big ones (one namespace's snapshot list, about 270 KB), 8 at a
time, once over our transport and once over httpx's own (what carries the requests when the environment names a
proxy). Printed: this process's CPU per request, the median of the rounds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import time
from typing import Any
from unittest import mock

import bench_cycle
import bench_proxmox_poll as lab_bench
from backup_glance.config import PbsSourceConfig
from backup_glance.sources import _http
from backup_glance.sources._http import HttpClient

ROUNDS = 3
GUESTS = 200
ASKED = (("/admin/datastore", None, 400), ("/admin/datastore/store0/snapshots", {"ns": "site00"}, 40))


async def cpu_per_request(config: PbsSourceConfig, url: str, path: str, params: Any, count: int) -> float:
    headers = {"Authorization": f"PBSAPIToken={lab_bench.TOKEN_ID}:{lab_bench.SECRET}"}
    client = HttpClient.for_source(config, kind="pbs", base_url=f"{url}/api2/json", headers=headers)
    try:
        await asyncio.gather(*(client.get_body(path, params) for _ in range(16)))  # connect and warm up
        began = time.process_time()
        await asyncio.gather(*(client.get_body(path, params) for _ in range(count)))
        return (time.process_time() - began) / count
    finally:
        await client.aclose()


async def measure() -> None:
    lab_bench.GUESTS = GUESTS
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=bench_cycle._serve, args=(child, GUESTS))
    process.daemon = True
    process.start()
    url, pin = parent.recv()["pbs"]
    config = PbsSourceConfig(
        name="pbs",
        type="pbs",
        url=url,
        fingerprint=pin,
        token_id=lab_bench.TOKEN_ID,
        token_secret=lab_bench.SECRET,
        max_in_flight=8,
    )
    print(f"PBS simulator ({GUESTS} guests) over HTTPS, 8 connections; CPU per request, median of {ROUNDS} rounds")
    for path, params, count in ASKED:
        ours, httpx_own = [], []
        for _ in range(ROUNDS):
            ours.append(await cpu_per_request(config, url, path, params, count))
            with mock.patch.object(_http, "_proxy_for", return_value=True):  # httpx's own transport
                httpx_own.append(await cpu_per_request(config, url, path, params, count))
        mine, theirs = statistics.median(ours), statistics.median(httpx_own)
        print(
            f"  {path:36} our transport {mine * 1e6:6.0f} us   httpx's own {theirs * 1e6:6.0f} us"
            f"   ({mine / theirs:.0%})"
        )
    parent.send("stop")
    process.join(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rounds"] and sys.argv[2:3] and sys.argv[2].isdigit() and int(sys.argv[2]) > 0:
        ROUNDS = int(sys.argv[2])
    elif sys.argv[1:]:
        sys.exit("bench_http: usage: bench_http.py [--rounds N]")
    asyncio.run(measure())
