"""Command line: `backup-glance serve | check | validate | schedule | demo | notify-test`, and `--version`.

Each subcommand lives in `backup_glance.commands.<name>` and exposes `add_parser(subparsers, parents)` and
`run(args) -> int`. Bad input exits with a one-line reason and a documented code, never a traceback (exit codes:
`backup_glance.commands._common`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .commands._common import EXIT_OUTPUT, EXIT_PIPE_CLOSED, logging_options
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


# Every command's own options that are also taken before the command's name, each with a value to show.
LEADING_OPTIONS = {"--log-level": "debug", "--log-format": "json"}


def _options_after_command(words: list[str]) -> list[str]:
    """`backup-glance --log-level debug serve` read as `backup-glance serve --log-level debug`: the options every
    command takes belong to the command (its defaults would hide a value given before it), and a user writes them
    where most tools take them, first."""
    at = 0
    while at < len(words) and words[at].partition("=")[0] in LEADING_OPTIONS:
        at += 1 if "=" in words[at] else 2
    if at == 0 or at >= len(words) or _command_in(words[at:]) is None:
        return words  # nothing to move, or no command after it: argparse says what is wrong
    return [words[at], *words[:at], *words[at + 1 :]]


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stdout is None:  # started with it closed (`>&-`): what it would print goes nowhere, the rest works
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process's own, for its whole life
    words = _options_after_command(sys.argv[1:] if argv is None else list(argv))
    try:
        parser = build_parser(words)
        option = words[0].partition("=")[0] if words else ""
        if option in LEADING_OPTIONS:  # not moved: no command after it
            parser.error(f"{option} goes with a command, e.g. backup-glance {option} {LEADING_OPTIONS[option]} serve")
        args = parser.parse_args(words)
    except KeyboardInterrupt:  # Ctrl-C before the command even began
        return 130
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
        _output_to_nowhere()
        return EXIT_PIPE_CLOSED
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRORS:
            return _internal_error(args)
        # A full disk under `check --json > report.json`, say: the output is not all there, which is no bug.
        _output_to_nowhere()
        print(f"backup-glance: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except Exception:
        return _internal_error(args)
    _exit_now_if_sends_are_stuck(code)
    return code


# What writing the output can meet that is no bug of ours: a full disk or quota, a file too big, an I/O error, a
# descriptor that is not open for writing.
_OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF}


def _output_to_nowhere() -> None:
    """What is still buffered for standard output goes nowhere: Python's flush at exit must not fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _internal_error(args: argparse.Namespace) -> int:
    import logging  # here only: `schedule` starts faster without it

    # A bug, not bad input: say so in one line, keep the traceback in the log for a report. A command that never
    # set up logging (`schedule`) has no log: its traceback is printed when asked for.
    logger = logging.getLogger("backup_glance")
    if logger.hasHandlers():
        logger.debug("internal error", exc_info=True)
    elif getattr(args, "log_level", "") == "debug":
        import traceback

        traceback.print_exc(file=sys.stderr)
    print(
        "backup-glance: internal error (a bug); run again with --log-level debug and report the traceback",
        file=sys.stderr,
    )
    return 70


EXIT_GRACE_S = 5.0  # what a send on its way gets to end, after a stop (systemd's TimeoutStopSec is above it)


def _exit_now_if_sends_are_stuck(code: int) -> None:
    """Python waits at exit for every thread of a pool to end; a notification target that answers a byte at a time
    keeps one of Apprise's in a read for ever, so `serve` would never end after its clean stop (nor `notify-test`
    after its report). Everything is closed by now: what is left is let go."""
    if "apprise.apprise" not in sys.modules:  # nothing was sent
        return
    import threading
    import time

    from .notify import NOTIFY_THREADS, stuck_sends

    # A send still within Apprise's own wait is not abandoned yet, but its thread (and the one Apprise reads in)
    # would hold the exit just as long: for ever, for a target that answers a byte at a time. The notifier's
    # threads still alive after its stop are all sending; they get a few seconds to end.
    deadline = time.monotonic() + EXIT_GRACE_S
    sending = [thread for thread in threading.enumerate() if thread.name.startswith(NOTIFY_THREADS)]
    for thread in sending:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = stuck_sends() + [f"a send in {thread.name}" for thread in sending if thread.is_alive()]
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
