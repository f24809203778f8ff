"""What does the running service spend per cycle, from poll to the first answer after it?

Run: .venv/bin/python bench/bench_cycle.py [--rounds N] [--restart] [GUESTS ...]  (default: 3 rounds; 2000 10000)

For each size: N guests x 60 snapshots on 3 datastores and 20 namespaces (the PBS and PVE simulators of
bench_proxmox_poll, in a child process, over real HTTPS). The real collector polls both, bounds, records into a
real history file, views it, judges, renders the usual answers and publishes, exactly as `serve` does:

  first cycle   a fresh start
  quiet cycle   5 % of the groups got a new snapshot (and their backup tasks)
  still cycle   nothing changed and no deadline passed (the collector does not re-judge at all)

The quiet and still cycles are repeated (`--rounds`, a fresh 5 % change each round) and judged by their
medians: one cycle's CPU time on a shared 2-core machine moves by a quarter from run to run.
Printed per cycle: wall and CPU seconds of this process (the simulators do not count), the CPU share of the
first cycle, peak RSS, and the first request's time after the publish. The first cycle also tells when its board
was out: the collector publishes before it writes the new snapshots to the history file (seconds at 10,000
guests), so a cycle's end is later than its board. Each size runs in a fresh process, so its peak RSS is its own.
With --restart, each size runs twice on one history file: the second run is a service restarted on the history the
first one wrote (its first record compares 600,000 listed snapshots with the rows the file holds), as after an
upgrade or a reboot.
Targets (issue 12): the first board (poll + verdicts with history) under 10 s wall and 300 MB at 10,000 guests; quiet
<= 10 % and still <= 2 % of the first cycle's CPU; at 2,000 guests, the page's first request after a cycle under
50 ms (it is made on request, once per board and poll; timed in cycles of its own, after the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import bench_proxmox_poll as lab_bench
from backup_glance import collector as collector_module
from backup_glance.board import BoardStore
from backup_glance.collector import Collector
from backup_glance.config import Config, PbsSourceConfig, PveSourceConfig
from backup_glance.health import Defaults
from backup_glance.history import History
from backup_glance.serving import run_event_loop
from backup_glance.sources.pbs import PbsSource
from backup_glance.sources.pve import PveSource
from backup_glance.web import create_app
from backup_glance.web.widgets import WIDGETS

ROUNDS = 3
QUIET_STILL = ("quiet", "still")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def poll_cycle(collector: Collector, names: list[str]) -> bool:
    """One cycle as the running service does it: poll every source at once (each has its own loop in `serve`,
    so one source's history write runs while another is read), then re-judge only if there was news."""
    await asyncio.gather(*(collector._poll(name) for name in names))
    news = collector._news.is_set()
    if news:
        collector._news.clear()
        await collector.rebuild()
    return news


class Steps:
    """Where a cycle's time goes: each step's wall and CPU seconds (of the thread it ran in), timed from outside
    by wrapping what the collector calls. The polls interleave on the event loop: only their wall time is theirs."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, float, float | None]] = []
        self.published_at: float | None = None  # perf_counter when the first board was published

    def wrap(self, label: str, func: Callable[..., Any], of: Callable[..., str] | None = None) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                named = f"{label} {of(*args)}" if of is not None else label
                self.taken.append((named, time.perf_counter() - wall, time.thread_time() - cpu))

        return timed

    def wrap_async(self, label: str, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            wall = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                self.taken.append((label, time.perf_counter() - wall, None))

        return timed

    def instrument(self, collector: Collector, history: History, store: BoardStore) -> None:
        for name, source in collector._sources.items():
            source.poll = self.wrap_async(f"poll {name}", source.poll)  # type: ignore[method-assign]
            bounds = collector._bounds[name]
            bounds.bound = self.wrap(f"bound {name}", bounds.bound)  # type: ignore[method-assign]
        history.record = self.wrap("record", history.record, lambda seen: seen.source)  # type: ignore[method-assign]
        history.view = self.wrap("view", history.view)  # type: ignore[method-assign]
        collector_module.evaluate = self.wrap("evaluate", collector_module.evaluate)
        store.prepare = self.wrap("prepare", store.prepare)  # type: ignore[method-assign]
        store.publish = self.wrap("publish", store.publish)  # type: ignore[method-assign]
        history.flush = self.wrap("write deferred", history.flush)  # type: ignore[method-assign]
        publish = store.publish

        def noting(board: Any) -> None:
            publish(board)
            self.published_at = self.published_at or time.perf_counter()

        store.publish = noting  # type: ignore[method-assign]

    def take(self) -> str:
        shown = [
            f"{label} {wall:.2f} s" + (f" ({cpu:.2f} CPU)" if cpu is not None and wall - cpu > 0.05 else "")
            for label, wall, cpu in self.taken
        ]
        self.taken.clear()
        return ", ".join(shown)


def first_request_ms(web: Any) -> float:
    """What the first /glance/status request after the publish costs in the process (cache lookup or render)."""
    params = WIDGETS["status"].parse({"column": "small", "limit": "8"})
    began = time.perf_counter()
    web.fragments.get(("status", params), web.widget_builder("status", params))
    return (time.perf_counter() - began) * 1000


def first_page_ms(web: Any) -> float:
    """What the first request for the page (`/`) after the cycle costs in the process: the page is made on request,
    once per board and poll."""
    began = time.perf_counter()
    web.pages.get("page", web.build_page, web.up_to_date)[1].result()
    return (time.perf_counter() - began) * 1000


async def measure(guests: int, history_dir: str | None = None) -> None:
    lab_bench.GUESTS = guests
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(child, guests), daemon=True)
    process.start()
    endpoints = parent.recv()
    common = {"token_id": lab_bench.TOKEN_ID, "token_secret": lab_bench.SECRET, "timeout": "60s", "max_in_flight": 8}
    pbs_url, pbs_pin = endpoints["pbs"]
    pve_url, pve_pin = endpoints["pve"]
    pbs = PbsSource(PbsSourceConfig(name="pbs", type="pbs", url=pbs_url, fingerprint=pbs_pin, **common))
    pve = PveSource(PveSourceConfig(name="pve", type="pve", url=pve_url, fingerprint=pve_pin, **common))
    with tempfile.TemporaryDirectory() if history_dir is None else contextlib.nullcontext(history_dir) as tmp:
        history = History.open(Path(tmp) / "history.sqlite3", retention=timedelta(days=90))
        store = BoardStore(timezone=lab_bench.DISPLAY_TZ)
        app = create_app(Config(timezone=lab_bench.DISPLAY_TZ), store)
        collector = Collector(
            sources=[pbs, pve],
            poll_intervals={"pbs": timedelta(minutes=5), "pve": timedelta(minutes=5)},
            deadlines={"pbs": timedelta(minutes=5), "pve": timedelta(minutes=5)},
            services=[],
            store=store,
            display_tz=lab_bench.DISPLAY_TZ,
            defaults=Defaults(),
            history=history,
        )
        collector._garbage.hold()  # as `start` does: the old GC generation is walked hourly, not every cycle
        steps = Steps()
        steps.instrument(collector, history, store)
        rows = []
        pages: list[float] = []
        first_steps = ""
        began = time.perf_counter()
        for label in ("first", *("quiet", "still") * ROUNDS):
            if label == "quiet":
                parent.send("change")
                parent.recv()
            wall, cpu = time.perf_counter(), time.process_time()
            news = await poll_cycle(collector, ["pbs", "pve"])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            request_ms = first_request_ms(app.state.web)
            rows.append((label, wall, cpu, news, request_ms, rss_mb()))
            first_steps = first_steps or steps.take()
            first_board = (steps.published_at or time.perf_counter()) - began
            steps.taken.clear()
        # After the cycles above, so that no page counts in their peak RSS: the page's first request after a quiet
        # cycle and after a still one (the page says when each source last answered: it is made again after both).
        for label in ("quiet", "still") * ROUNDS:
            if label == "quiet":
                parent.send("change")
                parent.recv()
            await poll_cycle(collector, ["pbs", "pve"])
            pages.append(first_page_ms(app.state.web))
        await pbs.aclose()
        await pve.aclose()
        collector._garbage.release()
        history.close()
    parent.send("stop")
    process.join(timeout=30)
    first_cpu = rows[0][2]
    print(f"{guests} guests x {lab_bench.SNAPSHOTS} snapshots ({guests * lab_bench.SNAPSHOTS:,} snapshots)")
    for label, wall, cpu, news, request_ms, rss in rows:
        judged = "judged" if news else "no news: not judged"
        print(
            f"  {label:5} cycle {wall:6.2f} s wall {cpu:6.2f} s CPU ({cpu / first_cpu:6.1%} of first)  "
            f"first request {request_ms:6.2f} ms  peak RSS {rss:6.1f} MB  ({judged})"
        )
    print(f"  first board out {first_board:.2f} s after the first cycle began (its cycle: {rows[0][1]:.2f} s)")
    after_quiet, after_still = statistics.median(pages[0::2]), statistics.median(pages[1::2])
    shown = ", ".join(f"{ms:.0f}" for ms in pages)
    print(f"  the page's first request after a quiet, a still, ... cycle: {shown} ms")
    print(f"  first cycle, step by step (wall; CPU where it differs): {first_steps}")
    quiet, still = (statistics.median(row[2] for row in rows if row[0] == label) / first_cpu for label in QUIET_STILL)
    print(f"  medians of {ROUNDS} rounds: quiet {quiet:.1%}, still {still:.1%} of the first cycle's CPU")
    print(f"  {'PASS' if first_board < 10 else 'FAIL'}  first board (poll + verdicts with history) under 10 s wall")
    print(f"  {'PASS' if rows[-1][5] < 300 else 'FAIL'}  peak RSS under 300 MB")
    print(f"  {'PASS' if quiet <= 0.10 else 'FAIL'}  quiet cycle <= 10 % of the first cycle's CPU (median {quiet:.1%})")
    print(f"  {'PASS' if still <= 0.02 else 'FAIL'}  still cycle <= 2 % of the first cycle's CPU (median {still:.1%})")
    if guests == 2000:
        page_ms = max(after_quiet, after_still)
        medians = f"medians {after_quiet:.0f} ms after a quiet cycle, {after_still:.0f} ms after a still one"
        print(f"  {'PASS' if page_ms < 50 else 'FAIL'}  the page under 50 ms at 2,000 guests ({medians})")


def _measure(guests: int, rounds: int, history_dir: str | None) -> None:
    global ROUNDS
    ROUNDS = rounds
    run_event_loop(measure(guests, history_dir))  # on uvloop, as `serve` runs


def _serve(conn: Any, guests: int) -> None:
    lab_bench.GUESTS = guests
    lab_bench.serve(conn)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--rounds" in arguments:
        at = arguments.index("--rounds")
        count = arguments[at + 1 : at + 2]
        if not count or not count[0].isdigit() or int(count[0]) < 1:
            sys.exit("bench_cycle: --rounds needs a count of 1 or more, e.g. --rounds 5")
        ROUNDS = int(count[0])
        del arguments[at : at + 2]
    restart = "--restart" in arguments
    if restart:
        arguments.remove("--restart")
    if not all(arg.isdigit() and int(arg) > 0 for arg in arguments):
        sys.exit(f"bench_cycle: guest counts are whole numbers, not {' '.join(arguments)}")
    sizes = [int(arg) for arg in arguments] or [2000, 10000]
    for size in sizes:
        with tempfile.TemporaryDirectory() as kept:
            for label in ("on a new history file", "restarted on the history file of the run before")[: 1 + restart]:
                if restart:
                    print(f"-- {label}")
                # Each run in a process of its own: its peak RSS is its own, not the peak of the runs before it.
                run = multiprocessing.get_context("spawn").Process(
                    target=_measure, args=(size, ROUNDS, kept if restart else None)
                )
                run.start()
                run.join()
                if run.exitcode != 0:
                    sys.exit(f"bench_cycle: the run at {size} guests failed (exit code {run.exitcode})")
