"""The notification policy, pure: what changed for one target, compared with what it was already told."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from notify_helpers import NOW, a_board, a_source, a_verdict

from backup_glance.model import Board, Severity, Status
from backup_glance.notify._policy import (
    Announced,
    Change,
    Decision,
    Rule,
    decide,
    is_complete,
    quiet_until,
)

CRITICAL = Rule(Severity.CRITICAL)
WARNING = Rule(Severity.WARNING)


def run(boards: list[Board], rule: Rule = CRITICAL) -> list[Decision]:
    """Feed boards in order, carrying the announced state along as the notifier does."""
    state: dict[str, Announced] = {}
    decisions = []
    for board in boards:
        decision = decide(board, state, rule, board.generated_at)
        state.update(decision.upserts)
        for item in decision.deletes:
            state.pop(item, None)
        decisions.append(decision)
    return decisions


def changes(decision: Decision) -> list[tuple[str, str, str]]:
    return [(line.change.value, line.name, line.status) for line in decision.lines]


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


class TestChanges:
    def test_problems_on_the_first_complete_board_are_changes_like_any_other(self) -> None:
        board = a_board(a_verdict("vault"), a_verdict("postgres", Status.FAILED), a_verdict("wiki", Status.LATE))
        (first,) = run([board])
        assert changes(first) == [("new", "postgres", "failed"), ("new", "wiki", "late")]

    def test_an_unchanged_board_says_nothing(self) -> None:
        board = a_board(a_verdict("postgres", Status.FAILED))
        _, second = run([board, board])
        assert not second

    def test_a_move_between_problems_is_one_changed_line(self) -> None:
        boards = [a_board(a_verdict("postgres", Status.LATE)), a_board(a_verdict("postgres", Status.FAILED))]
        _, second = run(boards)
        assert changes(second) == [("changed", "postgres", "failed")]
        assert second.lines[0].previous == "late"

    def test_recovery_is_one_line_and_only_for_what_was_alerted(self) -> None:
        boards = [
            a_board(a_verdict("postgres", Status.FAILED), a_verdict("vault")),
            a_board(a_verdict("postgres"), a_verdict("vault")),
            a_board(a_verdict("postgres"), a_verdict("vault")),
        ]
        _, recovered, after = run(boards)
        assert changes(recovered) == [("recovered", "postgres", "ok")]
        assert not after

    def test_running_and_silenced_never_alert(self) -> None:
        (first,) = run([a_board(a_verdict("a", Status.RUNNING), a_verdict("b", Status.SILENCED))])
        assert not first

    def test_a_backup_in_progress_neither_recovers_nor_realerts(self) -> None:
        failed = a_board(a_verdict("postgres", Status.FAILED))
        running = a_board(a_verdict("postgres", Status.RUNNING))
        _, during, again = run([failed, running, failed])
        assert not during and not again

    def test_silencing_an_alerted_service_ends_it_with_a_recovery_line_saying_so(self) -> None:
        _, silenced = run([a_board(a_verdict("x", Status.FAILED)), a_board(a_verdict("x", Status.SILENCED))])
        assert changes(silenced) == [("recovered", "x", "silenced")]

    def test_severity_warning_alerts_on_warnings_and_critical_does_not(self) -> None:
        board = a_board(a_verdict("gappy", Status.GAPS), a_verdict("failing", Status.FAILED))
        assert [line.name for line in run([board], WARNING)[0].lines] == ["failing", "gappy"]
        assert [line.name for line in run([board], CRITICAL)[0].lines] == ["failing"]

    def test_dropping_below_the_target_severity_is_a_recovery_for_it(self) -> None:
        boards = [a_board(a_verdict("x", Status.FAILED)), a_board(a_verdict("x", Status.GAPS))]
        assert changes(run(boards, CRITICAL)[1]) == [("recovered", "x", "gaps")]
        assert changes(run(boards, WARNING)[1]) == [("changed", "x", "gaps")]

    def test_an_unknown_of_its_own_alerts_at_either_severity(self) -> None:
        ghost = a_verdict("ghost", Status.UNKNOWN, reason="never seen: no source reports guest:999", sources=())
        board = a_board(ghost)
        assert changes(run([board], CRITICAL)[0]) == [("new", "ghost", "unknown")]

    def test_a_digest_only_target_gets_no_alerts(self) -> None:
        board = a_board(a_verdict("postgres", Status.FAILED))
        assert not decide(board, {}, Rule(alerts=False), NOW)

    def test_a_service_gone_from_the_board_is_forgotten_quietly(self) -> None:
        _, gone = run([a_board(a_verdict("x", Status.FAILED)), a_board(a_verdict("y"))])
        assert gone.lines == () and gone.deletes == ("service:x",)

    def test_problems_come_worst_first_then_recoveries(self) -> None:
        boards = [
            a_board(a_verdict("a", Status.FAILED)),
            a_board(a_verdict("a"), a_verdict("b", Status.GAPS), a_verdict("c", Status.LATE)),
        ]
        expected = [("new", "c", "late"), ("new", "b", "gaps"), ("recovered", "a", "ok")]
        assert changes(run(boards, WARNING)[1]) == expected


class TestSources:
    def down_board(self, *, minutes: float, **more: object) -> Board:
        at = later(minutes)
        pbs = a_source(error="pbs 'pbs-main': HTTP 503", last_success_ago=timedelta(minutes=minutes + 1), at=at)
        return a_board(
            a_verdict("caddy", Status.UNKNOWN, reason="source 'pbs-main' unreachable since 12:00: HTTP 503", at=at),
            a_verdict("vault", Status.UNKNOWN, reason="source 'pbs-main' unreachable since 12:00: HTTP 503", at=at),
            a_verdict("db", Status.OK, sources=("databasement",), at=at),
            sources=(pbs, a_source("databasement", kind="databasement", at=at)),
            at=at,
        )

    def test_a_source_that_stops_answering_is_one_line_carrying_its_services(self) -> None:
        healthy = a_board(a_verdict("caddy"), a_verdict("vault"))
        _, down = run([healthy, self.down_board(minutes=12)])
        assert changes(down) == [("down", "pbs-main", "down")]
        line = down.lines[0]
        assert line.reason == "pbs 'pbs-main': HTTP 503" and line.riders == ("caddy", "vault")

    def test_one_failed_poll_is_not_yet_a_source_down(self) -> None:
        at = later(1)
        flaky = a_source(error="HTTP 503", last_success_ago=timedelta(minutes=2), at=at)
        (decision,) = run([a_board(a_verdict("caddy", at=at), sources=(flaky,), at=at)])
        assert not decision

    def test_the_source_stays_one_message_and_its_recovery_is_one_line(self) -> None:
        healthy = a_board(a_verdict("caddy"), a_verdict("vault"), at=later(30))
        first = a_board(a_verdict("caddy"), a_verdict("vault"))
        _, _, still, back = run([first, self.down_board(minutes=12), self.down_board(minutes=20), healthy])
        assert not still
        assert changes(back) == [("up", "pbs-main", "ok")]

    def test_a_problem_announced_before_the_outage_is_not_repeated_after_it(self) -> None:
        failed = a_board(a_verdict("caddy", Status.FAILED), a_verdict("vault"))
        after = a_board(a_verdict("caddy", Status.FAILED), a_verdict("vault"), at=later(30))
        _, down, back = run([failed, self.down_board(minutes=12), after])
        assert [line.change for line in down.lines] == [Change.DOWN]
        assert changes(back) == [("up", "pbs-main", "ok")]

    def test_a_source_that_never_answered_is_down_on_the_first_complete_board(self) -> None:
        never = a_source(error="connection refused", last_success_ago=None)
        board = a_board(
            a_verdict("caddy", Status.UNKNOWN, reason="source 'pbs-main' has not answered yet: connection refused"),
            sources=(never,),
        )
        assert changes(run([board])[0]) == [("down", "pbs-main", "down")]


class TestReminders:
    def test_repeat_reminds_while_still_not_ok_and_keeps_its_schedule(self) -> None:
        rule = Rule(Severity.CRITICAL, repeat=timedelta(hours=24))
        boards = [a_board(a_verdict("x", Status.FAILED), at=NOW + timedelta(hours=h)) for h in (0, 12, 24, 30, 48)]
        decisions = run(boards, rule)
        assert [changes(d) for d in decisions] == [
            [("new", "x", "failed")],
            [],
            [("reminder", "x", "failed")],
            [],
            [("reminder", "x", "failed")],
        ]
        assert decisions[2].lines[0].since == NOW

    def test_no_repeat_never_reminds(self) -> None:
        boards = [a_board(a_verdict("x", Status.FAILED), at=NOW + timedelta(days=d)) for d in (0, 3)]
        assert not run(boards)[1]


class TestCompleteness:
    def test_a_board_is_complete_once_every_source_answered_or_failed(self) -> None:
        assert is_complete(a_board(sources=(a_source(), a_source("b", error="refused", last_success_ago=None))))
        assert not is_complete(a_board(sources=(a_source(), a_source("b", attempted=False))))


class TestQuietHours:
    zone = ZoneInfo("Europe/Madrid")

    @pytest.mark.parametrize(
        ("local", "until"),
        [
            ("2026-11-26T23:30", "2026-11-27T07:00"),
            ("2026-11-27T03:00", "2026-11-27T07:00"),
            ("2026-11-27T07:00", None),
            ("2026-11-26T21:59", None),
        ],
    )
    def test_overnight_span(self, local: str, until: str | None) -> None:
        now = datetime.fromisoformat(local).replace(tzinfo=self.zone).astimezone(UTC)
        end = quiet_until(now, (time(22), time(7)), self.zone)
        assert (end.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M") if end else None) == until

    def test_same_day_span(self) -> None:
        now = datetime(2026, 11, 26, 13, 30, tzinfo=self.zone)
        assert quiet_until(now, (time(12), time(14)), self.zone) == datetime(2026, 11, 26, 14, 0, tzinfo=self.zone)
        assert quiet_until(now, (time(14), time(15)), self.zone) is None
