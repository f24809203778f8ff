"""Helpers the subcommands share: where the config comes from."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_PATHS = ("backup-glance.yaml", "/etc/backup-glance/config.yaml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML configuration (default: $BACKUP_GLANCE_CONFIG, ./backup-glance.yaml, "
        "/etc/backup-glance/config.yaml; none found: the built-in demo homelab)",
    )


def find_config(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("BACKUP_GLANCE_CONFIG")
    if from_env:
        return Path(from_env)
    for candidate in DEFAULT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (1-65535)")
    return port
