"""Bounds on what a source may tell us, applied once to every observation before anything else reads it.

A source is trusted to be itself, not to be sane: one snapshot dated 9999-12-31, a size of 2^64, a lone UTF-16
surrogate in a message or a megabyte-long guest name must cost that record (or that field), never the source
and never the board. What is dropped or cut is said in the observation's `problems`, per source, so the board
shows it:

- instants of things that happened (a snapshot taken, a run started or ended, a verification) must lie between
  2000-01-01 and tomorrow; forecasts (a job's next run, a datastore's full date) between 2000 and 2200;
- byte counts are whole numbers from 0 to 2^60 (an exabyte; SQLite holds 2^63 - 1), factors finite;
- a datastore cannot use (or have available) more than its size: if it says so, its usage is unknown;
- text is valid Unicode without control characters or direction overrides, names, ids and schedules at most 200
  characters, messages 1,000; a key (which must stay unique) that is too long keeps a prefix and a digest instead;
- a zone this machine's tzdata does not know (the source's, a job schedule's) is read as the board's own zone
  (the one configured: most likely the homelab's), else as UTC.
"""

from __future__ import annotations

import functools
import hashlib
import math
import operator
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import compress
from operator import attrgetter, not_
from typing import Any
from zoneinfo import ZoneInfo

from msgspec.structs import replace as evolve

from .. import listdiff
from ..clean import MAX_NAME, clean_text, quoted
from ..model import (
    NO_SIZE,
    NOT_VERIFIED,
    ODD_SIZE,
    STAMP_LENGTH,
    Datastore,
    Job,
    JobRun,
    Observation,
    RemoteCopy,
    ScheduleRef,
    Snapshot,
    SnapshotSeries,
    Target,
)

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)  # clocks drift and zones differ; a snapshot "from tomorrow" is a broken one
LATEST_FORECAST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_BYTES = 2**60

MOSTLY_NEW = 4  # more than 1 in this many snapshots new or gone: checking the ones not let through is as cheap
MAX_MESSAGE = 1000
MAX_KEY = 300
MAX_SCHEDULE = 200  # "mon..fri 02:00,04:00,..": the longest real one is a few dozen characters


def clean_key(value: str) -> str:
    """Like `clean_text`, but a key must stay unique and stable: a long one, or one that cleaning changed (two
    restic hosts "dup\\ax" and "dupx" are two groups), keeps a prefix plus a digest of what it was.

    >>> key = clean_key("guest:" + "x" * 400); len(key), key[-17:-16], key == clean_key("guest:" + "x" * 400)
    (300, '~', True)
    >>> clean_key("restic:r/dupx"), clean_key("restic:r/dup\x07x")
    ('restic:r/dupx', 'restic:r/dupx~457eeffbdb1ac43e')
    """
    text = clean_text(value, limit=10 * MAX_KEY)
    if len(text) <= MAX_KEY and text == value:
        return text
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: MAX_KEY - 17]}~{digest}"


@functools.lru_cache(maxsize=64)
def _known_zone(name: str) -> bool:
    """Whether this machine's tzdata has the zone a source names: a newer zone than it knows, or a name that is no
    zone at all, would make every later use of it raise."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError, TypeError):  # not found (a KeyError), or no zone name at all
        return False
    return True


class _Notes:
    """What was dropped or cut, counted per kind, said once per poll with an example."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.future = False  # something was refused for lying in the future: it may be fine tomorrow

    def merge(self, other: _Notes) -> None:
        self.counts.update(other.counts)
        for kind, example in other.examples.items():
            self.examples.setdefault(kind, example)
        self.future = self.future or other.future

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, clean_text(example, 120))

    def lines(self) -> tuple[str, ...]:
        return tuple(
            f"{kind}: {count} ignored (e.g. {self.examples[kind]})" if count > 1 else f"{kind}: {self.examples[kind]}"
            for kind, count in self.counts.items()
        )


class EdgeBounds:
    """Bounds one source's observations, poll after poll.

    Sources hand back the very same tuple of snapshots (or runs) while nothing changed, and equal targets and
    copies; their bounded version is then reused instead of checking hundreds of thousands of records again. A
    record that was refused only for being in the future disables the reuse, since tomorrow it may be fine."""

    def __init__(self, fallback_zone: str = "UTC") -> None:
        self._fallback_zone = fallback_zone if _known_zone(fallback_zone) else "UTC"
        # name -> (the tuple given last time, what it was bounded to, what was said about it); keeping the
        # given tuple alive keeps its id, and its records' ids, from being reused by other objects
        self._memo: dict[str, tuple[tuple[Any, ...], tuple[Any, ...], _Notes]] = {}
        # A job's target keys as given -> as cleaned, from the last poll and this one (a job covering 2,000
        # guests names them all again in every poll)
        self._last_keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        # id of a series given last poll -> (that series, kept alive for its id; what it was bounded to: itself, a
        # series cut down, or None; what was said about it)
        self._series: dict[int, tuple[SnapshotSeries, SnapshotSeries | None, _Notes]] = {}

    def _clean_keys(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = self._last_keys.get(keys)
        if cleaned is None:
            cleaned = tuple(clean_key(k) for k in keys)
        self._keys[keys] = cleaned
        return cleaned

    def bound(self, observation: Observation, now: datetime) -> Observation:
        """The observation with every impossible record dropped or field cleared, and a problem line per kind."""
        latest = now + FUTURE_SLACK
        notes = _Notes()
        snapshots = self._reuse(
            "snapshots",
            observation.snapshots,
            notes,
            lambda n: _snapshots(observation.snapshots, latest, n, self._memo.get("snapshots")),
        )
        series = self._bound_series(observation.series, latest, notes)
        runs = self._reuse(
            "runs",
            observation.runs,
            notes,
            lambda n: _runs(observation.runs, latest, n, self._passed("runs")),
        )
        jobs = tuple(
            _job(job, latest, notes, self._clean_keys, self._fallback_zone, observation.runs)
            for job in observation.jobs
        )
        self._last_keys, self._keys = self._keys, {}
        datastores = tuple(_datastore(store, notes) for store in observation.datastores)
        targets = self._reuse(
            "targets", observation.targets, notes, lambda n: tuple(_target(t) for t in observation.targets)
        )
        remote_copies = self._reuse(
            "remote_copies",
            observation.remote_copies,
            notes,
            lambda n: tuple(
                c for copy in observation.remote_copies if (c := _remote_copy(copy, latest, n)) is not None
            ),
        )
        timezone = observation.timezone
        if not _known_zone(timezone):
            notes.add(f"time zone unknown to this machine (its times are read as {self._fallback_zone})", timezone)
            timezone = self._fallback_zone
        problems = (*(clean_text(p, MAX_MESSAGE) for p in observation.problems), *notes.lines())
        return replace(
            observation,
            timezone=timezone,
            targets=targets,
            snapshots=snapshots,
            series=series,
            runs=runs,
            jobs=jobs,
            datastores=datastores,
            uncovered_target_keys=tuple(clean_key(k) for k in observation.uncovered_target_keys),
            unread=tuple((clean_key(key), since) for key, since in observation.unread),
            problems=problems,
            remote_copies=remote_copies,
            offsite_locations=tuple(clean_text(x) for x in observation.offsite_locations),
            endpoint=clean_text(observation.endpoint),
        )

    def _reuse(
        self, name: str, given: tuple[Any, ...], notes: _Notes, compute: Callable[[_Notes], tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        memo = self._memo.get(name)
        # The same tuple, or (for the small lists a source builds anew each poll: targets, copies) an equal one.
        same = memo is not None and (memo[0] is given or (name not in ("snapshots", "runs") and memo[0] == given))
        if memo is not None and same and not memo[2].future:
            notes.merge(memo[2])
            return memo[1]
        own = _Notes()
        result = compute(own)
        self._memo[name] = (given, result, own)
        notes.merge(own)
        return result

    def _bound_series(
        self, given: tuple[SnapshotSeries, ...], latest: datetime, notes: _Notes
    ) -> tuple[SnapshotSeries, ...]:
        """Each series as it is, or cut down to what passes (or gone, when nothing does). A series is checked
        once, column by column, and passes as it is when the next poll hands it back."""
        if not given and not self._series:
            return given
        bounded: list[SnapshotSeries] = []
        memo: dict[int, tuple[SnapshotSeries, SnapshotSeries | None, _Notes]] = {}
        bounds = (int(EARLIEST.timestamp()), int(latest.timestamp()))
        for series in given:
            last = self._series.get(id(series))
            if last is None or last[0] is not series or last[2].future:
                own = _Notes()
                made = series if _series_passes(series, *bounds) else _cut(series, *bounds, own)
                if last is not None and made is not None and made is not series and made == last[1]:
                    made = last[1]  # cut down as at the last poll: the very series again, for history and health
                last = (series, made, own)
            memo[id(series)] = last
            notes.merge(last[2])
            if last[1] is not None:
                bounded.append(last[1])
        self._series = memo
        if len(bounded) == len(given) and all(map(operator.is_, bounded, given)):
            return given
        return tuple(bounded)

    def _passed(self, name: str) -> frozenset[int]:
        """The ids of the records the last pass let through untouched (the memo keeps them alive)."""
        memo = self._memo.get(name)
        return frozenset(map(id, memo[1])) if memo is not None else frozenset()


def _plain(text: str, limit: int) -> bool:
    return len(text) <= limit and text.isprintable()


def _snapshots(
    snapshots: tuple[Snapshot, ...],
    latest: datetime,
    notes: _Notes,
    last: tuple[tuple[Snapshot, ...], tuple[Snapshot, ...], _Notes] | None,
) -> tuple[Snapshot, ...]:
    """Only the records not let through last poll are checked again. When the last listing passed untouched,
    those are the ones that appeared since (`listdiff`); otherwise the ones whose ids did not pass, found in C,
    not a step per record. A record equal to one that passed passes too: the latest date allowed only moves on."""
    if last is not None and last[1] is last[0]:
        change = listdiff.difference(last[0], snapshots, most=len(snapshots) // MOSTLY_NEW)
        own = _Notes()
        if change is not None and all(_snapshot(s, latest, own) is s for s in change[0]):
            return snapshots
    passed = frozenset(map(id, last[1])) if last is not None else frozenset()
    fresh = list(compress(snapshots, map(not_, map(passed.__contains__, map(id, snapshots)))))
    if _all_pass(fresh, latest):
        return snapshots
    bounded = [_snapshot(snapshot, latest, notes) for snapshot in fresh]
    if all(after is before for after, before in zip(bounded, fresh, strict=True)):
        return snapshots
    replaced = {id(before): after for before, after in zip(fresh, bounded, strict=True)}
    return tuple(after for s in snapshots if (after := replaced.get(id(s), s)) is not None)


def _all_pass(snapshots: list[Snapshot], latest: datetime) -> bool:
    """Whether `_snapshot` would let every record through untouched, found by scans in C over each field rather
    than a step per record: a first poll of a big PBS lists hundreds of thousands. False sends them one by one
    through `_snapshot`, which says what is wrong."""
    if not snapshots:
        return True
    try:
        taken = list(map(_TAKEN_AT, snapshots))
        verified = [at for at in map(_VERIFIED_AT, snapshots) if at is not None]
        sizes = [size for size in map(_SIZE, snapshots) if size is not None]
        ids = list(map(_SNAPSHOT_ID, snapshots))
        return (
            _within(taken, EARLIEST, latest)
            and _within(verified, EARLIEST, latest)
            and set(map(type, sizes)) <= {int}
            and _within(sizes, 0, MAX_BYTES)
            and max(map(len, ids)) <= MAX_KEY
            and all(map(str.isprintable, ids))
            and all(_plain(key, MAX_KEY) for key in set(map(_TARGET_KEY, snapshots)))
            and all(_plain(location, MAX_NAME) for location in set(map(_LOCATION, snapshots)))
            and not any(map(_PLACES, snapshots))
        )
    except TypeError:  # a naive datetime, a field of another type: the record by record pass names it
        return False


def _series_passes(series: SnapshotSeries, earliest: int, latest: int) -> bool:
    """Whether `_snapshot` would let each of the series' snapshots through untouched, told from its columns (its
    times are in order; sizes and verification times have a mark for none)."""
    if not series.times or series.times[0] < earliest or series.times[-1] > latest:
        return False
    verified = [at for at in series.verified if at != NOT_VERIFIED]
    return (
        _within(verified, earliest, latest)
        and not any(flags & ODD_SIZE for flags in series.flags)
        and all(size <= MAX_BYTES for size in series.sizes if size != NO_SIZE)
        and _plain(series.target_key, MAX_KEY)
        and _plain(series.location, MAX_NAME)
        and _plain(series.snapshot_id(len(series) - 1), MAX_KEY)
    )


def _cut(series: SnapshotSeries, earliest: int, latest: int, notes: _Notes) -> SnapshotSeries | None:
    """The series with the snapshots of impossible dates left out, impossible sizes and verification times
    cleared and its texts cleaned (as `_snapshot` does record by record); None when no snapshot is left."""
    example = clean_text(series.id_prefix)
    kept = []
    for index, at in enumerate(series.times):
        if earliest <= at <= latest:
            kept.append(index)
        else:
            notes.add("snapshots with impossible dates", f"{example}… at {_shown_epoch(at)}")
            notes.future = notes.future or at > latest
    if not kept:
        return None
    sizes = array("Q", (series.sizes[i] for i in kept))
    flags = bytearray(series.flags[i] for i in kept)
    for index, size in enumerate(sizes):
        if flags[index] & ODD_SIZE:
            notes.add("impossible snapshot sizes", f"{example}…: below 0 or beyond 64 bits")
            flags[index] &= ~ODD_SIZE
        elif size != NO_SIZE and size > MAX_BYTES:
            notes.add("impossible snapshot sizes", f"{example}…: {_shown(size)}")
            sizes[index] = NO_SIZE
    verified = array("q", (series.verified[i] for i in kept))
    for index, at in enumerate(verified):
        if at != NOT_VERIFIED and not earliest <= at <= latest:
            notes.add("impossible verification times", f"{example}… at {_shown_epoch(at)}")
            notes.future = notes.future or at > latest
            verified[index] = NOT_VERIFIED
    return SnapshotSeries(
        clean_key(series.target_key),
        series.source,
        clean_text(series.location),
        _clean_prefix(series.id_prefix),
        array("q", (series.times[i] for i in kept)),
        sizes,
        verified,
        bytes(flags),
    )


def _shown_epoch(seconds: int) -> str:
    try:
        return _shown(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, ValueError, OSError):
        return _shown(seconds)


def _clean_prefix(prefix: str) -> str:
    """An id prefix whose ids (it, plus a backup time) pass as ids: itself, or (too long, or with a character no
    id may hold) a cleaned start plus a digest of what it was, unique and the same at every poll."""
    room = MAX_KEY - STAMP_LENGTH
    if _plain(prefix, room):
        return prefix
    digest = hashlib.sha256(prefix.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{clean_text(prefix, limit=room - 18)}~{digest}/"


def _within(values: list[Any], low: Any, high: Any) -> bool:
    return not values or (min(values) >= low and max(values) <= high)


_TAKEN_AT, _VERIFIED_AT, _SIZE = attrgetter("taken_at"), attrgetter("verified_at"), attrgetter("size_bytes")
_SNAPSHOT_ID, _TARGET_KEY = attrgetter("snapshot_id"), attrgetter("target_key")
_LOCATION, _PLACES = attrgetter("location"), attrgetter("places")


def _snapshot(snapshot: Snapshot, latest: datetime, notes: _Notes) -> Snapshot | None:
    taken_at, verified_at, size = snapshot.taken_at, snapshot.verified_at, snapshot.size_bytes
    if not _between(taken_at, EARLIEST, latest):
        notes.add("snapshots with impossible dates", f"{clean_text(snapshot.snapshot_id)} at {_shown(taken_at)}")
        notes.future = notes.future or _after(taken_at, latest)
        return None
    if (
        (verified_at is None or _between(verified_at, EARLIEST, latest))
        and (size is None or (type(size) is int and 0 <= size <= MAX_BYTES))
        and _plain(snapshot.target_key, MAX_KEY)
        and _plain(snapshot.snapshot_id, MAX_KEY)
        and _plain(snapshot.location, MAX_NAME)
        and (not snapshot.places or all(_plain(p, MAX_NAME) for p in snapshot.places))
    ):
        return snapshot  # the usual case: nothing to fix, no new object
    example = clean_text(snapshot.snapshot_id)
    if verified_at is not None and not _between(verified_at, EARLIEST, latest):
        notes.add("impossible verification times", f"{example} at {_shown(verified_at)}")
        notes.future = notes.future or _after(verified_at, latest)
        verified_at = None
    return evolve(
        snapshot,
        verified_at=verified_at,
        target_key=clean_key(snapshot.target_key),
        snapshot_id=clean_key(snapshot.snapshot_id),
        location=clean_text(snapshot.location),
        size_bytes=_size(size, "snapshot sizes", example, notes),
        places=tuple(clean_text(p) for p in snapshot.places),
    )


def _remote_copy(copy: RemoteCopy, latest: datetime, notes: _Notes) -> RemoteCopy | None:
    newest = copy.newest_at
    if newest is not None and not _between(newest, EARLIEST, latest):
        notes.add("remote copies with impossible dates", f"{clean_text(copy.location)} at {_shown(newest)}")
        notes.future = notes.future or _after(newest, latest)
        newest = None  # kept as a copy whose freshness is unknown
    count = copy.count if copy.count is None or (type(copy.count) is int and 0 <= copy.count <= MAX_BYTES) else None
    return evolve(
        copy,
        target_key=clean_key(copy.target_key),
        source=clean_text(copy.source),
        location=clean_text(copy.location),
        endpoint=clean_text(copy.endpoint, MAX_KEY),
        job_key=clean_key(copy.job_key),
        newest_at=newest,
        count=count,
    )


def _runs(runs: tuple[JobRun, ...], latest: datetime, notes: _Notes, passed: frozenset[int]) -> tuple[JobRun, ...]:
    bounded = [run if id(run) in passed else _run(run, latest, notes) for run in runs]
    out = [run for run in bounded if run is not None]
    return runs if len(out) == len(runs) and all(a is b for a, b in zip(out, runs, strict=True)) else tuple(out)


def _job(
    job: Job,
    latest: datetime,
    notes: _Notes,
    clean_keys: Callable[[tuple[str, ...]], tuple[str, ...]],
    fallback_zone: str,
    listed: tuple[JobRun, ...] = (),
) -> Job:
    last_run = None
    if job.last_run is not None:
        own = _Notes()
        last_run = _run(job.last_run, latest, own)
        if own.counts and any(run is job.last_run for run in listed):  # noted once, as one of the listed runs
            own.counts.clear()
        notes.merge(own)
    return replace(
        job,
        schedule=_schedule(job.schedule, clean_text(job.name), notes, fallback_zone) if job.schedule else None,
        key=clean_key(job.key),
        job_id=clean_key(job.job_id),
        name=clean_text(job.name),
        comment=clean_text(job.comment, MAX_MESSAGE),
        store=clean_text(job.store) if job.store is not None else None,
        namespace=clean_text(job.namespace) if job.namespace is not None else None,
        target_keys=clean_keys(job.target_keys),
        next_run_at=_forecast(job.next_run_at, "next-run times", clean_text(job.name), notes),
        last_run=last_run,
    )


def _schedule(schedule: ScheduleRef, job: str, notes: _Notes, fallback_zone: str) -> ScheduleRef:
    """A schedule no longer than any real one, in a zone this machine knows (else `fallback_zone`). A longer one is
    cut (the mark makes sure it no longer parses: the job's services say its schedule cannot be read, not some
    other schedule)."""
    expression, zone = schedule.expression, schedule.timezone
    if len(expression) > MAX_SCHEDULE or not expression.isprintable():
        if len(expression) > MAX_SCHEDULE:
            notes.add("schedules too long to be one", f"{job}: {len(expression):,} characters")
        expression = clean_text(expression, MAX_SCHEDULE)
    if not _known_zone(zone):
        notes.add(f"time zone unknown to this machine (its times are read as {fallback_zone})", zone)
        zone = fallback_zone
    if expression is schedule.expression and zone is schedule.timezone:
        return schedule
    return replace(schedule, expression=expression, timezone=zone)


def _datastore(store: Datastore, notes: _Notes) -> Datastore:
    name = clean_text(store.name)
    total = _size(store.total_bytes, "datastore sizes", f"{name} total", notes)
    used = _size(store.used_bytes, "datastore sizes", f"{name} used", notes)
    avail = _size(store.avail_bytes, "datastore sizes", f"{name} available", notes)
    # Used or available beyond the size is no state a filesystem can be in: one of the three numbers is wrong, and
    # which cannot be told, so the store's usage is unknown ("1000 % full" judged as critical helps nobody).
    if total is not None and (part := _beyond(total, used, "used") or _beyond(total, avail, "available")):
        notes.add(
            "datastore usage that does not add up (shown as unknown)", f"{name} reports {part} of {total:,} total"
        )
        total = used = avail = None
    return replace(
        store,
        key=clean_key(store.key),
        name=name,
        total_bytes=total,
        used_bytes=used,
        avail_bytes=avail,
        estimated_full_at=_forecast(store.estimated_full_at, "full-date estimates", name, notes),
        dedup_factor=_factor(store, notes),
        error=clean_text(store.error, MAX_MESSAGE) if store.error is not None else None,
        maintenance=clean_text(store.maintenance, MAX_MESSAGE) if store.maintenance is not None else None,
    )


def _beyond(total: int, part: int | None, what: str) -> str | None:
    """The part as a problem says it ("N bytes used") when it is more than `total`, else None."""
    return f"{part:,} bytes {what}" if part is not None and part > total else None


def _forecast(moment: datetime | None, what: str, example: str, notes: _Notes) -> datetime | None:
    if moment is None or _between(moment, EARLIEST, LATEST_FORECAST):
        return moment
    notes.add(f"impossible {what}", f"{example} at {_shown(moment)}")
    return None


def _size(value: int | None, what: str, example: str, notes: _Notes) -> int | None:
    if value is None or (type(value) is int and 0 <= value <= MAX_BYTES):
        return value
    notes.add(f"impossible {what}", f"{example}: {_shown(value)}")
    return None


def _after(moment: datetime, latest: datetime) -> bool:
    try:
        return moment > latest
    except TypeError:
        return False


def _run(run: JobRun, latest: datetime, notes: _Notes) -> JobRun | None:
    started, ended = run.started_at, run.ended_at
    if not _between(started, EARLIEST, latest) or (ended is not None and not _between(ended, EARLIEST, latest)):
        notes.add("runs with impossible dates", f"{clean_text(run.run_id)} at {_shown(started)}")
        notes.future = notes.future or _after(started, latest) or (ended is not None and _after(ended, latest))
        return None
    if ended is not None and ended < started - FUTURE_SLACK:
        notes.add("runs with impossible dates", f"{clean_text(run.run_id)} ended before it started")
        return None
    size = run.size_bytes
    if (
        (size is None or (type(size) is int and 0 <= size <= MAX_BYTES))
        and _plain(run.job_key, MAX_KEY)
        and _plain(run.run_id, MAX_KEY)
        and _plain(run.message, MAX_MESSAGE)
        and (run.target_key is None or _plain(run.target_key, MAX_KEY))
    ):
        return run
    return evolve(
        run,
        job_key=clean_key(run.job_key),
        run_id=clean_key(run.run_id),
        message=clean_text(run.message, MAX_MESSAGE),
        target_key=clean_key(run.target_key) if run.target_key is not None else None,
        size_bytes=_size(size, "run sizes", clean_text(run.run_id), notes),
    )


def _between(moment: datetime, low: datetime, high: datetime) -> bool:
    try:
        return low <= moment <= high
    except TypeError:  # a naive datetime: a source bug, and no way to know what it meant
        return False


def _target(target: Target) -> Target:
    return replace(target, key=clean_key(target.key), name=clean_text(target.name))


def _factor(store: Datastore, notes: _Notes) -> float | None:
    value = store.dedup_factor
    if value is None or (math.isfinite(value) and 0 <= value <= 1e6):
        return value
    notes.add("impossible dedup factors", f"{clean_text(store.name)}: {_shown(value)}")
    return None


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()[:25]
    return quoted(value)


__all__ = ["EARLIEST", "LATEST_FORECAST", "MAX_BYTES", "clean_key", "clean_text"]
