"""What a notification target's HTTP answer may cost, for the sends `AppriseSender` makes.

Apprise's plugins call `requests` themselves: they read a whole answer into memory (a 2 GB body, an endless
chunked one, a gzip bomb all end in a MemoryError or the OOM killer), follow redirects wherever they point, and
report only True or False. So while an `AppriseSender` sends (`watching()` sets a context variable, which Apprise
copies into the threads it sends from), one hook on requests' `HTTPAdapter.send`:

- reads at most `MAX_ANSWER_BYTES` of the answer, decompressed, in at most `ANSWER_READ_S`, then hangs up. A 2xx
  whose body never ends still counts as accepted: its status line said so, and a retry would send it twice;
- does not follow a redirect unless the URL asks for it (`redirect=yes`): a 307 would carry the message and any
  custom header (a token) to whatever host the target names, and a 302 or 303 turns the POST into a GET that
  another page, e.g. the login page of an auth proxy in front of the webhook, answers with 200: the message
  lost, counted as delivered. The 3xx counts as refused, and the log says where it pointed;
- notes in an `Exchange` what happened: the status, Retry-After, where a redirect pointed, why a connection
  failed (an untrusted certificate, a timeout), for the worker's retry and its log line. Never a URL or an
  exception's text: requests quotes the path, which may hold the token.

Requests made outside `watching()` (nothing else in backup-glance uses requests) pass untouched.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from ..config import display_url

MAX_ANSWER_BYTES = 1 << 20  # every service's answer is a small JSON document; Telegram's longest fit easily
ANSWER_READ_S = 10.0  # the whole answer, after its headers; each read also stops at the socket's read timeout
_CHUNK = 16384


@dataclass(slots=True)
class Exchange:
    """What the HTTP requests of one send met (the latest one, when a plugin makes several)."""

    follow_redirects: bool = False
    status: int | None = None
    retry_after: str | None = None  # the header as sent: the worker decides what it is worth
    redirect_to: str | None = None  # scheme://host/… of a redirect that was not followed
    problem: str | None = None  # why a request got no answer or its answer was cut short, in words
    cut_at: int | None = None  # bytes kept of an answer whose rest was left unread

    def describe(self) -> str | None:
        """One phrase for a log line: 'HTTP 302 to https://auth.lan/… (not followed)', 'HTTP 429', ..."""
        if self.status is not None and not 200 <= self.status < 300:
            words = f"HTTP {self.status}"
            if self.redirect_to is not None:
                words += (
                    f" to {self.redirect_to} (not followed: if the target moved there, put that address in the URL;"
                    " redirect=yes follows it anyway)"
                )
            return words
        return self.problem


_current: ContextVar[Exchange | None] = ContextVar("backup_glance_notify_exchange", default=None)
_install_lock = threading.Lock()
_installed = False


@contextlib.contextmanager
def watching(*, follow_redirects: bool) -> Iterator[Exchange]:
    """Bound and note every request made in this context, and in the threads Apprise starts from it."""
    install()
    exchange = Exchange(follow_redirects=follow_redirects)
    token = _current.set(exchange)
    try:
        yield exchange
    finally:
        _current.reset(token)


def install() -> None:
    """Hook `HTTPAdapter.send`, once per process. Apprise builds a plain `requests.Session` (and so a plain
    `HTTPAdapter`) per call, so the class is the one place every plugin's request passes through."""
    global _installed
    with _install_lock:
        if _installed:
            return
        original = HTTPAdapter.send

        def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            exchange = _current.get()
            if exchange is None:
                return original(self, request, *args, **kwargs)
            try:
                response = original(self, request, *args, **kwargs)
            except requests.RequestException as exc:
                exchange.problem = problem(exc)
                raise
            _bound(response, exchange)
            return response

        HTTPAdapter.send = send  # type: ignore[method-assign]
        _installed = True


def _bound(response: requests.Response, exchange: Exchange) -> None:
    exchange.status = response.status_code
    exchange.retry_after = response.headers.get("Retry-After")
    exchange.redirect_to = None
    location = response.headers.get("Location")
    if response.is_redirect and location is not None and not exchange.follow_redirects:
        exchange.redirect_to = display_url(urljoin(response.url or "", location))
        del response.headers["Location"]  # requests follows only an answer that names where to
    _read_capped(response, exchange)


def _read_capped(response: requests.Response, exchange: Exchange) -> None:
    """The answer's body, at most MAX_ANSWER_BYTES of it, read now: what requests would read later, unbounded."""
    raw = response.raw
    # read1 returns what one read of the socket brings (urllib3 2), so the deadline is looked at between reads of
    # a body that drips; urllib3 >= 2.6 also decompresses at most `amt` per call (no gzip bomb in memory).
    read = getattr(raw, "read1", None) or raw.read
    chunks: list[bytes] = []
    size = 0
    complete = False
    deadline = time.monotonic() + ANSWER_READ_S
    try:
        while size <= MAX_ANSWER_BYTES and time.monotonic() < deadline:
            chunk = read(min(_CHUNK, MAX_ANSWER_BYTES + 1 - size), decode_content=True)
            if not chunk:
                complete = True
                break
            chunks.append(chunk)
            size += len(chunk)
        else:
            exchange.problem = (
                f"answer longer than {MAX_ANSWER_BYTES // 1024} KiB"
                if size > MAX_ANSWER_BYTES
                else f"answer not complete after {ANSWER_READ_S:.0f} s"
            )
    except Exception as exc:  # urllib3's ProtocolError, ReadTimeoutError, DecodeError ...: the body is broken
        exchange.problem = f"answer broken off ({problem(exc)})"
    body = b"".join(chunks)[:MAX_ANSWER_BYTES]
    if not complete:
        exchange.cut_at = len(body)
        with contextlib.suppress(Exception):
            raw.close()  # the rest stays unread: the connection cannot carry another request anyway
    # What `Response.content` returns from now on (requests reads the body only while `_content` is False).
    response._content = body
    response._content_consumed = True


def problem(exc: BaseException) -> str:
    """Why a request got no answer, in words that quote no URL.

    >>> problem(requests.ConnectTimeout("HTTPConnectionPool(host='x', port=1): ... url: /hook/s3cret"))
    'no connection within the timeout'
    """
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message})"
    if isinstance(exc, requests.exceptions.SSLError) or any(isinstance(c, ssl.SSLError) for c in causes):
        return "TLS handshake failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no connection within the timeout"
    if isinstance(exc, requests.exceptions.Timeout) or any(isinstance(c, TimeoutError) for c in causes):
        return "no answer within the read timeout"
    for kind, words in _SOCKET_ERRORS.items():
        if any(isinstance(c, kind) for c in causes):
            return words
    return "connection failed" if isinstance(exc, requests.ConnectionError) else type(exc).__name__


_SOCKET_ERRORS: Mapping[type[BaseException], str] = {
    socket.gaierror: "the host name does not resolve",
    ConnectionRefusedError: "connection refused",
    ConnectionResetError: "connection reset",
    ConnectionAbortedError: "connection aborted",
}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: requests and urllib3 nest the socket's error in args, `reason` and __cause__."""
    todo, seen = [exc], set[int]()
    while todo and len(seen) < 32:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [item for item in nested if isinstance(item, BaseException)]


__all__ = ["ANSWER_READ_S", "MAX_ANSWER_BYTES", "Exchange", "install", "problem", "watching"]
