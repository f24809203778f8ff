"""What does polling a big Backrest and a big Databasement cost, first and in steady state?

Run: .venv/bin/python bench/bench_apps_poll.py

A Backrest with 20 plans and 50,000 operations (hourly runs, backup + index op each) and a Databasement with
200 databases on 20 servers and 20,000 dump attempts (100 daily runs). The simulators run in a child process
(multiprocessing) over real HTTPS, so the client CPU printed here is the source's own. For each source it prints
the first poll, a steady poll after a few new operations/dumps, and a steady poll with nothing new: wall time,
client CPU time, requests and bytes received.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from backup_glance.config import BackrestSourceConfig, DatabasementSourceConfig
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.backrest import BackrestScenario, BrOperation, BrPlan, BrRepo, add_backup, ms
from backup_glance.simulators.backrest import create_app as backrest_app
from backup_glance.simulators.databasement import DatabasementScenario, DbSchedule, DbServer, add_daily_run, ulid
from backup_glance.simulators.databasement import create_app as databasement_app
from backup_glance.sources.backrest import BackrestSource
from backup_glance.sources.databasement import DatabasementSource

NOW = datetime(2026, 8, 6, 9, 0, tzinfo=UTC)
PLANS, OPERATIONS = 20, 50_000
SERVERS, DATABASES_PER_SERVER, DAYS = 20, 10, 100


def big_backrest() -> BackrestScenario:
    repo = BrRepo("nas", "ab" * 32, prune_schedule={"cron": "0 6 * * 0"}, check_schedule={"cron": "0 7 1 * *"})
    plans = [BrPlan(f"plan-{n:02}", "nas", {"cron": f"{n} * * * *", "clock": "CLOCK_LOCAL"}) for n in range(PLANS)]
    scenario = BackrestScenario(repos=[repo], plans=plans)
    runs_per_plan = OPERATIONS // PLANS // 2  # each run: a backup op and an index-snapshot op
    for hours_ago in range(runs_per_plan, 0, -1):
        for n, plan in enumerate(plans):
            at = NOW - timedelta(hours=hours_ago, minutes=-n)
            status = "STATUS_ERROR" if (hours_ago + n) % 97 == 0 else "STATUS_SUCCESS"
            add_backup(scenario, plan, at, status=status, message="exit status 1" if status == "STATUS_ERROR" else "")
            if status == "STATUS_ERROR":  # keep the total at exactly 2 ops per run
                op_id = scenario.next_id()
                scenario.add(
                    BrOperation(op_id, op_id, op_id, plan.id, "nas", repo.guid, "forget", "STATUS_SUCCESS", ms(at))
                )
    return scenario


def big_databasement() -> DatabasementScenario:
    daily = DbSchedule(ulid(), "Daily", "0 2 * * *")
    servers = [
        DbServer(ulid(), f"db{s:02}", "postgres", [f"app{d}" for d in range(DATABASES_PER_SERVER)], daily.id)
        for s in range(SERVERS)
    ]
    scenario = DatabasementScenario(schedules=[daily], servers=servers)
    for days_ago in range(DAYS, 0, -1):
        add_daily_run(
            scenario,
            NOW.replace(hour=0) - timedelta(days=days_ago),
            failed={"app3": "timeout"} if days_ago % 9 == 0 else None,
        )
    return scenario


def serve(conn: Connection) -> None:
    """Child process: run both simulators, then grow the scenarios on request."""
    backrest, databasement = big_backrest(), big_databasement()
    with (
        SimulatorServer(backrest_app(backrest, clock=lambda: NOW)) as br,
        SimulatorServer(databasement_app(databasement)) as db,
    ):
        conn.send(
            {
                "backrest": (br.url, br.fingerprint),
                "databasement": (db.url, db.fingerprint, databasement.token),
                "sizes": (len(backrest.operations), len(databasement.snapshots)),
            }
        )
        while (command := conn.recv()) != "stop":
            if command == "grow":
                for plan in backrest.plans[:3]:
                    add_backup(backrest, plan, NOW + timedelta(minutes=5))
                add_backup(backrest, backrest.plans[3], NOW + timedelta(minutes=6), status="STATUS_INPROGRESS")
                late = DatabasementScenario(servers=databasement.servers[:1])
                add_daily_run(late, NOW)
                databasement.snapshots.extend(late.snapshots[:5])
            conn.send("ok")


async def measure(source: Any) -> tuple[float, float, int, int]:
    client = source.client
    requests, received = client.requests_made, client.bytes_received
    wall, cpu = time.perf_counter(), time.process_time()
    obs = await source.poll()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    measure.last = obs  # type: ignore[attr-defined]
    return wall, cpu, client.requests_made - requests, client.bytes_received - received


def line(label: str, numbers: tuple[float, float, int, int]) -> str:
    wall, cpu, requests, received = numbers
    return (
        f"  {label:<22} {wall * 1000:7.0f} ms wall {cpu * 1000:7.0f} ms client cpu"
        f" {requests:5} requests {received / 1024:9.1f} KiB"
    )


async def bench(info: dict[str, Any], conn: Connection) -> None:
    br_url, br_fp = info["backrest"]
    db_url, db_fp, token = info["databasement"]
    backrest = BackrestSource(
        BackrestSourceConfig(name="br", type="backrest", url=br_url, fingerprint=br_fp, timeout="60s"),
        clock=lambda: NOW,
    )
    databasement = DatabasementSource(
        DatabasementSourceConfig(
            name="db", type="databasement", url=db_url, fingerprint=db_fp, token=token, timeout="60s"
        ),
        clock=lambda: NOW,
    )
    results: dict[str, list[str]] = {"backrest": [], "databasement": []}
    for name, source in (("backrest", backrest), ("databasement", databasement)):
        results[name].append(line("first poll", await measure(source)))
        obs = measure.last  # type: ignore[attr-defined]
        results[name].append(f"    -> {len(obs.targets)} targets, {len(obs.runs)} runs, {len(obs.snapshots)} snapshots")
        results[name].append(line("second poll (catch-up)", await measure(source)))
    conn.send("grow")
    conn.recv()
    for name, source in (("backrest", backrest), ("databasement", databasement)):
        results[name].append(line("steady, a few new", await measure(source)))
        obs = measure.last  # type: ignore[attr-defined]
        results[name].append(f"    -> {len(obs.targets)} targets, {len(obs.runs)} runs, {len(obs.snapshots)} snapshots")
        results[name].append(line("steady, nothing new", await measure(source)))
        await source.aclose()
    ops, dumps = info["sizes"]
    print(f"Backrest: {PLANS} plans, {ops:,} operations (client keeps the newest 400 per plan)")
    print("\n".join(results["backrest"]))
    print(f"Databasement: {SERVERS * DATABASES_PER_SERVER} databases, {dumps:,} dump attempts, per_page=100")
    print("\n".join(results["databasement"]))


def main() -> None:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    process.start()
    try:
        info = parent.recv()
        asyncio.run(bench(info, parent))
    finally:
        parent.send("stop")
        process.join(timeout=10)


if __name__ == "__main__":
    main()
