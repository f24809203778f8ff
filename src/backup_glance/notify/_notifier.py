"""The notifier: subscribed to board publishes, it decides per target what changed and hands messages to delivery.

    notifier = build_notifier(config, board_store, history_path=path, clock=clock)   # subscribes itself
    notifier.start()          # in the event loop: its step task, one delivery worker per target, the heartbeat
    await notifier.stop()

`on_board` (the BoardStore subscriber) only notes the board and wakes the step task: publishing costs nothing.
`step` runs the pure policy for each target (one dict lookup per service when nothing changed), and when there
is something to say writes the new state and the message in one transaction, then wakes that target's
worker. It also wakes by itself for reminders and digests, so those do not depend on how often boards come.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ..board import BoardStore
from ..config import Config, quiet_hours
from ..errors import BackupGlanceError
from ..model import Board, Severity
from ..schedule import Schedule, parse_schedule
from ._deliver import AppriseSender, Sender, TargetWorker, backoff
from ._messages import Message, _when, alert, digest
from ._policy import Announced, Decision, Rule, decide, is_complete, quiet_until
from ._store import NotifyStore
from .heartbeat import Heartbeat

log = logging.getLogger(__name__)

MAX_IDLE_S = 60.0  # the step task looks at the clock at least this often (reminders, digests)
SETTLE_S = 3.0  # at shutdown, how long a delivery in flight may take to finish


@dataclass(frozen=True, slots=True)
class Target:
    key: str  # stable, secret-free id of the URL: what the history database knows it by
    rule: Rule
    sender: Sender
    quiet: tuple[time, time] | None = None
    digest: Schedule | None = None


def target_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:20]


NOTICE_AFTER = timedelta(minutes=15)  # a target refusing this long is a notice on the board
NOTIFY_THREADS = "notify-send"  # the name of the threads sends run in, and the start of every such name


class Notifier:
    def __init__(
        self,
        *,
        targets: Sequence[Target],
        store: NotifyStore,
        clock: Callable[[], datetime],
        timezone: str,
        base_url: str | None = None,
        heartbeat: Heartbeat | None = None,
        retry: Callable[[int], float] = backoff,
    ) -> None:
        self.targets = list(targets)
        self.heartbeat = heartbeat
        self._store = store
        self._clock = clock
        self._zone = ZoneInfo(timezone)
        self._base_url = base_url
        # One thread per target, as each has one worker: a send to a target that hangs holds its thread for up to
        # SEND_TIMEOUT_S, and with fewer threads than targets a few such targets would hold up all the others.
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix=NOTIFY_THREADS)
        self._digest_at = store.prepare([t.key for t in self.targets], clock())
        loaded = store.load()
        self._announced: dict[str, dict[str, Announced]] = {t.key: loaded.get(t.key, {}) for t in self.targets}
        self.workers = {
            t.key: TargetWorker(t.key, t.sender, store, self._executor, clock=clock, zone=self._zone, retry=retry)
            for t in self.targets
        }
        for worker in self.workers.values():
            worker.on_attempt = self._attempted
        # Told when what `notices` says changes (the collector judges again, and the board shows it).
        self.on_notices: Callable[[], None] | None = None
        self._noticed: list[str] = []
        self._latest: Board | None = None
        self._wake = asyncio.Event()
        self._step_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the board says of the targets ---

    def notices(self, now: datetime) -> list[str]:
        """A notice for each target that has refused every message for `NOTICE_AFTER`: its alerts are not
        reaching anyone, which the board must say (the log alone is read by nobody)."""
        found = []
        for target in self.targets:
            worker = self.workers[target.key]
            since = worker.failing_since
            if since is not None and now - since >= NOTICE_AFTER:
                found.append(
                    f"notifications to {worker.sender.shown} not accepted since {_when(since, self._zone, now)}: "
                    f"{worker.problem}; they wait in its outbox"
                )
        return found

    def _attempted(self) -> None:
        found = self.notices(self._clock())
        if found != self._noticed:
            self._noticed = found
            if self.on_notices is not None:
                self.on_notices()

    # --- the publish hook ---

    def on_board(self, board: Board) -> None:
        """BoardStore subscriber: remember the board, wake the step task. Safe from any thread."""
        self._latest = board
        loop = self._loop
        if loop is None:
            return  # not started: `start` picks the latest board up
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._on_loop()
        else:
            loop.call_soon_threadsafe(self._on_loop)

    def on_confirmed(self, board: Board) -> None:
        """BoardStore confirmer, on the event loop: a poll found nothing new, so the collector works and the
        board is current. Only the heartbeat cares; there is nothing new to decide."""
        if self.heartbeat is not None and self._loop is not None:
            self.heartbeat.on_board(board)

    def _on_loop(self) -> None:
        self._wake.set()
        if self.heartbeat is not None and self._latest is not None:
            self.heartbeat.on_board(self._latest)

    # --- deciding ---

    async def step(self) -> None:
        """Decide for the latest board at the clock's now, for every target; persist; wake the workers."""
        async with self._step_lock:
            board = self._latest
            if board is None or not is_complete(board):
                return
            now = self._clock()
            for target in self.targets:
                await self._step_target(target, board, now)

    async def _step_target(self, target: Target, board: Board, now: datetime) -> None:
        announced = self._announced[target.key]
        decision = decide(board, announced, target.rule, now)
        digest_due = self._digest_due(target, now)
        if not decision and not digest_due:
            return
        messages: list[Message] = []
        if decision.lines:
            messages.append(alert(decision.lines, self._zone, self._base_url, now))
        if digest_due:
            messages.append(digest(board, now, self._base_url))
        not_before = quiet_until(now, target.quiet, self._zone) or now
        try:
            dropped = await asyncio.to_thread(
                self._store.commit,
                target.key,
                decision,
                now=now,
                outbox=[(m, not_before) for m in messages],
                digest_at=now if digest_due else None,
            )
        except BackupGlanceError as exc:
            # Nothing is sent that is not recorded: the next step finds the same change and tries again.
            log.error("notification state not written", extra={"target": target.sender.shown, "error": str(exc)})
            return
        if dropped:
            log.warning(
                "notification outbox full; its oldest messages are now one note that counts them",
                extra={"target": target.sender.shown, "dropped": dropped},
            )
        _apply(announced, decision)
        if digest_due:
            self._digest_at[target.key] = now
        if messages:
            if not_before > now:
                log.info("notification held for quiet hours", extra={"target": target.sender.shown})
            self.workers[target.key].wake()

    def _digest_due(self, target: Target, now: datetime) -> bool:
        if target.digest is None:
            return False
        upcoming = target.digest.next_after(self._last_digest(target, now))
        return upcoming is not None and upcoming <= now

    def _last_digest(self, target: Target, now: datetime) -> datetime:
        """When the target's last digest went out; never after `now`: one stamped while the clock ran a month
        ahead would otherwise hold every digest back until that month came. The calendar starts again from now."""
        last = self._digest_at.get(target.key, now)
        if last > now:
            last = self._digest_at[target.key] = now
        return last

    def _next_wake_in(self) -> float:
        """Seconds until the next digest or reminder falls due. One already overdue is not counted: the step just
        run left it for a reason (no complete board yet, a backup running), and the next board or the idle tick
        looks again — counting it would spin."""
        now = self._clock()
        deadlines = [MAX_IDLE_S]
        for target in self.targets:
            if target.digest is not None:
                upcoming = target.digest.next_after(self._last_digest(target, now))
                if upcoming is not None:
                    deadlines.append((upcoming - now).total_seconds())
            if target.rule.repeat is not None:
                repeat = target.rule.repeat
                deadlines += [
                    (a.reminded_at + repeat - now).total_seconds() for a in self._announced[target.key].values()
                ]
        return max(0.05, min(d for d in deadlines if d > 0))

    # --- running ---

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [self._loop.create_task(self._run(), name="notify-step")]
        self._tasks += [self._loop.create_task(w.run(), name="notify-deliver") for w in self.workers.values()]
        if self._latest is not None:
            self._on_loop()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.step()
            except Exception:  # a bug here must not end notifications for good
                log.exception("notification step failed")
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancellation
                async with asyncio.timeout(self._next_wake_in()):
                    await self._wake.wait()

    async def flush(self) -> dict[str, bool | None]:
        """Deliver what is due now, once per target (tests, and a last try at shutdown)."""
        return {key: await worker.deliver_due() for key, worker in self.workers.items()}

    async def stop(self) -> None:
        """Stop deciding, let a delivery in flight finish (at most `SETTLE_S`: a message the target accepted but
        that is still in the outbox would be sent again after a restart), then stop everything."""
        for task in self._tasks[:1]:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.settle() for w in self.workers.values())), SETTLE_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._loop = None
        if self.heartbeat is not None:
            await self.heartbeat.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._store.close()


def _apply(announced: dict[str, Announced], decision: Decision) -> None:
    announced.update(decision.upserts)
    for item in decision.deletes:
        announced.pop(item, None)


def build_targets(config: Config) -> list[Target]:
    targets = []
    for entry in config.notify:
        url = entry.url.get_secret_value()
        rule = Rule(Severity(entry.severity), entry.repeat, entry.alerts)
        quiet = quiet_hours(entry.quiet) if entry.quiet else None
        schedule = parse_schedule(entry.digest, dialect="proxmox", tz=config.timezone) if entry.digest else None
        sender = AppriseSender(url)
        if not sender.usable:
            log.error("Apprise does not understand a notify URL; it gets nothing", extra={"target": sender.shown})
        targets.append(Target(target_key(url), rule, sender, quiet, schedule))
    return targets


def build_notifier(
    config: Config,
    board_store: BoardStore,
    *,
    history_path: str | Path,
    clock: Callable[[], datetime],
    retry: Callable[[int], float] = backoff,
) -> Notifier:
    """The notifier for `config`, subscribed to `board_store`. Raises HistoryError when its state cannot open."""
    heartbeat = None
    if config.heartbeat is not None:
        hb = config.heartbeat
        fail_url = hb.fail_url.get_secret_value() if hb.fail_url is not None else None
        heartbeat = Heartbeat(hb.url.get_secret_value(), fail_url=fail_url, every=hb.every)
    notifier = Notifier(
        targets=build_targets(config),
        store=NotifyStore.open(history_path),
        clock=clock,
        timezone=config.timezone,
        base_url=config.server.base_url,
        heartbeat=heartbeat,
        retry=retry,
    )
    board_store.subscribe(notifier.on_board)
    board_store.on_confirm(notifier.on_confirmed)
    return notifier


__all__ = ["Notifier", "Target", "build_notifier", "build_targets", "target_key"]
