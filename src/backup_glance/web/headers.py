"""Security headers on every answer, and the Host check against DNS rebinding (pure ASGI middleware).

    hosts = AllowedHosts.build(server.allowed_hosts, token=bool(server.auth_token), base_url=server.base_url)
    Middleware(SecurityHeaders, hosts=hosts, frame_ancestors=server.frame_ancestors)

Every answer (401, 404 and this module's own 421 included) carries

- `Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';
  form-action 'none'; frame-ancestors <server.frame_ancestors>`: the page runs no script at all and loads
  nothing from anywhere; only the listed origins may frame it (default `'self'`; add Glance's origin for its
  iframe widget);
- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

DNS rebinding: a web page on `evil.example.com` can make its own name resolve to 127.0.0.1 or to a LAN
address, and the victim's browser then sends the page's requests, with `Host: evil.example.com`, to
backup-glance, and lets the page read the answers (the browser sees one origin). Checking the Host header
stops it. The attack always needs a name the attacker controls in DNS, which is a name of at least two labels
under a public suffix: a bare IP address cannot be rebound, and a single-label name (`backup-glance`, a Docker
service name; `nas`, a LAN name from the search domain) is resolved by the victim's own resolver. So, unless
`server.allowed_hosts` says otherwise, these hosts are allowed:

- any, when `server.auth_token` is set (a rebinding page does not know the token; the browser will not send it);
- otherwise: loopback names (`localhost`, `*.localhost`), IP addresses (127.0.0.1, ::1, LAN and container
  addresses), single-label names, and the host of `server.base_url`.

A configured `server.allowed_hosts` list adds names to those same safe ones (and then applies with a token
too); `*` in it allows everything. The port in the Host header is ignored; a request without a Host header
(HTTP/1.0) has nothing to rebind and passes. `/healthz` is never refused: liveness probes send whatever Host
they like, and it tells nothing. A refused request gets `421 Misdirected Request` with a short plain-text
reason that never repeats the Host it was sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .subpath import OPEN_PATHS, route_path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_CACHE_SIZE = 256

_TWO_HOSTS_BODY = b"400 bad request: more than one Host header.\n"
_NO_HOST_BODY = b"400 bad request: an HTTP/1.1 request needs a Host header.\n"
_REFUSED_BODY = (
    b"421 misdirected request: this server does not answer to that host name. "
    b"Use its address, or add the name to server.allowed_hosts.\n"
)


def content_security_policy(frame_ancestors: Iterable[str]) -> str:
    """
    >>> content_security_policy(["'self'", "https://glance.lan"])  # doctest: +NORMALIZE_WHITESPACE
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none';
     frame-ancestors 'self' https://glance.lan"
    """
    ancestors = " ".join(frame_ancestors) or "'none'"
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )


def host_name(header: bytes) -> str | None:
    """The host of a Host header, lower case, without port or trailing dot; None when it is not a host.

    >>> host_name(b"LocalHost:8765"), host_name(b"[::1]:80"), host_name(b"nas."), host_name(b"a b"), host_name(b"")
    ('localhost', '::1', 'nas', None, '')
    """
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not text[end + 1 :].startswith(":")):
            return None
        inner = text[1:end]
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            return None
    if text.count(":") > 1:  # a bare IPv6 address, which a Host header should bracket
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    name, sep, port = text.partition(":")
    if sep and port and not port.isdigit():
        return None
    text = name
    text = text[:-1] if text.endswith(".") else text
    if text and not all(_LABEL.fullmatch(label) for label in text.split(".")):
        return None
    return text


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AllowedHosts:
    """Which Host headers are answered (module docstring)."""

    any_host: bool = False
    names: frozenset[str] = frozenset()

    @classmethod
    def build(cls, configured: Iterable[str] | None, *, token: bool, base_url: str | None) -> AllowedHosts:
        """From `server.allowed_hosts`, whether `server.auth_token` is set, and `server.base_url`."""
        if configured is None and token:
            return cls(any_host=True)
        names = {name.lower().rstrip(".") for name in configured or ()}
        if "*" in names:
            return cls(any_host=True)
        base_host = urlsplit(base_url or "").hostname
        if base_host:
            names.add(base_host.lower().rstrip("."))
        return cls(names=frozenset(names))

    def allows(self, name: str | None) -> bool:
        """
        >>> hosts = AllowedHosts(names=frozenset({"backups.example.com"}))
        >>> [hosts.allows(h) for h in ("localhost", "10.0.0.5", "::1", "backup-glance", "backups.example.com")]
        [True, True, True, True, True]
        >>> [hosts.allows(h) for h in ("evil.example.com", "localhost.evil.com", "127.0.0.1.nip.io", None)]
        [False, False, False, False]
        """
        if self.any_host:
            return True
        if name is None:
            return False
        return (
            "." not in name  # single label (or empty: no Host at all)
            or name in self.names
            or name in LOOPBACK_NAMES
            or name.endswith(".localhost")  # RFC 6761: always loopback, browsers never ask DNS
            or _is_ip(name)
        )


_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """ASGI middleware: refuses disallowed hosts and adds the security headers to every answer (and
    `Cache-Control: no-store` to one that has none)."""

    def __init__(self, app: ASGIApp, *, hosts: AllowedHosts, frame_ancestors: Iterable[str] = ("'self'",)) -> None:
        self.app = app
        self.hosts = hosts
        self.headers = [
            (b"content-security-policy", content_security_policy(frame_ancestors).encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        self._verdicts: dict[bytes, bool] = {}  # Host header -> allowed; a small cache, the answer costs ~1 µs

    def refusal(self, scope: Scope) -> tuple[int, bytes] | None:
        """(status, body) when the request's Host is not to be answered; None when it is."""
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        if len(hosts) > 1:  # one name checked, another read by a proxy in front: RFC 9112 §3.2 says 400
            return 400, _TWO_HOSTS_BODY
        if not hosts and scope.get("http_version") not in ("1.0", "0.9"):
            return 400, _NO_HOST_BODY
        if hosts and not self.allowed(hosts[0], scope):
            return 421, _REFUSED_BODY
        return None

    def allowed(self, header: bytes, scope: Scope) -> bool:
        if self.hosts.any_host:
            return True
        verdict = self._verdicts.get(header)
        if verdict is None:
            verdict = self.hosts.allows(host_name(header))
            if len(self._verdicts) >= _CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[header] = verdict
        return verdict or route_path(scope) in OPEN_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers
        refusal = self.refusal(scope)
        if refusal is not None:
            status, body = refusal
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"cache-control", b"no-store"),
                *extra,
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *extra]
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_NO_STORE)  # the router's own 404 and 405 come without: nothing goes out without
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["AllowedHosts", "SecurityHeaders", "content_security_policy", "host_name"]
