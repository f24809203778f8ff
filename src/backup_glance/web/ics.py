"""`GET /calendar.ics`: every calendar slot from 7 days back to 30 days ahead, for any calendar app.

Built with the `icalendar` library, never by string concatenation, so names with newlines, commas or `;` are
escaped by the library. DTSTART/DTEND carry the job's own zone as TZID (a 04:00 Vienna job stays at 04:00 across
DST), and `add_missing_timezones()` adds the matching VTIMEZONE blocks (icalendar 6+).

Sample event:
    BEGIN:VEVENT
    SUMMARY:✓ vault backup
    DTSTART;TZID=Europe/Vienna:20261126T040000
    DTEND;TZID=Europe/Vienna:20261126T044500
    UID:3f1c...@backup-glance
    DTSTAMP:20261126T130000Z
    DESCRIPTION:succeeded · pbs-main ...
    END:VEVENT
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vDuration

from ..model import Board, CalendarSlot, SlotOutcome
from .safe import each
from .views import SLOT_WORD

PAST = timedelta(days=7)
AHEAD = timedelta(days=30)
PRODID = "-//backup-glance//calendar//EN"
REFRESH = timedelta(minutes=30)  # what the feed asks subscribed calendar apps to fetch at most this far apart
MIN_DURATION = timedelta(minutes=1)

_PREFIX: dict[SlotOutcome, str] = {
    SlotOutcome.SUCCEEDED: "✓ ",
    SlotOutcome.FAILED: "✗ ",
    SlotOutcome.MISSED: "missed ",
    SlotOutcome.RUNNING: "▸ ",
    SlotOutcome.UPCOMING: "",
}


MAX_LISTED = 20  # services or jobs named in an event's description: a job covering 2,000 guests is not a paragraph


def slot_uid(slot: CalendarSlot) -> str:
    """Stable per job and slot: the same run keeps its UID across boards, so calendar apps update, not duplicate.

    >>> from datetime import datetime, UTC
    >>> from backup_glance.model import JobKind
    >>> s = CalendarSlot("pbs/backup/1", "vault", JobKind.BACKUP, "pbs", datetime(2026, 1, 1, 3, tzinfo=UTC),
    ...                  timedelta(minutes=5), SlotOutcome.UPCOMING, "UTC")
    >>> slot_uid(s)
    'e121f55e0aed9ba62a2f82dc6b6759612c5b385d@backup-glance'
    """
    key = f"{slot.job_key}|{slot.start_at.astimezone(ZoneInfo('UTC')).isoformat()}"
    return f"{hashlib.sha1(key.encode('utf-8')).hexdigest()}@backup-glance"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A zone name health could not resolve still gets a correct instant, shown in UTC.
        return ZoneInfo("UTC")


def summary(slot: CalendarSlot) -> str:
    kind = slot.kind.value.replace("_", " ")
    name = slot.job_name if kind in slot.job_name.lower() else f"{slot.job_name} {kind}"
    return _PREFIX[slot.outcome] + name


def description(slot: CalendarSlot) -> str:
    lines = [f"{SLOT_WORD[slot.outcome]} · {slot.source} · {slot.job_key}"]
    if slot.detail:
        lines.append(slot.detail)
    if slot.overlaps:
        lines.append(f"overlaps: {_listed(slot.overlaps, slot.more_overlaps)}")
    if slot.service_ids:
        lines.append(f"services: {_listed(slot.service_ids)}")
    return "\n".join(lines)


def _listed(names: tuple[str, ...], unnamed: int = 0) -> str:
    hidden = max(0, len(names) - MAX_LISTED) + unnamed
    return ", ".join(names[:MAX_LISTED]) + (f" and {hidden} more" if hidden else "")


def _event(slot: CalendarSlot, board: Board) -> Event:
    zone = _zone(slot.timezone)
    event = Event()
    event.add("uid", slot_uid(slot))
    # DTSTAMP is required (RFC 5545 §3.6.1), in UTC (§3.8.7.2); with METHOD:PUBLISH it says when this iCalendar
    # object was made: the time of the board it shows, kept while the events stay the same (app.py, `feed`).
    # No SEQUENCE and no LAST-MODIFIED, on purpose. An event changes when its slot's outcome does (due, then
    # failed; running, then its real end), and the board keeps neither the time of that change nor a count of
    # changes that could only grow. A LAST-MODIFIED that did not move with the outcome would keep the stale event
    # where an app trusts it (ICSx⁵, the feed app beside DAVx⁵, updates a known UID only when it has no
    # LAST-MODIFIED or a later one); one moved with every board would say no more than DTSTAMP. A SEQUENCE made
    # up from the outcome could go down (a slot called missed is running once its late run starts), and an app
    # would then keep the version it has. Absent, SEQUENCE is 0 for every version, and RFC 5546 §2.1.5 orders
    # versions of one UID with the same SEQUENCE by DTSTAMP, which grows whenever an event changed. (Most apps
    # that subscribe by URL replace the whole feed at each fetch anyway.)
    event.add("dtstamp", board.generated_at.astimezone(UTC))
    start = slot.start_at.astimezone(UTC)  # added to in real time: a local time is added to by the wall clock
    event.add("dtstart", _shown(start, zone))
    # RFC 5545 wants an end after the start: a run recorded as ending before it began still gets a minute.
    event.add("dtend", _shown(start + max(slot.duration, MIN_DURATION), zone))
    event.add("summary", summary(slot))
    event.add("description", description(slot))
    event.add("categories", [slot.kind.value])
    return event


def _shown(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` in the job's zone, or in UTC when that zone's clock shows its time twice (the hour the clocks go
    back) and this is the second time: a local time names the first of the two (RFC 5545 §3.3.5), an hour early.

    >>> madrid = ZoneInfo("Europe/Madrid")
    >>> _shown(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), madrid).isoformat()  # the first 02:30 there
    '2026-10-25T02:30:00+02:00'
    >>> _shown(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), madrid).isoformat()  # the second
    '2026-10-25T01:30:00+00:00'
    """
    local = moment.astimezone(zone)
    if local.fold and local.replace(fold=0).utcoffset() != local.utcoffset():
        return moment.astimezone(UTC)
    return local


def build_calendar(board: Board) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")  # some Outlook imports want it
    cal.add("x-wr-calname", "Backups")
    # How often a subscribed calendar should fetch again (apps left to themselves wait hours, some a day).
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    first, last = board.generated_at - PAST, board.generated_at + AHEAD
    slots = [s for s in board.slots if first <= s.start_at <= last]
    events = each(
        sorted(slots, key=lambda s: (s.start_at, s.job_key)),
        lambda slot: _event(slot, board),
        fallback=lambda _: None,
        what="calendar event",
        key=slot_uid,
    )
    for event in events:
        cal.add_component(event)
    cal.add_missing_timezones()
    return cal


def encode_calendar(board: Board) -> bytes:
    body: bytes = build_calendar(board).to_ical()
    return body


_DTSTAMP = re.compile(rb"\r\nDTSTAMP[:;][^\r\n]*")  # never folded: well under 75 octets; text escapes its newlines


def events_digest(body: bytes) -> bytes:
    r"""What an encoded feed says, but for its DTSTAMPs: equal for two boards whose events are the same.

    >>> events_digest(b"A\r\nDTSTAMP:20261126T130000Z\r\nB") == events_digest(b"A\r\nDTSTAMP:20261126T140000Z\r\nB")
    True
    >>> events_digest(b"A\r\nDTSTAMP:20261126T130000Z\r\nB") == events_digest(b"A\r\nDTSTAMP:20261126T130000Z\r\nC")
    False
    """
    return hashlib.blake2b(_DTSTAMP.sub(b"", body), digest_size=16).digest()


__all__ = ["build_calendar", "encode_calendar", "events_digest", "slot_uid", "summary"]
