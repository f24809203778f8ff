"""The grid's cells, made a slot at a time (`grid.build_grid`), against the plain reading of what a day shows: every
entry a service has that day, the worst one chosen, the day's problems flagged. Random boards put several slots on
one service's day, give slots per-service outcomes that leave services out, and mark problems on days with and
without a run."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from web_builders import NOW, a_board, a_slot, a_source, a_verdict

from backup_glance.model import STATUS_SEVERITY, Board, CalendarSlot, SlotOutcome, Status
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


@contextmanager
def nothing_remembered() -> Iterator[None]:
    """A grid built as if it were the first: none of the days, cells or rows of earlier builds."""
    kept = grid._days, grid._across, grid._built
    grid._days, grid._across, grid._built = {}, {}, {}
    try:
        yield
    finally:
        grid._days, grid._across, grid._built = kept


def a_step(board: Board, rng: random.Random) -> Board:
    """The board after a poll: a little changed, or nothing but new objects of equal slots and verdicts."""
    slots, verdicts = list(board.slots), list(board.verdicts)
    steps = ["outcome", "problems", "job name", "verdict", "namesake", "sources", "equal copies", "clock", "nothing"]
    step = rng.choice(steps)
    if step == "outcome" and slots:
        at = rng.randrange(len(slots))
        slots[at] = replace(slots[at], outcome=rng.choice(OUTCOMES), detail=rng.choice(["", "exit code 2"]))
    elif step == "problems" and slots and verdicts:
        at = rng.randrange(len(slots))
        problems = ((rng.choice(verdicts).service_id, rng.choice(PROBLEM_STATUSES), "verify failed"),)
        slots[at] = replace(slots[at], problems=problems if not slots[at].problems else ())
    elif step == "job name" and slots:
        key = rng.choice(slots).job_key
        slots = [replace(s, job_name=f"{s.job_name}!") if s.job_key == key else s for s in slots]
    elif step == "verdict" and verdicts:
        at = rng.randrange(len(verdicts))
        status = rng.choice([Status.OK, Status.LATE, Status.FAILED, Status.UNPROTECTED])
        verdicts[at] = replace(verdicts[at], status=status, severity=STATUS_SEVERITY[status])
    elif step == "namesake" and len(verdicts) > 1:  # tags both names with their systems: one verdict is new
        one, other = rng.sample(range(len(verdicts)), 2)
        verdicts[one] = replace(verdicts[one], name=verdicts[other].name, sources=("pve1",))
    elif step == "sources":  # a second PVE: every job's label names its source, and not one slot changed
        two = (a_source("pve1", kind="pve"), a_source("pve2", kind="pve"))
        return replace(board, sources=two if len(board.sources) == 1 else two[:1])
    elif step == "equal copies":
        slots, verdicts = [replace(s) for s in slots], [replace(v) for v in verdicts]
    elif step == "clock":
        return replace(board, generated_at=board.generated_at + timedelta(hours=rng.choice([1, 11, 24])))
    return replace(board, slots=tuple(slots), verdicts=tuple(verdicts))


@pytest.mark.parametrize("seed", range(12))
def test_a_grid_built_after_others_reads_as_one_built_first(seed: int) -> None:
    """Days, cells and rows are kept from one build to the next: whatever the polls change, the grid is the one a
    first build makes of the same board."""
    rng = random.Random(seed)
    board = random_board(rng)
    for _ in range(40):
        board = a_step(board, rng)
        zone = ZoneInfo(rng.choice([board.timezone, "UTC", "America/New_York"]))
        column, source = rng.choice(["full", "small"]), rng.choice([None, None, "pve1", "elsewhere"])
        slots = [s for s in board.slots if source is None or s.source == source]
        built = grid.build_grid(board, zone, slots, source, column, None)
        with nothing_remembered():
            assert built == grid.build_grid(board, zone, slots, source, column, None)


def test_a_poll_that_changes_one_day_makes_that_day_and_its_rows_again_only() -> None:
    services = ("db", "web", "mail")
    days = [a_slot(start=timedelta(days=-back, hours=-2), service_ids=services) for back in range(5)]
    board = a_board(tuple(a_verdict(s) for s in services), slots=(*days, a_slot(service_ids=("mail",))))
    zone = ZoneInfo(board.timezone)
    first = grid.build_grid(board, zone, list(board.slots), None, "full", None)
    kept, rows_kept = dict(grid._days), dict(grid._built)
    told = (("db", SlotOutcome.FAILED, "exit code 2"), ("web", SlotOutcome.SUCCEEDED, ""))
    failed = replace(days[0], service_outcomes=(*told, ("mail", SlotOutcome.SUCCEEDED, "")))  # today, 11:00
    later = replace(board, slots=(failed, *[replace(s) for s in board.slots[1:]]))
    again = grid.build_grid(later, zone, list(later.slots), None, "full", None)
    assert [key for key, day in grid._days.items() if kept.get(key) is not day] == [(None, local_day(NOW, zone))]
    assert [row.service_id for row in again.rows] == ["db", "mail", "web"]
    assert [a is b for a, b in zip(first.rows, again.rows, strict=True)] == [False, True, True]
    made_again = [sid for sid in ("db", "mail", "web") if grid._built[("full", sid)] is not rows_kept[("full", sid)]]
    assert made_again == ["db"], "a row whose cells that day read the same is not made again"
    assert [row.cells[grid.GRID_DAYS_BEFORE].css for row in again.rows] == ["bkg-fail", "bkg-ok", "bkg-ok"]
    assert grid.build_grid(later, zone, list(later.slots), None, "full", None).rows == again.rows


def test_days_remembered_are_the_days_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    board = random_board(random.Random(5))
    zone = ZoneInfo(board.timezone)
    with nothing_remembered():
        for day in range(40):  # a grid looked at every day for weeks, in both columns
            later = replace(board, generated_at=NOW + timedelta(days=day))
            for column in ("full", "small"):
                grid.build_grid(later, zone, list(later.slots), None, column, None)
            today = local_day(later.generated_at, zone)
            shown = {today + timedelta(days=o) for o in range(-grid.GRID_DAYS_BEFORE, grid.GRID_DAYS_AFTER + 1)}
            assert {day for _, day in grid._days} == shown
        assert len(grid._across) == 2  # one per column and source shown
        monkeypatch.setattr(grid, "MAX_DAYS_KEPT", 30)
        for source in ("pve1", "pve2", "pbs"):  # more grids than days kept
            grid.build_grid(board, zone, [s for s in board.slots if s.source == source], source, "full", None)
            assert len(grid._days) <= 30
