"""The latest `Board`, swapped atomically by the collector and read by every request.

Readers get an immutable snapshot; a request never waits on a source, only on this reference read. Beside it,
each source's state after its latest poll: a poll that found nothing new publishes no board, yet when the source
last answered and how long the poll took are news to `/metrics` and the API (`sources_of`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from .model import Board, SourceState

log = logging.getLogger(__name__)


class BoardStore:
    def __init__(self, board: Board | None = None, *, timezone: str = "UTC") -> None:
        self._lock = threading.Lock()
        self._board = board or Board(generated_at=datetime.now(UTC), timezone=timezone)
        self._version = 0
        self._subscribers: list[Callable[[Board], object]] = []
        self._warmers: list[Callable[[Board], None]] = []
        self._confirmers: list[Callable[[Board], None]] = []
        self._polled: dict[str, SourceState] = {}
        self._polls = 0

    @property
    def polls(self) -> int:
        """Increases with every poll noted; answers that show `sources_of` may cache per version and poll."""
        return self._polls

    def note_poll(self, state: SourceState) -> None:
        """A source's state once its poll (answered or failed) is over."""
        with self._lock:
            self._polled = {**self._polled, state.name: state}
            self._polls += 1

    def sources_of(self, board: Board) -> tuple[SourceState, ...]:
        """`board`'s sources with the times of their latest poll: when each last answered and how long the poll
        took. A source whose latest poll changed more than that (it failed, or answers again) keeps the board's state
        until the board that judged the change is published."""
        polled = self._polled
        return tuple(_with_times(state, polled.get(state.name)) for state in board.sources)

    def current(self) -> Board:
        return self._board

    @property
    def version(self) -> int:
        """Increases with every publish; renderers may cache per version."""
        return self._version

    def subscribe(self, callback: Callable[[Board], object]) -> None:
        """Call `callback(board)` after every publish, on the publisher's thread; it must return quickly
        (the notifier only notes the board and wakes its own task). A failing subscriber is logged, not raised."""
        self._subscribers.append(callback)

    def add_warmer(self, warm: Callable[[Board], None]) -> None:
        """`warm(board)` runs in `prepare`, before the board is published (the first board: after), and fills
        the renderers' caches for it."""
        self._warmers.append(warm)

    def prepare(self, board: Board) -> None:
        """Let the renderers get ready for `board`; call it off the event loop, right before `publish` (or right
        after it, when nothing was on show before)."""
        for warm in self._warmers:
            try:
                warm(board)
            except Exception:
                log.exception("preparing the answers for a board failed")

    def on_confirm(self, callback: Callable[[Board], None]) -> None:
        """Call `callback(board)` when a poll found nothing new: the current board is still the truth. (Boards
        are published only on news, so a heartbeat that followed publishes alone would fall silent.)"""
        self._confirmers.append(callback)

    def confirm(self) -> None:
        board = self._board
        for callback in self._confirmers:
            try:
                callback(board)
            except Exception:
                log.exception("a board subscriber failed")

    def publish(self, board: Board) -> None:
        with self._lock:
            self._board = board
            self._version += 1
        for callback in self._subscribers:
            try:
                callback(board)
            except Exception:
                log.exception("a board subscriber failed")


def _with_times(judged: SourceState, polled: SourceState | None) -> SourceState:
    if (
        polled is None
        or polled.error != judged.error
        or polled.last_attempt_at is None
        or (judged.last_attempt_at is not None and polled.last_attempt_at < judged.last_attempt_at)
    ):
        return judged
    return replace(
        judged,
        last_attempt_at=polled.last_attempt_at,
        last_success_at=polled.last_success_at,
        last_poll_seconds=polled.last_poll_seconds,
    )


__all__ = ["BoardStore"]
