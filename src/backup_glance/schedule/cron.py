"""Cron schedules (5 fields, Debian/Vixie semantics) through cronsim, plus the `@daily`-style descriptors.

cronsim is the referee: day-of-month and day-of-week are ORed when both are restricted and ANDed when
either starts with `*` (Debian cron). Its DST rule, for expressions whose minute and hour fields do not
start with `*`, is Debian's: a time skipped by spring-forward runs at the first valid minute after the
gap (02:30 -> 03:00), a repeated time runs once, at its first occurrence. Expressions with `*` in the
minute or hour field tick in real (UTC) time.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from ..errors import ScheduleError
from ._common import MAX_EPOCH, MIN_EPOCH, Schedule, floor_epoch
from .describe import ordinal

__all__ = ["DESCRIPTORS", "CronSchedule", "parse_cron"]

# Vixie cron's nicknames (case-sensitive there, so here too); cronsim itself rejects them.
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TH = re.compile(r"\b(\d+)th\b")
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MAX_SKIPS = 8  # results cronsim may return on the wrong side of `when` around a DST fold


class CronSchedule(Schedule):
    """A 5-field cron expression evaluated in a zone."""

    __slots__ = ("fields",)

    def __init__(self, expression: str, timezone_name: str, zone: ZoneInfo, fields: str) -> None:
        super().__init__(expression, "cron", timezone_name, zone)
        self.fields = fields  # the 5 fields, descriptors expanded

    def describe(self) -> str:
        try:
            text = CronSim(self.fields, datetime(2000, 1, 1, tzinfo=self.tzinfo)).explain()
        except Exception:  # explain is best effort; the schedule itself is valid
            text = f"cron schedule {self.fields!r}"
        # cronsim writes every ordinal with "th" ("the 31th day"); English does not.
        return f"{_TH.sub(lambda m: ordinal(int(m.group(1))), text)} ({self.timezone})"

    def _iterate(self, t: int, reverse: bool) -> CronSim | None:
        if not MIN_EPOCH + 86400 * 366 <= t <= MAX_EPOCH - 86400 * 366:
            return None
        return CronSim(self.fields, datetime.fromtimestamp(t, self.tzinfo), reverse=reverse)

    def _next_epoch(self, last: int) -> int | None:
        it = self._iterate(last, reverse=False)
        if it is None:
            return None
        for _ in range(_MAX_SKIPS):
            try:
                found = floor_epoch(next(it))
            except (StopIteration, OverflowError, ValueError):
                return None
            if found > last:  # in the second pass of a fold cronsim's wall clock can land before `last`
                return found
        return None

    def _prev_epoch(self, t: int) -> int | None:
        it = self._iterate(t, reverse=True)
        if it is None:
            return super()._prev_epoch(t)
        try:
            found = floor_epoch(next(it))
            for _ in range(_MAX_SKIPS):
                if found < t:
                    break
                found = floor_epoch(next(it))
        except (StopIteration, OverflowError, ValueError):
            return None
        # Mirror next_after exactly: the answer must be what forward iteration produces.
        forward = self._next_epoch(found - 1)
        if forward is None or forward >= t:
            return super()._prev_epoch(t)
        for _ in range(_MAX_SKIPS):
            after = self._next_epoch(forward)
            if after is None or after >= t:
                return forward
            forward = after
        return super()._prev_epoch(t)


def parse_cron(expression: str, timezone_name: str, zone: ZoneInfo) -> CronSchedule:
    """Parse a 5-field cron expression or descriptor; ScheduleError names the bad field."""
    if not isinstance(expression, str):
        raise ScheduleError("a schedule expression must be a string", expression=repr(expression))
    tokens = list(re.finditer(r"\S+", expression))
    if not tokens:
        raise ScheduleError("empty cron expression at position 0", expression=expression, position=0)
    first = tokens[0]
    if first.group().startswith("@"):
        word = first.group()
        if len(tokens) > 1 or word not in DESCRIPTORS:
            at = tokens[1].start() if word in DESCRIPTORS else first.start()
            known = ", ".join(DESCRIPTORS)
            what = "@reboot is not a schedule" if word == "@reboot" else f"unknown descriptor {word!r}"
            if word in DESCRIPTORS:
                what = f"descriptor {word!r} must stand alone"
            raise ScheduleError(f"{what} at position {at} (known: {known})", expression=expression, position=at)
        fields = DESCRIPTORS[word]
    else:
        if len(tokens) != 5:
            at = tokens[5].start() if len(tokens) > 5 else len(expression.rstrip())
            raise ScheduleError(
                f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(tokens)} at position {at}",
                expression=expression,
                position=at,
            )
        fields = " ".join(tok.group() for tok in tokens)
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
    except CronSimError as exc:
        message = str(exc)
        name = message.removeprefix("Bad ")
        index = FIELD_NAMES.index(name) if name in FIELD_NAMES else 0
        tok = tokens[index] if index < len(tokens) else first
        what = f"bad {name} {tok.group()!r}" if name in FIELD_NAMES else message
        if name == "day-of-month" and len(tokens) == 5 and _any_month(fields, zone):
            what = f"this never runs: day-of-month {tok.group()!r} never comes in month {tokens[3].group()!r}"
        raise ScheduleError(
            f"{what} at position {tok.start()}" if name in FIELD_NAMES else message,
            expression=expression,
            position=tok.start(),
        ) from exc
    except (ValueError, IndexError, TypeError, AssertionError, OverflowError) as exc:
        raise ScheduleError(
            f"invalid cron expression {expression!r}: {exc}", expression=expression, position=first.start()
        ) from exc
    return CronSchedule(expression, timezone_name, zone, fields)


def _any_month(fields: str, zone: ZoneInfo) -> bool:
    """Whether `fields` would parse with any month: its day of the month exists, just not in the months given
    ("0 0 30 2 *")."""
    parts = fields.split()
    parts[3] = "*"
    try:
        CronSim(" ".join(parts), datetime(2000, 1, 1, tzinfo=zone))
    except (CronSimError, ValueError, IndexError, TypeError, AssertionError, OverflowError):
        return False
    return True
