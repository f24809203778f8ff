"""Health judges only usage a store can have: numbers that cannot be (more used than the store holds) are no
share at all, whoever made the record (the edge bounds already make such usage unknown and name it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_glance.health.datastores import judge_datastore
from backup_glance.model import Datastore, DatastoreView, Severity

NOW = datetime(2025, 1, 15, 10, 17, 23, tzinfo=UTC)


def judged(used: int, total: int) -> DatastoreView:
    return judge_datastore(Datastore("pbs/main", "pbs", "main", total_bytes=total, used_bytes=used), NOW)


@pytest.mark.parametrize("used", [250, -5], ids=["over", "negative"])
def test_usage_no_store_can_have_is_no_share_and_no_verdict(used: int) -> None:
    view = judged(used, 100)
    assert (view.severity, view.reasons, view.used_fraction) == (Severity.OK, (), None)  # not "250% full"
    full = judged(100, 100)  # while a store really full stays critical
    assert (full.severity, full.reasons) == (Severity.CRITICAL, ("datastore main is 100% full",))
