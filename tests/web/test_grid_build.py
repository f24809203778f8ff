"""The grid's cells, made a slot at a time (`grid.build_grid`), against the plain reading of what a day shows: every
entry a service has that day, the worst one chosen, the day's problems flagged. Random boards put several slots on
one service's day, give slots per-service outcomes that leave services out, and mark problems on days with and
without a run."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from web_builders import NOW, a_board, a_slot, a_verdict

from backup_glance.model import Board, CalendarSlot, SlotOutcome, Status
from backup_glance.web.widgets import grid
from backup_glance.web.widgets._marks import local_day
from backup_glance.web.widgets._names import names_for

OUTCOMES = list(SlotOutcome)
PROBLEM_STATUSES = [Status.VERIFY_FAILED, Status.OUT_OF_ORDER, Status.FAILED]


def random_board(rng: random.Random) -> Board:
    services = [f"svc{i}" for i in range(rng.randint(1, 12))]
    slots: list[CalendarSlot] = []
    for number in range(rng.randint(0, 30)):
        covered = tuple(rng.sample(services, rng.randint(1, len(services))))
        start = timedelta(days=rng.randint(-16, 9), hours=rng.randint(-12, 12))
        slot = a_slot(
            f"job {number % 4}",
            job_key=f"pve/backup/{number % 4}",
            start=start,
            outcome=rng.choice(OUTCOMES),
            detail=rng.choice(["", "exit code 2", "no snapshot"]),
            service_ids=covered,
        )
        if rng.random() < 0.4:  # per-service outcomes, leaving some of its services out
            told = [s for s in covered if rng.random() < 0.7]
            own = tuple((s, rng.choice(OUTCOMES), rng.choice(["", "timeout"])) for s in told)
            slot = replace(slot, service_outcomes=own)
        if rng.random() < 0.3:
            problems = tuple((rng.choice(services), rng.choice(PROBLEM_STATUSES), "verify failed") for _ in range(2))
            slot = replace(slot, problems=problems)
        slots.append(slot)
    statuses = [Status.OK, Status.OK, Status.LATE, Status.FAILED]
    verdicts = tuple(a_verdict(s, name=f"service {s}", status=rng.choice(statuses)) for s in services)
    return a_board(verdicts, slots=tuple(slots))


def plain_cells(board: Board, zone: ZoneInfo, column: str) -> dict[str, tuple[grid.GridCell, ...]]:
    """Each service's cells, read straight from the slots."""
    names = names_for(board)
    today = board.generated_at.astimezone(zone).date()
    before, after = grid.GRID_DAYS[column]
    days = [today + timedelta(days=o) for o in range(-before, after + 1)]
    entries: dict[tuple[str, date], list[grid.Entry]] = defaultdict(list)
    problems: dict[tuple[str, date], list[tuple[Status, str]]] = defaultdict(list)
    for slot in board.slots:
        day = local_day(slot.start_at, zone)
        if not days[0] <= day <= days[-1]:
            continue
        own = {sid: (outcome, detail) for sid, outcome, detail in slot.service_outcomes}
        for service_id in slot.service_ids:
            if slot.service_outcomes and service_id not in own:
                continue
            outcome, detail = own.get(service_id, (slot.outcome, slot.detail))
            entries[(service_id, day)].append((slot, outcome, detail))
        for service_id, status, text in slot.problems:
            problems[(service_id, day)].append((status, text))
    labels = {key: names.job(key) for key in {s.job_key for s in board.slots}}
    return {
        v.service_id: tuple(
            grid._cell(d, entries.get((v.service_id, d), []), labels, zone, problems.get((v.service_id, d), []))
            for d in days
        )
        for v in board.verdicts
    }


@pytest.mark.parametrize("seed", range(60))
def test_cells_made_a_slot_at_a_time_read_as_the_slots_say(seed: int) -> None:
    rng = random.Random(seed)
    board = random_board(rng)
    zone = ZoneInfo(board.timezone)
    for column in ("full", "small"):
        view = grid.build_grid(board, zone, list(board.slots), None, column, None)
        expected = plain_cells(board, zone, column)
        assert {row.service_id: row.cells for row in view.rows} == expected, f"seed {seed}, {column}"
        used = {part for cells in expected.values() for cell in cells for part in cell.css.split()}
        assert {css for css, _ in view.legend} <= used


def test_an_equal_row_built_again_is_the_row_built_before() -> None:
    board = random_board(random.Random(7))
    zone = ZoneInfo(board.timezone)
    first = grid.build_grid(board, zone, list(board.slots), None, "full", None)
    again = grid.build_grid(board, zone, list(board.slots), None, "full", None)
    assert all(a is b for a, b in zip(first.rows, again.rows, strict=True))
    later = replace(board, generated_at=NOW + timedelta(days=1))  # every row's days move on
    moved = grid.build_grid(later, zone, list(later.slots), None, "full", None)
    assert not any(a is b for a, b in zip(first.rows, moved.rows, strict=True))


def test_rows_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grid, "MAX_ROWS_KEPT", 5)
    for seed in range(20):  # boards of other services each time, as after config changes
        board = random_board(random.Random(seed))
        renamed = tuple(replace(v, service_id=f"{v.service_id}-{seed}") for v in board.verdicts)
        board = replace(board, verdicts=renamed)
        grid.build_grid(board, ZoneInfo(board.timezone), list(board.slots), None, "full", None)
        assert len(grid._built) <= 5
