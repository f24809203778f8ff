"""The web layer: reads only the current Board, formats it, never decides a verdict.

`create_app(config, store)` builds the Starlette app (Glance extension widgets, JSON API, monitor URLs, ICS
feed, standalone page). Imports point one way: web -> board/model/config, never sources or health.
"""

from __future__ import annotations

from .app import create_app as create_app

__all__ = ["create_app"]
