"""Who watches the watcher: a Healthchecks / Uptime Kuma push URL pinged while backup-glance works.

    heartbeat = Heartbeat(url, fail_url=None, every=timedelta(minutes=5))
    heartbeat.on_board(board)          # after each publish or quiet poll: pings when due, in its own task

First ping right after the first complete board (every source answered or failed once), then after board
updates and after polls that found nothing new (`BoardStore.confirm`) at most every `every` (at least 5 s).
While the board is critical and `fail_url` is set, `fail_url` is pinged instead of `url`. Pings follow the
polls, so a collector that dies or hangs stops them and the external monitor notices. A failed ping is logged
(once per streak) and tried again at the next poll after `RETRY_S`; it never delays anything else. URLs
appear in logs as scheme://host/… only.

A ping counts when the URL itself answers 2xx, within `TIMEOUT_S` in all. A redirect is not followed: the
login page of an auth proxy in front of the monitor, or any other host, answering 200 is no ping the monitor
got. The answer's body is never read (a 2 GB or endless one costs nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urljoin

import httpx

from ..config import display_url
from ..model import Board, Severity
from ._http import problem as reason
from ._policy import is_complete

log = logging.getLogger(__name__)

MIN_EVERY = timedelta(seconds=5)
RETRY_S = 30.0
TIMEOUT_S = 10.0  # the whole ping: httpx's own timeout is per read, which a byte at a time never trips


class Heartbeat:
    def __init__(
        self,
        url: str,
        *,
        fail_url: str | None = None,
        every: timedelta = timedelta(minutes=5),
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.fail_url = fail_url
        self.every = max(every, MIN_EVERY).total_seconds()
        self._monotonic = monotonic
        self._transport = transport
        self._last_ok: float | None = None
        self._last_try: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._failing = False
        self.pings = 0

    def on_board(self, board: Board) -> None:
        """Ping if due; call from the event loop. Returns at once: the ping runs in its own task."""
        if not is_complete(board) or (self._task is not None and not self._task.done()):
            return
        now = self._monotonic()
        if self._last_ok is not None and now - self._last_ok < self.every:
            return
        if self._failing and self._last_try is not None and now - self._last_try < min(RETRY_S, self.every):
            return
        stuck = board.judging_failed_at is not None
        if stuck and self.fail_url is None:
            return  # no "all is well" while backup-glance cannot judge: the watcher hears nothing, and says so
        failing = (board.overall is Severity.CRITICAL or stuck) and self.fail_url is not None
        url = self.fail_url if failing and self.fail_url is not None else self.url
        self._last_try = now
        self._task = asyncio.get_running_loop().create_task(self._ping(url, failing), name="heartbeat")

    async def _ping(self, url: str, failing: bool) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_S, transport=self._transport, follow_redirects=False)
        shown = display_url(url)
        try:
            async with (
                asyncio.timeout(TIMEOUT_S),
                self._client.stream("GET", url, headers={"User-Agent": "backup-glance heartbeat"}) as response,
            ):
                status, location = response.status_code, response.headers.get("Location")
            ok = 200 <= status < 300
            problem = f"HTTP {status}"
            if 300 <= status < 400 and location:
                problem += f" to {display_url(urljoin(url, location))} (redirects are not followed: use that URL)"
        except TimeoutError:
            ok, problem = False, f"no answer within {TIMEOUT_S:.0f} s"
        except httpx.ConnectTimeout:
            ok, problem = False, "no connection within the timeout"
        except httpx.HTTPError as exc:  # said as for a notification: an untrusted certificate, a name, refused
            ok, problem = False, reason(exc)
        if ok:
            self._last_ok = self._monotonic()
            self.pings += 1
            if self._failing:
                log.info("heartbeat accepted again", extra={"url": shown})
            self._failing = False
            log.debug("heartbeat sent", extra={"url": shown, "fail": failing})
        else:
            if not self._failing:
                log.warning("heartbeat ping failed", extra={"url": shown, "problem": problem})
            self._failing = True

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = ["Heartbeat"]
