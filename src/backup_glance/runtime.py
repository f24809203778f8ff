"""Wiring shared by `serve` and `check`: config -> sources, history, collector, board store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .board import BoardStore
from .collector import Collector
from .config import Config, anomaly_policy, protection_policy, service_specs
from .health import Defaults
from .history import History
from .paths import history_path
from .sources import create_source
from .sources._util import utc_now

if TYPE_CHECKING:
    from .notify import Notifier


@dataclass
class Runtime:
    config: Config
    store: BoardStore
    collector: Collector
    history: History | None
    notifier: Notifier | None = None  # `serve` only: alerts, digests and the heartbeat (notify, heartbeat)


def build_runtime(
    config: Config, *, with_history: bool = True, clock: Callable[[], datetime] = utc_now, notify: bool = False
) -> Runtime:
    """Raises HistoryError or DataFolderError (both BackupGlanceError) when the history cannot be opened."""
    store = BoardStore(timezone=config.timezone)
    history = None
    if with_history:
        history = History.open(history_path(config.history.path), retention=config.history.retention)
    sources = [create_source(source_config) for source_config in config.sources]
    collector = Collector(
        sources=sources,
        poll_intervals={c.name: c.poll_interval for c in config.sources},
        deadlines={c.name: c.deadline() for c in config.sources},
        services=service_specs(config),
        store=store,
        display_tz=config.timezone,
        defaults=Defaults(
            grace=config.defaults.grace,
            max_age=config.defaults.max_age,
            lookback=config.defaults.lookback,
            protection=protection_policy(config.defaults.protection),
            anomalies=anomaly_policy(config),
        ),
        history=history,
        discover_rest=bool(config.discover),
        clock=clock,
    )
    notifier = None
    if notify and history is not None and (config.notify or config.heartbeat is not None):
        from .notify import build_notifier  # Apprise loads only when there is something to send

        notifier = build_notifier(config, store, history_path=history_path(config.history.path), clock=clock)
    return Runtime(config=config, store=store, collector=collector, history=history, notifier=notifier)
