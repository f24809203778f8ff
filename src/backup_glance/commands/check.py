"""`backup-glance check`: poll every source once, print the verdicts, exit with the Nagios code.

Exit codes: 0 all ok, 1 a warning, 2 anything critical (or a configuration with errors: nothing is polled),
3 unknown (and nothing critical). Each source that fails is logged by name with its reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from ..config import Config, secrets_of
from ..errors import HistoryError
from ..logs import update_secrets
from ..model import Board, Severity, Verdict
from ..paths import DataFolderError
from ..runtime import build_runtime
from ._common import EXIT_CONFIG, add_config_argument, checked_config, find_config, start_logging

EXIT_CODES = {Severity.OK: 0, Severity.WARNING: 1, Severity.CRITICAL: 2, Severity.UNKNOWN: 3}
_MARKS = {Severity.OK: "ok ", Severity.WARNING: "WARN", Severity.CRITICAL: "CRIT", Severity.UNKNOWN: "UNKN"}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser(
        "check", parents=parents, help="poll once, print verdicts, exit 0/1/2/3 (Nagios convention)"
    )
    add_config_argument(parser, demo_without=True)
    parser.add_argument("--json", action="store_true", help="print the /api/v1/status document instead")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    handler = start_logging(args)
    path = find_config(args.config)
    if path is None:
        from ..demo import DemoLab

        logging.getLogger("backup_glance").info("no configuration found: checking the built-in demo homelab")
        with DemoLab() as lab:
            config = lab.config()
            update_secrets(handler, secrets_of(config))
            board = asyncio.run(_poll(config))
    else:
        checked = checked_config(path, handler)
        if checked is None:
            return EXIT_CONFIG
        try:
            board = asyncio.run(_poll(checked))
        except (HistoryError, DataFolderError) as exc:
            print(f"backup-glance check: {exc}", file=sys.stderr)
            return EXIT_CODES[Severity.UNKNOWN]
    if args.json:
        from ..web.api import build_status

        print(json.dumps(build_status(board, ZoneInfo(board.timezone)), indent=2))
    else:
        print(render_table(board))
    return exit_code(board)


async def _poll(config: Config) -> Board:
    runtime = build_runtime(config)
    try:
        return await runtime.collector.poll_once()
    finally:
        await runtime.collector.stop()
        if runtime.history is not None:
            runtime.history.close()


def exit_code(board: Board) -> int:
    return EXIT_CODES[board.overall]


def render_table(board: Board) -> str:
    """A plain table: one line per service, its reasons indented under it, then the sources."""
    zone = ZoneInfo(board.timezone)
    width = shutil.get_terminal_size((120, 20)).columns
    name_width = max([len(v.name) for v in board.verdicts] + [7])
    lines = [f"{'':4}  {'SERVICE':<{name_width}}  {'STATUS':<13}  {'LAST SUCCESS':<16}  {'SNAPS':>5}  NEXT RUN"]
    for verdict in board.verdicts:
        lines.append(_row(verdict, name_width, zone))
        for reason in verdict.reasons:
            lines.append(_fit(f"{'':6}{'':{name_width}}  - {reason}", width))
    lines.append("")
    for state in board.sources:
        observation = state.observation if state.error is None else None  # failing: its error says it all
        problems = observation.problems if observation is not None else ()
        health = f"ERROR: {state.error}" if state.error is not None else "read in part" if problems else "ok"
        lines.append(f"source {state.name} ({state.kind}): {health}")
        lines += [_fit(f"{'':6}- {problem}", width) for problem in problems]
    lines += [_fit(f"notice: {notice}", width) for notice in board.notices]  # e.g. a damaged history database
    lines.append(f"overall: {board.overall.value}")
    return "\n".join(lines)


def _fit(line: str, width: int) -> str:
    """The line, cut to the terminal's width with a mark where it was cut."""
    return line if len(line) <= width else line[: max(width - 1, 1)] + "…"


def _row(verdict: Verdict, name_width: int, zone: ZoneInfo) -> str:
    def fmt(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%a %d %b %H:%M") if moment is not None else "-"

    return (
        f"{_MARKS[verdict.severity]:4}  {verdict.name:<{name_width}}  {verdict.status.value:<13}  "
        f"{fmt(verdict.last_success_at):<16}  {verdict.snapshot_count:>5}  {fmt(verdict.next_run_at)}"
    )


__all__ = ["exit_code", "render_table", "run"]
