"""What every widget module provides: a title, a parameter parser and a pure view builder.

The view record a builder returns carries its template name and its `WidgetState`; the app renders it through
the shared base template, which draws Glance's three states (content, content with a notice, error).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ...model import Board
from ..views import WidgetState


class View(Protocol):
    @property
    def template(self) -> str: ...

    @property
    def state(self) -> WidgetState: ...


@dataclass(frozen=True, slots=True)
class WidgetSpec:
    name: str
    title: str
    parse: Callable[[Mapping[str, str]], Hashable]
    # Any: each widget has its own frozen Params dataclass; `parse` is the only producer of it.
    build: Callable[[Board, ZoneInfo, Any], View]


__all__ = ["View", "WidgetSpec"]
