"""Status widget: a summary line, the services that need attention (one short cause each), then the healthy ones.

View-model builder; `templates/widget-status.html` lays it out. A row is made from its verdict, display name,
zone and the board's time only: it is reused from the last build while the verdict is the very same object,
the name and zone are the same and its times read the same (`_row`). Problems come first
(model.SEVERITY_RANK), then by name. Parameters: `column=small|full`, `status=problems`, `source=NAME`,
`limit=N` (problem rows before "show more").

A problem row has two lines: the name, then the status word and one short cause ("late · 3 runs missed · last
ok 4d"); every reason is in its popover. A third, quieter line says how the service is protected ("2 copies ·
1 offsite 3h behind · encrypted · restored 41d ago"); healthy rows carry it in their popover, and the full
column gives it columns of its own (copies, encryption, restore test). Healthy services take one line each; in
the small column they are folded into one expandable "13 ok" row, and `status=problems` ends with "+ 13 ok" so
the rest reads as fine, not as unmonitored.

Sample (small column):  7 need attention · 13 ok
                        [!] vault · PBS / late · 3 runs missed · last ok 4d
                            2 copies · 1 offsite 3h behind · encrypted
                        ✓ 13 ok ▸
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ...model import SEVERITY_RANK, Board, Severity, Status, Verdict
from .. import fmt
from ..params import choice, count, text
from ..safe import ERROR_TEXT, each
from ..views import (
    SEVERITY_CLASS,
    ProtectionText,
    WidgetState,
    protection_text,
    status_class,
    status_icon,
    status_word,
    widget_state,
)
from ._marks import short_cause
from ._names import names_for
from ._spec import WidgetSpec

# A healthy row's mark: a glyph, not an icon, so 50 services stay small and each healthy row one line.
OK_GLYPH = {"ok": "✓", "running": "▸", "silenced": "–"}


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
    cause: str  # one short line for a problem; the silence reason for a silenced service; else ""
    last_success: Moment | None
    next_run: Moment | None
    snapshot_count: int
    protection: ProtectionText | None = None  # copies, offsite, encryption, restore test, in words

    @property
    def glyph(self) -> str:
        return OK_GLYPH.get(self.icon, "?")


@dataclass(frozen=True, slots=True)
class StatusView:
    state: WidgetState
    problems: tuple[StatusRow, ...]
    healthy: tuple[StatusRow, ...]  # empty with status=problems; `ok_count` still says how many
    column: str
    collapse_after: int | None
    total: int
    problem_count: int
    ok_count: int
    problems_only: bool
    summary_css: str  # colour of "7 need attention": the worst severity among them
    template: str = "widget-status.html"

    @property
    def rows(self) -> tuple[StatusRow, ...]:
        return self.problems + self.healthy


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
    return None if at is None else _moment(at, board, zone)


def _moment(at: datetime, board: Board, zone: ZoneInfo) -> Moment:
    return Moment(fmt.epoch(at), fmt.relative(at, board.generated_at), fmt.stamp(at, zone))


def build_row(v: Verdict, board: Board, zone: ZoneInfo, moments: dict[datetime, Moment] | None = None) -> StatusRow:
    """`moments`: instants already prepared for this board (2,000 guests of one job share their next run)."""
    is_problem = v.severity is not Severity.OK
    cause = short_cause(v, zone) if is_problem or v.status is Status.SILENCED else ""
    return StatusRow(
        service_id=v.service_id,
        name=names_for(board).service(v.service_id, v.name),
        word=status_word(v.status),
        css=status_class(v.status, v.severity),
        icon=status_icon(v.status, v.severity),
        is_problem=is_problem,
        reasons=v.reasons,
        cause=cause,
        last_success=_prepared(v.last_success_at, board, zone, moments),
        next_run=_prepared(v.next_run_at, board, zone, moments),
        snapshot_count=v.snapshot_count,
        protection=protection_text(v.protection, board.generated_at),
    )


def _prepared(
    at: datetime | None, board: Board, zone: ZoneInfo, moments: dict[datetime, Moment] | None
) -> Moment | None:
    if at is None or moments is None:
        return moment(at, board, zone)
    found = moments.get(at)
    if found is None:
        found = moments[at] = _moment(at, board, zone)
    return found


def error_row(v: Verdict) -> StatusRow:
    """A service whose row could not be built: still listed, as a problem, never silently missing."""
    return StatusRow(
        service_id=v.service_id,
        name=v.name,
        word="error",
        css=status_class(Status.UNKNOWN, Severity.UNKNOWN),
        icon=status_icon(Status.UNKNOWN, Severity.UNKNOWN),
        is_problem=True,
        reasons=(ERROR_TEXT,),
        cause=ERROR_TEXT,
        last_success=None,
        next_run=None,
        snapshot_count=0,
    )


@dataclass(frozen=True, slots=True)
class _Built:
    verdict: Verdict
    zone: ZoneInfo
    row: StatusRow
    # When its "3h ago" texts read as they do: from the board it was built for up to the first one to change.
    since: datetime
    until: datetime


# service id -> its row as last built, for any board: health hands back the very same verdict while nothing about
# a service changed, and its row then stays the same until one of the times it reads as "3h ago" would change.
_built: dict[str, _Built] = {}


def _row(v: Verdict, board: Board, zone: ZoneInfo, moments: dict[datetime, Moment]) -> StatusRow:
    known = _built.get(v.service_id)
    now = board.generated_at
    if (
        known is not None
        and known.verdict is v
        and known.since <= now <= known.until
        and known.zone == zone
        and known.row.name == names_for(board).service(v.service_id, v.name)
        and _same_protection(known.row, v, now)
    ):
        return known.row
    row = build_row(v, board, zone, moments)
    shown = [at for at in (v.last_success_at, v.next_run_at) if at is not None]
    until = min((fmt.relative_until(at, now) for at in shown), default=datetime.max.replace(tzinfo=UTC))
    _built[v.service_id] = _Built(v, zone, row, now, until)
    return row


def _same_protection(row: StatusRow, v: Verdict, now: datetime) -> bool:
    """Whether the row's protection line, which says how long ago a restore was tested, reads the same at `now`
    (`protection_text` is the only place it is made)."""
    restored = v.protection.last_restore_test_at if v.protection is not None else None
    return restored is None or row.protection is None or row.protection == protection_text(v.protection, now)


def _forget_rows_of(board: Board) -> None:
    """Rows of services no longer on the board go (a config change, a guest removed)."""
    if len(_built) > 2 * len(board.verdicts) + 100:
        present = {v.service_id for v in board.verdicts}
        for gone in [sid for sid in list(_built) if sid not in present]:
            _built.pop(gone, None)


def build_view(board: Board, zone: ZoneInfo, params: Params) -> StatusView:
    verdicts = [v for v in board.verdicts if params.source is None or params.source in v.sources]
    moments: dict[datetime, Moment] = {}
    _forget_rows_of(board)
    rows = each(
        sorted(verdicts, key=sort_key),
        lambda v: _row(v, board, zone, moments),
        fallback=error_row,
        what="service",
        key=lambda v: v.service_id,
    )
    problems = tuple(r for r in rows if r.is_problem)
    healthy = tuple(r for r in rows if not r.is_problem)
    collapse = params.limit if params.limit is not None and params.limit < len(problems) else None
    worst = min(
        (v.severity for v in verdicts if v.severity is not Severity.OK), key=SEVERITY_RANK.__getitem__, default=None
    )
    return StatusView(
        state=widget_state(board),
        problems=problems,
        healthy=() if params.problems_only else healthy,
        column=params.column,
        collapse_after=collapse,
        total=len(rows),
        problem_count=len(problems),
        ok_count=len(healthy),
        problems_only=params.problems_only,
        summary_css=SEVERITY_CLASS[worst] if worst is not None else "color-positive",
    )


WIDGET = WidgetSpec(name="status", title="Backups", parse=parse_params, build=build_view)

__all__ = ["WIDGET", "Params", "StatusRow", "StatusView", "build_row", "build_view", "parse_params"]
