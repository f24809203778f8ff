"""Wiring shared by `serve` and `check`: config -> sources, history, collector, board store."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .board import BoardStore
from .collector import Collector
from .config import Config, anomaly_policy, protection_policy, service_specs
from .errors import HistoryError
from .health import Defaults
from .history import History
from .paths import folder_trouble, history_path
from .sources import create_source
from .sources._util import utc_now

if TYPE_CHECKING:
    from .notify import Notifier

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    store: BoardStore
    collector: Collector
    history: History | None
    notifier: Notifier | None = None  # `serve` only: alerts, digests and the heartbeat (notify, heartbeat)
    claim: IO[bytes] | None = None  # `serve` only: held while it runs (`claim_history`)


def claim_history(path: Path) -> IO[bytes]:
    """Keep any other `serve` off the history file at `path` while the returned file stays open: two would both
    send every notification. Raises HistoryError naming the process that holds it."""
    try:
        real = path.resolve()  # a symlink to the file is the same file
        if real.is_symlink():  # Python 3.13 hands a symlink loop back unresolved instead of raising
            real.stat()  # OSError: too many levels of symbolic links
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError on Python 3.11 and 3.12)
        raise HistoryError(f"cannot use the history path {path}: {exc}") from None
    lock = real.with_name(real.name + ".lock")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: a process id that cannot be written (a full disk) is not written again at the close.
        handle = lock.open("a+b", buffering=0)
    except OSError as exc:
        reason = folder_trouble(lock, exc)
        raise HistoryError(f"cannot create {lock} (it keeps a second serve off {path.name}): {reason}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read(20).decode("ascii", "replace").strip()
        handle.close()
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise HistoryError(
            f"{path} is in use by another backup-glance serve ({who}); stop it, or give this one its own history.path"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode("ascii"))
    except OSError:  # a full disk: the lock holds all the same, only a second serve cannot name this one
        pass
    return handle


# Where the first versions kept the history when the config named none: relative to the folder started in.
OLDER_DEFAULT = Path("data") / "history.sqlite3"


def _tell_of_an_older_default(path: Path) -> None:
    """A history about to start afresh while the file an older version used by default is right here: after an
    upgrade, everything recorded so far (gone snapshots, first sightings) would be left behind unsaid."""
    older = OLDER_DEFAULT.absolute()
    try:  # a folder this user may not look into: the history's own checks say so, in their words
        fresh = str(path) != ":memory:" and not path.exists() and older.is_file()
    except OSError:
        return
    if fresh:
        log.warning(
            "starting a new history file: an older version's history is at the former default place; to keep what "
            "it recorded, stop this, move that file to the new place (or set history.path to it) and start again",
            extra={"new": str(path), "former": str(older)},
        )


def build_runtime(
    config: Config,
    *,
    with_history: bool = True,
    clock: Callable[[], datetime] = utc_now,
    notify: bool = False,
) -> Runtime:
    """Raises HistoryError or DataFolderError (both BackupGlanceError) when the history cannot be opened, or
    (with `notify`, as `serve` runs) when another `serve` uses it."""
    store = BoardStore(timezone=config.timezone)
    history = None
    claim = None
    if with_history:
        path = history_path(config.history.path)
        _tell_of_an_older_default(path)
        if notify and str(path) != ":memory:":
            claim = claim_history(path)  # before opening it: a second serve must not touch the file at all
        try:
            history = History.open(path, retention=config.history.retention)
        except BaseException:
            if claim is not None:
                claim.close()
            raise
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
        # A target that stops accepting is on the board: the collector reads it at each judgement.
        collector.notices_from.append(notifier.notices)
        notifier.on_notices = collector.reconsider
    return Runtime(config=config, store=store, collector=collector, history=history, notifier=notifier, claim=claim)
