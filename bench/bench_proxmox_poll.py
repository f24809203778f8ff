"""What does polling a big PBS + PVE and judging it cost, first and after a little change?

Run: .venv/bin/python bench/bench_proxmox_poll.py [--no-protection]

2,000 guests x 60 snapshots spread over 3 datastores and 20 namespaces on the PBS simulator (sizes that differ
from night to night, as do their archives' sizes in `files`; half of them encrypted, one protected snapshot each,
the first datastore pushed to a remote PBS and scanned), the same 2,000 guests on the PVE simulator (two nightly
vzdump runs with full logs, 2 days of PBS backup tasks). The simulators run in a child process (multiprocessing)
over real HTTPS, so the CPU time printed is the client's own.

After the first poll the verdicts are computed as the service does: `health.evaluate` with no configured
services (so 2,000 services are discovered, calendar slots included), once with an empty history and once with
a real history file that recorded both observations (what `Collector.poll_once` does: poll, record, view,
evaluate). Then 5% of the groups get a new snapshot (and their backup tasks) and both sources are polled again.
With --no-protection the lab has none of the protection facts (no encryption, no protected snapshots, no sync
job or remote) and no protection policy is set, as before issue 13.
The CPU share compares medians: the second poll is repeated (a fresh 5 % change each time) and so is the first
(by fresh sources at the end), `--repeat` times (default 3), because one poll's CPU time on a shared 2-core
machine varies by a fifth from run to run.
The floor a first poll could reach is measured too: the same requests (recorded from a first poll) sent by
the same HTTP client, every body decoded once with msgspec, the snapshot lists into typed records that mirror
the API, with no normalizing, bounding or indexing (median of `--repeat` runs).
Targets: first poll + verdicts < 10 s wall, peak RSS < 300 MB, second poll <= 15% of the first in CPU and in
bytes (issue 7); first poll CPU within 2x of that floor (issue 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from backup_glance import health
from backup_glance.config import PbsSourceConfig, PveSourceConfig
from backup_glance.history import History
from backup_glance.model import Board, HistoryView, Observation, ProtectionPolicy, SourceState
from backup_glance.serving import run_event_loop
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import (
    Guest,
    PbsDatastore,
    PbsJob,
    PbsRemote,
    ProxmoxLab,
    VzdumpJob,
    sync_snapshots,
)
from backup_glance.simulators.pve import create_pve_app
from backup_glance.sources._http import HttpClient
from backup_glance.sources.pbs import PbsSource
from backup_glance.sources.pve import PveSource

GUESTS, SNAPSHOTS, STORES, NAMESPACES = 2000, 60, 3, 20
CHANGED_SHARE = 0.05
TOKEN_ID, SECRET = "bench@pbs!glance", "bench-secret"
DISPLAY_TZ = "Europe/Madrid"
POLL_INTERVAL = timedelta(minutes=5)
# Every guest under a protection policy (issue 13): copies, offsite, lag and encryption judged for all 2,000.
POLICY = ProtectionPolicy(
    copies=2, offsite=1, offsite_lag=timedelta(days=2), encrypted_offsite=True, restore_test=timedelta(days=90)
)
PROTECTION = "--no-protection" not in sys.argv[1:]


def _repeat(arguments: list[str]) -> int:
    if "--repeat" not in arguments:
        return 3
    value = arguments[arguments.index("--repeat") + 1 :][:1]
    if not value or not value[0].isdigit() or int(value[0]) < 1:
        sys.exit("bench_proxmox_poll: --repeat needs a count of 1 or more, e.g. --repeat 5")
    return int(value[0])


REPEAT = _repeat(sys.argv[1:])
T = TypeVar("T")
Request = tuple[str, str, dict[str, Any] | None]  # which source, path, query


class _Verification(msgspec.Struct):
    state: str
    upid: str | None = None


class _File(msgspec.Struct, rename="kebab"):
    filename: str
    size: int | None = None
    crypt_mode: str | None = None


class _Snapshot(msgspec.Struct, rename="kebab"):
    backup_type: str
    backup_id: str
    backup_time: int
    size: int | None = None
    verification: _Verification | None = None
    files: list[_File] = []
    protected: bool = False
    comment: str | None = None


class _SnapshotList(msgspec.Struct):
    data: list[_Snapshot]


_SNAPSHOT_LIST = msgspec.json.Decoder(_SnapshotList)


def big_lab(now: datetime, protection: bool = True) -> ProxmoxLab:
    lab = ProxmoxLab(pve_timezone="UTC", pbs_timezone="UTC")
    stores = [f"store{s}" for s in range(STORES)]
    namespaces = [(stores[n % STORES], f"site{n:02d}") for n in range(NAMESPACES)]
    for store in stores:
        lab.datastores[store] = PbsDatastore(store, namespaces={"": {}}, gc_schedule="sat 03:00")
    for store, ns in namespaces:
        lab.datastores[store].namespaces[ns] = {}
    nightly = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if nightly > now:
        nightly -= timedelta(days=1)
    for index in range(GUESTS):
        vmid = 1000 + index
        guest_type = "qemu" if index % 3 else "lxc"
        lab.guests.append(Guest(vmid, guest_type, f"guest-{vmid}", node=f"pve{index % 4}"))
        store, ns = namespaces[index % NAMESPACES]
        group = lab.datastores[store].group(ns, "vm" if guest_type == "qemu" else "ct", str(vmid))
        for day in range(SNAPSHOTS, 0, -1):
            group.snapshots.append(_snapshot(lab, nightly - timedelta(days=day - 1, seconds=-index), vmid))
        if not protection:
            continue
        # Protection facts: every other guest encrypted client-side, its oldest snapshot kept for good.
        for snap in group.snapshots if vmid % 2 else ():
            snap.crypt_mode = "encrypt"
        group.snapshots[0].protected = True
    if protection:
        _push_offsite(lab)
    lab.vzdump_jobs = [VzdumpJob("nightly", "02:00", all=True, storage="pbs-store0")]
    for days_ago in (1, 0):
        start = nightly - timedelta(days=days_ago)
        log = []
        for guest in lab.guests:
            log += [f"INFO: Starting Backup of VM {guest.vmid} ({guest.type})", "INFO: status = running"]
            log += [f"INFO: Finished Backup of VM {guest.vmid} (00:00:01)"]
        for node in lab.pve_nodes():
            lab.add_pve_task("vzdump", "", start, start + timedelta(minutes=40), "OK", log, node=node)
        for guest in lab.guests:
            kind = "vm" if guest.type == "qemu" else "ct"
            lab.add_pbs_task("backup", f"store0:{kind}/{guest.vmid}", start, start + timedelta(seconds=30))
    return lab


def _push_offsite(lab: ProxmoxLab) -> None:
    """store0 is pushed to an offsite PBS: its guests have an offsite copy (from the remote scan), the others not."""
    remote = PbsRemote("offsite", "pbs-offsite.lan", datastores={"backups": PbsDatastore("backups", namespaces={})})
    for ns in lab.datastores["store0"].namespaces:
        groups = {f"{t}/{i}" for t, i in lab.datastores["store0"].namespaces[ns]}
        sync_snapshots(lab.datastores["store0"], ns, remote.datastores["backups"], ns, groups)
    lab.pbs_remotes["offsite"] = remote
    sync = {"remote": "offsite", "remote-store": "backups", "sync-direction": "push"}
    lab.pbs_jobs.append(PbsJob("sync", "s-offsite", "store0", "06:30", options=dict(sync)))


def _snapshot(lab: ProxmoxLab, at: datetime, vmid: int) -> Any:
    from backup_glance.simulators.proxmox_lab import PbsSnapshot

    # Sizes differ from one night to the next, as a real guest's do (and so do its archives' sizes in `files`).
    size = 4 * 1024**3 + vmid * 4096 + int(at.timestamp()) // 86400 % 61 * 1024**2
    return PbsSnapshot(int(at.timestamp()), size, "ok", None, comment=f"guest-{vmid}")


def serve(conn: Connection, protection: bool = True) -> None:
    """Child process: build the lab, serve PBS and PVE, apply the change on request."""
    # Here, not at the top: TLS for the simulators (trustme, cryptography) is 11 MB that the measured process, which
    # only polls, would otherwise count as its own.
    from backup_glance.simulators._server import SimulatorServer

    now = datetime.now(UTC)
    lab = big_lab(now, protection)
    pbs = SimulatorServer(create_pbs_app(lab, token_id=TOKEN_ID, token_secret=SECRET)).start()
    pve = SimulatorServer(create_pve_app(lab, token_id=TOKEN_ID, token_secret=SECRET)).start()
    _warm_up(pbs.url, lab)
    conn.send({"pbs": (pbs.url, pbs.fingerprint), "pve": (pve.url, pve.fingerprint)})
    every = int(1 / CHANGED_SHARE)
    rounds = 0
    while (command := conn.recv()) != "stop":
        assert command == "change"
        with lab.lock:
            changed = 0
            for store in lab.datastores.values():
                for groups in store.namespaces.values():
                    # A fresh 5 % each round; a group's new backup time is past its newest, as PBS names each
                    # snapshot by its time (two rounds in one second must not list one time twice).
                    for key, group in list(groups.items())[rounds % every :: every]:
                        newest = max((s.backup_time for s in group.snapshots), default=0)
                        at = max(datetime.now(UTC), datetime.fromtimestamp(newest + 1, UTC))
                        group.snapshots.append(_snapshot(lab, at, int(key[1])))
                        lab.add_pbs_task("backup", f"{store.name}:{key[0]}/{key[1]}", at, at + timedelta(seconds=9))
                        changed += 1
            rounds += 1
        conn.send(changed)
    pbs.stop()
    pve.stop()


def _warm_up(url: str, lab: ProxmoxLab) -> None:
    """Let the simulator encode every snapshot once, so the first poll measures the client, not a slow fake."""
    import httpx

    headers = {"Authorization": f"PBSAPIToken={TOKEN_ID}:{SECRET}"}
    with httpx.Client(base_url=url, verify=False, headers=headers, timeout=60) as client:
        for store in lab.datastores.values():
            for ns in store.namespaces:
                client.get(f"/api2/json/admin/datastore/{store.name}/snapshots", params={"ns": ns})


Poll = tuple[float, float, int, int]


async def poll_both(pbs: PbsSource, pve: PveSource) -> tuple[Poll, list[Observation]]:
    bytes_before = pbs.client.bytes_received + pve.client.bytes_received
    requests_before = pbs.client.requests_made + pve.client.requests_made
    wall, cpu = time.perf_counter(), time.process_time()
    pbs_obs, pve_obs = await asyncio.gather(pbs.poll(), pve.poll())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    listed = sum(map(len, pbs_obs.series))
    assert listed >= GUESTS * SNAPSHOTS and len(pve_obs.targets) == GUESTS, "incomplete poll"
    assert not pbs_obs.problems and not pve_obs.problems, (pbs_obs.problems, pve_obs.problems)
    received = pbs.client.bytes_received + pve.client.bytes_received - bytes_before
    requests = pbs.client.requests_made + pve.client.requests_made - requests_before
    return (wall, cpu, received, requests), [pbs_obs, pve_obs]


@contextlib.contextmanager
def recorded_requests() -> Any:
    """Every GET the sources send while inside, as (source, path, query)."""
    requests: list[Request] = []
    exchange = HttpClient._exchange

    async def recording(client: HttpClient, method: str, path: str, **options: Any) -> Any:
        requests.append((client.source, path, dict(options["params"]) if options["params"] else None))
        return await exchange(client, method, path, **options)

    HttpClient._exchange = recording  # type: ignore[method-assign,assignment]
    try:
        yield requests
    finally:
        HttpClient._exchange = exchange  # type: ignore[method-assign]


async def fetch_and_decode(clients: dict[str, HttpClient], requests: list[Request]) -> float:
    """CPU seconds to fetch the same bodies with the same client and decode each once, the snapshot lists typed."""

    async def one(source: str, path: str, query: dict[str, Any] | None) -> int:
        body = await clients[source].get_body(path, query)
        decoded = _SNAPSHOT_LIST.decode(body).data if path.endswith("/snapshots") else msgspec.json.decode(body)
        return len(decoded)

    cpu = time.process_time()
    await asyncio.gather(*(one(*request) for request in requests))
    return time.process_time() - cpu


def timed(work: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def judge(observations: list[Observation], history: HistoryView) -> Board:
    now = datetime.now(UTC)
    states = [
        SourceState(
            name=o.source,
            kind=o.kind,
            poll_interval=POLL_INTERVAL,
            observation=o,
            last_attempt_at=o.observed_at,
            last_success_at=o.observed_at,
        )
        for o in observations
    ]
    defaults = health.Defaults(protection=POLICY if PROTECTION else None)
    board = health.evaluate(
        services=[], sources=states, history=history, now=now, display_tz=DISPLAY_TZ, defaults=defaults
    )
    assert len(board.verdicts) == GUESTS, f"{len(board.verdicts)} verdicts for {GUESTS} guests"
    return board


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child, PROTECTION), daemon=True)
    process.start()
    endpoints = parent.recv()
    common = {"token_id": TOKEN_ID, "token_secret": SECRET, "timeout": "60s", "max_in_flight": 8}
    pbs_url, pbs_pin = endpoints["pbs"]
    pve_url, pve_pin = endpoints["pve"]

    def sources() -> tuple[PbsSource, PveSource]:
        return (
            PbsSource(PbsSourceConfig(name="pbs", type="pbs", url=pbs_url, fingerprint=pbs_pin, **common)),
            PveSource(PveSourceConfig(name="pve", type="pve", url=pve_url, fingerprint=pve_pin, **common)),
        )

    pbs, pve = sources()
    with recorded_requests() as requests:
        first, observations = await poll_both(pbs, pve)
    rss_poll = rss_mb()
    board, eval_wall, eval_cpu = timed(lambda: judge(observations, HistoryView()))
    statuses = Counter(v.status.value for v in board.verdicts)
    slots = len(board.slots)
    with tempfile.TemporaryDirectory() as tmp:
        history = History.open(Path(tmp) / "history.sqlite3", retention=timedelta(days=90))
        try:
            _, record_wall, _ = timed(lambda: [history.record(o) for o in observations])
            # The collector reads max(lookback, 8 days) back; the default lookback is 14 days.
            since = datetime.now(UTC) - timedelta(days=14)
            view, view_wall, _ = timed(lambda: history.view(since=since))
            history_rows = (len(view.all_snapshots()), len(view.runs))
            board, hist_wall, hist_cpu = timed(lambda: judge(observations, view))
            hist_statuses = Counter(v.status.value for v in board.verdicts)
        finally:
            history.close()
    rss_verdicts = rss_mb()
    seconds = []
    for _ in range(REPEAT):
        parent.send("change")
        changed = parent.recv()
        seconds.append((await poll_both(pbs, pve))[0])
    await pbs.aclose()
    await pve.aclose()
    firsts = [first]
    for _ in range(REPEAT - 1):  # after the RSS figures: these observations are let go at once
        pbs, pve = sources()
        firsts.append((await poll_both(pbs, pve))[0])
        await pbs.aclose()
        await pve.aclose()
    floors = []
    for _ in range(REPEAT):
        pbs, pve = sources()
        floors.append(await fetch_and_decode({"pbs": pbs.client, "pve": pve.client}, requests))
        await pbs.aclose()
        await pve.aclose()
    floor_cpu = statistics.median(floors)
    first_cpu, second_cpu = statistics.median(p[1] for p in firsts), statistics.median(p[1] for p in seconds)
    second = seconds[-1]
    parent.send("stop")
    process.join(timeout=10)

    print(f"{GUESTS} guests x {SNAPSHOTS} snapshots, {STORES} datastores, {NAMESPACES} namespaces", end="")
    print(", protection facts and policy" if PROTECTION else ", no protection facts (--no-protection)")
    print(f"first poll : {first[0]:6.2f} s wall  {first[1]:6.2f} s CPU  {first[2] / 1e6:7.2f} MB  {first[3]} requests")
    print(f"verdicts   : {eval_wall:6.2f} s wall  {eval_cpu:6.2f} s CPU  evaluate, empty history")
    print(f"             {GUESTS} services discovered, {slots} calendar slots, {_counts(statuses)}")
    print(
        f"with history: record {record_wall:5.2f} s + view {view_wall:5.2f} s + evaluate {hist_wall:5.2f} s wall",
        end="",
    )
    print(f" ({hist_cpu:.2f} s CPU)")
    print(f"             history view: {history_rows[0]} snapshots, {history_rows[1]} runs; {_counts(hist_statuses)}")
    total = first[0] + eval_wall
    total_history = first[0] + record_wall + view_wall + hist_wall
    print(f"first poll + verdicts: {total:6.2f} s wall (no history), {total_history:6.2f} s wall (with history)")
    print(f"peak RSS   : {rss_poll:6.1f} MB after the poll, {rss_verdicts:6.1f} MB after the verdicts (client process)")
    print(
        f"second poll: {second[0]:6.2f} s wall  {second[1]:6.2f} s CPU  {second[2] / 1e6:7.2f} MB  {second[3]} requests"
    )
    print(f"             after {changed} groups got a new snapshot ({CHANGED_SHARE:.0%})")
    for label, polls, median in (("first polls ", firsts, first_cpu), ("second polls", seconds, second_cpu)):
        print(f"CPU of {REPEAT} {label}: " + "  ".join(f"{p[1]:.2f} s" for p in polls) + f"  (median {median:.2f} s)")
    cpu_share, bytes_share = second_cpu / first_cpu, second[2] / first[2]
    print(f"second/first: CPU {cpu_share:.1%} (medians), bytes {bytes_share:.1%}")
    floor_share = first_cpu / floor_cpu
    print(
        f"floor      : {len(requests)} requests fetched and decoded (snapshot lists typed): "
        + "  ".join(f"{cpu:.2f} s" for cpu in floors)
        + f" CPU (median {floor_cpu:.2f} s); the first poll takes {floor_share:.2f}x that"
    )
    verdicts = [
        ("first poll + verdicts under 10 s (with history)", total_history < 10),
        ("peak RSS under 300 MB", rss_verdicts < 300),
        ("second poll CPU <= 15% of first", cpu_share <= 0.15),
        ("second poll bytes <= 15% of first", bytes_share <= 0.15),
        ("first poll CPU within 2x of fetch + typed decode", floor_share <= 2),
    ]
    for label, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")


def _counts(statuses: Counter[str]) -> str:
    return ", ".join(f"{count} {status}" for status, count in statuses.most_common())


if __name__ == "__main__":
    run_event_loop(main())  # on uvloop, as `serve` runs
