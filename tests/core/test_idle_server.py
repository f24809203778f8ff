"""A server nobody asks anything sleeps, still dates its answers right, and stops at once when told."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
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


async def serving(server: QuietServer) -> tuple[asyncio.Task[None], str]:
    sock = bind_socket("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return task, f"http://127.0.0.1:{sock.getsockname()[1]}/"


async def test_an_idle_server_does_not_wake_and_its_date_is_made_when_asked() -> None:
    server = CountingServer(uvicorn.Config(hello, log_config=None, lifespan="off"))
    task, url = await serving(server)
    began = server.ticks
    await asyncio.sleep(2.2)
    assert server.ticks == began, "uvicorn itself wakes ten times a second"
    async with httpx.AsyncClient() as client:
        dates = []
        for _ in range(2):
            answer = await client.get(url)
            dates.append(parsedate_to_datetime(answer.headers["date"]).timestamp())
            assert abs(dates[-1] - time.time()) < 1.5
            await asyncio.sleep(1.1)
    assert dates[1] > dates[0], "a Date a second later says so"
    stopping = time.monotonic()
    server.should_exit = True
    await task
    assert time.monotonic() - stopping < 0.5, "a stop waits for no tick"


async def test_uvicorns_request_limit_still_stops_the_server() -> None:
    server = QuietServer(uvicorn.Config(hello, log_config=None, lifespan="off", limit_max_requests=2))
    task, url = await serving(server)
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            assert (await client.get(url)).text == "ok"
    await asyncio.wait_for(task, 3)


async def test_the_date_header_can_be_turned_off_and_extra_headers_are_kept() -> None:
    config = uvicorn.Config(hello, log_config=None, lifespan="off", date_header=False, headers=[("x-lab", "1")])
    server = QuietServer(config)
    task, url = await serving(server)
    async with httpx.AsyncClient() as client:
        answer = await client.get(url)
    assert "date" not in answer.headers
    assert answer.headers["x-lab"] == "1"
    server.should_exit = True
    await task


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


def guarded_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(app, http=GuardedProtocol, ws="none", log_config=None, lifespan="off")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


async def test_the_guard_sleeps_while_idle_and_still_closes_a_silent_client_in_time() -> None:
    server = CountingGuardedServer(guarded_config(hello), Limits(head_deadline_s=1.5))
    task, url = await serving(server)
    await asyncio.sleep(1.2)
    assert server.sweeps == 0, "nothing can expire while nobody is there"
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest of the head
    opened = time.monotonic()
    await asyncio.wait_for(reader.read(), 5)  # to the end: the server has closed the connection
    assert 1.5 <= time.monotonic() - opened < 2.1
    writer.close()
    assert 5 <= server.sweeps <= 10, "every 0.25 s while a head is awaited"
    await asyncio.sleep(0.6)
    after = server.sweeps
    await asyncio.sleep(1.5)
    assert server.sweeps == after, "the timeout is reported once, a minute after the count began, not every second"
    assert server.guard.counters.head_timeouts == 1
    assert server._ticker is not None, "that report is still to come"
    server.should_exit = True
    await task


async def test_a_guarded_server_answers_again_after_sleeping() -> None:
    server = CountingGuardedServer(guarded_config(hello), Limits(head_deadline_s=1.0, keep_alive_s=30))
    task, url = await serving(server)
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            answer = await client.get(url)
            assert answer.text == "ok"
            assert abs(parsedate_to_datetime(answer.headers["date"]).timestamp() - time.time()) < 1.5
            await asyncio.sleep(1.6)  # the kept-alive connection is closed at the head deadline in between
    assert server.guard.counters.head_timeouts == 2
    server.should_exit = True
    await task


async def test_a_write_stall_is_reported_at_once_even_with_nobody_else_connected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def streamed(scope: dict[str, object], receive: object, send: object) -> None:
        # Sent in parts, each waiting for the socket to drain: the answer is never complete, so the connection
        # is not waiting for a head, and no sweep is running when the write stalls.
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"x" * 1024 * 1024, "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    server = GuardedServer(guarded_config(streamed), Limits(write_stall_s=0.5))
    task, url = await serving(server)
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # and never read the answer
    with caplog.at_level(logging.WARNING, logger="backup_glance.httpserver"):
        for _ in range(40):
            await asyncio.sleep(0.1)
            if any("under pressure" in r.getMessage() for r in caplog.records):
                break
    assert any("under pressure" in r.getMessage() for r in caplog.records), "reported within seconds, not later"
    writer.close()
    server.should_exit = True
    await task


CONNECTION_TYPES = {"GuardedProtocol", "RequestResponseCycle", "FlowControl"}


@pytest.mark.parametrize("loop_factory", ["uvloop", "asyncio"])
def test_a_stalled_answer_closed_under_pipelined_requests_ends_quietly(
    loop_factory: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that pipelines and never reads: when the write-stall limit closes it, the answer being written
    must learn of it. uvicorn marks only the newest request read as disconnected, so the one writing woke up,
    wrote to the closed transport and logged a 60-line traceback per connection (uvloop raises there)."""
    import socket

    import uvloop

    finished: list[bool] = []
    server_stalls: list[int] = []

    async def streamed(scope: dict[str, object], receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"x" * 256 * 1024, "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]
        finished.append(True)

    async def main() -> None:
        server = GuardedServer(guarded_config(streamed), Limits(write_stall_s=0.5))
        task, url = await serving(server)
        gc.disable()  # what the connection leaves in cycles stays for the check below
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port_of(url)))
        client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n" * 3)  # and never read a byte
        for _ in range(40):
            await asyncio.sleep(0.1)
            if server.guard.counters.write_stalls or not server.guard.open:
                break
        server_stalls.append(server.guard.counters.write_stalls)
        await asyncio.sleep(0.5)  # the writer wakes on the close
        client.close()
        server.should_exit = True
        await task
        # Nothing of the connection is left for the cyclic collector, which walks old objects once an hour only
        # (OldGeneration): the requests read ahead held the protocol, and it them.
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            left.extend(type(o).__name__ for o in gc.garbage if type(o).__name__ in CONNECTION_TYPES)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    left: list[str] = []
    with caplog.at_level(logging.DEBUG):
        factory = uvloop.new_event_loop if loop_factory == "uvloop" else asyncio.new_event_loop
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main())
        finally:
            gc.enable()
    assert server_stalls == [1], "the write-stall limit closed the connection"
    assert not left, f"in reference cycles after the close: {sorted(set(left))}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    # asyncio's loop does not raise: it warned for every write into the closed socket instead
    assert not [r for r in caplog.records if "socket.send() raised" in r.getMessage()]
    assert finished, "the answer ran to its end (its writes became no-ops), holding nothing"
