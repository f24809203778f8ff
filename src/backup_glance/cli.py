"""Command line: `backup-glance serve | check | validate | schedule | demo | notify-test`, and `--version`.

Each subcommand lives in `backup_glance.commands.<name>` and exposes `add_parser(subparsers, parents)` and
`run(args) -> int`. Bad input exits with a one-line reason and a documented code, never a traceback (exit codes:
`backup_glance.commands._common`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .commands._common import EXIT_PIPE_CLOSED, logging_options
from .errors import BackupGlanceError

COMMANDS = ("serve", "check", "validate", "schedule", "demo", "notify_test")  # modules; notify_test: notify-test


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the arguments, only the named command's module is imported (`schedule` then starts
    without the web server, pydantic and the sources), else all of them (for --help and errors)."""
    parser = argparse.ArgumentParser(
        prog="backup-glance",
        description="Are my backups actually working? Backup health for homelabs, native in Glance.",
    )
    parser.add_argument("--version", action="version", version=f"backup-glance {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [logging_options()]
    named = _command_in(argv)
    for name in (named,) if named else COMMANDS:
        module = importlib.import_module(f"backup_glance.commands.{name}")
        module.add_parser(subparsers, parents)
    return parser


def _command_in(argv: Sequence[str] | None) -> str | None:
    """The module of the command `argv` names, if its first word is one."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = words[0] if words else ""
    module = first.replace("-", "_")
    return module if module in COMMANDS and first == module.replace("_", "-") else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader gone by then is met below, not in Python's last words
    except BackupGlanceError as exc:
        print(f"backup-glance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader stopped reading (`| head`): the rest is not wanted, which is not an error of ours. What is
        # still buffered goes nowhere, and the exit code is a shell's for a command SIGPIPE ended.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except Exception:
        import logging  # here only: `schedule` starts faster without it

        # A bug, not bad input: say so in one line, keep the traceback in the log for a report.
        logging.getLogger("backup_glance").debug("internal error", exc_info=True)
        print(
            "backup-glance: internal error (a bug); run again with --log-level debug and report the traceback",
            file=sys.stderr,
        )
        return 70
    _exit_now_if_sends_are_stuck(code)
    return code


def _exit_now_if_sends_are_stuck(code: int) -> None:
    """Python waits at exit for every thread of a pool to end; a notification target that answers a byte at a time
    keeps one of Apprise's in a read for ever, so `serve` would never end after its clean stop (nor `notify-test`
    after its report). Everything is closed by now: what is left is let go."""
    if "apprise.apprise" not in sys.modules:  # nothing was sent
        return
    from .notify import stuck_sends

    stuck = stuck_sends()
    if not stuck:
        return
    import logging

    logging.getLogger("backup_glance").warning(
        "exiting without waiting for notification sends that never finished", extra={"sends": ", ".join(stuck)}
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
