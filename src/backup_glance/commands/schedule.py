"""`backup-glance schedule EXPR`: show the next runs of a schedule, like `systemd-analyze calendar`.

    $ backup-glance schedule "mon..fri 02:00" --tz Europe/Vienna --after 2025-01-15T12:00 -n 2
    Expression:  mon..fri 02:00  (proxmox, Europe/Vienna)
    Description: Mon–Fri at 02:00 (Europe/Vienna)
      1  Thu 2025-01-16 02:00:00 +01:00  in 14h
      2  Fri 2025-01-17 02:00:00 +01:00  in 1d 14h

An invalid expression, zone or --after exits 2 with the reason (and a caret under the bad part) on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ..errors import ScheduleError
from ..schedule import DIALECTS, Schedule, parse_schedule
from ..schedule._common import MAX_EPOCH, MIN_EPOCH, floor_epoch

MAX_RUNS = 1000


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser(
        "schedule",
        parents=parents,
        help="show the next runs of a schedule expression",
        description="Show the next runs of a Proxmox calendar event or cron expression.",
    )
    parser.add_argument("expression", metavar="EXPR", help="e.g. 'mon..fri 02:00' or '30 2 * * 1-5'")
    parser.add_argument("--dialect", choices=DIALECTS, default="proxmox", help="default: proxmox")
    parser.add_argument("--tz", default="UTC", metavar="ZONE", help="IANA time zone (default: UTC)")
    parser.add_argument("--after", metavar="TIME", help="ISO-8601 (naive = in --tz) or epoch seconds; default: now")
    parser.add_argument("-n", type=_count, default=5, metavar="N", help=f"number of runs, 1..{MAX_RUNS} (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_RUNS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_RUNS}, got {value}")
    return value


def parse_after(text: str | None, schedule: Schedule) -> datetime:
    """--after as an aware datetime: epoch seconds, or ISO-8601 (naive means in the schedule's zone)."""
    if text is None:
        return datetime.now(UTC)
    raw = text.strip()
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"--after: not an ISO-8601 time or epoch seconds: {text!r}") from None
    when = when.replace(tzinfo=schedule.tzinfo) if when.tzinfo is None else when
    if not MIN_EPOCH <= floor_epoch(when) <= MAX_EPOCH:  # the engine's range: it would answer "no runs"
        first, last = (datetime.fromtimestamp(t, UTC).date() for t in (MIN_EPOCH, MAX_EPOCH))
        raise ValueError(f"--after: {text!r} is outside the years schedules are computed for ({first} to {last})")
    return when


def relative(seconds: float) -> str:
    """Time until a run, two largest units.

    >>> relative(3 * 3600 + 12 * 60 + 5), relative(59), relative(90061), relative(0)
    ('in 3h 12m', 'in 59s', 'in 1d 1h', 'now')
    """
    left = int(seconds)
    if left <= 0:
        return "now"
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    parts = []
    for name, size in units:
        if left >= size:
            parts.append(f"{left // size}{name}")
            left %= size
        if len(parts) == 2 or (parts and left == 0):
            break
    return "in " + " ".join(parts)


def run(args: argparse.Namespace) -> int:
    try:
        schedule = parse_schedule(args.expression, dialect=args.dialect, tz=args.tz)
    except ScheduleError as exc:
        caret = exc.caret() if exc.expression == args.expression else ""
        print(f"backup-glance schedule: {exc}{caret}", file=sys.stderr)
        return 2
    try:
        after = parse_after(args.after, schedule)
    except ValueError as exc:
        print(f"backup-glance schedule: {exc}", file=sys.stderr)
        return 2
    runs = []
    when: datetime | None = after
    for _ in range(args.n):
        when = schedule.next_after(when) if when is not None else None
        if when is None:
            break
        runs.append(when)
    if args.json:
        doc = {
            "expression": schedule.expression,
            "dialect": schedule.dialect,
            "timezone": schedule.timezone,
            "description": schedule.describe(),
            "next": [r.isoformat() for r in runs],
        }
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    print(f"Expression:  {schedule.expression}  ({schedule.dialect}, {schedule.timezone})")
    print(f"Description: {schedule.describe()}")
    if not runs:
        print(f"  no runs after {after.astimezone(schedule.tzinfo).replace(microsecond=0).isoformat()}")
    for i, r in enumerate(runs, 1):
        stamp = f"{r:%a} {r.isoformat(sep=' ')[:19]} {r.isoformat()[-6:]}"  # %Y gives "1", not "0001"
        print(f"  {i:>{len(str(args.n))}}  {stamp}  {relative(r.timestamp() - after.timestamp())}")
    return 0


if __name__ == "__main__":
    from ..cli import main

    sys.exit(main(["schedule", *sys.argv[1:]]))
