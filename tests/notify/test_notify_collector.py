"""The real collector over the demo homelab's simulators, an injected clock, and the notifier subscribed to its
board publishes: the first complete board, a source that stops answering and comes back, the heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from notify_helpers import Clock, Receiver, receiver

from backup_glance.collector import Collector
from backup_glance.demo import DemoLab
from backup_glance.model import Severity
from backup_glance.runtime import Runtime, build_runtime

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # Thursday 13:00 in Madrid: the nightly runs are done
DEMO_PROBLEMS = {
    "app-configs (Backrest)",
    "nextcloud on mariadb",
    "old-wiki",
    "postgres",
    "scratch",
    "vaultwarden",
    "Database dump folder",
    # at risk: their protection falls short (issue 13); immich has gaps too
    "glance",
    "grafana on postgres",
    "immich",
    "n8n",
    "n8n on postgres",
    "NAS archive",
    "ntfy",
    "vault (Backrest)",
}


@dataclass
class Lab:
    demo: DemoLab
    inbox: Receiver
    clock: Clock
    loop: asyncio.AbstractEventLoop
    runtime: Runtime | None = None

    def start(self, extra: str) -> Runtime:
        text = self.demo.config_text().replace("server:\n", "server:\n  base_url: https://home.lan/backups/\n")
        self.runtime = build_runtime(self.demo.config(text + extra), clock=self.clock, notify=True)
        return self.runtime

    def beat_twice(self, poll_again: Callable[[Collector], Awaitable[object]]) -> int:
        """The first poll and its ping, then `poll_again` past `every` and the ping after it; -> boards published
        in between."""
        assert self.runtime is not None and self.runtime.notifier is not None
        notifier, collector, store = self.runtime.notifier, self.runtime.collector, self.runtime.store

        async def pings(count: int) -> None:
            for _ in range(500):
                if sum(hit.method == "GET" for hit in self.inbox.hits) >= count:
                    return
                await asyncio.sleep(0.01)

        async def go() -> int:
            notifier.start()
            await collector.poll_once()
            await pings(1)
            published = store.version
            await asyncio.sleep(5.2)  # past `every`
            await poll_again(collector)
            await pings(2)
            return store.version - published

        return self.loop.run_until_complete(go())

    def poll(self) -> list[dict[str, Any]]:
        """One poll of every source (one board publish), then what the notifier sends for it."""
        assert self.runtime is not None and self.runtime.notifier is not None
        notifier = self.runtime.notifier

        async def go() -> None:
            await self.runtime.collector.poll_once()  # type: ignore[union-attr]
            await notifier.step()
            await notifier.flush()

        before = len(self.inbox.messages)
        self.loop.run_until_complete(go())
        return self.inbox.messages[before:]


@pytest.fixture
def lab() -> Iterator[Lab]:
    loop = asyncio.new_event_loop()
    with DemoLab(now=NOW) as demo, receiver() as inbox:
        made = Lab(demo, inbox, Clock(), loop)
        yield made
        if made.runtime is not None:
            loop.run_until_complete(made.runtime.collector.stop())
            if made.runtime.notifier is not None:
                loop.run_until_complete(made.runtime.notifier.stop())
            if made.runtime.history is not None:
                made.runtime.history.close()
    loop.close()


def names_in(message: dict[str, Any]) -> set[str]:
    body = message["message"].split("\n\nBoard:")[0]
    return {line.split(": ", 1)[0] for line in body.splitlines()}


def test_the_first_complete_board_is_one_message_and_a_second_poll_says_nothing(lab: Lab) -> None:
    lab.start(f"notify:\n  - url: {lab.inbox.url()}\n    severity: warning\n")
    (first,) = lab.poll()
    assert first["type"] == "failure"
    assert names_in(first) == DEMO_PROBLEMS
    assert first["message"].endswith("\n\nBoard: https://home.lan/backups/")
    lab.clock.now = NOW + timedelta(seconds=70)
    assert lab.poll() == []


def test_a_source_that_stops_answering_is_one_message_and_its_return_another(lab: Lab) -> None:
    lab.start(f"notify:\n  - url: {lab.inbox.url()}\n")
    lab.poll()
    lab.demo.apps["pbs"].faults.down = True
    lab.clock.now = NOW + timedelta(minutes=1)
    assert lab.poll() == []  # one failed poll: last known good still stands
    lab.clock.now = NOW + timedelta(minutes=3)
    (down,) = lab.poll()
    assert down["title"] == "Backups: source pbs-main is not answering"
    (line,) = down["message"].split("\n\nBoard:")[0].splitlines()
    assert line.startswith("source pbs-main is not answering: pbs 'pbs-main': ") and "HTTP 503" in line
    assert "services unknown: " in line and "caddy" in line
    lab.clock.now = NOW + timedelta(minutes=5)
    assert lab.poll() == []
    lab.demo.apps["pbs"].faults.down = False
    lab.clock.now = NOW + timedelta(minutes=6)
    (back,) = lab.poll()
    assert back["title"] == "Backups: source pbs-main answers again" and back["type"] == "success"


def test_the_heartbeat_is_pinged_after_the_first_complete_board(lab: Lab) -> None:
    lab.start(f"heartbeat:\n  url: {lab.inbox.url('/ping/uuid', scheme='http')}\n  every: 5s\n")
    runtime = lab.runtime
    assert runtime is not None and runtime.notifier is not None
    notifier = runtime.notifier

    async def go() -> None:
        notifier.start()
        await runtime.collector.poll_once()
        for _ in range(300):
            if any(hit.method == "GET" for hit in lab.inbox.hits):
                break
            await asyncio.sleep(0.01)

    lab.loop.run_until_complete(go())
    assert [hit.path for hit in lab.inbox.hits] == ["/ping/uuid"]


def test_the_heartbeat_keeps_beating_while_polls_find_nothing_new(lab: Lab) -> None:
    """Boards are published only on news; a quiet night must not silence the heartbeat."""
    lab.start(f"heartbeat:\n  url: {lab.inbox.url('/ping/uuid', scheme='http')}\n  every: 5s\n")
    assert lab.beat_twice(lambda collector: asyncio.gather(*map(collector._poll, collector._sources))) == 0
    assert [hit.path for hit in lab.inbox.hits] == ["/ping/uuid", "/ping/uuid"]  # ... and it beat again


def test_the_heartbeat_keeps_beating_on_its_fail_url_while_a_source_stays_down(lab: Lab) -> None:
    """The same failure poll after poll is no news: nothing was published, nothing confirmed, and the heartbeat
    stopped, so the monitor said "backup-glance is dead" instead of hearing the fail_url."""
    ping, fail = lab.inbox.url("/ping/uuid", scheme="http"), lab.inbox.url("/ping/uuid/fail", scheme="http")
    lab.start(f"heartbeat:\n  url: {ping}\n  fail_url: {fail}\n  every: 5s\n")
    lab.demo.apps["pbs"].faults.down = True  # the demo is critical anyway; pbs down from the first poll
    assert lab.beat_twice(lambda collector: collector._poll("pbs-main")) == 0  # the same failure again
    assert [hit.path for hit in lab.inbox.hits] == ["/ping/uuid/fail", "/ping/uuid/fail"]


def test_a_target_that_refuses_for_a_quarter_of_an_hour_is_on_the_board(lab: Lab) -> None:
    """A revoked ntfy token: every alert refused, and only the log said so (read by nobody)."""
    lab.start(f"notify:\n  - url: {lab.inbox.url()}\n")
    assert lab.runtime is not None
    collector, store = lab.runtime.collector, lab.runtime.store
    lab.inbox.status = 500
    lab.poll()  # the first board's message, refused
    assert store.current().notices == ()
    lab.clock.now = NOW + timedelta(minutes=16)
    collector._news.clear()  # (no refresh task runs here to take it)
    lab.poll()  # refused again, a quarter of an hour on: the collector is asked to judge again
    assert collector._news.is_set()
    lab.loop.run_until_complete(collector.rebuild())
    (notice,) = store.current().notices
    assert notice.startswith("notifications to json://127.0.0.1:")
    assert notice.endswith("not accepted since Thu 26 Nov 13:00: HTTP 500; they wait in its outbox")
    assert store.current().overall is not Severity.OK
    lab.inbox.status = 200
    lab.clock.now = NOW + timedelta(minutes=17)
    lab.poll()  # accepted: what waited goes out, and the notice goes
    lab.loop.run_until_complete(collector.rebuild())
    assert store.current().notices == ()
