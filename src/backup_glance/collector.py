"""The one loop: poll every source on its own interval, record what it saw, publish a new Board.

A failing source never blocks or breaks the others: each polls in its own task, keeps its last known good
observation, and backs off (quickly retried when transient, no faster than every 5 minutes when the
credentials were rejected — PBS delays failed logins on purpose). Requests to the web layer read only the
published Board.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from .board import BoardStore
from .errors import BackupGlanceError, SourceError
from .health import Defaults, evaluate
from .health.calendar import CALENDAR_PAST
from .history import History
from .model import Board, HistoryView, ServiceSpec, SourceState
from .sources import Source
from .sources._util import utc_now

log = logging.getLogger(__name__)

AUTH_RETRY = timedelta(minutes=5)  # a rejected token will not start working by itself; don't hammer
MIN_RETRY = timedelta(seconds=15)


class Collector:
    def __init__(
        self,
        *,
        sources: Sequence[Source],
        poll_intervals: dict[str, timedelta],
        services: Sequence[ServiceSpec],
        store: BoardStore,
        display_tz: str,
        defaults: Defaults,
        history: History | None = None,
        clock: Callable[[], datetime] = utc_now,
        discover_rest: bool = False,
    ) -> None:
        self._discover_rest = discover_rest
        self._sources = {source.name: source for source in sources}
        self._services = list(services)
        self._store = store
        self._display_tz = display_tz
        self._defaults = defaults
        self._history = history
        self._clock = clock
        self._states = {
            source.name: SourceState(name=source.name, kind=source.kind, poll_interval=poll_intervals[source.name])
            for source in sources
        }
        self._failures: dict[str, int] = dict.fromkeys(self._sources, 0)
        self._tasks: list[asyncio.Task[None]] = []
        self._rebuild_lock = asyncio.Lock()

    @property
    def states(self) -> list[SourceState]:
        return list(self._states.values())

    async def poll_once(self) -> Board:
        """Poll every source once, concurrently, then publish and return the board (`backup-glance check`)."""
        await asyncio.gather(*(self._poll(name) for name in self._sources))
        return await self.rebuild()

    async def _poll(self, name: str) -> float:
        """Poll one source; return the seconds until it should be polled again."""
        source = self._sources[name]
        state = self._states[name]
        started = self._clock()
        began = time.monotonic()
        try:
            observation = await source.poll()
        except SourceError as exc:
            self._failures[name] += 1
            self._states[name] = replace(state, last_attempt_at=started, error=str(exc))
            log.warning("poll failed", extra={"source": name, "kind": source.kind, "error": str(exc)})
            return self._retry_after(name, state.poll_interval, exc).total_seconds()
        except Exception as exc:  # a bug in one source must not stop the loop (logged once, here)
            self._failures[name] += 1
            self._states[name] = replace(
                state, last_attempt_at=started, error=f"internal error while polling: {exc.__class__.__name__}"
            )
            log.exception("poll crashed", extra={"source": name, "kind": source.kind})
            return self._retry_after(name, state.poll_interval, None).total_seconds()
        self._failures[name] = 0
        self._states[name] = replace(
            state, observation=observation, last_attempt_at=started, last_success_at=self._clock(), error=None
        )
        if self._history is not None:
            try:
                await asyncio.to_thread(self._history.record, observation)
            except BackupGlanceError as exc:
                log.error("history write failed", extra={"source": name, "error": str(exc)})
        log.info(
            "poll finished",
            extra={
                "source": name,
                "kind": source.kind,
                "seconds": round(time.monotonic() - began, 3),
                "targets": len(observation.targets),
                "snapshots": len(observation.snapshots),
            },
        )
        return state.poll_interval.total_seconds()

    def _retry_after(self, name: str, interval: timedelta, exc: SourceError | None) -> timedelta:
        if exc is not None and exc.permanent:
            return max(interval, AUTH_RETRY)
        failures = max(1, min(self._failures[name], 10))
        # Glance's habit: retry early on a squared, capped backoff, but never later than the regular interval.
        return min(interval, max(MIN_RETRY, timedelta(seconds=5 * failures**2)))

    async def rebuild(self) -> Board:
        async with self._rebuild_lock:
            now = self._clock()
            view = HistoryView()
            if self._history is not None:
                lookback = max((s.lookback for s in self._services), default=self._defaults.lookback)
                since = now - max(lookback, CALENDAR_PAST) - timedelta(days=1)
                try:
                    view = await asyncio.to_thread(self._history.view, since=since)
                except BackupGlanceError as exc:
                    log.error("history read failed", extra={"error": str(exc)})
            # In a thread: judging 2,000 services takes a second, and the web server shares this event loop.
            board = await asyncio.to_thread(
                evaluate,
                services=self._services,
                sources=self.states,
                history=view,
                now=now,
                display_tz=self._display_tz,
                defaults=self._defaults,
                discover_rest=self._discover_rest,
            )
            self._store.publish(board)
            return board

    async def _loop(self, name: str) -> None:
        failing = False
        while True:
            try:
                delay = await self._poll(name)
                failing = False
            except Exception:  # e.g. a history write with an unexpected error: the loop must go on
                if not failing:  # logged once per streak, not on every round
                    log.exception("polling loop error; retrying", extra={"source": name})
                failing = True
                delay = self._states[name].poll_interval.total_seconds()
            try:
                await self.rebuild()
            except Exception:  # publishing must survive a bug in one verdict; the old board stays up
                log.exception("rebuilding the board failed")
            await asyncio.sleep(delay)

    async def _refresh(self, every: timedelta) -> None:
        """Verdicts move with the clock (a slot passes, grace runs out) even when no poll brings news."""
        while True:
            await asyncio.sleep(every.total_seconds())
            try:
                await self.rebuild()
            except Exception:
                log.exception("rebuilding the board failed")

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(name), name=f"poll-{name}") for name in self._sources]
        self._tasks.append(asyncio.create_task(self._refresh(timedelta(seconds=30)), name="refresh"))
        if self._history is not None:
            self._tasks.append(asyncio.create_task(self._prune_daily(), name="history-prune"))

    async def _prune_daily(self) -> None:
        assert self._history is not None
        while True:
            try:
                await asyncio.to_thread(self._history.prune, now=self._clock())
            except BackupGlanceError as exc:
                log.error("history prune failed", extra={"error": str(exc)})
            await asyncio.sleep(86400)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for source in self._sources.values():
            with contextlib.suppress(Exception):
                await source.aclose()
