"""A fault of ours while reading a request is a 500 in the log, not a malformed client in the guard's books."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
import uvicorn

from backup_glance.httpserver import GuardedProtocol, GuardedServer, Limits
from backup_glance.serving import bind_socket


async def _ask(root_path: str, request: bytes) -> bytes:
    async def app(scope: dict[str, object], receive: object, send: Callable[..., Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=GuardedProtocol, ws="none", log_config=None, lifespan="off", root_path=root_path)
    server = GuardedServer(config, Limits(max_connections=20))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    server.should_exit = True
    await task
    sock.close()
    return answer


def _malformed(caplog: pytest.LogCaptureFixture) -> int:
    """Clients counted as malformed, from the guard's report (it resets its counters when it reports)."""
    return sum(getattr(r, "refused_malformed", 0) for r in caplog.records)


async def test_a_root_path_uvicorn_cannot_encode_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backup_glance.httpserver"):
        answer = await _ask("/sauvegardés", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert _malformed(caplog) == 0
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None and record.exc_info[0] is UnicodeEncodeError


async def test_a_client_url_the_parser_refuses_is_still_a_bad_request(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backup_glance.httpserver"):
        answer = await _ask("", b"GET http://[ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert _malformed(caplog) == 1
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]


def test_auth_and_the_host_check_open_the_same_paths() -> None:
    """One list: a path opened for the token but not for the host check (or the reverse) is a hole or a 421."""
    from backup_glance.web import auth, headers, subpath

    assert auth.OPEN_PATHS is subpath.OPEN_PATHS
    assert headers.OPEN_PATHS is subpath.OPEN_PATHS
