"""The collector's loop decisions: retries, isolation of failing sources, last known good, publishing."""

from __future__ import annotations

import asyncio
import gc
import re
import sqlite3
import weakref
from collections.abc import Callable, Coroutine
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from starlette.testclient import TestClient

from backup_glance.board import BoardStore
from backup_glance.collector import AUTH_RETRY, HELD_THRESHOLD, Collector, OldGeneration
from backup_glance.config import Config
from backup_glance.errors import SourceAuthError, SourceError, SourceUnreachable
from backup_glance.health import Defaults
from backup_glance.history import History
from backup_glance.model import Board, GuestRef, Observation, Severity, Snapshot, Target
from backup_glance.web import create_app

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class ScriptedSource:
    """A source that answers from a script: an Observation, or an exception to raise."""

    def __init__(self, name: str, script: list[Observation | BaseException]) -> None:
        self.name = name
        self.kind = "pbs"
        self.script = script
        self.closed = False

    async def poll(self) -> Observation:
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return step

    async def aclose(self) -> None:
        self.closed = True


def an_observation(source: str = "pbs", vmid: int = 101) -> Observation:
    target = Target(f"guest:{vmid}", source, f"guest{vmid}", "guest", GuestRef(vmid, "lxc"))
    snapshot = Snapshot(f"guest:{vmid}", source, f"main/ct/{vmid}/1", NOW - timedelta(hours=2), size_bytes=10)
    return Observation(source, "pbs", NOW, "UTC", targets=(target,), snapshots=(snapshot,))


def a_collector(
    *sources: ScriptedSource,
    history: History | None = None,
    every: timedelta = timedelta(minutes=1),
    display_tz: str = "UTC",
) -> tuple[Collector, BoardStore]:
    store = BoardStore()
    collector = Collector(
        sources=sources,
        poll_intervals={s.name: every for s in sources},
        services=[],
        store=store,
        display_tz=display_tz,
        defaults=Defaults(),
        history=history,
        clock=lambda: NOW,
    )
    return collector, store


def test_a_rejected_token_is_retried_no_sooner_than_five_minutes() -> None:
    source = ScriptedSource("pbs", [SourceAuthError("token rejected (HTTP 401)", source="pbs", kind="pbs")])
    collector, _ = a_collector(source)
    delay = asyncio.run(collector._poll("pbs"))
    assert delay == AUTH_RETRY.total_seconds() == 300


def test_a_transient_failure_is_retried_early_and_backs_off_up_to_the_interval() -> None:
    source = ScriptedSource("pbs", [SourceUnreachable("cannot connect", source="pbs", kind="pbs")])
    collector, _ = a_collector(source)

    async def three() -> list[float]:
        return [await collector._poll("pbs") for _ in range(3)]

    delays = asyncio.run(three())
    assert delays == [15.0, 20.0, 45.0]  # 5 s x failures², at least 15 s, never past the 1 min interval
    assert asyncio.run(collector._poll("pbs")) == 60.0


def test_a_crashing_source_is_an_error_on_that_source_and_the_others_still_publish() -> None:
    broken = ScriptedSource("broken", [ZeroDivisionError("bug")])
    fine = ScriptedSource("fine", [an_observation("fine")])
    collector, store = a_collector(broken, fine)
    board = asyncio.run(collector.poll_once())
    states = {s.name: s for s in board.sources}
    assert states["broken"].error == "internal error while polling: ZeroDivisionError"
    assert states["fine"].error is None and states["fine"].observation is not None
    assert store.current() is board
    assert [v.service_id for v in board.verdicts] == ["guest101"]


def test_the_first_board_is_on_show_before_its_answers_are_made_and_later_ones_after() -> None:
    """Nothing judged is on show at the start: the first board goes out before the renderers warm up for it.
    Every later one waits for its answers, so that the first request after its publish finds them made."""
    collector, store = a_collector(ScriptedSource("pbs", [an_observation()]))
    on_show: list[bool] = []
    store.add_warmer(lambda board: on_show.append(store.current() is board))

    async def twice() -> None:
        await collector.poll_once()
        await collector.rebuild()

    asyncio.run(twice())
    assert on_show == [True, False] and store.version == 2


def test_a_failed_poll_keeps_the_last_known_good_observation(tmp_path: Path) -> None:
    history = History.open(tmp_path / "h.sqlite3", retention=timedelta(days=90))
    source = ScriptedSource(
        "pbs", [an_observation(), SourceError("HTTP 503 on /admin/datastore", source="pbs", kind="pbs")]
    )
    collector, _ = a_collector(source, history=history)

    async def twice() -> None:
        await collector.poll_once()
        await collector.poll_once()

    asyncio.run(twice())
    (state,) = collector.states
    assert state.error == "pbs 'pbs': HTTP 503 on /admin/datastore"
    assert state.observation is not None and state.observation.snapshots
    assert state.last_success_at == NOW
    assert len(history.view(since=NOW - timedelta(days=1)).snapshots) == 1
    history.close()


def test_stop_closes_every_source() -> None:
    sources = [ScriptedSource("a", [an_observation("a")]), ScriptedSource("b", [an_observation("b", 102)])]
    collector, store = a_collector(*sources)

    async def run_briefly() -> None:
        collector.start()
        await asyncio.sleep(0.2)
        await collector.stop()

    asyncio.run(run_briefly())
    assert all(s.closed for s in sources)
    assert store.version >= 1


@pytest.mark.parametrize("with_history", [False, True])
def test_what_a_poll_with_news_and_a_publish_freed_goes_back_to_the_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_history: bool
) -> None:
    """And not what a poll that saw nothing new freed: the next poll would only take it again."""
    steps: list[str] = []
    monkeypatch.setattr("backup_glance.collector.release_free_memory", lambda: steps.append("released") or True)
    history = History.open(tmp_path / "h.db", retention=timedelta(days=90)) if with_history else None
    if history is not None:
        recording, flushing = history.record, history.flush

        def record(observation: Observation, *, defer: bool = False) -> object:
            steps.append(f"recorded{' (deferring)' if defer else ''}")
            return recording(observation, defer=defer)

        monkeypatch.setattr(history, "record", record)
        monkeypatch.setattr(history, "flush", lambda: steps.append("flushed") or flushing())
    collector, store = a_collector(ScriptedSource("pbs", [an_observation()]), history=history)
    monkeypatch.setattr(store, "publish", lambda board: steps.append("published"))

    async def two_polls() -> None:
        await collector.poll_once()
        steps.append("again")
        await collector.poll_once()  # the same observation: no news

    asyncio.run(two_polls())
    if with_history:
        assert steps == [
            *("recorded (deferring)", "released", "published", "released", "flushed"),
            *("again", "recorded", "published", "released", "flushed"),
        ]
    else:
        assert steps == ["released", "published", "released", "again", "published", "released"]
    if history is not None:
        history.close()


def test_a_snapshot_write_that_fails_after_the_publish_is_on_the_board_that_rebuild_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many new snapshots are written after the board is out; when that write fails, the same rebuild judges
    again, and the board it returns (and publishes) names the problem. Once the write works, so does the board."""
    monkeypatch.setattr("backup_glance.history._store.DEFERRED_ROWS", 100)
    history = History.open(tmp_path / "h.db", retention=timedelta(days=90))
    first = an_observation()
    (snapshot,) = first.snapshots
    many = tuple(  # the same guest and place, so the record itself adds no other row (scopes, runs)
        msgspec.structs.replace(snapshot, snapshot_id=f"main/ct/101/{n}", taken_at=NOW - timedelta(minutes=n))
        for n in range(2, 400)
    )
    more = replace(first, snapshots=(snapshot, *many))
    source = ScriptedSource("pbs", [first, more])
    collector, store = a_collector(source, history=history)
    assert history._conn is not None
    full = history._conn

    async def polls() -> tuple[Board, Board, Board]:
        calm = await collector.poll_once()
        (pages,) = full.execute("PRAGMA page_count").fetchone()
        full.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        troubled = await collector.poll_once()
        assert store.current() is troubled
        full.execute("PRAGMA max_page_count = 1073741823")
        return calm, troubled, await collector.poll_once()

    calm, troubled, recovered = asyncio.run(polls())
    assert calm.notices == ()
    assert troubled.notices and "the disk is full" in troubled.notices[0]
    assert recovered.notices == ()
    assert len(history.view(since=NOW - timedelta(days=1)).snapshots) == 1 + len(many)
    history.close()
    with closing(sqlite3.connect(tmp_path / "h.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM snapshots").fetchone() == (1 + len(many),)


class TestRejudgingOnlyOnNews:
    def run_collector(
        self, source: ScriptedSource, polls: int, monkeypatch: pytest.MonkeyPatch
    ) -> tuple[int, BoardStore]:
        import backup_glance.collector as module

        calls = 0
        real = module.evaluate

        def counting(**kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return real(**kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(module, "evaluate", counting)
        collector, store = a_collector(source, every=timedelta(seconds=0.02))

        async def scenario() -> None:
            collector.start()
            polled = 0
            while polled < polls:
                await asyncio.sleep(0.02)
                polled = len(source.polled)
            await asyncio.sleep(0.1)
            await collector.stop()

        asyncio.run(scenario())
        return calls, store

    def test_polls_that_bring_nothing_new_are_not_judged_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        same = an_observation()
        source = CountingSource("pbs", [same])
        calls, store = self.run_collector(source, 10, monkeypatch)
        assert len(source.polled) >= 10
        assert calls == 1  # the first answer is news; the nine identical ones are not
        assert [v.service_id for v in store.current().verdicts] == ["guest101"]

    def test_each_poll_with_news_is_judged(self, monkeypatch: pytest.MonkeyPatch) -> None:
        source = CountingSource("pbs", [an_observation(vmid=100 + n) for n in range(5)] + [an_observation(vmid=104)])
        calls, store = self.run_collector(source, 8, monkeypatch)
        assert 5 <= calls <= 6  # one per new answer (news arriving together may share a judgement)
        assert [v.service_id for v in store.current().verdicts] == ["guest104"]


class CountingSource(ScriptedSource):
    def __init__(self, name: str, script: list[Observation | BaseException]) -> None:
        super().__init__(name, script)
        self.polled: list[int] = []

    async def poll(self) -> Observation:
        self.polled.append(len(self.polled))
        return await super().poll()


class StubbornSource(ScriptedSource):
    """A source whose poll swallows the first cancellation and keeps going, as `asyncio.wait_for` can on Python
    3.11 when its future completes in the loop iteration the cancellation lands in."""

    def __init__(self, name: str) -> None:
        super().__init__(name, [an_observation(name)])
        self.swallowed = 0

    async def poll(self) -> Observation:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.swallowed += 1
            await asyncio.sleep(3600)  # cancelled again by a collector that does not give up
        return await super().poll()


def test_stop_finishes_even_when_a_task_swallows_its_cancellation() -> None:
    source = StubbornSource("pbs")
    collector, _ = a_collector(source)

    async def run() -> float:
        collector.start()
        await asyncio.sleep(0.05)  # the poll is now sleeping
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(5):
            await collector.stop()
        return loop.time() - started

    took = asyncio.run(run())
    assert source.swallowed == 1 and source.closed
    assert took < 2.0, f"stop took {took:.2f}s"


class TestOldGeneration:
    """The running service walks Python's oldest GC generation at most hourly, young ones after every publish."""

    @staticmethod
    def collections_by_generation(action: Callable[[], None]) -> list[int]:
        found: list[int] = []

        def seen(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                found.append(info["generation"])

        gc.callbacks.append(seen)
        try:
            action()
        finally:
            gc.callbacks.remove(seen)
        return found

    def test_held_python_never_walks_it_by_itself_and_a_publish_walks_it_once_an_hour(self) -> None:
        clock = [0.0]
        garbage = OldGeneration(every_s=3600, clock=lambda: clock[0])
        before = gc.get_threshold()
        garbage.hold()
        try:
            assert gc.get_threshold() == (before[0], before[1], HELD_THRESHOLD)

            def churn() -> None:  # survivors enough to make Python walk the old generation several times
                kept = [[index] for index in range(300_000)]
                del kept

            assert 2 not in self.collections_by_generation(churn)
            assert self.collections_by_generation(garbage.collect) == []  # within the hour: nothing is walked
            clock[0] = 3600.0
            assert self.collections_by_generation(garbage.collect) == [2]
            assert self.collections_by_generation(garbage.collect) == []
        finally:
            garbage.release()
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0

    def test_held_what_a_publish_leaves_is_set_aside_and_a_cycle_in_it_is_freed_within_the_hour(self) -> None:
        clock = [0.0]
        garbage = OldGeneration(every_s=3600, clock=lambda: clock[0])

        class Node:
            other: Node

        def a_cycle() -> weakref.ref[Node]:
            first, second = Node(), Node()
            first.other, second.other = second, first
            return weakref.ref(first)

        garbage.hold()
        try:
            board = [[index] for index in range(1_000)]  # what a publish leaves alive
            cycle = a_cycle()  # garbage already, but only the cyclic collector can tell
            frozen_before = gc.get_freeze_count()
            garbage.collect()
            assert gc.get_freeze_count() >= frozen_before + len(board), "alive after the publish: set aside"
            assert gc.get_count()[0] < 100, "the young generation starts empty again"
            gc.collect()  # what Python would do by itself does not reach what is set aside
            assert cycle() is not None
            clock[0] = 3600.0
            garbage.collect()
            assert cycle() is None, "the hourly walk frees it"
            assert gc.get_freeze_count() > 0, "and sets aside again what is still alive"
        finally:
            garbage.release()
        assert gc.get_freeze_count() == 0, "released: Python walks everything again"

    def test_unheld_it_leaves_the_old_generation_to_python(self) -> None:
        garbage = OldGeneration(every_s=0, clock=lambda: 0.0)
        assert self.collections_by_generation(garbage.collect) == [1]

    def test_a_second_holder_does_not_undo_the_first_or_keep_the_hold_after_it(self) -> None:
        before = gc.get_threshold()
        first, second = OldGeneration(), OldGeneration()
        first.hold()
        second.hold()
        second.release()
        assert gc.get_threshold()[2] == HELD_THRESHOLD
        first.release()
        assert gc.get_threshold() == before

    def test_judging_and_rendering_pause_young_collections_until_one_after_the_publish(self) -> None:
        # Enough guests that judging them makes Python collect its young generation many times over.
        observation = an_observation()
        targets = tuple(replace(observation.targets[0], key=f"guest:{i}", name=f"guest{i}") for i in range(1500))
        snapshots = tuple(
            msgspec.structs.replace(observation.snapshots[0], target_key=f"guest:{i}", snapshot_id=f"main/ct/{i}/1")
            for i in range(1500)
        )
        collector, store = a_collector(
            ScriptedSource("pbs", [replace(observation, targets=targets, snapshots=snapshots)])
        )

        async def rebuild() -> list[int]:
            await collector._poll("pbs")
            return await self.collected_while(collector.rebuild())

        found = asyncio.run(rebuild())
        assert len(store.current().verdicts) == 1500
        assert found == [1], "one collection of the young generations, after the publish, and none before it"
        assert gc.isenabled()

    async def collected_while(self, work: Coroutine[object, object, object]) -> list[int]:
        found: list[int] = []

        def seen(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                found.append(info["generation"])

        gc.collect()  # nothing young left over from the setup
        gc.callbacks.append(seen)
        try:
            await work
        finally:
            gc.callbacks.remove(seen)
        return found

    def test_a_started_collector_holds_it_until_stopped(self) -> None:
        before = gc.get_threshold()
        collector, _ = a_collector(ScriptedSource("pbs", [an_observation()]))

        async def run() -> int:
            collector.start()
            held = gc.get_threshold()[2]
            await collector.stop()
            return held

        assert asyncio.run(run()) == HELD_THRESHOLD
        assert gc.get_threshold() == before


def test_a_poll_that_brings_nothing_new_still_tells_metrics_the_api_and_the_page_when_the_source_answered() -> None:
    """No new board for it (nothing to judge again), yet `/metrics`, the API and the page show this poll's times:
    a Prometheus alert on the age of the last answer must not fire because the homelab was quiet, and the page
    must not make a source that answers every five minutes look stalled."""
    clock = [NOW]
    source = ScriptedSource("pbs", [an_observation()])
    store = BoardStore()
    collector = Collector(
        sources=[source],
        poll_intervals={"pbs": timedelta(minutes=5)},
        services=[],
        store=store,
        display_tz="UTC",
        defaults=Defaults(),
        clock=lambda: clock[0],
    )
    client = TestClient(create_app(Config(timezone="UTC"), store))

    def answered() -> tuple[str, float, float, list[str]]:
        api = client.get("/api/v1/status").json()
        page = client.get("/").text
        sources = page[page.index(">Sources<") :]
        metrics = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("backup_glance_source_") and 'source="pbs"' in line
        }
        return (
            api["sources"][0]["last_success_at"],
            metrics["backup_glance_source_last_success_timestamp_seconds"],
            metrics["backup_glance_source_poll_duration_seconds"],
            re.findall(r'shrink-0">([^<]*)</span>', sources),
        )

    async def scenario() -> list[tuple[str, float, float, list[str]]]:
        seen = []
        await collector._poll("pbs")
        await collector.rebuild()
        seen.append(await asyncio.to_thread(answered))
        version = store.version
        for minutes in (5, 10):
            clock[0] = NOW + timedelta(minutes=minutes)
            await collector._poll("pbs")  # the same answer again: no news
            assert store.version == version
            seen.append(await asyncio.to_thread(answered))
        return seen

    seen = asyncio.run(scenario())
    assert [(at, stamp, shown) for at, stamp, _, shown in seen] == [
        (at.isoformat(), at.timestamp(), [f"{at:%H:%M}"])
        for at in (NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=10))
    ]
    assert all(0 <= seconds < 5 for _, _, seconds, _ in seen)


def test_a_board_that_cannot_be_judged_again_says_so_and_is_not_retried_in_a_spin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import backup_glance.collector as module

    real, calls = module.evaluate, []

    def failing_after_the_first(**kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 1 and not healed:
            raise ValueError("a bug in one verdict")
        return real(**kwargs)  # type: ignore[arg-type]

    healed = False
    monkeypatch.setattr(module, "evaluate", failing_after_the_first)
    monkeypatch.setattr(module, "RETRY_AFTER_FAILURE_S", 0.2)
    source = CountingSource("pbs", [an_observation(vmid=101)])
    collector, store = a_collector(source, every=timedelta(hours=1), display_tz="Europe/Madrid")

    async def scenario() -> tuple[Board, int, Board]:
        nonlocal healed
        collector.start()
        await asyncio.sleep(0.2)
        store.publish(replace(store.current(), next_change_at=NOW - timedelta(hours=1)))  # a deadline long past
        collector._news.set()
        await asyncio.sleep(0.5)
        kept, tries = store.current(), len(calls)
        healed = True
        await asyncio.sleep(0.4)
        await collector.stop()
        return kept, tries, store.current()

    kept, tries, healed_board = asyncio.run(scenario())
    assert [v.service_id for v in kept.verdicts] == ["guest101"]  # the last good verdicts stay up...
    assert kept.notices == (
        "the board could not be judged again since 13:00 (an internal error, in the log): what shows was judged at "
        "13:00",
    )
    assert kept.overall is Severity.UNKNOWN and kept.judging_failed_at == NOW  # ...and the board is not called fine
    assert 2 <= tries <= 5  # retried about every RETRY_AFTER_FAILURE_S, not in a spin
    assert healed_board.notices == () and healed_board.overall is Severity.OK  # judged again, the notice goes


def test_polls_without_news_do_not_retry_a_failed_judging_before_its_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The board's notice of the failure is no history problem: it must not read as "the history's state changed".
    import backup_glance.collector as module

    calls: list[int] = []
    real, broken = module.evaluate, False

    def failing_once_broken(**kwargs: object) -> object:
        if broken:
            calls.append(1)
            raise ValueError("a bug in one verdict")
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "evaluate", failing_once_broken)
    source = CountingSource("pbs", [an_observation(vmid=101)])
    history = History.open(tmp_path / "history.sqlite3", retention=timedelta(days=30))
    collector, _store = a_collector(source, history=history, every=timedelta(seconds=0.03))

    async def scenario() -> None:
        nonlocal broken
        collector.start()
        await asyncio.sleep(0.2)  # the first board, and the one after the start's prune
        broken = True
        collector._news.set()  # one judging, which fails
        await asyncio.sleep(0.6)
        await collector.stop()

    asyncio.run(scenario())
    history.close()
    assert len(source.polled) >= 10
    assert len(calls) == 1  # the failed one; no retry within the minute


def test_a_start_whose_first_judging_fails_serves_a_board_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import backup_glance.collector as module

    def broken(**kwargs: object) -> object:
        raise ValueError("a bug that history's rows bring out")

    monkeypatch.setattr(module, "evaluate", broken)
    collector, store = a_collector(ScriptedSource("pbs", [an_observation()]))
    assert asyncio.run(collector.rebuild_or_say_why()) is False  # as `serve_board` starts: no exception
    board = store.current()
    assert board.notices == (
        "the board could not be judged again since 12:00 (an internal error, in the log): nothing was judged yet",
    )
    assert board.overall is Severity.UNKNOWN and board.judging_failed_at == NOW
