"""History: every snapshot and job run ever observed, kept in an embedded SQLite file (stdlib `sqlite3`).

Where it sits: sources -> observations -> **history** -> health -> board. The collector is the one writer:
after each poll it calls `History.record(observation)`. Health and the calendar read a `HistoryView`: what
existed in the lookback window plus each job's typical duration, so a snapshot pruned at the source still
proves that its slot was not missed. No network and no clock: every instant comes from the caller.

    _store.py    History: open, record, view, sighting, prune, close
    _schema.py   tables and the ordered migrations (`PRAGMA user_version`)
    _rows.py     records <-> rows: epoch seconds (UTC) and enum string values

A snapshot is *gone* once a later observation covers its place but no longer lists it (the source pruned it).
Its row stays, with `gone_at` set, until retention removes it; see `_store.covers` for what "covers" means.
"""

from ._store import DURATION_SAMPLE as DURATION_SAMPLE
from ._store import FUTURE_SLACK as FUTURE_SLACK
from ._store import History as History
from ._store import RecordStats as RecordStats
from ._store import Sighting as Sighting

__all__ = ["DURATION_SAMPLE", "FUTURE_SLACK", "History", "RecordStats", "Sighting"]
