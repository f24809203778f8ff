"""uvicorn, hardened against clients that never finish: bounded request heads, deadlines, a connection cap.

    limits = Limits.for_this_process()           # raises the open-file limit, sizes the connection cap
    server = GuardedServer(uvicorn.Config(app, http=GuardedProtocol, timeout_keep_alive=limits.keep_alive_s,
                                          ws="none", ...), limits)
    await server.serve(sockets=[sock])

uvicorn's httptools protocol keeps the hot path fast (every answer is pre-rendered; a request costs
microseconds), but on its own it lets a client hold memory and file descriptors for as long as it likes:
httptools gathers a header of any size in memory, and a connection that never sends a request is never
closed. `GuardedProtocol` adds, per connection:

- a bound on the request head: at most `max_head_bytes` (16 KiB: request line plus headers; Glance,
  browsers and Prometheus send well under 2 KiB) and `max_headers` (100) header lines, else
  `431 Request Header Fields Too Large` and close. Bytes are counted as they arrive, before the parser
  sees them, so a 150 MB header costs 16 KiB;
- a deadline to finish the head (`head_deadline_s`, 5 s), counted from the connection's start and again
  from the end of each response on keep-alive: a partial head gets `408`, a silent connection is closed;
- at most `max_pipelined` (16) requests waiting for their answers (pipelining), else `429` after them and
  close; what still waits when a connection closes is let go at once (it and the connection hold each other);
- uvicorn's own keep-alive idle limit (`keep_alive_s`), and a limit on how long a response may wait for a
  client that does not read it (`write_stall_s`).

`GuardedServer` accepts connections itself rather than through `loop.create_server`: a connection is accepted
only while fewer than `max_connections` are open, and at the cap the OLDEST connection that has not finished its
request head is shed to make room (a cap that turns the newcomer away would itself be the denial of service);
with none, the one whose answer has waited longest for its client to read it (clients that send requests and
never read filled the cap for the 30 s of the write-stall limit, wave after wave). The cap sits below the
open-file limit (`Limits.for_this_process`: soft limit raised to the hard one, minus headroom for the
collector's outgoing connections, SQLite and the log), so `accept()` never meets EMFILE. That matters beyond the
log: on uvloop, libuv answers EMFILE by accepting and dropping every pending connection, and a listen error that
reaches uvloop closes the listening socket for good. When nothing can be shed (every connection is mid-request,
its answer not waiting on the client), accepting pauses until one closes; newcomers wait in the kernel's backlog
instead of being refused.

What the guard did is logged as one line a minute at most (connections shed, heads refused or timed out),
never one line per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

FD_HEADROOM = 128  # open files kept free for everything that is not an incoming connection
MAX_CONNECTIONS = 4096  # a homelab dashboard; each open connection costs a few KiB
MIN_CONNECTIONS = 64
SHED_SLACK = 64  # shed connections still closing (their fd is freed on the next loop turn) count up to this
ACCEPT_BATCH = 64  # connections accepted per readiness event, so a flood cannot starve the loop
SWEEP_S = 0.25  # how often head deadlines are checked
IDLE_TICK_S = 1.0  # uvicorn's tick, needed only for its request limit and notify callback
REPORT_EVERY_S = 60.0
LINGER_S = 1.0  # after a refusal, read (and drop) what the client still sends so it sees the answer, not a reset
LINGER_BYTES = 256 * 1024  # ... but no more than this: past it, reading stops until the close
_NO_ROOM = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class Limits:
    """What one connection may do, and how many may be open."""

    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    # Requests read ahead of their answers on one connection. Browsers and Glance send one at a time; each one
    # waiting holds its parsed request, so without a bound one connection could pile up millions.
    max_pipelined: int = 16
    head_deadline_s: float = 5.0
    keep_alive_s: int = 5
    write_stall_s: float = 30.0
    max_connections: int = 1024

    @classmethod
    def for_this_process(cls) -> Limits:
        """Raise the open-file soft limit to the hard one, and size the connection cap from what is left of it."""
        return cls(max_connections=connection_cap(raise_open_file_limit(), in_use=_files_open()))


def raise_open_file_limit() -> int:
    """Soft RLIMIT_NOFILE raised to the hard limit (where allowed); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit", extra={"soft": soft, "hard": hard})
        else:
            log.debug("raised the open-file limit", extra={"soft": soft, "now": target})
            soft = target
    return soft


def connection_cap(open_files: int, in_use: int = 0) -> int:
    """The most connections to hold with `open_files` allowed and `in_use` open already (the history, the log,
    the demo's simulators): FD_HEADROOM stays free for what the process opens later (the collector's outgoing
    connections), SHED_SLACK for shed connections still closing.

    >>> connection_cap(1024), connection_cap(1024, in_use=60), connection_cap(1 << 20), connection_cap(200)
    (832, 772, 4096, 64)
    """
    return max(MIN_CONNECTIONS, min(open_files - in_use - FD_HEADROOM - SHED_SLACK, MAX_CONNECTIONS))


def _files_open() -> int:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(folder))
    return 0


@dataclass
class _Counters:
    shed: int = 0
    too_large: int = 0
    too_many_pipelined: int = 0
    malformed: int = 0
    head_timeouts: int = 0
    write_stalls: int = 0
    accept_errors: int = 0
    since: float = field(default_factory=time.monotonic)

    def pressure(self) -> bool:
        return bool(
            self.shed
            or self.too_large
            or self.too_many_pipelined
            or self.malformed
            or self.write_stalls
            or self.accept_errors
        )

    def empty(self) -> bool:
        return not (self.pressure() or self.head_timeouts)


class Guard:
    """Per server: counts open connections, keeps the ones waiting for a request head in arrival order, closes
    them at their deadline or sheds the oldest at the cap."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0  # accepted sockets not yet closed, shed ones still closing included
        self.waiting: dict[GuardedProtocol, float] = {}  # insertion order is deadline order
        # Answers waiting for a client to read, since when: at the cap, the longest waiting goes when no
        # connection waits for a head (clients that send requests and never read would otherwise fill the cap).
        self.stalled: dict[GuardedProtocol, float] = {}
        self.closing: set[GuardedProtocol] = set()
        self.counters = _Counters()
        self.reported_at = -REPORT_EVERY_S
        self.on_release: Callable[[], None] = lambda: None
        # Something may expire or is to be reported: the server's tick must run again.
        self.on_busy: Callable[[], None] = lambda: None

    def wait_for_head(self, protocol: GuardedProtocol) -> None:
        self.waiting.pop(protocol, None)
        self.waiting[protocol] = time.monotonic()
        self.on_busy()

    def closed_by_us(self, protocol: GuardedProtocol) -> None:
        self.waiting.pop(protocol, None)
        self.stalled.pop(protocol, None)
        self.closing.add(protocol)

    def release(self) -> None:
        self.open -= 1
        self.on_release()

    def forget(self, protocol: GuardedProtocol) -> None:
        self.waiting.pop(protocol, None)
        self.stalled.pop(protocol, None)
        self.closing.discard(protocol)
        self.release()

    def at_cap(self) -> bool:
        return self.open - len(self.closing) >= self.limits.max_connections

    def over_budget(self) -> bool:
        return self.open >= self.limits.max_connections + SHED_SLACK

    def can_shed(self) -> bool:
        return bool(self.waiting or self.stalled)

    def shed_oldest(self) -> bool:
        """Close the connection that has waited longest for a request head, else the one whose answer has waited
        longest for the client to read it; False when there is none."""
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            oldest = next(iter(self.stalled), None)
        if oldest is None:
            return False
        self.counters.shed += 1
        oldest.shed()
        return True

    def sweep(self) -> None:
        deadline = time.monotonic() - self.limits.head_deadline_s
        expired = []
        for protocol, since in self.waiting.items():
            if since > deadline:
                break
            expired.append(protocol)
        for protocol in expired:
            self.counters.head_timeouts += 1
            protocol.head_timed_out()

    def report_due(self) -> float:
        """When `report` next writes (or quietly resets) what has been counted, on the monotonic clock."""
        return (self.reported_at if self.counters.pressure() else self.counters.since) + REPORT_EVERY_S

    def report(self, force: bool = False) -> None:
        """One line for what happened since the last one: at once when trouble starts, then once a minute."""
        counters, now = self.counters, time.monotonic()
        if counters.pressure():
            if force or now - self.reported_at >= REPORT_EVERY_S:
                self.reported_at = now
                log.warning(
                    "the web server is under pressure from clients",
                    extra={
                        "seconds": round(now - counters.since),
                        "shed_at_connection_cap": counters.shed,
                        "connection_cap": self.limits.max_connections,
                        "refused_large_heads": counters.too_large,
                        "refused_pipelining": counters.too_many_pipelined,
                        "refused_malformed": counters.malformed,
                        "head_timeouts": counters.head_timeouts,
                        "write_stalls": counters.write_stalls,
                        "accept_errors": counters.accept_errors,
                        "open": self.open,
                    },
                )
                self.counters = _Counters(since=now)
        elif force or now - counters.since >= REPORT_EVERY_S:
            if counters.head_timeouts:
                log.debug("connections closed at the head deadline", extra={"count": counters.head_timeouts})
            self.counters = _Counters(since=now)


class _Refused(Exception):
    """Raised from a parser callback to stop a head that went over a limit."""


def _plain_answer(status: int, text: str) -> bytes:
    body = text.encode("ascii") + b"\n"
    phrase = {
        400: b"Bad Request",
        408: b"Request Timeout",
        429: b"Too Many Requests",
        431: b"Request Header Fields Too Large",
        500: b"Internal Server Error",
    }[status]
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, phrase),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"referrer-policy: no-referrer\r\n",
            b"cache-control: no-store\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the per-connection limits of `Limits` (see the module docstring)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: Guard | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard if guard is not None else Guard(Limits())
        self.limits = self.guard.limits
        self._head_open = True  # the parser is reading (or waiting for) a request head
        self._head_bytes = 0  # raw bytes of that head received so far
        # A head that begins inside the read that ended the previous request was not counted from its first
        # byte (its size is bounded by that read); it is measured from the parsed headers instead.
        self._pipelined = False
        self._heads_done = 0
        self._refusal = 0  # status a parser callback asked for
        self._too_many_headers = False  # what made a 431: the header lines, not the bytes
        self._refused = False
        self._last_answer: bytes | None = None  # a refusal waiting for the answers to pipelined requests
        self._lingered = 0
        self._forgotten = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._answering: Any = None  # the request cycle whose answer runs (uvicorn's `cycle` is the newest read)

    # connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.wait_for_head(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.forget()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        # uvicorn tells only its newest request of the loss; with requests pipelined, that is one still waiting,
        # and the answer being written woke up to write on into the closed transport (uvloop raises there: a
        # traceback per client that stops reading).
        answering = self._answering
        if answering is not None and not answering.response_complete:
            answering.disconnected = True
            answering.message_event.set()
        self._answering = None
        super().connection_lost(exc)
        # Requests read ahead that will never be answered: each holds this protocol (its answer's callback), and
        # this protocol holds them (the newest as `cycle` too). Let go now, or only the cyclic collector could
        # free them, within the hour (see OldGeneration): a flood of clients that pipeline and never read grew
        # the heap by 35 MB a minute.
        self.pipeline.clear()
        self.cycle = None  # type: ignore[assignment]

    def forget(self) -> None:
        """Leave the guard's books (once): on connection_lost, or when the connection never got going."""
        if not self._forgotten:
            self._forgotten = True
            self.guard.forget(self)

    def shed(self) -> None:
        self.guard.closed_by_us(self)
        self._unset_keepalive_if_required()
        self.transport.abort()

    def head_timed_out(self) -> None:
        if self._head_bytes and self._head_open:
            self._refuse(408, "408 request timeout: the request head did not arrive in time")
        else:
            self.shed()

    def _refuse(self, status: int, text: str) -> None:
        """Answer, stop parsing, and close after a short linger (closing with unread input would reset the
        connection and could destroy the answer before the client reads it)."""
        self.guard.closed_by_us(self)
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._unset_keepalive_if_required()
        answer = _plain_answer(status, text)
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            self._last_answer = answer  # a pipelined head: after the answers to the requests before it
        else:
            self._send_last(answer)

    def _send_last(self, answer: bytes) -> None:
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.abort)

    # reading

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.pause_reading()
            return
        self._unset_keepalive_if_required()
        if self._head_open:
            if not self._head_bytes:
                self._pipelined = False  # this head is counted from its first byte
            room = self.limits.max_head_bytes - self._head_bytes
            if len(data) > room:
                self._head_bytes = self.limits.max_head_bytes
                heads = self._heads_done
                if not self._feed(data[:room]):
                    return
                if self._heads_done == heads:
                    self._too_large()
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> bool:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No WebSockets here: the request was answered as plain HTTP; the connection ends with it.
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.keep_alive = False
            else:
                self.transport.close()
            return False
        except httptools.HttpParserCallbackError as exc:
            # Raised by a callback: our own refusal, a client's bad URL, or a fault of ours (say, a root_path
            # uvicorn cannot encode), which is no client's doing and must not be counted as one.
            if self._refusal == 431:
                self._too_large()
            elif self._refusal == 429:
                self.guard.counters.too_many_pipelined += 1
                limit = self.limits.max_pipelined
                self._refuse(429, f"429 too many requests: at most {limit} sent ahead of their answers")
            elif isinstance(exc.__context__, httptools.HttpParserError | UnicodeDecodeError):
                self.guard.counters.malformed += 1
                self._refuse(400, "400 bad request: not a valid HTTP/1.1 request")
            else:
                log.error("internal error while reading a request", exc_info=exc.__context__ or exc)
                self._refuse(500, "500 internal server error: see the server log")
            return False
        except httptools.HttpParserError:
            if self._refusal == 431:
                self._too_large()
            else:
                self.guard.counters.malformed += 1
                self._refuse(400, "400 bad request: not a valid HTTP/1.1 request")
            return False
        return True

    def _too_large(self) -> None:
        self.guard.counters.too_large += 1
        if self._too_many_headers:
            limit = f"at most {self.limits.max_headers} header lines"
        else:
            limit = f"at most {self.limits.max_head_bytes} bytes"
        self._refuse(431, f"431 request header fields too large: {limit}")

    # parser callbacks (only those the limits need: this is the hot path)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._heads_done += 1
        self.guard.waiting.pop(self, None)
        self._too_many_headers = len(self.headers) > self.limits.max_headers
        if self._too_many_headers or (self._pipelined and self._parsed_size() > self.limits.max_head_bytes):
            self._refusal = 431
            raise _Refused
        if len(self.pipeline) >= self.limits.max_pipelined:
            self._refusal = 429
            raise _Refused
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._answering = cycle
        super()._start_asgi_task(cycle, app)

    def _parsed_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._head_open = True
        self._head_bytes = 0
        self._pipelined = True  # until data_received sees the next head start at the beginning of a read
        super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline
        super().on_response_complete()
        if not idle or self.transport.is_closing():
            return
        if self._last_answer is not None:
            self._send_last(self._last_answer)
            self._last_answer = None
        else:
            self.guard.wait_for_head(self)  # the next head's deadline counts from the end of this response

    # writing

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.limits.write_stall_s, self._write_stalled)
            if not self._forgotten and not self.transport.is_closing():
                self.guard.stalled[self] = time.monotonic()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.guard.stalled.pop(self, None)
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _write_stalled(self) -> None:
        self._stall_timer = None
        self.guard.counters.write_stalls += 1
        self.shed()
        self.guard.on_busy()  # a streamed answer's connection waits for no head: no sweep would report this


class _Acceptor:
    """Accepts on one listening socket while the guard has room (see the module docstring)."""

    def __init__(self, sock: socket.socket, factory: Callable[[], GuardedProtocol], guard: Guard) -> None:
        self.sock = sock
        self.factory = factory
        self.guard = guard
        self.loop = asyncio.get_running_loop()
        self.reading = False
        self.stopped = False
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if not self.reading and not self.stopped:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self.reading = True

    def pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
            self.reading = False
            self.guard.on_busy()

    def stop(self) -> None:
        self.pause()
        self.stopped = True

    def _accept(self) -> None:
        guard = self.guard
        for _ in range(ACCEPT_BATCH):
            if guard.over_budget() or (guard.at_cap() and not guard.can_shed()):
                self.pause()  # resumed when a connection closes, or by the next tick
                return
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                guard.counters.accept_errors += 1
                if exc.errno in _NO_ROOM:
                    log.warning("cannot accept connections: %s", exc.strerror, extra={"open": guard.open})
                else:
                    log.warning("accept failed: %s", exc.strerror or exc)
                self.pause()
                self.loop.call_later(0.5, self.start)
                return
            if guard.at_cap():
                guard.shed_oldest()  # room for the newcomer: the connection that waited longest goes
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            guard.open += 1
            protocol = self.factory()
            task = self.loop.create_task(self._attach(conn, protocol))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _attach(self, conn: socket.socket, protocol: GuardedProtocol) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: protocol, conn)
        except (OSError, RuntimeError):  # the peer left already, or the loop is closing
            conn.close()
            protocol.forget()

    def resume_if_room(self) -> None:
        if not self.reading and not self.stopped and not self.guard.over_budget():
            self.start()


class _DatedState(ServerState):
    """uvicorn's shared server state, whose default headers carry a Date made when a response reads them (once a
    second at most) instead of one a timer renews every second whether anyone asks or not."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._config = config
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        if second != self._second:
            dated = [(b"date", formatdate(second, usegmt=True).encode())] if self._config.date_header else []
            self._headers = dated + self._config.encoded_headers
            self._second = second
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        """uvicorn's own tick sets them; they are made from the config instead, at the second they are read."""


class QuietServer(uvicorn.Server):
    """uvicorn's Server, asleep while idle and awake at once when told to stop.

    uvicorn's main loop wakes every 0.1 s to see whether it should stop and every second to renew its Date
    header: for a board nobody looks at, and for the demo's five servers, those wakeups were a large part of the
    CPU spent idle. Here the Date header is made when a response is (`_DatedState`), and setting `should_exit`
    (from any thread) ends the wait. Only uvicorn's request limit and notify callback, which we do not use, still
    need a tick (once a second)."""

    _exit = False
    _wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.server_state = _DatedState(config)

    @property
    def should_exit(self) -> bool:
        return self._exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit = value
        if value and self._wake is not None:
            loop, event = self._wake
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(event.set)

    async def main_loop(self) -> None:
        event = asyncio.Event()
        self._wake = (asyncio.get_running_loop(), event)
        ticking = self.config.limit_max_requests is not None or self.config.callback_notify is not None
        ticks = 0
        try:
            while not await self.on_tick(ticks):
                ticks += 10  # uvicorn's tick does its once-a-second work on every tenth call
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_TICK_S if ticking else None):
                        await event.wait()
        finally:
            self._wake = None


class GuardedServer(QuietServer):
    """uvicorn's Server with our own accept loop, connection cap and head deadlines (module docstring)."""

    def __init__(self, config: uvicorn.Config, limits: Limits | None = None) -> None:
        super().__init__(config)
        self.guard = Guard(limits or Limits())
        self.acceptors: list[_Acceptor] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._sweeping = False  # `_ticker` is the frequent one that expires heads

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:
            raise ValueError("GuardedServer serves sockets bound by the caller")
        await super().startup(sockets=[])  # everything but the listening, which is ours
        config, guard = self.config, self.guard

        def factory() -> GuardedProtocol:
            return GuardedProtocol(config, self.server_state, self.lifespan.state, guard=guard)

        self.acceptors = [_Acceptor(sock, factory, guard) for sock in sockets]
        guard.on_release = self._released
        guard.on_busy = self._watch
        for acceptor in self.acceptors:
            acceptor.start()

    def _released(self) -> None:
        for acceptor in self.acceptors:
            acceptor.resume_if_room()

    def _watch(self) -> None:
        """A head started waiting or an acceptor paused: sweep until nothing can expire any more."""
        if self._sweeping:
            return
        if self._ticker is not None:  # the one tick that writes a report later: sweeping comes first
            self._ticker.cancel()
        elif self.guard.counters.empty():
            self.guard.counters.since = time.monotonic()  # the next report counts from here, not from idle
        self._schedule(SWEEP_S, sweeping=True)

    def _schedule(self, delay: float, *, sweeping: bool) -> None:
        self._sweeping = sweeping
        self._ticker = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._ticker, self._sweeping = None, False
        guard = self.guard
        guard.sweep()
        guard.report()
        self._released()  # an acceptor paused with every connection busy retries once some wait again
        if guard.waiting or any(not a.reading and not a.stopped for a in self.acceptors):
            self._schedule(SWEEP_S, sweeping=True)
        elif not guard.counters.empty():  # idle, with a line still to write: one tick when it is due
            self._schedule(max(guard.report_due() - time.monotonic(), SWEEP_S), sweeping=False)
        # Otherwise nothing can expire and nothing is left to report: an idle server sleeps until `_watch`.

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.guard.on_busy = lambda: None
        for acceptor in self.acceptors:
            acceptor.stop()
        if self._ticker is not None:
            self._ticker.cancel()
        self.guard.report(force=True)
        await super().shutdown(sockets=None)


__all__ = [
    "GuardedProtocol",
    "GuardedServer",
    "Limits",
    "connection_cap",
    "raise_open_file_limit",
]
