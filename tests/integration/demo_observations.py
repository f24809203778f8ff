"""The demo homelab's real observations at one moment: what the deadline and incremental tests judge again."""

from __future__ import annotations

import asyncio
from datetime import datetime

from backup_glance.config import Config
from backup_glance.demo import DemoLab
from backup_glance.model import SourceState
from backup_glance.runtime import build_runtime


def observe_demo(now: datetime) -> tuple[list[SourceState], Config]:
    """Poll the demo's simulators once at `now`: (the sources' states, the demo's config)."""
    loop = asyncio.new_event_loop()
    try:
        with DemoLab(now=now) as lab:
            runtime = build_runtime(lab.config(), clock=lambda: now, with_history=False)
            board = loop.run_until_complete(runtime.collector.poll_once())
            loop.run_until_complete(runtime.collector.stop())
            config = lab.config()
    finally:
        loop.close()
    return list(board.sources), config
