"""Command line: `backup-glance serve | check | schedule | demo | validate`.

Each subcommand lives in `backup_glance.commands.<name>` and exposes `add_parser(subparsers)` and
`run(args) -> int`. Bad input exits with a message and a meaningful code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import BackupGlanceError

COMMANDS = ("serve", "check", "schedule", "demo", "validate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-glance",
        description="Are my backups actually working? Backup health for homelabs, native in Glance.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"backup_glance.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"backup_glance.commands.{name}":
                raise
            continue
        module.add_parser(subparsers)
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
    return code


if __name__ == "__main__":
    sys.exit(main())
