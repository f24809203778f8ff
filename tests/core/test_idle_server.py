"""A server nobody asks anything wakes once a second, keeps its Date header fresh, and stops at once when told."""

from __future__ import annotations

import asyncio
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import uvicorn

from backup_glance.httpserver import GuardedProtocol, GuardedServer, Limits, QuietServer
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


class CountingGuardedServer(GuardedServer):
    sweeps = 0

    def _tick(self) -> None:
        self.sweeps += 1
        super()._tick()


async def test_the_guard_sweeps_once_a_second_while_idle_and_still_closes_a_silent_client_in_time() -> None:
    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(hello, http=GuardedProtocol, ws="none", log_config=None, lifespan="off")
    server = CountingGuardedServer(config, Limits(head_deadline_s=1.5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    began = server.sweeps
    await asyncio.sleep(3.2)
    assert server.sweeps - began <= 5, "every 0.25 s while nobody is there"
    reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest of the head
    opened = time.monotonic()
    await asyncio.wait_for(reader.read(), 5)  # to the end: the server has closed the connection
    assert 1.5 <= time.monotonic() - opened < 2.1
    writer.close()
    server.should_exit = True
    await task
    sock.close()
