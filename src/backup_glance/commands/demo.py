"""`backup-glance demo`: serve the built-in demo homelab (what `serve` does without a configuration)."""

from __future__ import annotations

import argparse

from . import serve
from ._common import port_number


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="serve the built-in demo homelab on its simulators")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="listen port (default 8765)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the YAML that watches the simulators, then serve"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return serve.serve_demo(args.host, args.port, print_config=args.print_config)
