"""`backup-glance demo`: serve the built-in demo homelab, or print a starting config for a real one."""

from __future__ import annotations

import argparse

from ._common import EXIT_OK, start_logging
from .serve import add_listen_arguments, serve_demo


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser("demo", parents=parents, help="serve the built-in demo homelab on its simulators")
    add_listen_arguments(parser)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the demo's configuration as a starting point for your own, and exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.print_config:
        from ..demo import starter_config

        print(starter_config(), end="")
        return EXIT_OK
    return serve_demo(args, start_logging(args))
