"""The board only changes at the deadlines health announces: re-judging in between gives the same verdicts.

This is what lets the collector sleep until `next_change_at` instead of re-judging every few seconds, so it
is checked on the demo homelab's real observations (daily, weekly, monthly and interval schedules, graces from
0 to 2 hours, a failing source) at random moments over several days: judging at any moment before the
announced deadline must give the board judged at its start, and the deadline must be where a change can be.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from demo_observations import observe_demo

from backup_glance.config import Config, service_specs
from backup_glance.health import Defaults, evaluate
from backup_glance.model import Board, HistoryView, SourceState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def verdicts(board: Board) -> dict[str, tuple[object, ...]]:
    return {
        v.service_id: (v.status, v.reasons, v.next_run_at, v.previous_due_at, v.missed_slots) for v in board.verdicts
    }


def slot_outcomes(board: Board, since: datetime, until: datetime) -> set[tuple[object, ...]]:
    return {(s.job_key, s.start_at, s.outcome) for s in board.slots if since <= s.start_at <= until}


@pytest.fixture(scope="module")
def observed() -> tuple[list[SourceState], Config]:
    return observe_demo(NOW)


@pytest.mark.parametrize("failing", [False, True])
def test_nothing_changes_before_the_announced_deadline(
    observed: tuple[list[SourceState], Config], failing: bool
) -> None:
    states, config = observed
    if failing:  # the PBS stops answering at NOW: its services turn unknown two intervals later
        states = [replace(s, error="pbs 'pbs-main': cannot connect") if s.name == "pbs-main" else s for s in states]
    specs = service_specs(config)
    rng = random.Random(int(failing))

    def judge(at: datetime) -> Board:
        return evaluate(
            services=specs,
            sources=states,
            history=HistoryView(),
            now=at,
            display_tz="Europe/Madrid",
            defaults=Defaults(),
            discover_rest=True,
        )

    moment = NOW
    board = judge(moment)
    changes = 0
    while moment < NOW + timedelta(hours=30):  # a night of slots and graces, and the source going unknown
        deadline = board.next_change_at
        assert deadline is not None and deadline > moment
        probe = max(moment, min(moment + (deadline - moment) * rng.random(), deadline - timedelta(microseconds=1)))
        again = judge(probe)
        assert verdicts(again) == verdicts(board), f"changed at {probe} before the deadline {deadline}"
        assert again.overall is board.overall
        window = (moment - timedelta(days=13), moment + timedelta(days=29))
        assert slot_outcomes(again, *window) == slot_outcomes(board, *window)
        after = judge(deadline)
        changes += verdicts(after) != verdicts(board) or after.overall is not board.overall
        moment, board = deadline, after
    assert changes > 3  # the deadlines are real moments of change, not only the regular re-judgement
