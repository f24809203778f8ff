"""Small helpers every source shares: the UTC clock, a lenient integer parser and the protocol-error factory.

Sits under `sources/`; no I/O and no third-party import but msgspec, so any source (HTTP or not) may use it.
"""

from __future__ import annotations

import gc
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec

from ..errors import SourceProtocolError

# At most 40 digits (2**64 has 20): Python refuses to convert a string of more than 4,300 digits to an int, and
# a field that long is no number any source means.
_MAX_DIGITS = 40
_INTEGER = re.compile(rf"-?[0-9]{{1,{_MAX_DIGITS}}}")
_MAX_VMID_DIGITS = 9  # PVE's VMIDs end at 999,999,999
_MAX_VMID = 999_999_999


BIG_PAYLOAD = 1024 * 1024


@contextmanager
def gc_paused(size: int = BIG_PAYLOAD) -> Iterator[None]:
    """No cyclic garbage collection while a big payload (>= 1 MB) becomes objects.

    Decoding a snapshot list allocates hundreds of thousands of containers, none of them garbage; the collector
    would otherwise run over all of them again and again, about doubling the decode time."""
    if size < BIG_PAYLOAD or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def utc_now() -> datetime:
    """The default clock of every source: aware UTC."""
    return datetime.now(UTC)


def as_int(value: Any) -> int | None:
    """Lenient integer: PVE config values and protojson int64 arrive as strings ("5120"), int32 as numbers.

    >>> [as_int(v) for v in ("5120", " -3 ", 7, 2.9, True, "x", None, "--1")]
    [5120, -3, 7, 2, 1, None, None, None]
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def vmid_of(text: str) -> int | None:
    """A VMID written as text, or None: ASCII digits only, at most nine ("²".isdigit() is true, and `int()`
    refuses it, as it refuses 5,000 digits).

    >>> [vmid_of(t) for t in ("101", "0101", "²", "-1", "1" * 10, "")]
    [101, 101, None, None, None, None]
    """
    return int(text) if text.isascii() and text.isdigit() and len(text) <= _MAX_VMID_DIGITS else None


def as_name(value: Any) -> str | None:
    """A name or id from JSON: text, or a whole number as text; None for a list, an object, a bool or nothing
    (shown as Python writes them, "['vault']" would pass for a name).

    >>> [as_name(v) for v in ("vault", 7, ["vault"], {"a": 1}, True, None, "")]
    ['vault', '7', None, None, None, None, '']
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_vmid(value: Any) -> int | None:
    """A VMID from a JSON value (PVE sends numbers, some fields strings), or None: PVE's own range is 100 to
    999,999,999, and anything that is no positive whole number of at most nine digits is no guest.

    >>> [as_vmid(v) for v in (101, "101", 2**64, -5, 1e308, "abc", 0, True)]
    [101, 101, None, None, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    vmid = as_int(value)
    return vmid if vmid is not None and 0 < vmid <= _MAX_VMID else None


def json_loads(data: bytes | str) -> Any:
    """`json.loads`, except that one absurd value costs that value, not the whole answer: an integer too long for
    Python to convert (thousands of digits) becomes None, and bytes that are not UTF-8 (in a name, a comment)
    become U+FFFD, as text cleaned at the edge. Errors as `json.loads` raises them otherwise.

    msgspec reads it first, in about half the time, and gives the very same values; what it refuses (NaN, 1e999,
    a lone surrogate, an int of thousands of digits, a broken answer) is read by `json.loads` as before.

    >>> json_loads(b'{"comment": "v\\xffault", "size": 1}'.replace(b"\\xff", bytes([0xFF])))
    {'comment': 'v\ufffdault', 'size': 1}
    """
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        pass
    try:
        return _loads(data)
    except UnicodeDecodeError:
        if isinstance(data, str):
            raise
    return _loads(data.decode("utf-8", "replace"))


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        return json.loads(data, parse_int=_bounded_int)


def _bounded_int(text: str) -> int | None:
    return int(text) if len(text) <= _MAX_DIGITS else None


def left_out(reasons: Iterable[str]) -> tuple[str, ...]:
    """The problem line for records a poll left out, naming the first and counting the rest (none: no line).

    >>> left_out(["row 7: no date", "row 9: no id"]), left_out([])
    (('row 7: no date and 1 more; left out',), ())
    """
    found = list(reasons)
    if not found:
        return ()
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return (f"{found[0]}{more}; left out",)


def segment(name: str) -> str:
    """A name a source gave, as one segment of a URL path: '/' is encoded too (a store named "a/../b" stays one
    segment), and a lone surrogate is encoded rather than refused (the server then says it knows no such name).

    >>> segment("store1"), segment("a/../b")
    ('store1', 'a%2F..%2Fb')
    """
    return quote(name, safe="", errors="surrogatepass")


def guest_key(vmid: int, cluster: str | None = None) -> str:
    """A PVE guest's target key: "guest:101", or "guest:<cluster>/101" when its cluster names the PBS namespace
    it backs up into (two clusters reusing VMIDs in one PBS stay apart).

    >>> guest_key(101), guest_key(101, "pve-b")
    ('guest:101', 'guest:pve-b/101')
    """
    # Interned: each task, run, job and snapshot list names the guest again, and at 10,000 guests those were
    # 140,000 equal strings (8 MB) instead of 10,000.
    return sys.intern(f"guest:{cluster}/{vmid}" if cluster else f"guest:{vmid}")


def guest_vmid(key: str) -> int | None:
    """The VMID in a guest key (None for other keys).

    >>> guest_vmid("guest:101"), guest_vmid("guest:pve-b/101"), guest_vmid("restic:x/y")
    (101, 101, None)
    """
    if not key.startswith("guest:"):
        return None
    return vmid_of(key.rsplit("/", 1)[-1].removeprefix("guest:"))


# restic repository backends that live on another machine (restic docs, "Preparing a new repository").
_REMOTE_SCHEMES = ("s3:", "b2:", "azure:", "gs:", "swift:", "rclone:", "sftp:", "rest:")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_remote_uri(uri: str) -> bool:
    """Whether a restic/Backrest repository URI is on another host: cloud backends always, `sftp:`/`rest:` unless
    they point at this machine. Only the scheme and host are looked at; the URI is never kept.

    >>> [is_remote_uri(u) for u in ("/mnt/nas/restic", "b2:bucket:/r", "rest:http://localhost:8000/", "sftp:nas:/r")]
    [False, True, False, True]
    """
    text = uri.strip()
    if not text.startswith(_REMOTE_SCHEMES):
        return False
    if not text.startswith(("sftp:", "rest:")):
        return True
    rest = text.split(":", 1)[1]
    if "://" in rest:
        rest = rest.split("://", 1)[1]
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0] if not host.startswith("[") else host.split("]", 1)[0] + "]"
    return host.lower() not in _LOCAL_HOSTS


def offsite_named(setting: bool | list[str] | None, *names: str) -> bool | None:
    """A source's `offsite:` setting applied to a location known by `names` (e.g. "main/site-b", "main"):
    True/False when the setting decides, None when it is unset (the caller's default applies).

    >>> offsite_named(["b2"], "b2"), offsite_named(["main"], "main/site-b", "main"), offsite_named(None, "x")
    (True, True, None)
    """
    if setting is None or isinstance(setting, bool):
        return setting
    return any(name in setting for name in names)


class SourceBase:
    """What every source object carries: its configured name, its kind, and a way to build protocol errors."""

    name: str
    kind: str

    def _protocol(self, message: str) -> SourceProtocolError:
        return SourceProtocolError(message, source=self.name, kind=self.kind)


__all__ = ["SourceBase", "as_int", "gc_paused", "guest_key", "guest_vmid", "is_remote_uri", "offsite_named", "utc_now"]
