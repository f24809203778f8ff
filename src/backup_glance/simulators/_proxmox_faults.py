"""Fault switches, request counting and token checks shared by the PBS and PVE simulators.

Sits under `simulators/`: a raw ASGI wrapper around a Starlette app. It decides *whether* a request is answered
honestly; the wrapped app decides *what* the honest answer is. Flip `Faults` fields while the server runs; read
`RequestLog` to assert how many requests a poll made. It must never be used by production code.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Faults:
    """Mutable fault switches; a test flips them while the server runs."""

    down: bool = False  # answer 503 to everything, as a proxy in front of a stopped service does
    unauthorized: bool = False  # reject every token
    malformed_json: bool = False  # 200 with a body that is not JSON
    wrong_shape: bool = False  # 200 with valid JSON but no `data` member
    truncated: bool = False  # announce the full Content-Length, send half, drop the connection
    huge: bool = False  # 200 with a valid but oversized body (`huge_bytes`)
    huge_bytes: int = 256 * 1024
    slow_seconds: float = 0.0  # delay before answering
    # API path -> seconds to wait before answering it alone (an endpoint that is slow to page, as a big task list)
    slow_paths: dict[str, float] = field(default_factory=dict)
    # Send the honest answer one byte at a time at this rate: every read stays under a client's read timeout
    # while the whole answer takes minutes (a crawling link or a hostile proxy).
    trickle_bytes_per_s: float = 0.0
    error_body: bytes | None = None  # answer HTTP 500 with exactly this body (what a broken proxy might send)
    # Real PBS delays failed logins ~3 s (reference §1.1); a short default keeps the tests fast.
    auth_failure_delay_s: float = 0.2
    # API paths (after /api2/json) this "older version" lacks: answered 404 as an unknown path.
    missing_paths: set[str] = field(default_factory=set)
    # API paths the token lacks the privilege for: answered 403 "Permission check failed".
    forbidden_paths: set[str] = field(default_factory=set)
    # API path -> (bytes, their replacement) in its honest answer: one record the JSON encoder would never write
    # (a byte no UTF-8 has, from a comment a broken client stored).
    rewrites: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)


@dataclass
class RequestLog:
    """Requests seen, per path (without query) and with their query parameters, in arrival order."""

    counts: Counter[str] = field(default_factory=Counter)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # per call, `time.monotonic()` when it came in
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self.counts[path] += 1
            self.calls.append((path, query))
            self.arrived.append(time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self.counts.clear()
            self.calls.clear()
            self.arrived.clear()

    def timed(self) -> list[tuple[str, dict[str, str], float]]:
        """-> (path, query, when it came in) per call, in arrival order."""
        with self._lock:
            return [(path, query, at) for (path, query), at in zip(self.calls, self.arrived, strict=True)]

    def matching(self, fragment: str) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return [(path, query) for path, query in self.calls if fragment in path]


class ProxmoxFaultWrapper:
    """ASGI app: counts, applies faults, checks the API token, then hands over to the real app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        check_token: Callable[[str | None], bool],
        unauthorized_body: bytes,
        faults: Faults | None = None,
        lab: Any = None,
    ) -> None:
        self.app = app
        self.lab = lab  # the state the app renders; tests mutate it while the server runs
        self.faults = faults if faults is not None else Faults()
        self.requests = RequestLog()
        self._check_token = check_token
        self._unauthorized_body = unauthorized_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        self.requests.record(unquote(scope["path"]), query)
        faults = self.faults
        if faults.slow_seconds:
            await asyncio.sleep(faults.slow_seconds)
        if delay := faults.slow_paths.get(scope["path"].removeprefix("/api2/json")):
            await asyncio.sleep(delay)
        if faults.down:
            await _respond(send, 503, b"service unavailable", "text/plain")
            return
        header = _header(scope, b"authorization")
        if faults.unauthorized or not self._check_token(header):
            await asyncio.sleep(faults.auth_failure_delay_s)
            await _respond(send, 401, self._unauthorized_body, "application/json;charset=UTF-8")
            return
        if scope["path"].removeprefix("/api2/json") in faults.forbidden_paths:
            await _respond(send, 403, b'{"data":null,"message":"Permission check failed"}', "application/json")
            return
        if scope["path"].removeprefix("/api2/json") in faults.missing_paths:
            await _respond(send, 404, f"Path '{scope['path']}' not found.".encode(), "application/json")
            return
        if faults.malformed_json:
            await _respond(send, 200, b'{"data": [{"store": "main",, }]}', "application/json")
            return
        if faults.wrong_shape:
            await _respond(send, 200, b'{"success": 1, "result": []}', "application/json")
            return
        if faults.huge:
            padding = b"0," * (faults.huge_bytes // 2)
            await _respond(send, 200, b'{"data": [' + padding + b"0]}", "application/json")
            return
        if faults.error_body is not None:
            await _respond(send, 500, faults.error_body, "text/plain")
            return
        if faults.truncated:
            await self._truncated(scope, receive, send)
            return
        if faults.trickle_bytes_per_s:
            await self._trickled(scope, receive, send, faults.trickle_bytes_per_s)
            return
        rewrite = faults.rewrites.get(scope["path"].removeprefix("/api2/json"))
        if rewrite is not None:
            await self._rewritten(scope, receive, send, *rewrite)
            return
        await self.app(scope, receive, send)

    async def _rewritten(self, scope: Scope, receive: Receive, send: Send, old: bytes, new: bytes) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in captured if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body").replace(old, new)
        await _respond(send, start["status"], body, "application/json")

    async def _trickled(self, scope: Scope, receive: Receive, send: Send, rate: float) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in captured if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        await send(start)
        for index in range(len(body)):
            await send({"type": "http.response.body", "body": body[index : index + 1], "more_body": True})
            await asyncio.sleep(1 / rate)
        await send({"type": "http.response.body", "body": b""})

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # Raising after the body started makes the server abort the connection: the client sees a short read.
        raise ConnectionAbortedError("simulated truncated response")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def split_token(header: str | None, prefix: str, separator: str, *, last: bool) -> tuple[str, str] | None:
    """`PBSAPIToken=ID:SECRET` / `PVEAPIToken=ID=SECRET` (or with a space after the prefix) -> (id, secret).

    PBS splits at the first `:`, PVE at the last `=` (reference §2.1); the secret is percent-decoded."""
    if not header or not header.startswith(prefix) or len(header) <= len(prefix):
        return None
    if header[len(prefix)] not in "= ":
        return None
    value = unquote(header[len(prefix) + 1 :].strip())
    token_id, sep, secret = value.rpartition(separator) if last else value.partition(separator)
    return (token_id, secret) if sep and token_id else None


__all__ = ["Faults", "ProxmoxFaultWrapper", "RequestLog", "split_token"]
