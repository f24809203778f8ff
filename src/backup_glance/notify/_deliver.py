"""Delivery through Apprise: one worker task per target, sends in a small thread pool of their own, so a slow or
dead target never holds up polling, the web server or another target.

    sender = AppriseSender("ntfy://ntfy.lan/backups")     # sender.shown: the URL as Apprise prints it privately
    sender.send(message)                                    # True when the service accepted it (blocking)

A worker sends whatever is due in its target's outbox as one message, deletes it once accepted, and after a
failure waits `backoff(n)` (5 s, doubling, at most 10 min), or what a 429 or 503 asks for in Retry-After (at
most an hour), before trying again. A message the target refuses for what it says (400, 413, 422: too long for
Pushover, Discord or Telegram, say) would block every later one merged with it: such a batch is sent again one
message at a time, and a message refused so `REFUSED_TRIES` times is dropped with an error in the log. The
outbox is the queue: it is bounded (`_store.MAX_PENDING`), persistent, and the only thing a worker reads. What
an HTTP answer may cost is bounded in `_http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from ..config import url_secrets
from ..errors import BackupGlanceError
from ._http import Exchange, watching
from ._messages import Message, merge
from ._store import NotifyStore

log = logging.getLogger(__name__)

FIRST_RETRY_S = 5.0
MAX_RETRY_S = 600.0
IDLE_CHECK_S = 30.0  # a worker looks at its outbox at least this often (held messages, injected clocks)
SEND_TIMEOUT_S = 60.0  # Apprise stops waiting for a send after this long (a socket read times out only when idle)
# How long a target may think before its answer starts, unless its URL says (`rto=`). Apprise's own 4 s counted a
# webhook running an automation, or a Gotify on a busy Pi, as refused after it took the message: sent again and
# again, for as long as it stayed slow.
READ_TIMEOUT_S = 30.0
MAX_RETRY_AFTER_S = 3600.0  # a Retry-After beyond this (a day, the year 9999) would silence the target: capped
# Statuses that refuse the message itself (malformed, too long): sending the same text again cannot succeed.
# 401, 403, 404 ... say the URL or its token is wrong: those are retried, since a fix on the server lets the
# waiting messages through (a fix of the URL starts the target afresh anyway).
REFUSED_FOR_CONTENT = frozenset({400, 413, 414, 422, 431})
REFUSED_TRIES = 3
_TYPES = {"critical": "failure", "unknown": "warning", "warning": "warning", "ok": "success", "info": "info"}


def backoff(failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones in a row.

    >>> [backoff(n) for n in (1, 2, 3, 10)]
    [5.0, 10.0, 20.0, 600.0]
    """
    return min(MAX_RETRY_S, FIRST_RETRY_S * float(2 ** max(0, failures - 1)))


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date), at most MAX_RETRY_AFTER_S; None for
    one that asks for nothing usable (negative, in the past, garbage): the backoff applies then.

    >>> now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    >>> [retry_after(v, now) for v in ("120", " 7 ", "9" * 5000, "-5", "1e9", "soon", "", None)]
    [120.0, 7.0, 3600.0, None, None, None, None, None]
    >>> [retry_after(v, now) for v in ("Thu, 26 Nov 2026 12:05:00 GMT", "Wed, 25 Nov 2026 12:00:00 GMT")]
    [300.0, None]
    """
    text = (value or "").strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text) if len(text) <= 9 else MAX_RETRY_AFTER_S  # int() refuses 4300 digits and more
    else:
        try:
            at = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp() - now.timestamp()
    return min(seconds, MAX_RETRY_AFTER_S) if seconds > 0 else None


_DELAY_SECONDS = re.compile(r"[0-9]+")


class Sender(Protocol):
    """A target. It may also have `last: Exchange | None`, what its latest send met (AppriseSender has)."""

    shown: str  # how the target may appear in a log line or command output: never its credentials

    def send(self, message: Message) -> bool: ...


class AppriseSender:
    """One Apprise URL. `send` blocks (Apprise is synchronous): call it in a worker thread."""

    def __init__(self, url: str) -> None:
        import apprise

        # Apprise's INFO and DEBUG lines name every URL it loads and posts to (paths and users included); ours
        # say the same with the target shown privately. Its WARNING lines name hosts only, and pass, redacted.
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self.last: Exchange | None = None
        # No redirects unless the URL says `redirect=yes` (see _http). Apprise 1.x knows no such setting: there the
        # hook in _http alone keeps them from being followed.
        asset = apprise.AppriseAsset()
        if hasattr(asset, "http_redirects"):
            asset.http_redirects = False
        self._apprise = apprise.Apprise(asset=asset)
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:  # `validate` catches this first; a URL from elsewhere still must not crash serve
            self.shown = _scheme_only(url)
            self.usable = False
            return
        if "rto" not in parse_qs(urlsplit(url).query) and isinstance(
            getattr(plugin, "socket_read_timeout", None), float
        ):
            plugin.socket_read_timeout = max(plugin.socket_read_timeout, READ_TIMEOUT_S)
        self._apprise.add(plugin)
        self.usable = True
        self._follow_redirects = bool(getattr(plugin, "redirects", False))
        # Apprise masks the secrets it knows of each service; the query is only its defaults.
        self._private = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        self.shown = private(self._private.split("?", 1)[0], url)
        if self._follow_redirects:  # two targets differing only in it must not read the same in a log or in notify-test
            self.shown += "?redirect=yes"

    def send(self, message: Message) -> bool:
        self.last = None
        if not self.usable:
            return False
        if any(sent.endswith(f"({self._private})") for sent in stuck_sends()):
            # Its last send still hangs in one of Apprise's few threads (a target answering a byte at a time):
            # another try would hold one more, until no target had one left.
            self.last = Exchange(problem="the last attempt still hangs (a target answering a byte at a time?)")
            return False
        # Apprise 1.x has no `timeout` (its sends are bounded by their sockets' timeouts only).
        bounded = "timeout" in inspect.signature(self._apprise.notify).parameters
        bound: dict[str, Any] = {"timeout": SEND_TIMEOUT_S} if bounded else {}
        began = time.monotonic()
        with watching(follow_redirects=self._follow_redirects) as exchange:
            self.last = exchange
            result = self._apprise.notify(
                body=message.body,
                title=message.title,
                notify_type=_TYPES.get(message.level, "info"),
                body_format="text",
                **bound,
            )
        if not result and exchange.describe() is None:  # no HTTP answer to quote: say what is known
            exchange.problem = (
                f"no complete answer within {SEND_TIMEOUT_S:.0f} s"
                if time.monotonic() - began >= SEND_TIMEOUT_S - 1
                else "not accepted (Apprise's warning in the log says why)"
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
        self.retry_in = 0.0  # seconds the worker waits after its latest refusal
        # Since when the target has refused every attempt, and why the latest was refused (None: it accepts).
        self.failing_since: datetime | None = None
        self.problem: str | None = None
        self.on_attempt: Callable[[], None] | None = None  # after each send, accepted or not
        # After a batch refused for its content: send one message at a time until the backlog is through, and
        # count how often the oldest one was refused that way (id, times).
        self._one_at_a_time = False
        self._refused: tuple[int, int] = (0, 0)
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
                    self.retry_in = self._retry(max(1, self.failures))
                    return False
                self._unrecorded.clear()
            try:
                pending = await asyncio.to_thread(self._store.pending, self.key)
            except BackupGlanceError as exc:
                log.error("notification outbox unreadable", extra={"target": self.sender.shown, "error": str(exc)})
                self.retry_in = self._retry(max(1, self.failures))
                return False
            now = self._clock()
            due = [p for p in pending if p.not_before <= now and p.id not in self._unrecorded]
            if len(due) <= 1:
                self._one_at_a_time = False
            if not due:
                if not pending and self.failing_since is not None:  # what it refused was let go: nothing waits
                    self.failing_since = self.problem = None
                    if self.on_attempt is not None:
                        self.on_attempt()
                return None
            if self._one_at_a_time:
                due = due[:1]
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
            answer: Exchange | None = getattr(self.sender, "last", None)  # a sender without HTTP may not know
            if accepted:
                self.sent += 1
                if self.failures:
                    log.info("notification target accepts again", extra={"target": self.sender.shown})
                self.failures = 0
                log.info(
                    "notification sent",
                    extra={"target": self.sender.shown, "title": message.title, "parts": len(due)},
                )
                if answer is not None and answer.cut_at is not None:
                    # Accepted by its status; what followed was not read (a body that never ends, or gigabytes).
                    log.warning(
                        "notification target's answer not read to its end",
                        extra={"target": self.sender.shown, "problem": answer.problem},
                    )
            else:
                self.failures += 1
                await self._refused_by(answer, ids, message, now)
            self.failing_since = None if accepted else self.failing_since or now
            self.problem = None if accepted else (answer.describe() if answer is not None else None) or "refused"
            if self.on_attempt is not None:
                self.on_attempt()
            return accepted

    async def _refused_by(self, answer: Exchange | None, ids: list[int], message: Message, now: datetime) -> None:
        """After a refusal: how long to wait, whether to split the batch or drop a message, and a log line."""
        status = answer.status if answer is not None else None
        problem = answer.describe() if answer is not None else None
        self.retry_in = self._retry(self.failures)
        asked = retry_after(answer.retry_after, now) if answer is not None and status in (429, 503) else None
        if asked is not None:
            self.retry_in = max(self.retry_in, asked)
        for_good = status is not None and 400 <= status < 500 and status not in (408, 425, 429)
        if status in REFUSED_FOR_CONTENT:
            if len(ids) > 1:
                self._one_at_a_time = True  # the next try: the oldest alone, then the others
                self.retry_in = min(self.retry_in, FIRST_RETRY_S)
            else:
                times = self._refused[1] + 1 if self._refused[0] == ids[0] else 1
                self._refused = (ids[0], times)
                if times >= REFUSED_TRIES:
                    await self._drop(ids, message, problem)
                    return
        if self.failures == 1 or self.failures % 10 == 0:
            log.log(
                logging.ERROR if for_good else logging.WARNING,
                "notification not accepted; will retry",
                extra={
                    "target": self.sender.shown,
                    "problem": problem or "refused (the lines above may say why)",
                    "failures": self.failures,
                    "retry_s": round(self.retry_in, 1),
                },
            )

    async def _drop(self, ids: list[int], message: Message, problem: str | None) -> None:
        try:
            await asyncio.to_thread(self._store.dropped, ids)
        except BackupGlanceError as exc:
            log.error("notification outbox not updated", extra={"target": self.sender.shown, "error": str(exc)})
            return
        self._refused = (0, 0)
        log.error(
            "notification dropped: the target refuses it for what it says",
            extra={"target": self.sender.shown, "problem": problem, "tries": REFUSED_TRIES, "title": message.title},
        )

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
                await asyncio.sleep(self.retry_in)
                continue
            delay = await asyncio.to_thread(self._next_due_in)
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                async with asyncio.timeout(max(delay, 0.01)):
                    await self._wake.wait()


__all__ = ["AppriseSender", "Sender", "TargetWorker", "backoff", "retry_after", "stuck_sends"]
