"""The Glance extension widgets, one module each; `WIDGETS` is the single registry (like Glance's `newWidget`).

Adding a widget means one module with a `WIDGET` spec, one `templates/widget-<name>.html`, and one line here.
"""

from __future__ import annotations

from . import calendar, datastores, status
from ._spec import View, WidgetSpec

WIDGETS: dict[str, WidgetSpec] = {w.name: w for w in (status.WIDGET, datastores.WIDGET, calendar.WIDGET)}

__all__ = ["WIDGETS", "View", "WidgetSpec"]
