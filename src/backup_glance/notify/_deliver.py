"""Delivery through Apprise: one worker task per target, sends in a small thread pool of their own, so a slow or
dead target never holds up polling, the web server or another target.

    sender = AppriseSender("ntfy://ntfy.lan/backups")     # sender.shown: the URL as Apprise prints it privately
    sender.send(message)                                    # True when the service accepted it (blocking)

A worker sends whatever is due in its target's outbox as one message, deletes it once accepted, and after a
failure waits `backoff(n)` (5 s, doubling, at most 10 min) before trying again. The outbox is the queue: it is
bounded (`_store.MAX_PENDING`), persistent, and the only thing a worker reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..config import url_secrets
from ..errors import BackupGlanceError
from ._messages import Message, merge
from ._store import NotifyStore

log = logging.getLogger(__name__)

FIRST_RETRY_S = 5.0
MAX_RETRY_S = 600.0
IDLE_CHECK_S = 30.0  # a worker looks at its outbox at least this often (held messages, injected clocks)
SEND_TIMEOUT_S = 60.0  # Apprise stops waiting for a send after this long (a socket read times out only when idle)
_TYPES = {"critical": "failure", "unknown": "warning", "warning": "warning", "ok": "success", "info": "info"}


def backoff(failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones in a row.

    >>> [backoff(n) for n in (1, 2, 3, 10)]
    [5.0, 10.0, 20.0, 600.0]
    """
    return min(MAX_RETRY_S, FIRST_RETRY_S * float(2 ** max(0, failures - 1)))


class Sender(Protocol):
    shown: str  # how the target may appear in a log line or command output: never its credentials

    def send(self, message: Message) -> bool: ...


class AppriseSender:
    """One Apprise URL. `send` blocks (Apprise is synchronous): call it in a worker thread."""

    def __init__(self, url: str) -> None:
        import apprise

        # Apprise's INFO and DEBUG lines name every URL it loads and posts to (paths and users included); ours
        # say the same with the target shown privately. Its WARNING lines name hosts only, and pass, redacted.
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self._apprise = apprise.Apprise()
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:  # `validate` catches this first; a URL from elsewhere still must not crash serve
            self.shown = _scheme_only(url)
            self.usable = False
            return
        self._apprise.add(plugin)
        self.usable = True
        # Apprise masks the secrets it knows of each service; the query is only its defaults.
        self._private = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        self.shown = private(self._private.split("?", 1)[0], url)

    def send(self, message: Message) -> bool:
        if not self.usable:
            return False
        if any(sent.endswith(f"({self._private})") for sent in stuck_sends()):
            # Its last send still hangs in one of Apprise's few threads (a target answering a byte at a time):
            # another try would hold one more, until no target had one left.
            log.warning("notification target still busy with the last attempt; not sent", extra={"target": self.shown})
            return False
        # Apprise 1.x has no `timeout` (its sends are bounded by their sockets' timeouts only).
        bounded = "timeout" in inspect.signature(self._apprise.notify).parameters
        bound: dict[str, Any] = {"timeout": SEND_TIMEOUT_S} if bounded else {}
        result = self._apprise.notify(
            body=message.body,
            title=message.title,
            notify_type=_TYPES.get(message.level, "info"),
            body_format="text",
            **bound,
        )
        return bool(result)


def stuck_sends() -> list[str]:
    """The sends Apprise stopped waiting for whose threads still run, as "service (private URL)"."""
    describe = getattr(sys.modules.get("apprise.apprise"), "abandoned_call_descriptions", None)
    return [str(call) for call in describe()] if callable(describe) else []


def private(shown: str, url: str) -> str:
    """Apprise's private rendering, further masked: the whole user:password part, and every piece of the URL
    that looks like a token (`url_secrets`), e.g. a token in a json:// path, which Apprise shows.

    >>> private("json://bg:****@127.0.0.1:80/hook/AbCd0123456789", "json://bg:pw@127.0.0.1:80/hook/AbCd0123456789")
    'json://****@127.0.0.1:80/hook/****'
    """
    scheme, sep, rest = shown.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            authority = "****@" + authority.rpartition("@")[2]
        shown = f"{scheme}://{authority}{slash}{path}"
    for secret in sorted(url_secrets(url)[2:], key=len, reverse=True):
        shown = shown.replace(secret, "****")
    return shown


def _scheme_only(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return f"{scheme}://…" if scheme.isalnum() else "(a URL Apprise does not understand)"


class TargetWorker:
    """Delivers one target's outbox: what is due, merged into one message, retried with backoff until accepted."""

    def __init__(
        self,
        key: str,
        sender: Sender,
        store: NotifyStore,
        executor: Executor,
        *,
        clock: Callable[[], datetime],
        zone: ZoneInfo,
        retry: Callable[[int], float] = backoff,
    ) -> None:
        self.key = key
        self._retry = retry
        self.sender = sender
        self._store = store
        self._executor = executor
        self._clock = clock
        self._zone = zone
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.failures = 0
        self.sent = 0
        # Messages the target accepted whose removal from the outbox failed (a full disk): never sent again, and
        # removed once the outbox can be written.
        self._unrecorded: set[int] = set()

    def wake(self) -> None:
        self._wake.set()

    async def settle(self) -> None:
        """Wait until no delivery is in flight (its outcome reached the outbox)."""
        async with self._lock:
            pass

    async def deliver_due(self) -> bool | None:
        """Send what is due now, once: True accepted, False refused, None nothing was due."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._unrecorded:
                try:
                    await asyncio.to_thread(self._store.delivered, sorted(self._unrecorded))
                except BackupGlanceError as exc:
                    log.error("notification outbox not updated", extra={"target": self.sender.shown, "error": str(exc)})
                    return False
                self._unrecorded.clear()
            try:
                pending = await asyncio.to_thread(self._store.pending, self.key)
            except BackupGlanceError as exc:
                log.error("notification outbox unreadable", extra={"target": self.sender.shown, "error": str(exc)})
                return False
            now = self._clock()
            due = [p for p in pending if p.not_before <= now and p.id not in self._unrecorded]
            if not due:
                return None
            message = merge([(p.created_at, p.message) for p in due], self._zone)
            ids = [p.id for p in due]
            try:
                accepted = await loop.run_in_executor(self._executor, self.sender.send, message)
            except Exception:  # a bug in a plugin must not end the worker; the message stays in the outbox
                log.exception("notification plugin crashed", extra={"target": self.sender.shown})
                accepted = False
            try:
                if accepted:
                    await asyncio.to_thread(self._store.delivered, ids)
                else:
                    await asyncio.to_thread(self._store.attempted, ids)
            except BackupGlanceError as exc:
                log.error("notification outbox not updated", extra={"target": self.sender.shown, "error": str(exc)})
                if accepted:
                    self._unrecorded.update(ids)
            if accepted:
                self.sent += 1
                if self.failures:
                    log.info("notification target accepts again", extra={"target": self.sender.shown})
                self.failures = 0
                log.info(
                    "notification sent",
                    extra={"target": self.sender.shown, "title": message.title, "parts": len(due)},
                )
            else:
                self.failures += 1
                if self.failures == 1 or self.failures % 10 == 0:
                    log.warning(
                        "notification not accepted; will retry",
                        extra={
                            "target": self.sender.shown,
                            "failures": self.failures,
                            "retry_s": self._retry(self.failures),
                        },
                    )
            return accepted

    def _next_due_in(self) -> float:
        try:
            pending = self._store.pending(self.key)
        except BackupGlanceError:
            return IDLE_CHECK_S
        pending = [p for p in pending if p.id not in self._unrecorded]
        if not pending:
            return IDLE_CHECK_S
        wait = (min(p.not_before for p in pending) - self._clock()).total_seconds()
        return max(0.0, min(wait, IDLE_CHECK_S))

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before reading the outbox: a wake after this point is never lost
            outcome = await self.deliver_due()
            if outcome is True:
                continue  # more may have become due meanwhile
            if outcome is False:
                # New news during a backoff does not shorten it: a dead target is not hammered on every board.
                await asyncio.sleep(self._retry(self.failures))
                continue
            delay = await asyncio.to_thread(self._next_due_in)
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                async with asyncio.timeout(max(delay, 0.01)):
                    await self._wake.wait()


__all__ = ["AppriseSender", "Sender", "TargetWorker", "backoff", "stuck_sends"]
