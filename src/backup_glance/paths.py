"""Where state lives, independent of the folder a command is started from.

    $BACKUP_GLANCE_DATA                  used as given (the container's /data volume, systemd's StateDirectory)
    $XDG_STATE_HOME/backup-glance        otherwise, per user
    ~/.local/state/backup-glance         when XDG_STATE_HOME is not set

The per-user folder is created with mode 0700: the history names every guest, database and job of the homelab.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import BackupGlanceError

DATA_VARIABLE = "BACKUP_GLANCE_DATA"
HISTORY_FILE = "history.sqlite3"


class DataFolderError(BackupGlanceError):
    """The data folder cannot be found or created; the message says which one and what to do."""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(DATA_VARIABLE):
        return Path(env[DATA_VARIABLE])
    state_home = env.get("XDG_STATE_HOME")
    if state_home and Path(state_home).is_absolute():
        return Path(state_home) / "backup-glance"
    home = env.get("HOME") or _home_of_user()
    if not home:
        raise DataFolderError(
            f"no data folder: neither ${DATA_VARIABLE} nor $HOME is set; set {DATA_VARIABLE} or history.path"
        )
    return Path(home) / ".local" / "state" / "backup-glance"


def history_path(configured: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The history database file: `history.path` from the config, else in the data folder (created here)."""
    if configured:
        return Path(configured)
    folder = data_dir(env)
    given = bool((os.environ if env is None else env).get(DATA_VARIABLE))
    try:
        if given:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        else:
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        reason = (exc.strerror or exc.__class__.__name__).lower()
        raise DataFolderError(
            f"cannot create the data folder {folder}: {reason}; set {DATA_VARIABLE} to a writable folder "
            "or history.path in the config"
        ) from None
    return folder / HISTORY_FILE


def folder_trouble(path: Path, exc: OSError) -> str:
    """Why the folder for `path` could not be made, in plain words: an ancestor that is a file says "file exists",
    which names neither the file nor the problem."""
    for ancestor in path.parents:
        if ancestor.exists() and not ancestor.is_dir():
            return f"{ancestor} is a file, not a folder"
    return (exc.strerror or exc.__class__.__name__).lower()


def _home_of_user() -> str | None:
    try:
        return str(Path.home())
    except (RuntimeError, KeyError):
        return None
