"""The HTTP client under every web-API source: at most `max_in_flight` requests at once, kept-alive connections,
the one retry a dropped keep-alive connection earns, and no connection lost to a cancelled request.

The server is a few lines of raw HTTP/1.1 on loopback, so each test decides exactly when a connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import resource
import socket
import ssl
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

from backup_glance.errors import (
    SourceAuthError,
    SourceProtocolError,
    SourceTimeout,
    SourceTLSError,
    SourceUnreachable,
)
from backup_glance.sources._http import HttpClient
from backup_glance.sources._transport import StreamTransport, _raise_mapped

Answer = Callable[["Seen", str, int], Awaitable[bytes | None]]  # (seen, path, n-th request on the connection)
RESET = b"(reset the connection)"


@dataclass
class Seen:
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    active: int = 0
    most_active: int = 0


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen, answer: Answer):
    seen.connections += 1
    served = 0
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            seen.requests.append((method, path))
            seen.heads.append(head)
            served += 1
            seen.active += 1
            seen.most_active = max(seen.most_active, seen.active)
            try:
                body = await answer(seen, path, served)
            finally:
                seen.active -= 1
            if body is None:  # drop the connection without a word, as a server closing an idle keep-alive does
                break
            if body is RESET:  # or reset it (a TCP RST: the client's read fails instead of ending)
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                break
            head_out = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: session=s3cr3t; Path=/\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head_out.encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()
    server = await asyncio.start_server(lambda r, w: _serve_connection(r, w, seen, answer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


def client(url: str, max_in_flight: int) -> HttpClient:
    return HttpClient(source="lab", kind="pbs", base_url=url, max_in_flight=max_in_flight, timeout_s=5)


async def slow_ok(_seen: Seen, path: str, _served: int) -> bytes:
    await asyncio.sleep(0.5 if path.startswith("/slow") else 0.03)
    return b'{"data": "ok"}'


async def second_request_dropped(_seen: Seen, _path: str, served: int) -> bytes | None:
    return b'{"data": "ok"}' if served == 1 else None


async def second_request_reset(_seen: Seen, _path: str, served: int) -> bytes | None:
    return b'{"data": "ok"}' if served == 1 else RESET


class TestConnections:
    async def test_requests_in_flight_never_exceed_the_cap_and_connections_are_kept(self) -> None:
        async with raw_server(slow_ok) as (url, seen):
            http = client(url, max_in_flight=3)
            answers = await asyncio.gather(*(http.get_json(f"/item/{i}") for i in range(12)))
            assert answers == [{"data": "ok"}] * 12
            assert seen.most_active == 3 and seen.connections == 3
            await asyncio.gather(*(http.get_json("/again") for _ in range(6)))
            await http.aclose()
        assert seen.connections == 3, "kept-alive connections are used again"
        assert len(seen.requests) == 18 and http.requests_made == 18

    @pytest.mark.parametrize("drop", [second_request_dropped, second_request_reset], ids=["closed", "reset"])
    async def test_a_get_on_a_connection_the_server_dropped_is_sent_once_more(self, drop: Answer) -> None:
        async with raw_server(drop) as (url, seen):
            http = client(url, max_in_flight=1)
            assert await http.get_json("/first") == {"data": "ok"}
            assert await http.get_json("/second") == {"data": "ok"}
            await http.aclose()
        assert seen.requests == [("GET", "/first"), ("GET", "/second"), ("GET", "/second")]
        assert seen.connections == 2

    async def test_a_post_on_a_dropped_connection_is_not_sent_twice(self) -> None:
        async with raw_server(second_request_dropped) as (url, seen):
            http = client(url, max_in_flight=1)
            await http.get_json("/first")
            with pytest.raises(SourceUnreachable, match="request to /change failed"):
                await http.post_json("/change", {"a": 1})
            await http.aclose()
        assert seen.requests == [("GET", "/first"), ("POST", "/change")]

    async def test_a_query_sent_as_post_on_a_dropped_connection_is_sent_once_more(self) -> None:
        """Backrest's Connect RPC asks everything by POST: a poll failed on "Server disconnected" when its kept-alive
        connection closed just as the query went out."""
        async with raw_server(second_request_dropped) as (url, seen):
            http = client(url, max_in_flight=1)
            await http.get_json("/first")
            assert await http.post_json("/v1.Backrest/GetOperations", {}, reads_only=True) == {"data": "ok"}
            await http.aclose()
        assert seen.requests == [("GET", "/first"), *[("POST", "/v1.Backrest/GetOperations")] * 2]

    @pytest.mark.parametrize("cancelled", ["the request being answered", "the request waiting for a connection"])
    async def test_a_cancelled_request_gives_its_connection_back(self, cancelled: str) -> None:
        async with raw_server(slow_ok) as (url, seen):
            http = client(url, max_in_flight=1)
            answering = asyncio.create_task(http.get_json("/slow"))
            await asyncio.sleep(0.1)
            waiting = asyncio.create_task(http.get_json("/slow-too"))
            await asyncio.sleep(0.05)
            (answering if cancelled == "the request being answered" else waiting).cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(answering, waiting, return_exceptions=False)
            async with asyncio.timeout(3):  # hangs for ever if the one connection was lost
                assert await http.get_json("/after") == {"data": "ok"}
            await http.aclose()
        assert ("GET", "/after") in seen.requests


class TestRequests:
    async def test_the_request_line_is_the_one_httpx_would_build(self) -> None:
        asked = [
            ("/admin/datastore/store1/snapshots", {"ns": "a/b c", "backup-type": "vm", "backup-id": "101"}),
            (
                "/nodes/pve1/tasks/UPID:pve1:0001A2B3:00C4D5E6:6780A1B2:vzdump::root@pam:/log",
                {"start": 0, "limit": 500},
            ),
            ("/nodes/localhost/tasks", {"since": 1736906405, "errors": True, "running": False, "userfilter": None}),
            ("/v1.Backrest/GetOperations", None),
            ("/api/v1/jobs", {"name": "ünïcode & more=", "per_page": 100}),
        ]
        async with raw_server(slow_ok) as (url, seen):
            http = client(url, max_in_flight=1)
            for path, params in asked:
                await http.get_json(path, params)
            await http.aclose()
        reference = httpx.AsyncClient(base_url=url)
        expected = [reference.build_request("GET", path, params=params).url.raw_path.decode() for path, params in asked]
        assert [path for _method, path in seen.requests] == expected

    async def test_no_cookie_a_server_sets_is_sent_back(self) -> None:
        async with raw_server(slow_ok) as (url, seen):
            http = HttpClient(source="lab", kind="pbs", base_url=url, headers={"Authorization": "Token t"})
            await http.get_json("/first")
            await http.get_json("/second")
            await http.aclose()
        assert all(b"authorization: token t" in head.lower() for head in seen.heads)
        assert not any(b"cookie:" in head.lower() for head in seen.heads)


class TestTransport:
    async def test_a_proxy_the_environment_names_still_carries_the_requests(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with raw_server(slow_ok) as (proxy, seen):
            monkeypatch.setenv("HTTP_PROXY", proxy)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            http = client("http://pbs.lab.invalid:8007/api2/json", max_in_flight=1)
            assert await http.get_json("/version") == {"data": "ok"}
            await http.aclose()
        assert seen.requests == [("GET", "http://pbs.lab.invalid:8007/api2/json/version")]

    async def test_an_answer_cut_short_is_a_truncated_response_and_the_connection_is_not_reused(self) -> None:
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"data": [1, 2')
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        http = client(url, max_in_flight=1)
        with pytest.raises(SourceProtocolError, match="truncated response on /cut"):
            await http.get_json("/cut")
        with pytest.raises(SourceProtocolError, match="truncated response on /cut"):  # a new connection, same end
            await http.get_json("/cut")
        await http.aclose()
        server.close()

    async def test_a_number_of_thousands_of_digits_costs_that_field_not_the_answer(self) -> None:
        async def absurd(_seen: Seen, _path: str, _served: int) -> bytes:
            return b'{"data": [{"vmid": ' + b"9" * 5000 + b'}, {"vmid": 101}]}'  # json.loads alone refuses it

        async with raw_server(absurd) as (url, _seen):
            http = client(url, max_in_flight=1)
            assert await http.get_json("/cluster/resources") == {"data": [{"vmid": None}, {"vmid": 101}]}
            await http.aclose()

    @pytest.mark.parametrize(
        ("path", "params"),
        [("/nodes/a\ud800/time", None), ("/groups", {"ns": "x\ud800"}), ("/a\r\nX-Forged: 1", None), ("/a\x00", None)],
    )
    async def test_a_name_no_url_carries_costs_that_request(self, path: str, params: dict[str, str] | None) -> None:
        async with raw_server(slow_ok) as (url, seen):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError, match="cannot ask for"):
                await http.get_json(path, params)
            assert await http.get_json("/next") == {"data": "ok"}  # the client goes on
            await http.aclose()
        assert seen.requests == [("GET", "/next")]

    async def test_a_header_http_cannot_carry_is_refused_without_quoting_it(self) -> None:
        """h11's refusal quotes the header whole: the token would reach the log, the API and the page."""
        async with raw_server(slow_ok) as (url, seen):
            http = HttpClient(
                source="lab", kind="databasement", base_url=url, max_in_flight=1, timeout_s=5,
                headers={"Authorization": "Bearer SuperSecretTok3n\nX"},
            )  # fmt: skip
            with pytest.raises(SourceProtocolError) as refused:
                await http.get_json("/next")
            await http.aclose()
        assert "Tok3n" not in str(refused.value) and "HTTP cannot carry" in str(refused.value)
        assert seen.requests == []

    async def test_json_nested_past_any_depth_is_malformed_not_a_crash(self) -> None:
        async def deep(_seen: Seen, _path: str, _served: int) -> bytes:
            return b"[" * 100_000 + b"]" * 100_000

        async with raw_server(deep) as (url, _seen):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError, match="malformed JSON"):
                await http.get_json("/deep")
            await http.aclose()

    async def test_a_tls_connection_given_up_on_lets_its_socket_go_at_once(self) -> None:
        """A timed-out request's connection is aborted, not closed politely: a TLS goodbye would wait for the
        silent server's reply, and the socket would outlive the request (and the event loop)."""
        authority = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(server_context)
        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
        answered = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.transport.pause_reading()  # as uvicorn does while it works on a request
            await answered.wait()  # never, during the request
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        transport = StreamTransport(client_context)
        before = len(os.listdir("/proc/self/fd"))
        request = httpx.Request("GET", f"https://127.0.0.1:{port}/x", extensions={"timeout": {"read": 0.3}})
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(request)
        await asyncio.sleep(0.1)
        assert len(os.listdir("/proc/self/fd")) == before + 1  # the server's end of it, not reading
        answered.set()
        await transport.aclose()
        server.close()


@pytest.mark.parametrize(
    "reset",
    [
        ConnectionResetError(),
        ConnectionResetError(104, "Connection reset by peer"),
        ConnectionResetError("Connection lost"),
    ],
)
def test_a_connection_reset_reads_the_same_however_asyncio_raised_it(reset: ConnectionResetError) -> None:
    # A source error that reads differently from poll to poll is news at every poll.
    with pytest.raises(httpx.ReadError) as caught:
        _raise_mapped(reset)
    assert str(caught.value) == "Connection reset by peer"


@contextlib.asynccontextmanager
async def encoded_server(
    encoding: str, body: bytes, status: str = "200 OK", headers: str = "", split_at: int = 0
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers every request with `body` as it is, labelled with `encoding` (its first `split_at` bytes sent on
    their own, a moment before the rest); collects the request heads."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:split_at]
            )
            await writer.drain()
            if split_at:
                await asyncio.sleep(0.05)
            writer.write(body[split_at:])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", heads
    finally:
        server.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TestCompression:
    @pytest.mark.parametrize(
        ("encoding", "packed"),
        [
            ("gzip", gzip.compress(b'{"data": 1}')),
            ("GZIP, identity", gzip.compress(b'{"data": 1}')),
            ("deflate", zlib.compress(b'{"data": 1}')),  # zlib-wrapped, as PBS sends it
            ("deflate", zlib.compress(b'{"data": 1}')[2:-4]),  # raw, as some servers send it
            ("gzip", b""),  # an empty body labelled gzip is an empty body
        ],
    )
    @pytest.mark.parametrize("split_at", [0, 1], ids=["whole", "first-byte-alone"])
    async def test_it_asks_for_gzip_or_deflate_and_reads_what_comes(
        self, encoding: str, packed: bytes, split_at: int
    ) -> None:
        async with encoded_server(encoding, packed, split_at=split_at) as (url, heads):
            http = client(url, max_in_flight=1)
            if packed:
                assert await http.get_json("/version") == {"data": 1}
            else:
                with pytest.raises(SourceProtocolError, match="an empty answer on /version, where JSON belongs"):
                    await http.get_json("/version")
            await http.aclose()
        assert b"\r\naccept-encoding: gzip, deflate\r\n" in heads[0].lower()

    @pytest.mark.parametrize(
        ("status", "encoding", "body", "error", "message"),
        [
            ("401 Unauthorized", "gzip", b"", SourceAuthError, "token rejected"),
            ("502 Bad Gateway", "br", b"\x1b\x03<html>", SourceUnreachable, "HTTP 502 on /version$"),
            ("500 Internal Server Error", "identity", b"<!DOCTYPE html><p>oops", SourceUnreachable, "an HTML page"),
            ("304 Not Modified", "gzip", b"", SourceProtocolError, "HTTP 304 on /version: no answer to read"),
        ],
    )
    async def test_an_answer_that_is_no_success_is_named_by_its_status_whatever_its_body(
        self, status: str, encoding: str, body: bytes, error: type[Exception], message: str
    ) -> None:
        async with encoded_server(encoding, body, status=status) as (url, _heads):
            http = client(url, max_in_flight=1)
            with pytest.raises(error, match=message):
                await http.get_json("/version")
            await http.aclose()

    async def test_a_long_error_message_is_read_whole_and_shown_cut_with_a_mark(self) -> None:
        """PBS names the chunk it could not open by its path: the JSON is longer than a first glance at it."""
        path = "/mnt/datastore/main/.chunks/3f1c/3f1c" + "0a9b" * 15
        message = f'unable to open chunk store at "{path}" - No such file or directory (os error 2)\n' * 3
        body = json.dumps({"data": None, "message": message}).encode()
        async with encoded_server("identity", body, status="400 Bad Request") as (url, _heads):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError) as raised:
                await http.get_json("/admin/datastore/main/namespace")
            await http.aclose()
        shown = str(raised.value)
        assert "HTTP 400 on /admin/datastore/main/namespace: unable to open chunk store at" in shown, shown
        assert shown.endswith("…") and "\n" not in shown and len(shown) < 300, shown

    async def test_millions_of_tiny_records_are_refused_before_they_are_decoded(self) -> None:
        """20 KB of gzip that inflate to `{"data": [{}, {}, ...]}`: under the byte limit, it decoded into gigabytes
        of Python objects and held the event loop (the web server with it) for seconds."""
        packed = gzip.compress(b'{"data": [' + b"{}," * 5_000_000 + b"{}]}", compresslevel=9)
        assert len(packed) < 100_000
        before, began = peak_rss_mb(), time.perf_counter()
        async with encoded_server("gzip", packed) as (url, _heads):
            http = HttpClient(source="lab", kind="pbs", base_url=url, timeout_s=5)
            with pytest.raises(SourceProtocolError, match=r"on /groups holds about 5,000,000 values, more than the"):
                await http.get_json("/groups")
            await http.aclose()
        assert time.perf_counter() - began < 3 and peak_rss_mb() - before < 100

    @pytest.mark.parametrize("layers", [1, 2])
    async def test_a_gzip_bomb_is_refused_at_the_limit_without_inflating_it(self, layers: int) -> None:
        packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), b"0" * 1024 * 1024
        packed = [packer.compress(b'{"data": "'), *(packer.compress(zeros) for _ in range(300)), packer.flush()]
        bomb = b"".join(packed)  # 300 MB of zeros in 300 KB (in 1 KB, packed once more)
        for _ in range(layers - 1):
            bomb = gzip.compress(bomb, compresslevel=9)
        before = peak_rss_mb()
        async with encoded_server(", ".join(["gzip"] * layers), bomb) as (url, _heads):
            http = HttpClient(source="lab", kind="pbs", base_url=url, timeout_s=5, max_bytes=8 * 1024 * 1024)
            refused = "is larger than 8 MB" if layers == 1 else "compressed as 'gzip,gzip'; only one gzip or deflate"
            with pytest.raises(SourceProtocolError, match=refused):
                await http.get_json("/groups")
            await http.aclose()
        assert peak_rss_mb() - before < 100  # never the 300 MB (httpx inflated each piece whole, every layer)

    @pytest.mark.parametrize(
        ("encoding", "body", "message"),
        [
            ("br", b"\x1b\x03", "compressed as 'br'"),
            ("gzip", b"\xef\xbb\xbf <html>", "not valid compressed data"),
            ("gzip", b"not gzip at all", "not valid compressed data"),
            ("gzip", gzip.compress(b'{"data": [1, 2, 3]}')[:-12], "its compressed data ends early"),
        ],
    )
    async def test_a_body_that_does_not_unpack_is_a_protocol_error(
        self, encoding: str, body: bytes, message: str
    ) -> None:
        async with encoded_server(encoding, body) as (url, _heads):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError, match=message):
                await http.get_json("/version")
            await http.aclose()


@pytest.mark.parametrize(
    ("headers", "auth", "secret", "kept"),
    [
        ({"Authorization": "PBSAPIToken=monitor@pbs!glance:0Delok-7c1e"}, None, "0Delok-7c1e", "monitor@pbs!glance"),
        ({"Authorization": "PVEAPIToken=monitor@pve!glance=aa11-bb22"}, None, "aa11-bb22", "monitor@pve!glance"),
        ({"Authorization": "Bearer 42|dbm-token-xyz"}, None, "42|dbm-token-xyz", "Bearer"),
        ({}, httpx.BasicAuth("monitor", "hunter22"), "bW9uaXRvcjpodW50ZXIyMg", "Basic"),
    ],
    ids=["pbs", "pve", "bearer", "basic"],
)
async def test_a_server_quoting_the_request_back_does_not_put_the_secret_on_the_board(
    headers: dict[str, str], auth: httpx.Auth | None, secret: str, kept: str
) -> None:
    """A proxy's error page that quotes the request: the secret went on the board and every page showing it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            quoted = next(line for line in head.split("\r\n") if line.lower().startswith("authorization"))
            body = json.dumps({"message": f"bad request: {quoted} (password hunter22)"}).encode()
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = HttpClient(source="lab", kind="pbs", base_url=url, headers=headers, auth=auth, timeout_s=5)
    shown = await refusal(http, server, "/nodes/localhost/time", SourceUnreachable)
    assert "bad request: " in shown and "********" in shown and kept in shown, shown
    assert secret not in shown and ("hunter22" not in shown or auth is None), shown


@pytest.mark.parametrize(
    ("names", "expired", "said"),
    [
        (("127.0.0.1",), True, "certificate not accepted: certificate has expired"),
        (("pbs.example",), False, "certificate not accepted: IP address mismatch, certificate is not valid for"),
    ],
    ids=["expired", "another-host"],
)
async def test_a_certificate_the_ca_file_signs_but_that_is_wrong_says_what_is_wrong(
    tmp_path: Path, names: tuple[str, ...], expired: bool, said: str
) -> None:
    """Both said "certificate not trusted (set fingerprint: ... or ca_file:)", with ca_file set already."""
    import trustme

    ca = trustme.CA()
    past = datetime.now(UTC) - timedelta(days=1)
    leaf = (
        ca.issue_cert(*names, not_before=past - timedelta(days=30), not_after=past)
        if expired
        else ca.issue_cert(*names)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = HttpClient(source="lab", kind="pbs", base_url=url, ca_file=str(ca_file), timeout_s=5)
    shown = await refusal(http, server, "/version", SourceTLSError)
    assert said in shown and "fingerprint" not in shown, shown


async def refusal(http: HttpClient, server: asyncio.Server, path: str, error: type[Exception]) -> str:
    """What `http` raises asking `server` for `path`; both are closed after."""
    try:
        with pytest.raises(error) as raised:
            await http.get_json(path)
    finally:
        await http.aclose()
        server.close()
    return str(raised.value)


async def test_a_server_that_never_completes_the_handshake_cannot_be_connected_to() -> None:
    """It accepts the connection and says nothing: that read "no answer within the timeout", as if a request had
    been sent and was waiting for its answer."""
    held: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _r, w: held.append(w), "127.0.0.1", 0)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = HttpClient(source="lab", kind="pbs", base_url=url, fingerprint="00" * 32, timeout_s=0.5)
    shown = await refusal(http, server, "/version", SourceTimeout)
    assert shown.endswith("cannot connect within the timeout (asking for /version)"), shown
    for writer in held:
        writer.close()


class TestAnswersThatAreNotTheApi:
    async def test_an_html_page_is_named_as_one(self) -> None:
        page = b"\xef\xbb\xbf\n  <!DOCTYPE html><html><body>Sign in</body></html>"  # a BOM first, even
        async with encoded_server("identity", page) as (url, _):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError, match=r"an HTML page, not JSON, on /version: is the source's url"):
                await http.get_json("/version")
            await http.aclose()

    async def test_a_redirect_names_where_it_leads_and_is_not_followed(self) -> None:
        moved = "Location: https://sso.lan/login?next=/api\r\n"
        async with encoded_server("identity", b"", status="302 Found", headers=moved) as (url, heads):
            http = client(url, max_in_flight=1)
            with pytest.raises(SourceProtocolError, match=r"HTTP 302 on /version: redirected to https://sso.lan/login"):
                await http.get_json("/version")
            await http.aclose()
        assert len(heads) == 1  # asked once: never sent on to where it pointed
