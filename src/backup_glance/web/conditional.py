"""Validators and conditional GETs (RFC 9110 §8.8, §13): one mechanism for every cached answer.

    etag = entity_tag(body)                                   # '"<32 hex>"', strong, of the bytes as sent
    if not_modified(request.headers, etag, last_modified, now):
        ... 304, no body

Every answer is a finished byte string per board (`render.Payload`), so its tag is a hash of exactly the bytes sent:
a strong tag, and one per content coding (the gzip body has its own), as RFC 9110 §8.8.3 asks of a strong tag. A
tag from the board's version instead would change when nothing shown did (a notice only the widgets show, a
new board whose feed is the same), and would need the encoding added by hand.

`Last-Modified` is given only where there is an honest time for it (the calendar feed: see `app._Web.feed`), and
If-Modified-Since is only looked at when the request has no If-None-Match (§13.2.2).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import Headers

_TAG = re.compile(r'(?:W/)?"[^"]*"')


def entity_tag(body: bytes) -> str:
    """A strong entity tag of `body`.

    >>> entity_tag(b"")
    '"cae66941d9efbd404e4d88758ea67670"'
    """
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def http_date(at: datetime) -> str:
    """
    >>> http_date(datetime(2026, 11, 26, 14, 0, 7, 500, tzinfo=UTC))
    'Thu, 26 Nov 2026 14:00:07 GMT'
    """
    return format_datetime(at.astimezone(UTC).replace(microsecond=0), usegmt=True)


def none_match(header: str, etag: str) -> bool:
    """Whether an If-None-Match value matches `etag`, by the weak comparison §13.1.2 asks for it (a client may send
    back `W/"x"` for our `"x"`).

    >>> none_match('"a", W/"b"', '"b"'), none_match("*", '"b"'), none_match('"a"', '"b"'), none_match("b", '"b"')
    (True, True, False, False)
    """
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == opaque for tag in _TAG.findall(header))


def modified_since(header: str, last_modified: datetime, now: datetime) -> bool:
    """Whether the answer changed after an If-Modified-Since date; True also when the date is no date, or later
    than `now` (no copy of ours can be from the future: the client's own clock, and trusting it could keep a
    stale copy). HTTP dates are whole seconds, and so is `last_modified`.

    >>> at = datetime(2026, 11, 26, 14, 0, 7, tzinfo=UTC)
    >>> now = datetime(2026, 12, 1, tzinfo=UTC)
    >>> [modified_since(h, at, now) for h in (http_date(at), "Thu, 26 Nov 2026 14:00:06 GMT", "yesterday")]
    [False, True, True]
    """
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return True
    if since.tzinfo is None:  # the obsolete asctime form carries no zone; HTTP dates are GMT
        since = since.replace(tzinfo=UTC)
    return since > now or last_modified > since


def not_modified(headers: Headers, etag: str, last_modified: datetime | None, now: datetime) -> bool:
    """Whether a GET or HEAD with these headers is answered 304 (§13.2.2: If-None-Match first, and when it is
    there, If-Modified-Since is not looked at)."""
    tags = headers.getlist("if-none-match")
    if tags:
        return none_match(", ".join(tags), etag)
    since = headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    return not modified_since(since, last_modified, now)


__all__ = ["entity_tag", "http_date", "modified_since", "none_match", "not_modified"]
