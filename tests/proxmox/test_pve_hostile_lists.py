"""PVE source against lists PVE would not send: job selections and schedules that cannot be read, the same task,
job or guest listed twice. Over real HTTPS, the simulator's honest answers rewritten on the way out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from conftest import NOW, PVE_SECRET, PVE_TOKEN_ID, Clock, pve_config
from rewriting import Rewriting, Rule

from backup_glance.model import Job, Observation, RunOutcome
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.proxmox_lab import Guest, ProxmoxLab
from backup_glance.simulators.pve import create_pve_app
from backup_glance.sources._pve_wire import resolve_selection
from backup_glance.sources.pve import TASK_LOOKBACK, PveSource

LOOKBACK = int((NOW - TASK_LOOKBACK).timestamp())
CRITICAL = tuple(f"guest:{vmid}" for vmid in range(101, 107))


@pytest.fixture
def rules() -> dict[str, Rule]:
    return {}


@pytest.fixture
def server(lab: ProxmoxLab, rules: dict[str, Rule]) -> Iterator[SimulatorServer]:
    app = Rewriting(create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=PVE_SECRET), rules)
    with SimulatorServer(app) as running:
        yield running


def critical(**fields: Any) -> Callable[[Any], Any]:
    """The job list with critical-nightly's fields set (None: removed)."""

    def change(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for job in jobs:
            if job["id"] == "critical-nightly":
                job.update(fields)
                for name in [name for name, value in fields.items() if value is None]:
                    del job[name]
        return jobs

    return change


async def poll(server: SimulatorServer) -> Observation:
    source = PveSource(pve_config(server), clock=Clock())
    try:
        return await source.poll()
    finally:
        await source.aclose()


def job(obs: Observation, job_id: str = "critical-nightly") -> Job:
    return next(j for j in obs.jobs if j.job_id == job_id)


class TestJobSelections:
    async def test_a_vmid_list_sent_as_json_is_read_as_that_list(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        """It was read as the text "[101, 102, ...]": 101 and 106 were then in no backup job."""
        rules["/cluster/backup"] = critical(vmid=[101, 102, 103, 104, 105, 106])
        obs = await poll(server)
        assert job(obs).target_keys == CRITICAL and obs.problems == ()

    async def test_vmid_parts_that_are_no_vmid_are_named_and_cost_no_guest_its_job(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        """102-104 were dropped silently: those guests were "in no backup job" though PVE said they were in one."""
        rules["/cluster/backup"] = critical(vmid="101,102-104,abc,,999999999999,-5,105 106;1e3")
        obs = await poll(server)
        assert job(obs).target_keys == CRITICAL
        assert obs.problems == (
            "backup job 'critical-nightly': its guest selection cannot be fully read: vmid '102-104', 'abc',"
            " '999999999999', '-5', '1e3' are no VMID (PVE has no ranges)",
            "backup job 'critical-nightly': guests 102, 103, 104 taken as in it: PVE says they are in a backup job,"
            " and no job read here holds them",
        )
        assert obs.uncovered_target_keys == ("guest:120",)  # what PVE says is in no job stays so

    async def test_without_pves_own_word_an_unreadable_selection_is_said_to_leave_guests_in_doubt(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        rules["/cluster/backup"] = critical(vmid="101,abc")
        rules["/cluster/backup-info/not-backed-up"] = 500
        obs = await poll(server)
        assert job(obs).target_keys == ("guest:101",)
        assert (
            "backup job 'critical-nightly': its guests outside the part read may show as in no backup job"
            " (not-backed-up could not be read)"
        ) in obs.problems

    async def test_a_pool_that_is_no_name_is_named_and_its_guests_stay_in_the_job(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        rules["/cluster/backup"] = critical(pool=["x"])
        obs = await poll(server)
        assert job(obs).target_keys == CRITICAL
        assert obs.problems[0] == (
            "backup job 'critical-nightly': its guest selection cannot be fully read: pool ['x'] is no pool name"
        )

    async def test_a_pool_no_guest_is_in_is_a_job_that_backs_up_nothing_and_says_so(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        rules["/cluster/backup"] = critical(vmid=None, pool="nosuchpool")
        obs = await poll(server)
        assert job(obs).target_keys == ()
        assert obs.problems == (
            "backup job 'critical-nightly': no guest is in pool 'nosuchpool': the job backs up nothing",
        )

    @pytest.mark.parametrize("schedule", ["", None])
    async def test_an_enabled_job_without_a_schedule_is_named_and_keeps_its_guests(
        self, rules: dict[str, Rule], server: SimulatorServer, schedule: str | None
    ) -> None:
        """Its guests were "in no backup job" (unprotected), with no word of why; now the job's schedule is one
        that cannot be read (an unknown)."""
        rules["/cluster/backup"] = critical(schedule=schedule)  # None: no schedule field at all
        obs = await poll(server)
        nightly = job(obs)
        assert nightly.enabled and nightly.target_keys == CRITICAL
        assert nightly.schedule is not None and nightly.schedule.expression == ""
        assert obs.problems == (
            f"backup job 'critical-nightly': enabled, but its schedule {schedule!r} is no calendar event",
        )


def test_a_vmid_list_of_numbers_and_text_is_read_and_what_is_no_vmid_named() -> None:
    guests: list[dict[str, Any]] = [{"vmid": 101, "node": "pve"}, {"vmid": 102, "node": "pve"}]
    gaps: list[str] = []
    assert resolve_selection({"vmid": [101, "102", "x", None]}, guests, gaps=gaps) == ("guest:101", "guest:102")
    assert gaps == ["vmid 'x', None are no VMID (PVE has no ranges)"]
    assert resolve_selection({"vmid": 101}, guests) == ("guest:101",)


class TestListedTwice:
    async def test_a_task_another_node_lists_too_is_taken_from_the_node_its_upid_names(
        self, lab: ProxmoxLab, server: SimulatorServer
    ) -> None:
        """pve2 listing pve's tasks as OK turned last night's failed critical-nightly into a success."""
        lab.guests.append(Guest(199, "qemu", "other", node="pve2"))
        lab.pve_tasks += [replace(t, node="pve2", status="OK") for t in lab.pve_tasks if t.node == "pve"]
        copies = sum(t.node == "pve" and t.type == "vzdump" and t.starttime >= LOOKBACK for t in lab.pve_tasks)
        obs = await poll(server)
        nightly = job(obs).last_run
        assert nightly and nightly.outcome is RunOutcome.FAILED and nightly.message == "job errors"
        assert len(obs.problems) == 1
        assert obs.problems[0].startswith(
            f"tasks of node pve2: {copies} also listed by another node; each is taken from the node its UPID names"
        )

    async def test_a_job_id_listed_twice_is_named_and_the_first_kept(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        rules["/cluster/backup"] = lambda jobs: [*jobs, {**jobs[0], "vmid": "110", "enabled": 0}]
        obs = await poll(server)
        first = [j for j in obs.jobs if j.job_id == obs.jobs[0].job_id]
        assert len(first) == 1 and first[0].enabled and first[0].target_keys != ("guest:110",)
        assert obs.problems == (f"backup job {obs.jobs[0].job_id!r}: listed 2 times; the first is used",)

    async def test_a_vmid_on_two_nodes_is_named_and_one_kept_whatever_the_order(
        self, rules: dict[str, Rule], server: SimulatorServer
    ) -> None:
        def twice(guests: list[dict[str, Any]]) -> list[dict[str, Any]]:
            postgres = next(g for g in guests if g["vmid"] == 104)
            return [{**postgres, "node": "pve2", "name": "imposter"}, *guests]  # the impostor first

        rules["/cluster/resources"] = twice
        obs = await poll(server)
        postgres = [t for t in obs.targets if t.key == "guest:104"]
        assert len(postgres) == 1 and postgres[0].guest and postgres[0].guest.node == "pve"
        assert postgres[0].name != "imposter"
        assert "guest 104: listed 2 times (nodes 'pve', 'pve2'); the one on 'pve' is used" in obs.problems


def without_next_run(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: value for name, value in job.items() if name != "next-run"} for job in jobs]


async def test_a_new_zone_reads_the_same_job_list_again(
    lab: ProxmoxLab, rules: dict[str, Rule], server: SimulatorServer
) -> None:
    """The job list as the very same bytes (no `next-run` to move with the zone), the node's zone changed: the jobs
    are read again in the new zone, not handed back as the last poll made them."""
    rules["/cluster/backup"] = without_next_run
    source = PveSource(pve_config(server), clock=Clock())
    try:
        before = await source.poll()
        with lab.lock:
            lab.pve_timezone = "America/New_York"
        after = await source.poll()
    finally:
        await source.aclose()
    assert {j.schedule.timezone for j in before.jobs if j.schedule} == {"Europe/Madrid"}
    assert {j.schedule.timezone for j in after.jobs if j.schedule} == {"America/New_York"}
