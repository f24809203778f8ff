"""`backup-glance validate CONFIG`: check a configuration file without polling anything."""

from __future__ import annotations

import argparse

from ..config import load_config
from ..errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("validate", help="check a configuration file and exit")
    parser.add_argument("config", metavar="CONFIG", help="the YAML file to check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        problems = exc.problems
        print(f"{args.config}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 2
    print(
        f"{args.config}: ok — {len(config.sources)} source(s), "
        f"{len(config.services) or 'all discovered'} service(s), display zone {config.timezone}"
    )
    return 0
