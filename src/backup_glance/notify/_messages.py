"""Messages as a person reads them on a phone: a title naming the worst, one line per change, a link to the board.

    alert(lines, zone, base_url)     # Message(title="postgres: failed (+2 more)", body="...", level="critical")
    digest(board, now, base_url)     # counts, every problem, the datastores, the next week's runs
    merge(messages, zone)            # what quiet hours or a target's outage held back, as one message

Plain text only (every Apprise service can show it); names and reasons come from sources, so control
characters and direction overrides become spaces (no forged lines, nothing that reads backwards), invalid
Unicode becomes U+FFFD (e-mail and HTTP headers refuse it), and long ones are cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..health import when
from ..model import SEVERITY_RANK, Board, DatastoreView, Severity, SlotOutcome, Status
from ._policy import Change, Line, valid_text, worst

MAX_LINES = 40  # a message stays readable on a phone; the rest is on the board
MAX_TEXT = 300
DIGEST_RUNS = 15  # jobs in the digest's "next 7 days"
# What piled up while a target was away goes out as one message of at most about this many characters: a day's
# outbox (200 messages) in full would be megabytes, which a proxy refuses (nginx: 1 MB) and no phone shows.
MERGED_TEXT = 16_000
DROPPED = "dropped"  # the kind of the outbox note that stands for messages a full outbox let go
# Control characters, and the direction overrides and isolates that show a line in another order than it reads.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+")
_DROPPED_TITLE = re.compile(r"Backups: (\d+) older messages? not delivered")


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    level: str  # "critical" | "unknown" | "warning" | "ok" | "info": picks the Apprise notify type
    kind: str = "alert"  # "alert" | "digest" | "test"


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """One line of text from anything a source sent.

    >>> clean("pg\\r\\nBcc: x@evil\\u202edeliaf \\udcff")
    'pg Bcc: x@evil deliaf \ufffd'
    """
    flat = _CONTROL.sub(" ", valid_text(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _status_word(status: str) -> str:
    return status.replace("_", " ")


def line_text(line: Line, zone: ZoneInfo, now: datetime) -> str:
    name = clean(line.name, 80)
    reason = clean(line.reason)
    tail = f" — {reason}" if reason else ""
    if line.change is Change.DOWN:
        text = f"source {name} is not answering: {reason}"
        if line.riders:
            shown = ", ".join(clean(r, 60) for r in line.riders[:10])
            more = f" and {len(line.riders) - 10} more" if len(line.riders) > 10 else ""
            text += f" ({len(line.riders)} service{'s' * (len(line.riders) != 1)} unknown: {shown}{more})"
        return text
    if line.change is Change.UP:
        return f"source {name} answers again"
    if line.change is Change.RECOVERED:
        current = "" if line.status == Status.OK.value else f", now {_status_word(line.status)}"
        return f"{name}: recovered{current}{tail}"
    if line.change is Change.REMINDER:
        since = f" since {_when(line.since, zone, now)}" if line.since is not None else ""
        if line.item.startswith("source:"):
            return f"source {name} still not answering{since}: {reason}"
        return f"{name}: still {_status_word(line.status)}{since}{tail}"
    was = f" (was {_status_word(line.previous)})" if line.change is Change.CHANGED and line.previous else ""
    return f"{name}: {_status_word(line.status)}{was}{tail}"


def _title(line: Line) -> str:
    name = clean(line.name, 60)
    if line.change is Change.DOWN:
        return f"source {name} is not answering"
    if line.change is Change.UP:
        return f"source {name} answers again"
    if line.change is Change.RECOVERED:
        return f"{name} recovered"
    if line.change is Change.REMINDER and line.item.startswith("source:"):
        return f"source {name} is not answering"
    return f"{name}: {_status_word(line.status)}"


def alert(lines: Sequence[Line], zone: ZoneInfo, base_url: str | None, now: datetime) -> Message:
    """One message for the changes one board update brought to one target (lines sorted worst first), as read
    at `now`."""
    level = worst(list(lines))
    title = _title(lines[0]) + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")
    if all(line.change is Change.REMINDER for line in lines):
        title = "still open: " + title
    body = [line_text(line, zone, now) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        body.append(f"… and {len(lines) - MAX_LINES} more on the board")
    return Message("Backups: " + title, _with_link(body, base_url), level.value)


def _with_link(body: list[str], base_url: str | None) -> str:
    if base_url:
        body = [*body, "", f"Board: {base_url.rstrip('/')}/"]
    return "\n".join(body)


def _when(at: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    """As the board's reasons say it (with the year when that is not `now`'s)."""
    return "?" if at is None else when(at, zone.key, now)


def digest(board: Board, now: datetime, base_url: str | None) -> Message:
    """The week's confidence for someone who never opens the board."""
    zone = ZoneInfo(board.timezone)
    counts: dict[str, int] = {}
    for verdict in board.verdicts:
        counts[verdict.status.value] = counts.get(verdict.status.value, 0) + 1
    order = {status.value: index for index, status in enumerate(Status)}
    summary = ", ".join(f"{n} {_status_word(s)}" for s, n in sorted(counts.items(), key=lambda c: order[c[0]]))
    body = [f"{len(board.verdicts)} services: {summary or 'none'}", f"Overall: {board.overall.value}"]
    problems = sorted(
        (v for v in board.verdicts if v.severity is not Severity.OK),
        key=lambda v: (SEVERITY_RANK[v.severity], v.name.casefold()),
    )
    body += ["", f"Problems ({len(problems)}):" if problems else "Problems: none"]
    for verdict in problems[:MAX_LINES]:
        reason = clean(verdict.reasons[0]) if verdict.reasons else ""
        body.append(
            f"- {clean(verdict.name, 80)}: {_status_word(verdict.status.value)}" + (f" — {reason}" if reason else "")
        )
    if len(problems) > MAX_LINES:
        body.append(f"- … and {len(problems) - MAX_LINES} more on the board")
    down = [s for s in board.sources if s.error is not None]
    if down:
        body += ["", "Sources with errors:"] + [f"- {clean(s.name, 60)}: {clean(s.error or '')}" for s in down]
    if board.datastores:
        body += ["", "Datastores:"]
        for view in board.datastores:
            body.append("- " + _datastore_text(view))
    body += ["", "Next 7 days:", *_next_runs(board, now, zone)]
    for notice in board.notices:
        body += ["", f"Note: {clean(notice)}"]
    level = board.overall.value if board.overall is not Severity.OK else "info"
    title = f"Backups digest {now.astimezone(zone).strftime('%a %d %b')}: " + (
        "all ok" if not problems else f"{len(problems)} problem{'s' * (len(problems) != 1)}"
    )
    return Message(title, _with_link(body, base_url), level, kind="digest")


def _datastore_text(view: DatastoreView) -> str:
    parts: list[str] = []
    if view.used_fraction is not None:
        parts.append(f"{view.used_fraction * 100:.0f}% used")
    if view.full_in_days is not None:
        parts.append(f"full in {view.full_in_days:.0f} days")
    if view.datastore.error:
        parts.append(f"error: {clean(view.datastore.error)}")
    if view.severity is not Severity.OK:
        parts.append(f"{view.severity.value}" + (f": {clean(view.reasons[0])}" if view.reasons else ""))
    return f"{clean(view.datastore.name, 60)} ({clean(view.datastore.source, 60)}): " + (
        ", ".join(parts) or "no figures"
    )


def _next_runs(board: Board, now: datetime, zone: ZoneInfo) -> list[str]:
    """One line per job that runs in the next week: its first run and how many there are."""
    until = now + timedelta(days=7)
    first: dict[str, tuple[datetime, str, str, int]] = {}
    for slot in board.slots:
        if slot.outcome is not SlotOutcome.UPCOMING or not now <= slot.start_at < until:
            continue
        seen = first.get(slot.job_key)
        if seen is None:
            first[slot.job_key] = (slot.start_at, slot.job_name, slot.source, 1)
        else:
            start = min(seen[0], slot.start_at)
            first[slot.job_key] = (start, seen[1], seen[2], seen[3] + 1)
    runs = sorted(first.values(), key=lambda r: (r[0], r[1]))
    lines = [
        f"- {_when(start, zone, now)} {clean(name, 60)} ({clean(source, 40)})"
        + (f", {count} runs" if count > 1 else "")
        for start, name, source, count in runs[:DIGEST_RUNS]
    ]
    if len(runs) > DIGEST_RUNS:
        lines.append(f"- … and {len(runs) - DIGEST_RUNS} more jobs")
    return lines or ["- no scheduled runs"]


def merge(messages: Sequence[tuple[datetime, Message]], zone: ZoneInfo, budget: int = MERGED_TEXT) -> Message:
    """Messages held back (quiet hours, a target that did not accept) as one: the worst title, each part under
    the time it was written, oldest first. Within about `budget` characters: the newest parts in full (the
    board holds the older state anyway), older ones by their title, the oldest, when even their titles do not
    fit, as one line that counts them. A note for messages a full outbox let go always shows."""
    if len(messages) == 1:
        return messages[0][1]
    rank = {"critical": 0, "unknown": 1, "warning": 2, "info": 3, "ok": 4}
    _worst_at, worst_message = min(messages, key=lambda m: (rank.get(m[1].level, 5), m[0]))
    newest = max(at for at, _message in messages)  # the year a part's time leaves out is this one's
    heads = [f"[{_when(at, zone, newest)}] {message.title}" for at, message in messages]
    shown: dict[int, str] = {}
    left = budget
    newest_first = range(len(messages) - 1, -1, -1)
    for index in newest_first:
        part = f"{heads[index]}\n{messages[index][1].body}"
        if len(part) > left and shown:
            break
        shown[index] = part
        left -= len(part) + 2
    for index in newest_first:
        if index not in shown and (len(heads[index]) <= left or messages[index][1].kind == DROPPED):
            shown[index] = heads[index]
            left -= len(heads[index]) + 2
    parts = [shown[index] for index in sorted(shown)]
    left_out = [at for index, (at, _message) in enumerate(messages) if index not in shown]
    if left_out:
        span = f"{_when(left_out[0], zone, newest)} to {_when(left_out[-1], zone, newest)}"
        many = "s" * (len(left_out) != 1)
        parts.insert(0, f"… {len(left_out)} older message{many} left out ({span}); the board has the current state")
    title = worst_message.title + f" (+{len(messages) - 1} more message{'s' * (len(messages) != 2)})"
    kind = "digest" if all(m.kind == "digest" for _, m in messages) else "alert"
    return Message(title, "\n\n".join(parts), worst_message.level, kind)


def dropped_note(count: int, kept: int) -> Message:
    """What stands in the outbox for the `count` oldest messages a full outbox let go (it keeps `kept`)."""
    many = "s" * (count != 1)
    body = (
        f"This target did not accept messages for so long that more than {kept} waited for it; the oldest "
        f"{count} message{many} were dropped. The board has the current state."
    )
    return Message(f"Backups: {count} older message{many} not delivered", body, "info", DROPPED)


def dropped_count(message: Message) -> int:
    """How many messages an outbox row stands for: 1, or the count of a `dropped_note`."""
    found = _DROPPED_TITLE.fullmatch(message.title) if message.kind == DROPPED else None
    return int(found.group(1)) if found else 1


def test_message(base_url: str | None) -> Message:
    body = ["This is a test from backup-glance: this target works.", "Alerts, reminders and digests arrive here."]
    return Message("Backups: test message", _with_link(body, base_url), "info", kind="test")


__all__ = [
    "DROPPED",
    "MAX_LINES",
    "MERGED_TEXT",
    "Message",
    "alert",
    "clean",
    "digest",
    "dropped_count",
    "dropped_note",
    "line_text",
    "merge",
    "test_message",
]
