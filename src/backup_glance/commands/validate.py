"""`backup-glance validate [FILE]`: check a configuration without polling anything.

Everything short of the network: shape, values, references between keys, secret and CA files, schedules.
Every problem is printed at once (file:line:column: key: what is wrong), to standard output, with control
characters escaped; --log-level and --log-format apply to log lines, as in every command. Exit 0 when there
are no errors (warnings are printed but pass), 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from ..config import read_config
from ._common import (
    CONFIG_VARIABLE,
    EXIT_CONFIG,
    EXIT_OK,
    add_config_argument,
    find_config,
    print_problems,
    shown_path,
    start_logging,
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser(
        "validate", parents=parents, help="check a configuration file and exit (0 ok, 2 errors)"
    )
    parser.add_argument("file", nargs="?", metavar="FILE", help="the YAML file to check (or use --config)")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        print("backup-glance validate: give the file once, as FILE or as --config", file=sys.stderr)
        return EXIT_CONFIG
    path = find_config(args.file or args.config)
    if path is None:
        print(
            f"backup-glance validate: no configuration file found; give FILE, --config FILE or ${CONFIG_VARIABLE}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    start_logging(args)  # nothing here logs today; whatever does later follows --log-level and --log-format
    report = read_config(path)
    print_problems(report, sys.stdout)
    errors, warnings = len(report.errors), len(report.warnings)
    if report.config is None:
        print(f"{shown_path(path)}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
        return EXIT_CONFIG
    config = report.config
    services = len(config.services) or "all discovered"
    note = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
    counts = f"{len(config.sources)} source(s), {services} service(s)"
    print(f"{shown_path(path)}: ok — {counts}, display zone {config.timezone}{note}")
    return EXIT_OK
