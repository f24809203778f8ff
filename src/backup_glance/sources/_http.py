"""The one HTTP client every web-API source uses: TLS (CA or pinned fingerprint), timeouts, a cap on requests in
flight and on response size, and translation of every failure into a `SourceError` a person can act on.

It never puts a credential in a URL, a message or a log line: credentials travel only in `headers`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
import zlib
from collections.abc import Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import urlencode
from urllib.request import getproxies

import httpx

from ..clean import clean_text
from ..config import HttpSourceConfig
from ..errors import (
    SourceAuthError,
    SourceError,
    SourceProtocolError,
    SourceTimeout,
    SourceTLSError,
    SourceUnreachable,
)
from ._transport import StreamTransport
from ._util import gc_paused, json_loads

ACCEPTED_ENCODING = "gzip, deflate"  # read in bounded steps (`_read_limited`); PVE sends gzip, PBS deflate
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # a PBS snapshot list of a big datastore is a few MB; 64 MB means broken
# JSON values (counted by their commas) in one answer at most. A real one is far below: a PBS snapshot list at the
# byte limit holds about 2.5 million; four million tiny ones decode into about 300 MB of Python objects.
MAX_VALUES = 4_000_000
DETAIL_LIMIT = 200  # characters of a server's error message that an error shows
ERROR_BODY_READ = 16 * 1024  # bytes of an error answer read for its message (a JSON cut short would not parse)


def normalize_fingerprint(value: str) -> str:
    """'64:D3:ff…' or '64d3ff…' -> '64:d3:ff:…' (lowercase colon pairs, as PBS prints it)."""
    hexdigits = value.replace(":", "").strip().lower()
    return ":".join(hexdigits[i : i + 2] for i in range(0, len(hexdigits), 2))


def certificate_fingerprint(der: bytes) -> str:
    return normalize_fingerprint(hashlib.sha256(der).hexdigest())


class FingerprintMismatch(ssl.SSLError):
    """The server's certificate is not the pinned one; raised inside the TLS handshake, before any request."""


def pinned_context(fingerprint: str) -> ssl.SSLContext:
    """A TLS context that trusts exactly the certificate whose SHA-256 is `fingerprint` (pinning replaces CA
    validation for self-signed PBS/PVE certificates). The check runs at the end of the handshake, so a server
    with another certificate never sees a request, let alone the Authorization header."""
    expected = normalize_fingerprint(fingerprint)

    class PinnedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            if der is None:
                raise FingerprintMismatch("certificate fingerprint mismatch: the server sent no certificate")
            actual = certificate_fingerprint(der)
            if actual != expected:
                raise FingerprintMismatch(f"certificate fingerprint mismatch: server presents {actual}")

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.sslobject_class = PinnedSSLObject
    return context


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that keeps no cookie. Every source sends its token or password in a header on each request;
    reading each answer for cookies was a tenth of the CPU of a small request."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._none_kept = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none_kept

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


def _proxy_for(url: str) -> bool:
    """Whether the environment sets a proxy for `url`'s scheme (or for all): then httpx's own transport, which
    applies it and NO_PROXY, carries the requests, as before there was another."""
    proxies = getproxies()
    scheme = url.split("://", 1)[0].lower()
    return bool(proxies.get(scheme) or proxies.get("all"))


def _query_value(value: Any) -> str:
    """A query value as httpx writes it: booleans in lower case, None as nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class HttpClient:
    """JSON over HTTP(S) for one source. Counts requests and bytes so a poll's cost can be measured."""

    def __init__(
        self,
        *,
        source: str,
        kind: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        max_in_flight: int = 4,
        max_bytes: int = DEFAULT_MAX_BYTES,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.source = source
        self.kind = kind
        self._secrets = _secrets_sent(headers or {}, auth)
        self._credential = "username or password" if isinstance(auth, httpx.BasicAuth) else "token"
        self._max_bytes = max_bytes
        self.requests_made = 0
        self.bytes_received = 0
        verify: ssl.SSLContext | bool
        if fingerprint:
            verify = pinned_context(fingerprint)
        elif not verify_tls:
            verify = False
        elif ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        else:
            verify = True
        # Made once and shared: each context made by httpx reads the whole CA bundle.
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        self._base = base_url.rstrip("/")
        self._extensions = {"timeout": httpx.Timeout(timeout_s).as_dict()}  # requests are built here (`_request`)
        # `max_in_flight` clients of one connection each, every one used by one request at a time, rather than one
        # client with a pool of `max_in_flight`: httpcore re-checks every connection of a pool (its expiry,
        # whether the server closed it) for each request waiting and each response closed, which was most of the
        # CPU a small answer costs with 8 connections. A pool of one checks one.
        self._idle = asyncio.Queue[httpx.AsyncClient]()
        # Our own lean transport, unless the environment names a proxy for this scheme: httpx honours
        # HTTPS_PROXY / ALL_PROXY / NO_PROXY only with its own.
        proxied = _proxy_for(self._base)
        self._clients = [
            _CookielessClient(
                headers={"Accept-Encoding": ACCEPTED_ENCODING, **(headers or {})},
                verify=context,
                auth=auth,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                transport=None if proxied else StreamTransport(context),
            )
            for _ in range(max(1, max_in_flight))
        ]
        for client in self._clients:
            self._idle.put_nowait(client)

    @classmethod
    def for_source(
        cls,
        config: HttpSourceConfig,
        *,
        kind: str,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpClient:
        """The client for one configured source: its URL, TLS settings, timeout and request cap."""
        return cls(
            source=config.name,
            kind=kind,
            base_url=base_url or config.url,
            headers=headers,
            timeout_s=config.timeout.total_seconds(),
            verify_tls=config.verify_tls,
            ca_file=config.ca_file,
            fingerprint=config.fingerprint,
            max_in_flight=config.max_in_flight,
            max_bytes=max_bytes,
            auth=auth,
        )

    def _error(self, cls: type[SourceError], message: str, http_status: int | None = None) -> SourceError:
        for secret in self._secrets:  # a server (or a proxy) that quotes the request back in its error
            message = message.replace(secret, "********")
        return cls(message, source=self.source, kind=self.kind, http_status=http_status)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request_json("GET", path, params=params)

    async def get_body(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """The body of a successful GET, undecoded (for a typed decoder); errors as for `request_json`."""
        response, body = await self._exchange("GET", path, params=params, json_body=None)
        self._check_status(response, body, path)
        return body

    async def post_json(self, path: str, body: Any, *, reads_only: bool = False) -> Any:
        """`reads_only`: the call changes nothing on the server (a Connect RPC query), so, like a GET, it is sent
        once more when a kept-alive connection turns out closed."""
        return await self.request_json("POST", path, json_body=body, resend=reads_only)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        resend: bool = False,
    ) -> Any:
        """Send one request and return the decoded JSON body, or raise a SourceError naming `path`."""
        response, body = await self._exchange(method, path, params=params, json_body=json_body, resend=resend)
        return self._decode(response, body, path)

    async def _exchange(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, json_body: Any, resend: bool = False
    ) -> tuple[httpx.Response, bytes]:
        client = await self._idle.get()
        try:
            self.requests_made += 1
            try:
                request = self._request(client, method, path, params, json_body)
            except (UnicodeError, httpx.InvalidURL) as exc:  # a name from the source that no URL can carry
                raise self._error(
                    SourceProtocolError, f"cannot ask for {path[:200]!r}: {exc.__class__.__name__}"
                ) from None
            try:
                try:
                    response = await client.send(request, stream=True)
                except httpx.RemoteProtocolError:
                    if method != "GET" and not resend:
                        raise
                    # A pooled keep-alive connection the server had already closed: nothing was processed, and a
                    # GET (or a query sent as POST) is safe to send once more on a fresh connection.
                    response = await client.send(request, stream=True)
            except httpx.ConnectTimeout:  # the TCP connection or the TLS handshake never completed
                raise self._error(SourceTimeout, f"cannot connect within the timeout (asking for {path})") from None
            except httpx.TimeoutException:
                raise self._error(SourceTimeout, f"no answer within the timeout on {path}") from None
            except httpx.LocalProtocolError:  # its text quotes the header it refused: the token itself
                raise self._error(
                    SourceProtocolError,
                    f"cannot send the request for {path[:200]}: a header (the token?) holds a character HTTP "
                    "cannot carry",
                ) from None
            except httpx.ConnectError as exc:
                if _is_tls_failure(exc):
                    raise self._error(SourceTLSError, f"TLS handshake failed: {_tls_reason(exc)}") from None
                raise self._error(SourceUnreachable, f"cannot connect: {_short(exc)}") from None
            except httpx.HTTPError as exc:
                raise self._error(SourceUnreachable, f"request to {path} failed: {_short(exc)}") from None
            try:
                body = await self._read_limited(response, path)
            finally:
                await response.aclose()
        finally:
            self._idle.put_nowait(client)
        return response, body

    def _request(
        self, client: httpx.AsyncClient, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any
    ) -> httpx.Request:
        """What `client.build_request` makes, made directly: it parses the URL three times (base, path, query),
        which was a tenth of the CPU of a small request."""
        query = f"?{urlencode([(key, _query_value(value)) for key, value in params.items()])}" if params else ""
        url = f"{self._base}{path}{query}"
        return httpx.Request(method, url, headers=client.headers, json=json_body, extensions=self._extensions)

    async def _read_limited(self, response: httpx.Response, path: str) -> bytes:
        """The body, decompressed here in bounded steps rather than by httpx: it inflates each piece whole, and a
        few kilobytes of gzip inside gzip are gigabytes. The body of an answer that is no success is only its
        detail: one that does not unpack is read as empty, and the status says what went wrong."""
        try:
            body = await self._read_body(response, path)
        except SourceProtocolError:
            if response.is_success:
                raise
            return b""
        # Counted in C, before any decoding: a list of millions of tiny records ("[{},{},...]", 20 KB as gzip)
        # decoded into Python objects took gigabytes and held the event loop, web server included, for seconds.
        values = body.count(b",")
        if values > MAX_VALUES and response.is_success:
            raise self._error(
                SourceProtocolError,
                f"response on {path} holds about {values:,} values, more than the {MAX_VALUES:,} a real answer "
                "holds; refused",
            )
        return body

    async def _read_body(self, response: httpx.Response, path: str) -> bytes:
        chunks: list[bytes] = []
        size = read = 0
        inflater = self._inflater(response, path)
        try:
            async for raw in response.aiter_raw():
                self.bytes_received += len(raw)
                read += len(raw)
                chunk = raw if inflater is None else self._inflate(inflater, raw, self._max_bytes - size, path)
                size += len(chunk)
                if size > self._max_bytes:
                    raise self._too_large(path)
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise self._error(SourceTimeout, f"response on {path} stalled past the timeout") from None
        except httpx.HTTPError as exc:
            raise self._error(SourceProtocolError, f"truncated response on {path}: {_short(exc)}") from None
        if inflater is not None and not inflater.eof and read:  # nothing at all, though "gzip": an empty body
            raise self._error(SourceProtocolError, f"truncated response on {path}: its compressed data ends early")
        return b"".join(chunks)

    def _inflater(self, response: httpx.Response, path: str) -> Any:
        """A zlib decompressor for the compression the answer names (None: the body is plain)."""
        codings = response.headers.get("content-encoding", "").lower().replace(" ", "").split(",")
        coding = ",".join(c for c in codings if c not in ("", "identity"))
        if not coding:
            return None
        if coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if coding == "deflate":  # PBS compresses only this way
            return _Deflate()
        raise self._error(
            SourceProtocolError,
            f"response on {path} is compressed as {clean_text(coding)[:60]!r}; only one gzip or deflate is read",
        )

    def _inflate(self, inflater: Any, raw: bytes, room: int, path: str) -> bytes:
        try:
            out: bytes = inflater.decompress(raw, room + 1)  # one byte past the limit tells "too large"
        except zlib.error:
            raise self._error(SourceProtocolError, f"response on {path} is not valid compressed data") from None
        if inflater.unconsumed_tail:
            raise self._too_large(path)
        return out

    def _too_large(self, path: str) -> SourceError:
        return self._error(
            SourceProtocolError, f"response on {path} is larger than {self._max_bytes // (1024 * 1024)} MB; refused"
        )

    def _decode(self, response: httpx.Response, body: bytes, path: str) -> Any:
        self._check_status(response, body, path)
        return self.decode_json(body, path)

    def decode_json(self, body: bytes, path: str) -> Any:
        """A successful answer's JSON, or SourceProtocolError saying whether it was cut short or malformed."""
        try:
            with gc_paused(len(body)):
                return json_loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            if _is_html(body):  # a login page, a proxy's error page, a web UI at the API's address
                raise self._error(
                    SourceProtocolError, f"an HTML page, not JSON, on {path}: is the source's url its API's address?"
                ) from None
            if not body.strip():
                raise self._error(SourceProtocolError, f"an empty answer on {path}, where JSON belongs") from None
            what = "truncated JSON" if _looks_truncated(body) else "malformed JSON"
            raise self._error(SourceProtocolError, f"{what} on {path} ({exc.__class__.__name__})") from None

    def _check_status(self, response: httpx.Response, body: bytes, path: str) -> None:
        status = response.status_code
        if status in (401, 403):
            what = f"{self._credential} rejected" if status == 401 else "permission denied"
            raise self._error(SourceAuthError, f"{what} (HTTP {status}) on {path}", status)
        if 300 <= status < 400:  # followed, a redirect could carry the token to another host: said, not taken
            where = clean_text(response.headers.get("location", ""))[:200]
            said = (
                f"redirected to {where}; redirects are not followed, so give the source the address it names as its url"
                if where
                else "no answer to read (a redirect that names no address)"
            )
            raise self._error(SourceProtocolError, f"HTTP {status} on {path}: {said}", status)
        if status >= 400:
            detail = _error_detail(body)
            raise self._error(
                SourceProtocolError if status < 500 else SourceUnreachable,
                f"HTTP {status} on {path}" + (f": {detail}" if detail else ""),
                status,
            )


def _secrets_sent(headers: Mapping[str, str], auth: httpx.Auth | None) -> list[str]:
    """What of the credentials this client sends must never be shown: the last part of each credential header
    (the secret after "PBSAPIToken=id:", a Bearer token, the base64 of Basic) and the password inside Basic;
    longest first, so that a part of a longer one does not leave the rest of it shown. A token's id is no secret:
    an error naming it stays readable."""
    sent = [value for name, value in headers.items() if name.lower() in ("authorization", "x-api-key", "cookie")]
    secrets = set()
    basic = getattr(auth, "_auth_header", None)  # httpx.BasicAuth keeps the header it sends
    if isinstance(basic, str):
        sent.append(basic)
        with suppress(ValueError, UnicodeDecodeError):
            secrets.add(base64.b64decode(basic.split()[-1], validate=True).decode("utf-8").partition(":")[2])
    secrets.update(re.split(r"[\s=:]", value.rstrip("="))[-1] for value in sent)  # base64 ends in "="s
    return sorted((secret for secret in secrets if len(secret) >= 4), key=len, reverse=True)


def _error_detail(body: bytes) -> str:
    """PBS sends a plain message string, PVE `{"message": ...}`, Laravel `{"message": ...}`. At most
    `DETAIL_LIMIT` characters, marked where cut (a PBS message naming a chunk's path is longer)."""
    if _is_html(body):
        return "an HTML page (a proxy's or a login page?)"
    text = body[:ERROR_BODY_READ].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return clean_text(text.splitlines()[0], DETAIL_LIMIT) if text else ""
    if isinstance(data, dict):
        for key in ("message", "msg", "error"):
            if isinstance(data.get(key), str):
                return clean_text(data[key].strip(), DETAIL_LIMIT)
    if isinstance(data, str):
        return clean_text(data.strip(), DETAIL_LIMIT)
    return ""


def _is_html(body: bytes) -> bool:
    return body.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


class _Deflate:
    """ "deflate" as servers send it: zlib-wrapped as the RFC says, or raw deflate as some do (told by the first
    bytes). The same calls as a zlib decompressor."""

    def __init__(self) -> None:
        self._inflater: Any = None
        self._head = b""  # the first bytes, until there are two to tell the two apart by

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:  # a piece of one byte: a network boundary, not the kind of stream
                return b""
            data, first, second = self._head, self._head[0], self._head[1]
            wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        out: bytes = self._inflater.decompress(data, max_length)
        return out

    @property
    def unconsumed_tail(self) -> bytes:
        tail: bytes = self._inflater.unconsumed_tail if self._inflater is not None else b""
        return tail

    @property
    def eof(self) -> bool:
        return self._inflater is not None and bool(self._inflater.eof)


def _looks_truncated(body: bytes) -> bool:
    stripped = body.rstrip()
    return bool(stripped) and stripped[-1:] not in (b"}", b"]")


def _is_tls_failure(exc: Exception) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc) or "certificate" in str(exc).lower()


_UNKNOWN_ISSUER = ("self-signed", "self signed", "unable to get local issuer")


def _tls_reason(exc: Exception) -> str:
    """Why the handshake failed, as OpenSSL said it ("certificate has expired", "Hostname mismatch, ..."), with
    the way out when the certificate is merely not one the system trusts."""
    cause: BaseException | None = exc
    why = ""
    while cause is not None:
        if isinstance(cause, FingerprintMismatch):
            return str(cause.args[0]) if cause.args else "certificate fingerprint mismatch"
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            why = clean_text(cause.verify_message, DETAIL_LIMIT)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if not why and "certificate verify failed: " in text:
        why = clean_text(text.split("certificate verify failed: ", 1)[1].split(" (_ssl.c", 1)[0], DETAIL_LIMIT)
    if why and not any(words in why.lower() for words in _UNKNOWN_ISSUER):
        return f"certificate not accepted: {why}"
    if why or "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate not trusted (set `fingerprint:` to pin a self-signed certificate, or `ca_file:`)"
    return _short(exc)


def _short(exc: Exception) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return clean_text(text.splitlines()[0], DETAIL_LIMIT)
