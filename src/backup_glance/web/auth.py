"""Optional bearer/basic token check in front of every route but `/healthz` (pure ASGI middleware).

`Authorization: Bearer <token>` or HTTP Basic with the token as the password (any username, so Glance's
monitor `basic-auth` works too). Comparison is constant-time (`hmac.compare_digest`). A missing or wrong token
gets 401 with `WWW-Authenticate: Basic realm="backup-glance"` and no board data; the token is never echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})
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


class TokenAuth:
    """ASGI middleware; with `token=None` it passes everything through."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._token is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if is_authorized(header, self._token):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": _CHALLENGE})
        await send({"type": "http.response.body", "body": _BODY})


__all__ = ["TokenAuth", "is_authorized"]
