"""Remake the README's screenshots: every widget view of the demo homelab inside Glance, dark and light.

    .venv/bin/python docs/screenshots/make_screenshots.py --preview PATH/glance_preview.py --glance-git GLANCE.git

The demo homelab is frozen at the moment the script starts (`--at` picks another one: glance-preview turns
relative times into text against the real clock, so a moment in the future would read "last ok in 2d") and is
served on a free local port. Each view
goes through the glance-preview development tool (a bare git directory of github.com/glanceapp/glance gives it
Glance's own templates, CSS and themes) with `--strict`, so a view it would warn about fails the run. Small-column
shots are then cut to the column. Prints each widget's size as glance-preview measured it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from backup_glance.board import BoardStore
from backup_glance.demo import DemoLab
from backup_glance.model import Board
from backup_glance.runtime import build_runtime
from backup_glance.web import create_app

HERE = Path(__file__).resolve().parent
SMALL_WIDTH = 330  # the small column and its margin, cut out of the 1280 px page
# name: (query, column, title)
SHOTS: dict[str, tuple[str, str, str]] = {
    "status-small": ("/glance/status?column=small", "small", "Backups"),
    "status-problems": ("/glance/status?column=small&status=problems", "small", "Backup problems"),
    "status-full": ("/glance/status?column=full", "full", "Backups"),
    "datastores": ("/glance/datastores?column=small", "small", "Datastores"),
    "upcoming": ("/glance/calendar?view=upcoming&column=small", "small", "Next runs"),
    "week-full": ("/glance/calendar?view=week&column=full", "full", "This week"),
    "week-small": ("/glance/calendar?view=week&column=small", "small", "This week"),
    "month-full": ("/glance/calendar?view=month&column=full", "full", "This month"),
    "month-small": ("/glance/calendar?view=month&column=small", "small", "This month"),
    "grid-full": ("/glance/calendar?view=grid&column=full", "full", "Backups by day"),
    "grid-small": ("/glance/calendar?view=grid&column=small", "small", "Backups by day"),
}


def demo_board(now: datetime) -> Board:
    loop = asyncio.new_event_loop()
    try:
        with DemoLab(now=now) as lab:
            config = lab.config()
            runtime = build_runtime(config, clock=lambda: now)
            try:
                return loop.run_until_complete(runtime.collector.poll_once())
            finally:
                loop.run_until_complete(runtime.collector.stop())
                if runtime.history is not None:
                    runtime.history.close()
    finally:
        loop.close()


def serve(board: Board) -> tuple[uvicorn.Server, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    from backup_glance.config import Config

    app = create_app(Config(timezone=board.timezone), BoardStore(board))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return server, port


def cut_to_small_column(png: Path) -> None:
    """Keep the 300 px column (glance-preview draws it next to an empty full column)."""
    from playwright.sync_api import sync_playwright

    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    data = base64.b64encode(png.read_bytes()).decode()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": min(height, 4000)})
        page.set_content(f'<body style="margin:0"><img style="display:block" src="data:image/png;base64,{data}">')
        page.screenshot(path=str(png), clip={"x": 0, "y": 0, "width": SMALL_WIDTH, "height": height}, full_page=True)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", required=True, type=Path, help="glance_preview.py of the glance-preview tool")
    parser.add_argument("--glance-git", required=True, help="a bare git directory of glanceapp/glance")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--only", nargs="*", help="names of the shots to remake (default: all)")
    parser.add_argument("--at", type=datetime.fromisoformat, help="the demo's moment, ISO 8601 (default: now)")
    args = parser.parse_args()
    now = (args.at or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    print(f"demo homelab at {now.isoformat()}")
    board = demo_board(now)
    server, port = serve(board)
    failed = []
    try:
        for name, (query, column, title) in SHOTS.items():
            if args.only and name not in args.only:
                continue
            command = [
                sys.executable, str(args.preview), "--glance-git", args.glance_git, "--strict",
                "--url", f"http://127.0.0.1:{port}{query}", "--title", title,
                "--column", column, "--width", "1280", "--scheme", "both", "--out", str(args.out / f"{name}.png"),
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            sizes = re.findall(r"(small|full) column: (\d+x\d+) px", result.stdout)
            warnings = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("WARN")]
            print(f"{name:16} {' '.join(f'{c} {s}' for c, s in sizes):28} {'; '.join(warnings) or 'no warnings'}")
            if result.returncode != 0:
                failed.append(name)
                print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
                continue
            if column == "small":
                for scheme in ("dark", "light"):
                    cut_to_small_column(args.out / f"{name}-{scheme}.png")
    finally:
        server.should_exit = True
    if failed:
        print(f"failed or warned: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
