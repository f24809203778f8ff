"""`fmt.relative_until` against `fmt.relative` itself: a relative time reads the same from `now` up to the moment
it names, and differently right after it, at every scale and on both sides of `at`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from backup_glance.web.fmt import relative, relative_until

NOW = datetime(2026, 12, 7, 14, 3, 27, 123456, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
BOUNDARIES = [timedelta(minutes=m) for m in (0, 1, 2, 3, 59, 60, 61)] + [
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=30),
    timedelta(days=360),
    timedelta(days=365),
    timedelta(days=730),
]


def offsets(rng: random.Random) -> list[timedelta]:
    """Distances from `now` to `at`, on every unit's scale, and on and next to each place a unit changes."""
    scales = [60, 3600, 86400, 30 * 86400, 365 * 86400, 20 * 365 * 86400]
    drawn = [timedelta(seconds=rng.uniform(0, rng.choice(scales))) for _ in range(400)]
    near = [b + d for b in BOUNDARIES for d in (-MICROSECOND, timedelta(0), MICROSECOND)]
    return [sign * o for o in drawn + near for sign in (1, -1) if o >= timedelta(0)]


@pytest.mark.parametrize("seed", range(3))
def test_a_relative_time_reads_the_same_up_to_the_moment_named_and_no_longer(seed: int) -> None:
    rng = random.Random(seed)
    for offset in offsets(rng):
        at = NOW + offset
        shown, until = relative(at, NOW), relative_until(at, NOW)
        assert until >= NOW, f"at now + {offset}: {until} is before now"
        between = [NOW, until, *(min(NOW + (until - NOW) * rng.random(), until) for _ in range(5))]
        for later in between:
            assert relative(at, later) == shown, f"at now + {offset}: {later} reads {relative(at, later)!r}"
        assert relative(at, until + MICROSECOND) != shown, f"at now + {offset}: still {shown!r} after {until}"


def test_absurd_times_give_a_moment_not_an_error() -> None:
    for at in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)):
        assert relative_until(at, NOW) >= NOW
