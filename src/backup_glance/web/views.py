"""Shared view pieces: status -> word / colour class / icon, and the widget state (content, notice, error).

Like Glance's `statusCodeToText` / `statusCodeToStyle`: small pure lookups that format a verdict health already
made. Nothing here re-decides a status; a new `Status` without a word here fails a test (and still renders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import Board, Protection, RunOutcome, Severity, SlotOutcome, SourceState, Status
from . import fmt

STATUS_WORD: dict[Status, str] = {
    Status.OK: "ok",
    Status.RUNNING: "running",
    Status.GAPS: "gaps",
    Status.UNVERIFIED: "unverified",
    Status.LATE: "late",
    Status.FAILED: "failed",
    Status.VERIFY_FAILED: "verify failed",
    Status.UNPROTECTED: "unprotected",
    Status.OUT_OF_ORDER: "out of order",
    Status.AT_RISK: "at risk",
    Status.UNKNOWN: "unknown",
    Status.SILENCED: "silenced",
}

# Glance has no amber: "bkg-warn" is defined once in the fragment's scoped <style> from its own variables.
SEVERITY_CLASS: dict[Severity, str] = {
    Severity.OK: "color-positive",
    Severity.WARNING: "bkg-warn",
    Severity.CRITICAL: "color-negative",
    Severity.UNKNOWN: "color-subdue",
}

RUN_MARK: dict[RunOutcome, str] = {
    RunOutcome.OK: "✓",
    RunOutcome.WARNING: "!",
    RunOutcome.FAILED: "✗",
    RunOutcome.RUNNING: "▸",
    RunOutcome.UNKNOWN: "?",
}

RUN_CLASS: dict[RunOutcome, str] = {
    RunOutcome.OK: "color-positive",
    RunOutcome.WARNING: "bkg-warn",
    RunOutcome.FAILED: "color-negative",
    RunOutcome.RUNNING: "color-primary",
    RunOutcome.UNKNOWN: "color-subdue",
}

SLOT_WORD: dict[SlotOutcome, str] = {
    SlotOutcome.SUCCEEDED: "succeeded",
    SlotOutcome.FAILED: "failed",
    SlotOutcome.MISSED: "missed",
    SlotOutcome.RUNNING: "running",
    SlotOutcome.UPCOMING: "upcoming",
}

# Short CSS class per slot outcome; defined in the scoped <style> of the calendar templates.
SLOT_CLASS: dict[SlotOutcome, str] = {
    SlotOutcome.SUCCEEDED: "bkg-ok",
    SlotOutcome.FAILED: "bkg-fail",
    SlotOutcome.MISSED: "bkg-miss",
    SlotOutcome.RUNNING: "bkg-run",
    SlotOutcome.UPCOMING: "bkg-next",
}

# Worst first, to pick one mark for a day with several runs.
SLOT_RANK: dict[SlotOutcome, int] = {
    SlotOutcome.FAILED: 0,
    SlotOutcome.MISSED: 1,
    SlotOutcome.RUNNING: 2,
    SlotOutcome.SUCCEEDED: 3,
    SlotOutcome.UPCOMING: 4,
}


# A source whose last good poll is older than this many poll intervals counts as stale on the widgets.
def status_word(status: Status) -> str:
    """The word for a status. A status added to the model later still renders (as its value), and a test
    fails until it gets a proper word here.

    >>> status_word(Status.VERIFY_FAILED)
    'verify failed'
    """
    return STATUS_WORD.get(status) or status.value.replace("_", " ")


def outcome_text(outcome: SlotOutcome, detail: str) -> str:
    """A slot's outcome word with its detail, without saying the word twice when the detail already starts with it.

    >>> outcome_text(SlotOutcome.FAILED, "failed: 104"), outcome_text(SlotOutcome.FAILED, "exit 1")
    ('failed: 104', 'failed: exit 1')
    >>> outcome_text(SlotOutcome.MISSED, "")
    'missed'
    """
    word = SLOT_WORD[outcome]
    if not detail:
        return word
    if detail.casefold().startswith(word.casefold()):
        return detail
    return f"{word}: {detail}"


# An offsite copy this close behind the newest copy reads as current ("1 offsite"), not "0m behind".
LAG_SHOWN_FROM = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ProtectionText:
    """A service's protection in words, one piece per fact; an empty piece is a fact nobody knows."""

    count: int  # current copies
    copies: str  # "2 copies", "no recent copy"
    offsite: str  # "1 offsite 3h behind", "no offsite", "offsite unknown"
    encrypted: bool | None
    restored_ago: str  # "41d" since the last successful restore test; "" for none

    @property
    def line(self) -> str:
        """ "2 copies · 1 offsite 3h behind · encrypted · restored 41d ago" """
        encryption = {True: "encrypted", False: "unencrypted", None: ""}[self.encrypted]
        restored = f"restored {self.restored_ago} ago" if self.restored_ago else ""
        return " · ".join(part for part in (self.copies, self.offsite, encryption, restored) if part)


def protection_text(p: Protection | None, now: datetime) -> ProtectionText | None:
    """What health found about a service's copies, encryption and restore tests, formatted (never judged here:
    whether any of it falls short is in the verdict's risks).

    >>> from datetime import UTC
    >>> from backup_glance.model import Copy
    >>> now = datetime(2026, 7, 1, 12, tzinfo=UTC)
    >>> local = Copy("main", "pbs", False, now - timedelta(hours=1), encrypted=True)
    >>> far = Copy("b2", "restic", True, now - timedelta(hours=4), encrypted=True)
    >>> p = Protection((local, far), offsite_lag=timedelta(hours=3), encrypted=True,
    ...                last_restore_test_at=now - timedelta(days=41))
    >>> protection_text(p, now).line
    '2 copies · 1 offsite 3h behind · encrypted · restored 41d ago'
    >>> protection_text(Protection((local,)), now).line
    '1 copy · no offsite'
    >>> old = Copy("main", "pbs", False, now - timedelta(days=90), current=False)
    >>> protection_text(Protection((old,)), now).line
    'no recent copy'
    """
    if p is None:
        return None
    count, offsite = p.copy_count, p.offsite_count
    copies = f"{count} cop{'y' if count == 1 else 'ies'}" if count else ("no recent copy" if p.copies else "no copy")
    if offsite:
        behind = p.offsite_lag if p.offsite_lag is not None and p.offsite_lag >= LAG_SHOWN_FROM else None
        offsite_text = f"{offsite} offsite" + (f" {_largest_unit(behind)} behind" if behind else "")
    elif any(not c.known for c in p.copies):  # e.g. a remote the token may not scan
        offsite_text = "offsite unknown"
    else:
        offsite_text = "no offsite" if count else ""
    restored = _largest_unit(now - p.last_restore_test_at) if p.last_restore_test_at is not None else ""
    return ProtectionText(count, copies, offsite_text, p.encrypted, restored)


def _largest_unit(delta: timedelta) -> str:
    return fmt.span(delta).split()[0]


def status_icon(status: Status, severity: Severity) -> str:
    """Icon name for a status (see `templates/_icons.html`).

    >>> status_icon(Status.RUNNING, Severity.OK), status_icon(Status.LATE, Severity.CRITICAL)
    ('running', 'critical')
    """
    if status is Status.RUNNING:
        return "running"
    if status is Status.SILENCED:
        return "silenced"
    return severity.value


def status_class(status: Status, severity: Severity) -> str:
    """
    >>> status_class(Status.GAPS, Severity.WARNING), status_class(Status.SILENCED, Severity.OK)
    ('bkg-warn', 'color-subdue')
    """
    if status is Status.RUNNING:
        return "color-primary"
    if status is Status.SILENCED:
        return "color-subdue"
    return SEVERITY_CLASS[severity]


def source_label(state: SourceState) -> str:
    """How a source is named to a person: "PBS 'pbs-main'".

    >>> from datetime import timedelta
    >>> source_label(SourceState(name="pbs-main", kind="pbs", poll_interval=timedelta(minutes=5)))
    "PBS 'pbs-main'"
    """
    kind = {"databasement": "Databasement", "backrest": "Backrest"}.get(state.kind, state.kind.upper())
    return f"{kind} '{state.name}'"


def source_problem(state: SourceState, now: datetime) -> str | None:
    """One line about a failing source, or one that could only be read in part; None when it is fine.

    Source errors already start with "<kind> '<name>': " (errors.SourceError); that prefix is replaced by the
    friendlier label so the name is not said twice.

    >>> from datetime import UTC, timedelta
    >>> s = SourceState(name="pbs-main", kind="pbs", poll_interval=timedelta(minutes=5),
    ...                 error="pbs 'pbs-main': token rejected (HTTP 401)")
    >>> source_problem(s, datetime(2026, 1, 1, tzinfo=UTC))
    "PBS 'pbs-main': token rejected (HTTP 401)"
    """
    label = source_label(state)
    if state.error:
        message = state.error
        prefix = f"{state.kind} '{state.name}': "
        if message.lower().startswith(prefix.lower()):
            message = message[len(prefix) :]
        return f"{label}: {message}"
    if state.last_success_at is None:
        return f"{label}: not polled yet"
    problems = state.observation.problems if state.observation is not None else ()
    if problems:  # partial content: part of the source could not be read, the rest is on the board
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{label}: {problems[0]}{more}"
    return None


@dataclass(frozen=True, slots=True)
class WidgetState:
    """Glance's three widget states: content; content with a notice (a source failing); error (nothing to show)."""

    notices: tuple[str, ...] = ()
    error: str | None = None

    @property
    def has_content(self) -> bool:
        return self.error is None


def widget_state(board: Board) -> WidgetState:
    """Notices for failing sources; an error only when no source has ever been read."""
    problems = (
        *board.notices,
        *(p for s in board.sources if (p := source_problem(s, board.generated_at)) is not None),
    )
    never_read = all(s.observation is None and s.last_success_at is None for s in board.sources)
    if board.sources and never_read and not board.verdicts and any(s.error for s in board.sources):
        return WidgetState(notices=problems, error="no source could be read yet")
    if not board.sources and not board.verdicts:
        return WidgetState(error="no data yet: waiting for the first poll")
    return WidgetState(notices=problems)


__all__ = [
    "RUN_CLASS",
    "RUN_MARK",
    "SEVERITY_CLASS",
    "SLOT_CLASS",
    "SLOT_RANK",
    "SLOT_WORD",
    "STATUS_WORD",
    "WidgetState",
    "outcome_text",
    "source_label",
    "source_problem",
    "status_class",
    "status_icon",
    "status_word",
    "widget_state",
]
