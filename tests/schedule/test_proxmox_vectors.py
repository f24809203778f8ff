"""Every row of calendar-vectors.tsv (computed by proxmox-time 2.1.1) through our Proxmox engine.

Rows hold trimmed-input results (PVE trims before parsing); see calendar-events.md §10.1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_glance.schedule import ScheduleError, parse_schedule

VECTORS = Path(__file__).parent.parent / "data" / "calendar-vectors.tsv"


def load_rows() -> list[tuple[str, int, str, str, str]]:
    rows = []
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tz, base, expr, result, detail = line.split("\t")
        rows.append((tz, int(base), json.loads(expr), result, detail))
    return rows


ROWS = load_rows()


def test_the_vector_file_has_all_166_rows() -> None:
    assert len(ROWS) == 166


@pytest.mark.parametrize(
    ("tz", "base", "expr", "result", "detail"), ROWS, ids=[f"{r[0]}:{r[1]}:{r[2]!r}" for r in ROWS]
)
def test_it_matches_proxmox_time(tz: str, base: int, expr: str, result: str, detail: str) -> None:
    if result == "ERROR":
        with pytest.raises(ScheduleError, match="at position"):
            parse_schedule(expr, dialect="proxmox", tz=tz)
        return
    schedule = parse_schedule(expr, dialect="proxmox", tz=tz)
    items = detail.split(",")
    ends = items[-1] == "none"  # compute_next_event returned None after these
    expected = [int(x) for x in items if x != "none"]
    got: list[int] = []
    when = datetime.fromtimestamp(base, UTC)
    for _ in range(len(expected) + ends):
        nxt = schedule.next_after(when)
        if nxt is None:
            break
        assert nxt > when
        got.append(int(nxt.timestamp()))
        when = nxt
    assert [iso(t) for t in got] == [iso(t) for t in expected]


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
