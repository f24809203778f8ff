"""Optional bearer/basic token check in front of every route but `/healthz` (pure ASGI middleware).

`Authorization: Bearer <token>` or HTTP Basic with the token as the password (any username, so Glance's
monitor `basic-auth` works too). A calendar app cannot send headers, so `/calendar.ics?key=<calendar_key>`
opens the ICS feed, and nothing else, with a separate read-only key. Comparisons are constant-time
(`hmac.compare_digest`). A missing or wrong token gets 401 with `WWW-Authenticate: Basic realm="backup-glance"`
and no board data; the token is never echoed.

Every failure is logged as a WARNING with the client address, the path and why (no credentials, wrong token,
wrong calendar key), never what was sent; `FailureLog` folds a flood into one line per client address per
10 seconds, the next one carrying how many failures it stands for (`failures=N`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from .subpath import OPEN_PATHS, route_path

log = logging.getLogger(__name__)

CALENDAR_PATH = "/calendar.ics"
_CHALLENGE = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"www-authenticate", b'Basic realm="backup-glance"'),
    (b"cache-control", b"no-store"),
]
_BODY = b"401 unauthorized: send the token as Bearer or as the Basic password\n"


def is_authorized(header: bytes | None, token: bytes) -> bool:
    """
    >>> is_authorized(b"Bearer s3cret", b"s3cret"), is_authorized(b"bearer nope", b"s3cret")
    (True, False)
    >>> is_authorized(b"Basic " + base64.b64encode(b"glance:s3cret"), b"s3cret")
    True
    >>> is_authorized(None, b"s3cret"), is_authorized(b"Basic !!!", b"s3cret")
    (False, False)
    """
    if not header:
        return False
    scheme, _, value = header.strip().partition(b" ")
    value = value.strip()
    if scheme.lower() == b"bearer":
        return hmac.compare_digest(value, token)
    if scheme.lower() == b"basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        _, sep, password = decoded.partition(b":")
        return bool(sep) and hmac.compare_digest(password, token)
    return False


def has_key(query_string: bytes, key: bytes) -> bool:
    """Whether the query's `key` is `key`, byte for byte. Read as Latin-1 so that any escape ("%ff", "%C3%A9")
    is some bytes, never an error: `parse_qsl` on bytes raised for escapes beyond ASCII (a 500 for anyone).

    >>> has_key(b"key=k3y&x=1", b"k3y"), has_key(b"key=nope", b"k3y"), has_key(b"", b"k3y")
    (True, False, False)
    >>> has_key(b"key=%ff", b"k3y"), has_key(b"x=%C3%A9&key=k%33y", b"k3y")
    (False, True)
    """
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    given = next((v for k, v in pairs if k == "key"), None)
    return given is not None and hmac.compare_digest(given.encode("latin-1"), key)


class FailureLog:
    """At most one WARNING per client address per `every` seconds: the first failure at once, then, while they
    keep coming, one line per window that counts them (`failures=N`). At most `max_clients` addresses are
    tracked; beyond that the failures of new addresses share one line under client=(many)."""

    def __init__(
        self, every: float = 10.0, max_clients: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self.max_clients = max_clients
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def failed(self, client: str, path: str, reason: str) -> None:
        now = self._clock()
        window = self._windows.get(client)
        if window is not None and now < window.ends:
            window.count += 1
            window.path, window.reason = path, reason
            if window.timer is None:
                window.timer = _call_later(window.ends - now, self._close, client, window)
            return
        carried = 0
        if window is not None:  # over, with failures not yet told when there was no loop to time it
            carried = window.count
            if window.timer is not None:
                window.timer.cancel()
        elif len(self._windows) >= self.max_clients:
            self._windows = {k: w for k, w in self._windows.items() if now < w.ends or w.count}
            if len(self._windows) >= self.max_clients and client != "(many)":
                self.failed("(many)", path, reason)
                return
        self._windows[client] = _Window(now + self.every)
        _warn(client, path, reason, carried + 1)

    def _close(self, client: str, window: _Window) -> None:
        """The end of a window with failures after its first line: say how many, and open the next window."""
        if self._windows.get(client) is not window:
            return
        _warn(client, window.path, window.reason, window.count)
        self._windows[client] = _Window(self._clock() + self.every)


class _Window:
    __slots__ = ("count", "ends", "path", "reason", "timer")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.count = 0
        self.path = self.reason = ""
        self.timer: asyncio.TimerHandle | None = None


def _call_later(
    delay: float, callback: Callable[[str, _Window], None], client: str, window: _Window
) -> asyncio.TimerHandle | None:
    try:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback, client, window)
    except RuntimeError:  # no loop (a synchronous test): the count goes out with the next window's line
        return None


def _warn(client: str, path: str, reason: str, count: int) -> None:
    log.warning(
        "authentication failed",
        extra={"client": client, "path": path[:200], "reason": reason, "failures": count},
    )


def _client_of(scope: Scope) -> str:
    """The client's address, or what stands for one that is none: a proxy on this host may pass any text as
    X-Forwarded-For, and a new text for each failure would have had a line of its own."""
    client = scope.get("client")
    if not client:
        return "unknown"
    try:
        return str(ipaddress.ip_address(str(client[0])))
    except ValueError:
        return "(not an address)"


class TokenAuth:
    """ASGI middleware; with `token=None` it passes everything through."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, calendar_key: str | None = None, failures: FailureLog | None = None
    ) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._calendar_key = calendar_key.encode("utf-8") if calendar_key else None
        self.failures = failures or FailureLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if path in OPEN_PATHS or is_authorized(header, self._token) or self._calendar_opened(path, scope):
            await self.app(scope, receive, send)
            return
        self.failures.failed(_client_of(scope), path, self._why(path, header, scope))
        await send({"type": "http.response.start", "status": 401, "headers": _CHALLENGE})
        await send({"type": "http.response.body", "body": _BODY})

    def _why(self, path: str, header: bytes | None, scope: Scope) -> str:
        if self._calendar_key is not None and path == CALENDAR_PATH and b"key=" in scope["query_string"]:
            return "wrong calendar key"
        return "wrong token" if header else "no credentials"

    def _calendar_opened(self, path: str, scope: Scope) -> bool:
        return (
            self._calendar_key is not None
            and path == CALENDAR_PATH
            and has_key(scope["query_string"], self._calendar_key)
        )


__all__ = ["FailureLog", "TokenAuth", "has_key", "is_authorized"]
