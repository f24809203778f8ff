"""The heartbeat pings a real local HTTP server: after the first complete board, at most every `every`, and the
fail URL while the board is critical."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from notify_helpers import Receiver, a_board, a_source, a_verdict, receiver

from backup_glance.model import Board, Status
from backup_glance.notify import Heartbeat


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pings(inbox: Receiver) -> list[str]:
    return [hit.path for hit in inbox.hits if hit.method == "GET"]


def feed(heartbeat: Heartbeat, boards: list[tuple[float, Board]], clock: FakeMonotonic) -> None:
    async def go() -> None:
        for at, board in boards:
            clock.now = at
            heartbeat.on_board(board)
            for _ in range(200):  # let the ping task finish before the next board
                if heartbeat._task is None or heartbeat._task.done():
                    break
                await asyncio.sleep(0.01)
        await heartbeat.aclose()

    asyncio.run(go())


OK = a_board(a_verdict("vault"))
CRITICAL = a_board(a_verdict("postgres", Status.FAILED))
STUCK = replace(OK, judging_failed_at=OK.generated_at)  # judging failed since: its verdicts may be out of date
INCOMPLETE = a_board(a_verdict("vault"), sources=(a_source(), a_source("pve", kind="pve", attempted=False)))


def test_first_ping_after_the_first_complete_board_then_at_most_every_interval() -> None:
    clock = FakeMonotonic()
    with receiver() as inbox:
        heartbeat = Heartbeat(inbox.url("/ping/abc", scheme="http"), every=timedelta(minutes=5), monotonic=clock)
        feed(heartbeat, [(1000, INCOMPLETE), (1001, OK), (1030, OK), (1200, OK), (1302, OK), (1400, OK)], clock)
        assert pings(inbox) == ["/ping/abc", "/ping/abc"]  # at 1001 and 1302


@pytest.mark.parametrize("bad", [CRITICAL, STUCK], ids=["critical", "not-judged-again"])
def test_the_fail_url_while_the_board_is_critical_or_cannot_be_judged_again(bad: Board) -> None:
    clock = FakeMonotonic()
    with receiver() as inbox:
        heartbeat = Heartbeat(
            inbox.url("/ping/abc", scheme="http"),
            fail_url=inbox.url("/ping/abc/fail", scheme="http"),
            every=timedelta(seconds=5),
            monotonic=clock,
        )
        feed(heartbeat, [(1000, bad), (1006, bad), (1012, OK)], clock)
        assert pings(inbox) == ["/ping/abc/fail", "/ping/abc/fail", "/ping/abc"]


def test_a_board_that_cannot_be_judged_again_is_no_all_is_well_without_a_fail_url() -> None:
    # The watcher hears nothing, and says so after its own grace.
    clock = FakeMonotonic()
    with receiver() as inbox:
        heartbeat = Heartbeat(inbox.url("/hc", scheme="http"), every=timedelta(seconds=5), monotonic=clock)
        feed(heartbeat, [(2000, STUCK), (2006, STUCK), (2012, OK)], clock)
        assert pings(inbox) == ["/hc"]


def test_critical_without_a_fail_url_still_pings_the_url() -> None:
    clock = FakeMonotonic()
    with receiver() as inbox:
        heartbeat = Heartbeat(inbox.url("/hc", scheme="http"), every=timedelta(seconds=5), monotonic=clock)
        feed(heartbeat, [(1000, CRITICAL)], clock)
        assert pings(inbox) == ["/hc"]


def test_a_failed_ping_is_tried_again_soon_not_only_after_every() -> None:
    clock = FakeMonotonic()
    with receiver() as inbox:
        inbox.status = [500, 200]
        heartbeat = Heartbeat(inbox.url("/hc", scheme="http"), every=timedelta(minutes=10), monotonic=clock)
        feed(heartbeat, [(1000, OK), (1010, OK), (1031, OK), (1040, OK)], clock)
        assert pings(inbox) == ["/hc", "/hc"]  # refused at 1000, retried at 1031 (30 s), then quiet
        assert heartbeat.pings == 1


def test_every_is_at_least_five_seconds() -> None:
    assert Heartbeat("http://127.0.0.1:1/x", every=timedelta(seconds=1)).every == 5.0


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://no-such-host.invalid/ping/x", "the host name does not resolve"),
        ("http://127.0.0.1:9/ping/x", "connection refused"),
    ],
)
def test_a_failed_ping_says_why_in_words(url: str, said: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every one of them was `problem=ConnectError`: a name, a refused port and an untrusted certificate alike."""
    caplog.set_level("WARNING", logger="backup_glance")
    clock = FakeMonotonic()
    feed(Heartbeat(url, monotonic=clock), [(1000, OK)], clock)
    (line,) = [r for r in caplog.records if r.getMessage() == "heartbeat ping failed"]
    assert line.problem == said  # type: ignore[attr-defined]
