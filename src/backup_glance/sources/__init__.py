"""Sources: one module per system, each an async client that turns the system's API into an `Observation`.

A source owns the wire (requests, quirks, field names) and makes no verdicts. The registry below maps a config
`type` to its module; each module exposes `create(config) -> Source`.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from ..model import Observation

SOURCE_MODULES: dict[str, str] = {
    "pbs": "backup_glance.sources.pbs",
    "pve": "backup_glance.sources.pve",
    "databasement": "backup_glance.sources.databasement",
    "backrest": "backup_glance.sources.backrest",
    "restic": "backup_glance.sources.restic",
}


class Source(Protocol):
    """What the collector needs of a source."""

    name: str
    kind: str

    async def poll(self) -> Observation:
        """Read the source once. Raise a SourceError when nothing usable came back; put partial failures in
        `Observation.problems`."""
        ...

    async def aclose(self) -> None: ...


def create_source(config: object) -> Source:
    kind = getattr(config, "type")  # noqa: B009 - every source config has a `type` discriminator
    module = importlib.import_module(SOURCE_MODULES[kind])
    source: Source = module.create(config)
    return source


__all__ = ["SOURCE_MODULES", "Source", "create_source"]
