"""An httpx transport that speaks HTTP/1.1 (h11) over one asyncio connection, kept alive between requests.

`HttpClient` gives each request in flight a client with a pool of one connection. httpx's own transport reaches
that connection through httpcore and anyio (a pool, a cancel scope per read and write, an async library lookup per
lock): for a small PBS answer that was half of the CPU the request cost, and more for a big snapshot list read in
64 KB steps. This transport keeps what matters of it: the request and response as httpx makes and reads them,
TLS with the client's own context (a pinned certificate is checked in the handshake), the timeouts a request
carries, and the same httpx errors for the same failures (a kept-alive connection the server had closed raises
`RemoteProtocolError` before any byte of an answer, which the client may retry once).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import NoReturn

import h11
import httpx

READ_SIZE = 256 * 1024  # what one read takes from the socket at most (a PBS snapshot list is megabytes)
CLOSE_WAIT_S = 1.0  # how long closing waits for the TLS goodbye before letting the connection go
Origin = tuple[str, str, int]  # scheme, host, port


class _Connection:
    __slots__ = ("origin", "reader", "state", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.state = h11.Connection(h11.CLIENT)

    def usable_for(self, origin: Origin) -> bool:
        """Still open to the same server: not closed by either side while it was idle."""
        return self.origin == origin and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        """Say goodbye (TLS close_notify) and close: for a connection in good order."""
        self.writer.close()

    def abort(self) -> None:
        """Close at once: a connection with a request or answer half done is spoiled, and a server that stopped
        answering would not answer a goodbye either (the socket would outlive the event loop)."""
        self.writer.transport.abort()


class StreamTransport(httpx.AsyncBaseTransport):
    """One connection at a time (the client using it sends one request at a time), kept alive between requests."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._idle: _Connection | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        connection, self._idle = self._idle, None
        if connection is not None and not connection.usable_for(origin):
            connection.abort()
            connection = None
        if connection is None:
            connection = await self._connect(origin, timeouts.get("connect"))
        try:
            await self._send(connection, request, timeouts.get("write"))
            response = await self._response_head(connection, timeouts.get("read"))
        except BaseException as exc:
            connection.abort()
            _raise_mapped(exc)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        secure = scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._context if secure else None, server_hostname=host if secure else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within the timeout") from exc
        except OSError as exc:  # refused, unreachable, no such host, and TLS failures (ssl.SSLError is one)
            raise httpx.ConnectError(str(exc) or exc.__class__.__name__) from exc
        return _Connection(origin, reader, writer)

    @staticmethod
    async def _send(connection: _Connection, request: httpx.Request, timeout: float | None) -> None:
        state = connection.state
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        data = state.send(head) or b""
        body = await request.aread()
        if body:
            data += state.send(h11.Data(data=body)) or b""
        data += state.send(h11.EndOfMessage()) or b""
        connection.writer.write(data)
        try:
            async with asyncio.timeout(timeout):
                await connection.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("the request could not be sent within the timeout") from exc
        except OSError as exc:  # reset while sending: nothing of it was answered (safe to retry a GET)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from exc

    @staticmethod
    async def _response_head(connection: _Connection, timeout: float | None) -> h11.Response:
        state = connection.state
        received = False
        while True:
            event = state.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = await _read(connection, timeout)
                except OSError as exc:  # reset before, or while, the answer came (a timeout is one too: not that)
                    if received or isinstance(exc, TimeoutError):
                        raise
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from exc
                if not chunk and not received:
                    # Nothing of an answer: the server had closed this kept-alive connection (safe to retry).
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                received = True
                state.receive_data(chunk)
            elif isinstance(event, h11.Response):
                return event
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            # an informational (1xx) answer: the real one follows

    def _release(self, connection: _Connection) -> None:
        """A response read to its end: keep the connection for the next request if both sides allow it."""
        state = connection.state
        if state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            if self._idle is not None:
                self._idle.close()
            self._idle = connection
        else:  # the server said it closes: nothing more to say on it
            connection.abort()

    async def aclose(self) -> None:
        connection, self._idle = self._idle, None
        if connection is not None:
            connection.close()
            try:
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await connection.writer.wait_closed()
            except Exception:  # no goodbye back in time, or a broken one: the socket goes anyway
                connection.abort()


class _Body(httpx.AsyncByteStream):
    def __init__(self, transport: StreamTransport, connection: _Connection, timeout: float | None) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = timeout
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        state = connection.state
        try:
            while True:
                event = state.next_event()
                if event is h11.NEED_DATA:
                    state.receive_data(await _read(connection, self._timeout))  # b"" at the end: h11 decides
                elif isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._complete = True
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError("the server closed the connection before the answer's end")
        except BaseException as exc:
            _raise_mapped(exc)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._complete:
            self._transport._release(connection)
        else:  # the caller stopped reading (too big, cancelled, failed): what is left unread spoils the connection
            connection.abort()


async def _read(connection: _Connection, timeout: float | None) -> bytes:
    async with asyncio.timeout(timeout):
        return await connection.reader.read(READ_SIZE)


def _raise_mapped(exc: BaseException) -> NoReturn:
    """Raise `exc` as the httpx error httpx's own transport raises for it (the original as its cause)."""
    if isinstance(exc, httpx.HTTPError) or not isinstance(exc, Exception):
        raise exc  # already httpx's, or a cancellation
    if isinstance(exc, TimeoutError):
        raise httpx.ReadTimeout("no answer within the timeout") from exc
    if isinstance(exc, h11.RemoteProtocolError):
        raise httpx.RemoteProtocolError(str(exc)) from exc
    if isinstance(exc, h11.LocalProtocolError):
        raise httpx.LocalProtocolError(str(exc)) from exc
    if isinstance(exc, OSError):
        raise httpx.ReadError(_reason(exc)) from exc
    raise exc


def _reason(exc: OSError) -> str:
    """The same words for the same failure: asyncio raises a reset with an errno, with a text of its own, or bare,
    and a source error that reads differently each poll is news each poll."""
    if isinstance(exc, ConnectionResetError):
        return "Connection reset by peer"
    return exc.strerror or str(exc) or exc.__class__.__name__
