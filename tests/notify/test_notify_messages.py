"""How messages read: the worst in the title, one line per change, hostile names kept on their line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from notify_helpers import HOSTILE, NOW, ZONE, a_board, a_verdict

from backup_glance.model import CalendarSlot, JobKind, Severity, SlotOutcome, Status, Verdict
from backup_glance.notify._messages import MAX_LINES, Message, alert, digest, merge
from backup_glance.notify._policy import Change, Line, Rule, decide

MADRID = ZoneInfo(ZONE)


WARNING = Rule(Severity.WARNING)


def lines_of(*verdicts: Verdict) -> Message:
    board = a_board(*verdicts)
    decision = decide(board, {}, WARNING, NOW)
    return alert(decision.lines, MADRID, None, NOW)


def test_a_hostile_name_cannot_forge_a_line_or_a_title() -> None:
    message = lines_of(a_verdict("x", Status.FAILED, name=HOSTILE, reason="bad\r\nFAKE: ok\u2028line"))
    assert "\n" not in message.title and "\r" not in message.body
    (line,) = message.body.splitlines()
    assert line.startswith('evil"name\\with newline}') and line.endswith("bad FAKE: ok line")


def test_a_night_of_failures_is_one_message_with_a_line_each_and_a_cap() -> None:
    verdicts = [a_verdict(f"svc{i:03d}", Status.FAILED) for i in range(MAX_LINES + 5)]
    message = lines_of(*verdicts)
    assert message.title == f"Backups: svc000: failed (+{MAX_LINES + 4} more)"
    body = message.body.splitlines()
    assert len(body) == MAX_LINES + 1 and body[-1] == "… and 5 more on the board"


def test_without_base_url_there_is_no_link_and_with_it_one() -> None:
    board = a_board(a_verdict("x", Status.FAILED))
    lines = decide(board, {}, Rule(), NOW).lines
    assert "Board:" not in alert(lines, MADRID, None, NOW).body
    assert alert(lines, MADRID, "https://home.lan/b", NOW).body.endswith("\n\nBoard: https://home.lan/b/")


def test_the_digest_lists_next_weeks_runs_one_line_per_job() -> None:
    def slot(day: int, name: str = "nightly") -> CalendarSlot:
        return CalendarSlot(
            job_key=f"pve/backup/{name}",
            job_name=name,
            kind=JobKind.BACKUP,
            source="pve",
            start_at=NOW + timedelta(days=day, hours=15),
            duration=timedelta(minutes=20),
            outcome=SlotOutcome.UPCOMING,
            timezone=ZONE,
        )

    slots = (*(slot(d) for d in range(0, 9)), slot(2, "weekly"))
    board = replace(a_board(a_verdict("vault")), slots=slots)
    text = digest(board, NOW, None).body
    runs = text.split("Next 7 days:\n", 1)[1].splitlines()
    assert runs == ["- Fri 27 Nov 04:00 nightly (pve), 7 runs", "- Sun 29 Nov 04:00 weekly (pve)"]
    assert digest(board, NOW, None).title == "Backups digest Thu 26 Nov: all ok"


def test_held_messages_merge_under_the_worst_title() -> None:
    warning = Message("Backups: a: gaps", "a: gaps", "warning")
    critical = Message("Backups: b: failed", "b: failed", "critical")
    merged = merge([(NOW, warning), (NOW + timedelta(hours=1), critical)], MADRID)
    assert merged.title == "Backups: b: failed (+1 more message)" and merged.level == "critical"
    assert merged.body.split("\n\n") == [
        "[Thu 26 Nov 13:00] Backups: a: gaps\na: gaps",
        "[Thu 26 Nov 14:00] Backups: b: failed\nb: failed",
    ]


def test_a_time_from_another_year_carries_its_year() -> None:
    """ "still failed since Mon 01 Dec" read as last week's for a problem announced thirteen months ago."""
    announced = NOW - timedelta(days=360)  # Mon 01 Dec 2025
    reminder = Line(Change.REMINDER, "service:x", "x", Status.FAILED.value, "", Severity.CRITICAL, since=announced)
    recent = replace(reminder, since=NOW - timedelta(days=2))
    body = alert([reminder, recent], MADRID, None, NOW).body.splitlines()
    assert body == ["x: still failed since Mon 01 Dec 2025 13:00", "x: still failed since Tue 24 Nov 13:00"]
    new_year = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)  # 23:30 in Madrid; the next part is written in 2027
    parts = merge(
        [(new_year, Message("a", "a", "warning")), (new_year + timedelta(hours=1), Message("b", "b", "ok"))], MADRID
    )
    assert parts.body.split("\n\n") == ["[Thu 31 Dec 2026 23:30] a\na", "[Fri 01 Jan 00:30] b\nb"]


def test_two_services_of_one_name_are_told_apart_by_their_sources() -> None:
    """Two Backrest sources, each with a plan `vault`: "vault (Backrest): failed" said nothing of which one."""
    message = lines_of(
        a_verdict("flap/vault", Status.FAILED, name="vault (Backrest)", sources=("flapstatus",)),
        a_verdict("down/vault", Status.LATE, name="vault (Backrest)", sources=("flapdown",)),
        a_verdict("postgres", Status.FAILED),
    )
    assert sorted(line.split(":")[0] for line in message.body.splitlines()) == [
        "postgres",
        "vault (Backrest) · flapdown",
        "vault (Backrest) · flapstatus",
    ]
