"""A server nobody asks anything wakes once a second, keeps its Date header fresh, and stops at once when told."""

from __future__ import annotations

import asyncio
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import uvicorn

from backup_glance.httpserver import QuietServer
from backup_glance.serving import bind_socket
from backup_glance.simulators._server import SimulatorServer


async def hello(scope: dict[str, object], receive: object, send: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


class CountingServer(QuietServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


async def test_an_idle_server_wakes_once_a_second_and_its_date_stays_fresh() -> None:
    sock = bind_socket("127.0.0.1", 0)
    server = CountingServer(uvicorn.Config(hello, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    began = server.ticks
    await asyncio.sleep(3.3)
    assert 3 <= server.ticks - began <= 4, "uvicorn itself wakes ten times a second"
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{sock.getsockname()[1]}/")
    assert abs(parsedate_to_datetime(answer.headers["date"]).timestamp() - time.time()) < 2.5
    stopping = time.monotonic()
    server.should_exit = True
    await task
    assert time.monotonic() - stopping < 0.5, "a stop waits for no tick"
    sock.close()


def test_a_simulator_stopped_from_another_thread_stops_at_once() -> None:
    server = SimulatorServer(hello, tls=False).start()
    time.sleep(0.3)
    stopping = time.monotonic()
    server.stop()
    assert time.monotonic() - stopping < 0.5
    assert not any(t.name == f"sim-{server.port}" for t in threading.enumerate())
