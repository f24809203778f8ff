"""The one loop: poll every source on its own interval, record what it saw, publish a new Board.

A failing source never blocks or breaks the others: each polls in its own task, keeps its last known good
observation, and backs off (quickly retried when transient, no faster than every 5 minutes when the
credentials were rejected — PBS delays failed logins on purpose). Requests to the web layer read only the
published Board.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from .board import BoardStore
from .errors import BackupGlanceError, SourceError, SourceTimeout
from .health import Defaults, Memo, evaluate, overall
from .health.calendar import CALENDAR_PAST
from .health.deadlines import LONGEST_SLEEP
from .heap import release_free_memory
from .history import FUTURE_SLACK, History
from .model import Board, HistoryView, Observation, ServiceSpec, SourceState
from .sources import Source
from .sources._bounds import EdgeBounds
from .sources._util import gc_paused, utc_now

log = logging.getLogger(__name__)

LONGEST_SLEEP_S = LONGEST_SLEEP.total_seconds()
RETRY_AFTER_FAILURE_S = 60.0  # after judging failed, try again at the next news or after this long
JUDGING_FAILED = "the board could not be judged again"
AUTH_RETRY = timedelta(minutes=5)  # a rejected token will not start working by itself; don't hammer
MIN_RETRY = timedelta(seconds=15)
RECANCEL_S = 0.5  # how often `stop` cancels again a task that is still running (see there)
FULL_COLLECTION_EVERY_S = 3600.0  # how often the garbage collector walks what the service holds (see OldGeneration)
HELD_THRESHOLD = 2**31 - 1  # a generation-2 threshold Python never reaches by itself

P = ParamSpec("P")
R = TypeVar("R")


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
        deadlines: dict[str, timedelta] | None = None,
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
        # A zone a source names that this machine does not know is read as the board's: most likely the homelab's.
        self._bounds = {name: EdgeBounds(fallback_zone=display_tz) for name in self._sources}
        # A whole poll's budget, not only each read's: a source trickling one byte a second stays under every
        # read timeout while a poll takes half an hour. Default: half the interval.
        self._deadlines = {name: (deadlines or {}).get(name, poll_intervals[name] / 2) for name in self._sources}
        self._tasks: list[asyncio.Task[None]] = []
        # Work handed to threads (history reads and writes, judging, publishing). Cancelling the task that waits
        # for one does not stop its thread; `stop` waits for these so the history is closed only after them.
        self._workers: set[asyncio.Future[Any]] = set()
        self._rebuild_lock = asyncio.Lock()
        # Set when a poll brought something new; the refresh task re-judges then, or when a deadline passes.
        self._news = asyncio.Event()
        # What the last judgement leaves to the next: only services whose evidence changed or whose moment came
        # are judged again (used by one rebuild at a time, under `_rebuild_lock`).
        self._memo = Memo()
        self._garbage = OldGeneration()
        # Trouble of backup-glance itself that others know of (notification targets that do not accept), read at
        # each judgement as notices beside the history's; `reconsider` when it changes.
        self.notices_from: list[Callable[[datetime], list[str]]] = []
        self._history_problem_shown: str | None = None  # the history's problem as the published board says it

    @property
    def states(self) -> list[SourceState]:
        return list(self._states.values())

    async def poll_once(self) -> Board:
        """Poll every source once, concurrently, then publish and return the board (`backup-glance check`)."""
        await asyncio.gather(*(self._poll(name) for name in self._sources))
        return await self.rebuild()

    async def _poll(self, name: str) -> float:
        """Poll one source; return the seconds until it should be polled again. Its state keeps the duration."""
        began = time.monotonic()
        try:
            return await self._poll_source(name)
        finally:
            seconds = round(time.monotonic() - began, 3)
            self._states[name] = replace(self._states[name], last_poll_seconds=seconds)
            self._store.note_poll(self._states[name])

    async def _poll_source(self, name: str) -> float:
        source = self._sources[name]
        state = self._states[name]
        started = self._clock()
        began = time.monotonic()
        deadline = self._deadlines[name]
        try:
            async with asyncio.timeout(deadline.total_seconds()):
                observation = await source.poll()
        except SourceError as exc:
            return self._failed(name, started, exc)
        except TimeoutError:
            gave_up = SourceTimeout(
                f"the poll did not finish within {deadline.total_seconds():.0f}s (the source answers too slowly);"
                " gave up",
                source=name,
                kind=source.kind,
            )
            return self._failed(name, started, gave_up)
        except Exception as exc:  # a bug in one source must not stop the loop (logged once, here)
            self._failures[name] += 1
            self._states[name] = replace(
                state, last_attempt_at=started, error=f"internal error while polling: {exc.__class__.__name__}"
            )
            log.exception("poll crashed", extra={"source": name, "kind": source.kind})
            return self._retry_after(name, state.poll_interval, None).total_seconds()
        observation = self._bounds[name].bound(observation, self._clock())
        news = state.error is not None or not _same_facts(state.observation, observation)
        if news:
            self._news.set()
        else:
            self._store.confirm()
        self._failures[name] = 0
        # The data is as old as the poll's start: stamping it with the end would make a slow poll look fresh.
        self._states[name] = replace(
            state, observation=observation, last_attempt_at=started, last_success_at=started, error=None
        )
        try:
            if self._history is not None or news:
                await self._in_thread(self._keep, observation, news)
        except BackupGlanceError as exc:
            log.error("history write failed", extra={"source": name, "error": str(exc)})
        log.info(
            "poll finished",
            extra={
                "source": name,
                "kind": source.kind,
                "seconds": round(time.monotonic() - began, 3),
                "targets": len(observation.targets),
                "snapshots": len(observation.snapshots) + sum(map(len, observation.series)),
            },
        )
        return state.poll_interval.total_seconds()

    def _keep(self, observation: Observation, news: bool) -> None:
        """Off the event loop: record the observation, then, when it brought news, give back what reading and
        recording it freed. A poll that saw nothing new frees what the next one will take again: handing that back
        would only make the next one fault it in (at 2,000 guests a trim then cost a tenth of a still cycle). The
        first record of a big source makes hundreds of thousands of rows, none of them garbage: the cyclic
        collector would walk them again and again (as in decoding, `gc_paused`)."""
        try:
            if self._history is not None:
                with gc_paused():
                    # With news, a rebuild follows: a big write of new snapshots waits until its board is out.
                    self._history.record(observation, defer=news)
        finally:
            if news:
                release_free_memory()

    def _failed(self, name: str, started: datetime, exc: SourceError) -> float:
        state = self._states[name]
        if state.error != str(exc) or state.last_attempt_at is None:
            self._news.set()
        else:  # the same failure again: the board says it already, and the collector works (the heartbeat beats)
            self._store.confirm()
        self._failures[name] += 1
        self._states[name] = replace(state, last_attempt_at=started, error=str(exc))
        log.warning("poll failed", extra={"source": name, "kind": state.kind, "error": str(exc)})
        return self._retry_after(name, state.poll_interval, exc).total_seconds()

    def _retry_after(self, name: str, interval: timedelta, exc: SourceError | None) -> timedelta:
        if exc is not None and exc.permanent:
            return max(interval, AUTH_RETRY)
        failures = max(1, min(self._failures[name], 10))
        # Glance's habit: retry early on a squared, capped backoff, but never later than the regular interval.
        return min(interval, max(MIN_RETRY, timedelta(seconds=5 * failures**2)))

    async def rebuild(self) -> Board:
        async with self._rebuild_lock:
            try:
                board = await self._judge_and_publish_now()
            except Exception:
                await self._write_deferred()
                raise
            if await self._write_deferred():  # the write failed (or worked again): the board must say so
                board = await self._judge_and_publish_now()
            return board

    async def _judge_and_publish_now(self) -> Board:
        now = self._clock()
        view = HistoryView()
        if self._history is not None:
            lookback = max((s.lookback for s in self._services), default=self._defaults.lookback)
            since = now - max(lookback, CALENDAR_PAST) - timedelta(days=1)
            try:
                view = await self._in_thread(self._history.view, since=since, until=now + FUTURE_SLACK)
            except BackupGlanceError as exc:
                log.error("history read failed", extra={"error": str(exc)})
        problem = self._history.problem if self._history is not None else None
        notices = [problem] if problem else []
        for more in self.notices_from:
            notices += more(now)
        # In a thread: judging 2,000 services takes a second, and the web server shares this event loop.
        board = await self._in_thread(self._judge_and_publish, view, now, notices)
        self._history_problem_shown = problem
        return board

    def reconsider(self) -> None:
        """Judge and publish again soon: what `notices_from` says has changed."""
        self._news.set()

    async def _write_deferred(self) -> bool:
        """Write the snapshots a record left for after the publish (a big first poll's take seconds); return
        whether the history's problem is no longer the one the board shows. (A record that ends after this
        waits for the next record, rebuild or `stop`: its rows are in memory meanwhile.)"""
        history = self._history
        if history is None:
            return False
        try:
            await self._in_thread(history.flush)
        except BackupGlanceError as exc:
            log.error("history write failed", extra={"error": str(exc)})
        return history.problem != self._published_problem()

    def _judge_and_publish(self, view: HistoryView, now: datetime, notices: list[str]) -> Board:
        """Off the event loop: judge, let the renderers get ready for the board, publish it (the old board and its
        answers are let go here), and collect the garbage now, not in the middle of the first request after the
        publish (freeing a big board takes several milliseconds).

        Judging and rendering make hundreds of thousands of objects that mostly outlive their step (the board,
        its verdicts, rows, answers): with young collections on, Python walked them again and again as they
        aged (a tenth of a quiet evaluation's CPU at 2,000 guests). They are off until the publish, after which
        `OldGeneration.collect` decides what is walked."""
        with gc_paused():
            board = evaluate(
                services=self._services,
                sources=self.states,
                history=view,
                now=now,
                display_tz=self._display_tz,
                defaults=self._defaults,
                discover_rest=self._discover_rest,
                notices=notices,
                memo=self._memo,
            )
            if self._store.version == 0:
                # No verdict is on show yet: the first board goes out at once, and the usual answers are made for
                # it right after (at 10,000 guests that takes half a second). Later boards wait for theirs, so
                # that no request after a publish pays for a render.
                self._store.publish(board)
                self._store.prepare(board)
            else:
                self._store.prepare(board)
                self._store.publish(board)
            self._garbage.collect()  # while still paused: enabled first, Python would walk them all at once
        release_free_memory()  # the old board's
        return board

    async def _in_thread(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`asyncio.to_thread`, remembered in `_workers` until the thread is done, even when the caller is
        cancelled first (the shield keeps the future alive; its outcome is then collected, never left unread)."""
        worker = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
        self._workers.add(worker)
        worker.add_done_callback(self._worker_done)
        return await asyncio.shield(worker)

    def _worker_done(self, worker: asyncio.Future[Any]) -> None:
        self._workers.discard(worker)
        if not worker.cancelled():
            worker.exception()  # the caller saw it, or was cancelled and no longer cares: not "never retrieved"

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
            if self._history is not None and self._history.problem != self._published_problem():
                self._news.set()  # the history broke, or works again
            await asyncio.sleep(delay)

    def _published_problem(self) -> str | None:
        """The history's problem as the board shows it (a failed judging is no history problem)."""
        return self._history_problem_shown

    async def _refresh(self) -> None:
        """Re-judge when a poll brought news, or when the board's next deadline passes (a slot comes, a grace
        runs out): between those moments the verdicts cannot change, so an idle homelab costs nothing."""
        while True:
            deadline = self._store.current().next_change_at
            wait = (deadline - self._clock()).total_seconds() if deadline is not None else LONGEST_SLEEP_S
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that lands in the loop iteration in
            # which the news arrives, and this task would then sleep on through `stop`.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(wait, 0.0), LONGEST_SLEEP_S)):
                    await self._news.wait()
            self._news.clear()
            if not await self.rebuild_or_say_why() and not self._news.is_set():
                # Its next deadline may be past already: the same failure again at once would spin a core.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_AFTER_FAILURE_S):
                        await self._news.wait()

    async def rebuild_or_say_why(self) -> bool:
        """`rebuild`, surviving a bug in one verdict: the last board stays up, saying since when it could not be
        judged again (its verdicts may be out of date). False when judging failed."""
        try:
            await self.rebuild()
        except Exception:
            log.exception("rebuilding the board failed")
            self._keep_board_with_notice()
            return False
        return True

    def _keep_board_with_notice(self) -> None:
        board, zone = self._store.current(), ZoneInfo(self._display_tz)
        failed_at = board.judging_failed_at or self._clock()
        shown = (
            f"what shows was judged at {board.generated_at.astimezone(zone):%H:%M}"
            if board.sources  # the board a start publishes before its first judging has none
            else "nothing was judged yet"
        )
        notice = f"{JUDGING_FAILED} since {failed_at.astimezone(zone):%H:%M} (an internal error, in the log): {shown}"
        notices = (*(n for n in board.notices if not n.startswith(JUDGING_FAILED)), notice)
        worst = overall(board.verdicts, board.sources, board.datastores, notices, judging_failed=True)
        self._store.publish(replace(board, notices=notices, overall=worst, judging_failed_at=failed_at))

    def start(self) -> None:
        self._garbage.hold()
        self._tasks = [asyncio.create_task(self._loop(name), name=f"poll-{name}") for name in self._sources]
        self._tasks.append(asyncio.create_task(self._refresh(), name="refresh"))
        if self._history is not None:
            self._tasks.append(asyncio.create_task(self._prune_daily(), name="history-prune"))

    async def _prune_daily(self) -> None:
        assert self._history is not None
        while True:
            try:
                await self._in_thread(self._history.prune, now=self._clock())
                self._news.set()  # what history holds changed
            except BackupGlanceError as exc:
                log.error("history prune failed", extra={"error": str(exc)})
            await asyncio.sleep(86400)

    async def stop(self) -> None:
        """Cancel the loops, wait for the work they left in threads, close the sources. Unbounded by itself:
        the caller sets the deadline, and a cancellation of `stop` propagates, so the caller sees it expire."""
        tasks, self._tasks = self._tasks, []
        pending = set(tasks)
        while pending:
            # Cancelled again while still running: a task can swallow a cancellation (asyncio.wait_for does on
            # Python 3.11 when its future finishes in the same loop iteration) and go back to sleep.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("collector task failed", extra={"task": task.get_name()}, exc_info=exc)
        if self._workers:  # a history write, a read or a publish still running in its thread
            await asyncio.wait(set(self._workers))
        for source in self._sources.values():
            with contextlib.suppress(Exception):
                await source.aclose()
        self._garbage.release()


class OldGeneration:
    """When the running service walks Python's cyclic garbage collector over what it holds: at most once an hour,
    after a publish.

    By itself Python walks its oldest generation whenever a quarter as many objects as it holds have survived the
    young collections. A quiet cycle at 2,000 guests makes that many (a board, the evidence indexes), so each cycle
    paid 0.1-0.3 s to walk the history and the observations again: objects that live for hours and are freed by
    reference counting anyway. What judging and rendering made is not walked after the publish either: it is
    frozen (`gc.freeze`, set aside, still freed by reference counting). Walking it found no garbage in a quiet
    cycle, yet cost 5 % of one (every big new tuple and dict is walked item by item); a cycle it might hold is
    freed within the hour, when everything is walked once. Young garbage made between publishes (the polls) is
    collected by Python as usual."""

    def __init__(
        self, *, every_s: float = FULL_COLLECTION_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last_full = clock()
        self._saved: tuple[int, int, int] | None = None

    def hold(self) -> None:
        """Take the walks of the oldest generation over from Python (`start`), until `release`. With two
        collectors in one process (tests), the one that held first restores Python's setting."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(self._saved[0], self._saved[1], HELD_THRESHOLD)

    def release(self) -> None:
        if self._saved is not None:
            if self._saved[2] != HELD_THRESHOLD:
                gc.set_threshold(*self._saved)
                gc.unfreeze()  # what stayed frozen is walked again, as Python would
            self._saved = None

    def collect(self) -> None:
        """After a publish, with the collector paused: walk everything once an hour, otherwise freeze what is
        alive now. Not held (`backup-glance check`, tests): collect the young generations."""
        if self._saved is None:
            gc.collect(1)
        elif self._clock() - self._last_full >= self._every_s:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full = self._clock()
        else:
            gc.freeze()


def _same_facts(before: Observation | None, after: Observation) -> bool:
    """Whether a poll saw nothing new (when it was made aside). Big tuples are compared by identity first:
    sources hand back the same tuple while nothing changed."""
    if before is None:
        return False
    for name in ("targets", "snapshots", "jobs", "runs", "datastores", "uncovered_target_keys", "problems", "unread"):
        old, new = getattr(before, name), getattr(after, name)
        if old is not new and old != new:
            return False
    for name in ("remote_copies", "offsite_locations", "endpoint", "remotes_visible"):  # protection facts
        if getattr(before, name) != getattr(after, name):
            return False
    return before.timezone == after.timezone
