"""What the subcommands share: where the config comes from, how problems with it are shown, logging options.

Exit codes (all commands): 0 success, 2 bad configuration or usage, 141 the output's reader went away; `check`
adds 1 warning, 2 critical and 3 unknown (the Nagios convention); `serve` adds 4 cannot listen and 5 cannot open
the data folder or history.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from .._log_choices import FORMATS, LEVELS

_FORGED_LINE = re.compile(r"\n(?!  )")

if TYPE_CHECKING:  # the command line is parsed before any of these is needed: `schedule` never needs them
    import logging
    from pathlib import Path

    from ..config import Config, Report

CONFIG_VARIABLE = "BACKUP_GLANCE_CONFIG"
DEFAULT_PATHS = ("backup-glance.yaml", "/config/backup-glance.yaml", "/etc/backup-glance/config.yaml")
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_LISTEN = 4
EXIT_DATA = 5
EXIT_OUTPUT = 74  # sysexits' EX_IOERR: the output could not be written (a full disk)
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe


def add_config_argument(parser: argparse.ArgumentParser, *, demo_without: bool = False) -> None:
    """`demo_without`: the command runs the built-in demo homelab when no configuration is found (serve, check);
    the others stop and ask for one."""
    fallback = "the built-in demo homelab" if demo_without else "an error"
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"YAML configuration (default: ${CONFIG_VARIABLE}, then {', '.join(DEFAULT_PATHS)}; "
        f"none found: {fallback})",
    )


def logging_options() -> argparse.ArgumentParser:
    """A parent parser: every command takes --log-level and --log-format (also from the environment)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    for option, variable, fallback, choices in (
        ("--log-level", "BACKUP_GLANCE_LOG_LEVEL", "info", LEVELS),
        ("--log-format", "BACKUP_GLANCE_LOG_FORMAT", "text", FORMATS),
    ):
        group.add_argument(
            option,
            choices=choices,
            type=_choice(variable, choices),
            default=os.environ.get(variable) or fallback,  # argparse runs `type` on it: a bad value is exit 2
            help=f"default: ${variable} or {fallback}",
        )
    return parent


def _choice(variable: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """argparse type: one of `choices` in any case; a bad value from `variable` is named as coming from there."""
    from_env = os.environ.get(variable)

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value in choices:
            return value
        where = f"environment variable {variable} is {text!r}" if text == from_env else f"{text!r} is not known"
        raise argparse.ArgumentTypeError(f"{where}; use one of {', '.join(choices)}")

    parse.__name__ = variable  # argparse names the type in some messages
    return parse


def find_config(explicit: str | None) -> Path | None:
    from pathlib import Path

    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_VARIABLE)
    if from_env:
        return Path(from_env)
    for candidate in DEFAULT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535, or 0 for any free port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (1-65535, or 0 for any free port)")
    return port


def print_problems(report: Report, stream: TextIO | None = None) -> None:
    """Each problem on its line(s), control characters escaped: a key written as ESC [2J must not clear the screen."""
    from ..logs import escape_controls

    for problem in report.problems:
        # Only a line break that starts an indented line of ours (a caret under a schedule) stays one: a key or a
        # value holding a line break could otherwise print a line that poses as a problem of its own.
        text = _FORGED_LINE.sub(r"\\n", escape_controls(str(problem), keep_newlines=True))
        print(text, file=stream or sys.stderr)


def shown_path(path: object) -> str:
    """A file name as a summary line prints it: control characters (a name may hold ESC) escaped."""
    from ..logs import escape_controls

    return escape_controls(str(path))


def start_logging(args: argparse.Namespace) -> logging.Handler:
    from ..logs import setup_logging

    return setup_logging(level=getattr(args, "log_level", "info"), fmt=getattr(args, "log_format", "text"))


def checked_config(path: Path, handler: logging.Handler) -> Config | None:
    """The config at `path` with its warnings logged, or None after printing every error (exit 2)."""
    import logging

    from ..config import read_config, secrets_of
    from ..logs import update_secrets

    report = read_config(path)
    if report.config is None:
        print_problems(report)
        errors = len(report.errors)
        summary = f"{errors} error{'s' * (errors != 1)}; nothing was started"
        print(f"backup-glance: {shown_path(path)}: {summary}", file=sys.stderr)
        return None
    update_secrets(handler, secrets_of(report.config))
    log = logging.getLogger("backup_glance")
    for problem in report.warnings:
        log.warning(str(problem))
    return report.config
