"""Small helpers every source shares: the UTC clock, a lenient integer parser and the protocol-error factory.

Sits under `sources/`; no I/O, no third-party imports, so any source (HTTP or not) may use it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from ..errors import SourceProtocolError

_INTEGER = re.compile(r"-?[0-9]+")


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


class SourceBase:
    """What every source object carries: its configured name, its kind, and a way to build protocol errors."""

    name: str
    kind: str

    def _protocol(self, message: str) -> SourceProtocolError:
        return SourceProtocolError(message, source=self.name, kind=self.kind)


__all__ = ["SourceBase", "as_int", "utc_now"]
