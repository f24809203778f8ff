"""What to tell one target about one board: pure, no I/O, no clock (every instant is passed in).

Verdicts are health's; this only compares them with what the target was already told (`Announced`, per item:
"service:ID" or "source:NAME") and decides which lines a message needs:

- a service whose status turns into a problem at or above the target's severity (NEW), or moves between two
  such problems (CHANGED); `unknown` alerts at either severity (nobody can tell whether that backup works);
- a service that leaves the alerting set after it was announced (RECOVERED), once; one that was never announced
  never gets a recovery line;
- a source that stops answering (DOWN: its error plus the services it leaves unknown, which get no line of their
  own) and that answers again (UP). "Stopped answering" is health's rule for unknown verdicts: the latest poll
  failed, and it never answered or last answered more than two poll intervals ago;
- REMINDER lines for what is still open once `repeat` has passed since it was last said.

`running` (a backup in progress: the announced state waits for its outcome) and `silenced` never alert, and
nothing is decided before the first complete board (every source has answered or failed once), so the
"unknown" of a source still being polled for the first time never alerts either.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ..model import STATUS_SEVERITY, Board, Severity, SourceState, Status, Verdict

DOWN = "down"  # the announced status of a source that stopped answering
SERVICE = "service:"
SOURCE = "source:"
QUIET_STATUSES = frozenset({Status.OK, Status.RUNNING, Status.SILENCED})
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """`text` with every lone surrogate as U+FFFD. A source's JSON may carry one ("\\udcff"); SQLite, e-mail and
    HTTP headers take only valid UTF-8, and one such name in the history database's transaction would fail
    every announcement of every target.

    >>> valid_text("vm-\\udcff")
    'vm-\ufffd'
    """
    if text.isascii():  # O(1) in CPython (a flag of the string): the policy's hot path pays nothing for the rest
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


def _item(prefix: str, name: str) -> str:
    """The key of a service or source in the announced state, the same in memory as in the database."""
    return prefix + valid_text(name)


class Change(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    RECOVERED = "recovered"
    DOWN = "down"
    UP = "up"
    REMINDER = "reminder"


@dataclass(frozen=True, slots=True)
class Announced:
    """What a target was last told about one item."""

    status: str  # a Status value, or DOWN for a source
    detail: str  # the reason (or the source's error) at the time
    announced_at: datetime
    reminded_at: datetime  # when it was last said: the announcement or the latest reminder


@dataclass(frozen=True, slots=True)
class Rule:
    """One target's taste: the lowest severity that alerts, reminders, and whether it gets alerts at all."""

    min_severity: Severity = Severity.CRITICAL
    repeat: timedelta | None = None
    alerts: bool = True


@dataclass(frozen=True, slots=True)
class Line:
    change: Change
    item: str
    name: str
    status: str  # the current status (a Status value, DOWN, or "ok" for a source that answers again)
    reason: str
    severity: Severity  # of the current status
    previous: str | None = None  # CHANGED and RECOVERED: what was announced before
    since: datetime | None = None  # REMINDER: when it was first announced
    riders: tuple[str, ...] = ()  # DOWN: the names of the services it leaves unknown


@dataclass(frozen=True, slots=True)
class Decision:
    lines: tuple[Line, ...] = ()
    upserts: dict[str, Announced] = field(default_factory=dict)
    deletes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.lines or self.upserts or self.deletes)


def is_complete(board: Board) -> bool:
    """Every source has answered or failed at least once: the first board worth judging changes on."""
    return all(state.last_attempt_at is not None for state in board.sources)


def is_down(state: SourceState, now: datetime) -> bool:
    """The source stopped answering, as health counts it for unknown verdicts (see module docstring)."""
    if state.error is None:
        return False
    return state.last_success_at is None or now - state.last_success_at > 2 * state.poll_interval


def alerting_statuses(rule: Rule) -> frozenset[Status]:
    """The statuses that alert under `rule`: at or above its severity, and always `unknown`."""
    wanted = {Severity.CRITICAL, Severity.UNKNOWN}
    if rule.min_severity is Severity.WARNING:
        wanted.add(Severity.WARNING)
    return frozenset(s for s in Status if s not in QUIET_STATUSES and STATUS_SEVERITY[s] in wanted)


class _Names:
    """A service's name in a message; with its sources when another service on the board has the same name (two
    Backrest sources each with a plan `vault`: "vault (Backrest)" twice said nothing of which one failed)."""

    def __init__(self, board: Board) -> None:
        self._verdicts = board.verdicts
        self._twice: set[str] | None = None  # names shared by two services: counted once a line needs a name

    def __call__(self, verdict: Verdict) -> str:
        if self._twice is None:
            counts = Counter(v.name for v in self._verdicts)
            self._twice = {name for name, count in counts.items() if count > 1}
        if verdict.name in self._twice and verdict.sources:
            return f"{verdict.name} · {', '.join(verdict.sources)}"
        return verdict.name


def decide(board: Board, announced: Mapping[str, Announced], rule: Rule, now: datetime) -> Decision:
    """The lines one target needs for `board` at `now`, and how its announced state changes with them.

    Call only with a complete board (`is_complete`). Cheap when nothing changed: one dict lookup per service.
    """
    if not rule.alerts:
        return Decision()
    at = board.generated_at
    down = {s.name: s for s in board.sources if is_down(s, at)}
    alerting = alerting_statuses(rule)
    lines: list[Line] = []
    upserts: dict[str, Announced] = {}
    deletes: list[str] = []
    riders: dict[str, list[str]] = {}
    seen: set[str] = set()
    name_of = _Names(board)
    for verdict in board.verdicts:
        item = _item(SERVICE, verdict.service_id)
        seen.add(item)
        status = verdict.status
        before = announced.get(item)
        if status is Status.UNKNOWN and down:
            carrier = _carrier(verdict, down)
            if carrier is not None:  # said once, on its source's line; its own state waits for the source
                riders.setdefault(carrier, []).append(name_of(verdict))
                continue
        if status in alerting:
            if before is not None and before.status == status.value:
                continue
            reason = _reason(verdict)
            change = Change.NEW if before is None else Change.CHANGED
            previous = None if before is None else before.status
            lines.append(Line(change, item, name_of(verdict), status.value, reason, verdict.severity, previous))
            upserts[item] = Announced(status.value, reason, now, now)
        elif before is not None and status is not Status.RUNNING:
            line = Line(Change.RECOVERED, item, name_of(verdict), status.value, _reason(verdict), verdict.severity)
            lines.append(_with_previous(line, before.status))
            deletes.append(item)
    for name, state in down.items():
        item = _item(SOURCE, name)
        seen.add(item)
        if item not in announced:
            error = state.error or ""
            names = tuple(sorted(riders.get(name, ()), key=str.casefold))
            lines.append(Line(Change.DOWN, item, name, DOWN, error, Severity.UNKNOWN, riders=names))
            upserts[item] = Announced(DOWN, error, now, now)
    for item, before in announced.items():
        if item.startswith(SOURCE) and item not in seen:
            name = item.removeprefix(SOURCE)
            lines.append(Line(Change.UP, item, name, "ok", "answers again", Severity.OK, previous=before.status))
            deletes.append(item)
        elif item.startswith(SERVICE) and item not in seen:
            deletes.append(item)  # no longer on the board (removed from the config, or gone from discovery)
    lines += _reminders(board, announced, rule, now, down, upserts, deletes, name_of)
    lines.sort(key=_order)
    return Decision(tuple(lines), upserts, tuple(deletes))


def _reminders(
    board: Board,
    announced: Mapping[str, Announced],
    rule: Rule,
    now: datetime,
    down: Mapping[str, SourceState],
    upserts: dict[str, Announced],
    deletes: list[str],
    name_of: Callable[[Verdict], str],
) -> list[Line]:
    if rule.repeat is None:
        return []
    due = [
        item
        for item, before in announced.items()
        # A stamp more than one repeat ahead of now was written while the clock ran ahead: remind now, and the
        # schedule starts again from here (else reminders would wait for the day the clock had shown).
        if abs(now - before.reminded_at) >= rule.repeat and item not in upserts and item not in deletes
    ]
    if not due:
        return []
    verdicts = {_item(SERVICE, v.service_id): v for v in board.verdicts}
    sources = {_item(SOURCE, name): state for name, state in down.items()}
    lines = []
    for item in due:
        before = announced[item]
        if item.startswith(SOURCE):
            state = sources.get(item)
            if state is None:
                continue
            reason, severity = state.error or before.detail, Severity.UNKNOWN
            name = state.name
        else:
            verdict = verdicts.get(item)
            if verdict is None:
                continue
            riding = verdict.status is Status.UNKNOWN and _carrier(verdict, down) is not None
            if riding or verdict.status.value != before.status:
                continue  # its source's reminder speaks for it / a backup in progress: wait for the outcome
            reason, severity, name = _reason(verdict), verdict.severity, name_of(verdict)
        lines.append(Line(Change.REMINDER, item, name, before.status, reason, severity, since=before.announced_at))
        upserts[item] = Announced(before.status, before.detail, before.announced_at, now)
    return lines


def _carrier(verdict: Verdict, down: Mapping[str, SourceState]) -> str | None:
    """The stopped source that leaves this unknown verdict unknown, if one does."""
    for name in verdict.sources:
        if name in down:
            return name
    for reason in verdict.reasons:
        for name in down:
            if f"source '{name}'" in reason:
                return name
    return None


def _reason(verdict: Verdict) -> str:
    return verdict.reasons[0] if verdict.reasons else ""


def _with_previous(line: Line, previous: str) -> Line:
    return Line(line.change, line.item, line.name, line.status, line.reason, line.severity, previous=previous)


_CHANGE_ORDER = {
    Change.DOWN: 0,
    Change.NEW: 0,
    Change.CHANGED: 0,
    Change.REMINDER: 1,
    Change.UP: 2,
    Change.RECOVERED: 2,
}
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.UNKNOWN: 1, Severity.WARNING: 2, Severity.OK: 3}


def _order(line: Line) -> tuple[int, int, str]:
    """New problems first, worst first (a stopped source is unknown: after critical, before warning); then
    reminders; recoveries last; by name within each."""
    return (_CHANGE_ORDER[line.change], _SEVERITY_ORDER[line.severity], line.name.casefold())


def worst(lines: tuple[Line, ...] | list[Line]) -> Severity:
    """The severity a message about these lines carries: its worst problem, or ok when it only recovers."""
    problems = [line.severity for line in lines if line.change not in (Change.RECOVERED, Change.UP)]
    return min(problems, key=_SEVERITY_ORDER.__getitem__) if problems else Severity.OK


def quiet_until(now: datetime, quiet: tuple[time, time] | None, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around `now` end (an aware instant), or None outside them. The span is in `zone`
    and may cross midnight; across a DST change the wall-clock end is kept.

    >>> from datetime import UTC
    >>> quiet_until(datetime(2026, 1, 5, 23, 0, tzinfo=UTC), (time(22), time(7)), ZoneInfo("UTC")).isoformat()
    '2026-01-06T07:00:00+00:00'
    """
    if quiet is None:
        return None
    start, end = quiet
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    day = local.date()
    if start < end:
        inside = start <= clock < end
        end_day = day
    else:  # crosses midnight: from start today to end tomorrow, or from yesterday's start to end today
        inside = clock >= start or clock < end
        end_day = day + timedelta(days=1) if clock >= start else day
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone)


__all__ = [
    "DOWN",
    "Announced",
    "Change",
    "Decision",
    "Line",
    "Rule",
    "alerting_statuses",
    "decide",
    "is_complete",
    "is_down",
    "quiet_until",
    "valid_text",
    "worst",
]
