"""What every calendar view shares: runs ready for a popover, non-ok services as marks, routine jobs, the legend.

Nothing here judges: a slot's outcome, its problems (a snapshot that failed verification, a run out of order)
and its overlaps come from health; a service's mark is its verdict. These helpers only decide how to show them,
so that no calendar view can contradict the status widget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ...model import STATUS_SEVERITY, Board, CalendarSlot, Severity, SlotOutcome, Status, Verdict
from .. import fmt
from ..views import SLOT_CLASS, SLOT_RANK, outcome_text, status_class, status_icon, status_word
from ._names import Names, names_for

# One glyph per outcome where a word does not fit (agenda lines, month cells); colour is never the only sign.
GLYPH: dict[SlotOutcome, str] = {
    SlotOutcome.SUCCEEDED: "✓",
    SlotOutcome.FAILED: "✗",
    SlotOutcome.MISSED: "○",
    SlotOutcome.RUNNING: "▸",
    SlotOutcome.UPCOMING: "·",
}
GLYPH_CLASS: dict[SlotOutcome, str] = {
    SlotOutcome.SUCCEEDED: "color-positive",
    SlotOutcome.FAILED: "color-negative",
    SlotOutcome.MISSED: "bkg-warn",
    SlotOutcome.RUNNING: "color-primary",
    SlotOutcome.UPCOMING: "color-subdue",
}
# Legend order and wording; only the entries a view actually shows are listed.
LEGEND: tuple[tuple[str, str], ...] = (
    ("bkg-ok", "ok"),
    ("bkg-fail", "failed"),
    ("bkg-miss", "missed"),
    ("bkg-run", "running"),
    ("bkg-next", "planned"),
    ("bkg-flag", "ran, with a problem for a service"),
    ("bkg-ovl", "overlaps a run on the same datastore or guest"),
)
BAD = (SlotOutcome.FAILED, SlotOutcome.MISSED)
MAX_TEXT = 160  # a source's message in a popover; the full text is in the JSON and the ICS feed
MAX_COVERS = 6  # services (or overlapping jobs, or services' problems) named in a run's popover before "+N"


@dataclass(frozen=True, slots=True)
class Mark:
    """A service whose verdict is not ok, as every calendar view marks it."""

    service_id: str
    name: str
    word: str
    css: str
    icon: str
    cause: str


@dataclass(frozen=True, slots=True)
class Run:
    """One slot of a job, ready to draw and to explain in a popover."""

    key: str
    label: str
    start: datetime  # aware, display zone
    end: datetime
    clock: str  # "02:00"
    when: str  # "Thu 26 Nov 02:00"
    outcome: SlotOutcome
    css: str  # slot class (bkg-ok, ...), plus bkg-flag / bkg-ovl
    glyph: str
    glyph_css: str
    text: str  # "failed: exit 2", "planned", ...
    length: str  # "2m"
    lines: tuple[tuple[str, str], ...]  # (colour class, text) for the popover
    marks: tuple[Mark, ...]  # non-ok services this run is the cause of
    covers: str = ""  # "vault, caddy +3": the services the job backs up
    after: str = ""  # "databasement": what the run waits for (the services' `after:`)
    cover_count: int = 0

    @property
    def is_plain(self) -> bool:
        """Nothing to point out: it went fine (or is still ahead) and hurt nobody."""
        return self.outcome in (SlotOutcome.SUCCEEDED, SlotOutcome.UPCOMING) and "bkg-flag" not in self.css


def short_cause(verdict: Verdict, zone: ZoneInfo | None = None) -> str:
    """One short line that says why a service is not ok; its full reasons go in a popover.

    >>> v = Verdict("dump", "Dump folder", Status.OUT_OF_ORDER, Severity.WARNING,
    ...             ("Dump folder ran at Thu 26 Nov 02:30 after db failed",))
    >>> short_cause(v)
    'ran at Thu 26 Nov 02:30 after db failed'
    """
    status = verdict.status
    first = verdict.reasons[0] if verdict.reasons else ""
    if status is Status.UNPROTECTED:
        return "no enabled job covers this"
    if status in (Status.VERIFY_FAILED, Status.UNVERIFIED):
        return "newest snapshot"
    if status is Status.LATE:
        missed = len(verdict.missed_slots) + 1
        return f"{missed} runs missed" if missed > 1 else "last due run missed"
    if status is Status.GAPS:
        return f"{len(verdict.missed_slots)} runs missed" if len(verdict.missed_slots) != 1 else "1 run missed"
    if status is Status.FAILED:
        at = verdict.last_attempt_at
        return (
            f"{at.astimezone(zone):%a %H:%M} run failed" if at is not None and zone is not None else "last run failed"
        )
    if status is Status.SILENCED and verdict.silence is not None:
        return verdict.silence.reason
    if status is Status.OUT_OF_ORDER and first.startswith(verdict.name + " "):
        return first[len(verdict.name) + 1 :]
    if status is Status.RUNNING:
        return "backup in progress"
    return first


def mark_of(verdict: Verdict, names: Names, zone: ZoneInfo | None = None) -> Mark:
    return Mark(
        service_id=verdict.service_id,
        name=names.service(verdict.service_id, verdict.name),
        word=status_word(verdict.status),
        css=status_class(verdict.status, verdict.severity),
        icon=status_icon(verdict.status, verdict.severity),
        cause=short_cause(verdict, zone),
    )


def marks_by_service(board: Board, names: Names, source: str | None, zone: ZoneInfo) -> dict[str, Mark]:
    """The services a calendar must mark: every one whose verdict is not ok (optionally of one source)."""
    return {
        v.service_id: mark_of(v, names, zone)
        for v in board.verdicts
        if v.severity is not Severity.OK and (source is None or source in v.sources)
    }


def service_outcome(slot: CalendarSlot, service_id: str) -> SlotOutcome | None:
    """What a slot meant for one service: its own outcome when health split it, else the slot's; None: no data."""
    for sid, outcome, _ in slot.service_outcomes:
        if sid == service_id:
            return outcome
    return None if slot.service_outcomes else slot.outcome


def hurt(slot: CalendarSlot) -> set[str]:
    """The services this slot did wrong by: they failed or missed in it, or it has a problem for them."""
    found = {sid for sid, _, _ in slot.problems}
    if slot.service_outcomes:
        found |= {sid for sid, outcome, _ in slot.service_outcomes if outcome in BAD}
    elif slot.outcome in BAD:
        found |= set(slot.service_ids)
    return found


def flag_class(problems: Iterable[tuple[str, Status, str]]) -> str:
    """bkg-flag plus its colour: critical (a failed verification) or warning (out of order)."""
    severities = {STATUS_SEVERITY[status] for _, status, _ in problems}
    if not severities:
        return ""
    return "bkg-flag bkg-flag-crit" if Severity.CRITICAL in severities else "bkg-flag"


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def overlap_text(slot: CalendarSlot, names: Names, most: int = MAX_COVERS) -> str:
    """ "overlaps a, b +N": the jobs `slot` overlaps, the first `most` by name (hundreds of groups may start
    together)."""
    shown = [names.job(key) for key in slot.overlaps[:most]]
    more = len(slot.overlaps) + slot.more_overlaps - len(shown)
    return "overlaps " + ", ".join(shown) + (f" +{more}" if more > 0 else "")


def run_of(slot: CalendarSlot, board: Board, zone: ZoneInfo, names: Names, marks: dict[str, Mark]) -> Run:
    start = slot.start_at.astimezone(zone)
    end = (slot.start_at + slot.duration).astimezone(zone)
    lines: list[tuple[str, str]] = []
    for sid, outcome, detail in slot.service_outcomes:
        if outcome in BAD:
            lines.append((GLYPH_CLASS[outcome], f"{names.service(sid)}: {_short(outcome_text(outcome, detail))}"))
    for sid, status, text in slot.problems:
        css = status_class(status, STATUS_SEVERITY[status])
        lines.append((css, f"{names.service(sid)}: {_short(text)}"))
    if len(lines) > MAX_COVERS:  # a job failing for 150 guests: the first few, as "covers" names them
        lines[MAX_COVERS:] = [("color-subdue", f"+{len(lines) - MAX_COVERS} more services with a problem in this run")]
    if slot.overlaps:
        lines.append(("bkg-warn", f"{overlap_text(slot, names)} on the same datastore or guest"))
    if slot.after:
        lines.append(("", f"waits for {', '.join(slot.after)}"))
    shown = [names.service(sid) for sid in slot.service_ids[:MAX_COVERS]]
    more = len(slot.service_ids) - len(shown)
    covers = ", ".join(shown) + (f" +{more}" if more > 0 else "")
    css = SLOT_CLASS[slot.outcome]
    flag = flag_class(slot.problems)
    if flag:
        css += " " + flag
    if slot.overlaps:
        css += " bkg-ovl"
    if slot.outcome is SlotOutcome.UPCOMING:
        text = f"planned{': ' + slot.detail if slot.detail else ''}"
    else:
        text = _short(outcome_text(slot.outcome, slot.detail))
    return Run(
        key=slot.job_key,
        label=names.job(slot.job_key, slot.job_name),
        start=start,
        end=end,
        clock=f"{start:%H:%M}",
        when=f"{start:%a} {start.day} {start:%b %H:%M}",
        outcome=slot.outcome,
        css=css,
        glyph=GLYPH[slot.outcome] + ("!" if flag else ""),
        glyph_css=GLYPH_CLASS[slot.outcome] if not flag else ("color-negative" if "crit" in flag else "bkg-warn"),
        text=text,
        length=fmt.span(slot.duration),
        lines=tuple(lines),
        marks=tuple(marks[sid] for sid in sorted(hurt(slot)) if sid in marks),
        covers=covers,
        cover_count=len(slot.service_ids),
        after=", ".join(slot.after),
    )


def routine_jobs(runs_by_day: dict[date, list[Run]]) -> set[str]:
    """Jobs that run on (nearly) every day between their first and last run shown: their successes are folded
    into a count, everything else is listed. A weekly job, or one that runs on the 1st, is never routine."""
    seen: dict[str, set[date]] = {}
    for day, runs in runs_by_day.items():
        for run in runs:
            seen.setdefault(run.key, set()).add(day)
    return {
        key for key, days in seen.items() if len(days) >= 3 and len(days) >= 0.8 * ((max(days) - min(days)).days + 1)
    }


def worst(runs: Iterable[Run]) -> Run | None:
    return min(runs, key=lambda r: (SLOT_RANK[r.outcome], r.is_plain), default=None)


def legend(classes: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The legend entries for the classes a view uses, in a fixed order."""
    used = {part for css in classes for part in css.split()}
    return tuple((css, word) for css, word in LEGEND if css in used)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def runs_by_day(
    board: Board, zone: ZoneInfo, slots: list[CalendarSlot], days: list[date], marks: dict[str, Mark]
) -> dict[date, list[Run]]:
    """Each day's runs, in start order, ready to draw (`days` in the display zone)."""
    names = names_for(board)
    wanted = set(days)
    by_day: dict[date, list[Run]] = {day: [] for day in days}
    for slot in slots:
        day = local_day(slot.start_at, zone)
        if day in wanted:
            by_day[day].append(run_of(slot, board, zone, names, marks))
    for runs in by_day.values():
        runs.sort(key=lambda r: (r.start, r.label.casefold(), r.key))
    return by_day


__all__ = [
    "GLYPH",
    "GLYPH_CLASS",
    "Mark",
    "Run",
    "flag_class",
    "hurt",
    "legend",
    "local_day",
    "mark_of",
    "marks_by_service",
    "routine_jobs",
    "run_of",
    "runs_by_day",
    "service_outcome",
    "short_cause",
    "worst",
]
