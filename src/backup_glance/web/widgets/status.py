"""Status widget: one row per service with its verdict, last success, snapshot count and next run.

Pure view-model builder; `templates/widget-status.html` lays it out. Problems come first (model.SEVERITY_RANK),
then by name. Parameters: `column=small|full`, `status=problems`, `source=NAME`, `limit=N`.

Sample row (small column): [!] vault / late • ✓ 26h • 14 snapshots • next in 3h
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ...model import SEVERITY_RANK, Board, Severity, Verdict
from .. import fmt
from ..params import choice, count, text
from ..views import WidgetState, status_class, status_icon, status_word, widget_state
from ._spec import WidgetSpec


@dataclass(frozen=True, slots=True)
class Params:
    column: str = "small"
    problems_only: bool = False
    source: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Moment:
    """An instant prepared for a template: epoch for Glance's JS, fallback text, full local stamp."""

    epoch: int
    text: str
    stamp: str


@dataclass(frozen=True, slots=True)
class StatusRow:
    service_id: str
    name: str
    word: str
    css: str
    icon: str
    is_problem: bool
    reasons: tuple[str, ...]
    detail: str  # first reason of a problem, or the silence reason, for the full column
    last_success: Moment | None
    next_run: Moment | None
    snapshot_count: int


@dataclass(frozen=True, slots=True)
class StatusView:
    state: WidgetState
    rows: tuple[StatusRow, ...]
    column: str
    collapse_after: int | None
    total: int
    problem_count: int
    problems_only: bool
    template: str = "widget-status.html"


def parse_params(query: Mapping[str, str]) -> Params:
    return Params(
        column=choice(query, "column", ("small", "full"), "small"),
        problems_only=choice(query, "status", ("all", "problems"), "all") == "problems",
        source=text(query, "source"),
        limit=count(query, "limit", None),
    )


def sort_key(v: Verdict) -> tuple[int, str, str]:
    return (SEVERITY_RANK[v.severity], v.name.casefold(), v.service_id)


def moment(at: datetime | None, board: Board, zone: ZoneInfo) -> Moment | None:
    if at is None:
        return None
    return Moment(fmt.epoch(at), fmt.relative(at, board.generated_at), fmt.stamp(at, zone))


def build_row(v: Verdict, board: Board, zone: ZoneInfo) -> StatusRow:
    is_problem = v.severity is not Severity.OK
    if is_problem and v.reasons:
        detail = v.reasons[0]
    elif v.silence is not None:
        detail = f"silenced: {v.silence.reason}"
    else:
        detail = ""  # an ok row needs no second line; it keeps the full column compact
    return StatusRow(
        service_id=v.service_id,
        name=v.name,
        word=status_word(v.status),
        css=status_class(v.status, v.severity),
        icon=status_icon(v.status, v.severity),
        is_problem=is_problem,
        reasons=v.reasons,
        detail=detail,
        last_success=moment(v.last_success_at, board, zone),
        next_run=moment(v.next_run_at, board, zone),
        snapshot_count=v.snapshot_count,
    )


def build_view(board: Board, zone: ZoneInfo, params: Params) -> StatusView:
    verdicts = [v for v in board.verdicts if params.source is None or params.source in v.sources]
    total = len(verdicts)
    problems = [v for v in verdicts if v.severity is not Severity.OK]
    shown = problems if params.problems_only else verdicts
    rows = tuple(build_row(v, board, zone) for v in sorted(shown, key=sort_key))
    collapse = params.limit if params.limit is not None and params.limit < len(rows) else None
    return StatusView(
        state=widget_state(board),
        rows=rows,
        column=params.column,
        collapse_after=collapse,
        total=total,
        problem_count=len(problems),
        problems_only=params.problems_only,
    )


WIDGET = WidgetSpec(name="status", title="Backups", parse=parse_params, build=build_view)

__all__ = ["WIDGET", "Params", "StatusRow", "StatusView", "build_row", "build_view", "parse_params"]
