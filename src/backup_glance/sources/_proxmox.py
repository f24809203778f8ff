"""Wire helpers shared by the PBS and PVE sources (and their simulators): UPIDs, task status strings, payload
shape checks and a small calendar-event fallback.

Sits under `sources/`; it knows Proxmox's wire words but returns plain values, makes no verdicts and does no I/O.
UPIDs as proxmox/proxmox-rs `proxmox-schema/src/upid.rs` (PBS) and proxmox/pve-common `src/PVE/UPID.pm` (PVE)
write them; task status strings as `proxmox-rest-server` `worker_task.rs` and pve-manager `PVE/VZDump.pm` set them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from ..config import ProxmoxSourceConfig
from ..errors import ScheduleError, SourceError, SourceProtocolError
from ..model import RunOutcome
from ..schedule import Schedule, parse_schedule
from ._http import DEFAULT_MAX_BYTES, HttpClient
from ._util import SourceBase, as_int, utc_now

T = TypeVar("T")
P = ParamSpec("P")

# --- UPIDs (§1.3) -------------------------------------------------------------------------------------------

_PBS_UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<task_id>[0-9A-Fa-f]{8,16}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<wtype>[^:\s]+):(?P<wid>[^:\s]*):"
    r"(?P<authid>[^:\s]+):$"
)
_PVE_UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def escape_worker_id(worker_id: str) -> str:
    r"""PBS's systemd-like escaping of the worker id inside a UPID.

    >>> escape_worker_id("store1:vm/100")
    'store1\\x3avm-100'
    """
    out: list[str] = []
    for index, byte in enumerate(worker_id.encode()):
        if byte == ord("/"):
            out.append("-")
        elif byte in _SAFE_BYTES and not (index == 0 and byte == ord(".")):
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unescape_worker_id(escaped: str) -> str:
    r"""Inverse of `escape_worker_id` (a `-` that was a `/` becomes `/` again).

    >>> unescape_worker_id("store1\\x3avm-100")
    'store1:vm/100'
    """
    raw = bytearray()
    index = 0
    while index < len(escaped):
        if escaped.startswith("\\x", index) and index + 4 <= len(escaped):
            raw.append(int(escaped[index + 2 : index + 4], 16))
            index += 4
            continue
        raw.append(ord("/") if escaped[index] == "-" else ord(escaped[index]))
        index += 1
    return raw.decode("utf-8", "replace")


def pbs_upid(
    *, node: str, pid: int, pstart: int, task_id: int, starttime: int, worker_type: str, worker_id: str, auth_id: str
) -> str:
    return (
        f"UPID:{node}:{pid:08X}:{pstart:08X}:{task_id:08X}:{starttime:08X}:{worker_type}:"
        f"{escape_worker_id(worker_id)}:{auth_id}:"
    )


def pve_upid(*, node: str, pid: int, pstart: int, starttime: int, task_type: str, task_id: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{task_id}:{user}:"


def upid_started_at(upid: str) -> datetime | None:
    """The task start time encoded in a PBS or PVE UPID (the hex `starttime` field), or None if not a UPID."""
    match = _PBS_UPID_RE.match(upid) or _PVE_UPID_RE.match(upid)
    if match is None:
        return None
    return epoch(int(match.group("starttime"), 16))


def upid_node(upid: str) -> str | None:
    """The node a PBS or PVE UPID names: the node that ran the task and keeps its log; None if not a UPID."""
    match = _PBS_UPID_RE.match(upid) or _PVE_UPID_RE.match(upid)
    return match.group("node") if match else None


# --- task status strings (§1.4) ------------------------------------------------------------------------------


def task_outcome(status: str | None, *, running: bool) -> tuple[RunOutcome, str]:
    """Map a PBS/PVE task status string to an outcome and a message (the status text when it is not plain OK)."""
    if running or status is None or status.upper() == "RUNNING":
        return RunOutcome.RUNNING, ""
    if status == "OK":
        return RunOutcome.OK, ""
    if status.startswith("WARNINGS"):
        return RunOutcome.WARNING, status
    if status in ("unknown", "unexpected status"):
        return RunOutcome.UNKNOWN, status
    return RunOutcome.FAILED, status


# --- payload shape checks --------------------------------------------------------------------------------------


def older_tasks_not_read(listed: str, since: datetime) -> str:
    """The problem line for a task list longer than the pages a poll reads. Task lists are newest first: what was
    left is the oldest of the look-back starting at `since`.

    >>> older_tasks_not_read("task list: more than 20,000 tasks", datetime(2026, 11, 29, 14, 2, tzinfo=UTC))
    'task list: more than 20,000 tasks since 2026-11-29 14:02 UTC; older ones not read'
    """
    return f"{listed} since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC; older ones not read"


def unwrap(payload: Any, path: str, expected: type[T], error: Callable[[str], SourceProtocolError]) -> T:
    """Return `payload["data"]` if it is of the expected type, else raise a protocol error naming `path`."""
    if not isinstance(payload, dict) or "data" not in payload:
        raise error(f"unexpected payload on {path}: no 'data' member")
    data = payload["data"]
    if not isinstance(data, expected):
        raise error(f"unexpected payload on {path}: 'data' is {type(data).__name__}, not {expected.__name__}")
    return data


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def epoch(value: Any) -> datetime | None:
    """A Unix time as an aware datetime; None for nothing, and for a time no calendar holds (year 33658, 2^62):
    one absurd record must not cost the whole poll. Nor is a time before 1970 (the year 1 minus a look-back is out
    of range).

    >>> epoch(1700000000), epoch(None), epoch(2**62), epoch(-62135596800)
    (datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc), None, None, None)
    """
    number = as_int(value)
    if number is None or number < 0:
        return None
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, ValueError, OSError):
        return None


# --- calendar events -----------------------------------------------------------------------------------------


class ProxmoxSource(SourceBase):
    """What the PBS and PVE clients share: the token header, `{"data": ...}` unwrapping, partial failures."""

    kind = ""
    # PBS splits "ID:SECRET" at the first ':'; PVE splits "ID=SECRET" at the last '='; both URI-unescape (§2.1).
    auth_scheme = ""
    auth_separator = ""

    def __init__(
        self,
        config: ProxmoxSourceConfig,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = config.name
        secret = config.token_secret.get_secret_value() if config.token_secret else ""
        base = config.url.rstrip("/")
        token = f"{self.auth_scheme}={config.token_id}{self.auth_separator}{quote(secret, safe='')}"
        self._client = HttpClient.for_source(
            config,
            kind=self.kind,
            base_url=base if base.endswith("/api2/json") else base + "/api2/json",
            headers={"Authorization": token},
            max_bytes=max_bytes,
        )
        self._clock = clock or utc_now

    @property
    def client(self) -> HttpClient:
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, expected: type[T], params: dict[str, Any] | None = None) -> T:
        return unwrap(await self._client.get_json(path, params), path, expected, self._protocol)

    async def _partial(
        self, problems: list[str], what: str, call: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        """Run one part of the poll, `call(*args, **kwargs)`; an HTTP-level failure of that part becomes a problem,
        not an exception. Connection, TLS, timeout and auth failures still end the poll: they concern the whole
        source. The part is called here, not by the caller: a part handed to a task cancelled before it starts
        (a stop in the middle of a poll) is then never made, rather than made and never awaited."""
        try:
            return await call(*args, **kwargs)
        except SourceError as exc:
            if isinstance(exc, SourceProtocolError) or (exc.http_status or 0) >= 500:
                problems.append(f"{what}: {exc}")
                return None
            raise


def first_source_error(group: BaseExceptionGroup[BaseException]) -> SourceError | None:
    """The first SourceError inside a (possibly nested) exception group, e.g. from an `asyncio.TaskGroup`."""
    for exc in group.exceptions:
        if isinstance(exc, SourceError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_source_error(exc)
            if found is not None:
                return found
    return None


def calendar_for(expression: str, zone: str) -> Schedule | None:
    """The schedule of a Proxmox calendar event in `zone`, or None if it cannot be parsed (the server's own
    `next-run` still stands then)."""
    try:
        return parse_schedule(expression, dialect="proxmox", tz=zone)
    except ScheduleError:
        return None


__all__ = [
    "ProxmoxSource",
    "as_bool",
    "as_int",
    "calendar_for",
    "epoch",
    "escape_worker_id",
    "first_source_error",
    "pbs_upid",
    "pve_upid",
    "task_outcome",
    "unescape_worker_id",
    "unwrap",
    "upid_node",
    "upid_started_at",
]
