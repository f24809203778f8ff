"""Command line: `backup-glance serve | check | validate | schedule | demo`, and `--version`.

Each subcommand lives in `backup_glance.commands.<name>` and exposes `add_parser(subparsers, parents)` and
`run(args) -> int`. Bad input exits with a one-line reason and a documented code, never a traceback (exit codes:
`backup_glance.commands._common`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .commands._common import logging_options
from .errors import BackupGlanceError

COMMANDS = ("serve", "check", "validate", "schedule", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-glance",
        description="Are my backups actually working? Backup health for homelabs, native in Glance.",
    )
    parser.add_argument("--version", action="version", version=f"backup-glance {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [logging_options()]
    for name in COMMANDS:
        module = importlib.import_module(f"backup_glance.commands.{name}")
        module.add_parser(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except BackupGlanceError as exc:
        print(f"backup-glance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A bug, not bad input: say so in one line, keep the traceback in the log for a report.
        logging.getLogger("backup_glance").debug("internal error", exc_info=True)
        print(
            "backup-glance: internal error (a bug); run again with --log-level debug and report the traceback",
            file=sys.stderr,
        )
        return 70
    return code


if __name__ == "__main__":
    sys.exit(main())
