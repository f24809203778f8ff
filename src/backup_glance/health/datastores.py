"""Is there room for the next backups? A datastore's space, judged (pure).

PBS estimates the day a datastore fills up from its usage history (`estimated-full-date`); together with the
share used now that is the whole judgement. The thresholds are named so the board and the docs agree.
"""

from __future__ import annotations

from datetime import datetime

from ..model import Datastore, DatastoreView, Severity

FULL_SOON_DAYS = 14  # full within two weeks: critical, backups will start failing
FULL_LATER_DAYS = 60  # within two months: a warning, time to prune or grow
NEARLY_FULL = 0.95  # share used: critical
FILLING_UP = 0.90  # share used: warning


def used_fraction(ds: Datastore) -> float | None:
    """The share used; None when unknown, and when no store could be in that state (the edge bounds make such
    usage unknown before it gets here; a store judged "1000% full" must not happen either way).

    >>> used_fraction(Datastore(key="a/b", source="a", name="b", used_bytes=25, total_bytes=100))
    0.25
    >>> used_fraction(Datastore(key="a/b", source="a", name="b", used_bytes=250, total_bytes=100)) is None
    True
    """
    used, total = ds.used_bytes, ds.total_bytes
    if used is None or not total or not 0 <= used <= total:
        return None
    return used / total


def full_in_days(ds: Datastore, now: datetime) -> float | None:
    """Days until PBS expects the datastore full; None when usage is flat or unknown."""
    if ds.usage_is_flat or ds.estimated_full_at is None:
        return None
    return round(max(0.0, (ds.estimated_full_at - now).total_seconds() / 86400), 1)


def judge_datastore(ds: Datastore, now: datetime) -> DatastoreView:
    fraction = used_fraction(ds)
    days = full_in_days(ds, now)
    if ds.error:
        return DatastoreView(ds, Severity.UNKNOWN, (f"datastore {ds.name}: {ds.error}",), fraction, days)
    findings: list[tuple[Severity, str]] = []
    if days is not None and days < FULL_LATER_DAYS:
        severity = Severity.CRITICAL if days < FULL_SOON_DAYS else Severity.WARNING
        findings.append((severity, f"datastore {ds.name} is expected to be full in {days:.0f} days"))
    if fraction is not None and fraction >= FILLING_UP:
        severity = Severity.CRITICAL if fraction >= NEARLY_FULL else Severity.WARNING
        findings.append((severity, f"datastore {ds.name} is {fraction:.0%} full"))
    if not findings:
        return DatastoreView(ds, Severity.OK, (), fraction, days)
    worst = Severity.CRITICAL if any(s is Severity.CRITICAL for s, _ in findings) else Severity.WARNING
    return DatastoreView(ds, worst, tuple(reason for _, reason in findings), fraction, days)
