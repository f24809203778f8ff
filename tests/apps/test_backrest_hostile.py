"""What a hostile-input probe found the Backrest source doing wrong: one bad value costs its record (named in
`problems`), never the source, never memory without bound, never the change cursor. The real simulator over
real HTTP, with single operations or the config rewritten on the wire."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from backup_glance.config import BackrestSourceConfig
from backup_glance.model import Observation, RunOutcome
from backup_glance.simulators import backrest as backrest_sim
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.backrest import BackrestScenario, BrOperation, BrPlan, BrRepo, add_backup
from backup_glance.sources.backrest import BackrestSource

from .conftest import NOW

Send = Callable[[dict[str, Any]], Awaitable[None]]
CRON = {"cron": "0 2 * * *"}


def scenario_of(*plans: BrPlan, repos: tuple[BrRepo, ...] = ()) -> tuple[BackrestScenario, BrOperation, BrOperation]:
    """Repo "r" (and `repos`), plan "p" (or `plans`); two good backups of the first plan, two days and one day ago."""
    scenario = BackrestScenario(repos=[BrRepo("r", "g" * 64), *repos], plans=list(plans) or [BrPlan("p", "r", CRON)])
    older = add_backup(scenario, scenario.plans[0], NOW - timedelta(days=2))
    newer = add_backup(scenario, scenario.plans[0], NOW - timedelta(days=1))
    return scenario, older, newer


def tamper(monkeypatch: pytest.MonkeyPatch, ids: set[int], fields: dict[str, Any]) -> None:
    """The operations `ids` go on the wire with `fields` replaced."""
    original = backrest_sim._op_json

    def patched(op: BrOperation, instance: str) -> dict[str, Any]:
        body = original(op, instance)
        return {**body, **fields} if op.id in ids else body

    monkeypatch.setattr(backrest_sim, "_op_json", patched)


def tamper_config(monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    original = backrest_sim._config_json

    def patched(scenario: BackrestScenario) -> dict[str, Any]:
        body = original(scenario)
        change(body)
        return body

    monkeypatch.setattr(backrest_sim, "_config_json", patched)


def raw_replaced(app: Any, old: bytes, new: bytes) -> Any:
    """`app`, with `old` replaced by `new` in its answers: for JSON that `json.dumps` does not write."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Send) -> None:
        async def patched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [(k, v) for k, v in message["headers"] if k != b"content-length"]}
            elif message["type"] == "http.response.body":
                message = {**message, "body": message.get("body", b"").replace(old, new)}
            await send(message)

        await app(scope, receive, patched)

    return wrapper


class Polling:
    """A source polling the simulator; `add` changes the scenario between polls."""

    def __init__(self, scenario: BackrestScenario, app: Any = None) -> None:
        self.scenario = scenario
        self.server = SimulatorServer(app or backrest_sim.create_app(scenario, clock=lambda: NOW), tls=False)

    async def polls(self, count: int = 1, between: Callable[[], object] = lambda: None) -> list[Observation]:
        with self.server:
            fields = {"name": "br", "type": "backrest", "url": self.server.url, "timezone": "UTC"}
            self.source = BackrestSource(BackrestSourceConfig.model_validate(fields), clock=lambda: NOW)
            try:
                found = [await self.source.poll()]
                for _ in range(count - 1):
                    between()
                    found.append(await self.source.poll())
                return found
            finally:
                await self.source.aclose()


async def polls(scenario: BackrestScenario, count: int = 1, app: Any = None) -> list[Observation]:
    return await Polling(scenario, app).polls(count)


class TestBoundedText:
    async def test_a_huge_message_is_kept_cut_not_whole(self) -> None:
        """One failed backup with a 30 MB message a poll grew the collector from 92 to 268 MB in 90 s."""
        scenario, _older, _newer = scenario_of()
        failed = add_backup(scenario, scenario.plans[0], NOW - timedelta(hours=1), status="STATUS_ERROR")
        failed.display_message = "repo locked " + "E" * 3_000_000
        polling = Polling(scenario)
        (obs,) = await polling.polls()
        run = next(r for r in obs.runs if r.run_id == str(failed.id))
        assert run.message.startswith("repo locked EEE") and run.message.endswith("…")
        assert 1000 <= len(run.message) <= 4096
        assert len(repr(polling.source.__dict__)) < 100_000  # none of the 3 MB is held until the next poll

    async def test_a_huge_snapshot_id_or_status_is_cut_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        scenario, older, newer = scenario_of()
        other = add_backup(scenario, scenario.plans[0], NOW - timedelta(hours=1))
        tamper(monkeypatch, {newer.id}, {"snapshotId": "S" * 3_000_000})
        tamper(monkeypatch, {other.id}, {"status": "STATUS_" + "X" * 3_000_000})
        polling = Polling(scenario)
        (obs,) = await polling.polls()
        runs = {r.run_id: r for r in obs.runs}
        assert (runs[str(older.id)].outcome, runs[str(newer.id)].outcome) == (RunOutcome.OK, RunOutcome.OK)
        assert runs[str(other.id)].outcome is RunOutcome.UNKNOWN and len(runs[str(other.id)].message) < 300
        (huge,) = [s for s in obs.snapshots if s.snapshot_id.startswith("SSS")]
        assert len(huge.snapshot_id) <= 300
        assert len(repr(polling.source.__dict__)) < 100_000


class TestChangeCursor:
    async def test_a_modno_far_above_the_others_does_not_freeze_the_cursor(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An int64 modno passed the old guard; every later poll asked for modnoGte 2^63-1 and saw nothing new,
        for six hours, with no problem said."""
        scenario, older, _newer = scenario_of()
        poisoned = str(2**63 - 2)
        tamper(monkeypatch, {older.id}, {"modno": poisoned})
        fresh: list[BrOperation] = []
        first, second = await Polling(scenario).polls(
            2, lambda: fresh.append(add_backup(scenario, scenario.plans[0], NOW - timedelta(minutes=5)))
        )
        assert str(fresh[0].id) in {r.run_id for r in second.runs} and len(second.runs) == 3
        cursors = [b["selector"]["modnoGte"] for m, b in scenario.requests if "modnoGte" in b.get("selector", {})]
        assert cursors and all(int(since) < 10**6 for since in cursors)
        note = f"operation {older.id}: modno {poisoned} is far above the others; not trusted"
        assert first.problems == second.problems == (note,)
        assert str(older.id) in {r.run_id for r in second.runs}  # the operation itself is read as usual

    async def test_a_plan_idle_for_years_below_a_gap_does_not_hold_the_cursor_back(self) -> None:
        """Most operations can be an old plan's, far below today's modnos: a gap lower down is history."""
        scenario, _older, _newer = scenario_of(BrPlan("p", "r", CRON), BrPlan("old", "r", CRON))
        for hour in range(60):
            add_backup(scenario, scenario.plans[1], NOW - timedelta(days=900, hours=hour))
        scenario._ids = itertools.count(30_000_000)  # years of progress updates since
        for hours in (30, 20, 10):
            add_backup(scenario, scenario.plans[0], NOW - timedelta(hours=hours))
        fresh: list[BrOperation] = []
        first, second = await Polling(scenario).polls(
            2, lambda: fresh.append(add_backup(scenario, scenario.plans[0], NOW - timedelta(minutes=5)))
        )
        assert first.problems == second.problems == ()
        assert str(fresh[0].id) in {r.run_id for r in second.runs}
        cursors = [int(b["selector"]["modnoGte"]) for m, b in scenario.requests if "modnoGte" in b.get("selector", {})]
        assert cursors and min(cursors) > 30_000_000 - 256  # from today's modnos, not from the old plan's

    async def test_modnos_that_follow_one_another_move_the_cursor(self) -> None:
        scenario, _older, newer = scenario_of()
        first, second = await Polling(scenario).polls(2, lambda: scenario.update(newer, display_message="re-read"))
        cursors = [int(b["selector"]["modnoGte"]) for m, b in scenario.requests if "modnoGte" in b.get("selector", {})]
        assert cursors == [max(o.modno for o in scenario.operations if o is not newer) + 1 - 256]
        assert first.problems == second.problems == ()


class TestSharedIds:
    @pytest.mark.parametrize("across_plans", [False, True], ids=["one-plan", "two-plans"])
    async def test_operations_sharing_an_id_are_all_kept_and_named(
        self, monkeypatch: pytest.MonkeyPatch, across_plans: bool
    ) -> None:
        """All operations "id": "7" left one of them: every plan late, and nothing said."""
        scenario, older, newer = scenario_of(BrPlan("p", "r", CRON), BrPlan("q", "r", CRON))
        other = add_backup(scenario, scenario.plans[1], NOW - timedelta(hours=3))
        tamper(monkeypatch, {newer.id, other.id} if across_plans else {older.id, newer.id}, {"id": "7"})
        first, second = await polls(scenario, 2)
        for obs in (first, second):
            assert len(obs.runs) == 3 and len(obs.snapshots) == 3  # no backup hidden behind another
            assert len({r.run_id for r in obs.runs}) == 3  # nor merged later for having the same run id
            assert obs.problems == ("operation id 7 is used by 2 operations",)

    async def test_one_operation_listed_twice_is_named(self) -> None:
        scenario, _older, newer = scenario_of()
        scenario.operations.append(newer)
        (obs,) = await polls(scenario)
        assert obs.problems == (f"operation id {newer.id} is used by 2 operations",)
        assert len(obs.runs) == 2


class TestConfigNames:
    @pytest.mark.parametrize(
        ("plan", "repo", "named"),
        [
            ("vault\ud800", None, "GetConfig: plan 'vault\\ud800' holds a lone surrogate (half a character)"),
            (None, "3f1c\udfff", "GetConfig: repo 'r2': its guid holds a lone surrogate (half a character)"),
            ("P" * 100_000, None, f"GetConfig: plan '{'P' * 58}… is 100,000 characters long, too long to be an id"),
            ("p", None, "GetConfig: plan 'p' is listed twice (the first is read)"),
        ],
        ids=["plan-surrogate", "guid-surrogate", "plan-id-huge", "plan-twice"],
    )
    async def test_a_plan_or_repo_whose_id_cannot_be_one_costs_only_itself(
        self, plan: str | None, repo: str | None, named: str
    ) -> None:
        """A lone surrogate in a plan id or repo guid failed the whole source: "cannot ask for
        '/v1.Backrest/GetOperations': UnicodeEncodeError", naming neither."""
        plans = [BrPlan("p", "r", CRON), *([BrPlan(plan, "r", CRON)] if plan else [])]
        repos = (BrRepo("r2", repo, prune_schedule=CRON),) if repo else ()
        scenario, _older, _newer = scenario_of(*plans, repos=repos)
        first, second = await polls(scenario, 2)
        for obs in (first, second):
            assert [(j.job_id, len(obs.runs)) for j in obs.jobs] == [("p", 2)]
            assert obs.problems == (f"{named}; left out",)

    @pytest.mark.parametrize(("guid", "named"), [(None, None), ({"a": 1}, "GetConfig: repo 'r': its guid is no name")])
    async def test_a_guid_that_is_null_is_unset_and_one_of_another_type_is_named(
        self, monkeypatch: pytest.MonkeyPatch, guid: object, named: str | None
    ) -> None:
        """A null guid was sent as "None"."""
        scenario, _older, _newer = scenario_of()
        tamper_config(monkeypatch, lambda body: body["repos"][0].__setitem__("guid", guid))
        (obs,) = await polls(scenario)
        assert not [b for m, b in scenario.requests if "repoGuid" in b.get("selector", {})]
        assert len(obs.runs) == 2 and obs.problems == ((f"{named}; left out",) if named else ())

    async def test_disabled_as_text_is_no_boolean(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ "disabled": "false" turned the plan's schedule off, silently."""
        scenario, _older, _newer = scenario_of(BrPlan("p", "r", {**CRON, "disabled": "false"}))
        (obs,) = await polls(scenario)
        (job,) = obs.jobs
        assert job.enabled and job.schedule is not None and job.schedule.expression == "0 2 * * *"
        assert obs.problems == ("plan 'p': schedule `disabled` is 'false', not true or false",)


class TestOperationFields:
    @pytest.mark.parametrize(
        ("start", "shown"), [(float("nan"), "nan"), (float("inf"), "inf"), ("@@5000-digits@@", "None")]
    )
    async def test_a_start_time_that_is_no_number_is_named_unreadable(
        self, monkeypatch: pytest.MonkeyPatch, start: object, shown: str
    ) -> None:
        """NaN, 1e400 and 5,000 digits were read as 0: "impossible date 1970-01-01"."""
        scenario, older, newer = scenario_of()
        tamper(monkeypatch, {newer.id}, {"unixTimeStartMs": start})
        app = raw_replaced(backrest_sim.create_app(scenario, clock=lambda: NOW), b'"@@5000-digits@@"', b"9" * 5000)
        first, second = await polls(scenario, 2, app=app)
        for obs in (first, second):
            assert [r.run_id for r in obs.runs] == [str(older.id)]
            assert obs.problems == (f"operation {newer.id}: start time {shown} is unreadable; left out",)

    @pytest.mark.parametrize("field", ["planId", "repoId"])
    async def test_an_operation_whose_plan_or_repo_is_no_id_is_named(
        self, monkeypatch: pytest.MonkeyPatch, field: str
    ) -> None:
        """["p"] was read as a plan "['p']": the backup gone from its plan, silently."""
        scenario, older, newer = scenario_of()
        tamper(monkeypatch, {newer.id}, {field: ["p"]})
        (obs,) = await polls(scenario)
        assert [r.run_id for r in obs.runs] == [str(older.id)]
        assert obs.problems == (f"operation {newer.id}: `{field}` ['p'] is no id; left out",)
