"""Optional bearer/basic token check in front of every route but `/healthz` (pure ASGI middleware).

`Authorization: Bearer <token>` or HTTP Basic with the token as the password (any username, so Glance's
monitor `basic-auth` works too). A calendar app cannot send headers, so `/calendar.ics?key=<calendar_key>`
opens the ICS feed, and nothing else, with a separate read-only key. Comparisons are constant-time
(`hmac.compare_digest`). A missing or wrong token gets 401 with `WWW-Authenticate: Basic realm="backup-glance"`
and no board data; the token is never echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from .subpath import route_path

OPEN_PATHS = frozenset({"/healthz"})
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
    """
    >>> has_key(b"key=k3y&x=1", b"k3y"), has_key(b"key=nope", b"k3y"), has_key(b"", b"k3y")
    (True, False, False)
    """
    given = next((v for k, v in parse_qsl(query_string, keep_blank_values=True) if k == b"key"), None)
    return given is not None and hmac.compare_digest(given, key)


class TokenAuth:
    """ASGI middleware; with `token=None` it passes everything through."""

    def __init__(self, app: ASGIApp, *, token: str | None, calendar_key: str | None = None) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._calendar_key = calendar_key.encode("utf-8") if calendar_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if path in OPEN_PATHS or is_authorized(header, self._token) or self._calendar_opened(path, scope):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": _CHALLENGE})
        await send({"type": "http.response.body", "body": _BODY})

    def _calendar_opened(self, path: str, scope: Scope) -> bool:
        return (
            self._calendar_key is not None
            and path == CALENDAR_PATH
            and has_key(scope["query_string"], self._calendar_key)
        )


__all__ = ["TokenAuth", "has_key", "is_authorized"]
