"""`/calendar.ics` parses back with icalendar: UIDs stable per job+slot, TZID of the job's zone, window limits."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import ClientFactory
from icalendar import Calendar
from web_builders import NOW, a_board, a_slot

from backup_glance.model import Board, SlotOutcome
from backup_glance.web import ics


def _events(client_for: ClientFactory, *slots: object) -> list[object]:
    response = client_for(a_board(slots=tuple(slots))).get("/calendar.ics")  # type: ignore[arg-type]
    assert response.headers["content-type"].startswith("text/calendar")
    return list(Calendar.from_ical(response.content).walk("VEVENT"))


class TestCalendarFeed:
    def test_it_keeps_the_jobs_zone_and_wall_clock_time(self, client_for: ClientFactory) -> None:
        start = datetime(2026, 11, 27, 4, 0, tzinfo=ZoneInfo("Europe/Vienna"))
        slot = a_slot(start=start - NOW, duration=timedelta(minutes=45))
        response = client_for(a_board(slots=(slot,))).get("/calendar.ics")
        text = response.text
        assert "DTSTART;TZID=Europe/Vienna:20261127T040000" in text
        assert "DTEND;TZID=Europe/Vienna:20261127T044500" in text
        assert "BEGIN:VTIMEZONE" in text and "TZID:Europe/Vienna" in text
        (event,) = Calendar.from_ical(response.content).walk("VEVENT")
        assert event.decoded("dtstart") == start
        assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=45)

    def test_the_second_time_of_the_hour_the_clocks_go_back_is_written_in_utc(self, client_for: ClientFactory) -> None:
        """Madrid shows 02:00-03:00 twice on 25 October 2026. A local 02:30 names the first (RFC 5545 §3.3.5): the
        second 02:30 was shown an hour early, and its end, added to by the wall clock, 1 h 34 min after it."""
        first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        night = NOW.replace(year=2026, month=10, day=26)
        slots = [
            a_slot(job_key=key, start=at - NOW, duration=timedelta(minutes=34), timezone="Europe/Madrid")
            for key, at in (("first", first), ("second", second))
        ]
        response = client_for(replace(a_board(slots=tuple(slots)), generated_at=night)).get("/calendar.ics")
        assert "DTSTART;TZID=Europe/Madrid:20261025T023000" in response.text  # the first: local, as ever
        assert "DTSTART:20261025T013000Z" in response.text
        events = Calendar.from_ical(response.content).walk("VEVENT")
        # In UTC: Python never calls a time of the double hour equal to one of another zone (PEP 495).
        shown = [(e.decoded("dtstart").astimezone(UTC), e.decoded("dtend").astimezone(UTC)) for e in events]
        assert [(start, end - start) for start, end in shown] == [
            (first, timedelta(minutes=34)),
            (second, timedelta(minutes=34)),
        ]

    def test_it_says_how_often_to_fetch_it_and_never_ends_an_event_before_it_starts(
        self, client_for: ClientFactory
    ) -> None:
        backwards = replace(a_slot(start=-timedelta(hours=3)), duration=-timedelta(minutes=5))  # end before start
        response = client_for(a_board(slots=(backwards,))).get("/calendar.ics")
        feed = Calendar.from_ical(response.content)
        assert (str(feed["method"]), str(feed["calscale"])) == ("PUBLISH", "GREGORIAN")
        assert "REFRESH-INTERVAL;VALUE=DURATION:PT30M" in response.text and "X-PUBLISHED-TTL:PT30M" in response.text
        (event,) = feed.walk("VEVENT")
        assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=1)

    def test_uids_are_stable_per_job_and_slot(self, client_for: ClientFactory) -> None:
        slot = a_slot(start=timedelta(hours=3))
        expected = hashlib.sha1(f"{slot.job_key}|{slot.start_at.isoformat()}".encode()).hexdigest()
        (event,) = _events(client_for, slot)
        assert str(event["uid"]) == f"{expected}@backup-glance"  # type: ignore[index]
        (again,) = _events(client_for, slot)
        assert again["uid"] == event["uid"]  # type: ignore[index]

    def test_summaries_mark_past_outcomes_and_leave_the_future_plain(self, client_for: ClientFactory) -> None:
        slots = [
            a_slot("vault backup", job_key="a", start=-timedelta(days=1), outcome=SlotOutcome.SUCCEEDED),
            a_slot("vault backup", job_key="b", start=-timedelta(days=2), outcome=SlotOutcome.FAILED, detail="exit 2"),
            a_slot("vault backup", job_key="c", start=-timedelta(days=3), outcome=SlotOutcome.MISSED),
            a_slot("vault backup", job_key="d", start=timedelta(days=1)),
        ]
        events = _events(client_for, *slots)
        summaries = [str(e["summary"]) for e in events]  # type: ignore[index]
        assert summaries == ["missed vault backup", "✗ vault backup", "✓ vault backup", "vault backup"]
        assert "exit 2" in str(events[1]["description"])  # type: ignore[index]

    def test_window_is_seven_days_back_to_thirty_ahead(self, client_for: ClientFactory) -> None:
        slots = [
            a_slot(job_key="old", start=-timedelta(days=8)),
            a_slot(job_key="in", start=-timedelta(days=6)),
            a_slot(job_key="far", start=timedelta(days=31)),
        ]
        assert len(_events(client_for, *slots)) == 1

    def test_a_utc_job_is_written_in_utc(self, client_for: ClientFactory) -> None:
        text = client_for(a_board(slots=(a_slot(start=timedelta(hours=1), timezone="UTC"),))).get("/calendar.ics").text
        assert "DTSTART:20261126T140000Z" in text

    def test_hundreds_of_overlapping_jobs_are_named_a_few_then_counted(self, client_for: ClientFactory) -> None:
        keys = tuple(f"rs/backup/group-{n:03}" for n in range(300))
        (event,) = _events(client_for, a_slot(start=timedelta(hours=1), overlaps=keys))
        (line,) = [x for x in str(event["description"]).splitlines() if x.startswith("overlaps:")]  # type: ignore[index]
        assert line.endswith("group-019 and 280 more") and line.count(",") == 19

    def test_the_feed_is_written_off_the_event_loop(
        self, client_for: ClientFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: list[str] = []
        encode = ics.encode_calendar

        def watched(board: Board) -> bytes:
            threads.append(threading.current_thread().name)
            return encode(board)

        monkeypatch.setattr(ics, "encode_calendar", watched)
        assert client_for(a_board(slots=(a_slot(),))).get("/calendar.ics").status_code == 200
        assert len(threads) == 1 and threads[0].startswith("feed")
