"""The notifier end to end in one process: real Apprise posting to a real HTTP receiver on loopback, an injected
clock for quiet hours, digests and reminders, the history database for what was announced."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
from notify_helpers import (
    NOW,
    ZONE,
    Clock,
    Driving,
    Receiver,
    a_board,
    a_datastore,
    a_source,
    a_verdict,
    dripping_target,
    receiver,
)

from backup_glance.errors import BackupGlanceError
from backup_glance.model import Board, Severity, Status
from backup_glance.notify import Notifier, Target, _deliver
from backup_glance.notify._deliver import AppriseSender
from backup_glance.notify._messages import Message
from backup_glance.notify._policy import Rule
from backup_glance.notify._store import NotifyStore
from backup_glance.schedule import parse_schedule


@dataclass
class Rig(Driving):
    """A notifier over a history file in tmp_path, its targets posting to one receiver."""

    db: Path
    inbox: Receiver
    clock: Clock = field(default_factory=Clock)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def notifier(self, **target: object) -> Notifier:
        rule = Rule(
            Severity(str(target.get("severity", "critical"))),
            target.get("repeat"),  # type: ignore[arg-type]
            bool(target.get("alerts", True)),
        )
        url = str(target.get("url", self.inbox.url()))
        quiet = target.get("quiet")
        digest = parse_schedule(str(target["digest"]), "proxmox", ZONE) if "digest" in target else None
        sender = AppriseSender(url)
        return Notifier(
            targets=[Target("t1", rule, sender, quiet, digest)],  # type: ignore[arg-type]
            store=NotifyStore.open(self.db),
            clock=self.clock,
            timezone=ZONE,
            base_url="https://home.lan/backups/",
            retry=lambda failures: 0.05,
        )

    def publish(self, notifier: Notifier, board: Board) -> dict[str, bool | None]:
        """What the serve process does on a publish, then deliver what is due (no background tasks)."""

        async def go() -> dict[str, bool | None]:
            notifier.on_board(board)
            await notifier.step()
            return await notifier.flush()

        return self.loop.run_until_complete(go())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with receiver() as inbox:
        made = Rig(tmp_path / "history.sqlite3", inbox)
        yield made
        made.loop.close()


def failing_board(*names: str, at: datetime = NOW) -> Board:
    return a_board(*(a_verdict(n, Status.FAILED, at=at) for n in names), a_verdict("vault", at=at), at=at)


class TestMessages:
    def test_a_change_is_one_message_through_real_apprise(self, rig: Rig) -> None:
        notifier = rig.notifier()
        board = a_board(
            a_verdict("postgres", Status.FAILED, reason="last attempt Thu 26 Nov 04:04 failed: out of space"),
            a_verdict("wiki", Status.LATE, reason="no backup since the run due Thu 26 Nov 02:20"),
            a_verdict("vault"),
        )
        assert rig.publish(notifier, board) == {"t1": True}
        (message,) = rig.inbox.messages
        assert message["type"] == "failure"
        assert message["title"] == "Backups: postgres: failed (+1 more)"
        assert message["message"].splitlines() == [
            "postgres: failed — last attempt Thu 26 Nov 04:04 failed: out of space",
            "wiki: late — no backup since the run due Thu 26 Nov 02:20",
            "",
            "Board: https://home.lan/backups/",
        ]
        rig.close(notifier)

    def test_nothing_changed_sends_nothing(self, rig: Rig) -> None:
        notifier = rig.notifier()
        rig.publish(notifier, failing_board("postgres"))
        assert rig.publish(notifier, failing_board("postgres", at=NOW + timedelta(minutes=1))) == {"t1": None}
        assert len(rig.inbox.messages) == 1
        rig.close(notifier)

    def test_a_recovery_is_a_success_message(self, rig: Rig) -> None:
        notifier = rig.notifier()
        rig.publish(notifier, failing_board("postgres"))
        rig.publish(notifier, a_board(a_verdict("postgres"), a_verdict("vault"), at=NOW + timedelta(hours=1)))
        recovered = rig.inbox.messages[1]
        assert recovered["type"] == "success" and recovered["title"] == "Backups: postgres recovered"
        rig.close(notifier)

    def test_no_message_before_the_first_complete_board(self, rig: Rig) -> None:
        notifier = rig.notifier()
        waiting = a_board(
            a_verdict("caddy", Status.UNKNOWN, reason="never seen: no source reports guest:102"),
            sources=(a_source(), a_source("pve", kind="pve", attempted=False)),
        )
        assert rig.publish(notifier, waiting) == {"t1": None}
        assert rig.inbox.messages == []
        rig.close(notifier)


class TestQuietHours:
    def test_held_during_quiet_hours_then_sent_as_one(self, rig: Rig) -> None:
        notifier = rig.notifier(quiet=(clock_time(22), clock_time(7)), severity="warning")
        rig.clock.local("2026-11-26T23:10")
        rig.publish(notifier, failing_board("postgres", at=rig.clock.now))
        rig.clock.local("2026-11-27T03:30")
        board = a_board(
            a_verdict("postgres", Status.FAILED, at=rig.clock.now),
            a_verdict("vault", Status.GAPS, at=rig.clock.now),
            at=rig.clock.now,
        )
        assert rig.publish(notifier, board) == {"t1": None}  # held: nothing due
        assert rig.inbox.messages == []
        rig.clock.local("2026-11-27T07:00")
        assert rig.flush(notifier) == {"t1": True}
        (message,) = rig.inbox.messages
        assert message["title"] == "Backups: postgres: failed (+1 more message)"
        assert "[Thu 26 Nov 23:10] Backups: postgres: failed" in message["message"]
        assert "[Fri 27 Nov 03:30] Backups: vault: gaps" in message["message"]
        assert rig.flush(notifier) == {"t1": None}
        rig.close(notifier)


class TestDigest:
    def test_a_digest_at_its_calendar_event_once_with_the_whole_board(self, rig: Rig) -> None:
        notifier = rig.notifier(digest="mon 08:00", alerts=False)
        board = a_board(
            a_verdict("postgres", Status.FAILED, reason="out of space"),
            a_verdict("vault"),
            a_verdict("caddy"),
            datastores=(a_datastore(),),
        )
        rig.publish(notifier, board)
        assert rig.inbox.messages == []  # Thursday: alerts are off for this target, and no digest is due
        rig.clock.local("2026-11-30T08:00:20")  # Monday
        monday = a_board(*board.verdicts, datastores=board.datastores, at=rig.clock.now)
        assert rig.publish(notifier, monday) == {"t1": True}
        (digest,) = rig.inbox.messages
        assert digest["title"] == "Backups digest Mon 30 Nov: 1 problem"
        text = digest["message"]
        assert text.startswith("3 services: 2 ok, 1 failed\nOverall: critical\n")
        assert "- postgres: failed — out of space" in text
        assert "- main (pbs-main): 4% used, full in 431 days" in text
        assert "Next 7 days:" in text
        rig.clock.local("2026-11-30T09:00")
        assert rig.publish(notifier, a_board(*board.verdicts, at=rig.clock.now)) == {"t1": None}
        rig.close(notifier)

    def test_a_new_target_sends_no_digest_for_the_past(self, rig: Rig) -> None:
        rig.clock.local("2026-11-30T09:00")  # an hour after Monday's digest time
        notifier = rig.notifier(digest="mon 08:00", alerts=False)
        assert rig.publish(notifier, a_board(a_verdict("vault"), at=rig.clock.now)) == {"t1": None}
        rig.close(notifier)


class TestWaking:
    def test_a_reminder_held_back_by_a_running_backup_does_not_make_the_notifier_spin(self, rig: Rig) -> None:
        notifier = rig.notifier(repeat=timedelta(hours=1))
        rig.publish(notifier, failing_board("postgres"))
        assert notifier._next_wake_in() == 60.0  # the reminder is an hour away: the idle tick comes first
        rig.clock.now = NOW + timedelta(hours=2)  # the reminder is due, but the backup is running again
        running = a_board(a_verdict("postgres", Status.RUNNING, at=rig.clock.now), at=rig.clock.now)
        assert rig.publish(notifier, running) == {"t1": None}
        assert notifier._next_wake_in() == 60.0  # the idle tick, not a busy loop
        rig.close(notifier)


class TestDeliveryFailures:
    def test_a_refusing_target_is_retried_with_backoff_until_it_accepts(self, rig: Rig) -> None:
        rig.inbox.status = [500, 503, 200]
        notifier = rig.notifier()

        async def go() -> None:
            notifier.start()
            notifier.on_board(failing_board("postgres"))
            for _ in range(200):
                await asyncio.sleep(0.02)
                if notifier.workers["t1"].sent:
                    break
            await notifier.stop()

        rig.loop.run_until_complete(go())
        posts = [hit for hit in rig.inbox.hits if hit.method == "POST"]
        assert len(posts) == 3 and all(hit.body == posts[0].body for hit in posts)
        assert NotifyStore.open(rig.db).pending("t1") == []  # accepted: out of the outbox

    def test_a_message_accepted_while_the_outbox_cannot_be_written_is_sent_once(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        notifier = rig.notifier()
        store = notifier.workers["t1"]._store
        disk_full = [True]
        delivered = store.delivered

        def refuse_while_full(ids: list[int]) -> None:
            if disk_full[0]:
                raise BackupGlanceError("cannot write the history: database or disk is full")
            delivered(ids)

        monkeypatch.setattr(store, "delivered", refuse_while_full)

        async def go() -> None:
            notifier.start()
            notifier.on_board(failing_board("postgres"))
            await asyncio.sleep(1.0)
            disk_full[0] = False
            notifier.workers["t1"].wake()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if not NotifyStore.open(rig.db).pending("t1"):
                    break
            await notifier.stop()

        rig.loop.run_until_complete(go())
        assert len([hit for hit in rig.inbox.hits if hit.method == "POST"]) == 1
        assert NotifyStore.open(rig.db).pending("t1") == []  # removed once the outbox could be written

    def test_a_slow_target_never_blocks_the_event_loop(self, rig: Rig) -> None:
        rig.inbox.delay_s = 1.5
        notifier = rig.notifier()

        async def go() -> float:
            notifier.start()
            notifier.on_board(failing_board("postgres"))
            worst = 0.0
            began = time.monotonic()
            while not notifier.workers["t1"].sent and time.monotonic() - began < 10:
                tick = time.monotonic()
                await asyncio.sleep(0.01)
                worst = max(worst, time.monotonic() - tick)
            await notifier.stop()
            return worst

        worst_tick = rig.loop.run_until_complete(go())
        assert len(rig.inbox.messages) == 1
        assert worst_tick < 0.2, worst_tick


class TestRestart:
    def test_a_stop_lets_the_delivery_in_flight_finish_and_be_recorded(self, rig: Rig) -> None:
        rig.inbox.delay_s = 0.8
        notifier = rig.notifier()

        async def go() -> None:
            notifier.start()
            notifier.on_board(failing_board("postgres"))
            await asyncio.sleep(0.3)  # the POST is on its way, the receiver is still thinking
            await notifier.stop()

        rig.loop.run_until_complete(go())
        assert len(rig.inbox.messages) == 1
        assert NotifyStore.open(rig.db).pending("t1") == []  # accepted and recorded: not sent again at start

    def test_a_restart_never_resends_what_was_announced(self, rig: Rig) -> None:
        first = rig.notifier()
        rig.publish(first, failing_board("postgres"))
        rig.close(first)
        second = rig.notifier()
        assert rig.publish(second, failing_board("postgres", at=NOW + timedelta(minutes=2))) == {"t1": None}
        assert len(rig.inbox.messages) == 1
        rig.close(second)

    def test_a_message_recorded_but_not_sent_before_a_crash_is_sent_once_after_it(self, rig: Rig) -> None:
        crashed = rig.notifier()
        crashed.on_board(failing_board("postgres"))
        rig.loop.run_until_complete(crashed.step())  # the change and its message are written; no delivery yet
        # kill -9: no stop(), no flush; the process is gone with its memory.
        after = rig.notifier()
        assert rig.publish(after, failing_board("postgres", at=NOW + timedelta(minutes=2))) == {"t1": True}
        assert [m["title"] for m in rig.inbox.messages] == ["Backups: postgres: failed"]
        assert rig.flush(after) == {"t1": None}
        rig.close(after)

    def test_reminders_keep_their_schedule_across_restarts(self, rig: Rig) -> None:
        notifier = rig.notifier(repeat=timedelta(hours=24))
        rig.publish(notifier, failing_board("postgres"))
        rig.close(notifier)
        rig.clock.now = NOW + timedelta(hours=25)
        notifier = rig.notifier(repeat=timedelta(hours=24))
        rig.publish(notifier, failing_board("postgres", at=rig.clock.now))
        rig.close(notifier)
        rig.clock.now = NOW + timedelta(hours=26)
        notifier = rig.notifier(repeat=timedelta(hours=24))
        assert rig.publish(notifier, failing_board("postgres", at=rig.clock.now)) == {"t1": None}
        titles = [m["title"] for m in rig.inbox.messages]
        assert titles == ["Backups: postgres: failed", "Backups: still open: postgres: failed"]
        rig.close(notifier)


class TestDrippingTarget:
    def test_a_send_still_hanging_is_not_tried_again_beside_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_deliver, "SEND_TIMEOUT_S", 1.0)
        with dripping_target() as (port, tally):
            sender = AppriseSender(f"json://127.0.0.1:{port}/hook")
            message = Message("postgres: failed", "body", "critical")
            began = time.monotonic()
            assert sender.send(message) is False  # Apprise stopped waiting; its thread still reads
            assert time.monotonic() - began < 10
            assert sender.send(message) is False
            assert tally.connections == 1  # the second try did not take another of Apprise's threads

    def test_notify_test_ends_although_a_send_never_finishes(self, tmp_path: Path) -> None:
        with dripping_target() as (port, _tally):
            config = tmp_path / "bg.yaml"
            config.write_text(
                "sources:\n  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b',"
                " token_secret: x}\n"
                f"notify:\n  - url: json://127.0.0.1:{port}/hook\n"
            )
            config.chmod(0o600)
            script = (
                "import sys; from backup_glance.notify import _deliver; _deliver.SEND_TIMEOUT_S = 1.0;"
                "from backup_glance.cli import main; sys.exit(main(sys.argv[1:]))"
            )
            began = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-c", script, "notify-test", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert time.monotonic() - began < 30
            assert done.returncode == 1, done.stdout + done.stderr
            assert "FAILED" in done.stdout
            assert "exiting without waiting for notification sends that never finished" in done.stderr


def test_an_apprise_without_a_send_timeout_still_sends() -> None:
    # Apprise 1.9 (still allowed by the requirements) has no `timeout` argument.
    sent: list[str] = []

    class OldApprise:
        def notify(self, body: str, title: str = "", notify_type: str = "info", body_format: str | None = None) -> bool:
            sent.append(title)
            return True

    sender = AppriseSender("json://127.0.0.1:9/hook")
    sender._apprise = OldApprise()  # type: ignore[assignment]
    assert sender.send(Message("postgres: failed", "body", "critical")) is True
    assert sent == ["postgres: failed"]


def test_a_refusal_without_an_http_answer_still_says_something() -> None:
    """notify-test printed `FAILED  mailto://…` with nothing in brackets, under a footer saying "why: in brackets"."""
    sender = AppriseSender("mailto://user:pass@example.org?smtp=127.0.0.1&port=9&to=me@example.org")
    assert sender.send(Message("postgres: failed", "body", "critical")) is False
    assert sender.last is not None
    assert sender.last.describe() == "not accepted (Apprise's warning in the log says why)"


class TestAClockThatRanAhead:
    """The machine's clock ran a month ahead for a minute (a bad NTP answer, a VM restored), then came back: a
    digest or reminder stamped in that minute held every later one back until the month had passed."""

    def test_digests_keep_their_calendar(self, rig: Rig) -> None:
        notifier = rig.notifier(digest="*-*-* 08:00", alerts=False)

        def digest_at(local: str) -> bool | None:
            rig.clock.local(local)
            return rig.publish(notifier, a_board(a_verdict("postgres", Status.FAILED), at=rig.clock.now))["t1"]

        assert digest_at("2026-11-26T13:00") is None
        assert digest_at("2026-12-27T08:00:20") is True  # a month ahead: that day's digest goes out, stamped then
        assert digest_at("2026-11-27T08:00:20") is None  # back to the truth: the day's slot counts as taken ...
        assert digest_at("2026-11-28T08:00:20") is True  # ... and the next morning's goes out, not next month's
        assert [m["title"][:26] for m in rig.inbox.messages] == [
            "Backups digest Sun 27 Dec:",
            "Backups digest Sat 28 Nov:",
        ]
        rig.close(notifier)

    def test_reminders_start_again_from_now(self, rig: Rig) -> None:
        notifier = rig.notifier(repeat=timedelta(hours=24))
        rig.clock.now = NOW + timedelta(days=30)
        rig.publish(notifier, failing_board("postgres", at=rig.clock.now))  # announced "a month ahead"
        rig.clock.now = NOW + timedelta(hours=1)
        assert rig.publish(notifier, failing_board("postgres", at=rig.clock.now)) == {"t1": True}
        rig.clock.now = NOW + timedelta(hours=2)
        assert rig.publish(notifier, failing_board("postgres", at=rig.clock.now)) == {"t1": None}  # not again
        rig.clock.now = NOW + timedelta(hours=25, minutes=1)
        assert rig.publish(notifier, failing_board("postgres", at=rig.clock.now)) == {"t1": True}
        titles = [m["title"] for m in rig.inbox.messages]
        assert titles == ["Backups: postgres: failed", *["Backups: still open: postgres: failed"] * 2]
        rig.close(notifier)
