"""Datastores widget: usage bar, "full in N days", dedup factor and the last GC / prune / verify / sync run.

Pure view-model builder; `templates/widget-datastores.html` lays it out with Glance's `progress-bar` markup.
Maintenance runs are matched to a datastore by `job.store == datastore.name` on the same source.

Sample (one datastore):  main  pbs-main / [██████░░░] 3.10 TiB of 4.00 TiB (78%) • full in 41d • dedup ×7.3
                         GC ✓ 9h • prune ✓ 9h • verify ✗ 2d • sync ✓ 1h
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ...model import Board, Datastore, DatastoreView, JobKind, JobView, Severity
from .. import fmt
from ..params import choice, text
from ..safe import ERROR_TEXT, each
from ..views import RUN_CLASS, RUN_MARK, SEVERITY_CLASS, WidgetState, widget_state
from ._spec import WidgetSpec
from .status import Moment, moment

# Maintenance kinds shown per datastore, in this order, with their label.
MAINTENANCE: tuple[tuple[JobKind, str], ...] = (
    (JobKind.GC, "GC"),
    (JobKind.PRUNE, "prune"),
    (JobKind.VERIFY, "verify"),
    (JobKind.SYNC, "sync"),
)


@dataclass(frozen=True, slots=True)
class Params:
    column: str = "small"
    source: str | None = None


@dataclass(frozen=True, slots=True)
class TaskLine:
    label: str
    mark: str
    css: str
    at: Moment | None
    title: str


@dataclass(frozen=True, slots=True)
class DatastoreCard:
    name: str
    source: str
    percent: int | None
    is_high: bool
    usage: str
    full_in: str | None
    full_css: str
    dedup: str | None
    error: str | None
    maintenance: str | None
    tasks: tuple[TaskLine, ...]


@dataclass(frozen=True, slots=True)
class DatastoresView:
    state: WidgetState
    cards: tuple[DatastoreCard, ...]
    column: str
    template: str = "widget-datastores.html"


def parse_params(query: Mapping[str, str]) -> Params:
    return Params(column=choice(query, "column", ("small", "full"), "small"), source=text(query, "source"))


def _latest(views: list[JobView]) -> JobView | None:
    with_runs = [v for v in views if v.last_run is not None]
    if not with_runs:
        return views[0] if views else None
    return max(with_runs, key=lambda v: v.last_run.started_at if v.last_run else v.job.key)


def task_lines(ds: Datastore, board: Board, zone: ZoneInfo) -> tuple[TaskLine, ...]:
    lines: list[TaskLine] = []
    for kind, label in MAINTENANCE:
        views = [j for j in board.jobs if j.job.kind is kind and j.job.source == ds.source and j.job.store == ds.name]
        view = _latest(views)
        if view is None:
            continue
        run = view.last_run
        if run is None:
            lines.append(TaskLine(label, "–", "color-subdue", None, f"{label}: no run yet"))
            continue
        at = run.ended_at or run.started_at
        title = f"{label} {run.outcome.value} at {fmt.stamp(at, zone)}"
        if run.message:
            title += f": {run.message}"
        lines.append(TaskLine(label, RUN_MARK[run.outcome], RUN_CLASS[run.outcome], moment(at, board, zone), title))
    return tuple(lines)


def _days(days: float) -> str:
    """ "41d"; beyond two years in years, and beyond a century not counted (a PBS estimate for the year 2199).

    >>> _days(41.4), _days(1000), _days(63210)
    ('41d', '3y', 'over 100y')
    """
    if days < 730:
        return f"{days:.0f}d"
    return f"{days / 365.25:.0f}y" if days < 36525 else "over 100y"


def build_card(view: DatastoreView, board: Board, zone: ZoneInfo) -> DatastoreCard:
    ds, fraction, days = view.datastore, view.used_fraction, view.full_in_days
    concern = SEVERITY_CLASS[view.severity] if view.severity is not Severity.OK else ""
    if days is None:
        full_in, full_css = ("usage flat", "color-subdue") if ds.usage_is_flat else (None, "")
    else:
        full_in, full_css = f"full in {_days(days)}", concern
    if fraction is None:
        usage = f"{fmt.size(ds.used_bytes)} used" if ds.used_bytes is not None else "usage unknown"
    else:
        usage = f"{fmt.size(ds.used_bytes)} of {fmt.size(ds.total_bytes)} ({fmt.percent(fraction)})"
    return DatastoreCard(
        name=ds.name,
        source=ds.source,
        percent=None if fraction is None else max(0, min(100, round(fraction * 100))),
        is_high=view.severity is not Severity.OK and fraction is not None,
        usage=usage,
        full_in=full_in,
        full_css=full_css,
        dedup=f"dedup ×{ds.dedup_factor:.1f}" if ds.dedup_factor else None,
        error=ds.error,
        maintenance=ds.maintenance,
        tasks=task_lines(ds, board, zone),
    )


def error_card(view: DatastoreView) -> DatastoreCard:
    ds = view.datastore
    return DatastoreCard(ds.name, ds.source, None, False, "", None, "", None, ERROR_TEXT, None, ())


def build_view(board: Board, zone: ZoneInfo, params: Params) -> DatastoresView:
    stores = [d for d in board.datastores if params.source is None or d.datastore.source == params.source]
    stores.sort(key=lambda d: (d.datastore.source.casefold(), d.datastore.name.casefold()))
    cards = tuple(
        each(
            stores,
            lambda d: build_card(d, board, zone),
            fallback=error_card,
            what="datastore",
            key=lambda d: d.datastore.key,
        )
    )
    return DatastoresView(state=widget_state(board), cards=cards, column=params.column)


WIDGET = WidgetSpec(name="datastores", title="Datastores", parse=parse_params, build=build_view)

__all__ = ["WIDGET", "DatastoreCard", "DatastoresView", "Params", "build_view", "parse_params"]
