"""The collector's per-source loop survives an unexpected error after a poll (here: the history write)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from backup_glance.board import BoardStore
from backup_glance.collector import Collector
from backup_glance.health import Defaults
from backup_glance.model import HistoryView, Observation

from .conftest import NOW


class OneSource:
    name = "one"
    kind = "restic"

    def __init__(self) -> None:
        self.polls = 0

    async def poll(self) -> Observation:
        self.polls += 1
        return Observation(source=self.name, kind=self.kind, observed_at=NOW, timezone="UTC")

    async def aclose(self) -> None:
        return None


class BrokenHistory:
    problem = None

    def record(self, observation: Observation) -> None:
        raise RuntimeError("disk I/O error (not a HistoryError)")

    def view(self, *, since: object, until: object = None) -> HistoryView:
        return HistoryView()

    def prune(self, *, now: object) -> int:
        return 0


async def test_an_unexpected_error_after_a_poll_does_not_end_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    source = OneSource()
    collector = Collector(
        sources=[source],
        poll_intervals={"one": timedelta(seconds=0.01)},
        services=[],
        store=BoardStore(),
        display_tz="UTC",
        defaults=Defaults(),
        history=BrokenHistory(),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    caplog.set_level(logging.ERROR, logger="backup_glance.collector")
    collector.start()
    try:
        for _ in range(200):
            if source.polls >= 3:
                break
            await asyncio.sleep(0.01)
        loop_task = next(t for t in collector._tasks if t.get_name() == "poll-one")
        assert not loop_task.done()
    finally:
        await collector.stop()
    assert source.polls >= 3
    assert len([r for r in caplog.records if r.getMessage().startswith("polling loop error")]) == 1
