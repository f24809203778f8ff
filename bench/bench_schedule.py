"""Benchmark the schedule engine: `python bench/bench_schedule.py`.

Prints:
1. next_after calls/s over 10,000 distinct Proxmox expressions (realistic UI/doc examples plus random
   ones built from grammar fragments with a seeded RNG), 5 chained calls each, parsing excluded;
2. the same workload through the `oncalendar` package (TzIterator, created outside the timer) on the
   expressions it also accepts, and our speed as a ratio to it;
3. between() over 31 days for 200 realistic backup schedules, in ms.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from backup_glance.schedule import ScheduleError, parse_schedule

SEED = 20250115
ZONES = ["UTC", "Europe/Vienna", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
REALISTIC = [
    "daily", "hourly", "weekly", "monthly", "yearly", "quarterly", "minutely", "semi-annually",
    "02:00", "02:30", "21:00", "2,22:30", "mon..fri 00:00", "mon..fri */1:00", "mon..fri 7..18:00/15",
    "sun 01:00", "sat *-1..7 15:00", "sat *-1..7 02:00", "*:0/30", "0/2:00", "*/30", "*/2:00",
    "mon..fri *:00", "sat 18:15", "mon,wed 4:00", "*-*-01 07:00", "mon..fri 22:00", "8:00/15",
    "*-*-* 00:00:00", "*-01,04,07,10-01 00:00:00", "fri 12..13:5/20", "12/2:5", "*:00/5", "mon..wed *:30/10",
]  # fmt: skip
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _num_part(rng: random.Random, lo: int, hi: int) -> str:
    kind = rng.random()
    a = rng.randint(lo, hi)
    if kind < 0.45:
        return str(a)
    if kind < 0.6:
        b = rng.randint(a, hi)
        return f"{a}..{b}"
    if kind < 0.75:
        return f"{a}/{rng.randint(1, max(1, hi // 2))}"
    if kind < 0.85:
        return f"*/{rng.randint(1, max(1, hi // 2))}"
    if kind < 0.93:
        return ",".join(str(x) for x in sorted(rng.sample(range(lo, hi + 1), 3)))
    return "*"


def random_expression(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(REALISTIC)
    parts = []
    if rng.random() < 0.4:
        a, b = rng.sample(WEEKDAYS, 2)
        parts.append(rng.choice([a, f"{a}..{b}", f"{a},{b}"]))
    if rng.random() < 0.25:
        day = _num_part(rng, 1, 28)
        month = rng.choice(["*", _num_part(rng, 1, 12)])
        parts.append(rng.choice([f"*-{month}-{day}", f"{month}-{day}", f"{rng.randint(2025, 2030)}-{month}-{day}"]))
    if rng.random() < 0.85 or not parts:
        hour = _num_part(rng, 0, 23)
        minute = _num_part(rng, 0, 59)
        tail = f":{_num_part(rng, 0, 59)}" if rng.random() < 0.1 else ""
        parts.append(rng.choice([f"{hour}:{minute}{tail}", f"{hour}:{minute}", minute]))
    expr = " ".join(parts)
    return expr + " UTC" if rng.random() < 0.05 else expr


def make_workload(n: int = 10_000) -> list[tuple[str, str, datetime]]:
    rng = random.Random(SEED)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str, datetime]] = []
    while len(out) < n:
        expr, tz = random_expression(rng), rng.choice(ZONES)
        if (expr, tz) in seen:
            continue
        try:
            parse_schedule(expr, "proxmox", tz)
        except ScheduleError:
            continue
        seen.add((expr, tz))
        start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        out.append((expr, tz, start))
    return out


def bench_next_after(work: list[tuple[str, str, datetime]], chain: int = 5) -> tuple[float, int]:
    schedules = [(parse_schedule(e, "proxmox", tz), start) for e, tz, start in work]
    calls = 0
    t0 = time.perf_counter()
    for s, start in schedules:
        when: datetime | None = start
        for _ in range(chain):
            if when is None:
                break
            when = s.next_after(when)
            calls += 1
    return time.perf_counter() - t0, calls


def bench_oncalendar(work: list[tuple[str, str, datetime]], chain: int = 5) -> tuple[float, int, list[int]]:
    import oncalendar

    iterators = []
    accepted = []
    for i, (expr, tz, start) in enumerate(work):
        try:
            iterators.append(
                oncalendar.TzIterator(expr, start.astimezone(parse_schedule("daily", "proxmox", tz).tzinfo))
            )
            accepted.append(i)
        except Exception:  # oncalendar rejects much of the Proxmox grammar
            continue
    calls = 0
    t0 = time.perf_counter()
    for it in iterators:
        for _ in range(chain):
            try:
                next(it)
            except StopIteration:
                break
            calls += 1
    return time.perf_counter() - t0, calls, accepted


def bench_between(n: int = 200) -> tuple[float, int]:
    rng = random.Random(SEED + 1)
    mix = ["daily", "02:00", "03:30", "21:00", "mon..fri 01:00", "sun 04:00", "sat 18:15", "weekly", "monthly",
           "sat *-1..7 02:00", "2,22:30", "0/6:00", "hourly", "*:0/30", "mon..fri 7..18:00/15"]  # fmt: skip
    weights = [20, 20, 10, 10, 10, 6, 5, 5, 4, 3, 3, 2, 1, 0.6, 0.4]
    schedules = [parse_schedule(expr, "proxmox", rng.choice(ZONES)) for expr in rng.choices(mix, weights=weights, k=n)]
    start = datetime(2025, 3, 15, tzinfo=UTC)  # spans the March DST changes
    end = start + timedelta(days=31)
    t0 = time.perf_counter()
    count = sum(sum(1 for _ in s.between(start, end)) for s in schedules)
    return time.perf_counter() - t0, count


def main() -> int:
    work = make_workload()
    elapsed, calls = bench_next_after(work)
    print(f"next_after: {calls} calls over {len(work)} distinct expressions in {elapsed:.3f}s "
          f"= {calls / elapsed:,.0f} calls/s")  # fmt: skip
    on_elapsed, on_calls, accepted = bench_oncalendar(work)
    subset = [work[i] for i in accepted]
    our_elapsed, our_calls = bench_next_after(subset)
    ours, theirs = our_calls / our_elapsed, on_calls / on_elapsed if on_elapsed else float("nan")
    print(f"oncalendar accepts {len(accepted)} of them: oncalendar {theirs:,.0f} calls/s, "
          f"ours {ours:,.0f} calls/s on the same subset -> {ours / theirs:.1f}x")  # fmt: skip
    b_elapsed, occurrences = bench_between()
    print(f"between(): 200 schedules x 31 days = {occurrences} occurrences in {b_elapsed * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
