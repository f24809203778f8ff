"""What does a `serve` nobody looks at cost? CPU share of one core, averaged over a window, once it has settled.

Run: .venv/bin/python bench/bench_idle.py [--guests 2000] [--seconds 600] [--settle 60] [--demo-only | --no-demo]

`--guests N`: the real `backup-glance serve` (a subprocess, as a user runs it) polls the PBS and PVE simulators of
bench_proxmox_poll (N guests x 60 snapshots, in another process, over HTTPS with pinned certificates) at the
default poll interval (5 minutes), with history on, judging every discovered guest. After its first board and a
settling time, its own CPU time (utime + stime from /proc, threads included; the simulators do not count) is read
over the window. Then the same for the built-in demo (`serve` without a config: its simulators run inside the
process and are counted, and its sources poll every one or two minutes, as the example config says).
Targets (issue 12): under 0.5 % of a core at 2,000 guests, under 0.3 % for the demo.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import bench_proxmox_poll as lab_bench
from bench_web import free_port

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def services_shown(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5) as answer:
            return len(json.load(answer).get("services", []))
    except OSError:
        return -1


def start_serve(config: Path | None, data: Path, port: int) -> subprocess.Popen[bytes]:
    command = [str(ROOT / ".venv" / "bin" / "backup-glance"), "serve", "--port", str(port), "--log-level", "warning"]
    if config is not None:
        command += ["--config", str(config)]
    env = {**os.environ, "BACKUP_GLANCE_DATA": str(data), "BACKUP_GLANCE_CONFIG": ""}
    return subprocess.Popen(command, env=env, cwd=data)


def measure(label: str, config: Path | None, data: Path, expected: int, settle: float, seconds: float) -> float:
    port = free_port()
    serve = start_serve(config, data, port)
    try:
        began = time.monotonic()
        while services_shown(port) < expected:
            if serve.poll() is not None or time.monotonic() - began > 600:
                raise RuntimeError(f"{label}: serve did not publish {expected} services")
            time.sleep(1)
        ready = time.monotonic() - began
        time.sleep(settle)
        before, at = cpu_seconds(serve.pid), time.monotonic()
        time.sleep(seconds)
        spent, window = cpu_seconds(serve.pid) - before, time.monotonic() - at
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    share = spent / window
    print(f"{label:28} first board after {ready:5.1f} s; {spent:6.2f} s CPU in {window:4.0f} s = {share:6.2%} of a CPU")
    return share


def lab_config(folder: Path, endpoints: dict[str, Any]) -> Path:
    (folder / "secrets").mkdir()
    (folder / "secrets" / "lab_token").write_text(lab_bench.SECRET)
    sources = [
        {
            "name": name,
            "type": name,
            "url": endpoints[name][0],
            "fingerprint": endpoints[name][1],
            "token_id": lab_bench.TOKEN_ID,
            "token_secret": "${secret:lab_token}",
        }
        for name in ("pbs", "pve")
    ]
    config = folder / "backup-glance.yaml"
    config.write_text(json.dumps({"timezone": lab_bench.DISPLAY_TZ, "sources": sources}, indent=2))  # JSON is YAML
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=600.0, help="the window CPU is averaged over")
    parser.add_argument("--settle", type=float, default=60.0, help="wait this long after the first board")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--demo-only", action="store_true")
    group.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    results = []
    if not args.demo_only:
        lab_bench.GUESTS = args.guests
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=_serve_lab, args=(child, args.guests), daemon=True
        )
        process.start()
        endpoints = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            os.environ["BACKUP_GLANCE_SECRETS_DIR"] = str(folder / "secrets")
            config = lab_config(folder, endpoints)
            label = f"serve, {args.guests} guests"
            share = measure(label, config, folder, args.guests, args.settle, args.seconds)
            results.append((label, share, 0.005))
        parent.send("stop")
        process.join(timeout=30)
    if not args.no_demo:
        with tempfile.TemporaryDirectory() as tmp:
            share = measure("serve, the demo", None, Path(tmp), 1, args.settle, args.seconds)
            results.append(("serve, the demo", share, 0.003))
    for label, share, target in results:
        print(f"  {'PASS' if share < target else 'FAIL'}  {label} under {target:.1%} of a core ({share:.2%})")
    return 0


def _serve_lab(conn: Any, guests: int) -> None:
    lab_bench.GUESTS = guests
    lab_bench.serve(conn)


if __name__ == "__main__":
    sys.exit(main())
