"""The latest `Board`, swapped atomically by the collector and read by every request.

Readers get an immutable snapshot; a request never waits on a source, only on this reference read.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from .model import Board


class BoardStore:
    def __init__(self, board: Board | None = None, *, timezone: str = "UTC") -> None:
        self._lock = threading.Lock()
        self._board = board or Board(generated_at=datetime.now(UTC), timezone=timezone)
        self._version = 0

    def current(self) -> Board:
        return self._board

    @property
    def version(self) -> int:
        """Increases with every publish; renderers may cache per version."""
        return self._version

    def publish(self, board: Board) -> None:
        with self._lock:
            self._board = board
            self._version += 1


__all__ = ["BoardStore"]
