"""`GET /`: the whole board on one standalone page (status, week, month, grid, datastores, upcoming).

Pure view-model builder; `templates/page.html` is a full document with inline CSS only (no external assets,
no JavaScript), light and dark by `prefers-color-scheme`, and embeddable in an iframe. The widgets inside are
the same view records and templates the Glance endpoints use, so the page and the widgets never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..model import Board, Severity
from . import fmt
from .views import SEVERITY_CLASS, source_label, source_problem, widget_state
from .widgets import calendar, datastores, status
from .widgets._spec import View


@dataclass(frozen=True, slots=True)
class SourceLine:
    label: str
    problem: str | None
    last_success: str


@dataclass(frozen=True, slots=True)
class PageView:
    overall: str
    overall_css: str
    generated: str
    zone: str
    demo_note: str | None
    problems: tuple[str, ...]  # failing or stale sources, shown as a banner
    sources: tuple[SourceLine, ...]
    counts: str
    panels: tuple[tuple[str, View], ...]  # (title, widget view), main column first
    side: tuple[tuple[str, View], ...]
    links: tuple[tuple[str, str], ...]  # (label, href) of the machine-readable views, for the footer


OVERALL_WORD: dict[Severity, str] = {
    Severity.OK: "all good",
    Severity.WARNING: "needs a look",
    Severity.CRITICAL: "needs attention",
    Severity.UNKNOWN: "unknown",
}


FOOTER_LINKS = (("Status JSON", "/api/v1/status"), ("Calendar feed (ICS)", "/calendar.ics"), ("Health", "/health"))


Panels = tuple[tuple[tuple[str, View], ...], tuple[tuple[str, View], ...]]  # (title, widget view): main, side


def panels_of(board: Board, zone: ZoneInfo) -> Panels:
    """The widgets the page shows: its main column, then its side column."""
    main: tuple[tuple[str, View], ...] = (
        ("Backups", status.build_view(board, zone, status.Params(column="full"))),
        ("This week", calendar.build_view(board, zone, calendar.Params(view="week", column="full"))),
        ("This month", calendar.build_view(board, zone, calendar.Params(view="month", column="full"))),
        ("By service", calendar.build_view(board, zone, calendar.Params(view="grid", column="full"))),
    )
    side: tuple[tuple[str, View], ...] = (
        ("Datastores", datastores.build_view(board, zone, datastores.Params())),
        ("Next runs", calendar.build_view(board, zone, calendar.Params(view="upcoming", n=10))),
    )
    return main, side


def panels_read(board: Board) -> Hashable:
    """What the panels read of a board's sources: their notices (a source failing, not read yet, or read in part)
    and each source's kind (in the names they give). A poll with no news changes the sources' times only: while
    this stays the same, so do the panels of one board."""
    return widget_state(board), tuple((s.name, s.kind) for s in board.sources)


def build_page(
    board: Board,
    zone: ZoneInfo,
    demo_note: str | None,
    link: Callable[[str], str] = lambda path: path,
    *,
    panels: bool = True,
) -> PageView:
    """`link` turns a route ("/calendar.ics") into the href a browser should follow (public URL, sub-path).
    `panels=False`: the page around its widgets only (rendered apart, `Renderer.page`)."""
    now = board.generated_at
    problems = (*board.notices, *(p for s in board.sources if (p := source_problem(s, now)) is not None))
    sources = tuple(
        SourceLine(
            label=source_label(s),
            problem=source_problem(s, now),
            last_success=fmt.clock(s.last_success_at, zone, now=now) if s.last_success_at else "never",
        )
        for s in board.sources
    )
    bad = sum(1 for v in board.verdicts if v.severity is not Severity.OK)
    counts = f"{len(board.verdicts)} services, {bad} need attention" if bad else f"{len(board.verdicts)} services"
    main, side = panels_of(board, zone) if panels else ((), ())
    return PageView(
        overall=OVERALL_WORD[board.overall],
        overall_css=SEVERITY_CLASS[board.overall],
        generated=fmt.stamp(now, zone),
        zone=str(zone.key),
        demo_note=demo_note,
        problems=problems,
        sources=sources,
        counts=counts,
        panels=main,
        side=side,
        links=tuple((label, link(path)) for label, path in FOOTER_LINKS),
    )


__all__ = ["PageView", "Panels", "build_page", "panels_of", "panels_read"]
