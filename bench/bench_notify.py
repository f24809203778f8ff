"""What the notifier adds to a board rebuild of 500 services when nothing changed.

    .venv/bin/python bench/bench_notify.py [--services 500] [--targets 3] [--rounds 300]

Target: under 5 ms per rebuild. Measured: the publish hook (`on_board`, what `BoardStore.publish` calls) plus
one `step` — the policy for every target, with a repeat and quiet hours configured, over a fresh Board object
each round, as the collector publishes one — on a notifier whose history file already holds the announced
state of the board's problems (what its first board left behind). Nothing is written and nothing is sent in the
steady state; the bench fails if anything is. For scale, the first board (which announces everything and writes
it in one transaction per target) is timed too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "web"))

from web_builders import NOW, ZONE, a_full_board  # noqa: E402

from backup_glance.model import Severity  # noqa: E402
from backup_glance.notify import Message, Notifier, Target  # noqa: E402
from backup_glance.notify._policy import Rule  # noqa: E402
from backup_glance.notify._store import NotifyStore  # noqa: E402


class CountingSender:
    """Accepts everything, counts it: the bench measures deciding, not a network."""

    def __init__(self, name: str) -> None:
        self.shown = name
        self.sent = 0

    def send(self, message: Message) -> bool:
        self.sent += 1
        return True


async def run(services: int, targets: int, rounds: int, folder: Path) -> dict[str, float]:
    senders = [CountingSender(f"bench://{i}") for i in range(targets)]
    rules = [Rule(Severity.WARNING, repeat=timedelta(hours=24)), Rule(Severity.CRITICAL), Rule(alerts=False)]
    notifier = Notifier(
        targets=[
            Target(f"t{i}", rules[i % len(rules)], sender, quiet=(clock_time(22), clock_time(7)))
            for i, sender in enumerate(senders)
        ],
        store=NotifyStore.open(folder / "history.sqlite3"),
        clock=lambda: NOW,
        timezone=ZONE,
    )
    board = a_full_board(services)
    start = time.perf_counter()
    notifier.on_board(board)
    await notifier.step()
    first_ms = (time.perf_counter() - start) * 1000
    await notifier.flush()
    sent_after_first = sum(s.sent for s in senders)
    timings = []
    for index in range(rounds):
        fresh = replace(board, generated_at=NOW + timedelta(seconds=index))  # a new object, same verdicts
        start = time.perf_counter()
        notifier.on_board(fresh)
        await notifier.step()
        timings.append(time.perf_counter() - start)
    await notifier.flush()
    if sum(s.sent for s in senders) != sent_after_first:
        raise RuntimeError("a steady board sent a message")
    await notifier.stop()
    q = statistics.quantiles(timings, n=100)
    return {
        "first": first_ms,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "max": max(timings) * 1000,
        "problems": sum(1 for v in board.verdicts if v.severity is not Severity.OK),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run(args.services, args.targets, args.rounds, Path(folder)))
    print(
        f"notify step, {args.services} services ({result['problems']:.0f} not ok), {args.targets} targets, "
        f"{args.rounds} rounds"
    )
    print(f"  nothing changed: p50 {result['p50']:.3f} ms  p99 {result['p99']:.3f} ms  max {result['max']:.3f} ms")
    print(f"  first board (announces everything, one transaction per target): {result['first']:.1f} ms")
    print(f"  {'PASS' if result['p99'] < 5 else 'MISS'}  p99 < 5 ms when nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
