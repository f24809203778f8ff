"""Wiring shared by `serve` and `check`: config -> sources, history, collector, board store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .board import BoardStore
from .collector import Collector
from .config import Config, service_specs
from .health import Defaults
from .history import History
from .paths import history_path
from .sources import create_source
from .sources._util import utc_now


@dataclass
class Runtime:
    config: Config
    store: BoardStore
    collector: Collector
    history: History | None


def build_runtime(config: Config, *, with_history: bool = True, clock: Callable[[], datetime] = utc_now) -> Runtime:
    """Raises HistoryError or DataFolderError (both BackupGlanceError) when the history cannot be opened."""
    store = BoardStore(timezone=config.timezone)
    history = None
    if with_history:
        history = History.open(history_path(config.history.path), retention=config.history.retention)
    sources = [create_source(source_config) for source_config in config.sources]
    collector = Collector(
        sources=sources,
        poll_intervals={c.name: c.poll_interval for c in config.sources},
        services=service_specs(config),
        store=store,
        display_tz=config.timezone,
        defaults=Defaults(
            grace=config.defaults.grace, max_age=config.defaults.max_age, lookback=config.defaults.lookback
        ),
        history=history,
        discover_rest=bool(config.discover),
        clock=clock,
    )
    return Runtime(config=config, store=store, collector=collector, history=history)
